"""DualGAN: one shared encoder, a colour decoder and a style decoder, plus named style adapters."""

from __future__ import annotations

import re

import torch
from torch import nn

from .chroma import AbGrid
from .color_decoder import ColorDecoder
from .config import DualGANConfig
from .encoder import VGGEncoder
from .residual_style import ResidualFastStyle
from .style_decoder import StyleAdapter, StyleDecoder

STYLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def check_style_name(name: str) -> str:
    if not STYLE_NAME.match(name):
        raise ValueError(
            f"style name {name!r} is not allowed: use 1-64 letters, digits, '_' or '-', starting with a letter or digit"
        )
    return name


class FastStyle(nn.Module):
    """The optional light style network: its own small encoder (to relu4_1) and style decoder,
    distilled from the full ones by ``python -m train distill``. Style codes for it come from its
    own encoder, so they are not interchangeable with the full network's. Its relu4_1 learns the
    teacher's relu4_1 times ``style_input_scale`` (O(1) values, which a freshly initialised network
    reaches quickly), so its decoder takes its input unscaled."""

    def __init__(self, encoder_widths: tuple[int, ...], decoder_widths: tuple[int, ...]) -> None:
        super().__init__()
        self.encoder = VGGEncoder(encoder_widths, last="relu4_1")
        self.decoder = StyleDecoder(self.encoder.channels("relu4_1"), decoder_widths, input_scale=1.0)


class DualGAN(nn.Module):
    """The generator. Inference helpers live in ``gan_core.inference``; this class only holds layers."""

    def __init__(self, config: DualGANConfig, style_names: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.config = config
        self.grid = AbGrid(config.ab_bins_per_axis, config.ab_range)
        self.encoder = VGGEncoder(config.vgg_widths)
        enc = self.encoder
        self.color_decoder = ColorDecoder(
            (enc.channels("relu2_2"), enc.channels("relu3_3"), enc.channels("relu4_3")),
            config.color_widths,
            self.grid.num_bins,
            config.palette_embed,
            grid=self.grid,
            guided=config.guided,
        )
        self.style_decoder = StyleDecoder(enc.channels("relu4_1"), config.style_widths, config.style_input_scale)
        self.fast_style: nn.Module | None = None
        if config.fast_shape == "vgg":
            self.fast_style = FastStyle(config.fast_encoder_widths, config.fast_decoder_widths)
        elif config.fast_shape == "residual":
            self.fast_style = ResidualFastStyle(config.fast_residual_widths, config.fast_residual_blocks,
                                                enc.channels("relu4_1"), config.style_input_scale)
        self.styles = nn.ModuleDict()
        for name in style_names:
            self.add_style(name)

    def new_style_adapter(self) -> StyleAdapter:
        return StyleAdapter(self.encoder.channels("relu4_1"), self.style_decoder.hidden_channels)

    def add_style(self, name: str, adapter: StyleAdapter | None = None) -> StyleAdapter:
        check_style_name(name)
        adapter = adapter if adapter is not None else self.new_style_adapter()
        self.styles[name] = adapter
        return adapter

    @property
    def style_names(self) -> list[str]:
        return list(self.styles.keys())

    def cast(self, dtype: torch.dtype) -> "DualGAN":
        """Cast for inference, keeping BatchNorm in float32 (its running variances reach 1e5 and more,
        past float16's 65504). Each module is cast on its own: casting the whole network first and
        BatchNorm back afterwards would already have turned those variances into inf."""
        for module in self.modules():
            target = torch.float32 if isinstance(module, nn.BatchNorm2d) else dtype
            module._apply(lambda t, target=target: t.to(target) if t.is_floating_point() else t, recurse=False)
        return self

    @property
    def guided(self) -> bool:
        return self.config.guided

    def ab_from_logits(self, logits: torch.Tensor, offset: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """float32 ab from the colour decoder's bin logits (and its guidance offset, ``ColorDecoder.logits_and_guidance``)."""
        return self.grid.annealed_mean(logits, self.config.annealed_temperature, confidence=self.config.chroma_confidence,
                                       offset=offset)
