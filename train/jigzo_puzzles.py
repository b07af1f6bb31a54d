"""Read Jigzo puzzle files (.pzl), the format the ``jigzo-data`` package ships its photographs in.

A .pzl file is text lines, then embedded files:

    PzlF / 0.1 / name / web page / map name / map length
    #texture map data
    cropNNN x y w h ...      one line per puzzle piece (where the piece lies in the texture)
    image x y w h bx by      where the whole picture lies in the texture, with a bx/by-pixel black frame
    NAME \\n LENGTH \\n BYTES  embedded files: a thumbnail (-t.jpg), the piece masks (.png), the texture (.jpg)

The texture holds the whole picture at the ``image`` rectangle beside the cut pieces, so the photo is a crop
of the texture, not a reassembly. The Debian copyright file names each puzzle's licence (``Files:`` stanzas
in the machine-readable copyright format).
"""

from __future__ import annotations

import io
import re
from fnmatch import fnmatch
from pathlib import Path

from PIL import Image

MAGIC = b"PzlF\n"
# JPEG ringing against the black frame reaches one pixel further in.
EXTRA_TRIM = 1


class PuzzleError(ValueError):
    pass


def _embedded_files(data: bytes, start: int) -> dict[str, bytes]:
    files = {}
    pos = start
    while True:
        while pos < len(data) and data[pos:pos + 1] in b"\n\r ":
            pos += 1
        if pos >= len(data):
            return files
        name_end = data.find(b"\n", pos)
        size_end = data.find(b"\n", name_end + 1)
        if name_end < 0 or size_end < 0:
            raise PuzzleError("an embedded file's name or length is cut off")
        name = data[pos:name_end].decode("utf-8", "replace").strip()
        try:
            size = int(data[name_end + 1:size_end])
        except ValueError:
            raise PuzzleError(f"embedded file {name!r} has no length") from None
        blob = data[size_end + 1:size_end + 1 + size]
        if len(blob) != size:
            raise PuzzleError(f"embedded file {name!r} is cut off ({len(blob)} of {size} bytes)")
        files[name] = blob
        pos = size_end + 1 + size


def read_puzzle(path: str | Path) -> Image.Image:
    """The whole photograph of a .pzl file, as RGB; PuzzleError when the file is not a puzzle or is damaged."""
    path = Path(path)
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise PuzzleError(f"{path.name} is not a Jigzo puzzle file")
    _, sep, rest = data.partition(b"#texture map data\n")
    if not sep:
        raise PuzzleError(f"{path.name} has no texture map")
    image_line = re.search(rb"^image +(\d+) +(\d+) +(\d+) +(\d+) +(\d+) +(\d+)[ \t]*$", rest, re.MULTILINE)
    if image_line is None:
        raise PuzzleError(f"{path.name} has no 'image' line in its texture map")
    x, y, w, h, bx, by = map(int, image_line.groups())
    files = _embedded_files(rest, image_line.end() + 1)
    textures = [n for n in files if n.lower().endswith(".jpg") and not n.lower().endswith("-t.jpg")]
    if not textures:
        raise PuzzleError(f"{path.name} holds no texture image")
    with Image.open(io.BytesIO(files[textures[0]])) as texture:
        texture.load()
        trim_x, trim_y = bx + EXTRA_TRIM, by + EXTRA_TRIM
        box = (x + trim_x, y + trim_y, x + w - trim_x, y + h - trim_y)
        if box[2] <= box[0] or box[3] <= box[1] or box[2] > texture.width or box[3] > texture.height:
            raise PuzzleError(f"{path.name}: the image rectangle {x, y, w, h} does not fit its {texture.size} texture")
        return texture.crop(box).convert("RGB")


def copyright_licences(text: str) -> tuple[dict[str, tuple[str, str]], tuple[str, str]]:
    """({path pattern: (copyright, licence)}, the ``Files: *`` default) from a machine-readable Debian copyright file.
    Patterns are as written (``*`` and ``?`` globs); the first line of each field is kept."""
    stanzas, default = {}, ("", "")
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            match = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
            if match:
                fields.setdefault(match.group(1).lower(), match.group(2).strip())
        if "files" not in fields or "license" not in fields:
            continue
        entry = (fields.get("copyright", ""), fields["license"])
        for pattern in fields["files"].split():
            if pattern == "*":
                default = entry
            else:
                stanzas[pattern] = entry
    return stanzas, default


def licence_for(path: str, stanzas: dict[str, tuple[str, str]], default: tuple[str, str]) -> tuple[str, str]:
    """The (copyright, licence) of the most specific stanza whose pattern matches the end of ``path``."""
    matches = [p for p in stanzas if fnmatch(path, p) or fnmatch(path, "*/" + p)]
    return stanzas[max(matches, key=len)] if matches else default
