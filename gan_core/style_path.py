"""The style path: which style to apply, and how a style becomes a code (AdaIN statistics).

A style is either a reference image, whose relu4_1 statistics are the target (Huang & Belongie
2017), or a trained style, whose adapter carries its own statistics. Everything that turns a style
into a code goes through here (runner, CLI, nodes, ``train style``, ``train distill``, evaluation),
so a reference is always reduced, padded and cropped the same way: statistics of the padding would
skew the code of any image whose size is not a multiple of the encoder's stride.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from .geometry import check_image, pad_for_network, render_shape, resize, valid_features
from .palette_transfer import ColourMoments, colour_moments
from .style_codes import StyleCode, feature_stats
from .style_decoder import StyleAdapter

STYLE_SIZE = 512  # short side a style reference is reduced to before its statistics
PRESERVE_COLOR = ("none", "original", "colorized")
STYLE_NETWORKS = ("full", "fast")  # the VGG16 style path, or the distilled one (``python -m train distill``)


@dataclass
class StyleSpec:
    """Which style and how strongly: statistics to match, an optional trained adapter, which network
    (``fast``: the distilled light one, whose codes come from its own encoder), and the colours of the
    style image that the stylised picture takes on (``palette``; None for trained styles, which
    learned theirs, and for the plain decoder output)."""

    code: StyleCode
    adapter: StyleAdapter | None = None
    strength: float = 1.0
    fast: bool = False
    palette: ColourMoments | None = None

    def select(self, start: int, stop: int) -> "StyleSpec":
        """The style of images start..stop of the batch (a single code serves every image)."""
        if self.code.mean.shape[0] <= 1:
            return self
        code = StyleCode(self.code.mean[start:stop], self.code.std[start:stop])
        palette = None if self.palette is None else self.palette.select(start, stop)
        return StyleSpec(code, self.adapter, self.strength, self.fast, palette)


def trained_styles_available(names: Iterable[str] | nn.Module) -> str:
    """'trained styles available: a, b' for a model (its ``style_names``) or a list of names."""
    names = getattr(names, "style_names", names)
    return f"trained styles available: {', '.join(names) or 'none in this model'}"


def fast_style_network(model):
    """The model's distilled style network; a clear error when its file has none."""
    if model.fast_style is None:
        raise ValueError("this model has no fast style network (make one with `python -m train distill`); "
                         "use the full network")
    return model.fast_style


def code_encoder(model, fast: bool = False) -> nn.Module:
    """The encoder whose relu4_1 statistics are a style's code: the shared VGG16 encoder, except for the
    VGG-shaped fast network, which has its own (the residual one takes the shared encoder's codes)."""
    if fast and model.config.fast_shape != "residual":
        return fast_style_network(model).encoder
    if fast:
        fast_style_network(model)
    return model.encoder


@torch.no_grad()
def style_code_from_image(encoder: nn.Module, image: torch.Tensor, *, size: int = STYLE_SIZE,
                          dtype: torch.dtype | None = None) -> StyleCode:
    """AdaIN statistics (B x C, float32) of each style reference in ``image`` (B x 3 x H x W, 0..1).

    The short side is reduced to ``size`` (never upscaled; 0 keeps the full size), the image padded
    to the encoder's stride and encoded to relu4_1 (in ``dtype``, default the encoder's own), and
    the statistics are taken over the features of the valid region only: the padding is cropped off.
    """
    parameter = next(encoder.parameters())
    rgb = reduce_style_image(image, size).to(parameter.device)
    fy, fx = valid_features(*rgb.shape[-2:])
    feats = encoder(pad_for_network(rgb).to(parameter.dtype if dtype is None else dtype), until="relu4_1")["relu4_1"]
    return feature_stats(feats[:, :, :fy, :fx].float())


def style_from_name(model, name: str) -> tuple[StyleCode, StyleAdapter]:
    """The code and adapter of the trained style ``name``; a clear error naming the ones there are."""
    if name not in model.styles:
        raise ValueError(f"unknown style {name!r}; {trained_styles_available(model)}")
    adapter = model.styles[name]
    code = StyleCode(adapter.mean.detach().float()[None], adapter.std.detach().float().abs()[None] + 1e-5)
    return code, adapter


def style_spec(model, *, name: str = "", image: torch.Tensor | None = None, strength: float = 1.0,
               network: str = "full") -> StyleSpec:
    """The style to apply: a trained style ``name`` (it wins) or a reference ``image``, on ``network``."""
    if network not in STYLE_NETWORKS:
        raise ValueError(f"network must be one of {STYLE_NETWORKS}, got {network!r}")
    fast = network == "fast"
    name = (name or "").strip()
    if name:
        if fast:
            raise ValueError(f"trained styles such as {name!r} run on the full network; choose network 'full' "
                             "or give a style image")
        code, adapter = style_from_name(model, name)
        return StyleSpec(code, adapter, strength)
    if image is None:
        raise ValueError(f"no style given: give a style image or a trained style name ({trained_styles_available(model)})")
    encoder = code_encoder(model, fast)
    reduced = reduce_style_image(image)  # once for both: the code's and the palette's own reduction are then no-ops
    return StyleSpec(style_code_from_image(encoder, reduced), None, strength, fast=fast, palette=style_palette(reduced))


def reduce_style_image(image: torch.Tensor, size: int = STYLE_SIZE) -> torch.Tensor:
    """The style reference checked and its short side reduced to ``size`` (never upscaled; 0 keeps it)."""
    rgb = check_image(image, "style image")
    return resize(rgb, render_shape(*rgb.shape[-2:], size))


def style_palette(image: torch.Tensor, *, size: int = STYLE_SIZE) -> ColourMoments:
    """The colours of each style reference (reduced as for its code) that Style Transfer gives the picture."""
    return colour_moments(reduce_style_image(image, size).float())
