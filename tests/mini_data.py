"""A tiny folder in ``python -m train fetch-data``'s layout: random images and their manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def write_data_folder(root: Path, layout: tuple[tuple[str, str, str, int], ...]) -> None:
    """``layout``: (split, kind, folder, count) rows; each image is 64 x 48 noise named ``<folder>/<kind><i>.png``."""
    rng = np.random.default_rng(0)
    records = []
    for split, kind, folder, n in layout:
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            name = f"{folder}/{kind}{i}.png"
            Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(root / name)
            records.append({"file": name, "split": split, "kind": kind, "title": f"{kind} {i}"})
    (root / "manifest.json").write_text(json.dumps(records))
