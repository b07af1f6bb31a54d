"""DualGAN model library: networks, colour space, style codes, weights format and inference.

Pure torch + numpy + einops + safetensors; never imports ComfyUI.
"""

from .config import DualGANConfig, tiny_config
from .inference import DualGANRunner, StyleSpec, compose
from .model import DualGAN
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
