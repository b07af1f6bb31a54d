"""Image quality measures for the evaluation: PSNR, SSIM, colourfulness, brown cast, VGG distance.

All take B x 3 x H x W float tensors in 0..1 (RGB) and return one value per image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from gan_core.color import rgb_to_lab

BROWN_HUES = (20.0, 90.0)  # degrees in the Lab ab plane: orange, brown, ochre, sepia
BROWN_SHARE = 0.7  # an image has a brown cast when this share of its coloured pixels has such a hue
CHROMATIC = 5.0  # Lab chroma above which a pixel counts as coloured


def psnr(a: torch.Tensor, b: torch.Tensor, cap: float = 100.0) -> torch.Tensor:
    mse = ((a - b) ** 2).flatten(1).mean(1)
    return torch.where(mse > 0, 10 * torch.log10(1.0 / mse.clamp_min(1e-20)), torch.full_like(mse, cap)).clamp(max=cap)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).view(1, 1, size, size)


def ssim(a: torch.Tensor, b: torch.Tensor, c1: float = 0.01**2, c2: float = 0.03**2) -> torch.Tensor:
    """Mean SSIM (Wang et al. 2004; 11 x 11 Gaussian window, sigma 1.5) over the channels and the image."""
    channels = a.shape[1]
    window = _gaussian_window().to(a).expand(channels, 1, 11, 11)
    blur = lambda x: F.conv2d(x, window, groups=channels)  # noqa: E731  valid region only
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(1)


def colourfulness(rgb: torch.Tensor) -> torch.Tensor:
    """Hasler & Suesstrunk (2003) on 0..255 values: sqrt(sd_rg^2 + sd_yb^2) + 0.3 sqrt(mu_rg^2 + mu_yb^2)."""
    r, g, b = (rgb * 255.0).unbind(1)
    rg = (r - g).flatten(1)
    yb = (0.5 * (r + g) - b).flatten(1)
    std = (rg.std(1, unbiased=False) ** 2 + yb.std(1, unbiased=False) ** 2).sqrt()
    mean = (rg.mean(1) ** 2 + yb.mean(1) ** 2).sqrt()
    return std + 0.3 * mean


def brown_cast(rgb: torch.Tensor) -> torch.Tensor:
    """1.0 where an image's coloured pixels are mostly orange-brown (the DeOldify/Zhang sepia look), else 0.0.

    Rule: of the pixels with Lab chroma above 5, at least 70% have a hue angle between 20 and 90
    degrees; an image with almost no coloured pixels (under 5%) has no cast.
    """
    lab = rgb_to_lab(rgb)
    a, b = lab[:, 1].flatten(1), lab[:, 2].flatten(1)
    chroma = (a * a + b * b).sqrt()
    hue = torch.rad2deg(torch.atan2(b, a))
    coloured = chroma > CHROMATIC
    brown = coloured & (hue >= BROWN_HUES[0]) & (hue <= BROWN_HUES[1])
    n = coloured.sum(1).float()
    share = brown.sum(1).float() / n.clamp_min(1)
    return ((share >= BROWN_SHARE) & (n >= 0.05 * a.shape[1])).float()


def vgg_distance(encoder, a: torch.Tensor, b: torch.Tensor, taps=("relu1_2", "relu2_2", "relu3_3", "relu4_3")) -> torch.Tensor:
    """Mean over layers of |f(a) - f(b)|^2 / |f(b)|^2 on VGG16 features (a perceptual distance; not LPIPS)."""
    from gan_core.geometry import pad_for_network

    fa, fb = encoder(pad_for_network(a)), encoder(pad_for_network(b))
    out = 0.0
    for tap in taps:
        out = out + ((fa[tap] - fb[tap]) ** 2).flatten(1).mean(1) / (fb[tap] ** 2).flatten(1).mean(1).clamp_min(1e-8)
    return out / len(taps)


def reinhard_ab(grey_rgb: torch.Tensor, mean_ab: torch.Tensor) -> torch.Tensor:
    """Global colour transfer for a grey input: Reinhard et al. (2001) move the ab means to the target's;
    a grey image has no ab spread to rescale, so the result is the target's average tint."""
    from gan_core.color import lab_to_rgb

    lab = rgb_to_lab(grey_rgb)
    lab[:, 1:] = mean_ab.view(1, 2, 1, 1).to(lab)
    return lab_to_rgb(lab)


def mean(values: list[float]) -> float:
    return float(sum(values) / len(values)) if values else math.nan
