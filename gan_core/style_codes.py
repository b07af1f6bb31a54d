"""Style as feature statistics: AdaIN and the strength interpolation (Huang & Belongie 2017).

A style code is the per-channel mean and standard deviation of relu4_1 features, B x C each.
Strength mixes in feature space, as pytorch-AdaIN does: ``alpha * adain(f) + (1 - alpha) * f``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class StyleCode:
    mean: torch.Tensor  # B x C (B may be 1 and broadcast over a batch)
    std: torch.Tensor

    def to(self, **kwargs) -> "StyleCode":
        return StyleCode(self.mean.to(**kwargs), self.std.to(**kwargs))


def feature_stats(feats: torch.Tensor, eps: float = 1e-5) -> StyleCode:
    """Channel mean and standard deviation over the spatial axes of B x C x H x W features."""
    flat = feats.flatten(2).float()
    mean = flat.mean(dim=2)
    std = (flat.var(dim=2, unbiased=False) + eps).sqrt()
    return StyleCode(mean.to(feats.dtype), std.to(feats.dtype))


class FeatureMoments:
    """The same statistics as ``feature_stats``, from features that arrive in pieces (tile by tile)."""

    def __init__(self) -> None:
        self.total = self.total_sq = None
        self.count = 0

    def add(self, feats: torch.Tensor) -> None:
        if feats.shape[-1] <= 0 or feats.shape[-2] <= 0:
            return
        region = feats.float().flatten(2)
        s, s2 = region.sum(2), (region * region).sum(2)
        self.total = s if self.total is None else self.total + s
        self.total_sq = s2 if self.total_sq is None else self.total_sq + s2
        self.count += region.shape[-1]

    def stats(self, eps: float = 1e-5) -> StyleCode:
        mean = self.total / self.count
        var = (self.total_sq / self.count - mean * mean).clamp_min(0.0)
        return StyleCode(mean, (var + eps).sqrt())


def adain(feats: torch.Tensor, content: StyleCode, style: StyleCode) -> torch.Tensor:
    """Give ``feats`` (whose statistics are ``content``) the statistics of ``style``."""
    c_mean, c_std = content.mean[:, :, None, None], content.std[:, :, None, None]
    s_mean, s_std = style.mean[:, :, None, None], style.std[:, :, None, None]
    return (feats - c_mean) / c_std * s_std + s_mean


def stylize_features(feats: torch.Tensor, content: StyleCode, style: StyleCode, strength: float) -> torch.Tensor:
    """Feature-space interpolation between the content (0) and fully style-matched (1) features."""
    if strength == 0.0:
        return feats
    target = adain(feats, content, style)
    if strength == 1.0:
        return target
    return strength * target + (1.0 - strength) * feats
