"""Trainer tests on the CPU with a tiny architecture and generated images (seconds each)."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from gan_core.chroma import AbGrid
from gan_core import DualGANRunner, StyleSpec
from gan_core.weights import load_style_file, load_weights
from train import losses
from train.cli import main as train_main

REPO = Path(__file__).resolve().parents[1]


def _base_args(dirs: Path, run: Path, steps: int, *extra: str) -> list[str]:
    return [
        "base", "--photos", str(dirs / "photos"), "--styles", str(dirs / "styles"), "--run-dir", str(run),
        "--architecture", "tiny", "--steps", str(steps), "--batch", "2", "--crop", "64", "--workers", "0",
        "--sample-every", "0", "--log-every", "1", *extra,
    ]


# ---- losses against hand-computed values ---------------------------------------------------

def test_content_loss_is_mean_squared_error():
    a = {"x": torch.zeros(1, 2, 2, 2)}
    b = {"x": torch.full((1, 2, 2, 2), 3.0)}
    # |0 - 3|^2 relative to the target's mean square 9
    assert losses.content_loss(a, b, ["x"]).item() == pytest.approx(1.0)
    assert losses.content_loss(b, {"x": torch.full((1, 2, 2, 2), 2.0)}, ["x"]).item() == pytest.approx(1.0 / 4.0)


def test_style_loss_hand_computed():
    # Two channels over four pixels: f has means (1, 0) and covariance [[0, 0], [0, 1]];
    # g = 2 f has means (2, 0) and covariance [[0, 0], [0, 4]].
    f = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, -1.0, 1.0, -1.0]]).view(1, 2, 2, 2)
    g = 2 * f
    # distance: (1 - 2)^2 / 2 + (1 - 4)^2 / 4 = 0.5 + 2.25; scale: 4 / 2 + 16 / 4 = 6
    assert losses.style_loss({"x": f}, {"x": g}, ["x"]).item() == pytest.approx(2.75 / 6)
    assert losses.style_loss({"x": f}, {"x": f}, ["x"]).item() == pytest.approx(0.0)


def test_gan_losses_hand_computed():
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([-2.0, 0.5])
    assert losses.d_loss(real, fake, "hinge").item() == pytest.approx((0 + 1) / 2 + (0 + 1.5) / 2)
    assert losses.g_loss(fake, "hinge").item() == pytest.approx(0.75)
    assert losses.d_loss(real, fake, "lsgan").item() == pytest.approx(0.5 * (1 + 1) / 2 + 0.5 * (4 + 0.25) / 2)
    assert losses.g_loss(fake, "lsgan").item() == pytest.approx(0.5 * (9 + 0.25) / 2)
    with pytest.raises(ValueError, match="unknown GAN loss"):
        losses.d_loss(real, fake, "wgan")


def test_total_variation_hand_computed():
    img = torch.tensor([[0.0, 1.0], [0.0, 1.0]]).view(1, 1, 2, 2)
    assert losses.total_variation(img).item() == pytest.approx(0.0 + 1.0)


def test_histogram_loss_zero_for_same_and_positive_for_different():
    grid = AbGrid(8)
    ab = torch.randn(1, 2, 8, 8) * 30
    assert losses.color_histogram_loss(ab, ab, grid).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.color_histogram_loss(ab, -ab + 50, grid).item() > 0.5


def test_chroma_cross_entropy_prefers_the_true_bin_and_rebalancing_weights():
    grid = AbGrid(8)
    ab = torch.full((1, 2, 4, 4), 40.0)
    right = torch.zeros(1, grid.num_bins, 4, 4)
    right[:, grid.bin_index(ab)[0, 0, 0]] = 10.0
    wrong = torch.zeros(1, grid.num_bins, 4, 4)
    wrong[:, 0] = 10.0
    assert losses.chroma_cross_entropy(right, ab, grid) < losses.chroma_cross_entropy(wrong, ab, grid)
    prior = torch.zeros(grid.num_bins)
    prior[27] = 0.9
    prior[0] = 0.1
    w = losses.rebalancing_weights(prior, bins_per_axis=8)
    assert w[0] > w[27]  # the rare colour weighs more
    unsmoothed = losses.rebalancing_weights(prior, smooth_sigma=0, bins_per_axis=8)
    assert (unsmoothed * prior).sum().item() == pytest.approx(1.0, rel=1e-5)  # E_prior[w] = 1
    # mix 0.5 over 64 bins: weight 1 / (0.5 p + 0.5 / 64), then normalised
    raw = 1 / (0.5 * prior + 0.5 / 64)
    assert unsmoothed[0].item() == pytest.approx((raw / (raw * prior).sum())[0].item(), rel=1e-5)


# ---- training runs --------------------------------------------------------------------------

def _read_log(run: Path) -> list[dict]:
    with (run / "losses.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_short_run_losses_fall(image_dirs, tmp_path):
    run = tmp_path / "run"
    assert train_main(_base_args(image_dirs, run, 60, "--adv-start", "1000", "--lr-g", "0.003")) == 0
    rows = _read_log(run)
    ce = [float(r["ce"]) for r in rows]
    style = [float(r["style"]) for r in rows]
    hist = [float(r["hist"]) for r in rows]
    assert np.mean(ce[-15:]) < 0.95 * np.mean(ce[:15])
    assert np.mean(hist[-15:]) < 0.95 * np.mean(hist[:15])
    assert np.mean(style[-10:]) < 0.9 * np.mean(style[:10])


def test_kill_and_resume_is_exact(image_dirs, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    common = ("--adv-start", "3", "--checkpoint-every", "3")
    assert train_main(_base_args(image_dirs, straight, 8, *common)) == 0
    assert train_main(_base_args(image_dirs, resumed, 5, *common)) == 0  # stops (as if killed) after 5
    assert train_main(_base_args(image_dirs, resumed, 8, *common, "--resume")) == 0
    a = load_file(straight / "checkpoint.safetensors")
    b = load_file(resumed / "checkpoint.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed run differs from the uninterrupted one"


def test_existing_run_needs_resume_and_same_settings(image_dirs, tmp_path, capsys):
    run = tmp_path / "run"
    assert train_main(_base_args(image_dirs, run, 2)) == 0
    assert train_main(_base_args(image_dirs, run, 4)) == 2
    assert "--resume" in capsys.readouterr().err
    assert train_main(_base_args(image_dirs, run, 4, "--resume", "--lr-g", "0.5")) == 2
    assert "lr_g" in capsys.readouterr().err


def test_unwritable_run_dir_fails_before_training(image_dirs, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert train_main(_base_args(image_dirs, blocker / "run", 2)) == 2
    err = capsys.readouterr().err
    assert "cannot be written" in err and "Traceback" not in err


def test_export_then_style_then_inference(image_dirs, tmp_path):
    run = tmp_path / "run"
    weights = tmp_path / "model.safetensors"
    assert train_main(_base_args(image_dirs, run, 4, "--adv-start", "2", "--export", str(weights))) == 0
    again = tmp_path / "again.safetensors"
    assert train_main(["export", str(run / "checkpoint.safetensors"), str(again), "--dtype", "fp32", "--temperature", "0.5"]) == 0
    model, info = load_weights(weights)
    assert info.training["steps"] == 4 and info.stored_dtype == "F16"
    again_model, again_info = load_weights(again)
    assert again_info.stored_dtype == "F32" and again_model.config.annealed_temperature == 0.5
    assert model.config.annealed_temperature == 0.38
    style_file = tmp_path / "stripes.safetensors"
    args = ["style", "--base", str(weights), "--style", str(image_dirs / "styles" / "s0.jpg"), "--name", "stripes",
            "--content", str(image_dirs / "photos"), "--steps", "6", "--crop", "64", "--licence", "CC0-1.0"]
    assert train_main(args + ["--out", str(style_file)]) == 0
    assert load_style_file(style_file, model) == ["stripes"]
    combined = tmp_path / "with_style.safetensors"
    assert train_main(args + ["--out", str(combined), "--into-model"]) == 0
    model2, info2 = load_weights(combined)
    assert info2.styles["stripes"]["licence"] == "CC0-1.0"
    runner = DualGANRunner(model2)
    image = torch.rand(1, 3, 45, 70)
    code, adapter = runner.style_from_name("stripes")
    out = runner.stylize(image, StyleSpec(code, adapter, 1.0), render_size=64)
    assert out.shape == image.shape and torch.isfinite(out).all()
    assert runner.colorize(image).shape == image.shape


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_gloo_ddp(image_dirs, tmp_path):
    run = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "train", *_base_args(image_dirs, run, 4, "--adv-start", "2")]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _read_log(run)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    state = load_file(run / "checkpoint.safetensors")
    assert any(k.startswith("mod.generator.color_decoder") for k in state)
