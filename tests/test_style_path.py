"""The one style path: style codes from an image (valid region only), from a name, and the spec."""

from __future__ import annotations

import pytest
import torch

from gan_core.geometry import pad_for_network
from gan_core import DualGANRunner
from gan_core.style_codes import feature_stats
from gan_core.style_path import STYLE_SIZE, style_code_from_image, style_from_name, style_spec, trained_styles_available
from gan_core.testing import tiny_model


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def _image(h: int, w: int, seed: int = 3) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_style_code_ignores_the_padding(model):
    # 6 x 45 is padded to 16 x 48 (the network's minimum size and stride): its features are 2 x 6, of
    # which the image covers 1 x 6. The code must be the statistics of those, not of the padding's row.
    art = _image(6, 45)
    code = style_code_from_image(model.encoder, art)
    with torch.no_grad():
        feats = model.encoder(pad_for_network(art), until="relu4_1")["relu4_1"]
    assert feats.shape[-2:] == (2, 6)
    cropped, uncropped = feature_stats(feats[:, :, :1, :6]), feature_stats(feats)
    assert torch.equal(code.mean, cropped.mean) and torch.equal(code.std, cropped.std)
    assert not torch.allclose(code.std, uncropped.std, atol=1e-4)
    # A size that is not a multiple of 8 keeps its partly covered feature cells (37 x 45 -> 5 x 6 of 5 x 6).
    odd = _image(37, 45)
    with torch.no_grad():
        odd_feats = model.encoder(pad_for_network(odd), until="relu4_1")["relu4_1"]
    assert torch.equal(style_code_from_image(model.encoder, odd).mean, feature_stats(odd_feats).mean)


def test_style_code_reduces_the_short_side_but_never_upscales(model):
    big, small = _image(2 * STYLE_SIZE // 8, 3 * STYLE_SIZE // 8), _image(20, 30)
    reduced = style_code_from_image(model.encoder, big, size=big.shape[-2] // 2)
    manual = style_code_from_image(model.encoder, torch.nn.functional.interpolate(
        big, size=(big.shape[-2] // 2, big.shape[-1] // 2), mode="bilinear", align_corners=False, antialias=True), size=0)
    assert torch.equal(reduced.mean, manual.mean)
    assert torch.equal(style_code_from_image(model.encoder, small, size=512).mean,
                       style_code_from_image(model.encoder, small, size=0).mean)


def test_runner_and_spec_use_the_same_codes(model):
    art = _image(37, 45)
    runner = DualGANRunner(model)
    expected = style_code_from_image(model.encoder, art)
    assert torch.equal(runner.style_from_image(art).mean, expected.mean)
    assert torch.equal(style_spec(model, image=art, strength=0.5).code.std, expected.std)


def test_style_names_and_the_available_message(model):
    assert trained_styles_available(model) == "trained styles available: none in this model"
    assert trained_styles_available(["a", "b"]) == "trained styles available: a, b"
    with pytest.raises(ValueError, match="unknown style 'nope'; trained styles available: none"):
        style_from_name(model, "nope")
    with pytest.raises(ValueError, match="no style given.*trained styles available"):
        style_spec(model)
    with pytest.raises(ValueError, match="no fast style network"):
        style_spec(model, image=_image(16, 16), network="fast")
