"""train.degrade: colour photos -> old-scan grey, on small generated batches."""

from __future__ import annotations

import pytest
import torch

from gan_core.color import luminance
from train.degrade import FILMS, LUMINANCE, degrade_grey, degraded_eval_copy, film_grey


def _photos(b=4, h=48, w=64, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(b, 3, h // 8, w // 8, generator=g)
    return torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)


def _patch(rgb, b=6, size=32) -> torch.Tensor:
    return torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1).expand(b, 3, size, size).contiguous()


def test_same_seed_same_scan_and_other_seeds_differ():
    x = _photos()
    a = degrade_grey(x, torch.Generator().manual_seed(7))
    assert torch.equal(a, degrade_grey(x, torch.Generator().manual_seed(7)))
    assert not torch.equal(a, degrade_grey(x, torch.Generator().manual_seed(8)))
    assert torch.equal(degraded_eval_copy(x[0], 3), degraded_eval_copy(x[0], 3))
    assert degraded_eval_copy(x[0], 3).shape == (1, 48, 64)
    assert torch.equal(degraded_eval_copy(x[:1], 3), degraded_eval_copy(x[0], 3)[None])


@pytest.mark.parametrize("strength", [0.0, 0.5, 1.0, 3.0])
def test_shape_and_range(strength):
    x = torch.cat([_photos(2), torch.zeros(1, 3, 48, 64), torch.ones(1, 3, 48, 64)])
    y = degrade_grey(x, torch.Generator().manual_seed(1), strength)
    assert y.shape == (4, 1, 48, 64) and y.dtype == torch.float32
    assert torch.isfinite(y).all() and y.min() >= 0.0 and y.max() <= 1.0


def test_strength_zero_is_plain_luminance():
    x = _photos()
    y = degrade_grey(x, torch.Generator().manual_seed(2), strength=0.0)
    lightness = luminance(y.expand(-1, 3, -1, -1), grey=True)
    assert (lightness - luminance(x)).abs().max() < 0.01  # L in 0..100
    assert torch.allclose(y, film_grey(x, torch.tensor([LUMINANCE] * 4)))


def test_orthochromatic_film_renders_red_dark_and_blue_light():
    plain_red = film_grey(_patch([1.0, 0.0, 0.0]), torch.tensor([LUMINANCE] * 6)).mean()
    plain_blue = film_grey(_patch([0.0, 0.0, 1.0]), torch.tensor([LUMINANCE] * 6)).mean()
    red = degrade_grey(_patch([1.0, 0.0, 0.0]), torch.Generator().manual_seed(3), films=("orthochromatic",))
    blue = degrade_grey(_patch([0.0, 0.0, 1.0]), torch.Generator().manual_seed(3), films=("orthochromatic",))
    assert red.mean() < plain_red - 0.15  # every picture of the batch, whatever grain, fade or dust it drew
    assert (red.mean(dim=(1, 2, 3)) < plain_red - 0.1).all()
    assert blue.mean() > plain_blue + 0.15


def test_strength_scales_the_damage():
    x = _photos(8)
    plain = degrade_grey(x, torch.Generator().manual_seed(4), 0.0)
    gaps = [(degrade_grey(x, torch.Generator().manual_seed(4), s) - plain).abs().mean().item() for s in (0.2, 1.0)]
    assert 0.0 < gaps[0] < gaps[1]


def test_bad_input_says_what_is_wrong():
    g = torch.Generator()
    with pytest.raises(ValueError, match="B x 3 x H x W"):
        degrade_grey(torch.rand(3, 8, 8), g)
    with pytest.raises(ValueError, match="unknown film"):
        degrade_grey(torch.rand(1, 3, 8, 8), g, films=("sepia",))
    with pytest.raises(ValueError, match="strength"):
        degrade_grey(torch.rand(1, 3, 8, 8), g, strength=-1)
    assert set(FILMS) == {"luminance", "panchromatic", "orthochromatic"}


def _detail(x: torch.Tensor) -> torch.Tensor:
    """Per-pixel high-frequency energy: the squared difference to the right-hand neighbour, C x H x (W - 1)."""
    return (x[..., 1:] - x[..., :-1]).pow(2)


def test_defocus_blurs_the_background_and_keeps_a_sharp_subject():
    from train.defocus import defocused

    crop = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))  # all detail, like foliage
    outs = [defocused(crop, torch.Generator().manual_seed(s)) for s in range(24)]
    assert torch.equal(outs[3], defocused(crop, torch.Generator().manual_seed(3)))  # a pure function of the generator
    assert all(o.shape == crop.shape and 0 <= float(o.min()) and float(o.max()) <= 1 for o in outs)
    detail = _detail(crop).mean()
    for o in outs:
        corners = torch.cat([_detail(o)[:, :6, :6].flatten(), _detail(o)[:, -6:, -7:].flatten()])
        assert corners.mean() < 0.2 * detail  # the edges are out of focus whatever the subject
    sharp_somewhere = [float(((o - crop).abs().amax(0) < 0.05).float().mean()) for o in outs]
    assert sum(s > 0.02 for s in sharp_somewhere) >= 10  # most crops keep a sharp subject
    assert sum(s < 0.005 for s in sharp_somewhere) >= 2  # and some are blurred all over


def test_crop_dataset_defocus_is_off_by_default_and_reproducible(image_dirs):
    from train.data import CropDataset

    plain = CropDataset(image_dirs / "photos", 32, seed=2)
    off = CropDataset(image_dirs / "photos", 32, seed=2, defocus=0.0)
    on = CropDataset(image_dirs / "photos", 32, seed=2, defocus=1.0)
    again = CropDataset(image_dirs / "photos", 32, seed=2, defocus=1.0)
    for g in range(6):
        assert torch.equal(plain[g], off[g])  # no extra random draw when off: earlier runs' samples unchanged
        assert torch.equal(on[g], again[g])
    assert sum(not torch.equal(on[g], plain[g]) for g in range(6)) >= 5
