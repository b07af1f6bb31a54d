"""Read Qt resource bundles (.rcc): the format GCompris ships its pictures in.

Layout (big-endian): magic "qres", version, tree offset, data offset, names offset. The tree is an
array of nodes (14 bytes in version 1, 22 in later versions): name offset (u32), flags (u16), then
for a directory child count and first child index (u32, u32), for a file country/language (u16,
u16) and data offset (u32). Names are a u16 length, a u32 hash and UTF-16-BE characters. File data
is a u32 length and the bytes; flag 1 = zlib (after a 4-byte size), 4 = zstd.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

FLAG_COMPRESSED, FLAG_DIRECTORY, FLAG_ZSTD = 1, 2, 4


class RccError(ValueError):
    pass


def iter_files(path: str | Path) -> Iterator[tuple[str, bytes]]:
    """Yield (path inside the bundle, decompressed bytes) for every file."""
    path = Path(path)
    data = path.read_bytes()
    if data[:4] != b"qres" or len(data) < 20:
        raise RccError(f"{path.name} is not a Qt resource bundle")
    version, tree, blobs, names = struct.unpack(">IIII", data[4:20])
    node_size = 14 if version == 1 else 22

    def name_at(offset: int) -> str:
        (length,) = struct.unpack(">H", data[names + offset : names + offset + 2])
        start = names + offset + 6
        return data[start : start + 2 * length].decode("utf-16-be")

    def walk(index: int, prefix: str) -> Iterator[tuple[str, bytes]]:
        base = tree + index * node_size
        name_offset, flags = struct.unpack(">IH", data[base : base + 6])
        name = name_at(name_offset) if index else ""
        if flags & FLAG_DIRECTORY:
            count, first = struct.unpack(">II", data[base + 6 : base + 14])
            for child in range(first, first + count):
                yield from walk(child, f"{prefix}{name}/" if index else "")
            return
        (offset,) = struct.unpack(">I", data[base + 10 : base + 14])
        (length,) = struct.unpack(">I", data[blobs + offset : blobs + offset + 4])
        blob = data[blobs + offset + 4 : blobs + offset + 4 + length]
        if flags & FLAG_COMPRESSED:
            blob = zlib.decompress(blob[4:])
        elif flags & FLAG_ZSTD:
            try:
                import zstandard
            except ImportError:
                raise RccError(f"{path.name} holds zstd-compressed files; pip install zstandard to read them") from None
            blob = zstandard.ZstdDecompressor().decompress(blob)
        yield prefix + name, blob

    yield from walk(0, "")
