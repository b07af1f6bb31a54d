"""Training-free baselines for guided colour, the bar the learned model must clear in ``train eval-guided``.

- Hints: edge-aware propagation of the same hint pixels, a joint-bilateral normalised convolution over
  position and lightness (Knutsson & Westin 1993's normalised convolution with a bilateral kernel, as
  in Petschnigg et al. 2004's joint bilateral filter): each pixel takes the average of the hints'
  ab weighted by exp(-distance^2 / 2 sigma_space^2) exp(-(L - L_hint)^2 / 2 sigma_range^2), with a
  small weight of grey (ab 0) so pixels far from every hint stay grey instead of taking a far colour.
- References: plain feature matching, ``gan_core.references.match_reference``'s ab (cosine similarity
  of the grey target's and grey reference's relu3_3/relu4_1 features, softmax, carry the reference's
  ab) upsampled to the image and joined to the original lightness.

Both use the sum over every hint pixel exactly (no grid approximation); the work is bounded by
chunking the image's pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gan_core.color import grey_rgb_from_lightness, lightness_ab_to_rgb, rgb_to_lab
from gan_core.geometry import pad_for_network

# Picked by `python -m train sweep-hint-baseline --data DIR` on 12 TRAINING photos (512 px long side,
# 1, 10 and 100 hints): the best mean PSNR of the 48-point grid in train/baseline_sweep.py.
SIGMA_SPACE = 48.0  # pixels at 512 px on the long side
SIGMA_RANGE = 6.0  # Lab L units
PRIOR_WEIGHT = 0.01  # weight of grey, against a weight of 1 for a hint pixel at the same place and lightness
MAX_PAIRS = 1 << 22  # pixel x hint-pixel weights held at once (16 MiB of float32)


@torch.no_grad()
def propagate_hints(lightness: torch.Tensor, hint_ab: torch.Tensor, hint_mask: torch.Tensor, *,
                    sigma_space: float = SIGMA_SPACE, sigma_range: float = SIGMA_RANGE,
                    prior_weight: float = PRIOR_WEIGHT) -> torch.Tensor:
    """ab (B x 2 x H x W) spread from the hints along the picture's lightness.

    ``lightness``: B x 1 x H x W (Lab L, 0..100); ``hint_ab``: B x 2 x H x W; ``hint_mask``: B x 1 x H x W,
    a hint where > 0.5. An image without hints comes back grey (ab 0)."""
    if sigma_space <= 0 or sigma_range <= 0 or prior_weight <= 0:
        raise ValueError("sigma_space, sigma_range and prior_weight must be positive")
    b, _, h, w = lightness.shape
    if hint_ab.shape[-2:] != (h, w) or hint_mask.shape[-2:] != (h, w):
        raise ValueError(f"the hints ({tuple(hint_ab.shape[-2:])}) and mask ({tuple(hint_mask.shape[-2:])}) "
                         f"must have the image's size ({h} x {w})")
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    out = torch.zeros(b, 2, h * w)
    for i in range(b):
        where = hint_mask[i, 0].flatten() > 0.5
        if where.any():
            points = bilateral_points(ys.flatten(), xs.flatten(), lightness[i, 0].flatten(), sigma_space, sigma_range)
            values = hint_ab[i].flatten(1)[:, where].float().t()
            out[i] = bilateral_average(points, points[where], values, prior_weight).t()
    return out.view(b, 2, h, w).to(lightness)


def bilateral_points(ys: torch.Tensor, xs: torch.Tensor, lightness: torch.Tensor, sigma_space: float,
                     sigma_range: float) -> torch.Tensor:
    """N x 3 points (y, x, L) scaled by the sigmas: one Euclidean distance then gives both Gaussians' exponents."""
    return torch.stack([ys.float() / sigma_space, xs.float() / sigma_space, lightness.float() / sigma_range], dim=1)


def bilateral_average(queries: torch.Tensor, hints: torch.Tensor, values: torch.Tensor, prior_weight: float) -> torch.Tensor:
    """N x 2: at each query point (``bilateral_points``), the hints' ``values`` (K x 2) averaged with weights
    exp(-|q - h|^2 / 2), plus ``prior_weight`` of zero; ``MAX_PAIRS`` weights at a time."""
    out = queries.new_zeros(queries.shape[0], values.shape[1])
    hint_norms, query_norms = hints.square().sum(1)[None], queries.square().sum(1)[:, None]
    chunk = max(1, MAX_PAIRS // hints.shape[0])
    for start in range(0, queries.shape[0], chunk):
        stop = min(start + chunk, queries.shape[0])
        d2 = torch.addmm(hint_norms, queries[start:stop], hints.t(), alpha=-2.0).add_(query_norms[start:stop])
        weight = d2.clamp_(min=0.0).mul_(-0.5).exp_()
        out[start:stop] = (weight @ values) / (weight.sum(1, keepdim=True) + prior_weight)
    return out


def hints_baseline(grey_rgb: torch.Tensor, hint_ab: torch.Tensor, hint_mask: torch.Tensor, **kwargs) -> torch.Tensor:
    """The propagation baseline as an RGB image with the input's own lightness."""
    lightness = rgb_to_lab(grey_rgb)[:, :1]
    return lightness_ab_to_rgb(lightness, propagate_hints(lightness, hint_ab, hint_mask, **kwargs))


@torch.no_grad()
def reference_baseline(encoder, grey_rgb: torch.Tensor, references: list[torch.Tensor]) -> torch.Tensor:
    """Plain feature matching: every target position takes the softmax-weighted ab of the references'
    positions (``match_reference``, no learned decoder), bilinearly upsampled, on the target's lightness.

    ``grey_rgb``: 1 x 3 x H x W (the grey input); ``references``: colour photos, each 1 x 3 x h x w."""
    from gan_core.references import match_reference  # the same matching the model's reference path uses

    h, w = grey_rgb.shape[-2:]
    dtype = next(encoder.parameters()).dtype
    target = encoder(pad_for_network(grey_rgb).to(dtype), until="relu4_3")
    ref_feats, ref_ab = [], []
    for ref in references:
        padded = pad_for_network(ref.float())
        lab = rgb_to_lab(padded)
        ref_feats.append(encoder(grey_rgb_from_lightness(lab[:, :1]).to(dtype), until="relu4_3"))
        ref_ab.append(lab[:, 1:])
    ab, _confidence = match_reference({k: v.float() for k, v in target.items()},
                                      [{k: v.float() for k, v in f.items()} for f in ref_feats], ref_ab)
    hp, wp = pad_for_network(grey_rgb).shape[-2:]  # padding is bottom/right only: crop back from the top left
    ab = F.interpolate(ab.float(), size=(hp, wp), mode="bilinear", align_corners=False)[..., :h, :w]
    return lightness_ab_to_rgb(rgb_to_lab(grey_rgb)[:, :1], ab)
