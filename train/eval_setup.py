"""The model under evaluation: a weights file and the decoding settings to compare, shared by ``train eval``
and ``train eval-guided`` so both read a file the same way and report the settings they used.

Decoding settings change no weight: the annealed mean's temperature, the confidence-aware chroma
shrinking (``chroma_confidence`` in the weights' config, where this version of the config has it)
and the guided filter that carries the chroma to full resolution.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from gan_core.precision import choose_dtype, prepare
from gan_core.runner import DualGANRunner
from gan_core.weights import load_weights

RUNNER_DEFAULTS = DualGANRunner.__init__.__kwdefaults__


def add_model_arguments(p, *, out: Path, out_help: str) -> None:
    """The weights under evaluation, the data folder, the report folder and the render size."""
    p.add_argument("weights", type=Path, help="a DualGAN .safetensors file")
    p.add_argument("--data", type=Path, required=True, help="the folder made by `python -m train fetch-data`")
    p.add_argument("--out", type=Path, default=out, help=out_help)
    p.add_argument("--render-size", type=int, default=512, help="the colour network's render size (default 512)")
    p.add_argument("--dtype", choices=("fp32", "bf16", "auto"), default="fp32",
                   help="the precision the network runs in: fp32 (default: the same figures on every machine) or "
                        "what the nodes and the CLI pick on this CPU (auto: bf16 where the CPU has native bf16)")


def add_decoding_arguments(p) -> None:
    p.add_argument("--temperature", type=float, nargs="+", metavar="T",
                   help="override the file's annealed-mean temperature (0..1; lower keeps more of each pixel's most "
                        "likely colour); several values, in `train eval` only, score the automatic colourisation "
                        "once per value, side by side")
    p.add_argument("--chroma-confidence", type=float, nargs="+", metavar="X",
                   help="override the file's confidence-aware chroma shrinking (0 = off, 1 = full); several values, "
                        "in `train eval` only, score the automatic colourisation once per value, side by side")
    p.add_argument("--chroma-radius", type=int, default=RUNNER_DEFAULTS["chroma_radius"],
                   help="guided-filter radius for the chroma (default: the runner's)")
    p.add_argument("--chroma-eps", type=float, default=RUNNER_DEFAULTS["chroma_eps"],
                   help="guided-filter regulariser for the chroma (default: the runner's)")
    p.add_argument("--guided-chroma-radius", type=int, default=RUNNER_DEFAULTS["guided_chroma_radius"],
                   help="guided-filter radius for the chroma with hints or references (default: the runner's)")
    p.add_argument("--guided-chroma-eps", type=float, default=RUNNER_DEFAULTS["guided_chroma_eps"],
                   help="guided-filter regulariser for the chroma with hints or references (default: the runner's)")
    p.add_argument("--hint-range-sigmas", type=float, nargs=2, metavar=("NEAR", "FAR"),
                   default=list(RUNNER_DEFAULTS["hint_range_sigmas"]),
                   help="how far apart in lightness (0..1) two pixels may be and still share a hint, near it and far "
                        "from it (default: the runner's)")
    p.add_argument("--hint-space-sigmas", type=float, nargs="+", metavar="SIGMA",
                   default=list(RUNNER_DEFAULTS["hint_space_sigmas"]),
                   help="the spatial sigmas hints spread with, as shares of the short side (default: the runner's)")
    p.add_argument("--reference-lightness-weight", type=float, default=RUNNER_DEFAULTS["reference_lightness_weight"],
                   help="how strongly a reference match must agree in lightness (0 = features only; default: the runner's)")


def config_fields(model) -> set[str]:
    return {f.name for f in dataclasses.fields(model.config)}


def with_decoding(model, **overrides):
    """The model with config fields replaced (decoding only); a field this config lacks is one clear error."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(overrides) - config_fields(model))
    if unknown:
        raise ValueError(f"this version of the weights config has no field {', '.join(unknown)}; "
                         "it cannot be overridden here")
    if overrides:
        model.config = dataclasses.replace(model.config, **overrides)
    return model


def one_value(values: list[float] | None, flag: str) -> float | None:
    """The one value of a decoding flag that ``train eval`` alone accepts several of; None when not given."""
    if not values:
        return None
    if len(values) > 1:
        raise ValueError(f"{flag} takes one value here; `train eval` compares several")
    return values[0]


def load_runner(args, chroma_confidence: float | None = None,
                temperature: float | None = None) -> tuple[DualGANRunner, object, dict]:
    """(runner, weights info, the decoding settings in force) for parsed ``args``. ``chroma_confidence`` and
    ``temperature`` pick one of the values given, where several were (``train eval``); left out, each flag's
    one value is used."""
    weights = Path(args.weights)
    model, info = load_weights(weights)
    if chroma_confidence is None:
        chroma_confidence = one_value(args.chroma_confidence, "--chroma-confidence")
    if temperature is None:
        temperature = one_value(args.temperature, "--temperature")
    with_decoding(model, annealed_temperature=temperature, chroma_confidence=chroma_confidence)
    if args.dtype != "fp32":
        cpu = torch.device("cpu")
        model = prepare(model, cpu, choose_dtype(args.dtype, cpu))
    runner = DualGANRunner(model, chroma_radius=args.chroma_radius, chroma_eps=args.chroma_eps,
                           guided_chroma_radius=args.guided_chroma_radius, guided_chroma_eps=args.guided_chroma_eps,
                           hint_range_sigmas=tuple(args.hint_range_sigmas), hint_space_sigmas=tuple(args.hint_space_sigmas),
                           reference_lightness_weight=args.reference_lightness_weight)
    return runner, info, decoding_settings(runner)


def decoding_settings(runner: DualGANRunner) -> dict:
    config = runner.model.config
    settings = {"temperature": config.annealed_temperature, "chroma_radius": runner.chroma_radius,
                "chroma_eps": runner.chroma_eps, "guided_chroma_radius": runner.guided_chroma_radius,
                "guided_chroma_eps": runner.guided_chroma_eps, "hint_range_sigmas": list(runner.hint_range_sigmas),
                "hint_space_sigmas": list(runner.hint_space_sigmas),
                "reference_lightness_weight": runner.reference_lightness_weight,
                "dtype": str(runner.dtype).removeprefix("torch.")}
    if "chroma_confidence" in config_fields(runner.model):
        settings["chroma_confidence"] = config.chroma_confidence
    return settings
