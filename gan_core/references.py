"""Colour references: colour photos of the same place or person, matched to a picture in the shared encoder's
features.

Following He et al. 2018 ("Deep Exemplar-based Colorization"), every target position takes the
softmax-weighted ab of the reference positions that look like it (cosine similarity of channel-normalised
relu3_3 + relu4_1, less a penalty for a different mean lightness, so a dark coat does not take the colour of
a pale wall that the grey features confuse with it), with the best similarity as the confidence. Several
references, a video's previous output frame and a picture's own hints (``match_guidance``: a region far from
every hint but made of the same stuff as a hinted one takes the hint's colour) are one ``ReferenceMemory``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .chroma import LOGIT_FLOOR
from .color import chroma, grey_rgb_from_lightness, rgb_to_lab
from .geometry import check_image, pad_for_network, render_shape, resize, valid_features

MATCH_TEMPERATURE = 0.01  # softmax temperature over cosine similarities
MATCH_CHUNK = 4096  # target positions matched at once (bounds the similarity matrix)
# How much a difference in mean lightness (0..1, squared) lowers a match's similarity; chosen on training
# photos (``python -m train sweep-guidance-fusion``, references (a) and (b)).
LIGHTNESS_MATCH_WEIGHT = 25.0
# Short side a colour reference (or a video's previous frame) is encoded at; memory positions are 1/64
# of its pixels, and matching costs target positions x memory positions x 768 multiply-adds.
REFERENCE_SIZE = 384
# Scales each colour reference is encoded at (of its short side ``REFERENCE_SIZE`` or less), as one memory: a
# reference shot from farther away than the picture (its things smaller) still finds its matches in the
# enlarged copy. The 1.4x copy doubles the memory's positions and costs one more encoder pass at that size.
REFERENCE_SCALES = (1.0, 1.4)
GREY_REFERENCE_CHROMA = 2.0  # a reference whose mean chroma is below this (Lab units) has no colour to give


def match_features(feats: dict[str, torch.Tensor], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """B x C x h8 x w8 features for matching (channels innermost in memory), in ``dtype``: relu3_3 pooled to 1/8 and
    relu4_1, each centred and normalised per position, then scaled by 1/sqrt(2) so the concatenation has unit length.
    A 16-bit ``dtype`` (the network's own, for a product in it: ``ReferenceMemory.match``) keeps the statistics in
    float32 and rounds only the result."""
    f3 = F.avg_pool2d(feats["relu3_3"], 2)  # pooled before any cast to float32: a quarter of the conversion
    f4 = feats["relu4_1"]
    h, w = min(f3.shape[-2], f4.shape[-2]), min(f3.shape[-1], f4.shape[-1])
    parts = []
    for f in (f3, f4):
        # Channels last (a view of the encoder's channels-last taps): every reduction runs along contiguous memory.
        x = f[:, :, :h, :w].permute(0, 2, 3, 1).to(dtype)
        channels = x.shape[-1]
        # Unit variance over the channels is length sqrt(channels): the weight takes it to 1/sqrt(2).
        scale = x.new_full((channels,), 1.0 / math.sqrt(2.0 * channels))
        parts.append(F.layer_norm(x, (channels,), weight=scale, eps=1e-12))
    return torch.cat(parts, dim=-1).permute(0, 3, 1, 2)


def _positions(feats: torch.Tensor) -> torch.Tensor:
    """B x C x h x w features as (B h w) x C rows (a view when the channels are innermost in memory)."""
    return feats.permute(0, 2, 3, 1).reshape(-1, feats.shape[1])


@dataclass
class ReferenceMemory:
    """Colour references as one memory: matching features (N x C), their ab (N x 2) and, when known, their mean
    lightness (N, 0..1), at 1/8 scale."""

    keys: torch.Tensor
    ab: torch.Tensor
    lightness: torch.Tensor | None = None

    @classmethod
    def build(cls, feats: list[torch.Tensor], ab: list[torch.Tensor],
              lightness: list[torch.Tensor] | None = None) -> "ReferenceMemory":
        """From per-reference matching features (1 x C x h x w, ``match_features``), ab (1 x 2 x h' x w', any size)
        and optionally lightness (1 x 1 x h' x w', 0..1, any size)."""
        keys, values, lights = [], [], []
        for i, (f, a) in enumerate(zip(feats, ab)):
            keys.append(_positions(f[:1]))
            values.append(F.adaptive_avg_pool2d(a.float(), f.shape[-2:]).flatten(2)[0].t())
            if lightness is not None:
                lights.append(F.adaptive_avg_pool2d(lightness[i].float(), f.shape[-2:]).flatten().to(f.device))
        return cls(torch.cat(keys), torch.cat(values), torch.cat(lights) if lightness is not None else None)

    def extended(self, other: "ReferenceMemory | None") -> "ReferenceMemory":
        if other is None:
            return self
        both = self.lightness is not None and other.lightness is not None
        return ReferenceMemory(torch.cat([self.keys, other.keys.to(self.keys.dtype)]), torch.cat([self.ab, other.ab]),
                               torch.cat([self.lightness, other.lightness]) if both else None)

    def match(self, feats: torch.Tensor, lightness: torch.Tensor | None = None, *,
              lightness_weight: float = LIGHTNESS_MATCH_WEIGHT, temperature: float = MATCH_TEMPERATURE,
              chunk: int = MATCH_CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
        """(ab B x 2 x h x w, confidence B x 1 x h x w) for target matching features ``feats`` (B x C x h x w):
        softmax over the similarities to every reference position, ``chunk`` target positions at a time. The
        similarity is the features' cosine, less ``lightness_weight`` times the squared difference of mean
        lightness when both the memory's and the target's (``lightness``, B x 1 x h' x w', 0..1, any size) are
        known: the grey features say what a region is, the lightness how light its colour must be.
        The cosines' product runs in the dtype of ``feats``: 16-bit features (``match_features`` in the network's
        bf16 or fp16) take the hardware's fast 16-bit units, and their rounding (about 0.001 on a cosine) stays
        below what the network's 16-bit features already carry. Everything after the product is float32."""
        b, c, h, w = feats.shape
        queries = _positions(feats)
        keys = self.keys.to(queries.dtype)
        dtype = torch.promote_types(queries.dtype, torch.float32)  # of everything after the product
        # Every pass over a chunk's similarities (chunk x memory size) costs more than the product itself, so the
        # softmax's logits are built in two: the lightness penalty -weight (lq - lk)^2 / T expanded as a
        # rank-3 product [lq^2, lq, 1] . [-weight, 2 weight lk, -weight lk^2] / T, then the cosines / T added.
        penalty_q = penalty_k = None
        if lightness is not None and self.lightness is not None and lightness_weight > 0:
            lq = F.adaptive_avg_pool2d(lightness.float(), (h, w)).flatten().to(device=feats.device, dtype=dtype)
            lk = self.lightness.to(device=feats.device, dtype=dtype)
            weight = lightness_weight / temperature
            penalty_q = torch.stack([lq.square(), lq, torch.ones_like(lq)], dim=1)
            penalty_k = torch.stack([torch.full_like(lk, -weight), 2.0 * weight * lk, -weight * lk.square()])
        # ab and a column of ones: one product gives the weighted sum and the softmax's denominator.
        values = F.pad(self.ab.to(device=feats.device, dtype=dtype), (0, 1), value=1.0)
        ab = feats.new_empty(b * h * w, 2, dtype=dtype)
        best = feats.new_empty(b * h * w, dtype=dtype)
        for start in range(0, queries.shape[0], chunk):
            stop = start + chunk
            cosines = queries[start:stop] @ keys.t()
            if penalty_q is None:
                logits = cosines.to(dtype).div_(temperature)
            else:
                logits = (penalty_q[start:stop] @ penalty_k).add_(cosines, alpha=1.0 / temperature)
            top = logits.amax(dim=1, keepdim=True)
            best[start:stop] = top[:, 0] * temperature
            # Floored like the annealed mean's bins (``LOGIT_FLOOR``): far-off matches sit hundreds below the best,
            # and exponentials in float32's subnormal range run over twenty times slower.
            sums = logits.sub_(top).clamp_(min=-LOGIT_FLOOR).exp_() @ values
            ab[start:stop] = sums[:, :2] / sums[:, 2:]
        ab = ab.view(b, h, w, 2).permute(0, 3, 1, 2)
        return ab, best.clamp(0.0, 1.0).view(b, 1, h, w)


@torch.no_grad()
def memory_from_lab(encoder, lightness: torch.Tensor, ab: torch.Tensor, *, size: int = REFERENCE_SIZE,
                    scale: float = 1.0, dtype: torch.dtype | None = None) -> ReferenceMemory:
    """A memory of one picture given as L (1 x 1 x H x W, 0..100) and ab (1 x 2 x h x w, any size): its luminance is
    encoded (short side ``size``, never upscaled, then times ``scale``) and its ab pooled onto the matching
    positions. A video's previous output frame enters the memory this way."""
    target = render_shape(*lightness.shape[-2:], size)
    if scale != 1.0:
        target = (max(1, round(target[0] * scale)), max(1, round(target[1] * scale)))
    light = resize(lightness.float(), target)
    grey = pad_for_network(grey_rgb_from_lightness(light))
    param = next(encoder.parameters())
    feats = encoder(grey.to(device=param.device, dtype=dtype or param.dtype), until="relu4_1")
    keys = match_features(feats, feats["relu4_1"].dtype)
    fy, fx = valid_features(*target)
    keys = keys[:, :, :fy, :fx]
    return ReferenceMemory.build([keys], [F.adaptive_avg_pool2d(resize(ab.float(), target).to(keys.device), (fy, fx))],
                                 [F.adaptive_avg_pool2d(light.to(keys.device) / 100.0, (fy, fx))])


def hint_memory(keys: torch.Tensor, ab: torch.Tensor, mask: torch.Tensor,
                lightness: torch.Tensor | None = None) -> ReferenceMemory | None:
    """One picture's own hints as a colour memory, so a region far from every hint that looks like a hinted one
    (in the grey features) takes its colour: a blue dot on one patch of sky also reaches a patch of sky the
    spreading cannot reach. ``keys`` are the picture's matching features (1 x C x h x w, ``match_features``);
    ``ab`` and ``mask`` (1 x 2 and 1 x 1) and ``lightness`` (1 x 1, 0..1) are at 4x their size (half the encoder
    input). Each hinted feature cell holds its hints' mean ab. None when no cell has a hint."""
    h, w = keys.shape[-2:]
    mask = mask.float()[..., : 4 * h, : 4 * w]
    weight = F.adaptive_avg_pool2d(mask, (h, w))
    hinted = weight[0, 0] > 0
    if not bool(hinted.any()):
        return None
    mean_ab = F.adaptive_avg_pool2d(ab.float()[..., : 4 * h, : 4 * w] * mask, (h, w)) / weight.clamp_min(1e-8)
    light = None
    if lightness is not None:
        light = F.adaptive_avg_pool2d(lightness.float()[..., : 4 * h, : 4 * w], (h, w))[0, 0][hinted].to(keys.device)
    return ReferenceMemory(keys[0].permute(1, 2, 0)[hinted], mean_ab[0].permute(1, 2, 0)[hinted].to(keys.device), light)


def match_guidance(keys: torch.Tensor, memory: ReferenceMemory | None, hints: tuple[torch.Tensor, torch.Tensor] | None,
                   lightness: torch.Tensor | None = None, *,
                   lightness_weight: float = LIGHTNESS_MATCH_WEIGHT) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(ab B x 2 x h x w, confidence B x 1 x h x w) matched for target features ``keys`` (B x C x h x w) in the
    colour references' ``memory`` and, per picture, in its own ``hints`` (ab B x 2, mask B x 1, at 4x the keys'
    size; ``hint_memory``): one memory, so the references and the hints compete for every region. None when
    neither gives anything to match."""
    if hints is None:
        return None if memory is None else memory.match(keys, lightness, lightness_weight=lightness_weight)
    batch, _, h, w = keys.shape
    ab = keys.new_zeros(batch, 2, h, w, dtype=torch.float32)
    confidence = keys.new_zeros(batch, 1, h, w, dtype=torch.float32)
    for i in range(batch):
        def picture(t: torch.Tensor) -> torch.Tensor:  # picture i's map (one map may serve the whole batch)
            return t[min(i, t.shape[0] - 1)][None]

        light = None if lightness is None else picture(lightness)
        own = hint_memory(keys[i : i + 1], picture(hints[0]), picture(hints[1]), light)
        both = memory if own is None else own.extended(memory)
        if both is not None:
            ab[i : i + 1], confidence[i : i + 1] = both.match(keys[i : i + 1], light, lightness_weight=lightness_weight)
    return ab, confidence


def reference_memory(encoder, references: list[torch.Tensor], *, size: int = REFERENCE_SIZE,
                     dtype: torch.dtype | None = None) -> ReferenceMemory:
    """One memory from colour reference photos (each N x 3 x H x W in 0..1; every image of every entry counts), each
    encoded at every scale of ``REFERENCE_SCALES``. A reference with no colour of its own (grey, or nearly so) is
    refused with one sentence naming it."""
    memories = []
    count = 0
    for entry in references:
        rgb = check_image(entry, "reference image")
        for i in range(rgb.shape[0]):
            count += 1
            lab = rgb_to_lab(resize(rgb[i : i + 1], render_shape(*rgb.shape[-2:], size)))
            mean_chroma = float(chroma(lab[:, 1:]).mean())
            if mean_chroma < GREY_REFERENCE_CHROMA:
                raise ValueError(f"reference image {count} is grey (mean chroma {mean_chroma:.1f} Lab units): it has no colours "
                                 "to lend; give a colour photo")
            memories += [memory_from_lab(encoder, lab[:, :1], lab[:, 1:], size=size, scale=scale, dtype=dtype)
                         for scale in REFERENCE_SCALES]
    if not memories:
        raise ValueError("no reference images were given")
    memory = memories[0]
    for other in memories[1:]:
        memory = memory.extended(other)
    return memory


def match_reference(target_feats: dict[str, torch.Tensor], reference_feats: list[dict[str, torch.Tensor]],
                    reference_ab: list[torch.Tensor], *, temperature: float = MATCH_TEMPERATURE,
                    chunk: int = MATCH_CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
    """The references' ab carried onto the target by feature matching, with the match strength as confidence
    (B x 2 and B x 1 at 1/8 of the encoder input). Encoder features of the grey target and of the GREY references."""
    memory = ReferenceMemory.build([match_features(f) for f in reference_feats], reference_ab)
    return memory.match(match_features(target_feats), temperature=temperature, chunk=chunk)
