"""Node contract: schemas, and every node's execute through a stand-in for ComfyUI's modules."""

from __future__ import annotations

import asyncio
import importlib
import json
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
import torch

from gan_core.testing import tiny_fast_config, write_tiny_weights

from . import comfy_stub

REPO = Path(__file__).resolve().parents[1]
NODE_IDS = ["DualGAN_Load", "DualGAN_Colorize", "DualGAN_StyleTransfer", "DualGAN_Blend"]


def _restore(saved: dict) -> None:
    comfy_stub.forget_pack()
    for name, module in saved.items():
        if module is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = module


@pytest.fixture()
def comfy(tmp_path):
    """Install the stand-in modules, import the pack fresh under its own name, and clean everything up after."""
    saved = {name: sys.modules.get(name) for name in comfy_stub.STUB_MODULES}
    comfy_stub.forget_pack()
    models = tmp_path / "models"
    (models / "dualgan").mkdir(parents=True)
    (models / "dualgan_styles").mkdir()
    rec = comfy_stub.install(str(models), input_dir=str(tmp_path / "input"))
    write_tiny_weights(models / "dualgan" / "tiny.safetensors")
    pack = comfy_stub.import_pack()
    yield types.SimpleNamespace(pack=pack, nodes=pack.nodes, rec=rec, models=models, input=tmp_path / "input")
    _restore(saved)


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


def test_cancel_is_checked_inside_a_tile_not_only_between_tiles(comfy):
    """ComfyUI's interrupt check reaches gan_core's passes: a full-resolution Style Transfer asks before
    the first tile's encoder has finished, and many times per progress step."""
    model = _load(comfy)
    style = _nodes_by_id(comfy.nodes)["DualGAN_StyleTransfer"]
    kwargs = dict(model=model, image=_image(h=90, w=70), style_name="tiny_style", strength=1.0, preserve_color="none",
                  render_size=0)
    style.execute(**kwargs)
    steps, checks = len(comfy.rec.progress), comfy.rec.interrupt_checks
    assert steps >= 1 and checks > 4 * steps, (steps, checks)
    comfy.rec.progress.clear()
    comfy.rec.interrupt_checks = 0
    comfy.rec.interrupt_after = 0  # Cancel pressed before the run
    with pytest.raises(comfy_stub.InterruptProcessingException):
        style.execute(**kwargs)
    assert comfy.rec.progress == [] and comfy.rec.interrupt_checks == 1  # stopped at the first check (the first lightness strip)


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
    saved = {name: sys.modules.get(name) for name in comfy_stub.STUB_MODULES}
    built, opened = [], []

    def patch_library(pack: str) -> None:
        model = importlib.import_module(f"{pack}.gan_core.model")
        weights = importlib.import_module(f"{pack}.gan_core.weights")
        monkeypatch.setattr(model.DualGAN, "__init__", lambda self, *a, **k: built.append(1))
        monkeypatch.setattr(weights, "read_header", lambda *a, **k: opened.append(1))

    comfy_stub.forget_pack()
    try:
        comfy_stub.install(str(tmp_path / "models"), input_dir=str(tmp_path / "input"))
        pack = comfy_stub.import_pack(before_exec=patch_library)
        assert hasattr(pack, "comfy_entrypoint")
    finally:
        _restore(saved)
    assert not built and not opened
    assert not (tmp_path / "input").exists() and not (tmp_path / "models").exists()  # start-up work waits for ComfyUI


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


# ---- the style dropdown ----------------------------------------------------------------------------

def _style_input(cls):
    return next(i for i in cls.define_schema().inputs if i.id == "style_name")


def test_style_dropdown_lists_shipped_folder_and_style_file_styles(comfy):
    from gan_core.testing import tiny_model
    from gan_core.weights import inspect_weights, save_style_file

    choices = comfy.nodes.style_choices
    save_style_file(comfy.models / "dualgan_styles" / "extra.safetensors", tiny_model(style_names=("extra",)), ["extra"])
    (comfy.models / "dualgan_styles" / "junk.safetensors").write_bytes(b"junk junk junk")  # skipped, not fatal
    shipped = sorted(inspect_weights(comfy.nodes.loader.SHIPPED_WEIGHTS).styles) if comfy.nodes.loader.SHIPPED_WEIGHTS.is_file() else []
    by_id = _nodes_by_id(comfy.nodes)
    for node_id in ("DualGAN_StyleTransfer", "DualGAN_Blend"):
        item = _style_input(by_id[node_id])
        assert item.io_type == "COMBO"
        assert item.options[0] == choices.USE_STYLE_IMAGE and item.default == choices.USE_STYLE_IMAGE
        assert item.options[1:] == sorted({*shipped, "tiny_style", "extra"}), item.options
        for name in shipped:
            assert name in item.tooltip  # the tooltip names the styles that come with the pack
    # a new style file shows up on the next schema (ComfyUI rebuilds it for /object_info)
    save_style_file(comfy.models / "dualgan_styles" / "later.safetensors", tiny_model(style_names=("later",)), ["later"])
    assert "later" in _style_input(by_id["DualGAN_StyleTransfer"]).options


def test_style_dropdown_entries_and_old_free_text_values(comfy):
    model = _load(comfy)
    by_id = _nodes_by_id(comfy.nodes)
    style = by_id["DualGAN_StyleTransfer"]
    use_image = comfy.nodes.style_choices.USE_STYLE_IMAGE
    kwargs = dict(model=model, image=_image(), strength=1.0, preserve_color="none", render_size=16)
    painting = _image(h=24, w=24, seed=4)
    by_entry = style.execute(style_name=use_image, style_image=painting, **kwargs).args[0]
    by_old_empty = style.execute(style_name="", style_image=painting, **kwargs).args[0]
    assert torch.equal(by_entry, by_old_empty)
    by_name = style.execute(style_name="tiny_style", **kwargs).args[0]
    by_old_text = style.execute(style_name="  tiny_style ", **kwargs).args[0]  # typed by hand before the dropdown
    assert torch.equal(by_name, by_old_text)
    with pytest.raises(ValueError, match="no style given.*style_image.*tiny_style"):
        style.execute(style_name=use_image, **kwargs)
    # saved workflows may hold any text: validation lets it through, the run names the known styles
    for node_id in ("DualGAN_StyleTransfer", "DualGAN_Blend"):
        assert by_id[node_id].validate_inputs(style_name="my old style") is True
        assert by_id[node_id].validate_inputs(style_name=None) is True  # a linked value is not known yet
        assert "must be text" in by_id[node_id].validate_inputs(style_name=3)
    with pytest.raises(ValueError, match="unknown style 'my old style'.*tiny_style"):
        style.execute(style_name="my old style", **kwargs)


def test_descriptions_and_tooltips_use_the_users_words(comfy):
    jargon = ("seed", "encoder pass", "statistics", "DUALGAN model", "luminance", "Lab a/b", "decoder")
    for cls in comfy.nodes.NODES:
        schema = cls.define_schema()
        texts = [schema.description] + [i.tooltip for i in schema.inputs + schema.outputs]
        for text in texts:
            assert not any(word in text for word in jargon), (schema.node_id, text)


# ---- start-up: folders and the templates' pictures ----------------------------------------------

def test_model_folders_are_registered_with_extra_paths_and_created_on_load(tmp_path):
    saved = {name: sys.modules.get(name) for name in comfy_stub.STUB_MODULES}
    comfy_stub.forget_pack()
    try:
        comfy_stub.install(str(tmp_path / "models"), input_dir=str(tmp_path / "input"))
        folder_paths = sys.modules["folder_paths"]
        folder_paths.folder_names_and_paths["dualgan"] = ([str(tmp_path / "elsewhere")], set())  # extra_model_paths.yaml
        pack = comfy_stub.import_pack()
        paths, exts = folder_paths.folder_names_and_paths["dualgan"]
        assert paths == [str(tmp_path / "models" / "dualgan"), str(tmp_path / "elsewhere")]
        assert exts == {".safetensors", ".sft"}
        assert folder_paths.folder_names_and_paths["dualgan_styles"][0] == [str(tmp_path / "models" / "dualgan_styles")]
        assert not (tmp_path / "models").exists()
        extension = asyncio.run(pack.comfy_entrypoint())
        assert (tmp_path / "models" / "dualgan").is_dir() and (tmp_path / "models" / "dualgan_styles").is_dir()
        assert [c.define_schema().node_id for c in asyncio.run(extension.get_node_list())] == NODE_IDS
    finally:
        _restore(saved)


def test_on_load_copies_the_templates_pictures_and_keeps_the_users_files(comfy):
    first_run = comfy.nodes.first_run
    shipped = first_run.example_pictures()
    assert len(shipped) >= 4
    comfy.input.mkdir()
    mine = comfy.input / shipped[0].name
    mine.write_bytes(b"the user's own picture")
    asyncio.run(comfy.nodes.DualGANExtension().on_load())
    assert mine.read_bytes() == b"the user's own picture"
    for picture in shipped[1:]:
        assert (comfy.input / picture.name).read_bytes() == picture.read_bytes()
    assert first_run.copy_example_pictures(comfy.input) == []  # a second start copies nothing


def _templates() -> list[tuple[str, dict]]:
    return [(p.name, json.loads(p.read_text())) for p in sorted((REPO / "example_workflows").glob("*.json"))]


def test_every_template_loads_only_shipped_and_listed_pictures():
    listed = (REPO / "example_workflows" / "PICTURES.md").read_text()
    shipped = {p.name: p for p in (REPO / "example_workflows" / "input").iterdir()}
    for name, path in shipped.items():
        assert f"| `{name}` |" in listed, f"{name} has no line (source, licence) in PICTURES.md"
        assert path.stat().st_size <= 120_000, f"{name} is {path.stat().st_size} bytes; keep example pictures small"
    for row in (line for line in listed.splitlines() if line.startswith("| `")):
        assert row.count("|") == 5 and row.split("|")[4].strip(), f"no licence in {row}"
    used = set()
    for template, workflow in _templates():
        for node in workflow["nodes"]:
            if node["type"] == "LoadImage":
                picture = node["widgets_values"][0]
                assert picture in shipped, f"{template}: LoadImage names {picture!r}, which the pack does not ship"
                used.add(picture)
    assert used == set(shipped), f"pictures no template uses: {set(shipped) - used}"


def test_every_template_has_a_readable_thumbnail():
    # ComfyUI's template dialog shows <name>.jpg beside <name>.json; without it the card is blank.
    from PIL import Image

    for name, _ in _templates():
        thumb = REPO / "example_workflows" / (name[: -len(".json")] + ".jpg")
        assert thumb.is_file(), f"{name} has no thumbnail {thumb.name}"
        assert thumb.stat().st_size <= 150_000, f"{thumb.name} is {thumb.stat().st_size} bytes (keep it under 150 KB)"
        with Image.open(thumb) as im:
            assert im.format == "JPEG", f"{thumb.name} is {im.format}, not JPEG"
            assert im.width >= 256 and im.height >= 128, f"{thumb.name} is {im.width} x {im.height}: too small to read"


def test_templates_style_values_are_dropdown_entries_and_checkpoints_have_a_note(comfy):
    by_id = _nodes_by_id(comfy.nodes)
    for template, workflow in _templates():
        types_in = {n["type"] for n in workflow["nodes"]}
        for node in workflow["nodes"]:
            if node["type"] in ("DualGAN_StyleTransfer", "DualGAN_Blend"):
                assert node["widgets_values"][0] in _style_input(by_id[node["type"]]).options, template
        if "CheckpointLoaderSimple" in types_in:
            notes = [n["widgets_values"][0] for n in workflow["nodes"] if n["type"] in ("Note", "MarkdownNote")]
            assert any("models/checkpoints" in t and "1.5" in t for t in notes), f"{template} needs a Note saying what to put where"


# ---- imports: relative, next to another pack's gan_core --------------------------------------------

CLASH_SCRIPT = textwrap.dedent("""
    import importlib, importlib.util, sys, asyncio
    import torch
    stub_spec = importlib.util.spec_from_file_location("comfy_stub", {stub!r})
    comfy_stub = importlib.util.module_from_spec(stub_spec); stub_spec.loader.exec_module(comfy_stub)
    comfy_stub.install({models!r}, input_dir={inputs!r})

    order = sys.argv[1]
    if order == "other first":
        sys.path.insert(0, {other!r})  # what packs that put their own folder on sys.path do
        import gan_core
        assert gan_core.WHO == "the other pack"
    path_before = list(sys.path)
    pack = comfy_stub.import_pack()
    asyncio.run(pack.comfy_entrypoint())
    assert sys.path == path_before, "importing the pack changed sys.path"
    if order == "ours first":
        sys.path.insert(0, {other!r})
        import gan_core
    assert sys.modules["gan_core"].WHO == "the other pack" and gan_core.greet() == "hello from the other pack"
    testing = importlib.import_module(comfy_stub.PACK + ".gan_core.testing")
    testing.write_tiny_weights({models!r} + "/dualgan/tiny.safetensors")
    nodes = {{c.define_schema().node_id: c for c in pack.nodes.NODES}}
    model = nodes["DualGAN_Load"].execute(weights="tiny.safetensors", dtype="auto").args[0]
    out = nodes["DualGAN_Colorize"].execute(model=model, image=torch.rand(1, 20, 24, 3), render_size=16,
                                             saturation=1.0).args[0]
    assert out.shape == (1, 20, 24, 3)
    assert type(model.model).__module__ == comfy_stub.PACK + ".gan_core.model"
    print("both work")
""")


@pytest.mark.parametrize("order", ["other first", "ours first"])
def test_pack_works_next_to_another_packs_gan_core(tmp_path, order):
    other = tmp_path / "other_pack"
    (other / "gan_core").mkdir(parents=True)
    (other / "gan_core" / "__init__.py").write_text('WHO = "the other pack"\n\ndef greet():\n    return "hello from the other pack"\n')
    (tmp_path / "models" / "dualgan").mkdir(parents=True)
    script = CLASH_SCRIPT.format(stub=str(REPO / "tests" / "comfy_stub.py"), models=str(tmp_path / "models"),
                                 inputs=str(tmp_path / "input"), other=str(other))
    # -I: no PYTHONPATH, no user site, and not this checkout on sys.path (as inside ComfyUI)
    done = subprocess.run([sys.executable, "-I", "-c", script, order], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0 and "both work" in done.stdout, done.stderr[-3000:]


# ---- guided colour: hints, hint_mask, reference -----------------------------------------------------

@pytest.fixture()
def guided(comfy):
    """The stand-in ComfyUI with a tiny guided weights file loaded."""
    import dataclasses

    from gan_core.config import tiny_config

    write_tiny_weights(comfy.models / "dualgan" / "guided.safetensors", config=dataclasses.replace(tiny_config(), guided=True))
    return _load(comfy, "guided.safetensors")


def _grey_scan(b=1, h=24, w=32):
    return _image(b=b, h=h, w=w).mean(dim=-1, keepdim=True).expand(-1, -1, -1, 3).contiguous()


def _painted(scan, colour=(0.1, 0.3, 0.9)):
    hints = scan.clone()
    hints[:, 2:8, 3:12] = torch.tensor(colour)
    return hints


def test_colorize_and_blend_take_hints_mask_and_reference(comfy, guided):
    by_id = _nodes_by_id(comfy.nodes)
    colorize = by_id["DualGAN_Colorize"]
    names = {i.id: i for i in colorize.define_schema().inputs}
    assert all(names[n].optional and names[n].tooltip for n in ("hints", "hint_mask", "reference"))
    scan = _grey_scan()
    auto = colorize.execute(model=guided, image=scan, render_size=16, saturation=1.0).args[0]
    hinted = colorize.execute(model=guided, image=scan, render_size=16, saturation=1.0, hints=_painted(scan)).args[0]
    assert hinted.shape == auto.shape and not torch.equal(hinted, auto)
    mask = torch.zeros(1, 12, 16)
    mask[:, 1:4, 1:6] = 1.0  # half the picture's size: scaled to it
    masked = colorize.execute(model=guided, image=scan, render_size=16, saturation=1.0, hints=_painted(scan), hint_mask=mask).args[0]
    assert not torch.equal(masked, auto)
    reference = _image(b=2, h=30, w=30, seed=7)
    referenced = colorize.execute(model=guided, image=scan, render_size=16, saturation=1.0, reference=reference).args[0]
    assert not torch.equal(referenced, auto)
    blend = by_id["DualGAN_Blend"].execute(model=guided, image=scan, style_name="tiny_style", lambda_content=1.0,
                                           lambda_style=1.0, lambda_color=1.0, render_size=16, hints=_painted(scan),
                                           reference=reference).args
    both = colorize.execute(model=guided, image=scan, render_size=16, saturation=1.0, hints=_painted(scan),
                            reference=reference).args[0]
    assert torch.equal(blend[0], both) and torch.equal(blend[1], both)


def test_hints_that_mark_nothing_colour_automatically(comfy, guided, caplog):
    colorize = _nodes_by_id(comfy.nodes)["DualGAN_Colorize"]
    scan = _grey_scan()
    auto = colorize.execute(model=guided, image=scan, render_size=16, saturation=1.0).args[0]
    for kwargs in ({"hints": scan}, {"hints": scan, "hint_mask": torch.zeros(1, 64, 64)}):
        out = colorize.execute(model=guided, image=scan, render_size=16, saturation=1.0, **kwargs).args[0]
        assert torch.equal(out, auto)
    assert "no colour hints" in caplog.text
    # Load Image's empty mask beside painted strokes: the strokes are found by their colour.
    painted = colorize.execute(model=guided, image=scan, render_size=16, saturation=1.0, hints=_painted(scan)).args[0]
    with_empty_mask = colorize.execute(model=guided, image=scan, render_size=16, saturation=1.0, hints=_painted(scan),
                                       hint_mask=torch.zeros(1, 64, 64)).args[0]
    assert torch.equal(painted, with_empty_mask)


def test_guidance_input_errors_are_one_sentence(comfy, guided):
    by_id = _nodes_by_id(comfy.nodes)
    colorize = by_id["DualGAN_Colorize"]
    scan = _grey_scan(b=3)
    cases = [
        (dict(model=guided, hint_mask=torch.ones(1, 24, 32)), "hint_mask is connected but hints is not"),
        (dict(model=guided, hints=_painted(_grey_scan(b=2))), "hints batch has 2 images"),
        (dict(model=guided, hints=_painted(scan[:1]), hint_mask=torch.ones(2, 24, 32)), "hint mask batch has 2"),
        (dict(model=guided, reference=_grey_scan()), "reference image 1 is grey"),
        (dict(model=_load(comfy), hints=_painted(scan[:1])), "predate"),
        (dict(model=_load(comfy), reference=_image(seed=3)), "predate"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message) as caught:
            colorize.execute(image=scan, render_size=16, saturation=1.0, **kwargs)
        assert "\n" not in str(caught.value)


def test_video_batch_follows_frames_only_when_smoothing_is_on(comfy, guided):
    colorize = _nodes_by_id(comfy.nodes)["DualGAN_Colorize"]
    frames = _grey_scan(b=3)
    reference = _image(h=30, w=30, seed=7)
    alone = colorize.execute(model=guided, image=frames, render_size=16, saturation=1.0, reference=reference).args[0]
    single = [colorize.execute(model=guided, image=frames[i:i + 1], render_size=16, saturation=1.0,
                               reference=reference).args[0] for i in range(3)]
    assert torch.allclose(alone, torch.cat(single), atol=1e-5)  # an ordinary batch: no frame borrows from another
    video = colorize.execute(model=guided, image=frames, render_size=16, saturation=1.0, temporal_smoothing=0.05,
                             reference=reference).args[0]
    assert torch.allclose(video[:1], alone[:1], atol=0.05) and not torch.allclose(video[1:], alone[1:], atol=1e-3)
