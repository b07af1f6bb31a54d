"""Image checks and sizes: validating inputs, the render size, resizing, padding to the network's stride.

Every entry point (runner, style references, palettes, training) goes through ``check_image`` so bad
input fails with one sentence, and through ``pad_for_network`` so the encoder always sees a multiple
of its stride; callers crop the padding off again with the valid size they keep.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .encoder import STRIDE

MIN_NETWORK_SIZE = 16  # the style decoder's reflection padding needs 2 x 2 features at 1/8


def check_image(image: torch.Tensor, what: str = "image") -> torch.Tensor:
    """Validate a B x C x H x W image and return it as float32 RGB in 0..1 (NaN -> 0, Inf clipped).
    A clean float32 image comes back as a view of the input, not a copy."""
    if not isinstance(image, torch.Tensor) or image.ndim != 4:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"{what} must be a batch of images (B x C x H x W), got {shape}")
    b, c, h, w = image.shape
    if b == 0:
        raise ValueError(f"{what} is an empty batch (0 images)")
    if h == 0 or w == 0:
        raise ValueError(f"{what} has zero size ({h} x {w})")
    if c not in (1, 3, 4):
        raise ValueError(f"{what} has {c} channels; expected 1 (grey), 3 (RGB) or 4 (RGBA)")
    image = image.float()
    if c == 1:
        image = image.expand(-1, 3, -1, -1)
    elif c == 4:
        image = image[:, :3]  # alpha is not coloured; callers that keep it re-attach it
    # One read decides, so clean images (the usual case) pass through without two full-size copies.
    # NaN makes both extremes NaN, so it takes the cleaning path.
    low, high = torch.aminmax(image)
    if low >= 0.0 and high <= 1.0:
        return image
    return clean_rgb(image)


def clean_rgb(rgb: torch.Tensor) -> torch.Tensor:
    """Colour values as float32 in 0..1: NaN read as 0, infinities clipped."""
    return torch.nan_to_num(rgb.float(), nan=0.0, posinf=1.0, neginf=0.0).clamp_(0.0, 1.0)


def render_shape(height: int, width: int, render_size: int) -> tuple[int, int]:
    """The size the networks see: short side ``render_size`` (never upscaled); 0 = full size."""
    short = min(height, width)
    if render_size <= 0 or short <= render_size:
        return height, width
    scale = render_size / short
    return max(1, round(height * scale)), max(1, round(width * scale))


def padded_shape(height: int, width: int) -> tuple[int, int]:
    """The size ``pad_for_network`` pads a ``height`` x ``width`` image to."""
    return (max(MIN_NETWORK_SIZE, math.ceil(height / STRIDE) * STRIDE),
            max(MIN_NETWORK_SIZE, math.ceil(width / STRIDE) * STRIDE))


def valid_features(height: int, width: int) -> tuple[int, int]:
    """Rows and columns of the 1/8-scale features that an unpadded ``height`` x ``width`` image covers."""
    return math.ceil(height / STRIDE), math.ceil(width / STRIDE)


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (antialiased when shrinking); the input itself when the size already fits."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrinking = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrinking)


def pad_for_network(x: torch.Tensor) -> torch.Tensor:
    """Replicate-pad bottom/right to a multiple of the encoder stride (and at least 16 px)."""
    h, w = x.shape[-2:]
    hp, wp = padded_shape(h, w)
    if (hp, wp) == (h, w):
        return x
    return F.pad(x, (0, wp - w, 0, hp - h), mode="replicate")


def is_grey(rgb: torch.Tensor) -> bool:
    """True when the three channels of a B x 3 x H x W image are equal (a black-and-white scan
    stored as RGB; a 1-channel input that ``check_image`` expanded is known without reading it).
    ``torch.equal`` stops at the first difference, so a colour image costs next to nothing, and a
    grey one saves two of the three transfer curves of the luminance."""
    if rgb.stride(1) == 0:
        return True
    return torch.equal(rgb[:, 0], rgb[:, 1]) and torch.equal(rgb[:, 1], rgb[:, 2])


def to_host(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device``; from a GPU to the CPU through pinned memory, since copies into ordinary
    (pageable) memory are several times slower. The copy is synchronous, so the buffer is complete
    when it returns."""
    if x.device.type != "cuda" or device.type != "cpu":
        return x.to(device)
    host = torch.empty(x.shape, dtype=x.dtype, pin_memory=True)  # torch caches pinned blocks
    host.copy_(x)
    return host
