"""Training checkpoints as safetensors (no pickle): modules, optimisers, step, settings.

Written atomically (temporary file, fsync, rename; ``gan_core.weights.atomic_save_safetensors``), so
a run killed mid-write leaves the previous checkpoint intact. Optimiser state is flattened to
tensors ``opt.<name>.<param index>.<field>`` plus its param_groups as JSON; scalars go to metadata.
Randomness needs no saving: every random choice in the loop is seeded by (seed, step).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from gan_core.weights import atomic_save_safetensors, read_header

CHECKPOINT_DTYPES = frozenset({"F16", "BF16", "F32", "F64", "I64", "I32", "U8", "BOOL"})
CHECKPOINT = "checkpoint.safetensors"  # the one checkpoint of a run folder, overwritten in place


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


def _optimizer_tensors(name: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    state = opt.state_dict()
    tensors = {}
    for idx, fields in state["state"].items():
        for field, value in fields.items():
            t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"opt.{name}.{idx}.{field}"] = t
    return tensors, state["param_groups"]


def save_checkpoint(path: str | Path, *, modules: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer], meta: dict) -> None:
    tensors: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        for key, value in module.state_dict().items():
            tensors[f"mod.{name}.{key}"] = value
    groups = {}
    for name, opt in optimizers.items():
        t, groups[name] = _optimizer_tensors(name, opt)
        tensors.update(t)
    metadata = {"dualgan.checkpoint": "1", "meta": json.dumps(meta), "param_groups": json.dumps(groups)}
    atomic_save_safetensors(tensors, path, metadata)


def read_checkpoint_meta(path: str | Path) -> dict:
    _, metadata = read_header(path, CHECKPOINT_DTYPES)
    if metadata.get("dualgan.checkpoint") != "1":
        raise ValueError(f"{Path(path).name} is not a DualGAN training checkpoint")
    return json.loads(metadata["meta"])


def load_checkpoint(path: str | Path, *, modules: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer]) -> dict:
    """Restore modules and optimisers in place (strictly); returns the saved meta."""
    path = Path(path)
    _, metadata = read_header(path, CHECKPOINT_DTYPES)
    if metadata.get("dualgan.checkpoint") != "1":
        raise ValueError(f"{path.name} is not a DualGAN training checkpoint")
    groups = json.loads(metadata["param_groups"])
    with safe_open(str(path), framework="pt", device="cpu") as fh:
        keys = list(fh.keys())
        for name, module in modules.items():
            prefix = f"mod.{name}."
            state = {k[len(prefix):]: fh.get_tensor(k) for k in keys if k.startswith(prefix)}
            module.load_state_dict(state, strict=True)
        for name, opt in optimizers.items():
            prefix = f"opt.{name}."
            state: dict[int, dict] = {}
            for k in keys:
                if k.startswith(prefix):
                    idx, field = k[len(prefix):].split(".", 1)
                    state.setdefault(int(idx), {})[field] = fh.get_tensor(k)
            opt.load_state_dict({"state": state, "param_groups": groups[name]})
    return json.loads(metadata["meta"])
