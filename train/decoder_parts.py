"""Decoder parts: what a ``train base`` run changed, small enough to travel, and their merge back.

``python -m train export-parts CHECKPOINT OUT_DIR`` writes the trained tensors of a checkpoint's
generator (the colour decoder; the style decoder when ``train_style_decoder``; the encoder only when
``finetune_encoder``) in fp32 as ``decoder_part_NN.safetensors`` files of at most ``--max-mib`` each.
The frozen rest (the encoder, which is most of the model) stays behind: each part records a SHA-256
fingerprint of it, the generator's configuration and the run's training summary (steps, batch, crop,
device, autocast dtype, data paths relative to the data folder).

``python -m train merge PARTS_DIR OUT --base WEIGHTS`` puts them back together: the parts, plus every
other tensor from the base weights file the run started from (``--init``), checked against the
fingerprint, written as a full fp16 DualGAN weights file. The base file's named styles are kept when
the style decoder was not trained (they adapt a decoder that did not change) and dropped otherwise.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path

import torch
from safetensors import safe_open

from gan_core.config import DualGANConfig
from gan_core.model import DualGAN
from gan_core.shipped import SHIPPED_WEIGHTS
from gan_core.weights import STYLE_PREFIX, atomic_save_safetensors, load_weights, read_header, save_weights

from .checkpoint import read_checkpoint_meta, read_module_state
from .settings import BaseSettings
from .warm_start import checkpoint_config, styles_fit, trained_prefixes

PART_GLOB = "decoder_part_*.safetensors"
PARTS_FORMAT = "1"
MIB = 1024 * 1024
ABSOLUTE = re.compile(r"^(/|[A-Za-z]:[\\/]|\\\\)")


def _stored(name: str) -> bool:
    return not name.endswith("num_batches_tracked")  # BatchNorm's step counters: never read, never stored


def fingerprint(state: dict[str, torch.Tensor], names: list[str]) -> str:
    """SHA-256 over the names and fp32 values of ``names`` in ``state`` (what the merge must find in the base file)."""
    digest = hashlib.sha256()
    for name in sorted(names):
        digest.update(name.encode())
        digest.update(state[name].detach().float().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def portable(value):
    """``value`` (nested dicts and lists of metadata) with every absolute path cut to its last two parts
    (``/home/me/data/photos/train`` -> ``photos/train``, the data folder's own naming): weights
    metadata names no directory of the training machine."""
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v) for v in value]
    if isinstance(value, str) and ABSOLUTE.match(value):
        return "/".join([part for part in re.split(r"[\\/]+", value) if part and not part.endswith(":")][-2:])
    return value


def run_seconds(run_dir: Path) -> float | None:
    """The training seconds of the last row of a run folder's losses.csv, if there is one."""
    path = run_dir / "losses.csv"
    if not path.is_file():
        return None
    rows = list(csv.DictReader(path.open()))
    return float(rows[-1]["seconds"]) if rows and rows[-1].get("seconds") else None


def split_by_size(tensors: dict[str, torch.Tensor], max_bytes: int) -> list[dict[str, torch.Tensor]]:
    """``tensors`` in name order, cut into groups of at most ``max_bytes`` of data each."""
    groups: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name in sorted(tensors):
        n = tensors[name].numel() * tensors[name].element_size()
        if n > max_bytes:
            raise ValueError(f"tensor {name!r} alone has {n / MIB:.3g} MiB, more than --max-mib allows")
        if size + n > max_bytes and groups[-1]:
            groups.append({})
            size = 0
        groups[-1][name] = tensors[name]
        size += n
    return groups


def export_parts(checkpoint: Path, out: Path, max_mib: float = 15.0) -> list[Path]:
    """Write the checkpoint's trained tensors into ``out`` as parts; returns their paths."""
    from .base import training_summary

    meta = read_checkpoint_meta(checkpoint)
    settings = BaseSettings(**meta["settings"])
    state = {k: v for k, v in read_module_state(checkpoint, "generator").items() if _stored(k)}
    trained = trained_prefixes(settings)
    parts = {k: v.float() for k, v in state.items() if k.startswith(trained)}
    fixed = [k for k in state if not k.startswith((*trained, STYLE_PREFIX))]  # named styles come from the base file
    training = training_summary(settings, int(meta["step"]))
    training.update({"device": meta.get("device", "unknown"), "dtype": meta.get("amp_dtype", "unknown"),
                     "seconds": run_seconds(checkpoint.parent), "max_minutes": settings.max_minutes})
    training = portable(training)
    common = {"dualgan.parts": PARTS_FORMAT, "dualgan.config": checkpoint_config(checkpoint).to_json(),
              "dualgan.training": json.dumps(training, sort_keys=True), "dualgan.licence": settings.licence,
              "dualgan.parts.trained": json.dumps(list(trained)), "dualgan.parts.fixed_sha256": fingerprint(state, fixed)}
    groups = split_by_size(parts, int(max_mib * MIB))
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(PART_GLOB):
        stale.unlink()
    paths = []
    for i, group in enumerate(groups, 1):
        path = out / f"decoder_part_{i:02d}.safetensors"
        atomic_save_safetensors(group, path, {**common, "dualgan.parts.index": str(i), "dualgan.parts.count": str(len(groups))})
        paths.append(path)
    return paths


def read_parts(folder: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(the parts' shared metadata, all their tensors); refuses a missing, foreign or mixed set."""
    paths = sorted(folder.glob(PART_GLOB))
    if not paths:
        raise FileNotFoundError(f"{folder}: no {PART_GLOB} files (made by `python -m train export-parts`)")
    shared, tensors, indices = None, {}, set()
    for path in paths:
        _, meta = read_header(path)
        if meta.get("dualgan.parts") != PARTS_FORMAT:
            raise ValueError(f"{path.name}: not a DualGAN decoder part (no supported 'dualgan.parts' metadata)")
        common = {k: v for k, v in meta.items() if k != "dualgan.parts.index"}
        if shared is not None and common != shared:
            raise ValueError(f"{path.name}: belongs to another run than {paths[0].name}; keep one run's parts in the folder")
        shared = common
        indices.add(int(meta["dualgan.parts.index"]))
        count = int(meta["dualgan.parts.count"])
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            for name in fh.keys():
                t = fh.get_tensor(name)
                if not torch.isfinite(t).all():
                    raise ValueError(f"{path.name}: tensor {name!r} contains NaN or infinite values (the run diverged?)")
                tensors[name] = t
    if indices != set(range(1, count + 1)):
        missing = sorted(set(range(1, count + 1)) - indices)
        raise ValueError(f"{folder}: parts {missing} of {count} are missing")
    return shared, tensors


def merge_parts(folder: Path, out: Path, base: Path = SHIPPED_WEIGHTS) -> dict:
    """Write the full fp16 weights file of the parts in ``folder`` over ``base``; returns its training summary."""
    if out.suffix.lower() != ".safetensors":
        raise ValueError(f"{out}: the merged file must be a .safetensors file")
    meta, parts = read_parts(folder)
    trained = tuple(json.loads(meta["dualgan.parts.trained"]))
    base_model, base_info = load_weights(base)
    keep_styles = styles_fit(trained)
    model = DualGAN(DualGANConfig.from_json(meta["dualgan.config"]), tuple(base_info.styles) if keep_styles else ())
    own = model.state_dict()
    base_state = base_model.state_dict()
    fixed = [k for k in own if _stored(k) and not k.startswith(trained)]
    wrong = [k for k in fixed if k not in base_state or base_state[k].shape != own[k].shape]
    if wrong:
        raise ValueError(f"{base.name} has no tensor {wrong[0]!r} of shape {tuple(own[wrong[0]].shape)}: "
                         "merge with the file the run started from (--init)")
    if fingerprint(base_state, [k for k in fixed if not k.startswith(STYLE_PREFIX)]) != meta["dualgan.parts.fixed_sha256"]:
        raise ValueError(f"{base.name} is not the file the run started from: its frozen tensors (the encoder) differ; "
                         "give that file as --base")
    expected = {k for k in own if _stored(k) and k.startswith(trained)}
    if set(parts) != expected:
        odd = sorted(set(parts) ^ expected)
        raise ValueError(f"the parts do not match their own configuration (tensor {odd[0]!r}); export them again")
    own.update({k: base_state[k] for k in fixed})
    own.update(parts)
    model.load_state_dict(own, strict=True)
    training = portable({**json.loads(meta["dualgan.training"]), "merged_with": base.name, "weights_dtype": "fp16"})
    styles = portable({n: base_info.styles[n] for n in model.style_names})
    save_weights(out, model.eval(), styles=styles, training=training,
                 licence=meta.get("dualgan.licence") or base_info.licence, dtype=torch.float16)
    return training


def register(subparsers) -> None:
    p = subparsers.add_parser("export-parts", help="write a checkpoint's trained decoders (not the frozen encoder) as small files")
    p.add_argument("checkpoint", type=Path, help="a `train base` checkpoint")
    p.add_argument("out", type=Path, help="the folder for decoder_part_NN.safetensors")
    p.add_argument("--max-mib", type=float, default=15.0, help="the most tensor data per file, in MiB (default 15)")

    def run_export(args) -> str:
        paths = export_parts(args.checkpoint, args.out, args.max_mib)
        sizes = ", ".join(f"{p.name} {p.stat().st_size / MIB:.1f} MiB" for p in paths)
        return f"wrote {sizes}"

    p.set_defaults(func=run_export)

    p = subparsers.add_parser("merge", help="decoder parts + the base weights file -> a full fp16 weights file")
    p.add_argument("parts", type=Path, help="the folder with decoder_part_NN.safetensors (from train/gpu_run.sh)")
    p.add_argument("out", type=Path, help="the weights file to write (.safetensors)")
    p.add_argument("--base", type=Path, default=SHIPPED_WEIGHTS,
                   help="the weights file the run started from (--init); default: the shipped weights")

    def run_merge(args) -> str:
        training = merge_parts(args.parts, args.out, args.base)
        return (f"wrote {args.out}: step {training['steps']}, trained on {training['device']} in {training['dtype']}, "
                f"frozen tensors from {args.base.name}")

    p.set_defaults(func=run_merge)
