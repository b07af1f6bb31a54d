"""Seamless tiled inference: overlapping tiles, feathered blending, smaller tiles on out-of-memory.

``tiled_map`` runs a function over overlapping tiles of an image and blends the outputs with linear
ramps across the overlaps, so there are no seams where the network's border behaviour differs.
``run_with_tile_fallback`` tries the whole image first and halves the tile size after every
out-of-memory error, releasing the failed attempt's tensors before the retry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

logger = logging.getLogger(__name__)


def tile_starts(length: int, tile: int, overlap: int, multiple: int = 1) -> list[int]:
    """Start offsets covering ``length`` with tiles of ``tile``, at least ``overlap`` shared."""
    if length <= tile:
        return [0]
    step = max(multiple, (tile - overlap) // multiple * multiple)
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def _ramp(length: int, overlap: int, at_start: bool, at_end: bool, device, dtype) -> torch.Tensor:
    """1-D feather weights for one tile side by side with neighbours.

    Where a neighbour exists, the outer third of the overlap gets weight zero (a network's output
    is least trustworthy next to a tile edge, where its receptive field sees padding) and the rest
    rises linearly; the neighbour's ramp covers the zero band, so every pixel has weight.
    """
    w = torch.ones(length, device=device, dtype=dtype)
    ramp_len = min(overlap, length // 2)
    if ramp_len > 0:
        dead = ramp_len // 3
        rise = (torch.arange(ramp_len - dead, device=device, dtype=dtype) + 1) / (ramp_len - dead + 1)
        ramp = torch.cat([torch.zeros(dead, device=device, dtype=dtype), rise])
        if not at_start:
            w[:ramp_len] = ramp
        if not at_end:
            w[-ramp_len:] = ramp.flip(0)
    return w


@dataclass(frozen=True)
class Span:
    """One tile along one axis: its pixels [start, stop) and the pixels [own_start, own_stop) it alone
    accounts for (the overlaps are split midway), so per-image statistics count every pixel once."""

    start: int
    stop: int
    own_start: int
    own_stop: int


def _normalised(tile: int, overlap: int, multiple: int) -> tuple[int, int]:
    """The tile rounded down to the stride multiple, the overlap at most half a tile."""
    tile = max(multiple, tile // multiple * multiple)
    return tile, min(overlap, tile // 2)


def axis_spans(length: int, tile: int, overlap: int, multiple: int = 8) -> list[Span]:
    """The tiles covering one axis: as few as ``tile`` allows, shrunk to share the length evenly
    (2048 px with 1536 px tiles gives two 1072 px tiles, not two 1536 px ones that mostly overlap)."""
    tile, overlap = _normalised(tile, overlap, multiple)
    count = len(tile_starts(length, tile, overlap, multiple))
    if count > 1:
        even = -(-(length + (count - 1) * overlap) // count)
        tile = min(tile, -(-even // multiple) * multiple)
    starts = tile_starts(length, tile, overlap, multiple)
    stops = [min(s + tile, length) for s in starts]
    bounds = [0] + [(starts[i + 1] + stops[i]) // 2 // multiple * multiple for i in range(len(starts) - 1)] + [length]
    return [Span(a, b, o0, o1) for a, b, o0, o1 in zip(starts, stops, bounds[:-1], bounds[1:])]


def tiled_map(
    fn: Callable[[torch.Tensor, tuple[Span, Span]], Sequence[torch.Tensor]],
    x: torch.Tensor,
    *,
    tile: int,
    overlap: int,
    scales: Sequence[float],
    multiple: int = 8,
    on_tile: Callable[[], None] | None = None,
) -> list[torch.Tensor]:
    """Apply ``fn(piece, (row_span, column_span))`` tile by tile to ``x`` (B x C x H x W; H, W
    multiples of ``multiple``), rows outer, columns inner.

    ``fn`` returns one tensor per entry of ``scales``; output ``i`` of a tile of size h x w must be
    (h * scales[i]) x (w * scales[i]). Returns the blended full outputs.
    """
    _, _, height, width = x.shape
    overlap = _normalised(tile, overlap, multiple)[1]
    outs: list[torch.Tensor | None] = [None] * len(scales)
    weight_sums: list[torch.Tensor | None] = [None] * len(scales)
    columns = axis_spans(width, tile, overlap, multiple)
    for sy in axis_spans(height, tile, overlap, multiple):
        for sx in columns:
            pieces = fn(x[:, :, sy.start : sy.stop, sx.start : sx.stop], (sy, sx))
            for i, (piece, scale) in enumerate(zip(pieces, scales)):
                oy, ox = int(sy.start * scale), int(sx.start * scale)
                ph, pw = piece.shape[-2:]
                if outs[i] is None:
                    outs[i] = piece.new_zeros(piece.shape[0], piece.shape[1], int(height * scale), int(width * scale))
                    weight_sums[i] = piece.new_zeros(1, 1, int(height * scale), int(width * scale))
                ov = int(overlap * scale)
                wy = _ramp(ph, ov, sy.start == 0, sy.stop >= height, piece.device, piece.dtype)
                wx = _ramp(pw, ov, sx.start == 0, sx.stop >= width, piece.device, piece.dtype)
                weight = wy[:, None] * wx[None, :]
                outs[i][:, :, oy : oy + ph, ox : ox + pw] += piece * weight
                weight_sums[i][:, :, oy : oy + ph, ox : ox + pw] += weight
            if on_tile is not None:
                on_tile()
    return [o / w for o, w in zip(outs, weight_sums)]


def count_tiles(height: int, width: int, tile: int, overlap: int, multiple: int = 8) -> int:
    return len(axis_spans(height, tile, overlap, multiple)) * len(axis_spans(width, tile, overlap, multiple))


def default_oom_types() -> tuple[type[BaseException], ...]:
    return (torch.OutOfMemoryError,)


def run_with_tile_fallback(
    run: Callable[[int | None], object],
    *,
    first_tile: int | None,
    min_tile: int = 64,
    oom_types: tuple[type[BaseException], ...] | None = None,
    full_size: int,
    on_oom: Callable[[], None] | None = None,
):
    """Call ``run(tile)`` (``None`` = whole image) and halve the tile after each out-of-memory error.

    The retry happens outside the ``except`` block so the failed attempt's tensors are freed first.
    """
    oom_types = oom_types or default_oom_types()
    tile = first_tile
    while True:
        failed = False
        try:
            return run(tile)
        except oom_types:
            failed = True
        if failed:
            if on_oom is not None:
                on_oom()
            current = tile if tile is not None else full_size
            tile = current // 2
            if tile < min_tile:
                raise MemoryError(
                    f"out of memory even with {current}px tiles; lower the render size, the batch size, "
                    "or use fp16/bf16"
                )
            logger.warning("out of memory; retrying with %dpx tiles", tile)
