"""Training settings: defaults, a JSON config file, and command-line overrides, in that order."""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class BaseSettings:
    photos: str = ""
    styles: str = ""
    run_dir: str = "runs/base"
    vgg: str = ""  # the encoder's VGG16 weights (`train import-vgg16`); not with --init, whose file has the encoder
    architecture: str = "default"  # "default" (VGG16 widths) or "tiny" (tests and smoke runs); --init: the file's
    model_config: dict = field(default_factory=dict)  # config fields to change (JSON), e.g. {"guided": true}
    steps: int = 3000
    batch: int = 4
    crop: int = 128
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    lr_encoder: float = 1e-5
    finetune_encoder: bool = False
    gan: str = "hinge"
    adv_start: int = 500  # generator pre-training steps before the adversarial losses switch on
    lambda_ce: float = 1.0
    lambda_hist: float = 1.0
    lambda_ab: float = 0.0  # squared error of the decoded ab (train.losses.ab_regression_loss); 0: not computed
    lambda_adv_color: float = 0.03
    lambda_content: float = 1.0
    lambda_style: float = 1.0
    lambda_adv_style: float = 0.03
    lambda_tv: float = 1.0
    rebalance: float = 1.0  # strength of the cross-entropy's class rebalancing: 1 Zhang et al.'s, 0 none
    palette_prob: float = 0.3
    degrade_prob: float = 0.0  # share of the photos whose grey input is an old-scan rendering (train.degrade)
    defocus_prob: float = 0.0  # share of the photo crops rendered with an out-of-focus background (train.defocus)
    train_style_decoder: bool = True  # false: the style decoder stays as the --init file has it, and so do its named styles (unless finetune_encoder)
    train_color_decoder: bool = True  # false: the colour decoder stays as the --init file has it (a style-decoder run)
    fresh_style_decoder: bool = False  # true with --init: the style decoder starts fresh instead of from the file
    color_decoder_parts: str = "all"  # "guidance": train only the guided decoder's guidance inputs, the rest stays as --init has it
    guidance_mix: dict = field(default_factory=dict)  # shares of simulated guidance (train.guidance_sim.GuidanceMix fields)
    seed: int = 0
    workers: int = 2
    amp: bool = True  # autocast where it is fast (train.amp): bf16 on a CPU with native bf16, bf16/fp16 on CUDA
    cache_images: bool = True  # keep the decoded, reduced images in memory instead of decoding every sample
    log_every: int = 10
    sample_every: int = 250
    checkpoint_every: int = 200
    max_minutes: float = 0.0  # > 0: stop cleanly (checkpoint, export) after the first step past this much training time
    export: str = ""  # also export the final weights here (fp16)
    export_every: int = 0  # > 0: also export fp16 weights to RUN_DIR/exports/step_NNNNNN.safetensors every this many steps
    init: str = ""  # start from a DualGAN weights file or a checkpoint (train.warm_start: across architectures)
    licence: str = "see README model card"
    extra: dict = field(default_factory=dict)

    @property
    def lambdas(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name.startswith("lambda_")}


def json_object(text: str) -> dict:
    """An argparse type: a JSON object such as '{"guided": true}'."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc.msg}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"guided\": true}}', got {text!r}")
    return value


def add_settings_arguments(parser: argparse.ArgumentParser, cls=BaseSettings) -> None:
    """One --option per field (None default, so only given options override the config file)."""
    parser.add_argument("--config", help="JSON file of settings (command-line options override it)")
    for f in dataclasses.fields(cls):
        if f.name == "extra":
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        elif f.type in ("dict", dict):
            parser.add_argument(flag, type=json_object, default=None, help="a JSON object")
        else:
            kind = {"int": int, "float": float, "str": str}.get(str(f.type), str)
            parser.add_argument(flag, type=kind, default=None, help=f"(default {f.default!r})")


def read_json_file(path: Path, what: str):
    """The JSON value in ``path``; a missing file or invalid JSON fails with one sentence naming it."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def settings_from_args(args: argparse.Namespace, cls=BaseSettings):
    values = {}
    if getattr(args, "config", None):
        path = Path(args.config)
        values = read_json_file(path, "settings file")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{path}: unknown settings {unknown}")
    for f in dataclasses.fields(cls):
        given = getattr(args, f.name, None)
        if given is not None:
            values[f.name] = given
    return cls(**values)
