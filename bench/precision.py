"""``python -m bench.precision``: how far fp16, bf16 and channels_last move the outputs from fp32.

Colourises and stylises real images (the shipped example photo, or every image in ``--images``) at
render size 1024 with the shipped weights, once per precision on ``--device`` (and once in 256 px
tiles), and prints the PSNR of each output against the untiled fp32 output on the CPU (higher is closer; above about 45 dB the
difference is below 8-bit quantisation for most pixels).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from gan_core.imageio import collect_inputs, read_image
from gan_core import DualGANRunner, StyleSpec
from gan_core.precision import DTYPES, LAYOUTS, prepare
from gan_core.shipped import EXAMPLE_IMAGE, SHIPPED_WEIGHTS
from gan_core.weights import load_weights
from train.metrics import psnr

VARIANTS = ("fp32", "fp32+tiled", "fp16", "bf16", "fp16+channels_last", "bf16+channels_last", "fp16+tiled")
TILED = 256  # tile side of the "+tiled" variants: small enough to tile the example photo


def worst_psnr(got: list[torch.Tensor], reference: list[torch.Tensor]) -> float:
    """The lowest PSNR (dB, capped at 100 for identical images) of any image against its reference."""
    return min(float(psnr(g.float().cpu(), r.float().cpu()).min()) for g, r in zip(got, reference))


def outputs(weights: Path, variant: str, device: torch.device, images: list[torch.Tensor], render: int):
    dtype_name, *flags = variant.split("+")
    model, _ = load_weights(weights)
    layout = LAYOUTS["channels_last" if "channels_last" in flags else "contiguous"]
    model = prepare(model, device, DTYPES[dtype_name], layout)
    runner = DualGANRunner(model, tile=TILED) if "tiled" in flags else DualGANRunner(model)
    code, adapter = runner.style_from_name(runner.model.style_names[0])
    with torch.inference_mode():
        return [(runner.colorize(x, render_size=render), runner.stylize(x, StyleSpec(code, adapter, 1.0), render_size=render))
                for x in images]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.precision", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=SHIPPED_WEIGHTS)
    parser.add_argument("--images", nargs="*", default=[str(EXAMPLE_IMAGE)])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--render-size", type=int, default=1024)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    images = [read_image(p)[0] for p in collect_inputs(args.images)]
    reference = outputs(args.weights, "fp32", torch.device("cpu"), images, args.render_size)
    print(f"{len(images)} image(s), render size {args.render_size}, device {device}; PSNR (dB) against fp32 on the CPU")
    print("| precision | Colorize PSNR (worst image) | Style Transfer PSNR (worst image) |")
    print("|---|---|---|")
    for variant in VARIANTS:
        if device.type == "cpu" and variant.startswith("fp16"):
            continue  # fp16 convolutions are not a CPU path (the loaders run fp32 instead)
        got = outputs(args.weights, variant, device, images, args.render_size)
        colour = worst_psnr([g[0] for g in got], [r[0] for r in reference])
        style = worst_psnr([g[1] for g in got], [r[1] for r in reference])
        print(f"| {variant} | {colour:.1f} | {style:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
