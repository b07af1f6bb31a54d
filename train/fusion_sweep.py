"""``python -m train sweep-guidance-fusion WEIGHTS --data DIR``: choose how far hints and references
override the decoder's colours (``gan_core.guidance.GuidanceFusion``), on TRAINING photos (never the
held-out ones ``train eval-guided`` reports on).

Hint powers are scored on the protocol's 10 and 100 hints (seed 0), reference powers on references (a)
and (b) of ``train eval-guided``; the two do not interact (a hint run has no reference and the other
way round), so each is swept on its own. Photos with almost no colour of their own are skipped (they
make no reference).
"""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm import tqdm

from gan_core.color import grey_rgb_from_lightness, rgb_to_lab
from gan_core.guidance import GREY_REFERENCE_CHROMA, GuidanceFusion

from . import metrics
from .eval_guided import SIZE, hint_map, reference_mirrored_crop, reference_mirrored_left, sample_hints
from .eval_images import held_out_photos, load_image, read_manifest, write_csv
from .eval_setup import add_decoding_arguments, add_model_arguments, load_runner

POWERS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)
HINT_COUNTS = (10, 100)


@torch.no_grad()
def sweep(runner, data: Path, *, photos: int, size: int = SIZE, render_size: int = 512, powers=POWERS,
          progress: bool = True) -> list[dict]:
    records = held_out_photos(read_manifest(data), split="train")
    if not records:
        raise ValueError(f"{data}: the manifest lists no training photos")
    records = records[:: max(1, len(records) // photos)][:photos]  # a spread over the whole training list
    gains: dict[tuple[str, float, str], list[float]] = {}
    for rec in tqdm(records, desc="sweep", disable=not progress):
        real = load_image(data / rec["file"], size)
        lab = rgb_to_lab(real)
        if float(lab[:, 1:].norm(dim=1).mean()) < 2 * GREY_REFERENCE_CHROMA:
            continue
        grey = grey_rgb_from_lightness(lab[:, :1])
        grey_psnr = float(metrics.psnr(grey, real))
        conditions = [("hint_power", f"hints_{n}", {"hints": hint_map(sample_hints(real, n, 0, rec["file"]))})
                      for n in HINT_COUNTS]
        conditions += [("reference_power", "reference_a", {"reference": [reference_mirrored_crop(real)]}),
                       ("reference_power", "reference_b", {"reference": [reference_mirrored_left(real)]})]
        for knob, condition, guidance in conditions:
            for power in powers:
                runner.guidance_fusion = GuidanceFusion(**{knob: power})
                out = runner.colorize(grey, render_size=render_size, **guidance)
                gains.setdefault((knob, power, condition), []).append(float(metrics.psnr(out, real)) - grey_psnr)
    runner.guidance_fusion = GuidanceFusion()
    rows = []
    for (knob, power, condition), values in gains.items():
        rows.append({"knob": knob, "power": power, "condition": condition, "photos": len(values),
                     "gain_db": metrics.mean(values)})
    return rows


def write_table(rows: list[dict], photos: int) -> str:
    conditions = list(dict.fromkeys(r["condition"] for r in rows))
    lines = [f"Guidance fusion on {photos} TRAINING photos (long side {SIZE} px): PSNR gain over the grey input, dB",
             "", "| knob | power | " + " | ".join(conditions) + " |", "|---|---|" + "---|" * len(conditions)]
    table = {(r["knob"], r["power"], r["condition"]): r["gain_db"] for r in rows}
    for knob in dict.fromkeys(r["knob"] for r in rows):
        for power in dict.fromkeys(r["power"] for r in rows if r["knob"] == knob):
            cells = [f"{table[(knob, power, c)]:+.2f}" if (knob, power, c) in table else "" for c in conditions]
            lines.append(f"| {knob} | {power:g} | " + " | ".join(cells) + " |")
    defaults = GuidanceFusion()
    lines += ["", f"In use: hint_power {defaults.hint_power:g}, reference_power {defaults.reference_power:g}."]
    return "\n".join(lines) + "\n"


def run_sweep(args) -> str:
    runner, _info, _decoding = load_runner(args, args.chroma_confidence[0] if args.chroma_confidence else None)
    if not runner.model.guided:
        raise ValueError(f"{args.weights}: these weights predate guided colour; there is nothing to fuse")
    rows = sweep(runner, Path(args.data), photos=args.photos, render_size=args.render_size, progress=not args.quiet)
    if not rows:
        raise ValueError(f"{args.data}: none of the sampled training photos has colour enough to score")
    out = Path(args.out)
    write_csv(out / "sweep_guidance_fusion.csv", rows)
    text = write_table(rows, max(r["photos"] for r in rows))
    (out / "sweep_guidance_fusion.md").write_text(text)
    return text


def register(subparsers) -> None:
    p = subparsers.add_parser("sweep-guidance-fusion",
                              help="choose how far hints and references override the decoder's colours, on training photos")
    add_model_arguments(p, out=Path("runs/sweep_guidance_fusion"), out_help="where the table and the CSV go")
    add_decoding_arguments(p)
    p.add_argument("--photos", type=int, default=9, help="training photos, spread over the list (default 9)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=run_sweep)
