"""Guided-colour evaluation: the protocol's hints, references and pan, the training-free baselines, the
reference-pairs file, and `train eval-guided` end to end on a generated data folder with tiny weights."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gan_core.color import lightness_ab_to_rgb, rgb_to_lab
from gan_core.testing import write_tiny_weights
from train import baselines, eval_guided, metrics

REPO = Path(__file__).resolve().parents[1]


def _photo(h=48, w=64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, 1, 1, generator=gen)
    ramp = torch.linspace(0, 1, w).view(1, 1, 1, w)
    return (0.6 * base + 0.4 * ramp * torch.rand(1, 3, h, 1, generator=gen)).clamp(0, 1)


def test_hints_follow_the_protocol():
    real = torch.rand(1, 3, 40, 50)
    hints = eval_guided.sample_hints(real, 30, seed=1, name="a.jpg")
    assert len(hints.patches) == 30
    ab_true = rgb_to_lab(real)[:, 1:]
    for y, x, side in hints.patches:
        assert 1 <= side <= 9 and 0 <= y <= 40 - side and 0 <= x <= 50 - side
    y, x, side = hints.patches[-1]  # the last patch is never overwritten: it holds its own patch's mean true ab
    expected = ab_true[..., y : y + side, x : x + side].mean(dim=(2, 3))
    assert torch.allclose(hints.ab[..., y, x], expected, atol=1e-4)
    assert hints.mask.sum() <= sum(s * s for _, _, s in hints.patches)
    assert (hints.ab * (1 - hints.mask)).abs().max() == 0
    again = eval_guided.sample_hints(real, 30, seed=1, name="a.jpg")
    other = eval_guided.sample_hints(real, 30, seed=2, name="a.jpg")
    assert again.patches == hints.patches and other.patches != hints.patches


def test_references_a_and_b():
    real = torch.rand(1, 3, 100, 200)
    a = eval_guided.reference_mirrored_crop(real)
    assert a.shape[-2:] == (round(0.7 * 85), round(0.7 * 170))
    b = eval_guided.reference_mirrored_left(real)
    assert b.shape[-2:] == (100, 110)
    assert torch.equal(b[..., 0], real[..., 109]) and torch.equal(b[..., -1], real[..., 0])


def test_pan_frames_and_flicker():
    photo = torch.rand(1, 3, 30, 200)
    frames = eval_guided.pan_frames(photo, frames=16, step=8)
    assert frames.shape == (16, 3, 30, 200 - 15 * 8)
    assert torch.equal(frames[3, ..., :-8], frames[2, ..., 8:])  # the scene moves 8 px left per frame
    ab = rgb_to_lab(frames)[:, 1:]
    assert metrics.flicker(ab, (0, 8)).max() < 1e-4  # aligned, the real frames do not change at all
    noisy = ab + torch.randn_like(ab)
    assert metrics.flicker(noisy, (0, 8)).mean() > 0.5
    assert metrics.flicker(ab, (0, 0)).mean() > 1.0  # misaligned, they do
    with pytest.raises(ValueError, match="too narrow"):
        eval_guided.pan_frames(torch.rand(1, 3, 30, 100))
    assert eval_guided.percentile(torch.arange(1.0, 101.0), 0.95) == 95.0


def test_propagation_matches_the_definition_and_respects_edges():
    lightness = torch.rand(1, 1, 7, 9) * 100
    ab = torch.randn(1, 2, 7, 9) * 20
    mask = (torch.rand(1, 1, 7, 9) < 0.3).float()
    out = baselines.propagate_hints(lightness, ab, mask, sigma_space=3.0, sigma_range=20.0, prior_weight=0.1)
    ys, xs = torch.meshgrid(torch.arange(7.0), torch.arange(9.0), indexing="ij")
    for y, x in ((0, 0), (3, 4), (6, 8)):
        w = torch.exp(-((ys - y) ** 2 + (xs - x) ** 2) / 18 - (lightness[0, 0] - lightness[0, 0, y, x]) ** 2 / 800) * mask[0, 0]
        assert torch.allclose(out[0, :, y, x], (w * ab[0]).sum((1, 2)) / (w.sum() + 0.1), atol=1e-4)
    # a dark left half and a bright right half; one blue hint on the left colours the left only
    light = torch.full((1, 1, 20, 40), 30.0)
    light[..., 20:] = 80.0
    hint_ab, hint_mask = torch.zeros(1, 2, 20, 40), torch.zeros(1, 1, 20, 40)
    hint_ab[:, 1, 10, 15], hint_mask[:, :, 10, 15] = -40.0, 1.0
    spread = baselines.propagate_hints(light, hint_ab, hint_mask, sigma_space=20.0, sigma_range=6.0, prior_weight=0.05)
    assert spread[0, 1, 10, 5] < -30 and spread[0, 1, 10, 25].abs() < 1.0
    assert baselines.propagate_hints(light, hint_ab, torch.zeros_like(hint_mask)).abs().max() == 0  # no hints: grey


def test_baselines_gain_over_grey_on_a_smooth_photo():
    real = _photo(48, 64)
    lab = rgb_to_lab(real)
    grey = lightness_ab_to_rgb(lab[:, :1], torch.zeros_like(lab[:, 1:]))
    hints = eval_guided.sample_hints(real, 100, seed=0)
    coloured = baselines.hints_baseline(grey, hints.ab, hints.mask, sigma_space=8.0)
    assert metrics.psnr(coloured, real) > metrics.psnr(grey, real) + 3.0


def test_reference_baseline_recovers_the_colours_of_its_own_photo():
    from gan_core.testing import tiny_model

    encoder = tiny_model(0).encoder.eval()
    real = _photo(64, 64, seed=3)
    lab = rgb_to_lab(real)
    grey = lightness_ab_to_rgb(lab[:, :1], torch.zeros_like(lab[:, 1:]))
    out = baselines.reference_baseline(encoder, grey, [real])
    assert out.shape == real.shape
    assert torch.allclose(rgb_to_lab(out)[:, :1], lab[:, :1], atol=0.5)  # the target's own lightness
    assert metrics.psnr(out, real) > metrics.psnr(grey, real)


def test_committed_reference_pairs_are_well_formed():
    doc = json.loads(eval_guided.DEFAULT_PAIRS.read_text())
    targets = [p["target"] for p in doc["pairs"]]
    assert len(targets) == len(set(targets)) >= 20
    for pair in doc["pairs"]:
        assert pair["target"] != pair["reference"] and pair["why"]
        for name in (pair["target"], pair["reference"]):
            assert name.startswith(("photos/eval/", "eval_extra/")), name  # held-out photos only


def test_pairs_must_be_held_out(tmp_path):
    records = [{"file": "photos/eval/a.jpg", "split": "eval", "kind": "photo"},
               {"file": "photos/eval/b.jpg", "split": "eval", "kind": "photo"},
               {"file": "photos/train/c.jpg", "split": "train", "kind": "photo"}]
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"pairs": [{"target": "photos/eval/a.jpg", "reference": "photos/eval/b.jpg"}]}))
    assert eval_guided.load_pairs(good, tmp_path, records) == {"photos/eval/a.jpg": "photos/eval/b.jpg"}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"pairs": [{"target": "photos/eval/a.jpg", "reference": "photos/train/c.jpg"}]}))
    with pytest.raises(ValueError, match="not a held-out photo"):
        eval_guided.load_pairs(bad, tmp_path, records)
    bad.write_text(json.dumps({"pairs": [{"target": "photos/eval/a.jpg", "reference": "photos/eval/a.jpg"}]}))
    with pytest.raises(ValueError, match="paired with itself"):
        eval_guided.load_pairs(bad, tmp_path, records)
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a reference-pairs file"):
        eval_guided.load_pairs(bad, tmp_path, records)
    with pytest.raises(FileNotFoundError):
        eval_guided.load_pairs(tmp_path / "none.json", tmp_path, records)


class _Runner:
    def __init__(self, error: Exception | None):
        self.error, self.calls = error, 0

    def colorize(self, image, *, render_size, **guidance):
        self.calls += 1
        if guidance and self.error is not None:
            raise self.error
        return image


def test_guided_rows_say_why_they_are_missing():
    grey = torch.rand(1, 3, 8, 8)
    old = eval_guided.Guided(_Runner(ValueError("colour hints need guided weights, and these weights predate it")), 512)
    assert old("hints", grey, hints=object()) is None and "predate it" in old.missing["hints"]
    assert old("hints", grey, hints=object()) is None and old.runner.calls == 1  # asked once, then remembered
    with pytest.raises(ValueError, match="broken"):
        eval_guided.Guided(_Runner(ValueError("broken hints")), 512)("hints", grey, hints=object())
    assert eval_guided.Guided(_Runner(None), 512)("reference", grey, reference=[grey]) is grey


def _mini_data(root: Path) -> Path:
    rng = np.random.default_rng(0)
    records = []
    for split, folder, n in (("eval", "photos/eval", 3), ("train", "photos/train", 2)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            name = f"{folder}/p{i}.png"
            y, x = np.mgrid[0:48, 0:200]
            img = np.stack([x / 200, y / 48, np.full_like(x, 0.3, dtype=float)], -1) * 0.7 + 0.3 * rng.random((48, 200, 3))
            Image.fromarray((img * 255).astype(np.uint8)).save(root / name)
            records.append({"file": name, "split": split, "kind": "photo"})
    (root / "manifest.json").write_text(json.dumps(records))
    (root / "pairs.json").write_text(json.dumps({"pairs": [{"target": "photos/eval/p0.png", "reference": "photos/eval/p1.png"}]}))
    return root


def test_eval_guided_end_to_end(tmp_path):
    data = _mini_data(tmp_path / "data")
    weights = write_tiny_weights(tmp_path / "w.safetensors")
    out = tmp_path / "guided"
    proc = subprocess.run([sys.executable, "-m", "train", "eval-guided", str(weights), "--data", str(data), "--out", str(out),
                           "--pairs", str(data / "pairs.json"), "--size", "200", "--hints", "1", "10", "--seeds", "0", "1",
                           "--pan-photo", "photos/eval/p2.png", "-q"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "| hints_10 | 3 |" in proc.stdout and "| reference_c | 1 |" in proc.stdout and "| per-frame |" in proc.stdout
    rows = list(csv.DictReader(open(out / "guided.csv")))
    got = {(r["condition"], r["method"]) for r in rows}
    assert {("hints_1", "propagation"), ("hints_10", "spread_input"), ("reference_a", "matching"), ("reference_b", "matching"),
            ("reference_c", "matching"), ("automatic", "ours"), ("automatic", "grey")} <= got
    hints10 = next(r for r in rows if r["condition"] == "hints_10" and r["method"] == "propagation")
    assert int(hints10["photos"]) == 3 and int(hints10["samples"]) == 6  # three photos x two seeds
    pan = list(csv.DictReader(open(out / "pan.csv")))
    assert pan[0]["colour"] == "per-frame" and pan[-1]["colour"] == "real frames" and float(pan[-1]["flicker_mean"]) == 0.0
    with Image.open(out / "guided_sheet.png") as sheet, Image.open(out / "hints_sheet.png") as marks:
        assert sheet.width == 5 * 192 and marks.width == 2 * 384  # no model columns; hints sheet: 1 and 10 hints
    report = json.loads((out / "guided.json").read_text())
    assert report["guided"]["per_photo"] and report["decoding"]["temperature"] == 0.38
    bad = subprocess.run([sys.executable, "-m", "train", "eval-guided", str(weights), "--data", str(data), "--out", str(out),
                          "--pan-photo", "nowhere.png", "--hints", "1", "--seeds", "0", "--limit", "1", "-q"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "not a held-out photo" in bad.stderr  # the default pairs name photos this folder lacks


def test_eval_guided_scores_a_guided_model(tmp_path):
    import dataclasses

    from gan_core.config import tiny_config

    data = _mini_data(tmp_path / "data")
    weights = write_tiny_weights(tmp_path / "w.safetensors", config=dataclasses.replace(tiny_config(), guided=True))
    out = tmp_path / "guided"
    proc = subprocess.run([sys.executable, "-m", "train", "eval-guided", str(weights), "--data", str(data), "--out", str(out),
                           "--pairs", str(data / "pairs.json"), "--size", "200", "--hints", "10", "--seeds", "0", "--limit", "1",
                           "--pan-photo", "photos/eval/p2.png", "-q"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = {(r["condition"], r["method"]) for r in csv.DictReader(open(out / "guided.csv"))}
    assert {("hints_10", "ours"), ("reference_a", "ours"), ("reference_b", "ours"), ("reference_c", "ours")} <= rows
    assert "| hints_10 | 1 |" in proc.stdout and "no model rows" not in proc.stdout
    pan = [r["colour"] for r in csv.DictReader(open(out / "pan.csv"))]
    assert "reference-propagated (video)" in pan
    with Image.open(out / "guided_sheet.png") as sheet:  # ours beside each baseline: seven columns, not five
        assert sheet.width == 7 * 192


def test_fusion_sweep_scores_training_photos_only(tmp_path, monkeypatch):
    import dataclasses

    from gan_core import DualGANRunner, load_weights
    from gan_core.config import tiny_config
    from gan_core.guidance import GuidanceFusion
    from train import fusion_sweep

    data = _mini_data(tmp_path / "data")
    weights = write_tiny_weights(tmp_path / "w.safetensors", config=dataclasses.replace(tiny_config(), guided=True))
    read = []
    monkeypatch.setattr(fusion_sweep, "load_image", lambda path, size: read.append(path) or eval_guided.load_image(path, size))
    runner = DualGANRunner(load_weights(weights)[0])
    rows = fusion_sweep.sweep(runner, data, photos=2, size=200, render_size=128, powers=(0.0, 1.0), progress=False)
    assert read and all("photos/train" in str(p) for p in read)
    conditions = {(r["knob"], r["condition"]) for r in rows}
    hint_conditions = ("hints_1", "hints_10", "hints_100")
    assert conditions == ({(k, c) for k in ("hint_power", "hint_match_power", "hint_space_sigmas", "hint_range_sigmas")
                           for c in hint_conditions}
                          | {(k, c) for k in ("reference_power", "reference_lightness_weight") for c in ("reference_a", "reference_b")}
                          | {("guided_chroma", c) for c in hint_conditions + ("reference_a", "reference_b")})
    assert all(r["photos"] == 2 for r in rows)
    assert len(rows) == 2 * 3 + 2 * 2 + 6 * 3 + 4 * 3 + 6 * 3 + 6 * 2 + 4 * 5
    assert {r["value"] for r in rows if r["knob"] == "hint_space_sigmas"} >= {"0.02, 0.05, 0.1, 0.3, 1", "0.03, 0.1, 0.3, 1"}
    gains = {(r["knob"], r["condition"], r["value"]): r["gain_db"] for r in rows}
    assert gains[("hint_power", "hints_100", "0")] != gains[("hint_power", "hints_100", "1")]  # the power changes the colours
    # the filter and the spread change the colours too
    assert gains[("guided_chroma", "reference_a", "radius 2, eps 0.001")] != gains[("guided_chroma", "reference_a", "radius 8, eps 0.01")]
    assert gains[("hint_range_sigmas", "hints_100", "near 0.02, far 0.08")] != gains[("hint_range_sigmas", "hints_100", "near 0.08, far 0.08")]
    assert runner.guidance_fusion == GuidanceFusion()  # the runner is handed back with the defaults
    assert (runner.guided_chroma_radius, runner.guided_chroma_eps, runner.hint_range_sigmas,
            runner.reference_lightness_weight) == (4, 1e-3, (0.03, 0.08), 25.0)
    assert "| hint_power | 0 |" in fusion_sweep.write_table(rows, 2)
    only = fusion_sweep.sweep(runner, data, photos=1, size=200, render_size=128, only=["guided_chroma"], progress=False)
    assert {r["knob"] for r in only} == {"guided_chroma"}
    plain = write_tiny_weights(tmp_path / "plain.safetensors")
    proc = subprocess.run([sys.executable, "-m", "train", "sweep-guidance-fusion", str(plain), "--data", str(data),
                           "--out", str(tmp_path / "sweep"), "-q"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "predate guided colour" in proc.stderr and "Traceback" not in proc.stderr


def test_guided_sheet_leaves_out_the_conditions_not_run(tmp_path):
    # `train eval-guided --hints 1` runs no 10-hint condition: the sheet shows the reference columns only.
    image = torch.rand(1, 3, 32, 48)
    shown = {"hints_10": {}, "reference_a": {"ours": image, "baseline": image}}
    eval_guided._write_sheets([(image, image, shown, image)], [[image]], [1], 0, tmp_path)
    with Image.open(tmp_path / "guided_sheet.png") as sheet:
        assert sheet.width == 5 * 192


def test_reference_bank_probe_retrieves_training_photos_only(tmp_path):
    import dataclasses

    from gan_core.config import tiny_config

    data = _mini_data(tmp_path / "data")
    weights = write_tiny_weights(tmp_path / "w.safetensors", config=dataclasses.replace(tiny_config(), guided=True))
    out = tmp_path / "bank"
    proc = subprocess.run([sys.executable, "-m", "train", "probe-reference-bank", str(weights), "--data", str(data),
                           "--out", str(out), "--k", "1", "--powers", "0.25", "4", "--size", "200", "-q"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "| automatic |" in proc.stdout and "| bank_power_4 |" in proc.stdout
    rows = list(csv.DictReader(open(out / "reference_bank.csv")))
    assert [r["photo"] for r in rows] == [f"photos/eval/p{i}.png" for i in range(3)]
    assert all(r["references"].startswith("photos/train/") for r in rows)  # never a held-out photo
    assert all(float(r["bank_power_0.25"]) != float(r["automatic"]) for r in rows)  # the references took effect


def test_grey_descriptor_ignores_colour():
    from gan_core.model import DualGAN
    from gan_core.config import tiny_config
    from train.reference_bank_probe import grey_descriptor

    encoder = DualGAN(tiny_config()).encoder.eval()
    photo = _photo(64, 80, seed=3)
    lab = rgb_to_lab(photo)
    recoloured = lightness_ab_to_rgb(lab[:, :1], lab[:, 1:].flip(1))  # same lightness, other colours
    a, b = grey_descriptor(encoder, photo), grey_descriptor(encoder, recoloured)
    assert torch.allclose(a.norm(), torch.tensor(1.0)) and torch.allclose(a, b, atol=1e-3)
