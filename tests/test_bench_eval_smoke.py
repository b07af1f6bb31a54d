"""Smoke tests for the measuring tools (real runs are commands, not tests): bench --quick and eval on a mini folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


from gan_core.testing import write_tiny_weights

from .mini_data import write_data_folder
from train import metrics

REPO = Path(__file__).resolve().parents[1]


def test_bench_quick_prints_a_table(tmp_path):
    weights = write_tiny_weights(tmp_path / "w.safetensors")
    proc = subprocess.run([sys.executable, "-m", "bench", "--weights", str(weights), "--quick", "--no-peer"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for job in ("colorize", "stylize", "blend"):
        assert f"| 64 | 1 | {job} |" in proc.stdout
    profiled = subprocess.run([sys.executable, "-m", "bench", "--weights", str(weights), "--quick", "--no-peer",
                               "--jobs", "colorize", "--profile", "--dtype", "fp32"], cwd=REPO,
                              capture_output=True, text=True, timeout=300)
    assert profiled.returncode == 0 and "profile of colorize" in profiled.stderr and "aten::" in profiled.stderr
    missing = subprocess.run([sys.executable, "-m", "bench", "--weights", str(tmp_path / "none.safetensors")], cwd=REPO,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no such weights file" in missing.stderr


def test_metrics_hand_checked():
    import torch

    a = torch.rand(1, 3, 32, 32)
    assert metrics.psnr(a, a).item() == 100.0
    assert abs(metrics.psnr(torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.1)).item() - 20.0) < 1e-4
    assert abs(metrics.ssim(a, a).item() - 1.0) < 1e-5
    assert metrics.ssim(a, (a + 0.3 * torch.randn_like(a)).clamp(0, 1)) < metrics.ssim(a, (a + 0.05 * torch.randn_like(a)).clamp(0, 1))
    assert metrics.colourfulness(torch.full((1, 3, 8, 8), 0.5)).item() == 0.0
    # pure red: rg = 255, yb = 127.5, no spread -> 0.3 * sqrt(255^2 + 127.5^2)
    red = torch.zeros(1, 3, 4, 4)
    red[:, 0] = 1.0
    assert abs(metrics.colourfulness(red).item() - 0.3 * (255**2 + 127.5**2) ** 0.5) < 1e-3
    sepia = torch.tensor([0.44, 0.26, 0.08]).view(1, 3, 1, 1).expand(1, 3, 8, 8)
    blue = torch.tensor([0.1, 0.2, 0.8]).view(1, 3, 1, 1).expand(1, 3, 8, 8)
    assert metrics.brown_cast(sepia).item() == 1.0 and metrics.brown_cast(blue).item() == 0.0
    assert metrics.brown_cast(torch.full((1, 3, 8, 8), 0.5)).item() == 0.0  # grey: no cast


def test_eval_on_a_mini_data_folder(tmp_path):
    write_data_folder(tmp_path, (("eval", "photo", "photos/eval", 2), ("train", "photo", "photos/train", 2),
                                 ("train", "painting", "styles", 2)))
    weights = write_tiny_weights(tmp_path / "w.safetensors")
    out = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "train", "eval", str(weights), "--data", str(tmp_path), "--out", str(out),
                           "--style-photos", "1", "--style-paintings", "1", "--no-peer", "-q"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["colour"]["photos"] == 2 and set(report["colour"]["table"]) == {"ours", "grey", "global_transfer", "real"}
    assert report["colour"]["table"]["grey"]["cf"] < 1e-3  # grey from Lab: equal channels up to rounding
    per_photo = report["colour"]["per_photo"]  # each photo's scores, whose mean is the table's
    assert sorted(p["file"] for p in per_photo) == sorted(f"photos/eval/{f.name}" for f in (tmp_path / "photos/eval").iterdir())
    assert abs(sum(p["psnr_ours"] for p in per_photo) / 2 - report["colour"]["table"]["ours"]["psnr"]) < 1e-6
    assert (out / "colour_sheet.png").exists() and (out / "style_sheet.png").exists()
    check = tmp_path / "decoding_check"
    proc = subprocess.run([sys.executable, "-m", "train", "eval", str(weights), "--data", str(tmp_path), "--out", str(check),
                           "--split", "train", "--no-style", "--temperature", "0.6", "0.3", "--chroma-radius", "4", "--chroma-eps", "0.01",
                           "-q"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((check / "report.json").read_text())
    assert report["colour"]["split"] == "train" and "style" not in report
    assert report["decoding"] == {"temperature": 0.6, "chroma_radius": 4, "chroma_eps": 0.01, "guided_chroma_radius": 4,
                                  "guided_chroma_eps": 0.001, "hint_range_sigmas": [0.03, 0.08],
                                  "hint_space_sigmas": [0.02, 0.05, 0.1, 0.3, 1.0],
                                  "reference_lightness_weight": 25.0, "dtype": "float32", "chroma_confidence": 0.0}
    assert "TRAINING" in (check / "report.md").read_text()
    assert [d["decoding"]["temperature"] for d in report["decodings"]] == [0.6, 0.3]  # one decoding per temperature
    assert (check / "colour_sheet.png").exists() and (check / "colour_sheet_T0.3.png").exists()
    one = subprocess.run([sys.executable, "-m", "train", "eval-guided", str(weights), "--data", str(tmp_path), "--out",
                          str(tmp_path / "guided"), "--temperature", "0.3", "0.6", "-q"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert one.returncode == 2 and "--temperature takes one value here" in one.stderr and "Traceback" not in one.stderr
    bad = subprocess.run([sys.executable, "-m", "train", "eval", str(weights), "--data", str(tmp_path / "nowhere")], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "manifest" in bad.stderr


def test_bench_reports_time_growth_with_pixels(capsys):
    from bench.__main__ import print_growth

    print_growth([("512", 1, "colorize", {"ms": 1000.0}), ("1024", 1, "colorize", {"ms": 1500.0}),
                  ("12mp", 1, "colorize", {"ms": 3000.0}), ("512", 8, "colorize", {"ms": 9000.0}),
                  ("2048", 1, "stylize", {"error": "over 900s"})])
    out = capsys.readouterr().out
    assert "- colorize: against 512: 1024 1.50x time for 4.0x pixels; 12mp 3.00x time for 45.8x pixels" in out
    assert "stylize" not in out


def test_student_speed_prints_both_networks():
    proc = subprocess.run([sys.executable, "-m", "bench.student_speed", "--size", "64", "--repeat", "1"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "| shipped (VGG16 encoder)" in proc.stdout and "| student (random weights)" in proc.stdout


def test_bench_guided_jobs_and_their_ratio_to_colorize(tmp_path):
    import dataclasses

    from gan_core.config import tiny_config

    weights = write_tiny_weights(tmp_path / "g.safetensors", config=dataclasses.replace(tiny_config(), guided=True))
    proc = subprocess.run([sys.executable, "-m", "bench", "--weights", str(weights), "--quick", "--no-peer", "--jobs",
                           "colorize,colorize_hints,colorize_hints_painted,colorize_reference,colorize_video"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for job in ("colorize_hints", "colorize_hints_painted", "colorize_reference", "colorize_video"):
        row = next(line for line in proc.stdout.splitlines() if line.startswith(f"| 64 | 1 | {job} |"))
        assert row.rstrip(" |").endswith("x"), row  # the vs-colorize ratio is filled in


def test_bench_cancel_quick_prints_latencies_and_gaps(tmp_path):
    weights = write_tiny_weights(tmp_path / "w.safetensors")
    proc = subprocess.run([sys.executable, "-m", "bench.cancel", "--weights", str(weights), "--quick", "--whole"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "logical CPUs, torch " in proc.stdout
    for job in ("stylize", "colorize"):
        row = next(line for line in proc.stdout.splitlines() if line.startswith(f"| {job} | 96x128 | 0 | 1 |"))
        assert row.split("|")[5].strip().isdigit(), row  # the flag was answered: a latency in ms
        assert any(line.startswith(f"| {job} | 96x128 | ") and "%" in line for line in proc.stdout.splitlines())
    missing = subprocess.run([sys.executable, "-m", "bench.cancel", "--weights", str(tmp_path / "none.safetensors")],
                             cwd=REPO, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no such weights file" in missing.stderr


def test_bench_rounds_give_the_median_time_and_ratios_within_each_round():
    from bench.__main__ import combine_rounds, ratio_text

    plain = combine_rounds([{"ms": 100.0, "peak_mb": 10.0}, {"ms": 200.0, "peak_mb": 12.0}, {"ms": 110.0, "peak_mb": 11.0}])
    # The third round of hints fell in a slow spell: the medians alone would say 200 / 110 = 1.82x.
    hints = combine_rounds([{"ms": 105.0, "peak_mb": 9.0}, {"ms": 220.0, "peak_mb": 9.0}, {"ms": 200.0, "peak_mb": 9.0}])
    assert plain["ms"] == 110.0 and plain["peak_mb"] == 12.0
    assert ratio_text(hints, plain) == "1.10x (1.05-1.82)"
    assert ratio_text({"ms": 50.0, "peak_mb": 1.0}, {"ms": 100.0, "peak_mb": 1.0}) == "0.50x"
    assert combine_rounds([{"ms": 1.0, "peak_mb": 1.0}, {"error": "over 900s"}]) == {"error": "over 900s"}
    assert ratio_text(hints, {"error": "over 900s"}) == ""
