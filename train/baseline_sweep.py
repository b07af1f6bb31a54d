"""``python -m train sweep-hint-baseline --data DIR``: choose the hint-propagation baseline's sigmas on
TRAINING photos (never the held-out ones it is reported on).

Each grid point propagates the protocol's hints (1, 10 and 100, seed 0) and is scored by PSNR over a
fixed random sample of pixels per photo: the propagation at a pixel does not depend on the others,
so the sample gives an unbiased estimate of each photo's error at a fraction of the cost.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import torch
from tqdm import tqdm

from gan_core.color import lightness_ab_to_rgb, rgb_to_lab

from . import baselines, metrics
from .eval_guided import HINT_COUNTS, SIZE, sample_hints
from .eval_images import held_out_photos, load_image, read_manifest, write_csv

SIGMA_SPACE = (16.0, 32.0, 48.0, 96.0)
SIGMA_RANGE = (3.0, 6.0, 12.0, 24.0)
PRIOR_WEIGHT = (0.01, 0.05, 0.2)
SAMPLE_PIXELS = 16384


@torch.no_grad()
def sweep(data: Path, *, photos: int, size: int = SIZE, hint_counts=HINT_COUNTS, grid=None, progress: bool = True) -> list[dict]:
    records = held_out_photos(read_manifest(data), split="train")
    if not records:
        raise ValueError(f"{data}: the manifest lists no training photos")
    records = records[:: max(1, len(records) // photos)][:photos]  # a spread over the whole training list
    grid = list(grid or itertools.product(SIGMA_SPACE, SIGMA_RANGE, PRIOR_WEIGHT))
    psnrs = {(point, n): [] for point in grid for n in hint_counts}
    gen = torch.Generator().manual_seed(0)
    for rec in tqdm(records, desc="sweep", disable=not progress):
        real = load_image(data / rec["file"], size)
        h, w = real.shape[-2:]
        pick = torch.randperm(h * w, generator=gen)[:SAMPLE_PIXELS]
        lightness = rgb_to_lab(real)[0, 0].flatten()
        ys, xs = (pick // w).float(), (pick % w).float()
        truth = real.flatten(2)[..., pick]
        for n in hint_counts:
            hints = sample_hints(real, n, 0, rec["file"])
            where = (hints.mask[0, 0].flatten() > 0.5).nonzero()[:, 0]
            values = hints.ab.flatten(2)[0][:, where].t()
            for sigma_space, sigma_range, prior in grid:
                queries = baselines.bilateral_points(ys, xs, lightness[pick], sigma_space, sigma_range)
                keys = baselines.bilateral_points((where // w).float(), (where % w).float(), lightness[where],
                                                  sigma_space, sigma_range)
                ab = baselines.bilateral_average(queries, keys, values, prior)
                rgb = lightness_ab_to_rgb(lightness[pick].view(1, 1, 1, -1), ab.t().reshape(1, 2, 1, -1))
                psnrs[((sigma_space, sigma_range, prior), n)].append(float(metrics.psnr(rgb, truth.view(1, 3, 1, -1))))
    rows = []
    for point in grid:
        row = {"sigma_space": point[0], "sigma_range": point[1], "prior_weight": point[2]}
        for n in hint_counts:
            row[f"psnr_{n}"] = metrics.mean(psnrs[(point, n)])
        row["mean"] = metrics.mean([row[f"psnr_{n}"] for n in hint_counts])
        rows.append(row)
    return sorted(rows, key=lambda r: -r["mean"])


def run_sweep(args) -> str:
    rows = sweep(Path(args.data), photos=args.photos, progress=not args.quiet)
    out = Path(args.out)
    write_csv(out / "sweep_hint_baseline.csv", rows)
    counts = [k for k in rows[0] if k.startswith("psnr_")]
    lines = [f"Hint-propagation baseline on {args.photos} TRAINING photos (PSNR on {SAMPLE_PIXELS} sampled pixels each, seed 0)",
             "", "| sigma_space (px) | sigma_range (L) | prior weight | " + " | ".join(f"{c[5:]} hints" for c in counts) + " | mean |",
             "|---|---|---|" + "---|" * (len(counts) + 1)]
    for r in rows[: args.top]:
        lines.append(f"| {r['sigma_space']:g} | {r['sigma_range']:g} | {r['prior_weight']:g} | "
                     + " | ".join(f"{r[c]:.2f}" for c in counts) + f" | {r['mean']:.2f} |")
    text = "\n".join(lines) + "\n"
    (out / "sweep_hint_baseline.md").write_text(text)
    return text


def register(subparsers) -> None:
    p = subparsers.add_parser("sweep-hint-baseline", help="choose the hint-propagation baseline's sigmas on training photos")
    p.add_argument("--data", type=Path, required=True, help="the folder made by `python -m train fetch-data`")
    p.add_argument("--photos", type=int, default=12, help="training photos, spread over the list (default 12)")
    p.add_argument("--out", type=Path, default=Path("runs/sweep_hint_baseline"))
    p.add_argument("--top", type=int, default=10, help="rows printed (the CSV has them all)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=run_sweep)
