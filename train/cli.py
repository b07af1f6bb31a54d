"""``python -m train``: fetch the open data, import VGG16, train the base model and styles, export."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import sys
from pathlib import Path

from .settings import BaseSettings, add_settings_arguments, settings_from_args


def _base(args) -> int:
    from .base import train_base

    settings = settings_from_args(args, BaseSettings)
    if not settings.photos:
        raise ValueError("--photos (a folder of images) is required")
    ckpt = train_base(settings, resume=args.resume)
    print(f"checkpoint: {ckpt}")
    return 0


def _style(args) -> int:
    from .style import train_style

    if args.into_model and args.out.suffix.lower() != ".safetensors":
        raise ValueError(f"{args.out}: the output must be a .safetensors file")
    out = train_style(
        base=args.base, painting=args.style, name=args.name, content=args.content, out=args.out, into_model=args.into_model,
        steps=args.steps, batch=args.batch, crop=args.crop, lr=args.lr, source=args.source, licence=args.licence, seed=args.seed,
        amp=args.amp,
    )
    print(f"wrote {out}")
    return 0


def _export(args) -> int:
    from gan_core.precision import DTYPES

    from .base import export_from_model
    from .checkpoint import read_checkpoint_meta, read_module_state
    from .warm_start import checkpoint_generator

    meta = read_checkpoint_meta(args.checkpoint)
    settings = BaseSettings(**meta["settings"])
    model, styles = checkpoint_generator(args.checkpoint)
    model.load_state_dict(read_module_state(args.checkpoint, "generator"), strict=True)
    if args.temperature is not None:
        # Decoding only: the annealed mean's temperature trades vividness (low) against the mean's
        # safer, browner colours (high); no weight depends on it.
        model.config = dataclasses.replace(model.config, annealed_temperature=args.temperature)
    export_from_model(model, settings, args.out, steps=int(meta["step"]), dtype=DTYPES[args.dtype], styles=styles)
    print(f"exported {args.out} (step {meta['step']}, {args.dtype})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)

    for module in ("open_data", "data_pack", "vgg16_import", "evaluate", "distill", "step_profile", "decoder_parts",
                   "reference_bank_probe", "average"):
        importlib.import_module(f"{__package__}.{module}").register(sub)

    p = sub.add_parser("base", help="train the shared model (both decoders) on photos and paintings")
    add_settings_arguments(p, BaseSettings)
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir exactly where it stopped")
    p.set_defaults(func=_base)

    p = sub.add_parser("style", help="train a named style adapter for a trained model (minutes on a CPU)")
    p.add_argument("--base", type=Path, required=True, help="the DualGAN weights file to add the style to")
    p.add_argument("--style", type=Path, required=True, help="the painting (an image file)")
    p.add_argument("--name", required=True, help="the style's name (letters, digits, '_' or '-')")
    p.add_argument("--content", type=Path, required=True, help="a folder of content photos to train on")
    p.add_argument("--out", type=Path, required=True, help="the style file to write (or the model copy with --into-model)")
    p.add_argument("--into-model", action="store_true", help="write a copy of the model file with the style inside")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--crop", type=int, default=160)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--source", default="", help="where the painting comes from (stored with the style)")
    p.add_argument("--licence", default="unknown", help="the painting's licence (stored with the style)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True,
                   help="bf16 autocast on a CPU with native bf16 (default); --no-amp: fp32")
    p.set_defaults(func=_style)

    p = sub.add_parser("export", help="export a training checkpoint to the DualGAN weights format")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--dtype", choices=["fp16", "bf16", "fp32"], default="fp16", help="the stored weights' type")
    p.add_argument("--temperature", type=float, help="annealed-mean temperature stored in the file (0 < T <= 1; default: keep 0.38)")
    p.set_defaults(func=_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = args.func(args)  # a subcommand's exit status, or a line to print on success
        if isinstance(result, str):
            print(result)
            return 0
        return int(result or 0)
    except (ValueError, FileNotFoundError, FileExistsError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
