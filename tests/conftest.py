"""Shared test data: small generated image folders (no real photos in unit tests)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def image_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    (root / "photos" / "nested").mkdir(parents=True)
    (root / "styles").mkdir()
    for i in range(8):
        h, w = (int(v) for v in rng.integers(70, 140, 2))
        y, x = np.mgrid[0:h, 0:w]
        sky = np.stack([0.3 + 0.2 * y / h, 0.5 + 0.2 * y / h, 0.9 - 0.1 * y / h], -1)
        grass = np.stack([0.2 + 0.1 * x / w, np.full_like(x, 0.6, dtype=float), np.full_like(x, 0.2, dtype=float)], -1)
        img = np.where((y > h * (0.4 + 0.1 * i / 8))[..., None], grass, sky)
        folder = root / "photos" / ("nested" if i % 2 else "")
        Image.fromarray((img * 255).astype(np.uint8)).save(folder / f"p{i}.png")
        stripes = ((np.sin(x / 3.0 + i) > 0)[..., None] * np.array([0.9, 0.3, 0.1]) + 0.05).clip(0, 1)
        Image.fromarray((stripes * 255).astype(np.uint8)).save(root / "styles" / f"s{i}.jpg")
    (root / "photos" / "broken.jpg").write_bytes(b"not an image at all")
    return root
