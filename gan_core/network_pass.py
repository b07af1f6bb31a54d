"""One network pass: the shared encoder and both decoders over a padded grey batch, whole or tiled.

The colour decoder runs on every encoder pass (tile by tile when tiled). The style decoder needs the
whole image's content statistics first, so a tiled pass keeps each tile's relu4_1, accumulates the
statistics of the pixels each tile alone accounts for, and decodes in a second pass. What conditions
the colour decoder beyond the image travels in one ``ColourCondition`` from ``DualGANRunner.run``
to ``decode_colour``, the single place where the colour decoder is called.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import torch
from torch.profiler import record_function

from .encoder import STRIDE
from .geometry import valid_features
from .guidance import GuidanceFusion, guidance_map
from .references import LIGHTNESS_MATCH_WEIGHT, ReferenceMemory, match_features, match_guidance
from .model import DualGAN
from .style_codes import FeatureMoments, StyleCode, feature_stats, stylize_features
from .style_path import StyleSpec, fast_style_network
from .tiling import Span, tiled_map


@dataclass(frozen=True)
class ColourCondition:
    """What the colour decoder is conditioned on besides the image.

    ``palette``: soft ab histograms of palette images (N x Q, N = 1 for the whole batch or one per image).
    ``hints``: the spread user hints (ab B x 2, confidence B x 1) at half the padded render size of the batch.
    ``memory``: the colour references (and a video's previous frame), matched at every encoder pass.
    ``fusion``: how far the decoded colours are pulled toward the hint and reference colours.
    ``hint_points``: the user hints themselves (ab B x 2, mask B x 1) at half the padded render size: each
    picture's hints join the memory it is matched in (``match_guidance``).
    ``lightness``: the batch's lightness (B x 1, 0..1) at half the padded render size, which the reference
    matching compares with the memory's, weighted by ``lightness_weight`` (``ReferenceMemory.match``).
    """

    palette: torch.Tensor | None = None
    hints: tuple[torch.Tensor, torch.Tensor] | None = None
    memory: ReferenceMemory | None = None
    fusion: GuidanceFusion = GuidanceFusion()
    lightness: torch.Tensor | None = None
    lightness_weight: float = LIGHTNESS_MATCH_WEIGHT
    hint_points: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def guided(self) -> bool:
        return self.hints is not None or self.memory is not None

    @property
    def active_fusion(self) -> GuidanceFusion:
        """The fusion for this guidance: with hints and no references, the matched colours are the hints' own."""
        return self.fusion.hints_only() if self.memory is None and self.hint_points is not None else self.fusion

    def check(self, batch: int) -> None:
        if self.palette is not None and self.palette.shape[0] not in (1, batch):
            raise ValueError(f"the palette batch has {self.palette.shape[0]} images; give 1 or one per image ({batch})")

    def select(self, start: int, stop: int) -> "ColourCondition":
        """The condition of images start..stop of the batch (a single entry serves every image)."""
        palette = self.palette
        if palette is not None and palette.shape[0] > 1:
            palette = palette[start:stop]
        return dataclasses.replace(self, palette=palette)

    def guide(self, feats: dict[str, torch.Tensor], region: tuple[Span, Span] | None = None) -> torch.Tensor | None:
        """The decoder's guidance map for these encoder taps (of the tile ``region`` of the padded image, in pixels)."""
        if not self.guided:
            return None
        size = tuple(feats["relu2_2"].shape[-2:])
        batch = feats["relu2_2"].shape[0]
        hints, points, lightness = self.hints, self.hint_points, self.lightness
        if region is not None:  # the maps at half the padded render size, cut to the tile
            rows, columns = (slice(span.start // 2, span.stop // 2) for span in region)
            hints, points = ((m[0][:, :, rows, columns], m[1][:, :, rows, columns]) if m is not None else None
                             for m in (hints, points))
            lightness = None if lightness is None else lightness[:, :, rows, columns]
        reference = None
        if self.memory is not None or points is not None:
            with record_function("dualgan.reference_matching"):
                reference = match_guidance(match_features(feats, feats["relu4_1"].dtype), self.memory, points,
                                           lightness, lightness_weight=self.lightness_weight)
        return guidance_map(size, batch=batch, hint=hints, reference=reference, device=feats["relu2_2"].device)


def select_style(style: StyleSpec | None, start: int, stop: int) -> StyleSpec | None:
    """The style of images start..stop of the batch (a single code serves every image)."""
    return None if style is None else style.select(start, stop)


def decode_colour(model: DualGAN, feats: dict[str, torch.Tensor], colour: ColourCondition,
                  region: tuple[Span, Span] | None = None) -> torch.Tensor:
    """ab at 1/2 scale (float32) from the encoder's taps (of the tile ``region``, when tiled)."""
    guide = colour.guide(feats, region)
    with record_function("dualgan.colour_decoder"):
        logits, offset = model.color_decoder.logits_and_guidance(feats, colour.palette, guide)
    with record_function("dualgan.annealed_mean"):
        ab = model.ab_from_logits(logits, offset)  # float32, block by block from the network's bf16/fp16 logits
    if guide is None:
        return ab
    with record_function("dualgan.guidance_fusion"):
        return colour.active_fusion(ab, guide)


def decode_style(model: DualGAN, relu4_1: torch.Tensor, content: StyleCode, style: StyleSpec, dtype: torch.dtype) -> torch.Tensor:
    """The stylised RGB (float32, unclamped) of features whose statistics are ``content``."""
    code = style.code.to(device=relu4_1.device, dtype=torch.float32)
    f = stylize_features(relu4_1.float(), content, code, style.strength)
    decoder = fast_style_network(model).decoder if style.fast else model.style_decoder
    with record_function("dualgan.fast_style_decoder" if style.fast else "dualgan.style_decoder"):
        return decoder(f.to(dtype), style.adapter).float()


@dataclass
class _TileFeatures:
    """A tiled pass's state between its two halves: each tile's relu4_1 and the image's statistics."""

    kept: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict)
    moments: FeatureMoments = field(default_factory=FeatureMoments)


@dataclass
class NetworkPass:
    """Both heads over one padded grey batch (already on the device, in the networks' dtype).

    ``valid`` is the unpadded render size: content statistics count only the features it covers.
    """

    model: DualGAN
    dtype: torch.dtype
    valid: tuple[int, int]
    need_color: bool
    style: StyleSpec | None
    colour: ColourCondition
    overlap: int
    on_step: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        if self.fast and (self.need_color or self.style.adapter is not None):
            raise ValueError("the fast style network repaints with style images only: trained styles and "
                             "colourised colour need the full network")

    @property
    def fast(self) -> bool:
        return self.style is not None and self.style.fast

    @property
    def residual(self) -> bool:
        """The residual fast network, which repaints the grey image itself (no shared-encoder pass)."""
        return self.fast and self.model.config.fast_shape == "residual"

    def encode(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        until = "relu4_3" if self.need_color else "relu4_1"
        # The record_function labels name the stages in ``python -m bench --profile``.
        with record_function("dualgan.fast_encoder" if self.fast else "dualgan.encoder"):
            encoder = fast_style_network(self.model).encoder if self.fast else self.model.encoder
            return encoder(x, until=until)

    def __call__(self, x: torch.Tensor, tile: int | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(ab at 1/2 scale, stylised RGB at 1/1), either None when not asked for; ``tile`` None or at
        least the image's size: in one piece."""
        if self.residual:
            return None, self.repaint(x, tile)
        if tile is None or max(x.shape[-2:]) <= tile:
            return self.whole(x)
        return self.tiled(x, tile)

    def whole(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        feats = self.encode(x)
        ab_half = decode_colour(self.model, feats, self.colour) if self.need_color else None
        stylised = None
        if self.style is not None:
            fy, fx = valid_features(*self.valid)
            content = feature_stats(feats["relu4_1"][:, :, :fy, :fx].float())
            stylised = decode_style(self.model, feats["relu4_1"], content, self.style, self.dtype)
        if self.on_step is not None:
            self.on_step()
        return ab_half, stylised

    def repaint(self, x: torch.Tensor, tile: int | None) -> torch.Tensor:
        """The residual fast network's picture of ``x``, tile by tile when tiled: it has no image-wide
        statistics, so each tile needs only the overlap."""
        network = fast_style_network(self.model)
        modulation = network.modulation(self.style.code.to(device=x.device, dtype=torch.float32), self.style.strength)

        def run(piece: torch.Tensor, spans=None) -> list[torch.Tensor]:
            with record_function("dualgan.fast_style_network"):
                return [network(piece, modulation).float()]

        if tile is None or max(x.shape[-2:]) <= tile:
            stylised = run(x)[0]
            if self.on_step is not None:
                self.on_step()
            return stylised
        # A tile counts as the two progress steps a stylised tile takes on the full network (encode, then
        # decode), so a run's progress total is the same for either network.
        on_tile = None if self.on_step is None else lambda: (self.on_step(), self.on_step())
        return tiled_map(run, x, tile=tile, overlap=self.overlap, multiple=STRIDE, scales=[1.0], on_tile=on_tile)[0]

    def tiled(self, x: torch.Tensor, tile: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Pass 1 encodes every tile once and decodes its colour; pass 2 decodes the style of the kept
        features with the whole image's statistics."""
        state = _TileFeatures()
        tiling = dict(tile=tile, overlap=self.overlap, multiple=STRIDE, on_tile=self.on_step)
        colour = tiled_map(partial(self._encode_tile, state), x, scales=[0.5] if self.need_color else [], **tiling)
        ab_half = colour[0] if self.need_color else None
        if self.style is None:
            return ab_half, None
        content = state.moments.stats()
        stylised = tiled_map(partial(self._decode_tile, state, content), x, scales=[1.0], **tiling)[0]
        return ab_half, stylised

    def _encode_tile(self, state: _TileFeatures, piece: torch.Tensor, spans: tuple[Span, Span]) -> list[torch.Tensor]:
        sy, sx = spans
        feats = self.encode(piece)
        ab_half = decode_colour(self.model, feats, self.colour, spans) if self.need_color else None
        if self.style is not None:
            f = feats["relu4_1"]
            state.kept[(sy.start, sx.start)] = f
            # The pixels this tile alone accounts for, clipped to the unpadded image, at 1/8.
            fy_valid, fx_valid = valid_features(*self.valid)
            y0, y1 = sy.own_start // STRIDE, min(sy.own_stop // STRIDE, fy_valid)
            x0, x1 = sx.own_start // STRIDE, min(sx.own_stop // STRIDE, fx_valid)
            state.moments.add(f[:, :, y0 - sy.start // STRIDE : y1 - sy.start // STRIDE,
                                x0 - sx.start // STRIDE : x1 - sx.start // STRIDE])
        return [] if ab_half is None else [ab_half]

    def _decode_tile(self, state: _TileFeatures, content: StyleCode, piece: torch.Tensor,
                     spans: tuple[Span, Span]) -> list[torch.Tensor]:
        relu4_1 = state.kept.pop((spans[0].start, spans[1].start))
        return [decode_style(self.model, relu4_1, content, self.style, self.dtype)]
