"""fetch-data's pure parts (no downloads): Qt bundles, credits, painting reassembly, dedupe, split."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from train.open_data import Record, Writer, parse_board, parse_credits, reassemble
from train.qt_resources import RccError, iter_files


def _name_entry(name: str) -> bytes:
    encoded = name.encode("utf-16-be")
    return struct.pack(">HI", len(name), 0) + encoded


def build_rcc(files: dict[str, tuple[bytes, bool]]) -> bytes:
    """A version-2 bundle: root/dir/<files>; (data, compress) per file."""
    names, name_offsets = b"", {}
    for n in ["dir", *files]:
        name_offsets[n] = len(names)
        names += _name_entry(n)
    blobs, blob_offsets = b"", {}
    for n, (data, compress) in files.items():
        payload = struct.pack(">I", len(data)) + zlib.compress(data) if compress else data
        blob_offsets[n] = len(blobs)
        blobs += struct.pack(">I", len(payload)) + payload
    nodes = [struct.pack(">IHII", 0, 2, 1, 1) + b"\0" * 8,  # root: 1 child starting at node 1
             struct.pack(">IHII", name_offsets["dir"], 2, len(files), 2) + b"\0" * 8]
    for n, (_, compress) in files.items():
        nodes.append(struct.pack(">IHHHI", name_offsets[n], 1 if compress else 0, 0, 0, blob_offsets[n]) + b"\0" * 8)
    tree = b"".join(nodes)
    header_len = 20
    tree_off, blob_off = header_len, header_len + len(tree)
    names_off = blob_off + len(blobs)
    return b"qres" + struct.pack(">IIII", 2, tree_off, blob_off, names_off) + tree + blobs + names


def test_qt_bundle_round_trip(tmp_path):
    path = tmp_path / "x.rcc"
    path.write_bytes(build_rcc({"a.txt": (b"hello", False), "b.bin": (b"\x00\x01" * 50, True)}))
    assert dict(iter_files(path)) == {"dir/a.txt": b"hello", "dir/b.bin": b"\x00\x01" * 50}
    bad = tmp_path / "bad.rcc"
    bad.write_bytes(b"nope" * 10)
    with pytest.raises(RccError, match="not a Qt resource bundle"):
        list(iter_files(bad))


def test_credits_parse_blocks():
    text = ("Copyright: A. Person\nSource: https://example.org/a\nLicense: CC-BY-SA-4.0\nFiles: alpaca.webp\n\n"
            "Copyright: Bruno\nLicense: Public domain\nFiles:\n  one.webp\n  two.webp\nComment: based on an original painting by Van Gogh\n")
    credits = parse_credits(text)
    assert credits["alpaca.webp"]["license"] == "CC-BY-SA-4.0"
    assert credits["two.webp"]["license"] == "Public domain" and "painting" in credits["two.webp"]["comment"]


def test_board_parse_and_reassembly():
    board = '''instruction: qsTr("Painter, Title - 1900")
       { "pixmapfile" : "image/bg.svg", "type" : "SHAPE_BACKGROUND_IMAGE", "width": 100, "height": 50 },
       { "pixmapfile" : "image/p-1.webp", "x" : "0.25", "y" : "0.5" },
       { "pixmapfile" : "image/p-2.webp", "x" : "0.75", "y" : "0.5" }'''
    title, size, pieces = parse_board(board)
    assert title == "Painter, Title - 1900" and size == (100, 50) and [p[0] for p in pieces] == ["image/p-1.webp", "image/p-2.webp"]
    left, right = Image.new("RGBA", (50, 50), (255, 0, 0, 255)), Image.new("RGBA", (50, 50), (0, 0, 255, 255))
    whole = reassemble(size, [(left, 0.25, 0.5), (right, 0.75, 0.5)])
    assert whole.size == (100, 50)
    assert whole.getpixel((10, 25)) == (255, 0, 0) and whole.getpixel((90, 25)) == (0, 0, 255)
    with pytest.raises(ValueError):
        parse_board("nothing here")


def test_writer_dedupes_and_skips_unreadable(tmp_path, caplog):
    out = Writer(tmp_path)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buf, "PNG")
    rec = lambda: Record("", "train", "photo", "pkg", "orig")  # noqa: E731
    assert out.add(buf.getvalue(), "photos/train", "a", rec())
    assert not out.add(buf.getvalue(), "photos/train", "b", rec())  # same pixels
    assert not out.add(b"garbage", "photos/train", "c", rec())
    assert "skipping unreadable image" in caplog.text
    assert [r.file for r in out.records] == ["photos/train/a.jpg"]
