"""The DualGAN weights format: one .safetensors file, prefixed tensors, JSON metadata. No pickle.

Tensors: ``encoder.*``, ``color_decoder.*``, ``style_decoder.*``, ``styles.<name>.*``.
Metadata (all strings): ``dualgan.format`` (FORMAT_VERSION), ``dualgan.config`` (architecture JSON),
``dualgan.styles`` (JSON: name -> {source, licence, ...}), ``dualgan.training`` (JSON summary) and
``dualgan.licence``. A style file holds only ``styles.<name>.*`` tensors and ``dualgan.style_format``.

Loading validates the header (size, JSON, version, config, every tensor's dtype, shape and byte
range, the exact set of names) before any tensor is read, so a wrong, truncated, foreign or
mismatched file fails with one ``WeightsError`` sentence that names the file.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .config import DualGANConfig
from .model import DualGAN, check_style_name

FORMAT_VERSION = "1"
STYLE_FORMAT_VERSION = "1"
MAX_HEADER_BYTES = 64 * 1024 * 1024
PICKLE_SUFFIXES = {".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle"}
_DTYPE_BYTES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
WEIGHT_DTYPES = frozenset({"F16", "BF16", "F32"})
STYLE_PREFIX = "styles."  # a named style's tensors: styles.<name>.<tensor>


class WeightsError(ValueError):
    """A weights or style file that cannot be used; the message is one sentence naming the file."""


@dataclass
class WeightsInfo:
    path: Path
    config: DualGANConfig
    styles: dict[str, dict] = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    licence: str = ""
    stored_dtype: str = "F32"


def _fail(path: Path, problem: str) -> WeightsError:
    return WeightsError(f"{path.name}: {problem}")


def read_header(path: str | os.PathLike, dtypes: frozenset[str] = WEIGHT_DTYPES) -> tuple[dict, dict]:
    """The (tensor entries, metadata) of a safetensors file, checked for sanity but not for meaning.

    ``dtypes`` are the tensor dtypes accepted (weights files hold floating point only).
    """
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"{path}: no such file")
    if not path.is_file():
        raise WeightsError(f"{path}: not a file")
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise _fail(path, f"'{path.suffix}' files are pickles, which can run code when loaded and are refused; "
                          "convert the weights to .safetensors")
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise _fail(path, f"the file is {size} bytes, too short to be a safetensors file (empty or truncated)")
        # A torch checkpoint is a zip ("PK") or a raw pickle (protocol byte 0x80). Those bytes can also
        # start a valid header length, so they only count once the header itself does not make sense.
        looks_pickled = head[:2] == b"PK" or head[:1] == b"\x80"
        pickled = _fail(path, "this is a pickle/PyTorch checkpoint renamed to .safetensors; pickles are refused")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > MAX_HEADER_BYTES:
            raise pickled if looks_pickled else _fail(
                path, f"the header claims {header_len} bytes, far more than any weights file needs (not a safetensors file, or corrupted)")
        if header_len > size - 8:
            raise pickled if looks_pickled else _fail(
                path, f"the header claims {header_len} bytes but the file has only {size - 8} after it (truncated download?)")
        raw = fh.read(header_len)
    if not raw.startswith(b"{") and looks_pickled:
        raise pickled
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _fail(path, "the header is not valid JSON (not a safetensors file, or corrupted)") from None
    if not isinstance(header, dict):
        raise _fail(path, "the header is not a JSON object (corrupted file)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _fail(path, "the metadata is not a map of strings (corrupted file)")
    data_len = size - 8 - header_len
    for name, entry in header.items():
        _check_entry(path, name, entry, data_len, dtypes)
    return header, metadata


def _check_entry(path: Path, name: str, entry: object, data_len: int, dtypes: frozenset[str]) -> None:
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
        raise _fail(path, f"tensor {name!r} has a malformed header entry")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in dtypes or dtype not in _DTYPE_BYTES:
        raise _fail(path, f"tensor {name!r} has dtype {dtype}; this file may hold only {', '.join(sorted(dtypes))}")
    if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise _fail(path, f"tensor {name!r} has an invalid shape {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
        raise _fail(path, f"tensor {name!r} has invalid data offsets")
    start, end = offsets
    if not 0 <= start <= end <= data_len:
        raise _fail(path, f"tensor {name!r} lies outside the file (truncated or corrupted)")
    if end - start != math.prod(shape) * _DTYPE_BYTES[dtype]:
        raise _fail(path, f"tensor {name!r} has {end - start} bytes, which does not match its shape {shape} and dtype {dtype}")


def _json_meta(path: Path, metadata: dict, key: str, default):
    if key not in metadata:
        return default
    try:
        return json.loads(metadata[key])
    except json.JSONDecodeError:
        raise _fail(path, f"metadata {key!r} is not valid JSON") from None


def _describe_foreign(header: dict) -> str:
    names = list(header)
    if any(n.startswith(("model.diffusion_model.", "first_stage_model.", "cond_stage_model.")) for n in names):
        return "it looks like a Stable Diffusion checkpoint"
    if any(n.startswith(("lora_", "lora_unet", "lora_te")) or ".lora_" in n for n in names):
        return "it looks like a LoRA"
    if names and all(n.startswith(STYLE_PREFIX) for n in names):
        return "it looks like a DualGAN style file; load it as a style, not as a model"
    return "it has no 'dualgan.format' metadata"


def _stored_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The tensors a file stores: every weight and running statistic (BatchNorm's step counters,
    which inference never reads, are left out)."""
    return {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def _expected_shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in _stored_state(model).items()}


def _compare_names(path: Path, expected: dict[str, tuple[int, ...]], header: dict) -> None:
    missing = sorted(set(expected) - set(header))
    extra = sorted(set(header) - set(expected))
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise _fail(path, f"tensors {missing[:3]}{more} are missing; the file does not match its own config (incomplete export?)")
    if extra:
        more = f" and {len(extra) - 3} more" if len(extra) > 3 else ""
        raise _fail(path, f"tensors {extra[:3]}{more} are not part of this architecture (a file for another model?)")
    for name, shape in expected.items():
        if tuple(header[name]["shape"]) != shape:
            raise _fail(path, f"tensor {name!r} has shape {tuple(header[name]['shape'])}, the config expects {shape}")


def _read_tensors(path: Path, names, prefix_strip: str = "") -> dict[str, torch.Tensor]:
    tensors = {}
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            for name in names:
                t = fh.get_tensor(name)
                if t.is_floating_point() and not torch.isfinite(t).all():
                    raise _fail(path, f"tensor {name!r} contains NaN or infinite values (corrupted weights)")
                tensors[name[len(prefix_strip):]] = t
    except WeightsError:
        raise
    except Exception as exc:  # safetensors' own parser disagreeing with ours: still one sentence
        raise _fail(path, f"the tensor data cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    return tensors


def inspect_weights(path: str | os.PathLike) -> WeightsInfo:
    """Validate a model file's header and metadata without reading tensors."""
    path = Path(path)
    header, metadata = read_header(path)
    version = metadata.get("dualgan.format")
    if version is None:
        raise _fail(path, f"not a DualGAN weights file ({_describe_foreign(header)}); export one with `python -m train export`")
    if version != FORMAT_VERSION:
        raise _fail(path, f"DualGAN weights format {version!r} is not supported by this version (it reads {FORMAT_VERSION!r}); "
                          "update the node pack or re-export the file")
    if "dualgan.config" not in metadata:
        raise _fail(path, "the 'dualgan.config' metadata is missing, so the network cannot be built")
    try:
        config = DualGANConfig.from_json(metadata["dualgan.config"])
    except (ValueError, json.JSONDecodeError) as exc:
        raise _fail(path, f"{exc}") from None
    styles = _json_meta(path, metadata, "dualgan.styles", {})
    if not isinstance(styles, dict):
        raise _fail(path, "metadata 'dualgan.styles' must be a JSON object of style names")
    try:
        for name in styles:
            check_style_name(name)
    except ValueError as exc:
        raise _fail(path, str(exc)) from None
    counts: dict[str, int] = {}
    for entry in header.values():
        counts[entry["dtype"]] = counts.get(entry["dtype"], 0) + 1
    return WeightsInfo(
        path=path,
        config=config,
        styles=styles,
        training=_json_meta(path, metadata, "dualgan.training", {}),
        licence=metadata.get("dualgan.licence", ""),
        stored_dtype=max(counts, key=counts.get) if counts else "F32",  # the weights' dtype; statistics are F32
    )


def load_weights(path: str | os.PathLike, dtype: torch.dtype = torch.float32) -> tuple[DualGAN, WeightsInfo]:
    """Build the network from a file's config and load its tensors strictly. Raises WeightsError."""
    info = inspect_weights(path)
    header, _ = read_header(info.path)
    with torch.device("meta"):
        skeleton = DualGAN(info.config, tuple(info.styles))
    _compare_names(info.path, _expected_shapes(skeleton), header)
    tensors = _read_tensors(info.path, list(header))
    model = DualGAN(info.config, tuple(info.styles))
    state = model.state_dict()  # keeps the step counters the file leaves out
    state.update({k: v.float() for k, v in tensors.items()})
    model.load_state_dict(state, strict=True)
    return model.cast(dtype).eval(), info


def style_names_in(tensor_names) -> tuple[str, ...]:
    """The named styles among tensor names (``styles.<name>.<tensor>``), sorted."""
    return tuple(sorted({n.split(".")[1] for n in tensor_names if n.startswith(STYLE_PREFIX) and n.count(".") >= 2}))


def load_style_file(path: str | os.PathLike, model: DualGAN) -> list[str]:
    """Add the styles of a separate style file to ``model``; returns their names."""
    path = Path(path)
    header, metadata = read_header(path)
    if metadata.get("dualgan.style_format") != STYLE_FORMAT_VERSION:
        raise _fail(path, "not a DualGAN style file (no supported 'dualgan.style_format' metadata); "
                          "make one with `python -m train style`")
    names = list(style_names_in(header))
    if not names:
        raise _fail(path, "the style file holds no styles")
    expected: dict[str, tuple[int, ...]] = {}
    for name in names:
        try:
            check_style_name(name)
        except ValueError as exc:
            raise _fail(path, str(exc)) from None
        adapter_shapes = _expected_shapes(model.new_style_adapter())
        expected.update({f"styles.{name}.{k}": s for k, s in adapter_shapes.items()})
    _compare_names(path, expected, header)
    tensors = _read_tensors(path, list(header))
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    for name in names:
        adapter = model.new_style_adapter()
        prefix = f"styles.{name}."
        adapter.load_state_dict({k[len(prefix):]: v.float() for k, v in tensors.items() if k.startswith(prefix)}, strict=True)
        model.add_style(name, adapter.to(device=device, dtype=dtype))
    return names


def atomic_save_safetensors(tensors: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str]) -> None:
    """Write a safetensors file to a temporary name in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=metadata)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_weights(
    path: str | os.PathLike,
    model: DualGAN,
    *,
    styles: dict[str, dict] | None = None,
    training: dict | None = None,
    licence: str = "",
    dtype: torch.dtype = torch.float16,
) -> None:
    """Export ``model`` (all its named styles included) in the DualGAN weights format."""
    style_meta = {name: (styles or {}).get(name, {}) for name in model.style_names}
    # Running statistics stay float32: VGG features are O(100), so variances overflow float16.
    params = {name for name, _ in model.named_parameters()}
    tensors = {k: v.to(dtype) if k in params else v.float() for k, v in _stored_state(model).items()}
    metadata = {
        "dualgan.format": FORMAT_VERSION,
        "dualgan.config": model.config.to_json(),
        "dualgan.styles": json.dumps(style_meta, sort_keys=True),
        "dualgan.training": json.dumps(training or {}, sort_keys=True),
        "dualgan.licence": licence,
    }
    atomic_save_safetensors(tensors, path, metadata)


def save_style_file(path: str | os.PathLike, model: DualGAN, names: list[str], info: dict[str, dict] | None = None) -> None:
    """Write the named styles of ``model`` as a separate style file."""
    tensors = {}
    for name in names:
        for k, v in model.styles[name].state_dict().items():
            tensors[f"styles.{name}.{k}"] = v.float()
    metadata = {
        "dualgan.style_format": STYLE_FORMAT_VERSION,
        "dualgan.styles": json.dumps({n: (info or {}).get(n, {}) for n in names}, sort_keys=True),
        "dualgan.feature_channels": str(model.encoder.channels("relu4_1")),
    }
    atomic_save_safetensors(tensors, path, metadata)
