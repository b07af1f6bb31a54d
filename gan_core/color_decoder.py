"""The colour decoder: a U-Net over the encoder's skips that predicts ab chroma as bin logits.

It predicts a distribution over the quantised ab grid (``gan_core.chroma``) at half the render
resolution; the annealed mean turns it into chroma. An optional palette (the soft ab histogram of a
reference image) modulates the bottleneck by FiLM, so colours follow the reference when one is given
and the network colours on its own when not. BatchNorm (fixed statistics at inference) rather than a
per-image norm keeps tiled inference seamless.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv_bn_relu(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


class PaletteFiLM(nn.Module):
    """Maps an ab histogram (plus a 'palette given' flag) to per-channel scale and shift."""

    def __init__(self, num_bins: int, hidden: int, channels: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(num_bins + 1, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 2 * channels))
        # Start as the identity so an untrained palette path changes nothing.
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, x: torch.Tensor, palette: torch.Tensor | None) -> torch.Tensor:
        """``palette``: N x Q histograms (N = 1 or the batch); an all-zero row means 'no palette'."""
        batch = x.shape[0]
        if palette is None:
            cond = x.new_zeros(batch, self.mlp[0].in_features)
        else:
            palette = palette.to(x.dtype)
            given = (palette.sum(dim=1, keepdim=True) > 0).to(x.dtype)
            cond = torch.cat([palette, given], dim=1).expand(batch, -1)
        scale, shift = self.mlp(cond).chunk(2, dim=1)
        return x * (1 + scale[:, :, None, None]) + shift[:, :, None, None]


class ColorDecoder(nn.Module):
    def __init__(self, skip_channels: tuple[int, int, int], widths: tuple[int, int, int], num_bins: int, palette_embed: int) -> None:
        """``skip_channels``: channels of relu2_2, relu3_3 and relu4_3."""
        super().__init__()
        c2, c3, c4 = skip_channels
        w8, w4, w2 = widths
        self.bottleneck = nn.Sequential(_conv_bn_relu(c4, w8), _conv_bn_relu(w8, w8))
        self.palette = PaletteFiLM(num_bins, palette_embed, w8)
        self.up4 = nn.Sequential(_conv_bn_relu(w8 + c3, w4), _conv_bn_relu(w4, w4))
        self.up2 = nn.Sequential(_conv_bn_relu(w4 + c2, w2), _conv_bn_relu(w2, w2))
        self.head = nn.Conv2d(w2, num_bins, 1)

    def forward(self, feats: dict[str, torch.Tensor], palette: torch.Tensor | None = None) -> torch.Tensor:
        """Bin logits, B x Q x H/2 x W/2."""
        x = self.palette(self.bottleneck(feats["relu4_3"]), palette)
        x = F.interpolate(x, size=feats["relu3_3"].shape[-2:], mode="bilinear", align_corners=False)
        x = self.up4(torch.cat([x, feats["relu3_3"]], dim=1))
        x = F.interpolate(x, size=feats["relu2_2"].shape[-2:], mode="bilinear", align_corners=False)
        x = self.up2(torch.cat([x, feats["relu2_2"]], dim=1))
        return self.head(x)
