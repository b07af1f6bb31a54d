"""Image folders as training data, with augmentation that is a pure function of a sample number.

Sample number ``g`` (counted over the whole run, all ranks together) decides which image is read
(a seeded permutation per epoch) and its random crop, scale and flip (a generator seeded with
``(seed, g)``). So a resumed run sees exactly the samples an uninterrupted run would have seen,
with no sampler or RNG state to save, and DDP ranks simply take disjoint sample numbers.

With ``cache`` each image is decoded once, reduced to the largest size a crop can use (its short
side ``crop_size / smallest scale``) and kept in memory as 8-bit RGB, instead of decoding a
full-size JPEG for every sample.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from .defocus import defocused

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


def list_images(root: str | Path) -> list[Path]:
    """Every image file below ``root`` (nested folders too), in a stable order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder of images")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def load_rgb(path: Path, max_short: int = 0) -> torch.Tensor | None:
    """3 x H x W float 0..1, or None (with a warning naming the file) if it cannot be read."""
    data = load_rgb_uint8(path, max_short)
    return None if data is None else data.float() / 255.0


def load_rgb_uint8(path: Path, max_short: int = 0) -> torch.Tensor | None:
    """3 x H x W uint8, its short side reduced to ``max_short`` (0: full size; never enlarged), or
    None (with a warning naming the file) if it cannot be read."""
    try:
        with Image.open(path) as img:
            if max_short and min(img.size) > max_short:
                scale = max_short / min(img.size)
                size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
                img.draft("RGB", size)  # JPEGs decode at a reduced scale directly, still at least `size`
                img = img.convert("RGB").resize(size, Image.Resampling.BILINEAR)
            else:
                img = img.convert("RGB")
            data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
            return data.view(img.height, img.width, 3).permute(2, 0, 1).contiguous()
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        logger.warning("skipping unreadable image %s (%s)", path, exc)
        return None


def sample_seed(seed: int, sample: int) -> int:
    return (seed * 1_000_003 + sample * 7_919) % (2**63)


class CropDataset(torch.utils.data.Dataset):
    """``dataset[g]`` is the g-th training sample: a random multi-scale crop, maybe flipped.

    The crop covers ``scale`` (uniform in ``scales``) of the image's short side and is resized to
    ``crop_size``; a ``defocus`` share of the crops is rendered with a shallow depth of field
    (``train.defocus``); images that fail to load are skipped (the next readable one is used) and
    reported once. ``cache``: keep each image decoded and reduced in memory (see the module notes).
    """

    def __init__(self, root: str | Path, crop_size: int = 128, scales: tuple[float, float] = (0.35, 1.0), seed: int = 0,
                 cache: bool = False, defocus: float = 0.0) -> None:
        self.paths = list_images(root)
        if not self.paths:
            raise ValueError(f"{root}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
        self.crop_size = crop_size
        self.scales = scales
        self.seed = seed
        self.cache = cache
        self.defocus = defocus
        self._bad: set[int] = set()
        self._decoded: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:  # an epoch; sample numbers run on past it
        return len(self.paths)

    def image_index(self, sample: int) -> int:
        epoch, pos = divmod(sample, len(self.paths))
        perm = torch.randperm(len(self.paths), generator=torch.Generator().manual_seed(sample_seed(self.seed, -1 - epoch)))
        return int(perm[pos])

    def __getitem__(self, sample: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(sample_seed(self.seed, sample))
        index = self.image_index(sample)
        for attempt in range(len(self.paths)):
            i = (index + attempt) % len(self.paths)
            if i in self._bad:
                continue
            img = self._load(i)
            if img is not None:
                return self.augment(img, gen)
            self._bad.add(i)
        raise ValueError("no readable images left in the training folder")

    def _load(self, i: int) -> torch.Tensor | None:
        """Image ``i``: float from the file, or uint8 from the cache (decoded on first use)."""
        if not self.cache:
            return load_rgb(self.paths[i])
        if i not in self._decoded:
            data = load_rgb_uint8(self.paths[i], max_short=math.ceil(self.crop_size / self.scales[0]))
            if data is None:
                return None
            self._decoded[i] = data
        return self._decoded[i]  # uint8: augment converts only the crop

    def augment(self, img: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        _, h, w = img.shape
        lo, hi = self.scales
        scale = lo + (hi - lo) * float(torch.rand((), generator=gen))
        side = max(1, min(h, w, round(min(h, w) * scale)))
        y = int(torch.randint(0, h - side + 1, (), generator=gen))
        x = int(torch.randint(0, w - side + 1, (), generator=gen))
        crop = img[:, y : y + side, x : x + side].unsqueeze(0)
        if crop.dtype == torch.uint8:
            crop = crop.float() / 255.0
        crop = F.interpolate(crop, size=(self.crop_size, self.crop_size), mode="bilinear", align_corners=False,
                             antialias=side > self.crop_size)
        if float(torch.rand((), generator=gen)) < 0.5:
            crop = crop.flip(-1)
        crop = crop[0].clamp(0.0, 1.0)
        # Drawn only when on, so runs without it see exactly the samples they always did.
        if self.defocus > 0 and float(torch.rand((), generator=gen)) < self.defocus:
            crop = defocused(crop, gen)
        return crop


class SampleNumbers(torch.utils.data.Sampler):
    """Sample numbers for one rank, from a given step on: step s, rank r, item j -> s*B*W + r*B + j."""

    def __init__(self, batch_size: int, start_step: int, total_steps: int, rank: int = 0, world: int = 1) -> None:
        self.batch_size, self.start_step, self.total_steps = batch_size, start_step, total_steps
        self.rank, self.world = rank, world

    def __iter__(self):
        for step in range(self.start_step, self.total_steps):
            base = step * self.batch_size * self.world + self.rank * self.batch_size
            yield from range(base, base + self.batch_size)

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step) * self.batch_size


def make_loader(dataset: CropDataset, *, batch_size: int, start_step: int, total_steps: int, rank: int = 0, world: int = 1,
                workers: int = 0):
    sampler = SampleNumbers(batch_size, start_step, total_steps, rank, world)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, drop_last=True, persistent_workers=False
    )
