"""Photos with a shallow depth of field, rendered from sharp ones for training.

Animal and portrait photographs usually have an out-of-focus background: foliage, sky or a wall
blurred into smooth blobs, with no texture left to tell them apart. A model trained on sharp photos
of monuments and landscapes colours such blobs as what smooth regions were in its training photos
(sky blue, sandstone orange) instead of green. ``defocused`` blurs a training crop everywhere except,
most of the time, a sharp "subject" (a soft ellipse around a random point), so the colours of blurred
regions are learnt from photos whose sharp originals showed what they were. Both the grey input and
the colour target come from the defocused crop.
"""

from __future__ import annotations

import torch

from .degrade import gaussian_blur, uniform

SIGMA_SHARE = (0.01, 0.04)  # blur sigma as a share of the crop's side (2 to 9 px at 224 px)
SUBJECT_PROB = 0.75  # the rest is blurred all over
SUBJECT_RADII = (0.15, 0.4)  # the sharp ellipse's radii as shares of the side
EDGE_SOFTNESS = 4.0  # larger: a harder edge between the sharp subject and the blur


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return float(uniform(gen, 1, low, high))


def defocused(crop: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A 3 x S x S crop (0..1) as if shot with a shallow depth of field; a pure function of ``gen``'s state."""
    side = min(crop.shape[-2:])
    sigma = side * _uniform(gen, *SIGMA_SHARE)
    radius = max(1, min(round(3 * sigma), side - 1))
    blurred = gaussian_blur(crop[:, None], torch.full((crop.shape[0],), sigma), radius)[:, 0]
    if float(torch.rand((), generator=gen)) >= SUBJECT_PROB:
        return blurred
    h, w = crop.shape[-2:]
    cy, cx = h * _uniform(gen, 0.3, 0.7), w * _uniform(gen, 0.3, 0.7)
    ry, rx = side * _uniform(gen, *SUBJECT_RADII), side * _uniform(gen, *SUBJECT_RADII)
    yy = (torch.arange(h, dtype=torch.float32)[:, None] + 0.5 - cy) / ry
    xx = (torch.arange(w, dtype=torch.float32)[None, :] + 0.5 - cx) / rx
    sharp = torch.sigmoid((1.0 - (yy * yy + xx * xx)) * EDGE_SOFTNESS)
    return torch.lerp(blurred, crop, sharp.to(crop))
