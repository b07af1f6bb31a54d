"""Luminance-guided chroma upsampling (the fast guided filter of He & Sun 2015 / Wu et al. 2018).

Chroma predicted at low resolution is modelled, in every small window, as a linear function of the
luminance: ``ab ~ A * L + b``. A and b are fitted at low resolution, smoothed, upsampled bilinearly,
and applied to the FULL-resolution luminance, so colour edges snap to the original's edges instead
of bleeding (bilinear) or blocking (nearest). Cost at full size: one bilinear upsample of four maps
and one multiply-add, so a 12-megapixel scan costs little more than the render size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .interrupts import interrupt_point


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a (2r+1)^2 window, averaging only the pixels inside the image at the borders.

    Separable: a column pass, then a row pass (2r + 1 reads per pixel each, not (2r + 1)^2). Exact,
    because with count_include_pad=False the count of a window's pixels inside the image is the
    product of its two 1-D counts. Each pass is an interrupt point (``gan_core.interrupts``)."""
    if radius <= 0:
        return x
    k = 2 * radius + 1
    interrupt_point()
    x = F.avg_pool2d(x, (k, 1), stride=1, padding=(radius, 0), count_include_pad=False)
    interrupt_point()
    return F.avg_pool2d(x, (1, k), stride=1, padding=(0, radius), count_include_pad=False)


def fit_linear_model(
    src_low: torch.Tensor, guide_low: torch.Tensor, radius: int, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel coefficients (A, b) with ``src ~ A * guide + b`` in each window, box-smoothed.

    The maps to smooth go through ``box_mean`` stacked on the channel axis: two calls in all, not
    one per map."""
    c = src_low.shape[1]
    guide = guide_low.expand_as(src_low[:, :1])
    stats = box_mean(torch.cat([guide, src_low, guide * src_low, guide * guide], dim=1), radius)
    mean_g, mean_s, mean_gs, mean_gg = stats.split([1, c, c, 1], dim=1)
    a = (mean_gs - mean_g * mean_s) / (mean_gg - mean_g * mean_g + eps)
    b = mean_s - a * mean_g
    return box_mean(torch.cat([a, b], dim=1), radius).split([c, c], dim=1)


def guided_upsample(
    src_low: torch.Tensor,
    guide_low: torch.Tensor,
    guide_full: torch.Tensor,
    radius: int = 2,
    eps: float = 1e-3,
) -> torch.Tensor:
    """Upsample ``src_low`` (B x C x h x w) to the size of ``guide_full`` (B x 1 x H x W).

    ``guide_low`` is the guide at the low resolution (B x 1 x h x w). Guides should be in 0..1.
    """
    a, b = fit_linear_model(src_low, guide_low, radius, eps)
    size = guide_full.shape[-2:]
    if a.shape[-2:] != size:
        a = F.interpolate(a, size=size, mode="bilinear", align_corners=False)
        b = F.interpolate(b, size=size, mode="bilinear", align_corners=False)
    return a * guide_full + b
