"""The palette transfer: the stylised image takes on the style image's colour statistics, tile-safely."""

from __future__ import annotations

import torch

from gan_core import DualGANRunner
from gan_core.palette_transfer import ColourMoments, colour_moments, match_palette, transfer_map
from gan_core.style_path import StyleSpec
from gan_core.testing import tiny_model


def _image(seed: int, shape=(1, 3, 48, 64), tint=(0.6, 0.4, 0.2)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.tensor(tint)[None, :, None, None]
    return (base + 0.15 * torch.randn(shape, generator=g)).clamp(0, 1)


def test_moves_mean_and_covariance_onto_the_target():
    source, painting = _image(0, tint=(0.7, 0.6, 0.3)), _image(1, tint=(0.2, 0.3, 0.7))
    painting[:, 2] = 0.5 * painting[:, 2] + 0.3 * painting[:, 0]  # correlated channels
    target = colour_moments(painting)
    out = match_palette(source.clone(), (48, 64), target)
    got = colour_moments(out)
    assert torch.allclose(got.mean, target.mean, atol=1e-3)
    # The source's covariance floor leaves the result slightly off the target's; the gain stays sane.
    assert torch.allclose(got.cov, target.cov, atol=2e-3)


def test_strength_zero_is_the_identity_and_half_is_between():
    source, painting = _image(2), _image(3, tint=(0.1, 0.5, 0.9))
    target = colour_moments(painting)
    assert torch.equal(match_palette(source.clone(), (48, 64), target, strength=0.0), source)
    half = colour_moments(match_palette(source.clone(), (48, 64), target, strength=0.5)).mean
    lo, hi = colour_moments(source).mean, target.mean
    assert torch.all((half - torch.minimum(lo, hi) > -1e-6) & (torch.maximum(lo, hi) - half > -1e-6))


def test_statistics_come_from_the_valid_region_only():
    source = _image(4, shape=(1, 3, 40, 40))
    padded = torch.cat([source, torch.ones(1, 3, 8, 40)], dim=2)  # bright padding rows below
    target = colour_moments(_image(5, tint=(0.3, 0.3, 0.3)))
    out = match_palette(padded.clone(), (40, 40), target)
    assert torch.allclose(out[:, :, :40], match_palette(source.clone(), (40, 40), target), atol=1e-6)


def test_a_grey_painting_gives_a_grey_picture_and_a_flat_picture_stays_sane():
    grey = _image(6).mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    out = match_palette(_image(7, tint=(0.8, 0.3, 0.1)), (48, 64), colour_moments(grey))
    assert (out.max(dim=1).values - out.min(dim=1).values).max() < 0.02
    flat = torch.full((1, 3, 16, 16), 0.5)
    flat[0, 0, 0, 0] = 0.51  # nearly no variance: the floor keeps the gain bounded
    matrix, _ = transfer_map(colour_moments(flat), colour_moments(_image(8)))
    assert matrix.abs().max() < 10


def test_style_transfer_takes_the_paintings_palette_tiled_or_whole():
    torch.manual_seed(0)
    model = tiny_model(seed=1).eval()
    runner = DualGANRunner(model)
    photo, painting = _image(9, shape=(1, 3, 96, 128)), _image(10, shape=(1, 3, 64, 64), tint=(0.1, 0.3, 0.8))
    spec = runner.style_spec(image=painting)
    assert isinstance(spec.palette, ColourMoments)
    with torch.inference_mode():
        matched = runner.stylize(photo, spec, render_size=0)
        plain = runner.stylize(photo, StyleSpec(spec.code), render_size=0)
        # Trained styles carry no palette: the decoder's own colours, as a spec without one.
        named = runner.stylize(photo, StyleSpec(spec.code, None, 1.0, palette=None), render_size=0)
        runner.tile = 64  # tiled: the map is computed once over the whole render
        tiled = runner.stylize(photo, spec, render_size=0)
    target = colour_moments(painting).mean
    assert (colour_moments(matched).mean - target).abs().max() < (colour_moments(plain).mean - target).abs().max()
    assert (matched - tiled).abs().max() < 0.05
    assert torch.equal(named, plain)
