"""What every evaluation reads and writes: the data folder's manifest, images at the evaluation size,
and contact sheets (a grid of labelled thumbnails)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from PIL import Image, ImageDraw

from gan_core.geometry import resize

from .data import load_rgb


def load_image(path: Path, size: int) -> torch.Tensor:
    """1 x 3 x H x W in 0..1, the long side reduced to ``size`` (never enlarged)."""
    img = load_rgb(path)
    if img is None:
        raise ValueError(f"{path}: the image cannot be read")
    img = img.unsqueeze(0)
    h, w = img.shape[-2:]
    scale = min(1.0, size / max(h, w))
    return resize(img, (max(16, round(h * scale)), max(16, round(w * scale))))


def read_manifest(data: Path) -> list[dict]:
    manifest = Path(data) / "manifest.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: no manifest; build the data folder with `python -m train fetch-data {data}`")
    return json.loads(manifest.read_text())


def held_out_photos(records: list[dict], split: str = "eval") -> list[dict]:
    return [r for r in records if r["split"] == split and r["kind"] == "photo"]


def to_pil(t: torch.Tensor) -> Image.Image:
    return Image.fromarray((rearrange(t[0].clamp(0, 1), "c h w -> h w c").numpy() * 255).round().astype(np.uint8))


def contact_sheet(rows: list[list[torch.Tensor | Image.Image]], labels: list[str], path: Path, cell: int = 192) -> None:
    """One row per image, one labelled column per method; each picture fitted into a ``cell`` square."""
    sheet = Image.new("RGB", (cell * len(labels), cell * len(rows) + 18), "white")
    draw = ImageDraw.Draw(sheet)
    for j, label in enumerate(labels):
        draw.text((j * cell + 4, 3), label, fill="black")
    for i, row in enumerate(rows):
        for j, t in enumerate(row):
            im = t.copy() if isinstance(t, Image.Image) else to_pil(t)
            im.thumbnail((cell, cell))
            sheet.paste(im, (j * cell + (cell - im.width) // 2, 18 + i * cell + (cell - im.height) // 2))
    sheet.save(path)


def write_csv(path: Path, rows: list[dict]) -> None:
    """``rows`` (dicts with the same keys) as a CSV file with a header, its folder made if needed."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
