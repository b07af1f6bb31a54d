"""``python -m train eval-guided WEIGHTS --data DIR``: guided colour on held-out photos: hints, references and a pan.

Held-out photos at 512 px on the long side, coloured from their grey version:
- automatically;
- from 1, 10 and 100 hints (seeds 0, 1, 2): square patches of 1-9 px at uniform random positions,
  each holding the mean true ab of its patch;
- from a colour reference: (a) the true photo mirrored, cropped to its central 85 % and scaled to
  70 %; (b) the mirrored left 55 % of the true photo; (c) a different held-out photo of a similar
  scene, from the pairs in ``train/configs/reference_pairs.json``.
Each condition reports PSNR for the model, for its training-free baseline (``train.baselines``:
joint-bilateral propagation of the same hints; plain feature matching of the same references) and for
the grey input, plus the gain over grey. Hints are also scored as ``gan_core.hints.spread_hints``
spreads them for the decoder (its input, no decoder), which shows what the decoder adds.
The pan: 16 frames cut from one held-out photo by a window moving 8 px per frame, coloured per frame,
with ``temporal_smoothing`` and reference-propagated (``video=True``); flicker is the mean and 95th
percentile of the aligned frame-to-frame ab change, beside each one's PSNR.
Weights that predate guided colour are still scored (automatic, baselines, per-frame pan); their
guided rows say why they are missing. Writes guided.md, guided.csv, pan.csv, guided.json and two
contact sheets (grey | automatic | 10 hints | reference | real, and where the hints were).
"""

from __future__ import annotations

import csv
import json
import logging
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import ImageDraw
from tqdm import tqdm

from gan_core.color import chroma, grey_rgb_from_lightness, lightness_ab_to_rgb, rgb_to_lab
from gan_core.geometry import resize
from gan_core.references import GREY_REFERENCE_CHROMA

from . import baselines, metrics
from .eval_images import contact_sheet, held_out_photos, load_image, read_manifest, to_pil
from .eval_setup import add_decoding_arguments, add_model_arguments, load_runner

logger = logging.getLogger(__name__)

SIZE = 512
HINT_COUNTS = (1, 10, 100)
SEEDS = (0, 1, 2)
PATCH_SIZES = (1, 9)  # side of a hint patch in pixels, uniform in this range
PAN_FRAMES, PAN_STEP = 16, 8
DEFAULT_PAIRS = Path(__file__).resolve().parent / "configs" / "reference_pairs.json"
DEFAULT_PAN_PHOTO = "photos/eval/erase_horse.jpg"
REFERENCE_KINDS = {"reference_a": "true photo mirrored, central 85 %, scaled to 70 %",
                   "reference_b": "true photo's left 55 %, mirrored", "reference_c": "another photo of a similar scene"}
# Issue 14's targets: (what the model is measured against, dB above it)
TARGETS = {"hints_1": ("baseline", 0.0), "hints_10": ("grey", 4.0), "hints_100": ("grey", 8.0),
           "reference_a": ("grey", 8.0), "reference_b": ("grey", 6.0), "reference_c": ("baseline", 0.0)}
BASELINE = {"hints": "propagation", "reference": "matching"}
SHEET_ROWS = 6


@dataclass
class Hints:
    ab: torch.Tensor  # 1 x 2 x H x W
    mask: torch.Tensor  # 1 x 1 x H x W
    patches: list[tuple[int, int, int]] = field(default_factory=list)  # (y, x, side)


def photo_seed(seed: int, name: str) -> int:
    """A generator seed per (protocol seed, photo): the same hints whatever subset of photos is scored."""
    return seed * 1_000_003 + zlib.crc32(name.encode())


def sample_hints(real: torch.Tensor, count: int, seed: int, name: str = "") -> Hints:
    """``count`` square patches of 1-9 px at uniform random positions, each the mean true ab of its patch."""
    ab_true = rgb_to_lab(real)[:, 1:]
    h, w = real.shape[-2:]
    gen = torch.Generator().manual_seed(photo_seed(seed, name))
    ab, mask, patches = torch.zeros_like(ab_true), torch.zeros_like(ab_true[:, :1]), []
    for _ in range(count):
        side = min(int(torch.randint(PATCH_SIZES[0], PATCH_SIZES[1] + 1, (1,), generator=gen)), h, w)
        y = int(torch.randint(0, h - side + 1, (1,), generator=gen))
        x = int(torch.randint(0, w - side + 1, (1,), generator=gen))
        ab[..., y : y + side, x : x + side] = ab_true[..., y : y + side, x : x + side].mean(dim=(2, 3), keepdim=True)
        mask[..., y : y + side, x : x + side] = 1.0
        patches.append((y, x, side))
    return Hints(ab, mask, patches)


def reference_mirrored_crop(real: torch.Tensor) -> torch.Tensor:
    """Reference (a): the true photo mirrored, cropped to its central 85 % and scaled to 70 %."""
    h, w = real.shape[-2:]
    ch, cw = round(0.85 * h), round(0.85 * w)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    crop = real.flip(-1)[..., y0 : y0 + ch, x0 : x0 + cw]
    return resize(crop, (max(16, round(0.7 * ch)), max(16, round(0.7 * cw))))


def reference_mirrored_left(real: torch.Tensor) -> torch.Tensor:
    """Reference (b): the true photo's left 55 %, mirrored."""
    return real[..., : max(16, round(0.55 * real.shape[-1]))].flip(-1)


def load_pairs(path: Path, data: Path, records: list[dict]) -> dict[str, str]:
    """target file -> reference file (both relative to the data folder, both held-out photos)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no reference-pairs file (a JSON list of target/reference photos)")
    try:
        pairs = json.loads(path.read_text())["pairs"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ValueError(f"{path}: not a reference-pairs file (expected {{\"pairs\": [{{\"target\": ..., \"reference\": ...}}]}})") from None
    held_out = {r["file"] for r in held_out_photos(records)}
    out = {}
    for pair in pairs:
        target, reference = pair.get("target"), pair.get("reference")
        for name in (target, reference):
            if name not in held_out:
                raise ValueError(f"{path}: {name!r} is not a held-out photo of {data}/manifest.json; "
                                 "reference pairs use held-out photos only")
        if target == reference:
            raise ValueError(f"{path}: {target} is paired with itself; reference (c) must be a different photo")
        out[target] = reference
    return out


def pan_frames(photo: torch.Tensor, frames: int = PAN_FRAMES, step: int = PAN_STEP) -> torch.Tensor:
    """``frames`` x 3 x H x (W - (frames - 1) step): a window moving ``step`` px to the right per frame."""
    h, w = photo.shape[-2:]
    width = w - (frames - 1) * step
    if width < 2 * step:
        raise ValueError(f"a {h} x {w} photo is too narrow for {frames} frames moving {step} px each")
    return torch.cat([photo[..., t * step : t * step + width] for t in range(frames)])


class Guided:
    """The model's guided colour, or why it has none: the runner lacks the argument, or the weights file
    predates guided colour (the runner's one sentence). Other errors propagate."""

    def __init__(self, runner, render_size: int) -> None:
        self.runner, self.render_size = runner, render_size
        self.missing: dict[str, str] = {}

    def __call__(self, what: str, grey: torch.Tensor, **guidance) -> torch.Tensor | None:
        if what in self.missing:
            return None
        try:
            return self.runner.colorize(grey, render_size=self.render_size, **guidance)
        except TypeError as exc:
            if "unexpected keyword" not in str(exc):
                raise
            self.missing[what] = f"this runner takes no {'/'.join(guidance)} (guided colour is not in gan_core yet)"
        except ValueError as exc:
            if "predate" not in str(exc):  # the runner's one sentence for files older than guided colour
                raise
            self.missing[what] = str(exc)
        logger.warning("no guided colour (%s): %s", what, self.missing[what])
        return None


def hint_map(hints: Hints):
    from gan_core.hints import HintMap

    return HintMap(hints.ab, hints.mask)


def spread_input(grey: torch.Tensor, hints: Hints) -> torch.Tensor:
    """The hints as ``gan_core.hints.spread_hints`` densifies them for the decoder, on the grey input's L."""
    from gan_core.hints import spread_hints

    lightness = rgb_to_lab(grey)[:, :1]
    ab, _confidence = spread_hints(hint_map(hints), lightness / 100.0)
    return lightness_ab_to_rgb(lightness, ab)


def mark_hints(grey: torch.Tensor, hints: Hints):
    """A picture of where the hints were: the grey photo with each patch in its hint colour, ringed."""
    lightness = rgb_to_lab(grey)[:, :1]
    painted = lightness_ab_to_rgb(lightness, hints.ab * hints.mask)
    im = to_pil(painted)
    draw = ImageDraw.Draw(im)
    for y, x, side in hints.patches:
        cy, cx, r = y + side / 2, x + side / 2, max(6.0, side)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=(255, 255, 255), width=2)
        draw.ellipse((cx - r - 2, cy - r - 2, cx + r + 2, cy + r + 2), outline=(0, 0, 0), width=1)
    return im


@dataclass
class Scores:
    rows: list[dict] = field(default_factory=list)

    def add(self, photo: str, condition: str, method: str, image: torch.Tensor, real: torch.Tensor, grey_psnr: float,
            seed: int | None = None) -> None:
        value = float(metrics.psnr(image, real))
        self.rows.append({"photo": photo, "condition": condition, "seed": seed, "method": method, "psnr": value,
                          "grey_psnr": grey_psnr})

    def summary(self) -> list[dict]:
        groups: dict[tuple[str, str], list[dict]] = {}
        for row in self.rows:
            groups.setdefault((row["condition"], row["method"]), []).append(row)
        out = []
        for (condition, method), rows in groups.items():
            out.append({"condition": condition, "method": method, "photos": len({r["photo"] for r in rows}), "samples": len(rows),
                        "psnr": metrics.mean([r["psnr"] for r in rows]), "grey_psnr": metrics.mean([r["grey_psnr"] for r in rows]),
                        "gain_db": metrics.mean([r["psnr"] - r["grey_psnr"] for r in rows])})
        return out


@torch.no_grad()
def evaluate_guided(runner, data: Path, records: list[dict], *, pairs: dict[str, str], size: int = SIZE,
                    render_size: int = 512, hint_counts=HINT_COUNTS, seeds=SEEDS, limit: int | None = None,
                    out: Path, progress: bool = True) -> dict:
    photos = held_out_photos(records)[:limit]
    if not photos:
        raise ValueError(f"{data}: the manifest lists no held-out photos")
    guided = Guided(runner, render_size)
    encoder = runner.model.encoder
    scores, sheet, hint_sheet, skipped = Scores(), [], [], {}
    for rec in tqdm(photos, desc="guided", disable=not progress):
        name = rec["file"]
        real = load_image(data / name, size)
        grey = grey_rgb_from_lightness(rgb_to_lab(real)[:, :1])
        grey_psnr = float(metrics.psnr(grey, real))
        auto = runner.colorize(grey, render_size=render_size)
        scores.add(name, "automatic", "grey", grey, real, grey_psnr)
        scores.add(name, "automatic", "ours", auto, real, grey_psnr)
        shown = {"hints_10": {}, "reference_a": {}}
        marks = []
        for count in hint_counts:
            for seed in seeds:
                hints = sample_hints(real, count, seed, name)
                condition = f"hints_{count}"
                base = baselines.hints_baseline(grey, hints.ab, hints.mask)
                scores.add(name, condition, "propagation", base, real, grey_psnr, seed)
                scores.add(name, condition, "spread_input", spread_input(grey, hints), real, grey_psnr, seed)
                ours = guided("hints", grey, hints=hint_map(hints))
                if ours is not None:
                    scores.add(name, condition, "ours", ours, real, grey_psnr, seed)
                if seed == seeds[0]:
                    marks.append(mark_hints(grey, hints))
                    if condition in shown:
                        shown[condition] = {"ours": ours, "baseline": base}
        references = {"reference_a": reference_mirrored_crop(real), "reference_b": reference_mirrored_left(real)}
        if name in pairs:
            references["reference_c"] = load_image(data / pairs[name], size)
        for condition, reference in references.items():
            if float(chroma(rgb_to_lab(reference)[:, 1:]).mean()) < GREY_REFERENCE_CHROMA:
                skipped[condition] = skipped.get(condition, 0) + 1  # a grey photo has no colours to lend
                continue
            base = baselines.reference_baseline(encoder, grey, [reference])
            scores.add(name, condition, "matching", base, real, grey_psnr)
            ours = guided("reference", grey, reference=[reference])
            if ours is not None:
                scores.add(name, condition, "ours", ours, real, grey_psnr)
            if condition in shown:
                shown[condition] = {"ours": ours, "baseline": base}
        if len(sheet) < SHEET_ROWS:
            sheet.append((grey, auto, shown, real))
            hint_sheet.append(marks)
    _write_sheets(sheet, hint_sheet, hint_counts, seeds[0], out)
    return {"photos": len(photos), "size": size, "render_size": render_size, "hint_counts": list(hint_counts),
            "seeds": list(seeds), "pairs": len([p for p in photos if p["file"] in pairs]),
            "summary": scores.summary(), "per_photo": scores.rows, "missing": guided.missing,
            "grey_references_skipped": skipped}


def _write_sheets(sheet, hint_sheet, hint_counts, seed, out: Path) -> None:
    if not sheet:
        return
    # A column only for what every row has (10 hints may not be among the counts asked for)
    titles = {c: t for c, t in (("hints_10", "10 hints"), ("reference_a", "reference (a)"))
              if all("baseline" in s[2][c] for s in sheet)}
    with_ours = {c: all(s[2][c].get("ours") is not None for s in sheet) for c in titles}
    labels = ["grey input", "automatic"]
    for condition, title in titles.items():
        if with_ours[condition]:
            labels.append(f"{title}: ours")
        labels.append(f"{title}: {BASELINE[condition.split('_')[0]]} baseline")
    labels.append("real")
    rows = []
    for grey, auto, shown, real in sheet:
        row = [grey, auto]
        for condition in titles:
            if with_ours[condition]:
                row.append(shown[condition]["ours"])
            row.append(shown[condition]["baseline"])
        rows.append(row + [real])
    contact_sheet(rows, labels, out / "guided_sheet.png")
    contact_sheet(hint_sheet, [f"{n} hint{'s' if n > 1 else ''} (seed {seed})" for n in hint_counts], out / "hints_sheet.png",
                  cell=384)


@torch.no_grad()
def evaluate_pan(runner, data: Path, photo: str, *, temporal_smoothing: float, render_size: int = 512,
                 size: int = SIZE, frames: int = PAN_FRAMES, step: int = PAN_STEP) -> dict:
    path = data / photo
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such pan photo (give a held-out photo with --pan-photo)")
    real = pan_frames(load_image(path, size), frames, step)
    grey = grey_rgb_from_lightness(rgb_to_lab(real)[:, :1])
    guided = Guided(runner, render_size)
    outputs = {"per-frame": runner.colorize(grey, render_size=render_size),
               f"temporal_smoothing {temporal_smoothing:g}": runner.colorize(grey, render_size=render_size,
                                                                             temporal_smoothing=temporal_smoothing),
               "reference-propagated (video)": guided("video", grey, video=True),
               "real frames": real}
    rows = []
    for name, frames_rgb in outputs.items():
        if frames_rgb is None:
            continue
        change = metrics.flicker(rgb_to_lab(frames_rgb)[:, 1:], (0, step))
        rows.append({"colour": name, "frames": frames_rgb.shape[0], "psnr": float(metrics.psnr(frames_rgb, real).mean()),
                     "flicker_mean": float(change.mean()), "flicker_p95": percentile(change, 0.95)})
    return {"photo": photo, "frames": frames, "step": step, "frame_size": list(real.shape[-2:]), "rows": rows,
            "missing": guided.missing}


def percentile(values: torch.Tensor, q: float) -> float:
    """The ``q`` quantile (nearest rank) of a flat tensor of any length."""
    k = min(values.numel(), max(1, int(torch.tensor(q * values.numel()).ceil())))
    return float(values.float().kthvalue(k).values)


def write_guided_report(report: dict, out: Path) -> str:
    g, pan = report["guided"], report.get("pan")
    (out / "guided.json").write_text(json.dumps(report, indent=2))
    by = {(s["condition"], s["method"]): s for s in g["summary"]}
    with open(out / "guided.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["condition", "method", "photos", "samples", "psnr", "grey_psnr", "gain_db"])
        writer.writeheader()
        for s in g["summary"]:
            writer.writerow({k: round(v, 4) if isinstance(v, float) else v for k, v in s.items()})
    lines = [f"## Guided colour: {g['photos']} held-out photos (long side {g['size']} px, render size {g['render_size']}; "
             f"hints seeds {', '.join(map(str, g['seeds']))}; reference (c) on {g['pairs']} paired photos)", "",
             "| condition | photos | grey PSNR | ours PSNR (gain) | baseline PSNR (gain) | spread input (gain) | target | met |",
             "|---|---|---|---|---|---|---|---|"]
    conditions = ["automatic"] + [f"hints_{n}" for n in g["hint_counts"]] + [c for c in REFERENCE_KINDS if (c, "matching") in by]
    for condition in conditions:
        ours = by.get((condition, "ours"))
        base = by.get((condition, BASELINE.get(condition.split("_")[0], "")))
        spread = by.get((condition, "spread_input"))
        ref = base or ours
        cell = lambda s: f"{s['psnr']:.2f} ({s['gain_db']:+.2f})" if s else "–"  # noqa: E731
        target, met = "", ""
        if condition in TARGETS:
            against, margin = TARGETS[condition]
            target = "> baseline" if against == "baseline" else f"≥ grey {margin:+.0f} dB, > baseline"
            if ours and base:
                holds = against == "baseline" or ours["gain_db"] >= margin
                met = "yes" if holds and ours["psnr"] > base["psnr"] else "no"
        lines.append(f"| {condition} | {ref['photos']} | {ref['grey_psnr']:.2f} | {cell(ours)} | {cell(base)} | {cell(spread)} "
                     f"| {target} | {met} |")
    lines += ["", "Baselines (training-free): hints, joint-bilateral propagation over position and L; references, plain "
              "feature matching (`match_reference`'s ab on the original L). Spread input: the hints as the decoder receives "
              "them. Met: the target holds and ours beats the baseline."]
    for what, why in g["missing"].items():
        lines.append(f"- no model rows for {what}: {why}")
    for condition, count in g.get("grey_references_skipped", {}).items():
        lines.append(f"- {condition}: {count} photo(s) left out, their reference is grey (no colours to lend)")
    if pan is not None:
        with open(out / "pan.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["colour", "frames", "psnr", "flicker_mean", "flicker_p95"])
            writer.writeheader()
            for row in pan["rows"]:
                writer.writerow({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
        h, w = pan["frame_size"]
        lines += ["", f"## Pan: {pan['frames']} frames of {w} x {h} px from {pan['photo']}, window moving {pan['step']} px per frame",
                  "", "| colour | PSNR | flicker mean (ab) | flicker p95 (ab) |", "|---|---|---|---|"]
        for row in pan["rows"]:
            lines.append(f"| {row['colour']} | {row['psnr']:.2f} | {row['flicker_mean']:.2f} | {row['flicker_p95']:.2f} |")
        lines += ["", "Flicker: the ab change (Lab units) between consecutive frames at the same scene point."]
        for what, why in pan["missing"].items():
            lines.append(f"- no {what} row: {why}")
    text = "\n".join(lines) + "\n"
    (out / "guided.md").write_text(text)
    return text


def run_eval_guided(args) -> str:
    runner, _info, decoding = load_runner(args)
    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records = read_manifest(data)
    pairs = load_pairs(args.pairs, data, records)
    report = {"weights": str(args.weights), "decoding": decoding}
    report["guided"] = evaluate_guided(runner, data, records, pairs=pairs, size=args.size, render_size=args.render_size,
                                       hint_counts=tuple(args.hints), seeds=tuple(args.seeds), limit=args.limit, out=out,
                                       progress=not args.quiet)
    if not args.no_pan:
        report["pan"] = evaluate_pan(runner, data, args.pan_photo, temporal_smoothing=args.temporal_smoothing,
                                     render_size=args.render_size, size=args.size)
    return write_guided_report(report, out)  # the CLI prints it


def register(subparsers) -> None:
    p = subparsers.add_parser("eval-guided", help="measure guided colour (hints, references, video) against training-free baselines")
    add_model_arguments(p, out=Path("runs/eval_guided"), out_help="where the tables and contact sheets go")
    p.add_argument("--pairs", type=Path, default=DEFAULT_PAIRS, help="reference (c) pairs of held-out photos (JSON)")
    p.add_argument("--size", type=int, default=SIZE, help=f"long side of the photos (protocol: {SIZE})")
    p.add_argument("--hints", type=int, nargs="+", default=list(HINT_COUNTS), help="hint counts (protocol: 1 10 100)")
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help="hint seeds (protocol: 0 1 2)")
    p.add_argument("--limit", type=int, help="only the first N held-out photos")
    p.add_argument("--pan-photo", default=DEFAULT_PAN_PHOTO, help="the held-out photo the pan is cut from (relative to --data)")
    p.add_argument("--temporal-smoothing", type=float, default=0.5, help="the smoothing the pan's second row uses")
    p.add_argument("--no-pan", action="store_true", help="leave out the pan")
    add_decoding_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=run_eval_guided)
