"""Reading and writing image files for the command line: 8/16-bit, grey, RGBA, EXIF orientation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


class ImageReadError(ValueError):
    """An input that is not a readable image; the message names the file."""


def read_image(path: str | Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(RGB 1 x 3 x H x W float 0..1, alpha 1 x 1 x H x W or None). 16-bit files keep their precision."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such image file")
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            alpha = None
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                grey = np.clip(np.asarray(img, dtype=np.float32) / 65535.0, 0.0, 1.0)  # 16-bit greyscale
                rgb = np.repeat(grey[..., None], 3, axis=2)
            else:
                if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                    rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
                    rgb, alpha = rgba[..., :3], rgba[..., 3:]
                else:
                    rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageReadError(f"{path}: not a readable image ({type(exc).__name__})") from None
    to_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).unsqueeze(0)  # noqa: E731
    return to_tensor(rgb), (to_tensor(alpha) if alpha is not None else None)


def write_image(path: str | Path, rgb: torch.Tensor, alpha: torch.Tensor | None = None) -> None:
    """Write 1 x 3 x H x W (0..1) as 8-bit; alpha is re-attached where the format keeps it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = (rgb[0].permute(1, 2, 0).clamp(0, 1).cpu().numpy() * 255.0).round().astype(np.uint8)
    suffix = path.suffix.lower()
    if alpha is not None and suffix in (".png", ".webp", ".tif", ".tiff"):
        a = (alpha[0, 0].clamp(0, 1).cpu().numpy() * 255.0).round().astype(np.uint8)
        Image.fromarray(np.dstack([array, a]), "RGBA").save(path)
        return
    image = Image.fromarray(array, "RGB")
    if suffix in (".jpg", ".jpeg"):
        image.save(path, quality=95)
    else:
        image.save(path)


def collect_inputs(inputs: list[str | Path]) -> list[Path]:
    """Files as given; folders searched recursively for images, in a stable order."""
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found += sorted(p for p in item.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        else:
            found.append(item)
    return found
