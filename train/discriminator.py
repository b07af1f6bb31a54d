"""PatchGAN discriminators with spectral normalisation (pix2pix's 70 x 70 design, Miyato et al.'s SN).

``colour``: judges (L, a, b) triples, so it learns which chroma is plausible for a given luminance.
``style``: judges RGB images: stylised outputs against crops of the paintings.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class PatchDiscriminator(nn.Module):
    def __init__(self, in_channels: int = 3, width: int = 64, layers: int = 3) -> None:
        super().__init__()
        mods: list[nn.Module] = [spectral_norm(nn.Conv2d(in_channels, width, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True)]
        ch = width
        for i in range(1, layers):
            nxt = min(width * 2**i, width * 8)
            mods += [spectral_norm(nn.Conv2d(ch, nxt, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True)]
            ch = nxt
        mods += [spectral_norm(nn.Conv2d(ch, ch, 4, 1, 1)), nn.LeakyReLU(0.2, inplace=True), spectral_norm(nn.Conv2d(ch, 1, 4, 1, 1))]
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Patch logits, B x 1 x h x w."""
        return self.net(x)


def lab_for_discriminator(lightness: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """Scale L (0..100) and ab (+-110) to about -1..1 and stack them."""
    return torch.cat([lightness / 50.0 - 1.0, ab / 110.0], dim=1)
