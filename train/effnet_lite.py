"""EfficientNet-Lite0 (Tan & Le 2019, the "Lite" variant: no squeeze-excitation, ReLU6): an ImageNet
network the DualGAN decoders are never trained against, used only to measure style texture.

The layer names follow the published PyTorch port (``_conv_stem``, ``_blocks.N._depthwise_conv``, ...)
so its state dict loads as is. Its convolutions use TensorFlow's "same" padding (the weights come
from TensorFlow), so stride-2 layers pad more on the bottom/right than on the top/left. Input: RGB
in 0..1, normalised as the TFLite models are, (255 x - 127) / 128.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# (repeats, kernel, stride, expand ratio, in, out) per stage: EfficientNet-B0's stages, width 1.0, depth 1.0
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
BN_EPS = 1e-3
# The last block of each stage whose output the texture statistic reads: 1/2, 1/4, 1/8 and 1/16 scale.
TEXTURE_TAPS = {"stage1": 0, "stage2": 2, "stage3": 4, "stage5": 10}


class SameConv(nn.Conv2d):
    """Conv2d with TensorFlow's "same" padding for any input size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, depthwise k x k, 1x1 project; identity skip when shapes allow."""

    def __init__(self, kernel: int, stride: int, expand: int, cin: int, cout: int) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.expand, self.skip = expand, stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.expand != 1 else x
        h = self._bn2(self._project_conv(F.relu6(self._bn1(self._depthwise_conv(h)))))
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = SameConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(kernel, stride if i == 0 else 1, expand, cin if i == 0 else cout, cout))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, num_classes)

    @staticmethod
    def normalise(rgb: torch.Tensor) -> torch.Tensor:
        return (rgb * 255.0 - 127.0) / 128.0

    def features(self, rgb: torch.Tensor, taps: dict[str, int] = TEXTURE_TAPS) -> dict[str, torch.Tensor]:
        """Outputs of the blocks named in ``taps`` for RGB (B x 3 x H x W, 0..1); stops after the last one."""
        h = F.relu6(self._bn0(self._conv_stem(self.normalise(rgb))))
        out, last = {}, max(taps.values())
        wanted = {index: name for name, index in taps.items()}
        for index, block in enumerate(self._blocks[: last + 1]):
            h = block(h)
            if index in wanted:
                out[wanted[index]] = h
        return out

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        """ImageNet logits."""
        h = self.features(rgb, {"last": len(self._blocks) - 1})["last"]
        h = F.relu6(self._bn1(self._conv_head(h)))
        return self._fc(h.mean(dim=(2, 3)))
