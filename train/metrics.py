"""Image quality measures for the evaluation: PSNR, SSIM, colourfulness, brown cast, VGG distance,
the sliced Wasserstein distance between Lab colour distributions, and flicker across video frames.

All take B x 3 x H x W float tensors in 0..1 (RGB) and return one value per image, unless they say otherwise.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from gan_core.color import chroma, rgb_to_lab

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


def sliced_wasserstein_lab(a: torch.Tensor, b: torch.Tensor, *, directions: int = 64, quantiles: int = 256,
                           seed: int = 0) -> torch.Tensor:
    """Sliced Wasserstein-1 distance (Rabin et al. 2011) between the Lab colour distributions of ``a`` and
    ``b``, in Lab units: the mean over random unit directions of the L1 distance between the two
    images' quantile functions along that direction. The images may differ in size (quantiles, not
    pixels, are compared); the directions are fixed by ``seed`` so every method is measured alike."""
    gen = torch.Generator().manual_seed(seed)
    dirs = torch.randn(3, directions, generator=gen)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    levels = (torch.arange(quantiles, dtype=torch.float32) + 0.5) / quantiles

    def quantile_functions(rgb: torch.Tensor) -> torch.Tensor:  # B x quantiles x directions
        lab = rgb_to_lab(rgb.float()).flatten(2).transpose(1, 2)  # B x N x 3
        proj = (lab @ dirs.to(lab)).sort(dim=1).values
        n = proj.shape[1]
        index = (levels * n).long().clamp(max=n - 1).to(proj.device)
        return proj[:, index]

    return (quantile_functions(a) - quantile_functions(b)).abs().mean(dim=(1, 2))


def flicker(frames_ab: torch.Tensor, shift: tuple[int, int]) -> torch.Tensor:
    """Per-pixel ab change between consecutive frames, aligned for a camera moving ``shift`` = (dy, dx)
    pixels per frame (frame t+1 shows at (y, x) what frame t showed at (y + dy, x + dx)).

    ``frames_ab``: T x 2 x H x W (Lab ab). Returns the changes of all overlapping pixels of all
    consecutive pairs, flattened: summarise them with their mean and a high percentile."""
    dy, dx = shift
    if frames_ab.shape[0] < 2:
        raise ValueError("flicker needs at least two frames")
    h, w = frames_ab.shape[-2:]
    if abs(dy) >= h or abs(dx) >= w:
        raise ValueError(f"a shift of {shift} leaves no overlap between {h} x {w} frames")
    cur = frames_ab[:-1, :, max(dy, 0): h + min(dy, 0), max(dx, 0): w + min(dx, 0)]
    nxt = frames_ab[1:, :, max(-dy, 0): h + min(-dy, 0), max(-dx, 0): w + min(-dx, 0)]
    return chroma(cur - nxt).flatten()


def mean(values: list[float]) -> float:
    return float(sum(values) / len(values)) if values else math.nan
