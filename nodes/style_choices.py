"""The style dropdown: "use the style_image input", then every trained style the pack can find.

The list is static per refresh of the browser page: the styles of the shipped weights, of every
weights file in models/dualgan and of every style file in models/dualgan_styles. It does not follow
the file picked in Load DualGAN (that would need frontend code); a style the loaded weights lack stops
the run with a message naming the styles they do have. Only file headers are read, and each file's
names are remembered until the file changes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import folder_paths

from ..gan_core.weights import WeightsError, inspect_weights, read_header, style_names_in
from .loader import SHIPPED_WEIGHTS

logger = logging.getLogger(__name__)

USE_STYLE_IMAGE = "(use style_image)"
_names_cache: dict[tuple[str, str], tuple[tuple[int, int], tuple[str, ...]]] = {}


def _file_styles(path: Path, kind: str) -> tuple[str, ...]:
    """Style names in a weights file (``kind="weights"``) or a style file; none for a file that cannot be read."""
    try:
        stat = path.stat()
    except OSError:
        return ()
    key, stamp = (str(path), kind), (stat.st_mtime_ns, stat.st_size)
    cached = _names_cache.get(key)
    if cached and cached[0] == stamp:
        return cached[1]
    try:
        if kind == "weights":
            names = tuple(inspect_weights(path).styles)
        else:
            header, _ = read_header(path)
            names = style_names_in(header)
    except (WeightsError, OSError) as exc:  # Load DualGAN reports broken files when they are used
        logger.debug("DualGAN: no style names from %s: %s", path.name, exc)
        names = ()
    _names_cache[key] = (stamp, names)
    return names


def _folder_files(folder: str) -> list[Path]:
    files = []
    for name in folder_paths.get_filename_list(folder):
        full = folder_paths.get_full_path(folder, name)
        if full:
            files.append(Path(full))
    return files


def style_choices() -> list[str]:
    """The dropdown's entries: USE_STYLE_IMAGE first, then the trained styles' names, sorted."""
    names: set[str] = set(_file_styles(SHIPPED_WEIGHTS, "weights")) if SHIPPED_WEIGHTS.is_file() else set()
    for path in _folder_files("dualgan"):
        names.update(_file_styles(path, "weights"))
    for path in _folder_files("dualgan_styles"):
        names.update(_file_styles(path, "style"))
    return [USE_STYLE_IMAGE, *sorted(names)]


def style_name_from_choice(value: str | None) -> str:
    """The trained style's name, or "" for the style_image input. Saved workflows from before the
    dropdown hold free text ("" for the image, or a name); both still mean what they meant."""
    value = (value or "").strip()
    return "" if value == USE_STYLE_IMAGE else value


def shipped_style_names() -> tuple[str, ...]:
    return _file_styles(SHIPPED_WEIGHTS, "weights") if SHIPPED_WEIGHTS.is_file() else ()


def tooltip() -> str:
    shipped = ", ".join(shipped_style_names()) or "none"
    return (f"A trained style, or {USE_STYLE_IMAGE} to copy the painting connected to style_image. Lists the styles of "
            f"the default weights ({shipped}), of the weights in models/dualgan and of the style files in "
            "models/dualgan_styles; press R after adding files. A style wins over a connected style_image.")

