"""``python -m train pack-data DATA OUT``: the training images as a small pack of resized JPEGs.

A machine that receives only a copy of the working tree (a GPU lent for minutes, ``train/gpu_run.sh``)
cannot fetch the data itself, so the pack carries it: ``photos/train/`` (and, with ``--styles``, the
training paintings of ``styles/``) of a ``fetch-data`` folder, never its held-out folders, as JPEGs
whose long side and quality are chosen so that the whole pack stays under ``--max-mb``. The layout is
the data folder's, so ``train base --photos OUT/photos/train`` reads it as it reads the folder, and
``manifest.json`` is the data folder's format: every file's record (split, package, source, licence)
carried over, with ``file`` the pack's relative path and ``packed_from`` the data folder's. ``pack.json``
records the long side, quality and sizes chosen.

The choice is deterministic: each image is read once and reduced to at most ``START_LONG_SIDE``; then
at ``QUALITY`` the long side shrinks (by the square root of the size ratio, in steps of 16 px) until the
pack fits. A fixed ``--long-side`` keeps the side and lowers the quality instead. No image is enlarged.
"""

from __future__ import annotations

import io
import json
import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from .data import list_images
from .settings import read_json_file

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
PACK_INFO = "pack.json"
PHOTOS, STYLES = "photos/train", "styles"
START_LONG_SIDE = 1024
QUALITY = 90
QUALITIES = (90, 85, 80, 75, 70, 65, 60)  # tried in turn with a fixed --long-side
SIDE_STEP = 16
MIN_LONG_SIDE = 32
MB = 1_000_000


@dataclass
class Source:
    folder: str  # PHOTOS or STYLES
    rel: str  # the data folder's relative path
    out: str  # the pack's relative path (.jpg)
    record: dict
    image: Image.Image  # RGB, long side at most START_LONG_SIDE


def data_records(data: Path) -> dict[str, dict]:
    """The data folder's manifest.json (``fetch-data``'s list of records) by relative file path."""
    path = data / MANIFEST
    records = read_json_file(path, "manifest (pack-data reads a folder made by `python -m train fetch-data`)")
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected a list of file records, as fetch-data writes")
    return {r["file"]: r for r in records if isinstance(r, dict) and "file" in r}


def read_reduced(path: Path, long_side: int) -> Image.Image | None:
    """The image as RGB, its long side reduced to ``long_side`` (never enlarged); None if unreadable."""
    try:
        with Image.open(path) as img:
            if max(img.size) > long_side:
                scale = long_side / max(img.size)
                size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
                img.draft("RGB", size)  # JPEGs decode at a reduced scale directly, still at least `size`
                return img.convert("RGB").resize(size, Image.Resampling.LANCZOS)
            return img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        logger.warning("skipping unreadable image %s (%s)", path, exc)
        return None


def collect(data: Path, styles: bool) -> list[Source]:
    """The training images of ``data`` (photos/train, and styles/ with ``styles``), read once each."""
    records = data_records(data)
    sources: list[Source] = []
    seen: set[str] = set()
    for folder in (PHOTOS, STYLES) if styles else (PHOTOS,):
        for path in list_images(data / folder):
            rel = path.relative_to(data).as_posix()
            record = records.get(rel)
            if record is None:
                logger.warning("%s is not in %s; packed with an unknown licence", rel, MANIFEST)
                record = {"file": rel, "split": "train", "licence": "unknown (not in the data folder's manifest)"}
            if record.get("split", "train") != "train":
                logger.warning("%s is a held-out file by the manifest; left out of the pack", rel)
                continue
            out = Path(rel).with_suffix(".jpg").as_posix()
            if out in seen:
                raise ValueError(f"{rel}: another image of the same name becomes {out} in the pack; rename one")
            image = read_reduced(path, START_LONG_SIDE)
            if image is not None:
                seen.add(out)
                sources.append(Source(folder, rel, out, record, image))
    if not sources:
        raise ValueError(f"{data / PHOTOS}: no training images to pack")
    return sources


def encode(image: Image.Image, long_side: int, quality: int) -> tuple[bytes, tuple[int, int]]:
    if max(image.size) > long_side:
        scale = long_side / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality, optimize=True, subsampling=2)  # 4:2:0, fixed for every Pillow
    return buf.getvalue(), image.size


@dataclass
class Pack:
    long_side: int
    quality: int
    files: dict[str, bytes]  # pack path -> JPEG
    manifest: bytes
    info: dict

    @property
    def total_bytes(self) -> int:
        return sum(map(len, self.files.values())) + len(self.manifest) + len(json.dumps(self.info, indent=1))


def build(sources: list[Source], long_side: int, quality: int, max_bytes: int) -> Pack:
    files, records = {}, []
    for s in sources:
        files[s.out], (w, h) = encode(s.image, long_side, quality)
        records.append({**s.record, "file": s.out, "packed_from": s.rel, "width": w, "height": h})
    manifest = json.dumps(records, indent=1).encode()
    counts: dict[str, int] = {}
    for s in sources:
        counts[s.folder] = counts.get(s.folder, 0) + 1
    info = {"long_side": long_side, "quality": quality, "max_bytes": max_bytes, "counts": counts,
            "image_bytes": sum(map(len, files.values()))}
    return Pack(long_side, quality, files, manifest, info)


def choose_pack(sources: list[Source], max_bytes: int, long_side: int = 0) -> Pack:
    """The largest long side (at QUALITY), or with ``long_side`` fixed the best quality, that fits ``max_bytes``."""
    if long_side:
        for quality in QUALITIES:
            pack = build(sources, long_side, quality, max_bytes)
            logger.info("pack at %d px, quality %d: %.2f MB", long_side, quality, pack.total_bytes / MB)
            if pack.total_bytes <= max_bytes:
                return pack
        raise ValueError(f"the images do not fit in {max_bytes / MB:g} MB at {long_side} px even at quality {QUALITIES[-1]}; "
                         "give a smaller --long-side or a larger --max-mb")
    side = max(max(s.image.size) for s in sources)  # at most START_LONG_SIDE already
    while side >= MIN_LONG_SIDE:
        pack = build(sources, side, QUALITY, max_bytes)
        logger.info("pack at %d px, quality %d: %.2f MB", side, QUALITY, pack.total_bytes / MB)
        if pack.total_bytes <= max_bytes:
            return pack
        guess = side * math.sqrt(max_bytes / pack.total_bytes)
        side = min(side - SIDE_STEP, int(guess // SIDE_STEP) * SIDE_STEP)
    raise ValueError(f"the images do not fit in {max_bytes / MB:g} MB even at {MIN_LONG_SIDE} px; give a larger --max-mb")


def write_pack(pack: Pack, out: Path) -> None:
    """Write ``pack`` into ``out`` (empty, new, or an earlier pack, which is replaced)."""
    if out.exists() and any(out.iterdir()) and not (out / PACK_INFO).is_file():
        raise FileExistsError(f"{out}: the folder is not empty and holds no data pack; choose a new one")
    for name in ("photos", STYLES):
        shutil.rmtree(out / name, ignore_errors=True)
    for rel, data in pack.files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    (out / MANIFEST).write_bytes(pack.manifest)
    (out / PACK_INFO).write_text(json.dumps(pack.info, indent=1))


def pack_data(data: Path, out: Path, *, max_mb: float = 28.0, long_side: int = 0, styles: bool = False) -> Pack:
    if max_mb <= 0 or long_side < 0:
        raise ValueError("--max-mb must be above 0 and --long-side 0 (choose) or more")
    pack = choose_pack(collect(data, styles), int(max_mb * MB), min(long_side, START_LONG_SIDE) if long_side else 0)
    write_pack(pack, out)
    return pack


def register(subparsers) -> None:
    p = subparsers.add_parser("pack-data", help="the training photos (and paintings) as resized JPEGs under a size limit")
    p.add_argument("data", type=Path, help="a folder made by `fetch-data` (photos/train, styles, manifest.json)")
    p.add_argument("out", type=Path, help="the pack folder to write (photos/train, styles, manifest.json, pack.json)")
    p.add_argument("--max-mb", type=float, default=28.0, help="the pack's whole size in MB of 10^6 bytes (default 28)")
    p.add_argument("--long-side", type=int, default=0,
                   help=f"a fixed long side in px (then the quality is lowered to fit); default: the largest that fits, "
                        f"at most {START_LONG_SIDE}")
    p.add_argument("--styles", action="store_true",
                   help="also pack the training paintings (for a run that trains the style decoder)")

    def run(args) -> str:
        pack = pack_data(args.data, args.out, max_mb=args.max_mb, long_side=args.long_side, styles=args.styles)
        counts = ", ".join(f"{n} in {folder}" for folder, n in pack.info["counts"].items())
        return f"wrote {args.out}: {counts}; long side {pack.long_side} px, quality {pack.quality}, {pack.total_bytes / MB:.2f} MB"

    p.set_defaults(func=run)
