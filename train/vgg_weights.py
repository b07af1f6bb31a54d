"""Load the imported VGG16 file (``python -m train import-vgg16``) into an encoder."""

from __future__ import annotations

from pathlib import Path

from safetensors import safe_open

from gan_core.encoder import VGGEncoder
from gan_core.weights import read_header


def load_vgg_into(encoder: VGGEncoder, path: str | Path) -> None:
    """Copy the VGG16 convolutions the encoder has (blocks 1-4) from ``path``; strict on shapes."""
    path = Path(path)
    header, metadata = read_header(path)
    if metadata.get("dualgan.vgg16") != "1" or metadata.get("input") != "rgb01-folded":
        raise ValueError(f"{path.name} is not a VGG16 file made by `python -m train import-vgg16`")
    wanted = encoder.features.state_dict()
    missing = sorted(set(wanted) - {k[len("features."):] for k in header})
    if missing:
        raise ValueError(f"{path.name} lacks VGG16 tensors {missing[:3]}")
    with safe_open(str(path), framework="pt") as fh:
        state = {k: fh.get_tensor(f"features.{k}") for k in wanted}
    for k, v in state.items():
        if v.shape != wanted[k].shape:
            raise ValueError(f"{path.name}: tensor features.{k} has shape {tuple(v.shape)}, the encoder needs {tuple(wanted[k].shape)}")
    encoder.features.load_state_dict(state, strict=True)
