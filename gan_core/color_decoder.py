"""The colour decoder: a U-Net over the encoder's skips that predicts ab chroma as bin logits.

It predicts a distribution over the quantised ab grid (``gan_core.chroma``) at half the render
resolution; the annealed mean turns it into chroma. An optional palette (the soft ab histogram of a
reference image) modulates the bottleneck by FiLM, so colours follow the reference when one is given
and the network colours on its own when not. BatchNorm (fixed statistics at inference) rather than a
per-image norm keeps tiled inference seamless.

A guided decoder also reads the guidance map of ``gan_core.guidance`` (hint and reference ab with their
confidences). It enters in two ways, both zero at initialisation so a warm start from an unguided model
begins with that model's output: small convolutions add it to the features at 1/8, 1/4 and 1/2 scale
(context: what to do with a hint), and a learned, confidence-weighted gate adds the guidance colour's
bin logits to the head (precision: a hint can be reproduced exactly without passing through the bins).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .chroma import AbGrid
from .guidance import AB_SCALE, GUIDE_CHANNELS


# Pixels of the head's map given their guidance logits at once: 16384 x 484 bins x 4 bytes = 32 MB per
# temporary instead of several whole-tile maps, and the gate convolution of every row band is an
# interrupt point (``gan_core.interrupts``).
_GUIDANCE_PIXELS = 1 << 14


def _conv_bn_relu(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


class PaletteFiLM(nn.Module):
    """Maps an ab histogram (plus a 'palette given' flag) to per-channel scale and shift."""

    def __init__(self, num_bins: int, hidden: int, channels: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(num_bins + 1, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 2 * channels))
        # Start as the identity so an untrained palette path changes nothing.
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, x: torch.Tensor, palette: torch.Tensor | None) -> torch.Tensor:
        """``palette``: N x Q histograms (N = 1 or the batch); an all-zero row means 'no palette'."""
        batch = x.shape[0]
        if palette is None:
            cond = x.new_zeros(batch, self.mlp[0].in_features)
        else:
            palette = palette.to(x.dtype)
            given = (palette.sum(dim=1, keepdim=True) > 0).to(x.dtype)
            cond = torch.cat([palette, given], dim=1).expand(batch, -1)
        scale, shift = self.mlp(cond).chunk(2, dim=1)
        return x * (1 + scale[:, :, None, None]) + shift[:, :, None, None]


class GuidanceInjection(nn.Module):
    """Guidance (B x 6 x h x w) to a feature offset; the last layer starts at zero (no effect)."""

    def __init__(self, channels: int, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(GUIDE_CHANNELS, hidden, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        return x + self.net(guide.to(x.dtype))


def pool_guidance(guide: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Guidance at a coarser size: ab averaged with the confidences as weights, confidences averaged."""
    if tuple(guide.shape[-2:]) == tuple(size):
        return guide
    parts = []
    for ab, conf in ((guide[:, 0:2], guide[:, 2:3]), (guide[:, 3:5], guide[:, 5:6])):
        pooled_conf = F.adaptive_avg_pool2d(conf, size)
        parts += [F.adaptive_avg_pool2d(ab * conf, size) / pooled_conf.clamp_min(1e-6), pooled_conf]
    return torch.cat(parts, dim=1)


class ColorDecoder(nn.Module):
    def __init__(self, skip_channels: tuple[int, int, int], widths: tuple[int, int, int], num_bins: int, palette_embed: int,
                 *, grid: AbGrid | None = None, guided: bool = False) -> None:
        """``skip_channels``: channels of relu2_2, relu3_3 and relu4_3; ``guided`` adds the guidance inputs (needs ``grid``)."""
        super().__init__()
        c2, c3, c4 = skip_channels
        w8, w4, w2 = widths
        self.bottleneck = nn.Sequential(_conv_bn_relu(c4, w8), _conv_bn_relu(w8, w8))
        self.palette = PaletteFiLM(num_bins, palette_embed, w8)
        self.up4 = nn.Sequential(_conv_bn_relu(w8 + c3, w4), _conv_bn_relu(w4, w4))
        self.up2 = nn.Sequential(_conv_bn_relu(w4 + c2, w2), _conv_bn_relu(w2, w2))
        self.head = nn.Conv2d(w2, num_bins, 1)
        self.guided = guided
        if guided:
            if grid is None:
                raise ValueError("a guided colour decoder needs the ab grid")
            self.guide8, self.guide4, self.guide2 = GuidanceInjection(w8), GuidanceInjection(w4), GuidanceInjection(w2)
            # Per-pixel trust in the hint and the reference colour (two gates), from the decoder's features.
            self.guide_gate = nn.Conv2d(w2 + GUIDE_CHANNELS, 2, 1)
            nn.init.zeros_(self.guide_gate.weight)
            nn.init.zeros_(self.guide_gate.bias)
            self.register_buffer("bin_centres", grid.centres.clone(), persistent=False)

    def forward(self, feats: dict[str, torch.Tensor], palette: torch.Tensor | None = None,
                guide: torch.Tensor | None = None) -> torch.Tensor:
        """Bin logits, B x Q x H/2 x W/2 (float32 when guided), guidance logits included (the training path).
        ``guide``: B x 6 x H/2 x W/2 or None (no guidance)."""
        x, guide = self._features(feats, palette, guide)
        if not self.guided:
            return self.head(x)
        logits = self.head(x).float()
        if guide is None:
            return logits  # every confidence is zero, so the guidance logits add nothing
        weights, projection = self.guidance_logits(x, guide)
        rows = max(1, _GUIDANCE_PIXELS // max(1, x.shape[0] * x.shape[-1]))
        for r0 in range(0, x.shape[-2], rows):  # per-pixel maths: exact in row bands, with band-sized temporaries
            add_low_rank_(logits[:, :, r0 : r0 + rows], weights[:, :, r0 : r0 + rows], projection)
        return logits

    def logits_and_guidance(self, feats: dict[str, torch.Tensor], palette: torch.Tensor | None = None,
                            guide: torch.Tensor | None = None) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """The inference path: the head's logits as the network computes them (its dtype and memory layout) and,
        when guided, the guidance logits as a low-rank offset (``guidance_logits``), which
        ``AbGrid.annealed_mean`` adds block by block while the logits are in the cache anyway, instead of in
        one more pass over the whole B x Q map. ``forward`` = logits + offset."""
        x, guide = self._features(feats, palette, guide)
        logits = self.head(x)
        return logits, (None if guide is None else self.guidance_logits(x, guide))

    def _features(self, feats: dict[str, torch.Tensor], palette: torch.Tensor | None,
                  guide: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The head's input features, and the guidance map as float32 (None when no guidance was given)."""
        if guide is not None and not self.guided:
            raise ValueError("this colour decoder takes no guidance")
        given = guide
        x = self.palette(self.bottleneck(feats["relu4_3"]), palette)
        if self.guided:
            if guide is None:
                guide = x.new_zeros(x.shape[0], GUIDE_CHANNELS, *feats["relu2_2"].shape[-2:], dtype=torch.float32)
            guide = guide.float()
            x = self.guide8(x, pool_guidance(guide, x.shape[-2:]))
        x = F.interpolate(x, size=feats["relu3_3"].shape[-2:], mode="bilinear", align_corners=False)
        x = self.up4(torch.cat([x, feats["relu3_3"]], dim=1))
        if self.guided:
            x = self.guide4(x, pool_guidance(guide, x.shape[-2:]))
        x = F.interpolate(x, size=feats["relu2_2"].shape[-2:], mode="bilinear", align_corners=False)
        x = self.up2(torch.cat([x, feats["relu2_2"]], dim=1))
        if self.guided:
            x = self.guide2(x, guide)
        return x, (None if given is None else guide)

    def guidance_logits(self, x: torch.Tensor, guide: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The bin logits of the hint and reference colours (a Gaussian of 10 ab units around each), each weighted
        by its confidence times a learned gate, as (weights B x 3 x h x w, projection 3 x Q) whose product over the
        3 is the logits' offset. Linear in ab: -|ab - c|^2 / 2s^2 = (2 ab.c - |c|^2) / 2s^2 + const, so the
        weighted sum over both sources is (sum w ab, sum w) per pixel projected onto the bins."""
        # The 1 x 1 gate over [x, guide] in two parts (the weight split by input), which saves concatenating a
        # copy of x: a convolution over x, and a plain matrix product over the six guidance channels, which runs
        # many times faster than a six-channel convolution on the CPU.
        channels = x.shape[1]
        weight, bias = self.guide_gate.weight, self.guide_gate.bias
        from_guide = torch.matmul(weight[:, channels:, 0, 0].float(), guide.flatten(2)).view(-1, 2, *guide.shape[-2:])
        gates = F.conv2d(x, weight[:, :channels], bias).float().add_(from_guide)
        hint_w, ref_w = guide[:, 2:3] * gates[:, 0:1], guide[:, 5:6] * gates[:, 1:2]
        weights = torch.cat([(guide[:, 0:2] * hint_w + guide[:, 3:5] * ref_w) * AB_SCALE, hint_w + ref_w], dim=1)
        centres = self.bin_centres.to(device=guide.device, dtype=torch.float32)
        projection = torch.cat([2.0 * centres, -(centres * centres).sum(1, keepdim=True)], dim=1) / (2.0 * 10.0**2)
        return weights, projection.t()


def add_low_rank_(logits: torch.Tensor, weights: torch.Tensor, projection: torch.Tensor) -> None:
    """``logits`` (B x Q x h x w, float32) += the per-pixel product of ``weights`` (B x K x h x w) and ``projection``
    (K x Q), in place: straight into the logits' memory when it is channels-last (bins innermost)."""
    b, q, h, w = logits.shape
    k = weights.shape[1]
    pixels = logits.permute(0, 2, 3, 1)  # B x h x w x Q: a plain matrix per image when channels-last
    if pixels.stride(3) == 1 and pixels.stride(2) == q and pixels.stride(1) == w * q:
        rows = weights.permute(0, 2, 3, 1).reshape(b, h * w, k)
        pixels.view(b, h * w, q).baddbmm_(rows, projection.expand(b, k, q))
    else:
        logits += torch.einsum("bkhw,kq->bqhw", weights, projection)
