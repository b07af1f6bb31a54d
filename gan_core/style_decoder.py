"""The style decoder: turns (style-matched) relu4_1 features back into an RGB image.

Arbitrary style comes from AdaIN (``gan_core.style_codes``): the content features take the channel
means and deviations of a style reference. Named trained styles add a small adapter: a per-channel
scale and shift after every hidden convolution (conditional affine, like conditional instance norm
without the per-image statistics, which would leave seams between tiles). With no adapter the
decoder is the plain arbitrary-style decoder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class StyleAdapter(nn.Module):
    """Per-style parameters: target feature statistics and per-layer scales and shifts."""

    def __init__(self, feature_channels: int, hidden_channels: tuple[int, ...]) -> None:
        super().__init__()
        self.mean = nn.Parameter(torch.zeros(feature_channels))
        self.std = nn.Parameter(torch.ones(feature_channels))
        self.scales = nn.ParameterList([nn.Parameter(torch.ones(c)) for c in hidden_channels])
        self.shifts = nn.ParameterList([nn.Parameter(torch.zeros(c)) for c in hidden_channels])


def _conv(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(in_ch, out_ch, 3))


class StyleDecoder(nn.Module):
    def __init__(self, feature_channels: int, widths: tuple[int, int, int, int], input_scale: float = 1.0) -> None:
        super().__init__()
        self.input_scale = input_scale
        w8, w4, w2, w1 = widths
        # (input channels, output channels, upsample before?) for each hidden convolution.
        plan = [(feature_channels, w8, False), (w8, w4, True), (w4, w4, False), (w4, w2, True), (w2, w1, True)]
        self.convs = nn.ModuleList(_conv(i, o) for i, o, _ in plan)
        self.upsample_before = [up for _, _, up in plan]
        self.to_rgb = _conv(w1, 3)
        self.hidden_channels = tuple(o for _, o, _ in plan)

    def forward(self, feats: torch.Tensor, adapter: StyleAdapter | None = None) -> torch.Tensor:
        """RGB (unclamped, nominally 0..1) at 8x the feature resolution."""
        x = feats * self.input_scale
        for i, (conv, up) in enumerate(zip(self.convs, self.upsample_before)):
            if up:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = conv(x)
            if adapter is not None:
                x = x * adapter.scales[i][:, None, None] + adapter.shifts[i][:, None, None]
            x = torch.relu(x)
        return self.to_rgb(x)
