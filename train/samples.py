"""Sample grids written during training: grey input | colourised | real | stylised | painting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from PIL import Image

from gan_core.color import lab_to_rgb


def save_sample_grid(path: Path, grey, lightness, ab_half, real, stylised, painting, rows: int = 4) -> None:
    n = min(rows, grey.shape[0])
    columns = [grey[:n]]
    if ab_half is not None:  # None in a run that trains the style decoder only
        ab = F.interpolate(ab_half[:n].float(), size=lightness.shape[-2:], mode="bilinear", align_corners=False)
        columns.append(lab_to_rgb(torch.cat([lightness[:n].float(), ab], dim=1)))
    columns.append(real[:n])
    if stylised is not None:
        columns += [stylised[:n].clamp(0, 1), painting[:n]]
    grid = torch.stack([c.float().cpu() for c in columns], dim=1)  # n x cols x 3 x H x W
    image = rearrange(grid, "n k c h w -> (n h) (k w) c")
    Image.fromarray((image.clamp(0, 1).numpy() * 255).round().astype(np.uint8)).save(path)
