"""Composition in CIE Lab: the three jobs' outputs from lightness, colour-decoder ab and the stylised image.

Colorize keeps the original L and takes ab from the colour decoder; Style Transfer takes L (and ab,
unless colour is preserved) from the stylised image; Blend mixes the two by lambda. Because every
output goes through ``compose``, Blend's endpoints equal the Colorize and Style Transfer outputs
exactly. ``smooth_chroma`` carries chroma across video frames before composition.
"""

from __future__ import annotations

import torch

from .color import lightness_ab_to_rgb


def mix(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """(1 - t) * a + t * b, exactly ``a`` at t = 0 and exactly ``b`` at t = 1."""
    return (1.0 - t) * a + t * b


def compose(
    lightness: torch.Tensor, ab_color: torch.Tensor, lab_style: torch.Tensor, lambda_content: float, lambda_color: float
) -> torch.Tensor:
    """The blend in Lab: L from style (0) to original (1); ab from style (0) to colour decoder (1)."""
    out_l = mix(lab_style[:, :1], lightness, lambda_content)
    out_ab = mix(lab_style[:, 1:], ab_color, lambda_color)
    return lightness_ab_to_rgb(out_l, out_ab)


def smooth_chroma(ab_half, guide_half, previous, strength: float, sigma: float = 0.04):
    """Carry chroma over from the previous frame, per pixel, where the luminance stayed the same.

    The carried share is ``strength * exp(-|L_t - L_t-1| / sigma)`` (L in 0..1), so static regions
    keep a steady colour and moving ones follow the current frame instead of ghosting.
    Returns the smoothed ab maps and the state to pass with the next chunk.
    """
    out = ab_half.clone()
    for i in range(out.shape[0]):
        if previous is not None and previous[0].shape == out[i : i + 1].shape:
            prev_ab, prev_guide = previous
            carry = strength * torch.exp(-(guide_half[i : i + 1] - prev_guide).abs() / sigma)
            out[i : i + 1] = carry * prev_ab + (1 - carry) * out[i : i + 1]
        previous = (out[i : i + 1], guide_half[i : i + 1])
    return out, previous
