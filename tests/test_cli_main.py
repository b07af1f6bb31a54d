"""``python -m gan_core``: the main job on files and folders, and exit code 2 with one sentence on bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gan_core.cli import main
from gan_core.testing import tiny_fast_config, write_tiny_weights

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    weights = write_tiny_weights(root / "tiny.safetensors")
    rng = np.random.default_rng(0)
    (root / "in" / "sub").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 255, (30, 41), dtype=np.uint8), "L").save(root / "in" / "grey.png")
    Image.fromarray(rng.integers(0, 255, (25, 19, 4), dtype=np.uint8), "RGBA").save(root / "in" / "sub" / "rgba.png")
    Image.fromarray((rng.integers(0, 65535, (20, 22))).astype(np.uint16)).save(root / "in" / "deep16.png")
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / "style.jpg")
    (root / "fake.png").write_text("this is text")
    return root, weights


def test_colorize_one_file_and_a_folder(files, tmp_path):
    root, weights = files
    out = tmp_path / "one.png"
    assert main(["colorize", str(root / "in" / "grey.png"), str(out), "--weights", str(weights), "-q"]) == 0
    assert Image.open(out).size == (41, 30) and Image.open(out).mode == "RGB"
    folder = tmp_path / "many"
    assert main(["colorize", str(root / "in"), str(folder), "--weights", str(weights), "-q"]) == 0
    written = sorted(p.name for p in folder.iterdir())
    assert written == ["deep16_colorize.png", "grey_colorize.png", "rgba_colorize.png"]
    rgba = Image.open(folder / "rgba_colorize.png")
    assert rgba.mode == "RGBA" and rgba.size == (19, 25)  # alpha kept


def test_stylize_blend_and_info(files, tmp_path, capsys):
    root, weights = files
    src = str(root / "in" / "grey.png")
    assert main(["stylize", src, str(tmp_path / "s.png"), "--weights", str(weights), "--style-image", str(root / "style.jpg"),
                 "--strength", "0.5", "--preserve-color", "original", "-q"]) == 0
    assert main(["stylize", src, str(tmp_path / "n.png"), "--weights", str(weights), "--style", "tiny_style", "-q"]) == 0
    assert main(["blend", src, str(tmp_path / "b.png"), "--weights", str(weights), "--style", "tiny_style",
                 "--also-components", "-q"]) == 0
    assert {p.name for p in tmp_path.iterdir()} >= {"b.png", "b_colorized.png", "b_stylized.png"}
    assert main(["info", str(weights)]) == 0
    assert '"tiny_style"' in capsys.readouterr().out


def test_stylize_fast_network(files, tmp_path, capsys):
    root, weights = files
    src, style = str(root / "in" / "grey.png"), str(root / "style.jpg")
    fast_weights = write_tiny_weights(tmp_path / "fast.safetensors", config=tiny_fast_config())
    out = tmp_path / "f.png"
    assert main(["stylize", src, str(out), "--weights", str(fast_weights), "--style-image", style, "--fast", "-q"]) == 0
    assert Image.open(out).size == (41, 30)
    assert main(["stylize", src, str(out), "--weights", str(weights), "--style-image", style, "--fast", "-q"]) == 2
    assert "no fast style network" in capsys.readouterr().err
    assert main(["stylize", src, str(out), "--weights", str(fast_weights), "--style", "tiny_style", "--fast", "-q"]) == 2
    assert "run on the full network" in capsys.readouterr().err
    assert main(["stylize", src, str(out), "--weights", str(fast_weights), "--style-image", style, "--fast",
                 "--preserve-color", "colorized", "-q"]) == 2
    assert "need the full network" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, expected",
    [
        (["colorize", "{root}/missing.png", "{tmp}/o.png", "--weights", "{w}"], "no such image file"),
        (["colorize", "{root}/fake.png", "{tmp}/o.png", "--weights", "{w}"], "not a readable image"),
        (["colorize", "{root}/in/grey.png", "{tmp}/o.png", "--weights", "{root}/fake.png"], "fake.png"),
        (["stylize", "{root}/in/grey.png", "{tmp}/o.png", "--weights", "{w}", "--style", "nope"], "unknown style 'nope'"),
        (["stylize", "{root}/in/grey.png", "{tmp}/o.png", "--weights", "{w}"], "--style-image"),
        (["blend", "{root}/in/grey.png", "{tmp}/o.png", "--weights", "{w}", "--style", "tiny_style", "--lambda-color", "3"],
         "between 0 and 1"),
        (["colorize", "{root}/in/grey.png", "{tmp}/o.png"], "no default weights are installed"),
    ],
)
def test_bad_input_exit_code_2_one_sentence(files, tmp_path, args, expected, monkeypatch):
    root, weights = files
    monkeypatch.setenv("DUALGAN_DEFAULT_WEIGHTS", str(tmp_path / "absent.safetensors"))
    argv = [a.format(root=root, tmp=tmp_path, w=weights) for a in args]
    proc = subprocess.run([sys.executable, "-m", "gan_core", *argv, "-q"] if argv[0] != "info" else [sys.executable, "-m", "gan_core", *argv],
                          cwd=REPO, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in proc.stderr, proc.stderr


def test_help_lists_the_jobs():
    proc = subprocess.run([sys.executable, "-m", "gan_core", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for job in ("colorize", "stylize", "blend", "info"):
        assert job in proc.stdout
