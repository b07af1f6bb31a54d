"""What the pack prepares when ComfyUI starts, so a fresh install works on the first Run.

The model folders are created (ComfyUI only lists folders that exist, and a user should see where
weights go), and the templates' pictures are copied into ComfyUI's input folder: LoadImage reads
only that folder, and a template whose picture is missing fails validation before anything runs.
A file the user already has under the same name is never replaced.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import folder_paths

from .loader import MODEL_FOLDERS

logger = logging.getLogger(__name__)

EXAMPLE_INPUTS = Path(__file__).resolve().parents[1] / "example_workflows" / "input"
PICTURE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def example_pictures() -> list[Path]:
    """The pictures the templates load, as shipped with the pack."""
    if not EXAMPLE_INPUTS.is_dir():
        return []
    return sorted(p for p in EXAMPLE_INPUTS.iterdir() if p.is_file() and p.suffix.lower() in PICTURE_SUFFIXES)


def create_model_folders() -> list[str]:
    """Create models/dualgan and models/dualgan_styles under ComfyUI's models folder; returns those created."""
    created = []
    for name in MODEL_FOLDERS:
        path = os.path.join(folder_paths.models_dir, name)
        if os.path.isdir(path):
            continue
        try:
            os.makedirs(path, exist_ok=True)
            created.append(path)
        except OSError as exc:  # a read-only install still works with the shipped weights
            logger.warning("DualGAN: could not create the model folder %s (%s); create it yourself to add weights", path, exc)
    return created


def copy_example_pictures(input_dir: str | os.PathLike) -> list[str]:
    """Copy the templates' pictures into ``input_dir`` where no file of that name exists; returns the names copied."""
    copied = []
    for picture in example_pictures():
        target = Path(input_dir) / picture.name
        try:
            # "x" mode: created only if absent, so a user's file (or a concurrent copy) is never overwritten
            dst = target.open("xb")
        except FileExistsError:
            continue
        except OSError as exc:
            logger.warning("DualGAN: could not copy the example picture %s into %s (%s); the templates need it",
                           picture.name, input_dir, exc)
            continue
        try:
            with dst, picture.open("rb") as src:
                shutil.copyfileobj(src, dst)
        except OSError as exc:
            target.unlink(missing_ok=True)  # a half-written copy would block the next start's copy
            logger.warning("DualGAN: could not copy the example picture %s into %s (%s); the templates need it",
                           picture.name, input_dir, exc)
            continue
        copied.append(picture.name)
    if copied:
        logger.info("DualGAN: copied the templates' pictures %s into %s", ", ".join(copied), input_dir)
    return copied


def prepare_first_run() -> None:
    create_model_folders()
    input_dir = folder_paths.get_input_directory()
    try:
        os.makedirs(input_dir, exist_ok=True)
    except OSError as exc:
        logger.warning("DualGAN: the input folder %s cannot be created (%s)", input_dir, exc)
        return
    copy_example_pictures(input_dir)
