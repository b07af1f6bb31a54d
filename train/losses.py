"""The training losses, each a plain function of tensors (weighted by its lambda in the loop).

content    mean squared distance between VGG features, relative to the target's mean square
style      per layer: squared distance of channel means plus squared Frobenius distance of the
           channel covariance matrices (the "mean and covariance" formula), relative
           to the same quantities of the style target
           (relative forms make the lambdas independent of the encoder's feature scale)
colour     L1 distance between differentiable soft ab histograms
ab         mean squared error of the decoded ab (the annealed mean), in bin widths
chroma CE  cross-entropy of the predicted bin distribution against soft-encoded true chroma,
           with Zhang et al.'s class rebalancing so rare saturated colours are not drowned out
           (both use ``bin_weights``: the Gaussian soft assignment of ``AbGrid.soft_assign`` as one
           matrix product, bins innermost, since it runs on every pixel of every step)
GAN        hinge or least-squares, for the discriminator and the generator
TV         total variation, for smooth stylised output
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from gan_core.chroma import AbGrid

STYLE_LAYERS = ["relu1_2", "relu2_2", "relu3_3", "relu4_1"]  # the VGG16 taps the style loss compares


def relative_mse(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """|p - t|^2 / |t|^2 (per element means), in float32."""
    t = target.float()
    return F.mse_loss(pred.float(), t) / (t.pow(2).mean() + eps)


def content_loss(feats: dict[str, torch.Tensor], target: dict[str, torch.Tensor], layers: list[str], eps: float = 1e-8) -> torch.Tensor:
    """Mean over layers of |f - t|^2 / |t|^2 (per element means)."""
    return sum(relative_mse(feats[k], target[k], eps) for k in layers) / len(layers)


def mean_covariance(feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel means (B x C) and covariance (B x C x C) of B x C x H x W features."""
    flat = rearrange(feats.float(), "b c h w -> b c (h w)")
    mean = flat.mean(dim=2)
    centred = flat - mean.unsqueeze(2)
    cov = centred @ centred.transpose(1, 2) / flat.shape[2]
    return mean, cov


def style_loss(feats: dict[str, torch.Tensor], style: dict[str, torch.Tensor], layers: list[str], eps: float = 1e-8) -> torch.Tensor:
    """Mean over layers of (|mu - mu_s|^2 / C + |Sigma - Sigma_s|_F^2 / C^2) / (|mu_s|^2 / C + |Sigma_s|_F^2 / C^2).

    Batch means are taken of numerator and denominator; the style batch broadcasts (1 or B).
    """
    total = 0.0
    for k in layers:
        mu, cov = mean_covariance(feats[k])
        mu_s, cov_s = mean_covariance(style[k])
        c = mu.shape[1]
        distance = ((mu - mu_s) ** 2).sum(1).mean() / c + ((cov - cov_s) ** 2).sum((1, 2)).mean() / (c * c)
        scale = (mu_s**2).sum(1).mean() / c + (cov_s**2).sum((1, 2)).mean() / (c * c)
        total = total + distance / (scale + eps)
    return total / len(layers)


def bin_weights(ab: torch.Tensor, grid: AbGrid, sigma: float = 5.0) -> torch.Tensor:
    """Gaussian soft assignment of each pixel of a B x 2 x H x W ab map to the bins, B x H x W x Q
    (float32, summing to 1 per pixel): ``AbGrid.soft_assign`` with the bins innermost. Since
    -|ab - c|^2 = 2 ab.c - |c|^2 - |ab|^2 and the last term is the same for every bin, it cancels in
    the softmax, which leaves one product with the 2 x Q centres instead of a B x H x W x Q x 2 difference."""
    b, _, h, w = ab.shape
    centres = grid.centres.to(device=ab.device, dtype=torch.float32) / (sigma * sigma)
    pixels = rearrange(ab.float(), "b c h w -> (b h w) c")
    scaled = torch.addmm(-0.5 * (centres * centres).sum(1) * (sigma * sigma), pixels, centres.T)
    return torch.softmax(scaled, dim=-1).view(b, h, w, -1)


def soft_histogram(ab: torch.Tensor, grid: AbGrid, sigma: float = 5.0) -> torch.Tensor:
    """The normalised soft ab histogram of each image, B x Q (``AbGrid.histogram``)."""
    hist = bin_weights(ab, grid, sigma).sum(dim=(1, 2))
    return hist / hist.sum(dim=1, keepdim=True).clamp_min(1e-8)


def color_histogram_loss(ab_pred: torch.Tensor, ab_true: torch.Tensor, grid: AbGrid, sigma: float = 5.0) -> torch.Tensor:
    """L1 distance between the soft ab histograms of prediction and truth, averaged over images."""
    return (soft_histogram(ab_pred, grid, sigma) - soft_histogram(ab_true, grid, sigma)).abs().sum(1).mean()


def rebalancing_weights(prior: torch.Tensor, mix: float = 0.5, smooth_sigma: float = 1.0, bins_per_axis: int | None = None,
                        strength: float = 1.0) -> torch.Tensor:
    """Zhang et al.'s class weights: w ~ (1 / ((1 - mix) * smoothed prior + mix / Q)) ** strength, E_prior[w] = 1.

    ``strength`` 0 gives every bin weight 1 (plain cross-entropy, whose optimum is the true colour
    distribution); 1 is Zhang et al.'s rebalancing, which favours rare, saturated colours."""
    q = prior.numel()
    n = bins_per_axis or int(round(q**0.5))
    p = prior.float().view(1, 1, n, n)
    if smooth_sigma > 0:
        radius = max(1, int(3 * smooth_sigma))
        x = torch.arange(-radius, radius + 1, dtype=torch.float32)
        k = torch.exp(-(x**2) / (2 * smooth_sigma**2))
        k = k / k.sum()
        p = F.conv2d(F.pad(p, (radius, radius, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
        p = F.conv2d(F.pad(p, (0, 0, radius, radius), mode="replicate"), k.view(1, 1, -1, 1))
    p = p.flatten()
    p = p / p.sum()
    w = (1.0 / ((1 - mix) * p + mix / q)) ** strength
    return w / (p * w).sum()


def chroma_cross_entropy(
    logits: torch.Tensor, ab_true: torch.Tensor, grid: AbGrid, weights: torch.Tensor | None = None, sigma: float = 5.0
) -> torch.Tensor:
    """Cross-entropy of B x Q x h x w logits against soft-encoded truth (B x 2 x h x w), rebalanced."""
    target = rearrange(bin_weights(ab_true, grid, sigma), "b h w q -> b q h w")
    ce = -(target * F.log_softmax(logits.float(), dim=1)).sum(1)  # B x h x w
    if weights is not None:
        ce = ce * weights.to(ce.device)[grid.bin_index(ab_true)]
    return ce.mean()


def ab_regression_loss(ab_pred: torch.Tensor, ab_true: torch.Tensor, unit: float = 10.0) -> torch.Tensor:
    """Mean squared error of the decoded ab against the truth, in ``unit`` Lab units (one bin width).

    Squared error is what PSNR measures: where the colour is ambiguous it pulls the decoded colour toward
    the mean of the plausible ones instead of a confident guess."""
    return F.mse_loss(ab_pred.float() / unit, ab_true.float() / unit)


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "hinge") -> torch.Tensor:
    if kind == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    if kind == "lsgan":
        return 0.5 * ((real_logits - 1.0) ** 2).mean() + 0.5 * (fake_logits**2).mean()
    raise ValueError(f"unknown GAN loss {kind!r}; use 'hinge' or 'lsgan'")


def g_loss(fake_logits: torch.Tensor, kind: str = "hinge") -> torch.Tensor:
    if kind == "hinge":
        return -fake_logits.mean()
    if kind == "lsgan":
        return 0.5 * ((fake_logits - 1.0) ** 2).mean()
    raise ValueError(f"unknown GAN loss {kind!r}; use 'hinge' or 'lsgan'")


def total_variation(img: torch.Tensor) -> torch.Tensor:
    return (img[:, :, 1:, :] - img[:, :, :-1, :]).abs().mean() + (img[:, :, :, 1:] - img[:, :, :, :-1]).abs().mean()
