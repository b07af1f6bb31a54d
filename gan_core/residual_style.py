"""The residual fast style network: an image-to-image network that works at a quarter of the size.

The shape of the fast feed-forward style networks (Johnson et al. 2016; the peer's multistyle network):
two strided convolutions down to 1/4, residual blocks there, two nearest-neighbour upsamplings back.
Unlike them it takes any painting: the painting's style code (the AdaIN statistics of the shared
VGG16 encoder's relu4_1, ``gan_core.style_path``) is mapped once to a per-channel scale and shift for
every convolution of the residual blocks (the style-prediction idea of Ghiasi et al. 2017). There is no
per-image normalisation, so a tile computes exactly what the whole image would: the network is a plain
convolution stack with a receptive field of about 60 pixels, and tiles only need that much overlap.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .style_codes import StyleCode

MULTIPLE = 4  # input sides must be multiples of this (two stride-2 convolutions)


def _conv(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, padding_mode="reflect")


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.first = _conv(channels, channels)
        self.second = _conv(channels, channels)

    def forward(self, x: torch.Tensor, modulation: torch.Tensor) -> torch.Tensor:
        """``modulation``: B x 4 x C x 1 x 1, the scale and shift of each of the two convolutions."""
        scale1, shift1, scale2, shift2 = modulation.unbind(1)
        y = torch.relu(self.first(x) * scale1 + shift1)
        return x + self.second(y) * scale2 + shift2


class ResidualFastStyle(nn.Module):
    """``widths``: channels at 1/1, 1/2 and 1/4 of the size; ``blocks``: residual blocks at 1/4.
    ``code_channels``: channels of the style code (the shared encoder's relu4_1);
    ``code_scale``: brings the code's values (VGG16 units, O(100)) to O(1)."""

    def __init__(self, widths: tuple[int, int, int], blocks: int, code_channels: int, code_scale: float) -> None:
        super().__init__()
        w1, w2, w4 = widths
        self.code_scale = code_scale
        self.down = nn.ModuleList([_conv(3, w1), _conv(w1, w2, 2), _conv(w2, w4, 2)])
        self.blocks = nn.ModuleList(ResidualBlock(w4) for _ in range(blocks))
        self.up = nn.ModuleList([_conv(w4, w2), _conv(w2, w1)])
        self.to_rgb = _conv(w1, 3)
        # Style code (mean and log deviation) -> scale and shift offsets of every block convolution.
        # Zero-initialised: an untrained network is the unmodulated one.
        self.style_to_modulation = nn.Linear(2 * code_channels, blocks * 4 * w4)
        nn.init.zeros_(self.style_to_modulation.weight)
        nn.init.zeros_(self.style_to_modulation.bias)

    def modulation(self, code: StyleCode, strength: float | torch.Tensor) -> torch.Tensor:
        """B x blocks x 4 x C x 1 x 1 from a style code (B or 1 x code_channels), scaled by ``strength``
        (0: the unmodulated network, which reproduces the content; 1: the full style)."""
        mean = code.mean.float() * self.code_scale
        log_std = torch.log(code.std.float().clamp_min(1e-5) * self.code_scale)
        # tanh bounds the offsets (scales 0..2, shifts -1..1): without normalisation layers an unbounded
        # scale compounds through the residual blocks and training diverges.
        code_in = torch.cat([mean, log_std], dim=1).to(self.style_to_modulation.weight.dtype)  # bf16/fp16 weights
        offsets = torch.tanh(self.style_to_modulation(code_in).float())
        if not isinstance(strength, torch.Tensor):
            strength = torch.tensor(float(strength), device=offsets.device)
        offsets = offsets * strength.to(offsets).reshape(-1, 1)
        offsets = offsets.view(-1, len(self.blocks), 4, self.up[0].in_channels, 1, 1)
        identity = torch.tensor([1.0, 0.0, 1.0, 0.0], device=offsets.device).view(1, 1, 4, 1, 1, 1)
        return identity + offsets

    def forward(self, rgb: torch.Tensor, modulation: torch.Tensor) -> torch.Tensor:
        """The stylised RGB (unclamped, nominally 0..1) of ``rgb`` (B x 3 x H x W, sides multiples of 4)
        with ``modulation`` from ``modulation()`` (its batch 1 or B)."""
        x = rgb
        for conv in self.down:
            x = torch.relu(conv(x))
        modulation = modulation.to(x.dtype)
        for i, block in enumerate(self.blocks):
            x = block(x, modulation[:, i])
        for conv in self.up:
            x = torch.relu(conv(F.interpolate(x, scale_factor=2.0, mode="nearest")))
        return self.to_rgb(x)
