"""The training-run scaffold that ``train base``, ``train style`` and ``train distill`` share.

A run folder holds one checkpoint (overwritten atomically), ``losses.csv`` and ``settings.json``.
Starting a run in a folder that has a checkpoint needs ``--resume``, and a resume must use the
settings the run was started with (except those named as changeable), so a resumed run ends
bit-identical to an uninterrupted one. That works without saving any random state: the data are a
pure function of the sample number (``train.data``) and every other random choice of a step comes
from ``step_generator(seed, step)``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
from pathlib import Path
import torch

from .checkpoint import CHECKPOINT, load_checkpoint, read_checkpoint_meta, save_checkpoint
from .data import CropDataset, make_loader, sample_seed

logger = logging.getLogger(__name__)


def check_run_dir(run_dir: Path) -> None:
    """Fail before training if the folder cannot be written (or the disk is full)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        with probe.open("wb") as fh:
            fh.write(b"\0" * 1024 * 1024)
            fh.flush()
            os.fsync(fh.fileno())
        probe.unlink()
    except OSError as exc:
        raise OSError(f"{run_dir}: the run folder cannot be written ({exc.strerror or exc}); choose another --run-dir") from None


def remove_stale_temporaries(run_dir: Path) -> None:
    """A run killed while writing a checkpoint leaves its temporary file; the checkpoint itself is
    always the last complete one (write, fsync, rename), so the leftovers just go."""
    for stale in run_dir.glob(f".{CHECKPOINT}.*.tmp"):
        stale.unlink(missing_ok=True)


def check_resume_settings(path: str | Path, settings: dict, may_change: tuple[str, ...]) -> None:
    """Refuse to resume the checkpoint at ``path`` with settings other than those it was started
    with, except the fields in ``may_change``."""
    saved = read_checkpoint_meta(path).get("settings", {})
    changed = sorted(k for k, v in saved.items() if k not in may_change and settings.get(k) != v)
    if changed:
        raise ValueError(f"{path}: the run was started with other settings ({', '.join(changed)}); resume with the same ones")


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator for a step's own random choices (which batch items get a palette, a strength):
    seeded by (seed, step), on sample numbers no data set uses."""
    return torch.Generator().manual_seed(sample_seed(seed, -(10**9) - step))


class CsvLog:
    """``losses.csv``: one row per logged step. ``resume_from`` > 0 continues the file after that step,
    dropping the rows a killed run logged past its last checkpoint (so they are not logged twice);
    0 rewrites it."""

    def __init__(self, path: Path, columns: list[str], *, resume_from: int = 0) -> None:
        self.columns = columns
        append = resume_from > 0 and path.exists()
        if append:
            with path.open(newline="") as fh:
                rows = list(csv.reader(fh))
            kept = rows[:1] + [r for r in rows[1:] if r and int(r[0]) <= resume_from]
            if len(kept) < len(rows):
                tmp = path.with_name(path.name + ".tmp")
                with tmp.open("w", newline="") as fh:
                    csv.writer(fh).writerows(kept)
                os.replace(tmp, path)
        self._file = path.open("a" if append else "w", newline="")
        self._writer = csv.writer(self._file)
        if not append:
            self._writer.writerow(columns)

    def write(self, values: dict) -> None:
        """One row; float values with 5 decimals, missing columns empty."""
        row = [values.get(c, "") for c in self.columns]
        self._writer.writerow([f"{v:.5f}" if isinstance(v, float) else v for v in row])
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class RunFolder:
    """One run's folder: checked writable and cleaned on creation; resume-or-refuse, checkpoints, log."""

    def __init__(self, run_dir: str | Path, settings, *, may_change: tuple[str, ...], rank: int = 0) -> None:
        self.dir = Path(run_dir)
        self.checkpoint = self.dir / CHECKPOINT
        self.settings = dataclasses.asdict(settings)
        self.may_change = may_change
        self.writer = rank == 0  # under DDP only rank 0 writes files
        if self.writer:
            check_run_dir(self.dir)
            remove_stale_temporaries(self.dir)

    def start(self, resume: bool, *, modules: dict, optimizers: dict) -> int:
        """The first step to run: the checkpoint's step on ``resume`` (modules and optimisers
        restored), else 0. A checkpoint there without ``resume`` is refused, so nothing is overwritten."""
        if resume and self.checkpoint.exists():
            check_resume_settings(self.checkpoint, self.settings, self.may_change)
            step = int(load_checkpoint(self.checkpoint, modules=modules, optimizers=optimizers)["step"])
            logger.info("resumed from %s at step %d", self.checkpoint, step)
            return step
        if self.checkpoint.exists():
            raise FileExistsError(f"{self.checkpoint} exists; pass --resume to continue it or choose a new --run-dir")
        return 0

    def save(self, step: int, *, modules: dict, optimizers: dict, **meta) -> None:
        if self.writer:
            save_checkpoint(self.checkpoint, modules=modules, optimizers=optimizers,
                            meta={"step": step, "settings": self.settings, **meta})

    def open_log(self, columns: list[str], start: int) -> CsvLog | None:
        """The loss log (continued when resuming from ``start`` > 0); writes settings.json beside it."""
        if not self.writer:
            return None
        (self.dir / "settings.json").write_text(json.dumps(self.settings, indent=2))
        return CsvLog(self.dir / "losses.csv", ["step", "seconds", *columns], resume_from=start)


class TrainingData:
    """Crops of ``settings.photos`` and ``settings.styles`` (paintings: crops of 20-80 % of the short
    side, so brush strokes show); ``cache_images`` keeps them decoded in memory. Without ``styles``
    (a run that does not train the style decoder) there are no paintings and their batches are None."""

    def __init__(self, settings) -> None:
        self.settings = settings
        cache = getattr(settings, "cache_images", True)
        self.photos = CropDataset(settings.photos, settings.crop, seed=settings.seed, cache=cache,
                                  defocus=getattr(settings, "defocus_prob", 0.0))
        self.paintings = (CropDataset(settings.styles, settings.crop, scales=(0.2, 0.8), seed=settings.seed + 1, cache=cache)
                          if settings.styles else None)

    def batches(self, *, start: int, stop: int, rank: int = 0, world: int = 1):
        """(photo batch, painting batch or None) for each of the steps ``start`` .. ``stop``."""
        s = self.settings
        loaders = [make_loader(d, batch_size=s.batch, start_step=start, total_steps=stop, rank=rank, world=world,
                               workers=s.workers) for d in (self.photos, self.paintings) if d is not None]
        if self.paintings is None:
            return ((rgb, None) for rgb in loaders[0])
        return zip(*loaders)
