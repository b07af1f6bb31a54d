"""import-vgg16: folding the preprocessing into conv1_1, the torchvision path, and verification."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from train.vgg16_import import (CAFFE_MEAN_BGR, CONV_INDICES, TORCHVISION_MEAN, TORCHVISION_STD, fold_caffe,
                                fold_torchvision, import_vgg16, read_onnx)
from train.vgg_weights import load_vgg_into
from gan_core.encoder import VGGEncoder


def _interior(x):
    return x[..., 1:-1, 1:-1]


def test_caffe_folding_equals_original_preprocessing():
    w, b = torch.randn(4, 3, 3, 3), torch.randn(4)
    rgb = torch.rand(1, 3, 9, 9)
    bgr255 = rgb[:, [2, 1, 0]] * 255.0 - CAFFE_MEAN_BGR.view(1, 3, 1, 1)
    folded_w, folded_b = fold_caffe(w, b)
    # zero padding lives in different spaces, so compare away from the border
    assert torch.allclose(_interior(F.conv2d(rgb, folded_w, folded_b, padding=1)), _interior(F.conv2d(bgr255, w, b, padding=1)), atol=1e-2)


def test_encoder_pads_like_vgg16_at_the_border():
    """The encoder's first convolution holding the folded weights equals VGG16's convolution of its own
    preprocessed input everywhere, the border included: VGG16 zero-pads the mean-subtracted image, so the
    encoder pads the 0..1 image with the mean colour (zero padding there would be a black frame, which the
    decoders answered with a light band along the image's border)."""
    w, b = torch.randn(4, 3, 3, 3), torch.randn(4)
    rgb = torch.rand(1, 3, 9, 11)
    bgr255 = rgb[:, [2, 1, 0]] * 255.0 - CAFFE_MEAN_BGR.view(1, 3, 1, 1)
    encoder = VGGEncoder((4, 4, 4, 4))
    with torch.no_grad():
        encoder.features[0].weight.copy_(fold_caffe(w, b)[0])
        encoder.features[0].bias.copy_(fold_caffe(w, b)[1])
        error = (encoder.features[0](rgb) - F.conv2d(bgr255, w, b, padding=1)).abs()
    assert error.max() < 1e-2, f"off by up to {error.max():.1f}, by {error[..., 1:-1, 1:-1].max():.2g} away from the border"


def test_torchvision_folding_equals_original_preprocessing():
    w, b = torch.randn(4, 3, 3, 3), torch.randn(4)
    rgb = torch.rand(1, 3, 9, 9)
    normed = (rgb - TORCHVISION_MEAN.view(1, 3, 1, 1)) / TORCHVISION_STD.view(1, 3, 1, 1)
    fw, fb = fold_torchvision(w, b)
    assert torch.allclose(_interior(F.conv2d(rgb, fw, fb, padding=1)), _interior(F.conv2d(normed, w, b, padding=1)), atol=1e-4)


def test_torchvision_state_dict_import(tmp_path):
    encoder = VGGEncoder()
    state = {}
    widths = {0: (64, 3), 2: (64, 64), 5: (128, 64), 7: (128, 128), 10: (256, 128), 12: (256, 256), 14: (256, 256),
              17: (512, 256), 19: (512, 512), 21: (512, 512), 24: (512, 512), 26: (512, 512), 28: (512, 512)}
    for i in CONV_INDICES:
        o, c = widths[i]
        state[f"features.{i}.weight"] = torch.randn(o, c, 3, 3) * 0.01
        state[f"features.{i}.bias"] = torch.zeros(o)
    pth = tmp_path / "vgg16-397923af.pth"
    torch.save(state, pth)
    out = import_vgg16(tmp_path / "vgg.safetensors", torchvision_pth=pth)
    load_vgg_into(encoder, out)
    assert torch.allclose(encoder.features[2].weight, state["features.2.weight"])
    bad = tmp_path / "other.pth"
    torch.save({"x": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="not a torchvision VGG16"):
        import_vgg16(tmp_path / "x.safetensors", torchvision_pth=bad)


def test_onnx_checksum_is_enforced(tmp_path):
    fake = tmp_path / "vgg16.onnx"
    fake.write_bytes(b"not the pinned file")
    with pytest.raises(ValueError, match="SHA-256"):
        read_onnx(fake)


def test_loading_a_foreign_file_as_vgg_fails(tmp_path):
    from gan_core.testing import write_tiny_weights

    with pytest.raises(ValueError, match="not a VGG16 file"):
        load_vgg_into(VGGEncoder(), write_tiny_weights(tmp_path / "t.safetensors"))
