"""``python -m bench.cancel``: how soon Cancel stops a job, from the interrupt flag to the exception.

Runs ``DualGANRunner.stylize`` and ``colorize`` at render size 0 (the input's full size, tiled when
large) in a worker thread, as ComfyUI runs a prompt, with a ``check_interrupt`` callback that raises
once a flag is set, as ComfyUI's ``throw_exception_if_processing_interrupted`` does. The main thread
sets the flag ``--after`` seconds into the job (a comma-separated list gives several moments); the
latency is the time from the flag to the exception reaching the worker. The table gives its median
and maximum over ``--repeat`` runs per job, size and moment, and the longest gap between two interrupt
checks before the flag. ``--whole`` also runs each job once to the end and reports the longest gap
between two checks over the whole run (the worst latency a flag at any moment could meet) and the
functions that made the two checks, and that gap's share of the run, which carries over to an idle
machine better than the milliseconds do when other work slows the run. The input is random noise and the style a random 256 x 256 image;
the cost does not depend on the content.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from gan_core.shipped import SHIPPED_WEIGHTS

from .__main__ import SIZES

QUICK_SIZES = {"96x128": (96, 128)}
PACKAGE_DIR = Path(__file__).resolve().parents[1] / "gan_core"


class Interrupted(Exception):
    """What the check raises once the flag is set (ComfyUI raises its InterruptProcessingException)."""


def _caller() -> str:
    """The innermost gan_core function on the stack below the check (``module.function``)."""
    frame = sys._getframe(2)
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if path.parent == PACKAGE_DIR and path.stem != "interrupts" and frame.f_code.co_name != "<lambda>":
            return f"{path.stem}.{frame.f_code.co_name}"
        frame = frame.f_back
    return "?"


@dataclass
class Flag:
    """An interrupt flag shared by two threads, and the times of every check made against it."""

    start: float = field(default_factory=time.perf_counter)
    raised_at: float | None = None
    checks: list[tuple[float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def raise_flag(self) -> None:
        with self.lock:
            self.raised_at = time.perf_counter()

    def check(self) -> None:
        self.checks.append((time.perf_counter(), _caller()))
        with self.lock:
            if self.raised_at is not None:
                raise Interrupted


@dataclass
class Outcome:
    latency: float | None  # seconds from the flag to the exception; None when the job ended first
    elapsed: float  # seconds from the start to the exception or the end
    checks: int  # checks made before the flag (all of them for a whole run)
    longest_gap: float  # seconds between two checks before the flag (the start and, without a flag, the end count)
    where: str  # the functions that made the two checks around the longest gap
    runners_up: list[tuple[float, str]]  # the next two gaps and their checks

    @property
    def share(self) -> float:
        """The longest gap's share of the run."""
        return self.longest_gap / self.elapsed if self.elapsed > 0 else 0.0


def _gaps(start: float, checks: list[tuple[float, str]], until: float | None, end: float) -> list[tuple[float, str]]:
    """The gaps between two checks before ``until`` (the flag), or up to ``end`` without a flag, longest
    first, each with the functions that made its two checks."""
    points = [(start, "start")] + [c for c in checks if until is None or c[0] <= until]
    if until is None:
        points.append((end, "end"))
    return sorted(((b[0] - a[0], f"{a[1]} -> {b[1]}") for a, b in zip(points, points[1:])), reverse=True)


def run_once(call, after: float | None, device) -> Outcome:
    """``call(check)`` in a worker thread; the flag goes up ``after`` seconds in (never when None)."""
    import torch

    flag = Flag()
    done = threading.Event()
    result: dict = {}

    def work():
        try:
            with torch.inference_mode():  # thread-local, so entered in the worker
                call(flag.check)
                if device.type == "cuda":
                    torch.cuda.synchronize()
        except Interrupted:
            result["caught"] = time.perf_counter()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            result["error"] = exc
        finally:
            result.setdefault("end", time.perf_counter())
            done.set()

    flag.start = time.perf_counter()
    worker = threading.Thread(target=work, name="dualgan-job", daemon=True)
    worker.start()
    if after is not None and not done.wait(after):
        flag.raise_flag()
    worker.join()
    if "error" in result:
        raise result["error"]
    caught, raised = result.get("caught"), flag.raised_at
    latency = caught - raised if caught is not None and raised is not None else None
    gaps = _gaps(flag.start, flag.checks, raised, result["end"]) or [(0.0, "")]
    checks = sum(1 for t, _ in flag.checks if raised is None or t <= raised)
    return Outcome(latency, result["end"] - flag.start, checks, *gaps[0], gaps[1:3])


def make_jobs(weights: str, device_name: str, dtype: str, jobs: list[str]):
    """``{job: (size) -> call(check)}`` for a model loaded once; each call builds the runner with the check."""
    import torch

    from gan_core import DualGANRunner
    from gan_core.precision import choose_dtype, prepare
    from gan_core.weights import load_weights

    device = torch.device(device_name)
    model, _ = load_weights(weights)
    model = prepare(model, device, choose_dtype(dtype, device))
    torch.manual_seed(0)
    style = DualGANRunner(model).style_spec(image=torch.rand(1, 3, 256, 256))
    images: dict[tuple[int, int], torch.Tensor] = {}

    def image(size):
        return images.setdefault(size, torch.rand(1, 3, *size))

    table = {
        "stylize": lambda size: lambda check: DualGANRunner(model, check_interrupt=check).stylize(
            image(size), style, render_size=0),
        "colorize": lambda size: lambda check: DualGANRunner(model, check_interrupt=check).colorize(
            image(size), render_size=0),
    }
    return {job: table[job] for job in jobs}, device, next(model.parameters()).dtype


def _cpu_name() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return platform.machine()
    return next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")),
                platform.machine())


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cancel", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=str(SHIPPED_WEIGHTS))
    parser.add_argument("--size", default="12mp", help=f"comma-separated, from {', '.join(SIZES)}")
    parser.add_argument("--after", default="2.0", help="seconds into the job the flag goes up; comma-separated for several")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", default="stylize,colorize", help="comma-separated: stylize, colorize")
    parser.add_argument("--whole", action="store_true", help="also run each job once to the end and report its longest gap")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto", help="auto (what the nodes pick), fp32, bf16, fp16")
    parser.add_argument("--quick", action="store_true", help="a 96 x 128 image, the flag at 0 s, one run each (a smoke test)")
    args = parser.parse_args(argv)
    if not Path(args.weights).is_file():
        print(f"error: {args.weights}: no such weights file (pass --weights)", file=sys.stderr)
        return 2
    jobs = args.jobs.split(",")
    unknown = sorted(set(jobs) - {"stylize", "colorize"})
    sizes = QUICK_SIZES if args.quick else {}
    if not args.quick:
        unknown += sorted(f"size {s}" for s in args.size.split(",") if s not in SIZES)
        sizes = {s: SIZES[s] for s in args.size.split(",") if s in SIZES}
    if unknown:
        print(f"error: unknown {', '.join(unknown)}", file=sys.stderr)
        return 2
    moments = [0.0] if args.quick else [float(a) for a in args.after.split(",")]
    repeat = 1 if args.quick else args.repeat

    import torch

    load = os.getloadavg()
    calls, device, dtype = make_jobs(args.weights, args.device, args.dtype, jobs)
    rows, whole = [], []
    for size_name, size in sizes.items():
        for job, make in calls.items():
            call = make(size)
            for after in moments:
                outcomes = [run_once(call, after, device) for _ in range(repeat)]
                rows.append((job, size_name, after, outcomes))
                print(f"  {job} {size_name} flag at {after}s: " + ", ".join(
                    f"{_ms(o.latency)} ms" if o.latency is not None else f"ended after {o.elapsed:.1f}s"
                    for o in outcomes), file=sys.stderr, flush=True)
            if args.whole:
                outcome = run_once(call, None, device)
                whole.append((job, size_name, outcome))
                gaps = [(outcome.longest_gap, outcome.where)] + outcome.runners_up
                print(f"  {job} {size_name} whole run: {outcome.elapsed:.1f}s; longest gaps: "
                      + "; ".join(f"{_ms(g)} ms ({w})" for g, w in gaps), file=sys.stderr, flush=True)
    print(f"\nmachine: {_cpu_name()}, {os.cpu_count()} logical CPUs, "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads, device {device}, "
          f"{str(dtype).removeprefix('torch.')}; load average {load[0]:.2f} when started; render size 0; "
          f"weights {Path(args.weights).name}")
    print("\n| job | size | flag after (s) | runs | latency median (ms) | latency max (ms) | checks before the flag | "
          "longest gap before the flag (ms) |")
    print("|---|---|---|---|---|---|---|---|")
    for job, size_name, after, outcomes in rows:
        hit = [o.latency for o in outcomes if o.latency is not None]
        ended = len(outcomes) - len(hit)
        median = statistics.median(hit) if hit else None
        runs = f"{len(outcomes)}" + (f" ({ended} ended before the flag)" if ended else "")
        print(f"| {job} | {size_name} | {after:g} | {runs} | {_ms(median)} | {_ms(max(hit) if hit else None)} | "
              f"{statistics.median(o.checks for o in outcomes):.0f} | {_ms(max(o.longest_gap for o in outcomes))} |")
    if whole:
        print("\nWhole runs (no flag): the longest gap between two interrupt checks is the worst latency a flag could meet.\n")
        print("| job | size | run (s) | checks | longest gap (ms) | share of the run | between |")
        print("|---|---|---|---|---|---|---|")
        for job, size_name, o in whole:
            print(f"| {job} | {size_name} | {o.elapsed:.1f} | {o.checks} | {_ms(o.longest_gap)} | {o.share:.1%} | {o.where} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
