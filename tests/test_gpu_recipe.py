"""The GPU recipe on the CPU: pack-data, train/gpu_run.sh with a tiny configuration, merge, colourise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.mini_data import write_data_folder

REPO = Path(__file__).resolve().parents[1]
LAYOUT = (("train", "photo", "photos/train", 6), ("eval", "photo", "photos/eval", 2), ("train", "painting", "styles", 2),
          ("eval", "painting", "styles_eval", 1))
TINY_RUN = {"steps": 50, "batch": 2, "crop": 64, "workers": 0, "adv_start": 0, "log_every": 1, "sample_every": 1,
            "checkpoint_every": 1, "max_minutes": 1e-4, "model_config": {"guided": True}, "train_style_decoder": False,
            "licence": "CC0-1.0"}


@pytest.fixture
def data_folder(tmp_path):
    root = tmp_path / "data"
    write_data_folder(root, LAYOUT)
    manifest = root / "manifest.json"
    records = json.loads(manifest.read_text())
    for i, r in enumerate(records):
        r["licence"] = f"licence {i}"
    manifest.write_text(json.dumps(records))
    return root


def test_pack_holds_only_training_images_deterministically_under_the_limit(data_folder, tmp_path):
    from train.cli import main as train_main

    args = ["pack-data", str(data_folder), str(tmp_path / "pack"), "--max-mb", "0.012"]
    assert train_main(args) == 0
    first = {p.relative_to(tmp_path / "pack").as_posix(): p.read_bytes() for p in (tmp_path / "pack").rglob("*") if p.is_file()}
    assert train_main(args) == 0  # again into the same pack: the same bytes
    again = {p.relative_to(tmp_path / "pack").as_posix(): p.read_bytes() for p in (tmp_path / "pack").rglob("*") if p.is_file()}
    assert first == again
    assert sorted(first) == ["manifest.json", "pack.json", *[f"photos/train/photo{i}.jpg" for i in range(6)]]
    assert sum(map(len, first.values())) <= 12_000
    info = json.loads(first["pack.json"])
    assert info["long_side"] < 64 and info["quality"] == 90  # 64 px noise does not fit: the side shrank
    records = {r["file"]: r for r in json.loads(first["manifest.json"])}
    source = {r["file"]: r for r in json.loads((data_folder / "manifest.json").read_text())}
    assert records["photos/train/photo3.jpg"]["licence"] == source["photos/train/photo3.png"]["licence"]
    assert records["photos/train/photo3.jpg"]["packed_from"] == "photos/train/photo3.png"

    assert train_main(["pack-data", str(data_folder), str(tmp_path / "with_styles"), "--styles", "--long-side", "40"]) == 0
    packed = sorted(p.relative_to(tmp_path / "with_styles").as_posix() for p in (tmp_path / "with_styles").rglob("*.jpg"))
    assert packed == [*[f"photos/train/photo{i}.jpg" for i in range(6)], "styles/painting0.jpg", "styles/painting1.jpg"]
    assert max(Image.open(tmp_path / "with_styles" / packed[0]).size) == 40


def test_gpu_script_trains_on_the_cpu_and_merge_makes_a_loadable_model(data_folder, tmp_path, capsys):
    from gan_core.cli import main as gan_main
    from gan_core.testing import write_tiny_weights
    from gan_core.weights import load_weights
    from train.cli import main as train_main

    pack, out = tmp_path / "pack", tmp_path / "out"
    assert train_main(["pack-data", str(data_folder), str(pack)]) == 0
    init = write_tiny_weights(tmp_path / "tiny.safetensors", style_names=("tiny_style",))
    config = tmp_path / "tiny_gpu.json"
    config.write_text(json.dumps({**json.loads((REPO / "train/configs/guided_gpu.json").read_text()), **TINY_RUN}))
    env = {**os.environ, "PYTHON": sys.executable, "DUALGAN_INIT": str(init), "DUALGAN_RUN_DIR": str(tmp_path / "run"),
           "DUALGAN_TRAIN_SECONDS": "120"}
    done = subprocess.run(["bash", str(REPO / "train/gpu_run.sh"), str(pack), str(out), str(config)], env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr + (out / "train.log").read_text()

    names = sorted(p.name for p in out.iterdir())
    assert names == ["decoder_part_01.safetensors", "losses.csv", "samples_000001.png", "settings.json", "train.log"]
    assert "max_minutes (0.0001) reached, stopped after step 1" in (out / "train.log").read_text()
    assert (out / "losses.csv").read_text().splitlines()[1].startswith("1,")

    merged = tmp_path / "merged.safetensors"
    assert train_main(["merge", str(out), str(merged), "--base", str(init)]) == 0
    model, info = load_weights(merged)
    assert info.config.guided and info.stored_dtype == "F16" and info.licence == "CC0-1.0"
    assert info.training["steps"] == 1 and info.training["device"].startswith("cpu") and info.training["dtype"] in ("bf16", "fp32")
    assert info.training["photos"] == "photos/train" and info.training["init"]["file"] == "tiny.safetensors"
    assert str(tmp_path) not in json.dumps(info.training)
    assert list(info.styles) == ["tiny_style"]  # the style decoder was not trained: its named style still fits
    base, _ = load_weights(init)
    frozen = zip(model.encoder.state_dict().values(), base.encoder.state_dict().values())
    assert all(torch.equal(a, b.half().float()) for a, b in frozen)  # the fp32 test file's encoder, in fp16

    grey = tmp_path / "grey.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (40, 56), dtype=np.uint8)).save(grey)
    capsys.readouterr()
    assert gan_main(["info", str(merged)]) == 0
    assert "tiny_style" in capsys.readouterr().out
    assert gan_main(["colorize", str(grey), str(tmp_path / "colour.png"), "--weights", str(merged), "--render-size", "32",
                     "--device", "cpu", "-q"]) == 0
    assert Image.open(tmp_path / "colour.png").size == (56, 40)

    # Split parts merge the same; a base file other than the run's --init is refused.
    from train.decoder_parts import export_parts

    split = export_parts(tmp_path / "run" / "checkpoint.safetensors", tmp_path / "split", max_mib=0.01)
    assert len(split) > 1
    assert train_main(["merge", str(tmp_path / "split"), str(tmp_path / "merged2.safetensors"), "--base", str(init)]) == 0
    other = write_tiny_weights(tmp_path / "other.safetensors", seed=5)
    assert train_main(["merge", str(out), str(tmp_path / "bad.safetensors"), "--base", str(other)]) == 2
    assert "not the file the run started from" in capsys.readouterr().err
    split[0].unlink()
    assert train_main(["merge", str(tmp_path / "split"), str(tmp_path / "bad.safetensors"), "--base", str(init)]) == 2
    assert "are missing" in capsys.readouterr().err


def test_gpu_script_refuses_a_missing_pack(tmp_path):
    done = subprocess.run(["bash", str(REPO / "train/gpu_run.sh"), str(tmp_path / "nope"), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "pack-data" in done.stderr


def test_a_run_that_trains_the_style_decoder_sends_it_too_and_drops_the_old_named_styles(data_folder, tmp_path, capsys):
    from gan_core.testing import write_tiny_weights
    from gan_core.weights import load_weights
    from train.cli import main as train_main
    from train.decoder_parts import export_parts, read_parts

    pack = tmp_path / "pack"
    assert train_main(["pack-data", str(data_folder), str(pack), "--styles"]) == 0
    init = write_tiny_weights(tmp_path / "tiny.safetensors")
    run = ["base", "--init", str(init), "--photos", str(pack / "photos/train"), "--steps", "1", "--batch", "2", "--crop", "64",
           "--workers", "0", "--adv-start", "0", "--sample-every", "0"]
    assert train_main([*run, "--run-dir", str(tmp_path / "refused")]) == 2  # the style decoder needs paintings
    assert "--styles" in capsys.readouterr().err
    assert train_main([*run, "--styles", str(pack / "styles"), "--run-dir", str(tmp_path / "run")]) == 0
    export_parts(tmp_path / "run" / "checkpoint.safetensors", tmp_path / "parts")
    meta, tensors = read_parts(tmp_path / "parts")
    assert json.loads(meta["dualgan.parts.trained"]) == ["color_decoder.", "style_decoder."]
    assert not any(k.startswith("encoder.") for k in tensors)
    assert train_main(["merge", str(tmp_path / "parts"), str(tmp_path / "merged.safetensors"), "--base", str(init)]) == 0
    model, info = load_weights(tmp_path / "merged.safetensors")
    assert info.styles == {} and info.training["styles"] == "styles" and info.training["train_style_decoder"]


def test_merged_metadata_names_no_directory_of_either_machine():
    from train.decoder_parts import portable

    meta = {"content": "/home/me/data/photos/train", "runs": ["C:\\\\runs\\\\data\\\\styles"], "source": "https://example.org/a"}
    assert portable(meta) == {"content": "photos/train", "runs": ["data/styles"], "source": "https://example.org/a"}
