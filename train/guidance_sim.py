"""Simulated colour guidance for training the guided colour decoder from ground-truth photos.

Every training photo becomes its own user and its own reference: hints are patches of its true
colour at random places (none at all for a share of the batch, so automatic colouring keeps
training), and references are mirrored, cropped and rescaled views of the same photo or, for a share
of the batch, another photo of the batch (so the decoder learns to distrust weak matches). A video's
previous frame is such a view too. Each photo's hints also join the memory it is matched in, as at
inference. The guidance map is built exactly as at inference (``gan_core.guidance``), so the decoder
sees what users will give it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gan_core.color import grey_rgb_from_lightness, rgb_to_lab
from gan_core.guidance import guidance_map
from gan_core.hints import HintMap, spread_hints
from gan_core.references import ReferenceMemory, match_features, match_guidance


@dataclass(frozen=True)
class GuidanceMix:
    """How often each kind of guidance is simulated (shares of a batch) and how many hints at most."""

    no_hints: float = 0.35
    max_hints: int = 200
    max_patch: int = 9
    same_photo_reference: float = 0.35
    other_photo_reference: float = 0.15


def guidance_mix(overrides: dict) -> GuidanceMix:
    """The default mix with the given fields changed; an unknown field or a share outside 0..1 is refused by name."""
    known = {f.name for f in dataclasses.fields(GuidanceMix)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"guidance_mix: unknown fields {unknown} (known: {sorted(known)})")
    mix = dataclasses.replace(GuidanceMix(), **overrides)
    shares = (mix.no_hints, mix.same_photo_reference, mix.other_photo_reference)
    if not all(0.0 <= x <= 1.0 for x in shares) or mix.same_photo_reference + mix.other_photo_reference > 1.0:
        raise ValueError(f"guidance_mix: the shares must lie in 0..1 and the two reference shares add up to 1 at most, got {mix}")
    if mix.max_hints < 1 or mix.max_patch < 1:
        raise ValueError(f"guidance_mix: max_hints and max_patch must be at least 1, got {mix}")
    return mix


def _randint(low: int, high: int, gen: torch.Generator) -> int:
    return int(torch.randint(low, high + 1, (), generator=gen))


def _uniform(low: float, high: float, gen: torch.Generator) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen))


def simulate_hints(ab_true: torch.Tensor, gen: torch.Generator, mix: GuidanceMix = GuidanceMix()) -> HintMap:
    """Hints for each image of a B x 2 x H x W ab batch: a log-uniform number (1..max_hints) of square patches of
    1..max_patch px at uniform positions, each the mean true ab of its patch; no hints for a ``no_hints`` share."""
    b, _, h, w = ab_true.shape
    ab = torch.zeros_like(ab_true)
    mask = torch.zeros(b, 1, h, w, dtype=ab_true.dtype, device=ab_true.device)
    for i in range(b):
        if float(torch.rand((), generator=gen)) < mix.no_hints:
            continue
        count = int(math.exp(_uniform(0.0, math.log(mix.max_hints + 1), gen)))
        for _ in range(max(1, min(count, mix.max_hints))):
            size = _randint(1, min(mix.max_patch, h, w), gen)
            y, x = _randint(0, h - size, gen), _randint(0, w - size, gen)
            patch = ab_true[i, :, y : y + size, x : x + size]
            ab[i, :, y : y + size, x : x + size] = patch.mean(dim=(1, 2), keepdim=True)
            mask[i, :, y : y + size, x : x + size] = 1.0
    return HintMap(ab, mask)


def reference_view(rgb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A mirrored, cropped (60-100 % of each side, anywhere) and rescaled (60-100 %) view of a 1 x 3 x H x W photo."""
    _, _, h, w = rgb.shape
    ch, cw = max(8, round(h * _uniform(0.6, 1.0, gen))), max(8, round(w * _uniform(0.6, 1.0, gen)))
    y, x = _randint(0, h - ch, gen), _randint(0, w - cw, gen)
    view = rgb[:, :, y : y + ch, x : x + cw]
    if float(torch.rand((), generator=gen)) < 0.5:
        view = view.flip(-1)
    scale = _uniform(0.6, 1.0, gen)
    size = (max(16, round(ch * scale) // 8 * 8), max(16, round(cw * scale) // 8 * 8))
    return F.interpolate(view, size=size, mode="bilinear", align_corners=False, antialias=True)


@torch.no_grad()
def simulate_guidance(rgb: torch.Tensor, lightness: torch.Tensor, feats: dict[str, torch.Tensor], encoder,
                      gen: torch.Generator, mix: GuidanceMix = GuidanceMix(), dtype: torch.dtype | None = None) -> torch.Tensor:
    """The B x 6 x H/2 x W/2 guidance map for a batch of photos (B x 3 x H x W) whose grey versions (``lightness``,
    B x 1 x H x W in 0..100, maybe degraded like an old scan) gave ``feats``.

    ``encoder`` encodes the grey references (the same frozen encoder; ``dtype`` its input dtype)."""
    b, _, h, w = rgb.shape
    lab = rgb_to_lab(rgb.float())
    half = (h // 2, w // 2)
    l_half = F.avg_pool2d(lightness.float(), 2) / 100.0
    # The patches are drawn one by one: on the host that is cheap slicing, on a GPU hundreds of tiny kernels.
    drawn = simulate_hints(F.avg_pool2d(lab[:, 1:], 2).cpu(), gen, mix)
    drawn = HintMap(drawn.ab.to(rgb.device), drawn.mask.to(rgb.device))
    hint = spread_hints(drawn, l_half)

    ref_ab = torch.zeros(b, 2, *feats["relu4_1"].shape[-2:], device=rgb.device)
    ref_conf = torch.zeros(b, 1, *feats["relu4_1"].shape[-2:], device=rgb.device)
    targets = match_features(feats)
    for i in range(b):
        draw = float(torch.rand((), generator=gen))
        memory = None
        if draw < mix.same_photo_reference + mix.other_photo_reference and (draw < mix.same_photo_reference or b > 1):
            source = i if draw < mix.same_photo_reference else (i + _randint(1, b - 1, gen)) % b
            view = reference_view(rgb[source : source + 1], gen)
            view_lab = rgb_to_lab(view.float())
            grey = grey_rgb_from_lightness(view_lab[:, :1])
            ref_feats = encoder(grey.to(dtype or grey.dtype), until="relu4_1")
            memory = ReferenceMemory.build([match_features(ref_feats)], [view_lab[:, 1:]])
        # As at inference, the photo's own hints join the memory (``match_guidance``).
        hints = (drawn.ab[i : i + 1], drawn.mask[i : i + 1]) if bool(drawn.mask[i].any()) else None
        matched = match_guidance(targets[i : i + 1], memory, hints, l_half[i : i + 1])
        if matched is not None:
            ref_ab[i : i + 1], ref_conf[i : i + 1] = matched
    return guidance_map(half, batch=b, hint=hint, reference=(ref_ab, ref_conf), device=rgb.device)
