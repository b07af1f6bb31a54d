"""fetch-data's pure parts (no downloads): Qt bundles, credits, painting reassembly, dedupe, split."""

from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFilter

from train.jigzo_puzzles import PuzzleError, read_puzzle
from train.open_data import (EVAL_PAINTINGS, Record, Writer, add_jigzo, add_paintings, add_photo_packages, desktop_fields, kphotoalbum_angles,
                             parse_board, parse_credits, reassemble, upright, write_manifest)
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


def _photo(seed: int, size=(320, 240)) -> Image.Image:
    """A smooth random colour picture (blurred noise), different for each seed."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
    return small.resize(size, Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(2))


def _rec(split="train", path="orig"):
    return Record("", split, "photo", "pkg", path)


def test_writer_drops_the_same_photo_at_another_size(tmp_path):
    out = Writer(tmp_path)
    assert out.add(_photo(1), "photos/train", "big", _rec(path="big"))
    assert not out.add(_photo(1).resize((160, 120), Image.Resampling.LANCZOS), "photos/train", "small", _rec(path="small"))
    assert out.add(_photo(2), "photos/train", "other", _rec(path="other"))
    assert [r.file for r in out.records] == ["photos/train/big.jpg", "photos/train/other.jpg"]
    assert out.dropped[0][0] == "small" and "near copy of big" in out.dropped[0][1]


def test_held_out_photo_evicts_its_training_copy(tmp_path):
    out = Writer(tmp_path)
    assert out.add(_photo(3), "photos/train", "copy", _rec(path="train-copy"))
    assert out.add(_photo(4), "photos/train", "keep", _rec(path="keep"))
    assert out.add(_photo(3).resize((200, 150)), "photos/eval", "held", _rec("eval", "held"))
    assert out.add(_photo(3).resize((240, 180)), "photos/eval", "held2", _rec("eval", "held2"))  # eval never dropped for near
    assert [r.file for r in out.records] == ["photos/train/keep.jpg", "photos/eval/held.jpg", "photos/eval/held2.jpg"]
    assert not (tmp_path / "photos/train/copy.jpg").exists()
    assert out.dropped == [("train-copy", "near copy of held-out held")]


def test_writer_never_overwrites_a_kept_name_and_removes_stale_files(tmp_path):
    (tmp_path / "styles").mkdir()
    (tmp_path / "styles" / "old.jpg").write_bytes(b"from an earlier fetch")
    (tmp_path / "vgg16.safetensors").write_bytes(b"not managed")
    out = Writer(tmp_path)
    assert out.add(_photo(5), "styles", "same", _rec())
    assert out.add(_photo(6), "styles", "same", _rec())
    assert [r.file for r in out.records] == ["styles/same.jpg", "styles/same_2.jpg"]
    assert [p.name for p in out.remove_stale()] == ["old.jpg"]
    assert (tmp_path / "vgg16.safetensors").exists() and (tmp_path / "styles/same.jpg").exists()


def test_manifest_paths_are_relative(tmp_path):
    out = Writer(tmp_path)
    out.add(_photo(7), "photos/train", "a", _rec(path="usr/share/x.jpg"))
    write_manifest(tmp_path, out.records)
    (entry,) = json.loads((tmp_path / "manifest.json").read_text())
    assert entry["file"] == "photos/train/a.jpg" and not entry["original_path"].startswith("/")
    with pytest.raises(ValueError, match="absolute"):
        write_manifest(tmp_path, [Record("photos/train/a.jpg", "train", "photo", "pkg", str(tmp_path / "a.jpg"))])


def test_kphotoalbum_angles_turn_photos_upright():
    xml = ('<KPhotoAlbum><images><image file="a.jpg" angle="90" width="20" height="40"/><image file="b.jpg"/>'
           '<image file="c.jpg" angle="270"/></images></KPhotoAlbum>')
    assert kphotoalbum_angles(xml) == {"a.jpg": 90, "c.jpg": 270}
    sideways = Image.new("RGB", (40, 20), (0, 0, 255))
    sideways.paste((255, 0, 0), (0, 0, 20, 20))  # red on the left
    turned = upright(sideways, 90)  # clockwise: the left side goes to the top
    assert turned.size == (20, 40) and turned.getpixel((10, 5)) == (255, 0, 0) and turned.getpixel((10, 35)) == (0, 0, 255)
    assert upright(sideways, 270).getpixel((10, 35)) == (255, 0, 0)
    with pytest.raises(ValueError):
        upright(sideways, 45)


def test_photo_packages_from_fake_unpacked_packages(tmp_path):
    roots = {name: tmp_path / name for name in ("kphotoalbum", "lxqt-themes", "palapeli-data")}
    demo = roots["kphotoalbum"] / "usr/share/kphotoalbum/demo"
    demo.mkdir(parents=True)
    sideways = _photo(8, (400, 300))
    sideways.save(demo / "pool_2.jpg")
    _photo(9, (400, 300)).save(demo / "beach.jpg")
    (demo / "index.xml").write_text('<KPhotoAlbum><images><image file="pool_2.jpg" angle="270"/></images></KPhotoAlbum>')
    walls = roots["lxqt-themes"] / "usr/share/lxqt/wallpapers"
    walls.mkdir(parents=True)
    _photo(10, (400, 300)).save(walls / "fog.jpg")
    _photo(11, (400, 300)).save(walls / "triangles-logo.png")  # a render: not in the photo list
    puzzles = roots["palapeli-data"] / "usr/share/palapeli/collection"
    puzzles.mkdir(parents=True)
    _photo(12, (400, 300)).save(puzzles / "bee.jpg")
    (puzzles / "bee.desktop").write_text("[Desktop Entry]\nName=Bee\nName[de]=Biene\nImage=bee.jpg\n"
                                         "X-KDE-PluginInfo-Author=J. Doe\nX-KDE-PluginInfo-License=Public Domain\n")
    out = Writer(tmp_path / "data")
    add_photo_packages(roots, out)
    by_file = {r.file: r for r in out.records}
    assert sorted(by_file) == ["photos/train/kphotoalbum_beach.jpg", "photos/train/kphotoalbum_pool_2.jpg",
                               "photos/train/lxqt_fog.jpg", "photos/train/palapeli_bee.jpg"]
    with Image.open(tmp_path / "data/photos/train/kphotoalbum_pool_2.jpg") as fixed:
        assert fixed.size == (300, 400)
        assert np.abs(np.asarray(fixed, np.float32) - np.asarray(sideways.rotate(90, expand=True), np.float32)).mean() < 3
    bee = by_file["photos/train/palapeli_bee.jpg"]
    assert bee.title == "Bee" and bee.source == "J. Doe" and bee.licence.startswith("Public Domain")
    assert by_file["photos/train/lxqt_fog.jpg"].licence == "CC-BY-SA-3.0"
    assert all(not r.original_path.startswith("/") for r in out.records)
    assert desktop_fields("Name=A\nName[fr]=B\nx") == {"Name": "A"}


def test_held_out_paintings_go_to_styles_eval(tmp_path):
    prefix = "gcompris/src/activities/paintings/resource/"
    files = {prefix + "image/README": b"WebMuseum"}
    held = next(iter(EVAL_PAINTINGS))
    for n, board in enumerate([held, "board99"]):
        files[prefix + f"image/{board}.png"] = _encode(_photo(20 + n, (100, 50)))
        files[prefix + f"board/{board}_0.qml"] = (f'instruction: qsTr("Painter {n}")\n"width": 100, "height": 50\n'
                                                  f'"pixmapfile" : "image/{board}.png", "x" : "0.5", "y" : "0.5"').encode()
    out = Writer(tmp_path)
    add_paintings(files, out)
    assert {(r.file, r.split) for r in out.records} == {(f"styles_eval/painting_{held}_0.jpg", "eval"),
                                                         ("styles/painting_board99_0.jpg", "train")}
    assert len(EVAL_PAINTINGS) >= 6


def _encode(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def _puzzle_bytes(photo: Image.Image, name: str) -> bytes:
    """A Jigzo .pzl: the texture holds the photo in a 1-px black frame at (0, 0) and a fake piece beside it."""
    w, h = photo.width + 2, photo.height + 2
    texture = Image.new("RGB", (w + 64, h + 64))
    texture.paste(photo, (1, 1))
    texture.paste(Image.new("RGB", (60, 60), (250, 0, 0)), (w + 2, 0))  # a cut piece, not part of the photo

    def embedded(filename: str, image: Image.Image, fmt: str) -> bytes:
        buf = io.BytesIO()
        image.save(buf, fmt, quality=95) if fmt == "JPEG" else image.save(buf, fmt)
        return f"{filename}\n{len(buf.getvalue())}\n".encode() + buf.getvalue() + b"\n"

    mapping = f"#texture map data\ncrop000 {w + 2} 0 60 60 30 30 0 0 0 0\nimage 0 0 {w} {h} 1 1    \n"
    head = f"PzlF\n0.1\n{name}\nhttp://example.invalid/\n{name}.map\n{len(mapping)}\n"
    return (head + mapping).encode() + embedded(f"{name}-t.jpg", photo.resize((32, 24)), "JPEG") \
        + embedded(f"{name}.png", Image.new("RGBA", texture.size), "PNG") + embedded(f"{name}.jpg", texture, "JPEG")


def test_jigzo_puzzles_give_their_photo_and_licence(tmp_path, caplog):
    root = tmp_path / "jigzo-data"
    puzzles = root / "usr/share/games/jigzo/puzzles/00_default"
    puzzles.mkdir(parents=True)
    bird = _photo(20, (300, 240))
    (puzzles / "bird-2x3.pzl").write_bytes(_puzzle_bytes(bird, "bird-2x3"))
    (puzzles / "heli-4x3.pzl").write_bytes(_puzzle_bytes(_photo(21, (320, 240)), "heli-4x3"))
    (puzzles / "penguin-3x2.pzl").write_bytes(_puzzle_bytes(_photo(22, (300, 200)), "penguin-3x2"))
    (puzzles / "broken-2x2.pzl").write_bytes(_puzzle_bytes(_photo(23, (300, 200)), "broken-2x2")[:-500])
    doc = root / "usr/share/doc/jigzo-data"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: 2005 A. Author\nLicense: GPL-2+\n\n"
        "Files: puzzles/00_default/heli-4x3.pzl\nCopyright: B. Photographer\nLicense: GPL-2\n\n"
        "Files: puzzles/00_default/penguin-3x2.pzl\nCopyright: C. Photographer\nLicense: CC-BY-NC-SA-1.0\n"
        " This work is licensed under a non-commercial licence.\n")
    out = Writer(tmp_path / "data")
    with caplog.at_level("WARNING"):
        add_jigzo(root, out)
    by_file = {r.file: r for r in out.records}
    assert sorted(by_file) == ["photos/train/jigzo_bird.jpg", "photos/train/jigzo_heli.jpg"]
    assert by_file["photos/train/jigzo_heli.jpg"].licence.startswith("GPL-2 ")
    assert by_file["photos/train/jigzo_heli.jpg"].source == "B. Photographer"
    assert by_file["photos/train/jigzo_bird.jpg"].licence.startswith("GPL-2+")
    assert [why for path, why in out.dropped if path.endswith("penguin-3x2.pzl")][0].startswith("licence CC-BY-NC-SA-1.0")
    assert "broken-2x2.pzl" in caplog.text
    with Image.open(tmp_path / "data/photos/train/jigzo_bird.jpg") as kept:
        assert kept.size == (bird.width - 2, bird.height - 2)  # the frame and one pixel of ringing trimmed
        diff = np.abs(np.asarray(kept, np.float32) - np.asarray(bird.crop((1, 1, bird.width - 1, bird.height - 1)), np.float32))
        assert diff.mean() < 4


def test_a_file_that_is_not_a_puzzle_is_named(tmp_path):
    bad = tmp_path / "x.pzl"
    bad.write_bytes(b"GIF89a not a puzzle")
    with pytest.raises(PuzzleError, match="x.pzl is not a Jigzo puzzle file"):
        read_puzzle(bad)
