"""``python -m train sweep-guidance-fusion WEIGHTS --data DIR``: choose the guided decoding settings on
TRAINING photos (never the held-out ones ``train eval-guided`` reports on): how far hints and references
override the decoder's colours (``gan_core.guidance.GuidanceFusion``), how far in lightness a hint spreads
(the runner's ``hint_range_sigmas``), how much a reference match must agree in lightness
(``reference_lightness_weight``) and the guided filter that joins guided chroma to the full-resolution
luminance (``guided_chroma_radius``, ``guided_chroma_eps``).

Hint settings are scored on the protocol's 1, 10 and 100 hints (seed 0), reference settings on references (a)
and (b) of ``train eval-guided``, the guided filter on all four. Each knob is swept on its own with the
others at the runner's defaults. Photos with almost no colour of their own are skipped (they make no
reference).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from gan_core.color import chroma, grey_rgb_from_lightness, rgb_to_lab
from gan_core.guidance import GuidanceFusion
from gan_core.references import GREY_REFERENCE_CHROMA

from . import metrics
from .eval_guided import SIZE, hint_map, reference_mirrored_crop, reference_mirrored_left, sample_hints
from .eval_images import held_out_photos, load_image, read_manifest, write_csv
from .eval_setup import RUNNER_DEFAULTS, add_decoding_arguments, add_model_arguments, load_runner

POWERS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)
HINT_COUNTS = (1, 10, 100)
HINT_MATCH_POWERS = (0.25, 0.5, 1.0, 2.0, 4.0, 16.0)
SPACE_SIGMAS = ((0.03, 0.1, 0.3, 1.0), (0.02, 0.05, 0.1, 0.3, 1.0), (0.015, 0.03, 0.1, 0.3, 1.0), (0.01, 0.03, 0.1, 0.3, 1.0))
RANGE_SIGMAS = ((0.03, 0.03), (0.02, 0.08), (0.03, 0.08), (0.05, 0.08), (0.08, 0.08), (0.03, 0.15))  # (near, far)
LIGHTNESS_WEIGHTS = (0.0, 4.0, 10.0, 25.0, 50.0, 100.0)
GUIDED_CHROMA = ((2, 1e-3), (4, 1e-3), (4, 1e-4), (8, 1e-2))  # (radius, eps) of the guided chroma filter
HINT_CONDITIONS = tuple(f"hints_{n}" for n in HINT_COUNTS)
REFERENCE_CONDITIONS = ("reference_a", "reference_b")


@dataclass(frozen=True)
class Knob:
    """One decoding setting swept on its own (the others at the runner's defaults), on the conditions it affects.
    ``attributes`` are the runner attributes a value sets (a tuple value sets one each); none means the knob
    is a field of the runner's ``GuidanceFusion``."""

    name: str
    values: tuple
    conditions: tuple[str, ...]
    attributes: tuple[str, ...] = ()
    label_format: str = "{:g}"

    def apply(self, runner, value) -> None:
        if not self.attributes:
            runner.guidance_fusion = GuidanceFusion(**{self.name: value})
            return
        for attribute, part in zip(self.attributes, value if len(self.attributes) > 1 else (value,)):
            setattr(runner, attribute, part)

    def reset(self, runner) -> None:
        """The runner back at its defaults for this knob."""
        if not self.attributes:
            runner.guidance_fusion = GuidanceFusion()
        for attribute in self.attributes:
            setattr(runner, attribute, RUNNER_DEFAULTS[attribute])

    def label(self, value) -> str:
        if self.label_format == "list":  # a tuple of any length
            return ", ".join(f"{v:g}" for v in value)
        return self.label_format.format(*value) if isinstance(value, tuple) else self.label_format.format(value)


def knobs(powers=POWERS) -> dict[str, Knob]:
    return {k.name: k for k in (
        Knob("hint_power", tuple(powers), HINT_CONDITIONS),
        Knob("reference_power", tuple(powers), REFERENCE_CONDITIONS),
        Knob("hint_match_power", HINT_MATCH_POWERS, HINT_CONDITIONS),
        Knob("hint_space_sigmas", SPACE_SIGMAS, HINT_CONDITIONS, ("hint_space_sigmas",), "list"),
        Knob("hint_range_sigmas", RANGE_SIGMAS, HINT_CONDITIONS, ("hint_range_sigmas",), "near {:g}, far {:g}"),
        Knob("reference_lightness_weight", LIGHTNESS_WEIGHTS, REFERENCE_CONDITIONS, ("reference_lightness_weight",)),
        Knob("guided_chroma", GUIDED_CHROMA, HINT_CONDITIONS + REFERENCE_CONDITIONS,
             ("guided_chroma_radius", "guided_chroma_eps"), "radius {}, eps {:g}"))}


@torch.no_grad()
def sweep(runner, data: Path, *, photos: int, size: int = SIZE, render_size: int = 512, powers=POWERS,
          only: list[str] | None = None, progress: bool = True) -> list[dict]:
    records = held_out_photos(read_manifest(data), split="train")
    if not records:
        raise ValueError(f"{data}: the manifest lists no training photos")
    records = records[:: max(1, len(records) // photos)][:photos]  # a spread over the whole training list
    chosen = [k for name, k in knobs(powers).items() if only is None or name in only]
    gains: dict[tuple[str, str, str], list[float]] = {}
    for rec in tqdm(records, desc="sweep", disable=not progress):
        real = load_image(data / rec["file"], size)
        lab = rgb_to_lab(real)
        if float(chroma(lab[:, 1:]).mean()) < 2 * GREY_REFERENCE_CHROMA:
            continue
        grey = grey_rgb_from_lightness(lab[:, :1])
        grey_psnr = float(metrics.psnr(grey, real))
        guidance = {f"hints_{n}": {"hints": hint_map(sample_hints(real, n, 0, rec["file"]))} for n in HINT_COUNTS}
        guidance["reference_a"] = {"reference": [reference_mirrored_crop(real)]}
        guidance["reference_b"] = {"reference": [reference_mirrored_left(real)]}
        for knob in chosen:
            for value in knob.values:
                knob.apply(runner, value)
                for condition in knob.conditions:
                    out = runner.colorize(grey, render_size=render_size, **guidance[condition])
                    key = (knob.name, knob.label(value), condition)
                    gains.setdefault(key, []).append(float(metrics.psnr(out, real)) - grey_psnr)
                knob.reset(runner)
    return [{"knob": knob, "value": value, "condition": condition, "photos": len(values), "gain_db": metrics.mean(values)}
            for (knob, value, condition), values in gains.items()]


def write_table(rows: list[dict], photos: int) -> str:
    conditions = list(dict.fromkeys(r["condition"] for r in rows))
    lines = [f"Guided decoding on {photos} TRAINING photos (long side {SIZE} px): PSNR gain over the grey input, dB",
             "", "| knob | value | " + " | ".join(conditions) + " |", "|---|---|" + "---|" * len(conditions)]
    table = {(r["knob"], r["value"], r["condition"]): r["gain_db"] for r in rows}
    for knob in dict.fromkeys(r["knob"] for r in rows):
        for value in dict.fromkeys(r["value"] for r in rows if r["knob"] == knob):
            cells = [f"{table[(knob, value, c)]:+.2f}" if (knob, value, c) in table else "" for c in conditions]
            lines.append(f"| {knob} | {value} | " + " | ".join(cells) + " |")
    defaults = GuidanceFusion()
    near, far = RUNNER_DEFAULTS["hint_range_sigmas"]
    lines += ["", f"In use: hint_power {defaults.hint_power:g}, reference_power {defaults.reference_power:g}, "
              f"hint_match_power {defaults.hint_match_power:g}, "
              f"hint_space_sigmas {', '.join(f'{v:g}' for v in RUNNER_DEFAULTS['hint_space_sigmas'])}, "
              f"hint_range_sigmas near {near:g}, far {far:g}, "
              f"reference_lightness_weight {RUNNER_DEFAULTS['reference_lightness_weight']:g}, guided_chroma radius "
              f"{RUNNER_DEFAULTS['guided_chroma_radius']}, eps {RUNNER_DEFAULTS['guided_chroma_eps']:g}."]
    return "\n".join(lines) + "\n"


def run_sweep(args) -> str:
    runner, _info, _decoding = load_runner(args)
    if not runner.model.guided:
        raise ValueError(f"{args.weights}: these weights predate guided colour; there is nothing to fuse")
    rows = sweep(runner, Path(args.data), photos=args.photos, render_size=args.render_size, only=args.knobs,
                 progress=not args.quiet)
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
    p.add_argument("--knobs", nargs="+", choices=list(knobs()), help="sweep only these settings (default: all)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=run_sweep)
