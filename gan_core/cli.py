"""``python -m gan_core``: colourise, stylise and blend image files with DualGAN weights.

Bad input (a missing or unreadable file, a broken weights file, an unknown style, a bad option)
ends with exit code 2 and one sentence on stderr. The default weights are the ones shipped in
gan_core/assets; the environment variable DUALGAN_DEFAULT_WEIGHTS points elsewhere.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from .hints import hints_or_none
from .imageio import ImageReadError, collect_inputs, read_image, write_image
from .precision import DTYPES, choose_dtype, prepare
from .runner import DualGANRunner
from .shipped import SHIPPED_WEIGHTS
from .style_path import PRESERVE_COLOR, StyleSpec, trained_styles_available
from .weights import WeightsError, inspect_weights, load_style_file, load_weights

logger = logging.getLogger(__name__)


class UsageError(ValueError):
    """Bad command-line input; printed as one sentence with exit code 2."""


def default_weights() -> Path:
    return Path(os.environ.get("DUALGAN_DEFAULT_WEIGHTS", SHIPPED_WEIGHTS))


def _device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but no CUDA device is available")
    return torch.device(choice)


def _load_model(args) -> DualGANRunner:
    path = Path(args.weights) if args.weights else default_weights()
    if not args.weights and not path.is_file():
        raise UsageError(f"no default weights are installed yet ({path} is missing); train them with "
                         "`python -m train base ... --export FILE` and pass --weights FILE")
    model, _ = load_weights(path)
    for style_file in args.style_file or []:
        load_style_file(style_file, model)
    device = _device(args.device)
    return DualGANRunner(prepare(model, device, choose_dtype(args.dtype, device)))


def _outputs(inputs: list[Path], out: Path, suffix: str) -> list[Path]:
    if len(inputs) == 1 and out.suffix:
        return [out]
    if out.suffix and out.exists() and not out.is_dir():
        raise UsageError(f"{out} is a file, but {len(inputs)} inputs need an output folder")
    return [out / f"{p.stem}{suffix}.png" for p in inputs]


def _style(runner: DualGANRunner, args, strength: float) -> StyleSpec:
    if not args.style and not args.style_image:
        raise UsageError(f"give --style-image IMAGE or --style NAME ({trained_styles_available(runner.model)})")
    image = None if args.style else read_image(args.style_image)[0]
    return runner.style_spec(name=args.style or "", image=image, strength=strength,
                             network="fast" if getattr(args, "fast", False) else "full")


def _check_unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise UsageError(f"{name} must be between 0 and 1, got {value}")


def _run(args, job) -> int:
    inputs = collect_inputs(args.inputs)
    if not inputs:
        raise UsageError(f"no images found in {', '.join(map(str, args.inputs))}")
    for path in inputs:
        if not path.is_file():
            raise UsageError(f"{path}: no such image file")
    outputs = _outputs(inputs, Path(args.output), f"_{args.command}")
    runner = _load_model(args)
    with torch.inference_mode():
        prepared = job(runner)
        for src, dst in tqdm(list(zip(inputs, outputs)), desc=args.command, unit="image", disable=args.quiet):
            rgb, alpha = read_image(src)
            for name, image in prepared(runner, rgb).items():
                target = dst if name == "" else dst.with_name(f"{dst.stem}_{name}{dst.suffix}")
                write_image(target, image, alpha)
    return 0


VIDEO_GROUP = 16  # frames coloured together; the last output frame is a reference for the next group


def _read_hints(path: str | None) -> torch.Tensor | None:
    """The hints file as RGB, or RGBA when it has transparency (its opaque pixels are the hints)."""
    if not path:
        return None
    rgb, alpha = read_image(path)
    return rgb if alpha is None else torch.cat([rgb, alpha], dim=1)


def cmd_colorize(args) -> int:
    palette_rgb = read_image(args.palette)[0] if args.palette else None
    references = [read_image(path)[0] for path in args.reference or []]
    hints_rgb = _read_hints(args.hints)
    if not 0.0 <= args.temporal_smoothing <= 0.95:
        raise UsageError(f"--temporal-smoothing must be between 0 and 0.95, got {args.temporal_smoothing}")

    def job(runner):
        palette = runner.palette_from_image(palette_rgb) if palette_rgb is not None else None

        def make(r, rgb):
            hints = hints_or_none(hints_rgb, rgb, source=args.hints)
            return {"": r.colorize(rgb, render_size=args.render_size, palette=palette, saturation=args.saturation,
                                   hints=hints, reference=references or None)}

        return make

    if args.video:
        return _run_video(args, references, palette_rgb, hints_rgb)
    return _run(args, job)


def _run_video(args, references: list[torch.Tensor], palette_rgb: torch.Tensor | None, hints_rgb: torch.Tensor | None) -> int:
    """The inputs as consecutive frames (sorted by name), coloured in groups with the previous output as a reference."""
    inputs = sorted(collect_inputs(args.inputs), key=lambda p: p.name)
    if not inputs:
        raise UsageError(f"no images found in {', '.join(map(str, args.inputs))}")
    outputs = _outputs(inputs, Path(args.output), f"_{args.command}")
    runner = _load_model(args)
    palette = runner.palette_from_image(palette_rgb) if palette_rgb is not None else None
    first = None
    last_output = None
    with torch.inference_mode():
        for start in tqdm(range(0, len(inputs), VIDEO_GROUP), desc="video", unit="group", disable=args.quiet):
            group = inputs[start : start + VIDEO_GROUP]
            frames = [read_image(path) for path in group]
            for path, (rgb, _) in zip(group, frames):
                first = first or (path, tuple(rgb.shape[-2:]))
                if tuple(rgb.shape[-2:]) != first[1]:
                    raise UsageError(f"--video frames must all have one size: {path} is {rgb.shape[-1]} x {rgb.shape[-2]}, "
                                     f"{first[0]} is {first[1][1]} x {first[1][0]}")
            batch = torch.cat([rgb for rgb, _ in frames])
            hints = hints_or_none(hints_rgb, batch[:1], source=args.hints)
            refs = references + ([last_output] if last_output is not None else [])
            out = runner.colorize(batch, render_size=args.render_size, palette=palette, saturation=args.saturation,
                                  hints=hints, reference=refs or None, video=True, temporal_smoothing=args.temporal_smoothing)
            for dst, image, (_, alpha) in zip(outputs[start:], out.split(1), frames):
                write_image(dst, image, alpha)
            last_output = out[-1:]
    return 0


def cmd_stylize(args) -> int:
    _check_unit("--strength", args.strength)

    def job(runner):
        spec = _style(runner, args, args.strength)
        return lambda r, rgb: {"": r.stylize(rgb, spec, render_size=args.render_size, preserve_color=args.preserve_color)}

    return _run(args, job)


def cmd_blend(args) -> int:
    for name in ("lambda_content", "lambda_style", "lambda_color"):
        _check_unit("--" + name.replace("_", "-"), getattr(args, name))

    def job(runner):
        spec = _style(runner, args, args.lambda_style)

        def make(r, rgb):
            blend, colour, style = r.blend(rgb, spec, lambda_content=args.lambda_content, lambda_color=args.lambda_color,
                                           render_size=args.render_size)
            return {"": blend, "colorized": colour, "stylized": style} if args.also_components else {"": blend}

        return make

    return _run(args, job)


def cmd_info(args) -> int:
    info = inspect_weights(args.weights)
    print(json.dumps({
        "file": str(info.path),
        "stored_dtype": info.stored_dtype,
        "licence": info.licence,
        "config": json.loads(info.config.to_json()),
        "styles": info.styles,
        "training": info.training,
    }, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gan_core", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("inputs", nargs="+", metavar="IN", help="image files or folders (searched recursively)")
        p.add_argument("output", metavar="OUT", help="output file (one input) or folder (several)")
        p.add_argument("--weights", help="DualGAN .safetensors file (default: the shipped weights, or $DUALGAN_DEFAULT_WEIGHTS)")
        p.add_argument("--style-file", action="append", help="add the styles of a separate style file (repeatable)")
        p.add_argument("--render-size", type=int, default=512, help="short side the networks run at; 0 = full size, tiled (default 512)")
        p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where to run (default auto)")
        p.add_argument("--dtype", choices=["auto", *DTYPES], default="auto",
                       help="network precision (default auto: fp16 on CUDA; bf16 on a CPU with native bf16 (AVX512-BF16, AMX), else fp32)")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    def style_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--style-image", help="a painting whose style to copy")
        p.add_argument("--style", help="the name of a trained style in the weights or a --style-file")

    p = sub.add_parser("colorize", help="give black-and-white photos natural colours (keeps size and luminance)")
    common(p)
    p.add_argument("--saturation", type=float, default=1.0, help="colour strength: 0 grey, 1 as predicted (default), 2 twice")
    p.add_argument("--palette", help="an image whose overall colours steer the result")
    p.add_argument("--hints", help="colour hints: an RGBA image whose opaque pixels are hints, or an RGB image (e.g. strokes "
                   "painted over the photo) whose painted, clearly coloured pixels are; scaled to each input")
    p.add_argument("--reference", action="append", metavar="FILE",
                   help="a colour photo to borrow colours from, region by region (repeatable: all are one memory)")
    p.add_argument("--video", action="store_true",
                   help="the inputs are consecutive frames (sorted by name): each frame also borrows from the previous output")
    p.add_argument("--temporal-smoothing", type=float, default=0.0,
                   help="0..0.95: carry colour over from the previous frame where the picture is still (with --video)")
    p.set_defaults(func=cmd_colorize)

    p = sub.add_parser("stylize", help="repaint images in the style of a painting")
    common(p)
    style_options(p)
    p.add_argument("--strength", type=float, default=1.0, help="style strength 0..1 (default 1)")
    p.add_argument("--fast", action="store_true",
                   help="use the weights' distilled fast style network (style images only; see the model card in docs/)")
    p.add_argument("--preserve-color", choices=PRESERVE_COLOR, default="none",
                   help="none: the style's colours; original: the input's; colorized: the colour decoder's")
    p.set_defaults(func=cmd_stylize)

    p = sub.add_parser("blend", help="blend colour and style by the three lambdas, from one encoder pass")
    common(p)
    style_options(p)
    p.add_argument("--lambda-content", type=float, default=0.5, help="0 stylised luminance .. 1 original luminance")
    p.add_argument("--lambda-style", type=float, default=1.0, help="style strength 0..1")
    p.add_argument("--lambda-color", type=float, default=0.5, help="0 the style's colours .. 1 the colour decoder's")
    p.add_argument("--also-components", action="store_true", help="also write *_colorized and *_stylized images")
    p.set_defaults(func=cmd_blend)

    p = sub.add_parser("info", help="print a weights file's metadata (config, styles, training, licence)")
    p.add_argument("weights", help="a DualGAN .safetensors file")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (UsageError, WeightsError, ImageReadError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
