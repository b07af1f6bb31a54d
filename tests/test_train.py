"""Trainer tests on the CPU with a tiny architecture and generated images (seconds each)."""

from __future__ import annotations

import json
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
from gan_core.model import DualGAN
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
    # strength 0: every bin weighs 1 (plain cross-entropy); 0.5: the square root of the weights, normalised
    assert torch.allclose(losses.rebalancing_weights(prior, bins_per_axis=8, strength=0), torch.ones(64))
    half = losses.rebalancing_weights(prior, smooth_sigma=0, bins_per_axis=8, strength=0.5)
    assert half[0].item() == pytest.approx((raw.sqrt() / (raw.sqrt() * prior).sum())[0].item(), rel=1e-5)
    assert 1 < half[0] < unsmoothed[0]


def test_ab_regression_loss_is_squared_error_in_bin_widths():
    truth = torch.zeros(1, 2, 4, 4)
    assert losses.ab_regression_loss(truth, truth).item() == 0
    off = truth.clone()
    off[:, 0] = 20.0  # a off by two bin widths, b right: (2^2 + 0) / 2
    assert losses.ab_regression_loss(off, truth).item() == pytest.approx(2.0)
    # the squared error's best constant guess between two colours is their mean
    two = torch.cat([torch.full((1, 2, 2, 4), 30.0), torch.full((1, 2, 2, 4), -30.0)], dim=2)
    assert losses.ab_regression_loss(torch.zeros_like(two), two) < losses.ab_regression_loss(torch.full_like(two, 30.0), two)


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


@pytest.mark.parametrize("finetune", ["--no-finetune-encoder", "--finetune-encoder"])
def test_resume_from_an_init_file_is_exact(image_dirs, tmp_path, finetune):
    # With --init, the encoder (and so the frozen loss network) comes from the file, not from the seed:
    # a resume must restore the loss network the run started with, fine-tuned encoder or not.
    from gan_core.testing import write_tiny_weights

    init = write_tiny_weights(tmp_path / "tiny.safetensors")
    common = ("--init", str(init), "--fresh-style-decoder", "--adv-start", "3", "--checkpoint-every", "3", finetune,
              "--lr-encoder", "0.01")
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert train_main(_base_args(image_dirs, straight, 6, *common)) == 0
    assert train_main(_base_args(image_dirs, resumed, 3, *common)) == 0
    assert train_main(_base_args(image_dirs, resumed, 6, *common, "--resume")) == 0
    a = load_file(straight / "checkpoint.safetensors")
    b = load_file(resumed / "checkpoint.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed run differs from the uninterrupted one"
    logged = [[r["style"] for r in _read_log(run)] for run in (straight, resumed)]
    assert logged[0] == logged[1]


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
    assert train_main(_base_args(image_dirs, run, 4, "--adv-start", "2", "--defocus-prob", "0.5", "--export", str(weights))) == 0
    again = tmp_path / "again.safetensors"
    assert train_main(["export", str(run / "checkpoint.safetensors"), str(again), "--dtype", "fp32", "--temperature", "0.5"]) == 0
    model, info = load_weights(weights)
    assert info.training["steps"] == 4 and info.stored_dtype == "F16" and info.training["defocus_prob"] == 0.5
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
    content = info2.styles["stripes"]["content"]  # names no directory of the training machine
    assert not Path(content).is_absolute() and content.endswith("photos") and str(tmp_path) not in content
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


# ---- the run scaffold: resume or refuse ------------------------------------------------------

def test_run_folder_resumes_or_refuses(tmp_path):
    from train.run import RunFolder
    from train.settings import BaseSettings

    run_dir = tmp_path / "run"
    net = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(net.parameters())
    first = RunFolder(run_dir, BaseSettings(steps=10, lr_g=0.1), may_change=("steps",))
    assert first.start(False, modules={"net": net}, optimizers={"opt": opt}) == 0
    first.save(7, modules={"net": net}, optimizers={"opt": opt})
    stale = run_dir / ".checkpoint.safetensors.abc.tmp"
    stale.write_bytes(b"half a checkpoint")

    again = RunFolder(run_dir, BaseSettings(steps=20, lr_g=0.1), may_change=("steps",))
    assert not stale.exists()  # a killed write's leftovers go when the folder is opened
    with pytest.raises(FileExistsError, match="--resume"):
        again.start(False, modules={"net": net}, optimizers={"opt": opt})
    with torch.no_grad():
        net.weight.zero_()
    assert again.start(True, modules={"net": net}, optimizers={"opt": opt}) == 7  # steps may change
    assert net.weight.abs().sum() > 0  # the checkpoint's weights are back
    changed = RunFolder(run_dir, BaseSettings(steps=20, lr_g=0.5), may_change=("steps",))
    with pytest.raises(ValueError, match="lr_g"):
        changed.start(True, modules={"net": net}, optimizers={"opt": opt})


def test_csv_log_appends_on_resume_and_restarts_fresh(tmp_path):
    from train.run import CsvLog

    path = tmp_path / "losses.csv"
    log = CsvLog(path, ["step", "a", "b"])
    log.write({"step": 1, "a": 0.5})
    log.write({"step": 2, "a": 0.75})  # logged after the last checkpoint (step 1), then killed
    log.close()
    log = CsvLog(path, ["step", "a", "b"], resume_from=1)
    log.write({"step": 2, "b": 0.25})
    log.close()
    assert path.read_text().splitlines() == ["step,a,b", "1,0.50000,", "2,,0.25000"]
    CsvLog(path, ["step", "a", "b"]).close()
    assert path.read_text().splitlines() == ["step,a,b"]


def test_step_generator_depends_on_seed_and_step_only():
    from train.run import step_generator

    a = torch.rand(4, generator=step_generator(3, 10))
    assert torch.equal(a, torch.rand(4, generator=step_generator(3, 10)))
    assert not torch.equal(a, torch.rand(4, generator=step_generator(3, 11)))
    assert not torch.equal(a, torch.rand(4, generator=step_generator(4, 10)))


def test_image_cache_keeps_reduced_images_and_is_deterministic(image_dirs):
    from train.data import CropDataset, load_rgb, load_rgb_uint8

    cached = CropDataset(image_dirs / "photos", 32, scales=(0.5, 1.0), seed=1, cache=True)
    again = CropDataset(image_dirs / "photos", 32, scales=(0.5, 1.0), seed=1, cache=True)
    samples = [cached[g] for g in range(12)]
    assert all(s.shape == (3, 32, 32) and s.dtype == torch.float32 for s in samples)
    assert all(torch.equal(s, again[g]) for g, s in enumerate(samples))
    stored = list(cached._decoded.values())
    assert stored and all(t.dtype == torch.uint8 and min(t.shape[1:]) <= 64 for t in stored)  # short side <= 32 / 0.5
    # What is kept is a faithful reduction of the full image.
    path = image_dirs / "photos" / "p0.png"
    reduced = load_rgb_uint8(path, max_short=40).float() / 255
    full = torch.nn.functional.interpolate(load_rgb(path)[None], size=reduced.shape[1:], mode="bilinear", antialias=True)[0]
    assert min(reduced.shape[1:]) == 40 and (reduced - full).abs().mean() < 0.01


# ---- mixed precision --------------------------------------------------------------------------

def test_amp_picks_bf16_only_where_the_cpu_has_it(monkeypatch):
    from train import amp

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert amp.amp_dtype(cpu, cpu_bf16=True) is torch.bfloat16
    assert amp.amp_dtype(cpu, cpu_bf16=False) is None
    assert amp.amp_dtype(cpu, False, cpu_bf16=True) is None  # --no-amp
    assert amp.amp_dtype(cuda, cuda_bf16=True) is torch.bfloat16
    assert amp.amp_dtype(cuda, cuda_bf16=False) is torch.float16
    # Without injection it asks gan_core.precision's check, the one inference uses.
    monkeypatch.setattr(amp, "cpu_has_native_bf16", lambda: False)
    assert amp.Amp(cpu).dtype is None and amp.Amp(cpu).name == "fp32"
    monkeypatch.setattr(amp, "cpu_has_native_bf16", lambda: True)
    assert amp.Amp(cpu).dtype is torch.bfloat16 and amp.Amp(cpu).scaler is None


@pytest.mark.parametrize("native", [True, False])
def test_base_step_runs_networks_in_bf16_and_losses_in_fp32(image_dirs, monkeypatch, native):
    from train import amp
    from train.base import make_trainer
    from train.run import TrainingData
    from train.settings import BaseSettings

    monkeypatch.setattr(amp, "cpu_has_native_bf16", lambda: native)
    settings = BaseSettings(photos=str(image_dirs / "photos"), styles=str(image_dirs / "styles"), architecture="tiny",
                            batch=2, crop=64, workers=0, adv_start=0)
    data = TrainingData(settings)
    trainer, start = make_trainer(settings, data, None, resume=False, device=torch.device("cpu"))
    seen = []
    trainer.nets.loss_net.register_forward_hook(lambda m, i, out: seen.append(out["relu4_1"].dtype))
    rgb, paint = next(iter(data.batches(start=0, stop=1)))
    parts, *_ = trainer.step(rgb, paint, 0)
    assert seen == [torch.bfloat16 if native else torch.float32] * 2
    assert set(parts) == {"ce", "hist", "content", "style", "tv", "adv_color", "adv_style", "d_color", "d_style"}
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in parts.values())


def test_ab_regression_joins_the_losses_when_weighted(image_dirs):
    from train.base import make_trainer
    from train.run import TrainingData
    from train.settings import BaseSettings

    settings = BaseSettings(photos=str(image_dirs / "photos"), architecture="tiny", batch=2, crop=64, workers=0,
                            adv_start=10, train_style_decoder=False, lambda_ab=1.0, rebalance=0.0)
    data = TrainingData(settings)
    trainer, _ = make_trainer(settings, data, None, resume=False, device=torch.device("cpu"))
    assert torch.allclose(trainer.class_weights, torch.ones_like(trainer.class_weights))
    rgb, paint = next(iter(data.batches(start=0, stop=1)))
    parts, *_ = trainer.step(rgb, paint, 0)
    assert set(parts) == {"ce", "hist", "ab"} and torch.isfinite(parts["ab"]) and parts["ab"] > 0


# ---- warm start across architectures ----------------------------------------------------------

def test_init_into_a_guided_config_keeps_the_colour_output(tmp_path, caplog):
    import logging

    from gan_core.testing import tiny_model
    from gan_core.weights import save_weights
    from train.settings import BaseSettings
    from train.warm_start import build_generator

    source = tiny_model(seed=2)
    path = tmp_path / "tiny.safetensors"
    save_weights(path, source, dtype=torch.float32)
    with caplog.at_level(logging.INFO, logger="train.warm_start"):
        model, _ = build_generator(BaseSettings(init=str(path), model_config={"guided": True}))  # no --vgg, no --architecture
    assert model.config.guided and model.config.vgg_widths == source.config.vgg_widths
    assert "color_decoder.guide_gate.weight" in caplog.text  # the new tensors are named
    image = torch.rand(2, 3, 40, 56)
    before = DualGANRunner(source.eval()).colorize(image, render_size=0)
    after = DualGANRunner(model.eval()).colorize(image, render_size=0)
    assert torch.equal(before, after)


def test_init_refuses_another_shape_and_vgg_beside_it(tmp_path):
    from gan_core.testing import write_tiny_weights
    from train.settings import BaseSettings
    from train.warm_start import build_generator

    path = write_tiny_weights(tmp_path / "tiny.safetensors")
    with pytest.raises(ValueError, match="has shape .* needs") as info:
        build_generator(BaseSettings(init=str(path), model_config={"palette_embed": 16}))
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="not both"):
        build_generator(BaseSettings(init=str(path), vgg="data/vgg16.safetensors"))
    with pytest.raises(ValueError, match="unknown fields"):
        build_generator(BaseSettings(init=str(path), model_config={"colour_magic": 1}))


def test_train_base_init_from_a_file_then_export_keeps_the_new_config(image_dirs, tmp_path, capsys):
    from gan_core.testing import write_tiny_weights

    init = write_tiny_weights(tmp_path / "tiny.safetensors")
    run, out = tmp_path / "run", tmp_path / "out.safetensors"
    args = ["base", "--photos", str(image_dirs / "photos"), "--styles", str(image_dirs / "styles"), "--run-dir", str(run),
            "--init", str(init), "--model-config", '{"guided": true}', "--steps", "2", "--batch", "2", "--crop", "64",
            "--workers", "0", "--sample-every", "0", "--adv-start", "1"]
    assert train_main(args) == 0  # the default --architecture, yet no --vgg: config and encoder come from the file
    assert train_main(["export", str(run / "checkpoint.safetensors"), str(out)]) == 0
    model, info = load_weights(out)
    assert model.config.guided and info.training["init"]["file"] == "tiny.safetensors"
    assert train_main(args + ["--resume", "--steps", "3"]) == 0  # resuming takes the config from the checkpoint
    bad = args[:]
    bad[bad.index('{"guided": true}')] = '{"palette_embed": 16}'
    bad[bad.index(str(run))] = str(tmp_path / "other")
    assert train_main(bad) == 2
    err = capsys.readouterr().err
    assert "has shape" in err and "Traceback" not in err


def test_style_decoder_run_from_a_file_keeps_the_colour_decoder_and_starts_the_style_decoder_fresh(image_dirs, tmp_path,
                                                                                                      capsys):
    from gan_core.testing import write_tiny_weights

    init = write_tiny_weights(tmp_path / "tiny.safetensors")
    source, _ = load_weights(init)
    run, out = tmp_path / "run", tmp_path / "out.safetensors"
    args = ["base", "--photos", str(image_dirs / "photos"), "--styles", str(image_dirs / "styles"), "--run-dir", str(run),
            "--init", str(init), "--no-train-color-decoder", "--fresh-style-decoder", "--steps", "2", "--batch", "2",
            "--crop", "64", "--workers", "0", "--sample-every", "1", "--adv-start", "1", "--log-every", "1",
            "--export", str(out)]
    assert train_main(args) == 0
    model, info = load_weights(out)
    assert not info.training["train_color_decoder"] and info.training["fresh_style_decoder"]
    before, after = source.state_dict(), model.state_dict()
    for name in before:
        if name.startswith("color_decoder.") or name.startswith("encoder."):
            assert torch.allclose(before[name], after[name], atol=1e-3), name  # fp16 export rounding only
    fresh = DualGAN(source.config).state_dict()  # not the file's style decoder: a fresh one, then trained
    assert not torch.allclose(before["style_decoder.to_rgb.1.weight"], after["style_decoder.to_rgb.1.weight"], atol=1e-2)
    assert after["style_decoder.to_rgb.1.weight"].shape == fresh["style_decoder.to_rgb.1.weight"].shape
    log = _read_log(run)
    assert log[-1]["ce"] == "" and float(log[-1]["style"]) > 0 and float(log[-1]["d_style"]) > 0
    assert (run / "samples_000002.png").exists()
    assert train_main(args[:-2] + ["--run-dir", str(tmp_path / "r2"), "--no-train-style-decoder"]) == 2
    assert "nothing to train" in capsys.readouterr().err
    assert train_main([a for a in args if a != str(init) and a != "--init"][:-2] + ["--run-dir", str(tmp_path / "r3"),
                                                                                      "--architecture", "tiny"]) == 2
    assert "--fresh-style-decoder needs --init" in capsys.readouterr().err


def test_guidance_only_run_trains_the_guidance_inputs_and_nothing_else(image_dirs, tmp_path, capsys):
    from gan_core.testing import tiny_model
    from gan_core.weights import save_weights

    source = tiny_model(seed=3)
    init = tmp_path / "tiny.safetensors"
    save_weights(init, source, dtype=torch.float32)
    run, out = tmp_path / "run", tmp_path / "out.safetensors"
    args = ["base", "--photos", str(image_dirs / "photos"), "--run-dir", str(run), "--init", str(init),
            "--model-config", '{"guided": true}', "--no-train-style-decoder", "--color-decoder-parts", "guidance",
            "--guidance-mix", '{"no_hints": 0.0, "same_photo_reference": 1.0, "other_photo_reference": 0.0}',
            "--steps", "3", "--batch", "2", "--crop", "64", "--workers", "0", "--sample-every", "0",
            "--adv-start", "1", "--lr-g", "0.01", "--export", str(out)]
    assert train_main(args) == 0
    model, _ = load_weights(out)
    start = DualGAN(model.config)
    start.load_state_dict(source.state_dict(), strict=False)  # the new guidance tensors start at zero
    start = start.state_dict()
    moved = {name for name, after in model.state_dict().items()
             if not torch.allclose(start[name].float(), after.float(), atol=1e-3)}  # beyond fp16 export rounding
    assert moved and all(name.startswith("color_decoder.guide") for name in moved), sorted(moved)
    for k, (bad, says) in enumerate(((["--guidance-mix", '{"hint_share": 0.5}'], "unknown fields ['hint_share']"),
                                     (["--guidance-mix", '{"no_hints": 2}'], "must lie in 0..1"),
                                     (["--color-decoder-parts", "heads"], "must be 'all' or 'guidance'"))):
        assert train_main(args[:-2] + ["--run-dir", str(tmp_path / f"bad{k}")] + bad) == 2
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err


def test_loss_bin_weights_equal_the_grids_soft_assignment():
    grid = AbGrid(8)
    ab = (torch.rand(2, 2, 9, 7) * 2 - 1) * 110
    assert torch.allclose(losses.bin_weights(ab, grid).permute(0, 3, 1, 2), grid.soft_assign(ab), atol=1e-5)
    assert torch.allclose(losses.soft_histogram(ab, grid), grid.histogram(ab), atol=1e-6)


def test_profile_step_times_every_part(image_dirs, tmp_path):
    import json

    out = tmp_path / "profile.json"
    args = ["profile-step", "--photos", str(image_dirs / "photos"), "--styles", str(image_dirs / "styles"), "--architecture",
            "tiny", "--batch", "2", "--crop", "64", "--adv-start", "0", "--warmup", "0", "--measure", "1", "--json", str(out)]
    assert train_main(args) == 0
    result = json.loads(out.read_text())
    assert {"data loading", "frozen encoder", "generator heads", "loss network", "discriminators", "backward",
            "optimiser", "losses"} <= set(result["parts_seconds_per_step"])
    assert result["samples_per_second"] > 0 and result["cache_fill_images"] > 0


def test_training_summary_names_no_directory_of_the_training_machine(tmp_path):
    from train.base import training_summary
    from train.settings import BaseSettings

    data = tmp_path / "somewhere" / "data"
    (data / "photos" / "train").mkdir(parents=True)
    (data / "styles").mkdir()
    (data / "manifest.json").write_text("{}")
    settings = BaseSettings(photos=str(data / "photos" / "train"), styles=str(data / "styles"), degrade_prob=0.3)
    summary = training_summary(settings, steps=7)
    assert summary["photos"] == "photos/train" and summary["styles"] == "styles"
    assert summary["data_manifest"] == "manifest.json" and summary["degrade_prob"] == 0.3
    assert str(tmp_path) not in json.dumps(summary)


def test_periodic_exports_and_their_average(image_dirs, tmp_path, capsys):
    run = tmp_path / "run"
    assert train_main(_base_args(image_dirs, run, 4, "--adv-start", "2", "--export-every", "2", "--checkpoint-every", "2")) == 0
    exports = sorted((run / "exports").iterdir())
    assert [p.name for p in exports] == ["step_000002.safetensors", "step_000004.safetensors"]
    final = tmp_path / "final.safetensors"
    assert train_main(["export", str(run / "checkpoint.safetensors"), str(final)]) == 0
    assert torch.equal(load_file(final)["color_decoder.head.weight"], load_file(exports[1])["color_decoder.head.weight"])
    # Training went on in train mode after the step-2 export: resuming from the step-2 checkpoint and
    # running to 4 again gives the same step-4 weights.
    again = tmp_path / "again"
    assert train_main(_base_args(image_dirs, again, 2, "--adv-start", "2", "--checkpoint-every", "2")) == 0
    assert train_main(_base_args(image_dirs, again, 4, "--adv-start", "2", "--checkpoint-every", "2", "--resume")) == 0
    a, b = load_file(run / "checkpoint.safetensors"), load_file(again / "checkpoint.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)

    mean = tmp_path / "mean.safetensors"
    assert train_main(["average", str(mean), *map(str, exports)]) == 0
    tensors = [load_file(p) for p in exports]
    averaged = load_file(mean)
    for name in ("color_decoder.head.weight", "style_decoder.to_rgb.1.weight"):
        want = (tensors[0][name].float() + tensors[1][name].float()) / 2
        assert torch.allclose(averaged[name].float(), want, atol=1e-3), name
    assert not torch.equal(tensors[0]["color_decoder.head.weight"], tensors[1]["color_decoder.head.weight"])
    _, info = load_weights(mean)
    assert [a["steps"] for a in info.training["averaged_from"]] == [2, 4]

    capsys.readouterr()
    assert train_main(["average", str(tmp_path / "one.safetensors"), str(exports[0])]) == 2
    assert "at least two" in capsys.readouterr().err
    from gan_core.testing import write_tiny_weights
    import dataclasses

    from gan_core.testing import tiny_config
    other = write_tiny_weights(tmp_path / "guided.safetensors", config=dataclasses.replace(tiny_config(), guided=True))
    assert train_main(["average", str(tmp_path / "x.safetensors"), str(exports[0]), str(other)]) == 2
    err = capsys.readouterr().err
    assert "configuration differs" in err and "Traceback" not in err


def test_a_colour_only_run_keeps_its_init_files_named_styles_through_resume_export_and_average(image_dirs, tmp_path, capsys):
    from gan_core.testing import write_tiny_weights

    init = write_tiny_weights(tmp_path / "init.safetensors", seed=4, style_names=("ink",))
    base, base_info = load_weights(init)
    theirs = base.state_dict()
    run = tmp_path / "run"
    args = ["base", "--photos", str(image_dirs / "photos"), "--run-dir", str(run), "--init", str(init),
            "--no-train-style-decoder", "--batch", "2", "--crop", "64", "--workers", "0",
            "--sample-every", "0", "--adv-start", "5", "--lambda-ab", "1", "--export-every", "1"]
    assert train_main([*args, "--steps", "1"]) == 0
    assert train_main([*args, "--steps", "2", "--resume"]) == 0  # the resumed generator has the styles too
    exports = sorted((run / "exports").iterdir())
    assert len(exports) == 2
    for path in exports:
        model, info = load_weights(path)
        assert info.styles == base_info.styles  # names and metadata from the --init file
        own = model.state_dict()
        assert all(torch.equal(own[k], theirs[k]) for k in theirs if k.startswith("styles."))
    exported = tmp_path / "exported.safetensors"
    assert train_main(["export", str(run / "checkpoint.safetensors"), str(exported)]) == 0
    assert load_weights(exported)[1].styles == base_info.styles
    assert not torch.equal(load_file(exports[1])["color_decoder.head.weight"].float(), theirs["color_decoder.head.weight"])

    mean = tmp_path / "mean.safetensors"
    assert train_main(["average", str(mean), *map(str, exports), "--styles-from", str(init), "--chroma-confidence", "0.3"]) == 0
    model, info = load_weights(mean)
    assert info.styles == base_info.styles and info.config.chroma_confidence == 0.3
    assert info.training["styles_from"] == "init.safetensors"
    own = model.state_dict()
    assert all(torch.allclose(own[k], theirs[k], atol=1e-3) for k in theirs if k.startswith("styles."))
    averaged = (load_file(exports[0])["color_decoder.head.weight"].float() + load_file(exports[1])["color_decoder.head.weight"].float()) / 2
    assert torch.allclose(own["color_decoder.head.weight"], averaged, atol=1e-3)

    # Training the style decoder changes what the styles adapt: they are left out.
    styled = tmp_path / "styled"
    assert train_main(["base", "--photos", str(image_dirs / "photos"), "--styles", str(image_dirs / "styles"),
                       "--run-dir", str(styled), "--init", str(init),
                       "--batch", "2", "--crop", "64", "--workers", "0", "--sample-every", "0", "--steps", "1",
                       "--export", str(tmp_path / "styled.safetensors")]) == 0
    assert load_weights(tmp_path / "styled.safetensors")[1].styles == {}

    capsys.readouterr()
    other = write_tiny_weights(tmp_path / "other.safetensors", seed=5, style_names=("ink",))
    assert train_main(["average", str(tmp_path / "x.safetensors"), *map(str, exports), "--styles-from", str(other)]) == 2
    err = capsys.readouterr().err
    assert "named styles do not fit" in err and "Traceback" not in err
    assert train_main(["average", str(tmp_path / "y.safetensors"), *map(str, exports), "--chroma-confidence", "2"]) == 2
    err = capsys.readouterr().err
    assert "chroma_confidence must be in [0, 1], got 2.0" in err and "Traceback" not in err
