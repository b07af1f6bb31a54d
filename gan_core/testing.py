"""Tiny, randomly initialised models for tests and demos of the plumbing (never for real use)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from .config import DualGANConfig, tiny_config
from .model import DualGAN
from .weights import save_weights


def tiny_model(seed: int = 0, config: DualGANConfig | None = None, style_names: tuple[str, ...] = ()) -> DualGAN:
    """A tiny DualGAN with random weights whose outputs are colourful enough to test plumbing."""
    gen = torch.Generator().manual_seed(seed)
    model = DualGAN(config or tiny_config(), style_names)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim > 1:  # He initialisation keeps activations in a sane range through the depth
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            elif "style_decoder" in name or "styles" in name:
                continue  # adapters and biases of the style path start at their identity values
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        for name, adapter in model.styles.items():
            adapter.std.abs_().add_(0.5)
    return model.eval()


def tiny_fast_config() -> DualGANConfig:
    """``tiny_config`` with a (tinier) fast style network."""
    return dataclasses.replace(tiny_config(), fast_encoder_widths=(2, 4, 4, 8), fast_decoder_widths=(4, 4, 4, 2))


def write_tiny_weights(path: str | os.PathLike, seed: int = 0, style_names: tuple[str, ...] = ("tiny_style",),
                       config: DualGANConfig | None = None) -> Path:
    """Write a valid tiny DualGAN weights file (random weights, one named style) and return its path."""
    path = Path(path)
    model = tiny_model(seed, config=config, style_names=style_names)
    save_weights(
        path,
        model,
        styles={n: {"source": "random initialisation (test fixture)", "licence": "CC0-1.0"} for n in style_names},
        training={"note": "random weights for tests; not trained"},
        licence="CC0-1.0",
        dtype=torch.float32,
    )
    return path
