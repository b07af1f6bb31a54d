"""``python -m train probe-reference-bank WEIGHTS --data DIR``: would training photos, used as automatic colour
references, raise the automatic colourisation of unseen photos?

The idea it tests: keep a bank of the training photos' grey features and colours, and when a user gives no
reference, colour each photo from the training photos that look most like it. Before a bank is built into the
weights file, this measures the best case: the whole training photos themselves (not a compressed bank) as
references, through the same reference matching a user's references use. For every held-out photo it retrieves
the ``--k`` training photos whose grey VGG16 features are closest (cosine of the channel means and spreads of
the matching features at relu3_3/relu4_1) and colours the photo with them at several strengths
(``GuidanceFusion.reference_power``: higher trusts the decoder more), beside the automatic colours. Retrieval
never looks at a held-out photo's colours, and the held-out photos are never in the bank.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from gan_core.color import grey_rgb_from_lightness, rgb_to_lab
from gan_core.geometry import pad_for_network, render_shape, resize
from gan_core.guidance import GuidanceFusion
from gan_core.references import REFERENCE_SIZE, match_features

from . import metrics
from .eval_images import held_out_photos, load_image, read_manifest, write_csv
from .eval_setup import add_decoding_arguments, add_model_arguments, load_runner

DESCRIPTOR_SIZE = 224  # short side the grey photo is encoded at for retrieval
POWERS = (0.25, 2.0, 8.0)


@torch.no_grad()
def grey_descriptor(encoder, rgb: torch.Tensor) -> torch.Tensor:
    """A unit vector describing what a photo shows, from its lightness only: the channel means and standard
    deviations of its matching features (``match_features``) at short side ``DESCRIPTOR_SIZE``."""
    lightness = rgb_to_lab(resize(rgb, render_shape(*rgb.shape[-2:], DESCRIPTOR_SIZE)))[:, :1]
    param = next(encoder.parameters())
    grey = pad_for_network(grey_rgb_from_lightness(lightness)).to(device=param.device, dtype=param.dtype)
    feats = match_features(encoder(grey, until="relu4_1")).float()
    return F.normalize(torch.cat([feats.mean((2, 3)), feats.std((2, 3))], dim=1), dim=1)[0]


@torch.no_grad()
def probe_reference_bank(runner, data: Path, records: list[dict], *, k: int, powers=POWERS, size: int = 512,
                         limit: int | None = None, progress: bool = True) -> dict:
    encoder = runner.model.encoder
    bank_records = held_out_photos(records, "train")
    targets = held_out_photos(records)[:limit]
    if not bank_records or not targets:
        raise ValueError(f"{data}: the manifest needs training photos (the bank) and held-out photos (the targets)")
    bank = torch.stack([grey_descriptor(encoder, load_image(data / r["file"], REFERENCE_SIZE))
                        for r in tqdm(bank_records, desc="bank", disable=not progress)])
    fusion = runner.guidance_fusion
    rows = []
    for rec in tqdm(targets, desc="held-out", disable=not progress):
        real = load_image(data / rec["file"], size)
        grey = grey_rgb_from_lightness(rgb_to_lab(real)[:, :1])
        grey_psnr = float(metrics.psnr(grey, real))
        similarity = bank @ grey_descriptor(encoder, grey)
        nearest = similarity.argsort(descending=True)[:k].tolist()
        references = [load_image(data / bank_records[j]["file"], REFERENCE_SIZE) for j in nearest]
        row = {"photo": rec["file"], "grey": grey_psnr,
               "automatic": float(metrics.psnr(runner.colorize(grey), real)),
               "references": " ".join(bank_records[j]["file"] for j in nearest),
               "best_similarity": float(similarity[nearest[0]])}
        for power in powers:
            runner.guidance_fusion = GuidanceFusion(reference_power=power)
            row[f"bank_power_{power:g}"] = float(metrics.psnr(runner.colorize(grey, reference=references), real))
        runner.guidance_fusion = fusion
        rows.append(row)
    methods = ["automatic"] + [f"bank_power_{p:g}" for p in powers]
    summary = {m: {"psnr": metrics.mean([r[m] for r in rows]), "gain_db": metrics.mean([r[m] - r["grey"] for r in rows]),
                   "photos_above_automatic": sum(r[m] > r["automatic"] for r in rows)} for m in methods}
    return {"photos": len(rows), "bank_photos": len(bank_records), "k": k, "size": size,
            "grey_psnr": metrics.mean([r["grey"] for r in rows]), "summary": summary, "per_photo": rows}


def write_probe_report(report: dict, out: Path) -> str:
    lines = [f"Automatic references from the {report['bank_photos']} training photos ({report['k']} nearest by grey "
             f"features) on {report['photos']} held-out photos, long side {report['size']} px; grey input "
             f"{report['grey_psnr']:.2f} dB", "",
             "| colours | PSNR | gain over grey (dB) | photos above automatic |", "|---|---|---|---|"]
    for method, s in report["summary"].items():
        lines.append(f"| {method} | {s['psnr']:.2f} | {s['gain_db']:+.2f} | {s['photos_above_automatic']} |")
    text = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "reference_bank.md").write_text(text)
    write_csv(out / "reference_bank.csv", report["per_photo"])
    return text


def run_probe(args) -> str:
    runner, _info, _decoding = load_runner(args)
    data = Path(args.data)
    report = probe_reference_bank(runner, data, read_manifest(data), k=args.k, powers=tuple(args.powers),
                                  size=args.size, limit=args.limit, progress=not args.quiet)
    return write_probe_report(report, Path(args.out))


def register(subparsers) -> None:
    p = subparsers.add_parser("probe-reference-bank",
                              help="score training photos as automatic colour references on the held-out photos")
    add_model_arguments(p, out=Path("runs/reference_bank"), out_help="where the table and per-photo CSV go")
    p.add_argument("--k", type=int, default=3, help="training photos used as references per photo (default 3)")
    p.add_argument("--powers", type=float, nargs="+", default=list(POWERS),
                   help="reference strengths to score (GuidanceFusion.reference_power; higher trusts the decoder more)")
    p.add_argument("--size", type=int, default=512, help="long side of the held-out photos (default 512)")
    p.add_argument("--limit", type=int, help="only the first N held-out photos")
    add_decoding_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=run_probe)
