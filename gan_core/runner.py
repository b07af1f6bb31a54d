"""The runner: colourise, stylise and blend batches of images at full resolution, tiled when large.

One encoder pass per image (per tile when tiled) feeds both decoders (``gan_core.network_pass``).
The networks run at a render size (short side); the results come back at the input's full size
(``gan_core.fullres``): chroma through a guided filter applied to the ORIGINAL luminance, so every
detail of a large scan survives, and the stylised image resized (render size 0 renders at full size,
tiled). All outputs are composed in CIE Lab (``gan_core.compose``). This module only orchestrates:
it plans the sizes once per run, splits the batch, and hands each piece to the module doing the job.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.profiler import record_function

from .color import lightness_ab_to_rgb, rgb_to_lab
from .compose import compose, smooth_chroma
from .encoder import STRIDE
from .fullres import FullResolution, chroma_coefficients, full_lightness, grey_network_input, strips
from .geometry import check_image, pad_for_network, padded_shape, render_shape, resize, to_host
from .guidance import GuidanceFusion
from .hints import REACH_RANGE_SIGMA, SPREAD_RANGE_SIGMA, SPREAD_SIGMAS, HintMap, spread_hints
from .references import LIGHTNESS_MATCH_WEIGHT, ReferenceMemory, memory_from_lab, reference_memory
from .model import DualGAN
from .interrupts import checking, interrupt_points
from .network_pass import ColourCondition, NetworkPass, select_style
from .style_codes import StyleCode
from .style_decoder import StyleAdapter
from .palette_transfer import match_palette
from .style_path import PRESERVE_COLOR, StyleSpec, code_encoder, fast_style_network, style_code_from_image, style_from_name, style_spec
from .tiling import axis_spans, run_with_tile_fallback

logger = logging.getLogger(__name__)

PALETTE_SIZE = 128  # short side a palette reference is reduced to before its histogram
# Pixels handled at once: network pixels per batch chunk, and full-resolution pixels per strip. On
# the CPU small pieces stay in the cache and win (bench/results/NOTES.md); a GPU wants big batches.
CPU_PIXEL_BUDGET = 1 << 18
GPU_PIXEL_BUDGET = 4_000_000
# Working memory per network pixel (VGG activations, decoders) and per output pixel (Lab planes,
# guided-filter coefficients, the lightness kept for composition); measured peaks stay below these.
NETWORK_BYTES_PER_PIXEL = 3000
OUTPUT_BYTES_PER_PIXEL = 96
# A tiled run also holds, per padded render pixel: the blended outputs (stylised RGB and its weight,
# summed, divided and clamped: 40 bytes; ab at 1/4 of the pixels: 5 bytes) and every tile's relu4_1.
TILED_OUTPUT_BYTES_PER_PIXEL = 45


def default_pixel_budget(device: torch.device) -> int:
    return CPU_PIXEL_BUDGET if device.type == "cpu" else GPU_PIXEL_BUDGET


@dataclass(frozen=True)
class RunPlan:
    """The sizes of one run, computed once: input, render size, padded network size, batch split."""

    batch: int
    size: tuple[int, int]  # the input's H x W
    render: tuple[int, int]  # what the networks see, before padding
    padded: tuple[int, int]  # what the encoder gets (a multiple of its stride)
    tile: int
    overlap: int
    chunk: int  # images per network pass (1 when tiled)

    @property
    def tiled(self) -> bool:
        return max(self.padded) > self.tile

    def tile_shape(self) -> tuple[int, int]:
        """The largest piece one encoder pass sees: the padded image, or its largest tile."""
        if not self.tiled:
            return self.padded
        rows, columns = (axis_spans(n, self.tile, self.overlap, STRIDE) for n in self.padded)
        return max(s.stop - s.start for s in rows), max(s.stop - s.start for s in columns)

    def steps(self, *, stylised: bool) -> int:
        """Progress steps: one per batch chunk, or per tile; a stylised tiled run goes over its tiles
        twice (encode, then decode once the whole image's statistics are known)."""
        if not self.tiled:
            return math.ceil(self.batch / self.chunk)
        rows, columns = (len(axis_spans(n, self.tile, self.overlap, STRIDE)) for n in self.padded)
        return self.batch * rows * columns * (2 if stylised else 1)


class _Steps:
    """Counts network steps and reports them to ``progress(done, total)``."""

    def __init__(self, progress: Callable[[int, int], None] | None, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0

    def __call__(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)


class DualGANRunner:
    """Runs a DualGAN on batches of images. Holds no ComfyUI state; the nodes wrap it.

    ``tile`` is the largest side (at render size) processed in one piece; bigger images are tiled
    with ``overlap`` pixels. ``oom_types`` are the exceptions that trigger a retry with half-size
    tiles (ComfyUI passes its ``OOM_EXCEPTION``). ``progress(done, total)`` is called after every
    network step (a batch chunk or a tile); raising from it (an interrupt) stops the run.
    ``check_interrupt()`` is called before every convolution, every block of the annealed mean, every
    pass of the guided filter and every strip of rows (lightness, the grey network input, composition),
    so raising from it stops even a single huge tile quickly (ComfyUI passes its interrupt check; ``python -m bench.cancel`` measures how quickly).
    ``chroma_radius`` and ``chroma_eps`` are the guided filter's window radius (at half render size)
    and regulariser (in (L/100)^2 units): larger values give smoother chroma that follows texture less.
    The defaults (8, 0.01) won a sweep over training photos (``python -m train eval --split train``):
    less colour speckle, lower VGG distance, slightly less colourful. With colour hints or reference
    photos the chroma follows the guidance, not a guess, so a finer filter keeps its detail:
    ``guided_chroma_radius`` and ``guided_chroma_eps`` (4, 0.001; chosen on training photos with
    ``python -m train sweep-guidance-fusion``) apply then. ``hint_range_sigmas`` are how far apart in
    lightness (0..1) two pixels may be and still share a hint, near it and far from it
    (``gan_core.hints.spread_hints``). ``reference_lightness_weight`` is how strongly a reference region
    must match a region's lightness as well as its features to lend it colour (``ReferenceMemory.match``).
    ``guidance_fusion`` sets how far hints and references override the decoder's colours (``GuidanceFusion``).
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
        guided_chroma_radius: int = 4,
        guided_chroma_eps: float = 1e-3,
        hint_range_sigmas: tuple[float, float] = (SPREAD_RANGE_SIGMA, REACH_RANGE_SIGMA),
        hint_space_sigmas: tuple[float, ...] = SPREAD_SIGMAS,
        reference_lightness_weight: float = LIGHTNESS_MATCH_WEIGHT,
        check_interrupt: Callable[[], None] | None = None,
        guidance_fusion: GuidanceFusion | None = None,
    ) -> None:
        self.model = model
        self.guidance_fusion = guidance_fusion or GuidanceFusion()
        self.chroma_radius = chroma_radius
        self.chroma_eps = chroma_eps
        self.guided_chroma_radius = guided_chroma_radius
        self.guided_chroma_eps = guided_chroma_eps
        self.hint_range_sigmas = hint_range_sigmas
        self.hint_space_sigmas = tuple(hint_space_sigmas)
        self.reference_lightness_weight = reference_lightness_weight
        self.tile = tile
        self.overlap = overlap
        self._pixel_budget = pixel_budget
        self.oom_types = oom_types
        self.on_oom = on_oom
        self.check_interrupt = check_interrupt

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
        """AdaIN statistics (N x C) of each style reference (see ``style_path.style_code_from_image``),
        for the fast network when ``fast`` (``style_path.code_encoder``)."""
        return style_code_from_image(code_encoder(self.model, fast), reference, dtype=self.dtype)

    def fast_style(self):
        """The model's distilled style network; a clear error when its file has none."""
        return fast_style_network(self.model)

    def style_spec(self, *, name: str = "", image: torch.Tensor | None = None, strength: float = 1.0,
                   network: str = "full") -> StyleSpec:
        """The style to apply: a trained style ``name`` (it wins) or a reference ``image``, on ``network``."""
        return style_spec(self.model, name=name, image=image, strength=strength, network=network)

    def style_from_name(self, name: str) -> tuple[StyleCode, StyleAdapter]:
        return style_from_name(self.model, name)

    # ---- sizes ---------------------------------------------------------------------------
    def plan(self, batch: int, height: int, width: int, render_size: int) -> RunPlan:
        render = render_shape(height, width, render_size)
        padded = padded_shape(*render)
        tiled = max(padded) > self.tile
        chunk = 1 if tiled else max(1, self.pixel_budget // (padded[0] * padded[1]))
        return RunPlan(batch, (height, width), render, padded, self.tile, self.overlap, chunk)

    def steps_for(self, batch: int, height: int, width: int, render_size: int, *, stylised: bool = False) -> int:
        """How many progress steps a run over this batch will report (for progress bars)."""
        return self.plan(batch, height, width, render_size).steps(stylised=stylised)

    def memory_required(self, batch: int, height: int, width: int, render_size: int) -> int:
        """Bytes of device memory a run over this batch needs at most (both heads): the largest network
        pass (a chunk of padded images, or one tile), a tiled run's blended outputs and kept features,
        and the full-resolution composition of the chunk's images."""
        plan = self.plan(batch, height, width, render_size)
        images = min(batch, plan.chunk)
        rows, columns = plan.tile_shape()
        memory = images * rows * columns * NETWORK_BYTES_PER_PIXEL
        if plan.tiled:
            kept = self.model.encoder.channels("relu4_1") / STRIDE**2 * torch.finfo(self.dtype).bits / 8
            memory += plan.padded[0] * plan.padded[1] * (TILED_OUTPUT_BYTES_PER_PIXEL + kept)
        return int(memory + images * height * width * OUTPUT_BYTES_PER_PIXEL)

    # ---- the network pass ----------------------------------------------------------------
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
        return self._network_pass(grey, valid, need_color=need_color, style=style, colour=ColourCondition(palette),
                                  on_step=on_step)

    @torch.no_grad()
    def _network_pass(self, grey: torch.Tensor, valid: tuple[int, int], *, need_color: bool, style: StyleSpec | None,
                      colour: ColourCondition, on_step: Callable[[], None] | None):
        network = NetworkPass(self.model, self.dtype, valid, need_color, style, colour, self.overlap, on_step)
        x = grey.to(device=self.device, dtype=self.dtype)
        side = max(x.shape[-2:])
        with interrupt_points(self.model, self.check_interrupt):
            return run_with_tile_fallback(lambda tile: network(x, tile), first_tile=None if side <= self.tile else self.tile,
                                          full_size=side, oom_types=self.oom_types, on_oom=self.on_oom)

    # ---- a run ---------------------------------------------------------------------------
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
        hints: HintMap | None = None,
        reference: list[torch.Tensor] | torch.Tensor | None = None,
        video: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> Iterator[FullResolution]:
        """Run the networks at render size and yield, per image, a ``FullResolution`` that renders
        the results at the input's size strip by strip (so memory stays bounded for huge scans).

        ``palette``, ``hints`` (at the input's size) and ``reference`` (colour photos, one memory) condition
        the colour decoder (``ColourCondition``). ``video`` treats the batch as consecutive frames: with
        guided weights each frame also matches the previous output frame, so colours follow motion.
        ``temporal_smoothing`` (0..0.95) carries chroma over from the previous frame where the luminance
        did not change (see ``smooth_chroma``).
        """
        if not 0.0 <= temporal_smoothing <= 0.95:
            raise ValueError(f"temporal_smoothing must be between 0 and 0.95, got {temporal_smoothing}")
        rgb = check_image(image)
        batch, _, height, width = rgb.shape
        colour = ColourCondition(palette, memory=self._reference_memory(reference, hints), fusion=self.guidance_fusion,
                                 lightness_weight=self.reference_lightness_weight)
        colour.check(batch)
        user_guided = need_color and (hints is not None or colour.memory is not None)
        if hints is not None and hints.batch not in (1, batch):
            raise ValueError(f"the hints batch has {hints.batch} images; give 1 or one per image ({batch})")
        if style is not None and style.code.mean.shape[0] not in (1, batch):
            raise ValueError(f"the style batch has {style.code.mean.shape[0]} images; give 1 or one per image ({batch})")
        plan = self.plan(batch, height, width, render_size)
        follow = video and need_color and self.model.guided  # each frame matches the previous output frame
        if follow:
            plan = dataclasses.replace(plan, chunk=1)
        step = _Steps(progress, plan.steps(stylised=style is not None))
        previous = None  # (ab_half, guide_half) of the last frame, for temporal smoothing
        last_frame = None  # the memory of the last output frame, when following a video
        for start in range(0, batch, plan.chunk):
            stop = start + plan.chunk
            items = rgb[start:stop]
            lightness = [full_lightness(items[i : i + 1], self.device, self.pixel_budget, check=self.check_interrupt)
                         for i in range(items.shape[0])]
            light_r = torch.cat([resize(lum.to(self.device), plan.render) for lum in lightness])
            grey = grey_network_input(light_r, self.pixel_budget, self.check_interrupt)
            condition = colour.select(start, stop)
            if last_frame is not None:
                condition = dataclasses.replace(condition, memory=last_frame.extended(colour.memory))
            light_half = None  # 0..1 at half the padded render size: what hints, matching and smoothing follow
            if need_color and (hints is not None or condition.memory is not None or temporal_smoothing > 0):
                light_half = F.avg_pool2d(pad_for_network(light_r.float()) / 100.0, 2)
            if hints is not None and need_color:
                spread, points = self._spread_hints(hints.select(start, stop), light_half, plan)
                condition = dataclasses.replace(condition, hints=spread, hint_points=points)
            if condition.memory is not None or condition.hint_points is not None:
                condition = dataclasses.replace(condition, lightness=light_half)
            chunk_style = select_style(style, start, stop)
            ab_half, stylised = self._network_pass(grey, plan.render, need_color=need_color, style=chunk_style,
                                                   colour=condition, on_step=step)
            if stylised is not None and chunk_style.palette is not None:
                with record_function("dualgan.palette_transfer"):
                    stylised = match_palette(stylised, plan.render, chunk_style.palette, chunk_style.strength)
            if follow:
                rows, columns = (math.ceil(n / 2) for n in plan.render)
                last_frame = memory_from_lab(self.model.encoder, light_r, ab_half[:, :, :rows, :columns], dtype=self.dtype)
            if ab_half is not None and temporal_smoothing > 0:
                ab_half, previous = smooth_chroma(ab_half, light_half, previous, temporal_smoothing)
            coefficients = None
            if ab_half is not None:
                # A video's previous frame alone is no user guidance: it keeps the automatic filter.
                radius, eps = ((self.guided_chroma_radius, self.guided_chroma_eps) if user_guided
                               else (self.chroma_radius, self.chroma_eps))
                with checking(self.check_interrupt):
                    coefficients = chroma_coefficients(ab_half, grey, saturation=saturation, radius=radius, eps=eps,
                                                       pixel_budget=self.pixel_budget)
            yield from self._full_resolution(plan, items, lightness, coefficients, stylised)

    def _check_guided(self, what: str) -> None:
        if not self.model.guided:
            raise ValueError(f"{what} need weights trained with guided colour, and these weights predate it; use "
                             "weights made by `python -m train base` with guided colour on (model_config guided: true)")

    def _reference_memory(self, reference, hints) -> ReferenceMemory | None:
        if hints is not None:
            self._check_guided("colour hints")
        if reference is None or (isinstance(reference, (list, tuple)) and not reference):
            return None
        self._check_guided("reference photos")
        references = [reference] if isinstance(reference, torch.Tensor) else list(reference)
        with torch.no_grad(), record_function("dualgan.reference_encoder"):
            return reference_memory(self.model.encoder, [r.to(self.device) for r in references], dtype=self.dtype)

    @torch.no_grad()
    def _spread_hints(self, hints: HintMap, guide_l: torch.Tensor, plan: RunPlan):
        """(spread, points): the chunk's hints spread along its picture's lightness ``guide_l`` (0..1, half the
        padded render size; no hints in the padding) as (ab, confidence), and the hints themselves at that size
        as (ab, mask)."""
        small = hints.network_half(plan.render, plan.padded)
        small = HintMap(small.ab.to(guide_l.device), small.mask.to(guide_l.device))
        with record_function("dualgan.hint_spreading"):
            spread = spread_hints(small, guide_l, self.hint_range_sigmas, self.hint_space_sigmas)
        return spread, (small.ab, small.mask)

    def _full_resolution(self, plan: RunPlan, items, lightness, coefficients, stylised) -> Iterator[FullResolution]:
        """Per image, the network maps without the network's padding (bottom rows and right columns), so
        the full-resolution upsampling stops at the image's last row and column instead of blending them
        with the padding, as F.interpolate of the unpadded maps does."""
        (height, width), (h_r, w_r) = plan.size, plan.render
        half = (math.ceil(h_r / 2), math.ceil(w_r / 2))  # the coefficient cells the render covers
        for i in range(items.shape[0]):
            yield FullResolution(
                device=self.device,
                rgb=items[i : i + 1],
                lightness=lightness[i],
                coefficients=None if coefficients is None else coefficients[i : i + 1, :, : half[0], : half[1]],
                coefficient_scale=(0.5 * h_r / height, 0.5 * w_r / width),
                stylised=None if stylised is None else stylised[i : i + 1, :, :h_r, :w_r].clamp(0.0, 1.0),
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
                for y0, y1 in strips(*full.rgb.shape[-2:], self.pixel_budget):
                    if self.check_interrupt is not None:
                        self.check_interrupt()
                    target = result[index : index + 1, :, y0:y1]
                    # ``make`` may write into ``target`` itself (when it is on the compute device),
                    # which saves a copy of every strip.
                    piece = make(full.strip(y0, y1), target if result.device == self.device else None)
                    if piece is not target:
                        target.copy_(to_host(piece, result.device))
        return result

    # ---- the three jobs ------------------------------------------------------------------
    def colorize(self, image, *, render_size=512, palette=None, saturation=1.0, temporal_smoothing=0.0, hints=None,
                 reference=None, video=False, progress=None) -> torch.Tensor:
        """Natural colours for (grey or colour) images; output size and luminance are the input's. ``hints``,
        ``reference`` and ``video`` guide the colours (see ``run``)."""
        return self._render(
            image,
            lambda p, out: lightness_ab_to_rgb(p.lightness, p.ab_color, out=out),
            render_size=render_size, palette=palette, saturation=saturation, temporal_smoothing=temporal_smoothing,
            hints=hints, reference=reference, video=video, progress=progress,
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
              temporal_smoothing=0.0, hints=None, reference=None, video=False, progress=None):
        """(blend, colorized, stylized) from one encoder pass; style.strength is lambda_style."""
        for name, value in (("lambda_content", lambda_content), ("lambda_color", lambda_color), ("lambda_style", style.strength)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        kwargs = dict(render_size=render_size, style=style, palette=palette, saturation=saturation,
                      temporal_smoothing=temporal_smoothing, hints=hints, reference=reference, video=video, progress=progress)
        three = self._render(image, lambda p, out: torch.cat([
            compose(p.lightness, p.ab_color, p.lab_style, lambda_content, lambda_color),
            lightness_ab_to_rgb(p.lightness, p.ab_color),
            compose(p.lightness, p.ab_color, p.lab_style, 0.0, 0.0),
        ], dim=1), rgb_channels=9, **kwargs)
        return three[:, 0:3], three[:, 3:6], three[:, 6:9]
