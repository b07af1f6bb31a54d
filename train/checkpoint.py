"""Training checkpoints as safetensors (no pickle): modules, optimisers, step, settings.

Written atomically (temporary file, fsync, rename; ``gan_core.weights.atomic_save_safetensors``), so
a run killed mid-write leaves the previous checkpoint intact. Optimiser state is flattened to
tensors ``opt.<name>.<param index>.<field>`` plus its param_groups as JSON; scalars go to metadata.
Randomness needs no saving: every random choice in the loop is seeded by (seed, step) (``train.run``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from gan_core.weights import atomic_save_safetensors, read_header

CHECKPOINT_DTYPES = frozenset({"F16", "BF16", "F32", "F64", "I64", "I32", "U8", "BOOL"})
CHECKPOINT = "checkpoint.safetensors"  # the one checkpoint of a run folder, overwritten in place


def _optimizer_tensors(name: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    state = opt.state_dict()
    tensors = {}
    for idx, fields in state["state"].items():
        for field, value in fields.items():
            t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"opt.{name}.{idx}.{field}"] = t
    return tensors, state["param_groups"]


def save_checkpoint(path: str | Path, *, modules: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                    meta: dict) -> None:
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


def read_module_state(path: str | Path, name: str) -> dict[str, torch.Tensor]:
    """The state dict a checkpoint holds for its module ``name`` (e.g. "generator")."""
    prefix = f"mod.{name}."
    with safe_open(str(path), framework="pt", device="cpu") as fh:
        return {k[len(prefix):]: fh.get_tensor(k) for k in fh.keys() if k.startswith(prefix)}


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
            if not state:
                raise ValueError(f"{path.name} holds no weights for the {name!r} network this run needs "
                                 "(it was written with other settings or by an older trainer); start a new --run-dir")
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
