"""The painting's palette on the stylised image: a linear colour transfer between two Gaussians.

The style decoder repaints from the grey photo's features and the painting's relu4_1 statistics, and
colour is what it gets least right: most paintings come out with a yellow-brown cast. So after the
decoder, the stylised image's RGB distribution is moved onto the painting's with the affine map that
takes one Gaussian to the other while moving the colours least (the Monge-Kantorovich linear colour
transfer of Pitié and Kokaram, 2007). The stylised image's statistics are taken once over the whole
render (its valid region), so every tile of a tiled run gets the same map, and ``strength`` mixes the
map with the identity as Style Transfer's strength mixes the features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Added to the stylised image's covariance (RGB in 0..1): a flat stylised image (a variance near 0) must not
# turn into a huge gain that amplifies noise. The painting's gets only a numerical epsilon, so a grey
# painting gives a grey result.
COVARIANCE_FLOOR = 1e-3
TARGET_EPSILON = 1e-6
MOMENT_PIXELS = 1 << 20  # the statistics read at most about this many pixels per image (a regular subsample)


@dataclass(frozen=True)
class ColourMoments:
    """Mean (B x 3) and covariance (B x 3 x 3) of RGB colours, in float64."""

    mean: torch.Tensor
    cov: torch.Tensor

    def select(self, start: int, stop: int) -> "ColourMoments":
        """The moments of images start..stop (a single entry serves every image)."""
        if self.mean.shape[0] <= 1:
            return self
        return ColourMoments(self.mean[start:stop], self.cov[start:stop])


def colour_moments(rgb: torch.Tensor) -> ColourMoments:
    """The RGB mean and covariance of each image of ``rgb`` (B x 3 x H x W), from a regular subsample
    of at most about ``MOMENT_PIXELS`` pixels (deterministic)."""
    step = max(1, int((rgb.shape[-2] * rgb.shape[-1] / MOMENT_PIXELS) ** 0.5))
    # On the CPU: float64 is not available on every device (MPS), and the subsample is small.
    pixels = rgb[:, :3, ::step, ::step].flatten(2).to("cpu", torch.float64)  # B x 3 x N
    mean = pixels.mean(dim=2)
    centred = pixels - mean[:, :, None]
    cov = centred @ centred.transpose(1, 2) / max(1, pixels.shape[-1] - 1)
    return ColourMoments(mean, cov)


def _sqrtm(cov: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(cov)
    return vectors @ torch.diag_embed(values.clamp_min(0.0).sqrt()) @ vectors.transpose(-1, -2)


def transfer_map(source: ColourMoments, target: ColourMoments, strength: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(matrix B x 3 x 3, offset B x 3) with ``matrix @ x + offset`` taking ``source`` onto ``target``;
    ``strength`` 0 gives the identity exactly, 1 the full transfer."""
    eye = torch.eye(3, dtype=torch.float64)
    cs = source.cov.cpu() + COVARIANCE_FLOOR * eye
    ct = target.cov.to(cs) + TARGET_EPSILON * eye
    root = _sqrtm(cs)
    root_inv = torch.linalg.inv(root)
    full = root_inv @ _sqrtm(root @ ct @ root) @ root_inv
    matrix = (1.0 - strength) * eye + strength * full
    source_mean = source.mean.cpu()
    target_mean = (1.0 - strength) * source_mean + strength * target.mean.to(source_mean)
    offset = target_mean - (matrix @ source_mean[:, :, None])[:, :, 0]
    return matrix, offset


def apply_map(rgb: torch.Tensor, matrix: torch.Tensor, offset: torch.Tensor, rows: int = 256) -> torch.Tensor:
    """``matrix @ pixel + offset`` for every pixel of ``rgb`` (B x 3 x H x W), in place, a band of rows
    at a time (no full-size temporaries)."""
    m = matrix.to(device=rgb.device, dtype=torch.float32)
    o = offset.to(device=rgb.device, dtype=torch.float32)
    for i in range(rgb.shape[0]):
        for y in range(0, rgb.shape[-2], rows):
            band = rgb[i, :3, y : y + rows]
            band.copy_(torch.einsum("ij,jhw->ihw", m[i], band) + o[i][:, None, None])
    return rgb


def match_palette(stylised: torch.Tensor, valid: tuple[int, int], target: ColourMoments, strength: float = 1.0) -> torch.Tensor:
    """``stylised`` (B x 3 x H x W, possibly padded beyond ``valid`` rows x columns) with its colours moved
    onto ``target``'s, the statistics read from the valid region only; in place."""
    if strength <= 0.0:
        return stylised
    h, w = valid
    source = colour_moments(stylised[:, :3, :h, :w].clamp(0.0, 1.0))
    target = target if target.mean.shape[0] == stylised.shape[0] else ColourMoments(
        target.mean.expand(stylised.shape[0], -1), target.cov.expand(stylised.shape[0], -1, -1))
    matrix, offset = transfer_map(source, target, strength)
    return apply_map(stylised, matrix, offset)
