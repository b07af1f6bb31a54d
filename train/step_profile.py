"""``python -m train profile-step``: where the time of a ``train base`` step goes.

Builds the run's networks and data from the usual settings (``--config`` and options, as for
``train base``; no run folder is written), runs ``--warmup`` steps, then times ``--measure`` steps
part by part: data loading (in this process: the loader's workers are set to 0), the inputs (Lab,
palettes), the frozen encoder, the generator heads, the loss network, the losses, the
discriminators, backward and the optimiser. The steps start at ``adv_start``, so the adversarial
parts are included (``--pretraining``: the steps before it). With ``cache_images`` the image cache
is filled first and its one-off cost reported apart, so the table shows the steady state.

Each part gets its wall time and the CPU time of the whole process (all threads). On a shared
machine the wall time grows with the other processes' load, while the CPU time stays close to what
the work itself needs; ``CPU s / threads`` estimates the wall time on an idle machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from pathlib import Path

import torch

from .settings import BaseSettings, add_settings_arguments, settings_from_args

logger = logging.getLogger(__name__)


class PartTimes:
    """Wall and process CPU time per named part, summed over the steps it is entered in (waits for a GPU first)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self.enabled = False

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextlib.contextmanager
    def __call__(self, part: str):
        if not self.enabled:
            yield
            return
        self._sync()
        start, cpu_start = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self._sync()
            self.seconds[part] = self.seconds.get(part, 0.0) + time.perf_counter() - start
            self.cpu_seconds[part] = self.cpu_seconds.get(part, 0.0) + time.process_time() - cpu_start


def fill_cache(data) -> tuple[float, int]:
    """Decode every image into the cache once; (seconds, images)."""
    start = time.perf_counter()
    count = 0
    for dataset in (data.photos, data.paintings):
        if dataset is not None and dataset.cache:
            for i in range(len(dataset.paths)):
                count += dataset._load(i) is not None
    return time.perf_counter() - start, count


def profile_steps(settings: BaseSettings, *, warmup: int, measure: int, pretraining: bool = False) -> dict:
    """Time ``measure`` steps after ``warmup`` ones; a JSON-ready summary."""
    from .base import make_trainer, setup_distributed
    from .run import TrainingData

    settings = dataclasses.replace(settings, workers=0)
    _, _, device = setup_distributed()
    timer = PartTimes(device)
    data = TrainingData(settings)
    fill_seconds, filled = fill_cache(data) if settings.cache_images else (0.0, 0)
    trainer, _ = make_trainer(settings, data, None, resume=False, device=device, timer=timer)
    trainer.train_mode()
    start = 0 if pretraining else settings.adv_start
    batches = iter(data.batches(start=start, stop=start + warmup + measure))
    step_seconds, step_cpu = [], []
    for i, step in enumerate(range(start, start + warmup + measure)):
        timer.enabled = i >= warmup
        t0, c0 = time.perf_counter(), time.process_time()
        with timer("data loading"):
            rgb, paint = next(batches)
        trainer.step(rgb, paint, step)
        if timer.enabled:
            step_seconds.append(time.perf_counter() - t0)
            step_cpu.append(time.process_time() - c0)
    per_step = {k: v / measure for k, v in timer.seconds.items()}
    cpu_per_step = {k: v / measure for k, v in timer.cpu_seconds.items()}
    seconds, cpu = sum(step_seconds) / measure, sum(step_cpu) / measure
    threads = torch.get_num_threads()
    return {
        "precision": trainer.amp.name, "device": str(device), "threads": threads,
        "batch": settings.batch, "crop": settings.crop, "architecture": dict(vgg=list(trainer.nets.model.config.vgg_widths)),
        "adversarial": not pretraining, "cache_images": settings.cache_images, "warmup": warmup, "measured_steps": measure,
        "seconds_per_step": seconds, "samples_per_second": settings.batch / seconds,
        "parts_seconds_per_step": per_step, "other_seconds_per_step": seconds - sum(per_step.values()),
        "cpu_seconds_per_step": cpu, "idle_samples_per_second_estimate": settings.batch * threads / cpu,
        "parts_cpu_seconds_per_step": cpu_per_step, "other_cpu_seconds_per_step": cpu - sum(cpu_per_step.values()),
        "min_step_seconds": min(step_seconds), "cache_fill_seconds": fill_seconds, "cache_fill_images": filled,
    }


def format_table(result: dict) -> str:
    total, cpu = result["seconds_per_step"], result["cpu_seconds_per_step"]
    lines = [f"{result['precision']} on {result['device']} ({result['threads']} threads), batch {result['batch']}, "
             f"crop {result['crop']}: {total:.3f} s/step wall ({result['samples_per_second']:.2f} samples/s), "
             f"{cpu:.3f} CPU s/step ({result['idle_samples_per_second_estimate']:.2f} samples/s on idle cores)",
             f"{'part':<18}{'wall ms':>10}{'CPU ms':>10}{'CPU share':>11}"]
    walls, cpus = result["parts_seconds_per_step"], result["parts_cpu_seconds_per_step"]
    rows = [(k, walls[k], cpus[k]) for k in sorted(cpus, key=lambda k: -cpus[k])]
    rows.append(("(rest)", result["other_seconds_per_step"], result["other_cpu_seconds_per_step"]))
    for name, wall, cpu_part in rows:
        lines.append(f"{name:<18}{1000 * wall:>10.1f}{1000 * cpu_part:>10.1f}{100 * cpu_part / cpu:>10.1f}%")
    if result["cache_fill_images"]:
        lines.append(f"image cache filled once: {result['cache_fill_images']} images in {result['cache_fill_seconds']:.1f} s")
    return "\n".join(lines)


def register(subparsers) -> None:
    p = subparsers.add_parser("profile-step", help="time the parts of a `train base` step (data, networks, backward, ...)")
    add_settings_arguments(p, BaseSettings)
    p.add_argument("--warmup", type=int, default=1, help="steps run before timing (default 1)")
    p.add_argument("--measure", type=int, default=3, help="steps timed (default 3)")
    p.add_argument("--pretraining", action="store_true", help="time steps before --adv-start (no discriminators)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads (default: torch's choice); 1 gives the steadiest CPU times on a busy machine")
    p.add_argument("--json", type=Path, help="also write the result as JSON here")
    p.set_defaults(func=_run)


def _run(args) -> str:
    settings = settings_from_args(args, BaseSettings)
    if not settings.photos or not settings.styles:
        raise ValueError("--photos and --styles (folders of images) are required")
    if args.warmup < 0 or args.measure < 1:
        raise ValueError("--warmup must be 0 or more and --measure at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    result = profile_steps(settings, warmup=args.warmup, measure=args.measure, pretraining=args.pretraining)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return format_table(result)
