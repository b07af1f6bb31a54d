"""The shared encoder: VGG16's first four convolution blocks, returning multi-scale features.

Layer indices match torchvision's ``vgg16().features`` so ImageNet weights load by name
(``features.0.weight`` ...). The input is RGB in 0..1: the ImageNet preprocessing is folded into
the first convolution by ``python -m train import-vgg16``, so no normalisation happens here. That
first convolution pads the image with the ImageNet mean colour: VGG16 zero-pads its normalised input,
and zero there is the mean colour, not black. Zero padding of the 0..1 input would frame every image
(and tile edge) in black, which the decoders answer with a light band along the border.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Named taps: the ReLU after each listed convolution (torchvision indices of the ReLU layers).
TAPS = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_1": 18, "relu4_3": 22}
TAP_SCALES = {"relu1_2": 1, "relu2_2": 2, "relu3_3": 4, "relu4_1": 8, "relu4_3": 8}
# VGG16 convolutions per block (blocks 1-4; block 5 is never used).
_BLOCK_CONVS = (2, 2, 3, 3)
STRIDE = 8  # inputs must be a multiple of this; callers pad (see gan_core.geometry)
# The mean colour of the Caffe VGG16's preprocessing (RGB, 0..255; train/vgg16_import folds it). The
# torchvision release's mean differs from it by less than half an 8-bit step.
VGG16_MEAN_RGB_255 = (123.68, 116.779, 103.939)


class MeanPaddedConv2d(nn.Conv2d):
    """A 3 x 3 convolution of the 0..1 image that pads with ``VGG16_MEAN_RGB_255`` (VGG16's zero padding
    of its normalised input). Its parameters are an ``nn.Conv2d``'s, so weights load unchanged."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, 3, padding=0)
        mean = torch.tensor(VGG16_MEAN_RGB_255) / 255.0
        self.register_buffer("pad_colour", mean.view(1, -1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x, (1, 1, 1, 1))
        colour = self.pad_colour.to(padded.dtype)
        # The frame only: the image's own pixels are copied unchanged.
        padded[:, :, 0], padded[:, :, -1] = colour, colour
        padded[:, :, :, 0], padded[:, :, :, -1] = colour, colour
        return super().forward(padded)


class VGGEncoder(nn.Module):
    """VGG16's layout with any widths. ``last`` is the deepest tap built: a style-only encoder
    (the distilled fast style network) stops at relu4_1 and holds no conv4_2/conv4_3."""

    def __init__(self, widths: tuple[int, int, int, int] = (64, 128, 256, 512), last: str = "relu4_3") -> None:
        super().__init__()
        if last not in TAPS:
            raise ValueError(f"unknown encoder tap {last!r}; choose from {sorted(TAPS)}")
        layers: list[nn.Module] = []
        in_ch = 3
        for block, (n_convs, width) in enumerate(zip(_BLOCK_CONVS, widths)):
            if block > 0:
                layers.append(nn.MaxPool2d(2, 2))
            for _ in range(n_convs):
                conv = MeanPaddedConv2d(in_ch, width) if not layers else nn.Conv2d(in_ch, width, 3, padding=1)
                layers += [conv, nn.ReLU(inplace=True)]
                in_ch = width
        self.features = nn.Sequential(*layers[: TAPS[last] + 1])
        self.widths = widths
        self.last = last

    def channels(self, tap: str) -> int:
        block = {"relu1_2": 0, "relu2_2": 1, "relu3_3": 2, "relu4_1": 3, "relu4_3": 3}[tap]
        return self.widths[block]

    def forward(self, rgb: torch.Tensor, until: str = "relu4_3") -> dict[str, torch.Tensor]:
        """Features at every tap up to ``until``. H and W must be multiples of 8."""
        if until not in TAPS or TAPS[until] > TAPS[self.last]:
            raise ValueError(f"unknown encoder tap {until!r}; this encoder has {sorted(t for t in TAPS if TAPS[t] <= TAPS[self.last])}")
        last = TAPS[until]
        taps = {index: name for name, index in TAPS.items() if index <= last}
        out: dict[str, torch.Tensor] = {}
        x = rgb
        for index, layer in enumerate(self.features):
            # Never in-place on a tapped tensor: the next ReLU would overwrite a returned feature.
            x = layer(x) if not isinstance(layer, nn.ReLU) else torch.relu(x)
            if index in taps:
                out[taps[index]] = x
            if index == last:
                break
        return out
