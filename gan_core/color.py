"""Differentiable sRGB <-> CIE Lab (D65) conversion and luminance helpers.

All functions take and return B x C x H x W float tensors. RGB is sRGB in 0..1; Lab uses the
usual ranges (L in 0..100, a and b roughly -110..110). Every step is a plain torch expression, so
gradients flow through it (the trainer's colour losses rely on that).
"""

from __future__ import annotations

import math

import torch

# sRGB primaries to CIE XYZ, D65 white (IEC 61966-2-1).
_RGB_TO_XYZ = torch.tensor(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ],
    dtype=torch.float64,
)
_XYZ_TO_RGB = torch.linalg.inv(_RGB_TO_XYZ)
_WHITE_D65 = torch.tensor([0.950456, 1.0, 1.088754], dtype=torch.float64)
# The white point folded into the matrices (XYZ / white and XYZ * white cost a full pass each).
_RGB_TO_XYZ_OVER_WHITE = _RGB_TO_XYZ / _WHITE_D65[:, None]
_XYZ_TIMES_WHITE_TO_RGB = _XYZ_TO_RGB * _WHITE_D65[None, :]

_EPS = 216.0 / 24389.0  # CIE epsilon: (6/29)^3
_KAPPA = 24389.0 / 27.0  # CIE kappa


def _mix_channels(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Apply a 3x3 matrix to the channel axis of a B x 3 x H x W tensor.

    A batched matrix product over the flattened pixels, which the CPU runs faster than the
    equivalent einsum."""
    m = matrix.to(device=x.device, dtype=x.dtype)
    b, c, h, w = x.shape
    return (m @ x.reshape(b, c, h * w)).reshape(b, m.shape[0], h, w)


def _power(x: torch.Tensor, exponent: float, scale: float = 1.0) -> torch.Tensor:
    """``scale * x ** exponent`` for x > 0, as exp(exponent * log x + log scale): faster than ``**``
    on the CPU and equal within 1e-7. Differentiable: the in-place steps touch only tensors that
    backward does not keep (log keeps its input, exp its output)."""
    y = x.log().mul_(exponent)
    return (y.add_(math.log(scale)) if scale != 1.0 else y).exp_()


def _knee(x: torch.Tensor, knee: float, curve, slope: float, *, offset: float = 0.0,
          low: float | None = None, high: float | None = None) -> torch.Tensor:
    """``curve(x) + offset`` above ``knee``; below it the straight line of gradient ``slope`` through
    (knee, curve(knee) + offset). ``x`` is first clipped to ``low..high`` (either may be None).

    The piecewise sRGB and Lab functions, written with two clamps rather than ``torch.where``,
    which is far slower where the mask changes from pixel to pixel (noisy images). ``curve`` only
    sees values >= knee (no pow of zero, finite gradients). The clip and the offset ride on the clamps and the line, one
    full-size pass each fewer."""
    above = curve(x.clamp(knee, high))
    below = x.clamp(low, knee).sub_(knee - offset / slope)
    return torch.add(above, below, alpha=slope)


def srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    # ((x + 0.055) / 1.055) ** 2.4 with the division folded into the power's scale. The line through
    # the knee is x / 12.92 to within 1e-8 (the standard's two pieces meet there).
    return _knee(rgb, 0.04045, lambda x: _power(x + 0.055, 2.4, 1.055**-2.4), 1 / 12.92, low=0.0, high=1.0)


def linear_to_srgb(lin: torch.Tensor) -> torch.Tensor:
    return _knee(lin, 0.0031308, lambda x: _power(x, 1 / 2.4, 1.055), 12.92, offset=-0.055, low=0.0, high=1.0)


_F_KNEE = 6.0 / 29.0  # _f(_EPS): the cube root meets the straight segment there


def _f(t: torch.Tensor, scale: float = 1.0, offset: float = 0.0) -> torch.Tensor:
    """``scale * f(t) + offset``, with the scale and offset folded into the pieces (L = 116 f - 16
    costs no extra pass). Below EPS, f is the line (KAPPA * t + 16) / 116 through (EPS, 6/29)."""
    return _knee(t, _EPS, lambda x: _power(x, 1.0 / 3.0, scale), _KAPPA / 116.0 * scale, offset=offset)


def _f_inv(f: torch.Tensor) -> torch.Tensor:
    # Below 6/29 the line (116 * f - 16) / KAPPA, which passes through (6/29, EPS).
    return _knee(f, _F_KNEE, lambda x: x**3, 116.0 / _KAPPA)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB (0..1) to CIE Lab. Values outside 0..1 are clamped first."""
    fx, fy, fz = _f(_mix_channels(srgb_to_linear(rgb), _RGB_TO_XYZ_OVER_WHITE)).unbind(dim=1)
    lum = 116.0 * fy - 16.0
    a = 500.0 * (fx - fy)
    b = 200.0 * (fy - fz)
    return torch.stack([lum, a, b], dim=1)


def lab_to_rgb(lab: torch.Tensor, clamp: bool = True) -> torch.Tensor:
    """CIE Lab to sRGB (0..1). Out-of-gamut colours are clipped when ``clamp`` is set."""
    return lightness_ab_to_rgb(lab[:, :1], lab[:, 1:], clamp)


def lightness_ab_to_rgb(lightness: torch.Tensor, ab: torch.Tensor, clamp: bool = True,
                        out: torch.Tensor | None = None) -> torch.Tensor:
    """``lab_to_rgb`` with L (B x 1 x H x W) and ab (B x 2 x H x W) apart, so callers that have them
    separately need not concatenate them first. ``out`` (with ``clamp``; not for autograd): write
    the result there, e.g. straight into a strip of a larger image instead of copying it over."""
    fy = (lightness + 16.0) / 116.0
    # one _f_inv over the three maps: a third of the calls of one per map
    f = torch.cat([fy + ab[:, :1] / 500.0, fy, fy - ab[:, 1:] / 200.0], dim=1)
    rgb = linear_to_srgb(_mix_channels(_f_inv(f), _XYZ_TIMES_WHITE_TO_RGB))
    if not clamp:
        return rgb
    return rgb.clamp(0.0, 1.0) if out is None else torch.clamp(rgb, 0.0, 1.0, out=out)


def luminance(rgb: torch.Tensor, grey: bool = False) -> torch.Tensor:
    """The L channel (0..100) of an sRGB image, B x 1 x H x W: ``rgb_to_lab(rgb)[:, :1]`` without
    computing X and Z (a third of the work on a full-resolution scan).

    ``grey``: the caller knows R = G = B (a black-and-white scan stored as RGB). The Y row of the
    matrix sums to 1, so Y is then the linear value of any one channel: one channel's transfer curve
    instead of three, the same result to rounding."""
    if grey:
        y = srgb_to_linear(rgb[:, :1])
    else:
        y = _mix_channels(srgb_to_linear(rgb), _RGB_TO_XYZ[1:2])  # white Y is 1
    return _f(y, 116.0, -16.0)


def chroma(ab: torch.Tensor) -> torch.Tensor:
    """The chroma |ab| of ab values along dimension 1 (B x 2 x H x W maps give B x 1 x H x W, N x 2 rows N x 1).
    ``torch.hypot`` of the two: a vector norm over a two-entry dimension takes a generic strided reduction, over a
    hundred times slower on the CPU."""
    return torch.hypot(ab[:, 0:1], ab[:, 1:2])


def grey_rgb_from_lightness(lightness: torch.Tensor) -> torch.Tensor:
    """A neutral grey sRGB image (B x 3 x H x W) with the given L (0..100): what the encoder sees."""
    zeros = torch.zeros_like(lightness)
    return lab_to_rgb(torch.cat([lightness, zeros, zeros], dim=1))
