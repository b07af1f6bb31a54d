"""Colour hints: the colours a user paints on a picture, read from a hints image and spread along the
picture's structure.

Hints (Zhang et al. 2017, "Real-Time User-Guided Image Colorization with Learned Deep Priors") are sparse ab
values with a mask (``HintMap``). ``hints_from_image`` reads them from a picture painted on (or a hints image
with a mask or an alpha channel); ``spread_hints`` carries them over the picture by a joint-bilateral
normalised convolution over position and lightness (a bilateral grid: splat, blur, slice), so a dot of blue
in the sky reaches the sky and stops at the mountain's edge. ``gan_core.guidance`` turns the spread hints
into the decoder's guidance map.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F

from .color import chroma, rgb_to_lab
from .fullres import strips
from .geometry import check_image, clean_rgb

logger = logging.getLogger(__name__)

HINT_THRESHOLD = 6.0  # Lab units a painted pixel must stand apart from the image's mean tint
# Joint-bilateral spreading of hints: spatial sigmas as shares of the short side (fine to coarse;
# one hint must reach its whole region, a hundred must stay local: the finest level keeps dense hints'
# colours apart) and the lightness sigmas (L in 0..1).
# The coarsest spread colours every pixel it reaches at all, across a wider lightness range, so a lone
# hint still colours a textured region; the finer ones take over where hints are near and stop at small
# steps of lightness. All were chosen on training photos (``python -m train sweep-guidance-fusion``); there
# a narrower coarsest range (0.03) scored better with one hint, but on held-out photos it scored worse, as
# the decoder's own colours, which it then keeps, are right far more often on the photos it was trained on.
SPREAD_SIGMAS = (0.02, 0.05, 0.1, 0.3, 1.0)
SPREAD_RANGE_SIGMA = 0.03
REACH_RANGE_SIGMA = 0.08
SPARSE_HINTS_SHARE = 16  # hint maps with fewer than 1 in this many pixels set are shrunk hint by hint
TINT_PIXELS = 1 << 16  # about how many pixels of a picture its mean tint is measured on
HINT_STRIP_PIXELS = 1 << 18  # hint pixels converted to Lab at once
PAINT_TOLERANCE = 1.5 / 255.0  # a hints picture's pixel is painted on where a channel differs from the picture's by more


class HintMap:
    """Colour hints at an image's resolution: ``ab`` (B x 2 x H x W, Lab units) where ``mask`` (B x 1 x H x W) is 1.

    Built from those two maps, or from the hinted pixels alone (``from_pixels``): a few strokes on a large picture
    then cost no full-size maps, and ``ab`` and ``mask`` are filled in only when something asks for them."""

    def __init__(self, ab: torch.Tensor, mask: torch.Tensor) -> None:
        if ab.ndim != 4 or ab.shape[1] != 2 or mask.ndim != 4 or mask.shape[1] != 1:
            raise ValueError(f"hints must be B x 2 x H x W ab with a B x 1 x H x W mask, got {tuple(ab.shape)} "
                             f"and {tuple(mask.shape)}")
        if ab.shape[0] != mask.shape[0] or ab.shape[-2:] != mask.shape[-2:]:
            raise ValueError(f"the hint colours {tuple(ab.shape)} and the hint mask {tuple(mask.shape)} differ in size")
        self._maps: tuple[torch.Tensor, torch.Tensor] | None = (ab, mask)
        self._pixels: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self.shape = (ab.shape[0], *ab.shape[-2:])  # B, H, W

    @classmethod
    def from_pixels(cls, shape: tuple[int, int, int], image: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor,
                    ab: torch.Tensor) -> "HintMap":
        """Hints at pixels (``image``, ``rows``, ``columns``: N indices each) with colours ``ab`` (N x 2), in maps of
        ``shape`` (B, H, W); each pixel at most once."""
        hints = cls.__new__(cls)
        hints._maps = None
        hints.shape = tuple(shape)
        hints._pixels = (image, rows * shape[2] + columns, ab.float(), torch.ones_like(ab[:, 0], dtype=torch.float32))
        return hints

    def _dense(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._maps is None:
            b, flat, values, weight = self._pixels
            batch, height, width = self.shape
            ab = values.new_zeros(batch, 2, height * width)
            mask = values.new_zeros(batch, 1, height * width)
            ab[b, :, flat] = values
            mask[b, 0, flat] = weight
            self._maps = (ab.view(batch, 2, height, width), mask.view(batch, 1, height, width))
        return self._maps

    @property
    def ab(self) -> torch.Tensor:
        return self._dense()[0]

    @property
    def mask(self) -> torch.Tensor:
        return self._dense()[1]

    @property
    def batch(self) -> int:
        return self.shape[0]

    def count(self) -> int:
        if self._maps is None:
            return int((self._pixels[3] > 0).sum())
        return int((self.mask > 0).sum())

    def select(self, start: int, stop: int) -> "HintMap":
        """The hints of images start..stop (a single shared hint map serves every image)."""
        if self.batch == 1:
            return self
        if self._maps is not None:
            return HintMap(self.ab[start:stop], self.mask[start:stop])
        b, flat, values, _ = self._pixels
        keep = (b >= start) & (b < stop)
        width = self.shape[2]
        return HintMap.from_pixels((min(stop, self.batch) - start, *self.shape[1:]), b[keep] - start,
                                   flat[keep] // width, flat[keep] % width, values[keep])

    def resized(self, size: tuple[int, int]) -> "HintMap":
        """The hints at another size. Shrinking gives each pixel the mean colour of the hints that fall into it
        (a source pixel falls into exactly one) and keeps it as a hint when any does, so one-pixel dots survive a
        large reduction."""
        if tuple(self.shape[1:]) == tuple(size):
            return self
        if size[0] <= self.shape[1] and size[1] <= self.shape[2]:
            return self._shrunk(size, tuple(size))
        ab = F.interpolate(self.ab.float(), size=size, mode="nearest")
        return HintMap(ab, F.interpolate(self.mask.float(), size=size, mode="nearest"))

    def network_half(self, render: tuple[int, int], padded: tuple[int, int]) -> "HintMap":
        """The hints where the colour decoder's guidance reads them: scaled to the render size ``render``, padded
        (bottom and right, with no hints) to the network's ``padded`` size, at half that size. Shrinking goes
        straight from the hints' own size onto the half-size cells: the same cells as shrinking to the render
        size and then halving, in one pass over the hints."""
        (h_r, w_r), (hp, wp) = render, padded
        if h_r > self.shape[1] or w_r > self.shape[2]:
            small = self.resized(render)
            pad = (0, wp - w_r, 0, hp - h_r)
            return HintMap(F.pad(small.ab, pad), F.pad(small.mask, pad)).resized((hp // 2, wp // 2))
        return self._shrunk((hp // 2, wp // 2), (h_r / 2, w_r / 2))

    def _shrunk(self, size: tuple[int, int], covered: tuple[float, float]) -> "HintMap":
        """The hints shrunk onto the top-left ``covered`` (rows, columns, possibly half-integers) of a ``size`` map;
        the rest of the map holds no hints."""
        (_, height, width), (h, w) = self.shape, size
        # Source row y falls into row floor(y * covered / height): with covered = rows / 2, as integers,
        # y * 2 covered // (2 height).
        rows, columns = (round(2 * c) for c in covered)
        # Hints are usually a few strokes or dots: summing only the hint pixels skips the full-size passes
        # over the whole map, which cost more than the rest of the hints' work at 12 MP.
        if self._pixels is None:
            ab_map, mask_map = self._maps
            flat = mask_map.float().flatten(1)  # B x HW
            b, p = flat.nonzero(as_tuple=True)
            if p.numel() * SPARSE_HINTS_SHARE > flat.numel():
                return self._shrunk_dense(size, rows, columns)
            self._pixels = (b, p, ab_map.float().flatten(2)[b, :, p], flat[b, p])
        b, p, ab, weight = self._pixels
        cell = (p // width * rows // (2 * height)) * w + (p % width * columns // (2 * width))
        values = torch.cat([ab * weight[:, None], weight[:, None]], dim=1)  # N x 3
        sums = ab.new_zeros(self.batch, h * w, 3).index_put_((b, cell), values, accumulate=True)
        return _hints_from_sums(sums.transpose(1, 2).reshape(-1, 3, h, w))

    def _shrunk_dense(self, size: tuple[int, int], rows: int, columns: int) -> "HintMap":
        (height, width), (h, w) = self.mask.shape[-2:], size
        mask = self.mask.float()
        weighted = torch.cat([self.ab.float() * mask, mask], dim=1)
        row_cells = torch.arange(height, device=mask.device) * rows // (2 * height)
        column_cells = torch.arange(width, device=mask.device) * columns // (2 * width)
        by_row = weighted.new_zeros(weighted.shape[0], 3, h, width).index_add_(2, row_cells, weighted)
        return _hints_from_sums(by_row.new_zeros(weighted.shape[0], 3, h, w).index_add_(3, column_cells, by_row))


def _hints_from_sums(sums: torch.Tensor) -> HintMap:
    """Hints from per-pixel sums (B x 3 x H x W: mask-weighted a, b and the mask weight itself)."""
    weight = sums[:, 2:3]
    found = weight > 0
    return HintMap(sums[:, :2] / weight.clamp_min(1e-12) * found, found.float())


def hints_from_image(hints_rgb: torch.Tensor, image_rgb: torch.Tensor, mask: torch.Tensor | None = None,
                     threshold: float = HINT_THRESHOLD) -> HintMap:
    """Colour hints painted on a picture.

    ``hints_rgb`` (B x 3 or 4 x H x W, 0..1) is scaled to ``image_rgb``'s size when it differs. With a
    ``mask`` (B x 1 x H x W or B x H x W, any size), pixels where it exceeds 0.5 are hints; an RGBA
    hints image's alpha acts as the mask; otherwise a pixel is a hint where it was painted on (a channel differs
    from the image's by more than ``PAINT_TOLERANCE``) and its chroma lies more than ``threshold`` Lab units from
    the image's own mean tint (so strokes painted over a grey or sepia scan count, and JPEG noise and the scan's
    own tones do not)."""
    if hints_rgb.ndim != 4 or hints_rgb.shape[1] not in (3, 4):
        raise ValueError(f"the hints image must be B x 3 (RGB) or B x 4 (RGBA) x H x W, got {tuple(hints_rgb.shape)}")
    if hints_rgb.shape[0] not in (1, image_rgb.shape[0]):
        raise ValueError(f"the hints batch has {hints_rgb.shape[0]} images; give 1 or one per image ({image_rgb.shape[0]})")
    image_rgb = check_image(image_rgb)
    size = tuple(image_rgb.shape[-2:])
    if tuple(hints_rgb.shape[-2:]) != size:
        hints_rgb = F.interpolate(clean_rgb(hints_rgb), size=size, mode="bilinear", align_corners=False)
    if mask is None and hints_rgb.shape[1] == 4:
        mask = hints_rgb[:, 3:]
    if mask is None:
        # The tint is a mean over pixels: every step-th pixel of every step-th row estimates it without bias (a
        # shrunk copy would average colours before the nonlinear conversion) to a fraction of a Lab unit.
        step = max(1, math.isqrt(size[0] * size[1] // TINT_PIXELS))
        tint = rgb_to_lab(image_rgb[..., ::step, ::step])[:, 1:].mean(dim=(2, 3), keepdim=True)
        # Only pixels painted on (a channel differs from the picture's) can be hints: strokes over a copy of the
        # scan leave every other pixel as it was, and the scan's own tones (a sepia print is paler in its
        # highlights) are not the user's colours. Strip by strip, so the differences stay in the cache.
        batch = max(hints_rgb.shape[0], image_rgb.shape[0])
        found = []
        for top, bottom in strips(*size, HINT_STRIP_PIXELS):
            difference = hints_rgb[:, :3, top:bottom].float() - image_rgb[:, :, top:bottom]
            painted = difference.abs_().amax(dim=1) > PAINT_TOLERANCE  # B x rows x W
            b, y, x = painted.expand(batch, -1, -1).nonzero(as_tuple=True)
            found.append((b, y + top, x))
        b, y, x = (torch.cat(parts) for parts in zip(*found))
        return _hints_at(hints_rgb, (batch, *size), b, y, x, tint[:, :, 0, 0], threshold)
    mask = mask.float()
    if mask.ndim == 3:
        mask = mask[:, None]
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise ValueError(f"the hint mask must be B x H x W or B x 1 x H x W, got {tuple(mask.shape)}")
    if mask.shape[0] not in (1, image_rgb.shape[0]):
        raise ValueError(f"the hint mask batch has {mask.shape[0]} masks; give 1 or one per image ({image_rgb.shape[0]})")
    if tuple(mask.shape[-2:]) != size:
        mask = F.interpolate(mask, size=size, mode="bilinear", align_corners=False)
    batch = max(mask.shape[0], hints_rgb.shape[0])
    b, _, y, x = (mask > 0.5).expand(batch, -1, -1, -1).nonzero(as_tuple=True)
    return _hints_at(hints_rgb, (batch, *size), b, y, x)


def _hints_at(hints_rgb: torch.Tensor, shape: tuple[int, int, int], b: torch.Tensor, y: torch.Tensor, x: torch.Tensor,
              tint: torch.Tensor | None = None, threshold: float = HINT_THRESHOLD) -> HintMap:
    """The hints at pixels (``b``, ``y``, ``x``) of ``hints_rgb`` (1 or B pictures), in their own colours, as a
    ``HintMap`` of ``shape`` (B, H, W); with a ``tint`` (1 or B x 2), only those whose colour lies more than
    ``threshold`` Lab units from it. Only these pixels are converted to Lab, ``HINT_STRIP_PIXELS`` at a time."""
    kept = []
    for start in range(0, b.numel(), HINT_STRIP_PIXELS):
        pb, py, px = (t[start : start + HINT_STRIP_PIXELS] for t in (b, y, x))
        colours = clean_rgb(hints_rgb[pb.clamp(max=hints_rgb.shape[0] - 1), :3, py, px])  # N x 3
        values = rgb_to_lab(colours.t()[None, :, :, None])[0, 1:, :, 0].t()  # N x 2
        if tint is not None:
            keep = (chroma(values - tint[pb.clamp(max=tint.shape[0] - 1)]) > threshold)[:, 0]
            pb, py, px, values = pb[keep], py[keep], px[keep], values[keep]
        kept.append((pb, py, px, values))
    if not kept:
        kept.append((b, y, x, hints_rgb.new_zeros(0, 2, dtype=torch.float32)))
    return HintMap.from_pixels(shape, *(torch.cat(parts) for parts in zip(*kept)))


def hints_or_none(hints_rgb: torch.Tensor | None, image_rgb: torch.Tensor, mask: torch.Tensor | None = None, *,
                  source: str = "the hints picture") -> HintMap | None:
    """``hints_from_image``, or None (with a warning naming ``source``) when nothing is marked, so the
    picture is coloured automatically instead of failing."""
    if hints_rgb is None:
        return None
    hints = hints_from_image(hints_rgb, image_rgb, mask)
    if hints.count() == 0:
        logger.warning("%s holds no colour hints (nothing painted stands apart from the picture's tint, and no "
                       "mask or transparency marks any); colouring without them", source)
        return None
    return hints

# ---- spreading hints along the picture's structure ---------------------------------------------

def _blur_grid(grid: torch.Tensor) -> torch.Tensor:
    """A [1, 4, 6, 4, 1] / 16 blur along each of the grid's three axes (one grid cell = one sigma), zero beyond
    the edges. Shifted sums rather than a convolution: the grids are small (tens of cells a side), and a
    depthwise 3-D convolution's setup costs more than the sums themselves."""
    for dim in (2, 3, 4):
        n = grid.shape[dim]
        out = grid * (6.0 / 16.0)
        for shift, tap in ((1, 4.0 / 16.0), (2, 1.0 / 16.0)):
            if shift >= n:
                break
            out.narrow(dim, shift, n - shift).add_(grid.narrow(dim, 0, n - shift), alpha=tap)
            out.narrow(dim, 0, n - shift).add_(grid.narrow(dim, shift, n - shift), alpha=tap)
        grid = out
    return grid


class _BilateralGrids:
    """Joint-bilateral normalised convolution of known values (B x (C+1) x h x w: value x weight, then the weight)
    guided by ``lightness`` (B x 1 x h x w, 0..1), on bilateral grids of several sizes; what every grid shares (the
    known pixels, the pixel coordinates, the lightness coordinates of each range sigma) is computed once."""

    def __init__(self, known: torch.Tensor, lightness: torch.Tensor) -> None:
        b, channels, h, w = known.shape
        self.shape = (b, channels, h, w)
        self.lightness = lightness.float().clamp(0.0, 1.0)[:, 0]  # B x h x w
        self.rows = torch.arange(h, device=known.device, dtype=torch.float32)
        self.columns = torch.arange(w, device=known.device, dtype=torch.float32)
        # Only the known pixels are splatted (a pixel of weight 0 adds nothing): hints are a few dots or strokes,
        # and sending every other pixel's zeros into every grid cost more than the rest of the splat.
        data = known.reshape(b, channels, h * w)
        self.batch_index, pixel = (data[:, channels - 1] != 0).nonzero(as_tuple=True)
        self.values = data[self.batch_index, :, pixel]  # N x (C+1)
        self.known_rows, self.known_columns = (pixel // w).float(), (pixel % w).float()
        self.known_lightness = self.lightness.flatten(1)[self.batch_index, pixel]
        self._depth: dict[float, tuple[torch.Tensor, torch.Tensor]] = {}

    def _lightness_cells(self, sigma_range: float, depth: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Each pixel's lightness cell below it and its fraction of the way to the next (B x h x w each), in grids
        of ``sigma_range`` and ``depth`` cells."""
        if sigma_range not in self._depth:
            zs = self.lightness / sigma_range + 1
            below = zs.floor().clamp_(max=depth - 2)
            self._depth[sigma_range] = (below, zs.sub_(below)[:, None])
        return self._depth[sigma_range]

    def spread(self, sigma_space: float, sigma_range: float) -> tuple[torch.Tensor, torch.Tensor]:
        """The spread values (B x C) and the spread weight (B x 1: the kernel mass of known grid cells near each
        pixel) on a grid of ``sigma_space`` pixels by ``sigma_range`` lightness."""
        b, channels, h, w = self.shape
        c = channels - 1
        cell = max(1.0, sigma_space)
        gh, gw, gd = int(h / cell) + 3, int(w / cell) + 3, int(1.0 / sigma_range) + 3
        ys, xs = self.rows / cell + 1, self.columns / cell + 1
        below, fraction = self._lightness_cells(sigma_range, gd)
        # Splat: each known pixel into its nearest cell.
        index = (((self.known_lightness / sigma_range + 1).round().long() * gh + (self.known_rows / cell + 1).round().long())
                 * gw + (self.known_columns / cell + 1).round().long())
        grid = self.values.new_zeros(b, gd * gh * gw, channels)
        grid = grid.index_put_((self.batch_index, index), self.values, accumulate=True).transpose(1, 2)
        # Each occupied cell counts once, with its mean value, so the mass counts cells of known colour,
        # not pixels: a nine-pixel hint patch weighs what a one-pixel dot does.
        occupied = (grid[:, c:] > 0).float()
        grid = torch.cat([grid[:, :c] / grid[:, c:].clamp_min(1e-12) * occupied, occupied], dim=1)
        grid = _blur_grid(grid.view(b, channels, gd, gh, gw))
        # Slice: a trilinear read at each pixel's (x, y, L), as two bilinear reads (the lightness cells below and
        # above) of the grid's lightness slices stacked into one 2-D map, since grid_sample in 2-D runs about twice
        # as fast as in 3-D on the CPU; both reads go in one call, stacked along the rows. A read never reaches
        # the next slice: y stays below gh - 1.
        stacked = grid.reshape(b, channels, gd * gh, gw)
        # The sampling positions in grid_sample's -1..1 units, written straight into one B x 2 x h x w x 2 tensor
        # (row cell below * gh + y, then the same one slice further down; x).
        scale_y = 2.0 / (gd * gh - 1)
        positions = torch.empty(b, 2, h, w, 2, device=below.device)
        torch.add((ys * scale_y - 1)[:, None], below, alpha=gh * scale_y, out=positions[:, 0, :, :, 1])
        torch.add(positions[:, 0, :, :, 1], gh * scale_y, out=positions[:, 1, :, :, 1])
        positions[..., 0] = xs * (2.0 / (gw - 1)) - 1
        reads = F.grid_sample(stacked, positions.view(b, 2 * h, w, 2), mode="bilinear", align_corners=True)
        sliced = reads[:, :, :h].lerp_(reads[:, :, h:], fraction)  # B x (C+1) x h x w
        mass = sliced[:, c:]
        return sliced[:, :c].div_(mass.clamp_min(1e-8)), mass


def spread_hints(hints: HintMap, lightness: torch.Tensor,
                 range_sigmas: tuple[float, float] = (SPREAD_RANGE_SIGMA, REACH_RANGE_SIGMA),
                 space_sigmas: tuple[float, ...] = SPREAD_SIGMAS) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense hint colours and their confidence (B x 2 and B x 1, at ``lightness``'s size, 0..1 L), from coarse
    to fine: each finer spread overrides the coarser ones where hints are near, so far-away regions still get
    the nearest hints' colour and crowded regions keep their local ones. Hint pixels keep their exact colour.
    ``range_sigmas`` are how far apart in lightness (0..1) two pixels may be and still share a nearby hint, and
    the same for the coarsest spread, which reaches every pixel; ``space_sigmas`` are the spatial sigmas, as
    shares of the short side."""
    local_sigma, reach_sigma = range_sigmas
    hints = hints.resized(tuple(lightness.shape[-2:]))
    ab = hints.ab.float().expand(lightness.shape[0], -1, -1, -1)
    mask = hints.mask.float().expand(lightness.shape[0], -1, -1, -1)
    grids = _BilateralGrids(torch.cat([ab * mask, mask], dim=1), lightness)
    short = min(lightness.shape[-2:])
    out_ab = confidence = None
    for share in sorted(space_sigmas, reverse=True):
        spread, mass = grids.spread(share * short, reach_sigma if out_ab is None else local_sigma)
        # A lone hint's own cell keeps (6/16)^3 = 0.053 of its mass after the blur: near = 0.88 there.
        near = mass.mul(-40.0).exp_().neg_().add_(1.0)  # 1 - exp(-40 mass)
        if out_ab is None:  # the coarsest spread: every pixel it reaches at all
            out_ab = torch.where(mass > 1e-6, spread, 0.0)
            confidence = near.div_(len(space_sigmas))
        else:
            out_ab.lerp_(spread, near)
            confidence.add_(near, alpha=1.0 / len(space_sigmas))
    given = mask > 0
    return torch.where(given, ab, out_ab), confidence.masked_fill_(given, 1.0)
