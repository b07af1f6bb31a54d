"""Guided colour: user hints and colour reference photos, turned into the colour decoder's guidance map.

Two sources, one map. User hints (``gan_core.hints``) are spread along the picture's structure; colour
references (``gan_core.references``) are matched in the shared encoder's features, and a picture's own hints
join that matching too. The decoder receives six channels at half the render size: hint a, b, confidence,
reference a, b, confidence (ab divided by ``AB_SCALE``). It learns how far to trust each; no guidance is all
zeros. Its colours are then pulled toward the guidance (``GuidanceFusion``): toward the matched reference
colour as far as the match is confident, then toward the spread hint colour as far as hints are near, so a
hint pixel always keeps its colour, a good match shows through at full strength, and regions that match
nothing keep the decoder's own colours. These modules hold no learnable state and never import the decoder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F

AB_SCALE = 110.0  # ab units per guidance unit
GUIDE_CHANNELS = 6  # hint a, hint b, hint confidence, reference a, reference b, reference confidence


def guidance_map(size: tuple[int, int], *, batch: int, hint: tuple[torch.Tensor, torch.Tensor] | None = None,
                 reference: tuple[torch.Tensor, torch.Tensor] | None = None, device=None) -> torch.Tensor:
    """The B x 6 x h x w guidance map at ``size`` (half the render size) from dense (ab, confidence) pairs of
    hints and references, at any size; a missing source is zeros."""
    parts = []
    for source in (hint, reference):
        if source is None:
            parts.append(torch.zeros(batch, 3, *size, device=device))
            continue
        ab, confidence = source
        if tuple(ab.shape[-2:]) != tuple(size):
            ab = F.interpolate(ab.float(), size=size, mode="bilinear", align_corners=False)
            confidence = F.interpolate(confidence.float(), size=size, mode="bilinear", align_corners=False)
        parts.append(torch.cat([ab.float() / AB_SCALE, confidence.float()], dim=1).expand(batch, -1, -1, -1))
    return torch.cat(parts, dim=1)


@dataclass(frozen=True)
class GuidanceFusion:
    """How far the decoder's colours are pulled toward the guidance: the guidance colour's share is its
    confidence ** power (a power below 1 trusts a middling confidence more than linearly; 0 takes the guidance
    colour wherever it has any confidence). ``hint_match_power`` replaces ``reference_power`` when the matched
    colours come from the picture's own hints alone (``hints_only``). The defaults were picked by `python -m
    train sweep-guidance-fusion --data DIR` on TRAINING photos (1, 10 and 100 hints, references (a) and (b) of
    ``train eval-guided``)."""

    hint_power: float = 0.25
    reference_power: float = 0.25
    hint_match_power: float = 1.0

    def __post_init__(self) -> None:
        for name in ("hint_power", "reference_power", "hint_match_power"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 16.0):
                raise ValueError(f"{name} must be a number from 0 to 16, got {value!r}")

    def hints_only(self) -> "GuidanceFusion":
        """The fusion when the matched colours come from the picture's own hints alone (no colour references):
        ``hint_match_power`` takes the reference colour's place, since a match to a hinted region of the same
        picture is weaker evidence than a match to a reference photo of the scene."""
        return dataclasses.replace(self, reference_power=self.hint_match_power)

    def __call__(self, ab: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        """``ab`` (B x 2 x h x w, Lab units) pulled toward the colours of ``guide`` (``guidance_map``, same size):
        first toward the reference colour, then toward the hint colour, so hints win where given. Where a
        confidence is zero, ab is unchanged."""
        guide = guide.float()
        out = ab.float()
        for colour, confidence, power in ((guide[:, 3:5], guide[:, 5:6], self.reference_power),
                                          (guide[:, 0:2], guide[:, 2:3], self.hint_power)):
            confidence = confidence.clamp(0.0, 1.0)
            if bool((confidence > 0).any()):
                share = torch.where(confidence > 0, confidence.pow(power), torch.zeros_like(confidence))
                out = torch.lerp(out, colour * AB_SCALE, share)
        return out
