"""Hostile images: extreme shapes, depths and values. Each works or fails with one clear sentence; no NaN pixels."""

from __future__ import annotations

import os
import resource

import pytest
import torch

from gan_core import DualGANRunner, StyleSpec
from gan_core.testing import tiny_model


@pytest.fixture(scope="module")
def runner():
    return DualGANRunner(tiny_model())


@pytest.fixture(scope="module")
def style(runner):
    return StyleSpec(runner.style_from_image(torch.rand(1, 3, 40, 40)), None, 1.0)


SHAPES = [(1, 1), (1, 4000), (4000, 1), (2, 3), (7, 5000), (33, 17)]


@pytest.mark.parametrize("height, width", SHAPES)
@pytest.mark.parametrize("job", ["colorize", "stylize", "blend"])
def test_extreme_shapes(runner, style, height, width, job):
    image = torch.rand(1, 3, height, width)
    if job == "colorize":
        outs = [runner.colorize(image)]
    elif job == "stylize":
        outs = [runner.stylize(image, style, render_size=256)]
    else:
        outs = list(runner.blend(image, style, lambda_content=0.5, lambda_color=0.5, render_size=256))
    for out in outs:
        assert out.shape == (1, 3, height, width) and torch.isfinite(out).all()
        assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("values", ["nan", "inf", "-inf", "big", "negative", "all_nan"])
def test_bad_values_never_give_nan_pixels(runner, style, values):
    image = torch.rand(2, 3, 24, 30)
    if values == "nan":
        image[0, :, 3:9, 4:12] = float("nan")
    elif values == "inf":
        image[1, 1] = float("inf")
    elif values == "-inf":
        image[:, 2, :5] = -float("inf")
    elif values == "big":
        image *= 1000
    elif values == "negative":
        image -= 5
    else:
        image[:] = float("nan")
    for out in (runner.colorize(image), runner.stylize(image, style), *runner.blend(image, style, lambda_content=0.3, lambda_color=0.7)):
        assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_greyscale_rgba_and_16bit_like_inputs(runner):
    grey = torch.rand(1, 1, 20, 20)
    assert runner.colorize(grey).shape == (1, 3, 20, 20)
    rgba = torch.rand(1, 4, 20, 20)
    assert torch.equal(runner.colorize(rgba), runner.colorize(rgba[:, :3]))  # alpha is dropped (documented)
    deep = torch.randint(0, 65536, (1, 3, 20, 20)).double() / 65535  # 16-bit precision as float64
    assert runner.colorize(deep).dtype == torch.float32


@pytest.mark.parametrize("kind", ["grey", "tiny", "one_pixel", "alpha", "huge", "nan", "flat", "batch"])
def test_hostile_style_images_work_through_the_palette_transfer(runner, kind):
    painting = {
        "grey": torch.rand(1, 1, 40, 40),
        "tiny": torch.rand(1, 3, 7, 9),
        "one_pixel": torch.rand(1, 3, 1, 1),
        "alpha": torch.rand(1, 4, 40, 40),
        "huge": torch.rand(1, 3, 3000, 2000),
        "nan": torch.full((1, 3, 30, 30), float("nan")),
        "flat": torch.full((1, 3, 30, 30), 0.3),
        "batch": torch.rand(2, 3, 30, 30),
    }[kind]
    spec = runner.style_spec(image=painting)
    images = torch.rand(2, 3, 24, 30)
    for out in (runner.stylize(images, spec), *runner.blend(images, spec, lambda_content=0.3, lambda_color=0.7)):
        assert out.shape == images.shape and torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    if kind == "grey":  # a grey painting: a grey picture
        out = runner.stylize(images, spec)
        assert (out.max(dim=1).values - out.min(dim=1).values).max() < 0.05


def test_mixed_batch_sizes_between_image_and_style(runner):
    images = torch.rand(3, 3, 16, 16)
    one = StyleSpec(runner.style_from_image(torch.rand(1, 3, 32, 32)), None, 1.0)
    per_image = StyleSpec(runner.style_from_image(torch.rand(3, 3, 32, 32)), None, 1.0)
    assert runner.stylize(images, one).shape == (3, 3, 16, 16)
    assert runner.stylize(images, per_image).shape == (3, 3, 16, 16)
    with pytest.raises(ValueError, match="style batch has 2 images; give 1 or one per image"):
        runner.stylize(images, StyleSpec(runner.style_from_image(torch.rand(2, 3, 32, 32)), None, 1.0))
    with pytest.raises(ValueError, match="empty batch"):
        runner.style_from_image(torch.zeros(0, 3, 32, 32))
    with pytest.raises(ValueError, match="zero size"):
        runner.colorize(torch.zeros(1, 3, 0, 10))


@pytest.mark.skipif(not os.environ.get("DUALGAN_HUGE"), reason="set DUALGAN_HUGE=1 to run the 16000 x 12000 test (about a minute, ~10 GB)")
def test_huge_scan_through_strips_and_tiles():
    runner = DualGANRunner(tiny_model())
    image = torch.rand(1, 3, 12000, 16000)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    out = runner.colorize(image, render_size=512)
    stylised = runner.stylize(image[:, :, :6000, :8000], StyleSpec(runner.style_from_image(torch.rand(1, 3, 64, 64)), None, 1.0), render_size=0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    assert out.shape == image.shape and torch.isfinite(out[:, :, ::97, ::89]).all()
    assert stylised.shape == (1, 3, 6000, 8000)
    print(f"peak RSS {peak:.1f} GiB (before {before:.1f} GiB)")  # noqa: T201  the opt-in measurement's result (pytest -s)
    assert peak < 16, f"peak memory {peak:.1f} GiB"
