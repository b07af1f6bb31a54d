"""Quantised ab chroma: bins, soft histograms, and the annealed-mean decoding.

Chroma (a, b) is quantised on a regular grid of ``bins_per_axis`` x ``bins_per_axis`` cells covering
``[-ab_range, ab_range]`` on both axes (Zhang et al. 2016 use 10-unit cells; 22 x 22 over +-110 is
the same grid). The colour decoder predicts a distribution over these bins for every pixel; the
annealed mean (softmax at a temperature below one, then the expected bin centre) turns it into a
single ab value that is vivid where the distribution is confident and safe where it is not.

A soft ab histogram (each pixel spreads unit mass over nearby bins with a Gaussian kernel) is
both the palette that conditions the colour decoder and the differentiable colour loss target.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange

from .interrupts import interrupt_point


# Pixels decoded together by the bins-last annealed mean: 1024 x 484 bins x 4 bytes = 2 MB, about
# the size of a core's L2 cache, so a block's logits and probabilities stay there.
_PIXELS_PER_BLOCK = 1024
# e^-60: far above float32's subnormal range (below about e^-87), also once multiplied by a bin's centre.
LOGIT_FLOOR = 60.0


def floor_logits(logits: torch.Tensor, temperature: float, dim: int) -> torch.Tensor:
    """Bin logits raised to at least ``LOGIT_FLOOR`` x ``temperature`` below each pixel's highest. A bin that far
    down has a probability under e^-60 at this temperature (and under e^-22 untempered), so the colours move by
    less than 1e-8 Lab units and the entropy by less than 1e-6, but neither an exponential nor its product with
    a bin centre falls into the subnormal range, where x86 arithmetic is many times slower: the guidance logits
    of hints and references push far-off bins down by hundreds, which makes an unfloored softmax 5x slower than
    on unguided logits, and probabilities near e^-80 halve the speed of the product with the bin centres.
    Only the bins-last path (CPU inference) floors: GPUs run subnormals at full speed, and in training the
    floor's backward costs more than it saves."""
    floor = logits.amax(dim=dim, keepdim=True) - LOGIT_FLOOR * temperature
    return torch.maximum(logits, floor)


class AbGrid:
    """The quantisation grid of the ab plane. Cheap to build; holds no learnable state."""

    def __init__(self, bins_per_axis: int = 22, ab_range: float = 110.0) -> None:
        if bins_per_axis < 2:
            raise ValueError(f"bins_per_axis must be at least 2, got {bins_per_axis}")
        self.bins_per_axis = bins_per_axis
        self.ab_range = float(ab_range)
        self.cell = 2.0 * self.ab_range / bins_per_axis
        axis = -self.ab_range + self.cell * (torch.arange(bins_per_axis, dtype=torch.float32) + 0.5)
        grid_a, grid_b = torch.meshgrid(axis, axis, indexing="ij")
        # Q x 2 bin centres, a-major order: bin index = ia * bins_per_axis + ib.
        self.centres = torch.stack([grid_a.flatten(), grid_b.flatten()], dim=1)

    @property
    def num_bins(self) -> int:
        return self.bins_per_axis * self.bins_per_axis

    def bin_index(self, ab: torch.Tensor) -> torch.Tensor:
        """Hard bin index (B x H x W, int64) of each pixel of a B x 2 x H x W ab map."""
        idx = torch.floor((ab + self.ab_range) / self.cell).long().clamp(0, self.bins_per_axis - 1)
        return idx[:, 0] * self.bins_per_axis + idx[:, 1]

    def soft_assign(self, ab: torch.Tensor, sigma: float = 5.0) -> torch.Tensor:
        """Gaussian soft assignment of every pixel to the bins: B x Q x H x W, summing to 1 per pixel."""
        centres = self.centres.to(device=ab.device, dtype=ab.dtype)
        pixels = rearrange(ab, "b c h w -> b h w c")
        d2 = ((pixels.unsqueeze(-2) - centres) ** 2).sum(-1)  # B x H x W x Q
        weights = torch.softmax(-d2 / (2.0 * sigma * sigma), dim=-1)
        return rearrange(weights, "b h w q -> b q h w")

    def histogram(self, ab: torch.Tensor, sigma: float = 5.0, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Differentiable normalised ab histogram of each image: B x Q.

        ``weight`` (B x 1 x H x W) lets some pixels count more (or not at all).
        """
        soft = self.soft_assign(ab, sigma)
        if weight is not None:
            soft = soft * weight
        hist = soft.sum(dim=(2, 3))
        return hist / hist.sum(dim=1, keepdim=True).clamp_min(1e-8)

    def annealed_mean(self, logits: torch.Tensor, temperature: float = 0.38, confidence: float = 0.0,
                      offset: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Decode B x Q x H x W bin logits (any float type) to a B x 2 x H x W float32 ab map (Zhang et al.'s
        annealed mean).

        ``confidence`` > 0 shrinks the chroma where the distribution is uncertain: by the factor
        1 - confidence * H / log(Q), with H the entropy of the untempered distribution, so a pixel whose
        bins spread over many colours is muted rather than given one confident guess. ``offset`` (weights
        B x K x H x W, projection K x Q) is added to the logits first, as the per-pixel product of the two:
        the colour decoder's guidance logits (``ColorDecoder.logits_and_guidance``)."""
        centres = self.centres.to(device=logits.device)
        if logits.is_contiguous(memory_format=torch.channels_last) and not logits.is_contiguous():
            return self._annealed_mean_bins_last(logits, temperature, centres, confidence, offset)
        logits = logits.float()
        if offset is not None:
            logits = logits + torch.einsum("bkhw,kq->bqhw", offset[0].float(), offset[1].float())
        probs = torch.softmax(logits / temperature, dim=1)
        ab = torch.einsum("bqhw,qc->bchw", probs, centres)
        if confidence > 0:
            ab = ab * (1.0 - confidence * self.normalised_entropy(logits))
        return ab

    def normalised_entropy(self, logits: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """Entropy of softmax(logits) over the bins (axis ``dim``), divided by log(Q), in 0..1: B x 1 x H x W
        for bin maps."""
        log_p = torch.log_softmax(logits.float(), dim=dim)
        entropy = -(log_p.exp() * log_p).sum(dim=dim, keepdim=True)
        return (entropy / math.log(self.num_bins)).clamp(0.0, 1.0)

    def _annealed_mean_bins_last(self, logits: torch.Tensor, temperature: float, centres: torch.Tensor,
                                 confidence: float, offset: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        """The annealed mean when the bins are innermost in memory (channels_last, the CPU layout).

        Pixels x bins rows, softmax over the last axis and one matrix product, a block of pixels at a
        time: a block's logits are converted to float32, offset, scaled and turned into probabilities while
        they stay in the cache, so the logits are read from memory once instead of once per whole-map pass
        (conversion, offset, divide, softmax, product, and the entropy when ``confidence`` > 0). Every
        block is an interrupt point (``gan_core.interrupts``): a tile's annealed mean runs no convolution."""
        x = rearrange(logits, "b q h w -> (b h w) q")  # a view: bins are innermost
        weights = projection = None
        if offset is not None:
            weights = rearrange(offset[0].float(), "b k h w -> (b h w) k")
            projection = offset[1].float()
        ab = x.new_empty(x.shape[0], 2, dtype=torch.float32)
        for start in range(0, x.shape[0], _PIXELS_PER_BLOCK):
            interrupt_point()
            block = x[start : start + _PIXELS_PER_BLOCK].float()
            if weights is not None:
                # In place on the float32 copy of bf16/fp16 logits (one copy of the block, not two); float32
                # logits are the caller's, so they get a new tensor.
                add = torch.Tensor.addmm_ if x.dtype != torch.float32 else torch.addmm
                block = add(block, weights[start : start + _PIXELS_PER_BLOCK], projection)
            block = floor_logits(block, temperature, dim=-1)
            rows = slice(start, start + block.shape[0])
            torch.mm(torch.softmax(block / temperature, dim=-1), centres, out=ab[rows])
            if confidence > 0:
                ab[rows] *= 1.0 - confidence * self.normalised_entropy(block, dim=-1)
        b, _, h, w = logits.shape
        return rearrange(ab, "(b h w) c -> b c h w", b=b, h=h, w=w)
