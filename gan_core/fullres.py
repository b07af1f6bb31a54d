"""Full-resolution results: the networks' outputs brought back to the input's size, strip by strip.

The networks run at the render size; the chroma comes back as guided-filter coefficients
(``gan_core.guided``) applied to the ORIGINAL luminance, and the stylised image is upsampled
bilinearly. Both are rendered one strip of rows at a time, so memory stays bounded for huge scans.
Columns are upsampled once per image and rows per strip as one small matrix product, which avoids
gathering the innermost axis for every strip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch.profiler import record_function

from .color import grey_rgb_from_lightness, luminance, rgb_to_lab
from .geometry import is_grey, pad_for_network
from .guided import fit_linear_model
from .interrupts import interrupt_point


def _taps(start: int, stop: int, scale: float, length: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Output pixels ``start..stop`` of a bilinear resize of an axis of ``length``: the two source
    pixels each one reads and the weight of the second. Output pixel i sits at source coordinate
    (i + 0.5) * scale - 0.5 (F.interpolate's align_corners=False convention)."""
    pos = ((torch.arange(start, stop, device=device, dtype=torch.float32) + 0.5) * scale - 0.5).clamp(min=0.0)
    i0 = pos.floor().long().clamp(max=length - 1)
    i1 = (i0 + 1).clamp(max=length - 1)
    return i0, i1, pos - i0


def upsample_axis(src: torch.Tensor, dim: int, start: int, stop: int, scale: float) -> torch.Tensor:
    """Bilinear samples ``start..stop`` of an output axis of ``src`` (see ``_taps``)."""
    i0, i1, w1 = _taps(start, stop, scale, src.shape[dim], src.device)
    shape = [1] * src.ndim
    shape[dim] = -1
    return torch.lerp(src.index_select(dim, i0), src.index_select(dim, i1), w1.view(shape).to(src.dtype))


def upsample_rows(src: torch.Tensor, start: int, stop: int, scale: float) -> torch.Tensor:
    """``upsample_axis`` along the rows (dim 2) of a B x C x h x W map, as one matrix product of the
    rows' weights with the band of source rows they read (no gathered copies)."""
    i0, i1, w1 = _taps(start, stop, scale, src.shape[2], src.device)
    first, last = int(i0[0]), int(i1[-1])  # the taps grow with the output row
    weights = src.new_zeros(stop - start, last - first + 1)
    rows = torch.arange(stop - start, device=src.device)
    w1 = w1.to(src.dtype)
    weights.index_put_((rows, i0 - first), 1 - w1, accumulate=True)  # at the last row both taps coincide
    weights.index_put_((rows, i1 - first), w1, accumulate=True)
    return torch.matmul(weights, src[:, :, first : last + 1])


def strips(height: int, width: int, pixel_budget: int) -> list[tuple[int, int]]:
    """Row ranges of a full-resolution image composed together (about ``pixel_budget`` pixels each)."""
    rows = max(1, pixel_budget // max(1, width))
    return [(y, min(y + rows, height)) for y in range(0, height, rows)]


def full_lightness(rgb: torch.Tensor, device: torch.device, pixel_budget: int,
                   check: Callable[[], None] | None = None) -> torch.Tensor:
    """L (0..100) of a 1 x 3 x H x W image, computed strip by strip on ``device``. Kept on a GPU when
    the networks run there (the composition reads it again), else on the image's device. ``check()``
    runs before every strip (an interrupt raises from it)."""
    keep_on = device if device.type == "cuda" else rgb.device
    out = torch.empty(1, 1, *rgb.shape[-2:], dtype=torch.float32, device=keep_on)
    with record_function("dualgan.lightness"):
        for y0, y1 in strips(*rgb.shape[-2:], pixel_budget):
            if check is not None:
                check()
            piece = rgb[:, :, y0:y1]
            out[:, :, y0:y1] = luminance(piece.to(device), grey=is_grey(piece))
    return out


def grey_network_input(lightness: torch.Tensor, pixel_budget: int, check: Callable[[], None] | None = None) -> torch.Tensor:
    """The encoder's input for a B x 1 x h x w lightness at render size: neutral grey sRGB, padded to the
    network's stride, converted a strip of rows at a time with ``check()`` before each."""
    b, _, h, w = lightness.shape
    grey = lightness.new_empty(b, 3, h, w)
    for y0, y1 in strips(h, w * b, pixel_budget):
        if check is not None:
            check()
        grey[:, :, y0:y1] = grey_rgb_from_lightness(lightness[:, :, y0:y1])
    return pad_for_network(grey)


def _half_scale_lightness(grey: torch.Tensor, pixel_budget: int) -> torch.Tensor:
    """L / 100 of a (padded, so even-sized) grey network input, averaged over 2 x 2 blocks; a strip of an
    even number of rows at a time, each an interrupt point."""
    b, _, h, w = grey.shape
    out = torch.empty(b, 1, h // 2, w // 2, dtype=torch.float32, device=grey.device)
    rows = max(2, pixel_budget // max(1, w * b) // 2 * 2)
    for y in range(0, h, rows):
        interrupt_point()
        out[:, :, y // 2 : (y + rows) // 2] = F.avg_pool2d(rgb_to_lab(grey[:, :, y : y + rows].float())[:, :1] / 100.0, 2)
    return out


def chroma_coefficients(ab_half: torch.Tensor, grey: torch.Tensor, *, saturation: float, radius: int,
                        eps: float, pixel_budget: int) -> torch.Tensor:
    """Guided-filter coefficients (A / 100, b) stacked, B x 4 x (1/2 padded render size), that map the
    lightness (0..100) to ab; fitted against the grey network input's lightness at half scale (computed
    ``pixel_budget`` pixels at a time). Its long steps are interrupt points (``gan_core.interrupts``)."""
    guide_low = _half_scale_lightness(grey, pixel_budget)
    a, b = fit_linear_model(ab_half * saturation, guide_low, radius=radius, eps=eps)
    # A scaled to L in 0..100 here, at 1/2 render size, rather than L / 100 in every strip
    return torch.cat([a / 100.0, b], dim=1)


@dataclass
class FullResolution:
    """One image's network results, rendered at the input's full size one strip of rows at a time.
    ``device`` is where the strips are computed (the networks' device)."""

    device: torch.device | None
    rgb: torch.Tensor  # 1 x 3 x H x W input (on its own device)
    lightness: torch.Tensor  # 1 x 1 x H x W original L
    coefficients: torch.Tensor | None  # guided-filter (A / 100, b) stacked, 1 x 4 x (1/2 render size, rounded up)
    coefficient_scale: tuple[float, float]
    stylised: torch.Tensor | None  # 1 x 3 x render size (no network padding: the taps clamp at its edges)
    stylised_scale: tuple[float, float]
    _wide: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    def strip(self, y0: int, y1: int) -> "Strip":
        return Strip(self, y0, y1)

    def _up(self, key: str, scale: tuple[float, float], y0: int, y1: int) -> torch.Tensor:
        """Rows y0..y1 of map ``key`` (``coefficients`` or ``stylised``) bilinearly at full size.
        The columns are upsampled once per image (render-size rows x full width), so a strip only
        blends whole rows (``upsample_rows``)."""
        width = self.rgb.shape[-1]
        if key not in self._wide:
            small = getattr(self, key)
            # an output pixel on the unit scale sits on a source pixel: a slice, no blending
            self._wide[key] = small[..., :width] if scale[1] == 1 else upsample_axis(small, 3, 0, width, scale[1])
        wide = self._wide[key]
        return wide[:, :, y0:y1] if scale[0] == 1 else upsample_rows(wide, y0, y1, scale[0])


class Strip:
    """Rows y0..y1 of one image's full-resolution parts, computed on first use."""

    def __init__(self, full: FullResolution, y0: int, y1: int) -> None:
        self.full, self.y0, self.y1 = full, y0, y1
        self.device = full.device
        self._cache: dict[str, torch.Tensor] = {}

    def _get(self, key: str, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    @property
    def lightness(self) -> torch.Tensor:
        return self._get("lightness", lambda: self.full.lightness[:, :, self.y0 : self.y1].to(self.device))

    @property
    def ab_original(self) -> torch.Tensor:
        return self._get("ab_original", lambda: rgb_to_lab(self.full.rgb[:, :, self.y0 : self.y1].to(self.device))[:, 1:])

    @property
    def ab_color(self) -> torch.Tensor:
        def compute():
            coefficients = self.full._up("coefficients", self.full.coefficient_scale, self.y0, self.y1)
            return torch.addcmul(coefficients[:, 2:], coefficients[:, :2], self.lightness)  # A / 100 * L + b

        return self._get("ab_color", compute)

    @property
    def lab_style(self) -> torch.Tensor:
        return self._get("lab_style", lambda: rgb_to_lab(
            self.full._up("stylised", self.full.stylised_scale, self.y0, self.y1).clamp(0.0, 1.0)))
