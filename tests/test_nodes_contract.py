"""Node contract: schemas, and every node's execute through a stand-in for ComfyUI's modules."""

from __future__ import annotations

import asyncio
import importlib
import sys
from pathlib import Path

import pytest
import torch

from gan_core.testing import tiny_fast_config, write_tiny_weights

from . import comfy_stub

REPO = Path(__file__).resolve().parents[1]
NODE_IDS = ["DualGAN_Load", "DualGAN_Colorize", "DualGAN_StyleTransfer", "DualGAN_Blend"]


def _forget_nodes_package() -> None:
    for name in list(sys.modules):
        if name == "nodes" or name.startswith("nodes."):
            sys.modules.pop(name)


def _restore(saved: dict) -> None:
    for name, module in saved.items():
        if module is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = module
    _forget_nodes_package()


@pytest.fixture()
def comfy(tmp_path, monkeypatch):
    """Install the stand-in modules, import the node package fresh, and clean everything up after."""
    saved = {name: sys.modules.get(name) for name in comfy_stub.STUB_MODULES}
    _forget_nodes_package()
    models = tmp_path / "models"
    (models / "dualgan").mkdir(parents=True)
    (models / "dualgan_styles").mkdir()
    rec = comfy_stub.install(str(models))
    write_tiny_weights(models / "dualgan" / "tiny.safetensors")
    nodes = importlib.import_module("nodes")
    yield types_namespace(nodes=nodes, rec=rec, models=models)
    _restore(saved)


def types_namespace(**kw):
    import types

    return types.SimpleNamespace(**kw)


def _nodes_by_id(nodes):
    return {cls.define_schema().node_id: cls for cls in nodes.NODES}


def _load(comfy, name="tiny.safetensors", dtype="auto"):
    return _nodes_by_id(comfy.nodes)["DualGAN_Load"].execute(weights=name, dtype=dtype).args[0]


def _image(b=1, h=17, w=31, c=3, seed=0):
    return torch.rand(b, h, w, c, generator=torch.Generator().manual_seed(seed))


def test_schemas_ids_category_tooltips(comfy):
    by_id = _nodes_by_id(comfy.nodes)
    assert list(by_id) == NODE_IDS
    for node_id, cls in by_id.items():
        schema = cls.define_schema()
        assert schema.category == "DualGAN"
        assert schema.description
        for item in schema.inputs + schema.outputs:
            assert item.tooltip, f"{node_id}.{item.id} has no tooltip"
    blend = by_id["DualGAN_Blend"].define_schema()
    assert [o.id for o in blend.outputs] == ["blend", "colorized", "stylized"]
    load = by_id["DualGAN_Load"].define_schema()
    assert load.inputs[0].options[0] == "dualgan_default.safetensors"
    assert "tiny.safetensors" in load.inputs[0].options


def test_entrypoint_lists_the_four_nodes(comfy):
    ext = comfy.nodes.DualGANExtension()
    listed = asyncio.run(ext.get_node_list())
    assert [c.define_schema().node_id for c in listed] == NODE_IDS


def test_colorize_shapes_batches_and_odd_inputs(comfy):
    model = _load(comfy)
    colorize = _nodes_by_id(comfy.nodes)["DualGAN_Colorize"]
    for image in (_image(), _image(b=3, h=1, w=1), _image(c=4, h=20, w=9), _image(c=1, h=12, w=40)):
        out = colorize.execute(model=model, image=image, render_size=512, saturation=1.0).args[0]
        assert out.shape == (image.shape[0], image.shape[1], image.shape[2], 3)
        assert out.dtype == torch.float32 and out.min() >= 0 and out.max() <= 1
    assert comfy.rec.loads and comfy.rec.progress, "model management and progress were not used"
    assert comfy.rec.empty_cache > 0


def test_blend_endpoints_equal_colorize_and_style_through_nodes(comfy):
    model = _load(comfy)
    by_id = _nodes_by_id(comfy.nodes)
    image, style = _image(b=2, h=24, w=40), _image(h=32, w=32, seed=5)
    colour = by_id["DualGAN_Colorize"].execute(model=model, image=image, render_size=16, saturation=1.0).args[0]
    stylised = by_id["DualGAN_StyleTransfer"].execute(model=model, image=image, style_name="", strength=0.7,
                                                      preserve_color="none", render_size=16, style_image=style).args[0]
    blend_c = by_id["DualGAN_Blend"].execute(model=model, image=image, style_name="", lambda_content=1.0, lambda_style=0.7,
                                             lambda_color=1.0, render_size=16, style_image=style).args
    blend_s = by_id["DualGAN_Blend"].execute(model=model, image=image, style_name="", lambda_content=0.0, lambda_style=0.7,
                                             lambda_color=0.0, render_size=16, style_image=style).args
    assert torch.equal(blend_c[0], colour) and torch.equal(blend_c[1], colour)
    assert torch.equal(blend_s[0], stylised) and torch.equal(blend_s[2], stylised)


def test_style_by_name_and_errors(comfy):
    model = _load(comfy)
    style = _nodes_by_id(comfy.nodes)["DualGAN_StyleTransfer"]
    out = style.execute(model=model, image=_image(), style_name="tiny_style", strength=1.0, preserve_color="original",
                        render_size=512).args[0]
    assert out.shape == (1, 17, 31, 3)
    with pytest.raises(ValueError, match="no style given.*tiny_style"):
        style.execute(model=model, image=_image(), style_name="", strength=1.0, preserve_color="none", render_size=512)
    with pytest.raises(ValueError, match="unknown style 'nope'"):
        style.execute(model=model, image=_image(), style_name="nope", strength=1.0, preserve_color="none", render_size=512)
    with pytest.raises(ValueError, match="style batch has 2 images"):
        style.execute(model=model, image=_image(b=3), style_name="", strength=1.0, preserve_color="none", render_size=512,
                      style_image=_image(b=2))
    with pytest.raises(ValueError, match="empty batch"):
        style.execute(model=model, image=torch.zeros(0, 8, 8, 3), style_name="tiny_style", strength=1.0,
                      preserve_color="none", render_size=512)


def test_style_transfer_fast_network(comfy):
    write_tiny_weights(comfy.models / "dualgan" / "fast.safetensors", config=tiny_fast_config())
    style = _nodes_by_id(comfy.nodes)["DualGAN_StyleTransfer"]
    kwargs = dict(image=_image(), style_name="", strength=1.0, preserve_color="original", render_size=0,
                  style_image=_image(h=20, w=20, seed=1))
    fast = style.execute(model=_load(comfy, "fast.safetensors"), network="fast", **kwargs).args[0]
    full = style.execute(model=_load(comfy, "fast.safetensors"), network="full", **kwargs).args[0]
    assert fast.shape == full.shape == (1, 17, 31, 3) and not torch.equal(fast, full)
    with pytest.raises(ValueError, match="no fast style network"):
        style.execute(model=_load(comfy), network="fast", **kwargs)


def test_loader_errors_are_one_clear_sentence(comfy, monkeypatch):
    load = _nodes_by_id(comfy.nodes)["DualGAN_Load"]
    monkeypatch.setattr(comfy.nodes.loader, "SHIPPED_WEIGHTS", comfy.models / "absent.safetensors")
    with pytest.raises(FileNotFoundError, match="no default DualGAN weights are installed"):
        load.execute(weights="dualgan_default.safetensors", dtype="auto")
    with pytest.raises(FileNotFoundError):
        load.execute(weights="../../etc/passwd", dtype="auto")  # cannot escape the models folder
    (comfy.models / "dualgan" / "broken.safetensors").write_bytes(b"\x00" * 5)
    with pytest.raises(ValueError, match=r"broken\.safetensors: .*too short"):
        load.execute(weights="broken.safetensors", dtype="auto")


def test_style_files_folder_and_bad_style_file_is_skipped(comfy, caplog):
    from gan_core.testing import tiny_model
    from gan_core.weights import save_style_file

    save_style_file(comfy.models / "dualgan_styles" / "extra.safetensors", tiny_model(style_names=("extra",)), ["extra"])
    (comfy.models / "dualgan_styles" / "junk.safetensors").write_bytes(b"junk junk junk")
    model = _load(comfy)
    assert "extra" in model.model.style_names and "tiny_style" in model.model.style_names
    assert "junk.safetensors" in caplog.text


def test_interrupt_stops_execution(comfy):
    model = _load(comfy)
    comfy.rec.interrupt_after = 0
    with pytest.raises(comfy_stub.InterruptProcessingException):
        _nodes_by_id(comfy.nodes)["DualGAN_Colorize"].execute(model=model, image=_image(b=2), render_size=512, saturation=1.0)


def test_out_of_memory_retries_with_tiles(comfy, monkeypatch):
    model = _load(comfy)
    encoder = model.model.encoder
    original = encoder.forward
    calls = {"n": 0}

    def flaky(x, until="relu4_3"):
        calls["n"] += 1
        if calls["n"] == 1:
            raise comfy_stub.FakeOOM("CUDA out of memory")
        return original(x, until=until)

    monkeypatch.setattr(encoder, "forward", flaky)
    image = _image(h=300, w=200)
    out = _nodes_by_id(comfy.nodes)["DualGAN_Colorize"].execute(model=model, image=image, render_size=0, saturation=1.0).args[0]
    assert out.shape == (1, 300, 200, 3)
    assert calls["n"] > 2  # the retry ran in tiles
    assert comfy.rec.empty_cache >= 2  # cache flushed on the OOM and after the work


def test_importing_nodes_builds_no_model_and_reads_no_file(tmp_path, monkeypatch):
    import gan_core.model
    import gan_core.weights

    saved = {name: sys.modules.get(name) for name in comfy_stub.STUB_MODULES}
    built, opened = [], []
    monkeypatch.setattr(gan_core.model.DualGAN, "__init__", lambda self, *a, **k: built.append(1))
    monkeypatch.setattr(gan_core.weights, "read_header", lambda *a, **k: opened.append(1))
    _forget_nodes_package()
    try:
        comfy_stub.install(str(tmp_path))
        importlib.import_module("nodes")
    finally:
        _restore(saved)
    assert not built and not opened


def test_root_package_imports_without_comfyui():
    spec = importlib.util.spec_from_file_location("dualgan_root", REPO / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert not hasattr(module, "comfy_entrypoint")  # nothing is registered outside ComfyUI


def test_trained_export_runs_through_the_nodes(comfy, tmp_path):
    """The trainer's export is what Load DualGAN loads: train a tiny model a few steps, then use it in the nodes."""
    import numpy as np
    from PIL import Image

    from train.cli import main as train_main

    rng = np.random.default_rng(0)
    for sub in ("photos", "styles"):
        (tmp_path / sub).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (80, 96, 3), dtype=np.uint8)).save(tmp_path / sub / f"{i}.png")
    export = comfy.models / "dualgan" / "trained.safetensors"
    assert train_main(["base", "--photos", str(tmp_path / "photos"), "--styles", str(tmp_path / "styles"), "--run-dir",
                       str(tmp_path / "run"), "--architecture", "tiny", "--steps", "3", "--batch", "2", "--crop", "64",
                       "--workers", "0", "--sample-every", "0", "--adv-start", "1", "--export", str(export)]) == 0
    by_id = _nodes_by_id(comfy.nodes)
    model = by_id["DualGAN_Load"].execute(weights="trained.safetensors", dtype="auto").args[0]
    assert model.info.training["steps"] == 3
    image = _image(h=40, w=52)
    colour = by_id["DualGAN_Colorize"].execute(model=model, image=image, render_size=512, saturation=1.0).args[0]
    style = by_id["DualGAN_StyleTransfer"].execute(model=model, image=image, style_name="", strength=1.0, preserve_color="none",
                                                   render_size=512, style_image=_image(h=64, w=64, seed=3)).args[0]
    assert colour.shape == style.shape == (1, 40, 52, 3) and torch.isfinite(colour).all() and torch.isfinite(style).all()
