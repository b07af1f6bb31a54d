"""The independent style measures (Lab sliced Wasserstein, EfficientNet-Lite0 Gram texture), the import of
the EfficientNet-Lite0 weights, and `train eval` with held-out paintings, a degraded copy and several decodings."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gan_core.testing import write_tiny_weights
from gan_core.weights import atomic_save_safetensors
from train import effnet_import, eval_style, metrics
from train.effnet_lite import EfficientNetLite0, SameConv

from .mini_data import write_data_folder

REPO = Path(__file__).resolve().parents[1]


def test_sliced_wasserstein_compares_colour_distributions():
    a = torch.rand(1, 3, 24, 32)
    assert metrics.sliced_wasserstein_lab(a, a).item() == 0.0
    shuffled = a.flatten(2)[..., torch.randperm(24 * 32)].view(1, 3, 24, 32)
    assert metrics.sliced_wasserstein_lab(a, shuffled).item() < 1e-4  # a distribution: pixel order does not matter
    half = a[..., :, ::2].repeat_interleave(2, dim=-1)  # another size, same colours
    assert metrics.sliced_wasserstein_lab(a, a[..., :, :16]).item() < metrics.sliced_wasserstein_lab(a, a * 0.5).item()
    assert metrics.sliced_wasserstein_lab(half, a).item() < 3.0
    grey, red, orange = (torch.tensor(c).view(1, 3, 1, 1).expand(1, 3, 8, 8) for c in ([0.5] * 3, [0.8, 0.2, 0.2], [0.8, 0.5, 0.2]))
    assert metrics.sliced_wasserstein_lab(red, orange) < metrics.sliced_wasserstein_lab(red, grey)


def test_efficientnet_lite0_layout_and_same_padding():
    net = EfficientNetLite0()
    state = net.state_dict()
    assert state["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1) and "_blocks.0._expand_conv.weight" not in state
    assert sum(p.numel() for p in net.parameters()) == 4_652_008  # EfficientNet-Lite0's published size
    conv = SameConv(1, 1, 3, stride=2, bias=False)
    for size in (7, 8, 15):
        assert conv(torch.zeros(1, 1, size, size)).shape[-1] == -(-size // 2)  # TensorFlow "same": ceil(size / stride)
    feats = net.eval().features(torch.rand(1, 3, 64, 48))
    assert {k: tuple(v.shape[1:]) for k, v in feats.items()} == {"stage1": (16, 32, 24), "stage2": (24, 16, 12),
                                                                 "stage3": (40, 8, 6), "stage5": (112, 4, 3)}


def test_texture_distance():
    net = EfficientNetLite0().eval()
    painting = torch.rand(1, 3, 64, 64)
    grams = eval_style.painting_grams(net, painting)
    assert eval_style.texture_distance(net, painting, grams) < 1e-8
    flat = torch.full((1, 3, 48, 48), 0.5)
    assert eval_style.texture_distance(net, flat, grams) > eval_style.texture_distance(net, painting.flip(-1), grams)


def test_named_styles_apply_to_their_own_painting():
    styles = {"starry_night": {"source": "OpenCV sample data"}, "mine": {"source": "wave.jpg"}}
    assert eval_style.named_style_for(Path("styles_eval/opencv_starry_night.jpg"), styles) == "starry_night"
    assert eval_style.named_style_for(Path("x/wave.jpg"), styles) == "mine"
    assert eval_style.named_style_for(Path("x/kandinsky.jpg"), styles) is None


def test_effnet_import_refuses_unverified_files(tmp_path):
    fake = tmp_path / "fake.pth"
    fake.write_bytes(b"not the pinned file")
    with pytest.raises(ValueError, match="refusing unverified weights"):
        effnet_import.read_pth(fake)
    with pytest.raises(FileNotFoundError, match="import-effnet-lite0"):
        effnet_import.load_effnet(tmp_path / "none.safetensors")
    other = tmp_path / "other.safetensors"
    atomic_save_safetensors({"x": torch.zeros(1)}, other, {"something": "else"})
    with pytest.raises(ValueError, match="not an EfficientNet-Lite0 file"):
        effnet_import.load_effnet(other)
    assert hashlib.sha256(b"").hexdigest() != effnet_import.PTH_SHA256


def _random_effnet(path: Path) -> Path:
    torch.manual_seed(0)
    state = {k: v for k, v in EfficientNetLite0().state_dict().items() if not k.endswith("num_batches_tracked")}
    atomic_save_safetensors(state, path, {effnet_import.MARKER: "1"})
    return path


def test_effnet_file_round_trip(tmp_path):
    path = _random_effnet(tmp_path / "e.safetensors")
    net = effnet_import.load_effnet(path)
    assert not net.training and not any(p.requires_grad for p in net.parameters())


def test_eval_with_held_out_paintings_degraded_copy_and_decodings(tmp_path):
    write_data_folder(tmp_path, (("eval", "photo", "photos/eval", 2), ("train", "photo", "photos/train", 2),
                                 ("train", "painting", "styles", 1), ("eval", "painting", "styles_eval", 2)))
    weights = write_tiny_weights(tmp_path / "w.safetensors", style_names=("painting1",))
    texture = _random_effnet(tmp_path / "effnet.safetensors")
    out = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "train", "eval", str(weights), "--data", str(tmp_path), "--out", str(out),
                           "--style-photos", "1", "--style-paintings", "2", "--no-peer", "--degraded", "--texture-net", str(texture),
                           "--chroma-confidence", "0", "0.5", "-q"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    style = report["style"]
    assert style["painting_split"] == "held-out paintings" and all(p.startswith("styles_eval/") for p in style["paintings"])
    assert {"colour_swd", "texture_gram", "style_loss", "content_loss"} <= set(style["ours"])
    assert style["named"]["pairs"] == 1  # the tiny file's style "painting1" applies to styles_eval/painting1.png only
    assert style["photo"]["pairs"] == 2 and style["photo"]["content_loss"] < 1e-6
    assert style["ours_raw"]["pairs"] == 2  # the decoder's output without the palette transfer, beside ours
    from PIL import Image
    with Image.open(out / "style_sheet.png") as sheet:  # photo | painting | ours | ours without the transfer
        assert sheet.width == 4 * 192
    degraded = report["degraded"]
    assert degraded["degraded"] and degraded["table"]["grey"]["cf"] < 1e-3  # the degraded input is grey
    assert degraded["table"]["grey"]["psnr"] != report["colour"]["table"]["grey"]["psnr"]
    assert [d["decoding"]["chroma_confidence"] for d in report["decodings"]] == [0.0, 0.5]
    text = (out / "report.md").read_text()
    assert "degraded scan copy" in text and "Decodings compared" in text and "EffNet-Lite0" in text
    assert (out / "degraded_sheet.png").exists() and (out / "colour_sheet_cc0.5.png").exists()
    bad = subprocess.run([sys.executable, "-m", "train", "eval", str(weights), "--data", str(tmp_path), "--out", str(out),
                          "--no-style", "--chroma-confidence", "2", "-q"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "chroma_confidence" in bad.stderr and "Traceback" not in bad.stderr
