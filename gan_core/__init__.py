"""DualGAN model library: networks, colour space, style codes, weights format and inference.

Pure torch + numpy + einops + safetensors; never imports ComfyUI.
"""

from .compose import compose
from .config import DualGANConfig, tiny_config
from .model import DualGAN
from .runner import DualGANRunner
from .style_path import StyleSpec
from .weights import WeightsError, load_style_file, load_weights, save_style_file, save_weights

__all__ = [
    "DualGAN",
    "DualGANConfig",
    "DualGANRunner",
    "StyleSpec",
    "WeightsError",
    "compose",
    "load_style_file",
    "load_weights",
    "save_style_file",
    "save_weights",
    "tiny_config",
]
