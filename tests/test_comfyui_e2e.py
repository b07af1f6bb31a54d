"""End-to-end against the real ComfyUI server: start-up, /object_info, every template, errors.

Skips unless COMFYUI_PATH points at a ComfyUI checkout (see docs/testing.md). The server starts as on
a fresh install: empty models and input folders, so what the templates need must come from the pack.
Uses the shipped default weights when they are installed, else a tiny random model written for the test.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from PIL import Image

from gan_core.color import rgb_to_lab

from .comfy_server import REPO, ComfyServer, comfyui_path

pytestmark = pytest.mark.skipif(
    comfyui_path() is None,
    reason="COMFYUI_PATH is not set: point it at a ComfyUI checkout (e.g. the harness's $HOME/.cache/comfyui-harness/ComfyUI) "
           "to run the real-server tests",
)

NODE_IDS = ["DualGAN_Load", "DualGAN_Colorize", "DualGAN_StyleTransfer", "DualGAN_Blend"]
USE_STYLE_IMAGE = "(use style_image)"
OLD_PHOTO, PHOTO, PAINTING = "dualgan_old_photo.jpg", "dualgan_photo.jpg", "dualgan_painting.jpg"
FRONTEND_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}  # the graph editor's own nodes; never queued


def _write_copied_style_file(path, weights_path) -> None:
    """A style file the default weights can load: their first trained style under a new name."""
    from gan_core.weights import load_weights, save_style_file

    model, _ = load_weights(weights_path)
    model.add_style("e2e_copy", copy.deepcopy(model.styles[model.style_names[0]]))
    save_style_file(path, model, ["e2e_copy"])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from gan_core.cli import default_weights
    from gan_core.testing import write_tiny_weights

    srv = ComfyServer(comfyui_path(), tmp_path_factory.mktemp("comfy"))
    extra = srv.extra_models_dir
    if default_weights().is_file():
        srv.weights = "dualgan_default.safetensors"
        _write_copied_style_file(extra / "dualgan_styles" / "e2e_styles.safetensors", default_weights())
    else:
        srv.weights = "tiny.safetensors"
        write_tiny_weights(extra / "dualgan" / "tiny.safetensors")
    (extra / "dualgan" / "broken.safetensors").write_bytes(b"\x05\x00\x00")
    srv.start()
    yield srv
    srv.stop()


def _run_ok(server, prompt) -> dict:
    status, body = server.queue(prompt)
    assert status == 200 and not body.get("node_errors"), body
    entry = server.wait(body["prompt_id"])
    assert entry["status"]["status_str"] == "success", entry["status"]
    return entry["outputs"]


def _saved(server, outputs, node) -> list[Image.Image]:
    return [Image.open(server.output_dir / img.get("subfolder", "") / img["filename"]).convert("RGB") for img in outputs[node]["images"]]


def _chroma(image: Image.Image) -> float:
    import torch

    t = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    return float(rgb_to_lab(t)[:, 1:].abs().mean())


def _graph(weights: str, tail: dict, photo: str = OLD_PHOTO) -> dict:
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": photo}},
        "2": {"class_type": "DualGAN_Load", "inputs": {"weights": weights, "dtype": "auto"}},
        "5": {"class_type": "LoadImage", "inputs": {"image": PAINTING}},
    }
    graph.update(tail)
    return graph


def _colorize_tail(prefix="colorized") -> dict:
    return {
        "3": {"class_type": "DualGAN_Colorize", "inputs": {"model": ["2", 0], "image": ["1", 0], "render_size": 64,
                                                            "saturation": 1.0, "temporal_smoothing": 0.0}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": prefix}},
    }


def _style_tail(style_name: str, with_image: bool = True) -> dict:
    inputs = {"model": ["2", 0], "image": ["1", 0], "style_name": style_name, "strength": 1.0, "preserve_color": "none",
              "render_size": 64}
    if with_image:
        inputs["style_image"] = ["5", 0]
    return {"3": {"class_type": "DualGAN_StyleTransfer", "inputs": inputs},
            "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "stylized"}}}


# ---- a fresh install -------------------------------------------------------------------------------

def test_start_up_creates_the_model_folders_and_copies_the_pictures(server):
    assert (server.models_dir / "dualgan").is_dir() and (server.models_dir / "dualgan_styles").is_dir()
    shipped = sorted(p.name for p in (REPO / "example_workflows" / "input").iterdir())
    assert sorted(p.name for p in server.input_dir.iterdir()) == shipped  # the input folder held nothing else
    for name in shipped:
        assert (server.input_dir / name).read_bytes() == (REPO / "example_workflows" / "input" / name).read_bytes()
    assert {"dualgan", "dualgan_styles"} <= set(server.get("/models"))
    assert "broken.safetensors" in server.get("/models/dualgan")  # the extra_model_paths.yaml folder is kept


def test_object_info_lists_the_nodes(server):
    info = server.get("/object_info")
    for node_id in NODE_IDS:
        assert node_id in info, f"{node_id} missing from /object_info"
        node = info[node_id]
        assert node["category"] == "DualGAN" and node["description"]
        assert "seed" not in node["description"]
        for section in ("required", "optional"):
            for name, spec in node["input"].get(section, {}).items():
                assert spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
    assert info["DualGAN_Load"]["output"] == ["DUALGAN"]
    assert info["DualGAN_Blend"]["output_name"] == ["blend", "colorized", "stylized"]
    assert server.weights in json.dumps(info["DualGAN_Load"]["input"]["required"]["weights"])


def test_style_dropdown_options(server):
    from gan_core.cli import default_weights
    from gan_core.weights import inspect_weights

    info = server.get("/object_info")
    expected = sorted({*inspect_weights(default_weights()).styles, "e2e_copy"}) if default_weights().is_file() else ["tiny_style"]
    for node_id in ("DualGAN_StyleTransfer", "DualGAN_Blend"):
        kind, spec = info[node_id]["input"]["required"]["style_name"]
        assert kind == "COMBO"
        assert spec["options"] == [USE_STYLE_IMAGE, *expected], spec["options"]
        assert spec["default"] == USE_STYLE_IMAGE
        if default_weights().is_file():
            assert all(name in spec["tooltip"] for name in inspect_weights(default_weights()).styles), spec["tooltip"]


def test_colorize_workflow(server):
    outputs = _run_ok(server, _graph(server.weights, _colorize_tail()))
    (image,) = _saved(server, outputs, "4")
    assert image.size == Image.open(server.input_dir / OLD_PHOTO).size
    assert _chroma(image) > 1.0  # no longer grey


def test_style_transfer_by_image_by_dropdown_style_and_by_old_free_text(server):
    photo = np.asarray(Image.open(server.input_dir / PHOTO).convert("RGB"), dtype=float)
    results = {}
    names = [USE_STYLE_IMAGE, ""]  # "" is what workflows saved before the dropdown hold for "use style_image"
    if server.weights == "dualgan_default.safetensors":
        names += ["e2e_copy", " e2e_copy "]  # a style file's style, picked and (old workflows) typed
    for name in names:
        outputs = _run_ok(server, _graph(server.weights, _style_tail(name, with_image=name.strip() in ("", USE_STYLE_IMAGE)), PHOTO))
        (image,) = _saved(server, outputs, "4")
        assert image.size == (photo.shape[1], photo.shape[0])
        assert np.abs(np.asarray(image, dtype=float) - photo).mean() > 2.0  # repainted
        results[name.strip()] = np.asarray(image)
    assert np.array_equal(results[USE_STYLE_IMAGE], results[""])
    if "e2e_copy" in results:
        assert not np.array_equal(results["e2e_copy"], results[""])


def test_blend_workflow_three_outputs(server):
    tail = {"3": {"class_type": "DualGAN_Blend", "inputs": {"model": ["2", 0], "image": ["1", 0], "style_name": USE_STYLE_IMAGE,
                                                             "lambda_content": 0.5, "lambda_style": 1.0, "lambda_color": 0.5,
                                                             "render_size": 64, "style_image": ["5", 0]}}}
    for i, name in enumerate(["blend", "colorized", "stylized"]):
        tail[str(10 + i)] = {"class_type": "SaveImage", "inputs": {"images": ["3", i], "filename_prefix": name}}
    outputs = _run_ok(server, _graph(server.weights, tail, PHOTO))
    images = [_saved(server, outputs, str(10 + i))[0] for i in range(3)]
    assert all(im.size == (600, 400) for im in images)
    assert len({np.asarray(im).tobytes() for im in images}) == 3


def _error_message(entry: dict) -> str:
    for event, data in entry["status"].get("messages", []):
        if event == "execution_error":
            return data["exception_message"]
    raise AssertionError(f"no execution_error in {entry['status']}")


def test_bad_inputs_give_clear_errors_and_server_keeps_serving(server):
    # a weights name that is not in the folder
    status, body = server.queue(_graph("nope.safetensors", _colorize_tail("x")))
    if status == 400:
        assert "2" in body.get("node_errors", {}), body
    else:  # V3 combos are not checked against their options at validation time; Load DualGAN refuses it
        message = _error_message(server.wait(body["prompt_id"]))
        assert "nope.safetensors is not a weights file in the DualGAN model folders" in message, message
    # a broken weights file that is in the folder: our one sentence, naming the file, in the red box
    status, body = server.queue(_graph("broken.safetensors", _colorize_tail("x")))
    assert status == 200, body
    entry = server.wait(body["prompt_id"])
    assert entry["status"]["status_str"] == "error"
    message = _error_message(entry)
    assert "broken.safetensors" in message and "too short" in message and "Traceback" not in message, message
    # a style transfer with no style: our sentence again
    status, body = server.queue(_graph(server.weights, _style_tail(USE_STYLE_IMAGE, with_image=False)))
    assert status == 200, body
    assert "no style given" in _error_message(server.wait(body["prompt_id"]))
    # an old workflow's typed style name that no file has: accepted by validation, refused by the node with the names there are
    status, body = server.queue(_graph(server.weights, _style_tail("my old style", with_image=False)))
    assert status == 200, body
    message = _error_message(server.wait(body["prompt_id"]))
    assert "unknown style 'my old style'" in message, message
    # a file that is not an image: refused (by ComfyUI's LoadImage) without taking the server down
    (server.input_dir / "not_an_image.png").write_text("this is not a picture")
    graph = _graph(server.weights, _colorize_tail("x"))
    graph["1"]["inputs"]["image"] = "not_an_image.png"
    status, body = server.queue(graph)
    if status == 200:
        assert server.wait(body["prompt_id"])["status"]["status_str"] == "error"
    else:
        assert status == 400
    (server.input_dir / "not_an_image.png").unlink()
    # and the next good prompt still runs
    test_colorize_workflow(server)


# ---- the shipped templates, as a user presses Run -------------------------------------------------

def graph_to_api(workflow: dict, object_info: dict) -> dict:
    """The frontend's graph format to the API format, using /object_info for widget names and order."""
    links = {link[0]: link for link in workflow["links"]}
    api = {}
    for node in workflow["nodes"]:
        if node["type"] in FRONTEND_ONLY:
            continue
        info = object_info[node["type"]]
        order = info.get("input_order", {})
        names = order.get("required", list(info["input"].get("required", {}))) + order.get("optional", list(info["input"].get("optional", {})))
        specs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        linked = {i["name"]: links[i["link"]] for i in node.get("inputs", []) if i.get("link") is not None}
        values = list(node.get("widgets_values", []))
        inputs = {}
        for name in names:
            if name in linked:
                inputs[name] = [str(linked[name][1]), linked[name][2]]
                continue
            kind = specs[name][0]
            if not (isinstance(kind, list) or kind in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")):
                continue
            if values:
                inputs[name] = values.pop(0)
            if specs[name][1].get("control_after_generate") and values:
                values.pop(0)
        api[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return api


def _templates() -> list:
    return sorted((REPO / "example_workflows").glob("*.json"))


def test_templates_are_served_with_the_checkpoint_note(server):
    listed = server.get("/workflow_templates")
    assert sorted(listed[server.link_name]) == sorted(p.stem for p in _templates())
    for path in _templates():
        served = server.get(f"/api/workflow_templates/{server.link_name}/{path.name}")
        assert served == json.loads(path.read_text())
        if any(n["type"] == "CheckpointLoaderSimple" for n in served["nodes"]):
            notes = [n["widgets_values"][0] for n in served["nodes"] if n["type"] == "Note"]
            assert any("Stable Diffusion 1.5" in t and "models/checkpoints" in t for t in notes), notes


def test_every_template_runs_as_shipped(server):
    """Each template exactly as the user gets it (its pictures, weights and sizes); only a template that
    needs a diffusion checkpoint the fresh install lacks loses that branch, and its DualGAN part still runs."""
    info = server.get("/object_info")
    checkpoints = info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
    ran = []
    for path in _templates():
        workflow = json.loads(path.read_text())
        types = {n["type"] for n in workflow["nodes"]} - FRONTEND_ONLY
        assert types <= set(info), f"{path.name} uses unknown nodes {types - set(info)}"
        api = graph_to_api(workflow, info)
        if server.weights != "dualgan_default.safetensors":
            for node in api.values():
                if node["class_type"] == "DualGAN_Load":
                    node["inputs"]["weights"] = server.weights
        status, body = server.queue(api)
        assert status == 200, f"{path.name}: {body}"
        savers = {k for k, v in api.items() if v["class_type"] == "SaveImage"}
        missing_checkpoint = "CheckpointLoaderSimple" in types and not checkpoints
        if missing_checkpoint:  # ComfyUI drops the outputs that need the checkpoint and runs the rest
            errors = body["node_errors"]
            assert {api[k]["class_type"] for k in errors} == {"CheckpointLoaderSimple"}, f"{path.name}: {errors}"
            dropped = {o for e in errors.values() for o in e["dependent_outputs"]}
            expected = savers - dropped
            assert dropped and expected, f"{path.name}: {errors}"
        else:
            assert not body.get("node_errors"), f"{path.name}: {body['node_errors']}"
            expected = savers
        entry = server.wait(body["prompt_id"])
        assert entry["status"]["status_str"] == "success", f"{path.name}: {entry['status']}"
        for node_id in expected:
            assert entry["outputs"][node_id]["images"], f"{path.name}: SaveImage {node_id} saved nothing"
        ran.append(path.name)
    assert len(ran) == len(_templates()) >= 5, ran
