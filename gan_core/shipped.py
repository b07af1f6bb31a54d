"""What ships with gan_core (in gan_core/assets): the default weights and the example photo.

One place for these paths, so the CLI, the ComfyUI loader and the bench all find the same files.
"""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_WEIGHTS = "dualgan_default.safetensors"  # also the name ComfyUI's loader lists first
SHIPPED_WEIGHTS = ASSETS / DEFAULT_WEIGHTS
EXAMPLE_IMAGE = ASSETS / "example_chelsea_grey.jpg"
