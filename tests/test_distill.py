"""The fast style network: its config, ``python -m train distill`` (tiny teacher, generated images),
exact resume, export, and Style Transfer through it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from gan_core.config import DualGANConfig
from gan_core.encoder import VGGEncoder
from gan_core import DualGANRunner, StyleSpec
from gan_core.testing import tiny_model
from gan_core.weights import load_weights, save_weights
from train.cli import main as train_main

FAST = ("--encoder-widths", "2,4,4,8", "--decoder-widths", "4,4,4,2")  # tiny_config's relu4_1 has 8 channels


@pytest.fixture(scope="module")
def setup(image_dirs):
    torch.manual_seed(0)
    teacher = image_dirs / "teacher.safetensors"
    save_weights(teacher, tiny_model(), dtype=torch.float32)  # He-initialised: features of a sane size
    return image_dirs, teacher


def _args(root: Path, teacher: Path, run: Path, steps: int, *extra: str) -> list[str]:
    return ["distill", "--teacher", str(teacher), "--photos", str(root / "photos"), "--styles", str(root / "styles"),
            "--run-dir", str(run), "--steps", str(steps), "--batch", "2", "--crop", "32", "--workers", "0",
            "--log-every", "1", *FAST, *extra]


def test_config_fast_widths_validated_and_omitted_when_absent():
    with pytest.raises(ValueError, match="both be empty or both hold 4"):
        DualGANConfig(fast_encoder_widths=(2, 4, 4, 8))
    with pytest.raises(ValueError, match="positive integers"):
        DualGANConfig(fast_encoder_widths=(2, 0, 4, 8), fast_decoder_widths=(4, 4, 4, 2))
    assert "fast_encoder_widths" not in json.loads(DualGANConfig().to_json())  # older readers still load plain files
    config = DualGANConfig(fast_encoder_widths=(2, 4, 4, 512), fast_decoder_widths=(4, 4, 4, 2))
    assert DualGANConfig.from_json(config.to_json()) == config


def test_style_only_encoder_stops_at_relu4_1():
    encoder = VGGEncoder((2, 4, 4, 8), last="relu4_1")
    assert len(encoder.features) == 19  # torchvision indices 0..18: nothing past relu4_1 is built
    assert encoder(torch.rand(1, 3, 16, 16), until="relu4_1")["relu4_1"].shape == (1, 8, 2, 2)
    with pytest.raises(ValueError, match="relu4_3"):
        encoder(torch.rand(1, 3, 16, 16), until="relu4_3")


def test_distill_losses_fall_and_export_runs_fast_style(setup, tmp_path):
    root, teacher = setup
    run, out = tmp_path / "run", tmp_path / "fast.safetensors"
    assert train_main(_args(root, teacher, run, 40, "--lr", "0.01", "--export", str(out))) == 0
    with (run / "losses.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    image = [float(r["image"]) for r in rows]
    features = [float(r["features"]) for r in rows]
    assert np.mean(image[-8:]) < 0.8 * np.mean(image[:8])
    assert np.mean(features[-8:]) < np.mean(features[:8])

    model, info = load_weights(out)
    base, _ = load_weights(teacher)
    assert model.config.fast_encoder_widths == (2, 4, 4, 8) and info.training["fast_style"]["steps"] == 40
    base_state = base.state_dict()
    assert all(torch.equal(v, base_state[k]) for k, v in model.state_dict().items() if not k.startswith("fast_style."))
    runner = DualGANRunner(model)
    photo, art = torch.rand(1, 3, 40, 52), torch.rand(1, 3, 30, 30)
    fast = runner.stylize(photo, StyleSpec(runner.style_from_image(art, fast=True), None, 1.0, fast=True), render_size=0)
    full = runner.stylize(photo, StyleSpec(runner.style_from_image(art), None, 1.0), render_size=0)
    assert fast.shape == photo.shape and torch.isfinite(fast).all()
    assert not torch.equal(fast, full)  # a different network ran


def test_fast_style_errors_are_one_sentence(setup):
    _, teacher = setup
    runner = DualGANRunner(load_weights(teacher)[0])
    with pytest.raises(ValueError, match="no fast style network.*train distill"):
        runner.style_from_image(torch.rand(1, 3, 30, 30), fast=True)


def test_distill_kill_and_resume_is_exact(setup, tmp_path):
    root, teacher = setup
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert train_main(_args(root, teacher, straight, 6, "--checkpoint-every", "2")) == 0
    assert train_main(_args(root, teacher, resumed, 6, "--checkpoint-every", "2", "--stop-at", "3")) == 0  # as if killed at 3
    assert train_main(_args(root, teacher, resumed, 6, "--checkpoint-every", "2", "--resume")) == 0
    a = load_file(straight / "checkpoint.safetensors")
    b = load_file(resumed / "checkpoint.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "resumed run differs from the uninterrupted one"


def test_distill_refuses_changed_settings_and_bad_widths(setup, tmp_path, capsys):
    root, teacher = setup
    run = tmp_path / "run"
    assert train_main(_args(root, teacher, run, 2)) == 0
    assert train_main(_args(root, teacher, run, 4, "--resume", "--lr", "0.5")) == 2
    assert "lr" in capsys.readouterr().err
    bad = _args(root, teacher, tmp_path / "other", 2)
    bad[bad.index("2,4,4,8")] = "2,4,4,16"
    assert train_main(bad) == 2
    err = capsys.readouterr().err
    assert "last width must be 8" in err and "Traceback" not in err


def test_distill_init_starts_from_another_checkpoint(setup, tmp_path):
    root, teacher = setup
    first, second = tmp_path / "first", tmp_path / "second"
    assert train_main(_args(root, teacher, first, 3)) == 0
    init = first / "checkpoint.safetensors"
    # lr 0: the second run's weights stay exactly where --init put them
    assert train_main(_args(root, teacher, second, 2, "--init", str(init), "--lr", "0")) == 0
    a, b = load_file(init), load_file(second / "checkpoint.safetensors")
    weights = [k for k in a if k.startswith("mod.fast_style.")]
    assert weights and all(torch.equal(a[k], b[k]) for k in weights)


def test_distill_with_the_trainers_style_and_content_losses(setup, tmp_path):
    root, teacher = setup
    run = tmp_path / "run"
    assert train_main(_args(root, teacher, run, 3, "--lambda-style", "3", "--lambda-content", "1")) == 0
    with (run / "losses.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 and all(np.isfinite(float(r["style"])) and float(r["content"]) > 0 for r in rows)
    plain = tmp_path / "plain"
    assert train_main(_args(root, teacher, plain, 1)) == 0
    with (plain / "losses.csv").open() as fh:
        assert next(csv.DictReader(fh))["style"] == ""  # off by default


def test_distill_amp_follows_the_shared_helper(setup, tmp_path, monkeypatch):
    from train import amp
    from train.distill import DistillSettings, Distiller

    root, teacher = setup
    settings = DistillSettings(teacher=str(teacher), photos=str(root / "photos"), styles=str(root / "styles"),
                               encoder_widths="2,4,4,8", decoder_widths="4,4,4,2")
    monkeypatch.setattr(amp, "cpu_has_native_bf16", lambda: False)
    assert Distiller(settings).amp.dtype is None  # emulated bf16 would be slower than fp32
    monkeypatch.setattr(amp, "cpu_has_native_bf16", lambda: True)
    assert Distiller(settings).amp.dtype is torch.bfloat16
    assert Distiller(DistillSettings(**{**settings.__dict__, "amp": False})).amp.dtype is None
    assert train_main(_args(root, teacher, tmp_path / "run", 1, "--no-amp")) == 0


RESIDUAL = ("--shape", "residual", "--residual-widths", "4,4,8", "--residual-blocks", "2")


def test_residual_config_validated_and_round_trips():
    with pytest.raises(ValueError, match="3 widths"):
        DualGANConfig(fast_residual_widths=(4, 8), fast_residual_blocks=2)
    with pytest.raises(ValueError, match="fast_residual_blocks above 0"):
        DualGANConfig(fast_residual_widths=(4, 4, 8))
    with pytest.raises(ValueError, match="not both"):
        DualGANConfig(fast_encoder_widths=(2, 4, 4, 512), fast_decoder_widths=(4, 4, 4, 2),
                      fast_residual_widths=(4, 4, 8), fast_residual_blocks=2)
    assert "fast_residual_widths" not in json.loads(DualGANConfig().to_json())
    config = DualGANConfig(fast_residual_widths=(4, 4, 8), fast_residual_blocks=2)
    assert DualGANConfig.from_json(config.to_json()) == config and config.fast_shape == "residual"


def test_residual_network_is_tile_exact_and_strength_zero_is_unmodulated():
    from gan_core.residual_style import ResidualFastStyle
    from gan_core.style_codes import StyleCode
    from gan_core.tiling import tiled_map

    torch.manual_seed(0)
    net = ResidualFastStyle((4, 4, 8), 2, code_channels=8, code_scale=0.01).eval()
    torch.nn.init.normal_(net.style_to_modulation.weight, std=0.1)
    code = StyleCode(torch.rand(1, 8) * 100, torch.rand(1, 8) * 50 + 1)
    x = torch.rand(1, 3, 192, 256)
    with torch.no_grad():
        mod = net.modulation(code, 1.0)
        whole = net(x, mod)
        tiled = tiled_map(lambda piece, spans: [net(piece, mod)], x, tile=128, overlap=96, multiple=8, scales=[1.0])[0]
        assert (whole - tiled).abs().max() < 1e-4  # no image-wide statistics: tiles need only the overlap
        unmodulated = net(x, net.modulation(code, 0.0))
        assert not torch.allclose(whole, unmodulated)
        assert torch.equal(net.modulation(code, 0.0), net.modulation(StyleCode(code.mean * 2, code.std), 0.0))


def test_distill_residual_shape_learns_and_exports(setup, tmp_path):
    root, teacher = setup
    run, out = tmp_path / "run", tmp_path / "fast.safetensors"
    args = [a for a in _args(root, teacher, run, 30, "--lr", "0.01", "--export", str(out),
                             "--lambda-style", "1", "--lambda-content", "1") if a not in FAST] + list(RESIDUAL)
    assert train_main(args) == 0
    with (run / "losses.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    image = [float(r["image"]) for r in rows]
    assert np.mean(image[-8:]) < 0.8 * np.mean(image[:8])
    assert rows[0]["features"] == "" and float(rows[0]["style"]) > 0  # no encoder of its own; the trainer's losses on
    model, info = load_weights(out)
    assert model.config.fast_shape == "residual" and info.training["fast_style"]["shape"] == "residual"
    runner = DualGANRunner(model)
    photo, art = torch.rand(1, 3, 40, 52), torch.rand(1, 3, 30, 30)
    spec = runner.style_spec(image=art, network="fast")
    fast = runner.stylize(photo, spec, render_size=0)
    assert fast.shape == photo.shape and torch.isfinite(fast).all()
    with pytest.raises(ValueError, match="trained styles.*full"):
        runner.style_spec(name="anything", network="fast")
    # bf16 weights, as the CLI and the nodes load them on a CPU with native bf16
    low = DualGANRunner(load_weights(out)[0].to(torch.bfloat16))
    fast_bf16 = low.stylize(photo, low.style_spec(image=art, network="fast"), render_size=0)
    assert fast_bf16.shape == photo.shape and (fast_bf16.float() - fast.float()).abs().mean() < 0.05


def test_learning_rate_warms_up_then_decays():
    from train.distill import DistillSettings, learning_rate

    plain = DistillSettings(steps=100, lr=1.0)
    warm = DistillSettings(steps=100, lr=1.0, warmup_steps=10)
    assert learning_rate(plain, 0) == pytest.approx(1.0)
    assert learning_rate(warm, 0) == pytest.approx(0.1 * learning_rate(plain, 0))
    assert learning_rate(warm, 4) == pytest.approx(0.5 * learning_rate(plain, 4))
    assert learning_rate(warm, 50) == learning_rate(plain, 50)
    assert learning_rate(warm, 99) < learning_rate(warm, 50) < learning_rate(warm, 9)


def test_amp_step_clips_the_gradient_norm():
    from train.amp import Amp

    layer = torch.nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        layer.weight.zero_()
    opt = torch.optim.SGD(layer.parameters(), lr=1.0)
    (layer(torch.full((1, 4), 100.0)).sum()).backward()  # gradient (100, 100, 100, 100): norm 200
    Amp(torch.device("cpu"), enabled=False).step(opt, max_grad_norm=2.0)
    assert torch.allclose(layer.weight, torch.full((1, 4), -1.0), atol=1e-4)  # scaled to norm 2: each -1
