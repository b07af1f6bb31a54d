"""Inference: colourise, stylise and blend, at full resolution, batched, tiled when large.

One encoder pass per image (per tile when tiled) feeds both decoders. The networks run at a render
size (short side); the results are brought back to the input's full size:
  * chroma is upsampled guided by the full-resolution luminance (``gan_core.guided``) and joined to
    the ORIGINAL luminance, so every detail of a large scan survives;
  * the stylised image is resized to full size (render size 0 renders at full size, tiled).
All outputs are composed in CIE Lab by ``compose``, which is how Blend by lambda's endpoints equal
the Colorize and Style Transfer outputs exactly.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch.profiler import record_function

from .color import grey_rgb_from_lightness, lightness_ab_to_rgb, luminance, rgb_to_lab
from .encoder import STRIDE
from .guided import fit_linear_model
from .model import DualGAN
from .style_codes import FeatureMoments, StyleCode, feature_stats, stylize_features
from .geometry import MIN_NETWORK_SIZE, check_image, is_grey, pad_for_network, render_shape, resize, to_host  # noqa: F401
from .style_decoder import StyleAdapter
from .style_path import (PRESERVE_COLOR, STYLE_NETWORKS, STYLE_SIZE, StyleSpec, fast_style_network,  # noqa: F401
                         style_code_from_image, style_from_name, style_spec)
from .tiling import count_tiles, run_with_tile_fallback, tiled_map

logger = logging.getLogger(__name__)

PALETTE_SIZE = 128  # short side a palette reference is reduced to before its histogram
# Pixels handled at once: network pixels per batch chunk, and full-resolution pixels per strip. On
# the CPU small pieces stay in the cache and win (python -m bench, 2 cores, bf16: eight 512² images
# colourise in 7.4 s in chunks of one image, 12.2 s in one chunk of eight); a GPU wants big batches.
CPU_PIXEL_BUDGET = 1 << 18
GPU_PIXEL_BUDGET = 4_000_000


def default_pixel_budget(device: torch.device) -> int:
    return CPU_PIXEL_BUDGET if device.type == "cpu" else GPU_PIXEL_BUDGET


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


def light_r_padded(lightness: torch.Tensor) -> torch.Tensor:
    return pad_for_network(lightness.float()) / 100.0


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
    rows' weights with the band of source rows they read. No gathered copies: the 46 strips of a
    12 MP image took 17 ms instead of 77 ms for two index_selects and a lerp (2 cores)."""
    i0, i1, w1 = _taps(start, stop, scale, src.shape[2], src.device)
    first, last = int(i0[0]), int(i1[-1])  # the taps grow with the output row
    weights = src.new_zeros(stop - start, last - first + 1)
    rows = torch.arange(stop - start, device=src.device)
    w1 = w1.to(src.dtype)
    weights.index_put_((rows, i0 - first), 1 - w1, accumulate=True)  # at the last row both taps coincide
    weights.index_put_((rows, i1 - first), w1, accumulate=True)
    return torch.matmul(weights, src[:, :, first : last + 1])


@dataclass
class FullResolution:
    """One image's network results, rendered at the input's full size one strip of rows at a time."""

    runner: "DualGANRunner"
    rgb: torch.Tensor  # 1 x 3 x H x W input (on its own device)
    lightness: torch.Tensor  # 1 x 1 x H x W original L
    coefficients: torch.Tensor | None  # guided-filter (A / 100, b) stacked, 1 x 4 x (1/2 render size)
    coefficient_scale: tuple[float, float]
    stylised: torch.Tensor | None  # 1 x 3 x (padded) render size
    stylised_scale: tuple[float, float]
    _wide: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    def strip(self, y0: int, y1: int) -> "Strip":
        return Strip(self, y0, y1)

    def _up(self, key: str, scale: tuple[float, float], y0: int, y1: int) -> torch.Tensor:
        """Rows y0..y1 of map ``key`` (``coefficients`` or ``stylised``) bilinearly at full size.

        The columns are upsampled once per image (render-size rows x full width), so a strip only
        blends whole rows (``upsample_rows``): the innermost-axis index_select of every strip was the
        slowest part of a 12 MP Colorize's composition (stage dualgan.full_resolution, 2 cores, warm:
        502 ms before, 219 ms after this and the leaner colour maths of gan_core.color)."""
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
        self.device = full.runner.device
        self._cache: dict[str, torch.Tensor] = {}

    def _get(self, key: str, compute) -> torch.Tensor:
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


class DualGANRunner:
    """Runs a DualGAN on batches of images. Holds no ComfyUI state; the nodes wrap it.

    ``tile`` is the largest side (at render size) processed in one piece; bigger images are tiled
    with ``overlap`` pixels. ``oom_types`` are the exceptions that trigger a retry with half-size
    tiles (ComfyUI passes its ``OOM_EXCEPTION``). ``progress(done, total)`` is called after every
    network step (a batch chunk or a tile); raising from it (an interrupt) stops the run.
    ``chroma_radius`` and ``chroma_eps`` are the guided filter's window radius (at half render size)
    and regulariser (in (L/100)^2 units): larger values give smoother chroma that follows texture less.
    The defaults (8, 0.01) won a sweep over training photos (``python -m train eval --split train``,
    see the README's model card): less colour speckle, lower VGG distance, slightly less colourful.
    """

    def __init__(
        self,
        model: DualGAN,
        *,
        tile: int = 1536,
        overlap: int = 96,
        pixel_budget: int | None = None,
        oom_types: tuple[type[BaseException], ...] | None = None,
        on_oom: Callable[[], None] | None = None,
        chroma_radius: int = 8,
        chroma_eps: float = 1e-2,
    ) -> None:
        self.model = model
        self.chroma_radius = chroma_radius
        self.chroma_eps = chroma_eps
        self.tile = tile
        self.overlap = overlap
        self._pixel_budget = pixel_budget
        self.oom_types = oom_types
        self.on_oom = on_oom

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def pixel_budget(self) -> int:
        """Pixels per network chunk and per full-resolution strip (given, or the device's default)."""
        return self._pixel_budget if self._pixel_budget is not None else default_pixel_budget(self.device)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    # ---- conditioning inputs -------------------------------------------------------------
    @torch.no_grad()
    def palette_from_image(self, reference: torch.Tensor) -> torch.Tensor:
        """The soft ab histogram (N x Q) of each reference image: the colour decoder's palette."""
        rgb = check_image(reference, "palette image").to(self.device)
        rgb = resize(rgb, render_shape(*rgb.shape[-2:], PALETTE_SIZE))
        ab = rgb_to_lab(rgb)[:, 1:]
        return self.model.grid.histogram(ab)

    def style_from_image(self, reference: torch.Tensor, *, fast: bool = False) -> StyleCode:
        """AdaIN statistics (N x C) of each style reference, taken from its full-colour relu4_1
        (of the fast network's encoder when ``fast``)."""
        encoder = self.fast_style().encoder if fast else self.model.encoder
        return style_code_from_image(encoder, reference, dtype=self.dtype)

    def fast_style(self):
        """The model's distilled style network; a clear error when its file has none."""
        return fast_style_network(self.model)

    def style_spec(self, *, name: str = "", image: torch.Tensor | None = None, strength: float = 1.0,
                   network: str = "full") -> StyleSpec:
        """The style to apply: a trained style ``name`` (it wins) or a reference ``image``, on ``network``."""
        return style_spec(self.model, name=name, image=image, strength=strength, network=network)

    def style_from_name(self, name: str) -> tuple[StyleCode, StyleAdapter]:
        return style_from_name(self.model, name)

    # ---- the network pass ----------------------------------------------------------------
    def _encode(self, x: torch.Tensor, until: str, fast: bool = False) -> dict[str, torch.Tensor]:
        # The record_function labels name the stages in ``python -m bench --profile``.
        with record_function("dualgan.fast_encoder" if fast else "dualgan.encoder"):
            return (self.fast_style().encoder if fast else self.model.encoder)(x, until=until)

    def _heads(self, feats, need_color, style: StyleSpec | None, content: StyleCode | None, palette):
        ab_half = stylised = None
        if need_color:
            with record_function("dualgan.colour_decoder"):
                logits = self.model.color_decoder(feats, palette)
            with record_function("dualgan.annealed_mean"):
                # fp32 logits in, so the ab map comes out fp32 (not rounded to the network's bf16/fp16)
                ab_half = self.model.ab_from_logits(logits.float())
        if style is not None:
            code = style.code.to(device=feats["relu4_1"].device, dtype=torch.float32)
            f = stylize_features(feats["relu4_1"].float(), content, code, style.strength)
            decoder = self.fast_style().decoder if style.fast else self.model.style_decoder
            with record_function("dualgan.fast_style_decoder" if style.fast else "dualgan.style_decoder"):
                stylised = decoder(f.to(self.dtype), style.adapter).float()
        return ab_half, stylised

    @torch.no_grad()
    def network_pass(
        self,
        grey: torch.Tensor,
        valid: tuple[int, int],
        *,
        need_color: bool,
        style: StyleSpec | None,
        palette: torch.Tensor | None,
        on_step: Callable[[], None] | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Both heads on a padded grey batch: (ab at 1/2 scale, stylised RGB at 1/1), either may be None."""
        fast = style is not None and style.fast
        if fast and (need_color or style.adapter is not None):
            raise ValueError("the fast style network repaints with style images only: trained styles and "
                             "colourised colour need the full network")
        until = "relu4_3" if need_color else "relu4_1"
        hv, wv = valid
        x = grey.to(device=self.device, dtype=self.dtype)

        def run(tile: int | None):
            if tile is None or max(x.shape[-2:]) <= tile:
                feats = self._encode(x, until, fast)
                content = None
                if style is not None:
                    f = feats["relu4_1"][:, :, : math.ceil(hv / STRIDE), : math.ceil(wv / STRIDE)]
                    content = feature_stats(f.float())
                out = self._heads(feats, need_color, style, content, palette)
                if on_step is not None:
                    on_step()
                return out
            # Pass 1: one encoder pass per tile. The colour head decodes at once; relu4_1 is kept for
            # the style decoder, which must wait for the whole image's content statistics.
            kept: dict[tuple[int, int], torch.Tensor] = {}
            moments = FeatureMoments()
            fy_valid, fx_valid = math.ceil(hv / STRIDE), math.ceil(wv / STRIDE)

            def encode_tile(piece, spans):
                sy, sx = spans
                feats = self._encode(piece, until, fast)
                ab_half = None
                if need_color:
                    ab_half, _ = self._heads(feats, True, None, None, palette)
                if style is not None:
                    f = feats["relu4_1"]
                    kept[(sy.start, sx.start)] = f
                    # The pixels this tile alone accounts for, clipped to the unpadded image, at 1/8.
                    y0, y1 = sy.own_start // STRIDE, min(sy.own_stop // STRIDE, fy_valid)
                    x0, x1 = sx.own_start // STRIDE, min(sx.own_stop // STRIDE, fx_valid)
                    moments.add(f[:, :, y0 - sy.start // STRIDE : y1 - sy.start // STRIDE,
                                  x0 - sx.start // STRIDE : x1 - sx.start // STRIDE])
                return [] if ab_half is None else [ab_half]

            tiling = dict(tile=tile, overlap=self.overlap, multiple=STRIDE, on_tile=on_step)
            colour = tiled_map(encode_tile, x, scales=[0.5] if need_color else [], **tiling)  # [ab_half] or []
            if style is None:
                return colour[0], None
            # Pass 2: the style decoder on the kept features, with the whole image's statistics.
            content = moments.stats()

            def decode_tile(piece, spans):
                feats = {"relu4_1": kept.pop((spans[0].start, spans[1].start))}
                return [self._heads(feats, False, style, content, None)[1]]

            stylised = tiled_map(decode_tile, x, scales=[1.0], **tiling)[0]
            return (colour[0] if need_color else None), stylised

        first = None if max(x.shape[-2:]) <= self.tile else self.tile
        return run_with_tile_fallback(
            run, first_tile=first, full_size=max(x.shape[-2:]), oom_types=self.oom_types, on_oom=self.on_oom
        )

    def steps_for(self, batch: int, height: int, width: int, render_size: int, *, stylised: bool = False) -> int:
        """How many progress steps a run over this batch will report (for progress bars).

        A tiled run reports every tile; a stylised tiled run goes over its tiles twice (encode, then
        decode once the whole image's statistics are known).
        """
        h, w = render_shape(height, width, render_size)
        hp, wp = pad_for_network(torch.empty(1, 1, h, w, device="meta")).shape[-2:]
        if max(hp, wp) <= self.tile:
            return math.ceil(batch / self._chunk(hp, wp))
        return batch * count_tiles(hp, wp, self.tile, self.overlap, STRIDE) * (2 if stylised else 1)

    def _chunk(self, hp: int, wp: int) -> int:
        return max(1, self.pixel_budget // (hp * wp))

    # ---- full-resolution results -----------------------------------------------------------
    def _lightness(self, rgb: torch.Tensor) -> torch.Tensor:
        """L (0..100) of a 1 x 3 x H x W image, computed strip by strip. Kept on a GPU when the
        networks run there (the composition reads it again), else on the image's device."""
        keep_on = self.device if self.device.type == "cuda" else rgb.device
        out = torch.empty(1, 1, *rgb.shape[-2:], dtype=torch.float32, device=keep_on)
        with record_function("dualgan.lightness"):
            for y0, y1 in self._strips(*rgb.shape[-2:]):
                piece = rgb[:, :, y0:y1]
                out[:, :, y0:y1] = luminance(piece.to(self.device), grey=is_grey(piece))
        return out

    def _strips(self, height: int, width: int) -> list[tuple[int, int]]:
        """Rows of the full-resolution image composed together (``pixel_budget`` pixels)."""
        rows = max(1, self.pixel_budget // max(1, width))
        return [(y, min(y + rows, height)) for y in range(0, height, rows)]

    def run(
        self,
        image: torch.Tensor,
        *,
        render_size: int,
        need_color: bool = True,
        style: StyleSpec | None = None,
        palette: torch.Tensor | None = None,
        saturation: float = 1.0,
        temporal_smoothing: float = 0.0,
        progress: Callable[[int, int], None] | None = None,
    ):
        """Run the networks at render size and yield, per image, a ``FullResolution`` that renders
        the results at the input's size strip by strip (so memory stays bounded for huge scans).

        ``temporal_smoothing`` (0..0.95) treats the batch as consecutive video frames and carries
        chroma over from the previous frame where the luminance did not change (see ``smooth_chroma``).
        """
        if not 0.0 <= temporal_smoothing <= 0.95:
            raise ValueError(f"temporal_smoothing must be between 0 and 0.95, got {temporal_smoothing}")
        rgb = check_image(image)
        batch, _, height, width = rgb.shape
        if palette is not None and palette.shape[0] not in (1, batch):
            raise ValueError(f"the palette batch has {palette.shape[0]} images; give 1 or one per image ({batch})")
        if style is not None and style.code.mean.shape[0] not in (1, batch):
            raise ValueError(f"the style batch has {style.code.mean.shape[0]} images; give 1 or one per image ({batch})")
        h_r, w_r = render_shape(height, width, render_size)
        total = self.steps_for(batch, height, width, render_size, stylised=style is not None)
        done = 0

        def step():
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total)

        hp, wp = pad_for_network(torch.empty(1, 1, h_r, w_r, device="meta")).shape[-2:]
        chunk = self._chunk(hp, wp) if max(hp, wp) <= self.tile else 1
        previous = None  # (ab_half, guide_half) of the last frame, for temporal smoothing
        for start in range(0, batch, chunk):
            items = rgb[start : start + chunk]
            lightness = [self._lightness(items[i : i + 1]) for i in range(items.shape[0])]
            light_r = torch.cat([resize(lum.to(self.device), (h_r, w_r)) for lum in lightness])
            grey = pad_for_network(grey_rgb_from_lightness(light_r))
            pal = palette[start : start + chunk] if palette is not None and palette.shape[0] > 1 else palette
            sty = style
            if style is not None and style.code.mean.shape[0] > 1:
                code = StyleCode(style.code.mean[start : start + chunk], style.code.std[start : start + chunk])
                sty = StyleSpec(code, style.adapter, style.strength, style.fast)
            ab_half, stylised = self.network_pass(grey, (h_r, w_r), need_color=need_color, style=sty, palette=pal, on_step=step)
            if ab_half is not None and temporal_smoothing > 0:
                ab_half, previous = smooth_chroma(ab_half, F.avg_pool2d(light_r_padded(light_r), 2), previous, temporal_smoothing)
            coefficients = None
            if ab_half is not None:
                guide_low = F.avg_pool2d(rgb_to_lab(grey.float())[:, :1] / 100.0, 2)
                a, b = fit_linear_model(ab_half * saturation, guide_low, radius=self.chroma_radius, eps=self.chroma_eps)
                # A scaled to L in 0..100 here, at 1/2 render size, rather than L / 100 in every strip
                coefficients = torch.cat([a / 100.0, b], dim=1)
            for i in range(items.shape[0]):
                yield FullResolution(
                    runner=self,
                    rgb=items[i : i + 1],
                    lightness=lightness[i],
                    coefficients=None if coefficients is None else coefficients[i : i + 1],
                    coefficient_scale=(0.5 * h_r / height, 0.5 * w_r / width),
                    stylised=None if stylised is None else stylised[i : i + 1].clamp(0.0, 1.0),
                    stylised_scale=(h_r / height, w_r / width),
                )

    def _render(self, image, make, rgb_channels: int = 3, **kwargs) -> torch.Tensor:
        """Run, then compose every image strip by strip with ``make(strip, out) -> RGB strip``, straight
        into the batch's output (on the input's device); ``out`` is the output's strip or None."""
        result = None
        for index, full in enumerate(self.run(image, **kwargs)):
            if result is None:
                result = full.rgb.new_empty(image.shape[0], rgb_channels, *full.rgb.shape[-2:])
            with record_function("dualgan.full_resolution"):
                for y0, y1 in self._strips(*full.rgb.shape[-2:]):
                    target = result[index : index + 1, :, y0:y1]
                    # ``make`` may write into ``target`` itself (when it is on the compute device),
                    # saving a copy of every strip (profiled: 33 of 212 ms of a 12 MP Colorize's composition).
                    piece = make(full.strip(y0, y1), target if result.device == self.device else None)
                    if piece is not target:
                        target.copy_(to_host(piece, result.device))
        return result

    # ---- the three jobs ------------------------------------------------------------------
    def colorize(self, image, *, render_size=512, palette=None, saturation=1.0, temporal_smoothing=0.0, progress=None) -> torch.Tensor:
        """Natural colours for (grey or colour) images; output size and luminance are the input's."""
        return self._render(
            image,
            lambda p, out: lightness_ab_to_rgb(p.lightness, p.ab_color, out=out),
            render_size=render_size, palette=palette, saturation=saturation, temporal_smoothing=temporal_smoothing,
            progress=progress,
        )

    def stylize(self, image, style: StyleSpec, *, render_size=512, preserve_color="none", progress=None) -> torch.Tensor:
        """Repaint in a style. ``preserve_color``: none (the style's colours), original, colorized."""
        if preserve_color not in PRESERVE_COLOR:
            raise ValueError(f"preserve_color must be one of {PRESERVE_COLOR}, got {preserve_color!r}")
        need_color = preserve_color == "colorized"

        def make(p, out):
            source = {"none": lambda: p.lab_style[:, 1:], "original": lambda: p.ab_original, "colorized": lambda: p.ab_color}
            return compose(p.lightness, source[preserve_color](), p.lab_style, lambda_content=0.0,
                           lambda_color=0.0 if preserve_color == "none" else 1.0)

        return self._render(image, make, render_size=render_size, need_color=need_color, style=style, progress=progress)

    def blend(self, image, style: StyleSpec, *, lambda_content, lambda_color, render_size=512, palette=None, saturation=1.0,
              temporal_smoothing=0.0, progress=None):
        """(blend, colorized, stylized) from one encoder pass; style.strength is lambda_style."""
        for name, value in (("lambda_content", lambda_content), ("lambda_color", lambda_color), ("lambda_style", style.strength)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        kwargs = dict(render_size=render_size, style=style, palette=palette, saturation=saturation,
                      temporal_smoothing=temporal_smoothing, progress=progress)
        three = self._render(image, lambda p, out: torch.cat([
            compose(p.lightness, p.ab_color, p.lab_style, lambda_content, lambda_color),
            lightness_ab_to_rgb(p.lightness, p.ab_color),
            compose(p.lightness, p.ab_color, p.lab_style, 0.0, 0.0),
        ], dim=1), rgb_channels=9, **kwargs)
        return three[:, 0:3], three[:, 3:6], three[:, 6:9]
