"""The graph editor in headless Chromium: the template dialog, a template run by pressing Run, and
every template loading with the DualGAN widgets.

Skips unless COMFYUI_PATH is set, the python package ``playwright`` imports, and Chromium exists
(Debian's /usr/bin/chromium, or $CHROMIUM). The server starts as a fresh install (see comfy_server).
Screenshots go to $DUALGAN_SCREENSHOT_DIR (default: a temporary folder). The template thumbnails
are made by ``python -m tests.comfy_browser --thumbnails example_workflows`` with the same code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from .comfy_browser import MARGIN, Editor, chromium_path
from .comfy_server import REPO, ComfyServer, comfyui_path

try:
    import playwright.sync_api  # noqa: F401
except ImportError:  # pragma: no cover - depends on the machine
    playwright = None

pytestmark = [
    pytest.mark.skipif(comfyui_path() is None, reason="COMFYUI_PATH is not set: point it at a ComfyUI checkout to run the browser tests"),
    pytest.mark.skipif(playwright is None, reason="the playwright python package is not installed (the ComfyUI harness venv has it)"),
    pytest.mark.skipif(chromium_path() is None, reason="no Chromium at /usr/bin/chromium or $CHROMIUM (apt-get install chromium)"),
]

USE_STYLE_IMAGE = "(use style_image)"
DUALGAN_WIDGETS = {
    "DualGAN_Load": {"weights", "dtype"},
    "DualGAN_Colorize": {"render_size", "saturation", "temporal_smoothing"},
    "DualGAN_StyleTransfer": {"style_name", "strength", "preserve_color", "render_size"},
    "DualGAN_Blend": {"style_name", "lambda_content", "lambda_style", "lambda_color", "render_size"},
}
TEMPLATES = sorted((REPO / "example_workflows").glob("*.json"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from gan_core.cli import default_weights

    if not default_weights().is_file():
        pytest.skip("the templates load the shipped default weights, which are not installed")
    srv = ComfyServer(comfyui_path(), tmp_path_factory.mktemp("comfy_browser")).start()
    yield srv
    srv.stop()


@pytest.fixture()
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("DUALGAN_SCREENSHOT_DIR", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _colourfulness(pixels: np.ndarray) -> float:
    rgb = pixels.astype(float)
    return float((rgb.max(-1) - rgb.min(-1)).mean())


def test_template_dialog_lists_the_templates_with_their_thumbnails(server, shots):
    from PIL import Image

    with Editor(server, settings={"Comfy.TutorialCompleted": True}) as editor:
        cards = editor.open_templates(server.link_name)
        text = editor.page.get_by_role("dialog").inner_text() + "\n".join(c["card"] for c in cards)
        editor.page.screenshot(path=str(shots / "template_dialog.png"))
    for template in TEMPLATES:
        assert template.stem in text, f"{template.stem} is not in the template dialog"
    assert sorted(tuple(c["natural"]) for c in cards) == sorted(Image.open(t.with_suffix(".jpg")).size for t in TEMPLATES)
    for card in cards:  # thumbnails are meant for this size: about a quarter of their width
        assert 150 <= card["width"] <= card["natural"][0] / 2, card


def test_a_template_opened_from_the_dialog_runs_and_shows_its_result(server, shots):
    from PIL import Image

    with Editor(server) as editor:
        editor.open_templates(server.link_name)
        editor.open_template("colorize_old_photo")
        nodes = {n["type"]: n for n in editor.nodes()}
        assert set(nodes) == {"DualGAN_Load", "LoadImage", "DualGAN_Colorize", "SaveImage"}
        entry = editor.press_run()
        assert entry["status"]["status_str"] == "success", entry["status"]
        editor.wait_for_pictures([nodes["SaveImage"]["id"]])
        after = {n["type"]: n for n in editor.nodes()}
        assert not any(n["has_errors"] for n in after.values())
        x0, y0, _, _ = editor.graph_box()
        shot = shots / "colorize_old_photo_after_run.png"
        editor.shot_graph(shot, width=None)
    picture = np.asarray(Image.open(shot).convert("RGB"))

    def lower_half(node):  # where a node draws its picture, in the screenshot's pixels
        left, top = int(node["pos"][0] - x0 + MARGIN), int(node["pos"][1] - y0 + MARGIN)
        width, height = int(node["size"][0]), int(node["size"][1])
        return picture[top + height // 2:top + height, left:left + width]

    source, result = lower_half(after["LoadImage"]), lower_half(after["SaveImage"])
    assert _colourfulness(result) > _colourfulness(source) + 10, (_colourfulness(result), _colourfulness(source))


def test_every_template_loads_with_the_dualgan_widgets(server, shots):
    seen_types = set()
    with Editor(server, settings={"Comfy.TutorialCompleted": True}) as editor:
        startup_errors = list(editor.errors)
        for path in TEMPLATES:
            workflow = json.loads(path.read_text())
            nodes = editor.load(workflow)
            assert [n["type"] for n in nodes] == [n["type"] for n in workflow["nodes"]], path.name
            for node in nodes:
                widgets = {w["name"]: w for w in node["widgets"]}
                if node["type"] in DUALGAN_WIDGETS:
                    seen_types.add(node["type"])
                    assert DUALGAN_WIDGETS[node["type"]] <= set(widgets), (path.name, node)
                if "style_name" in widgets:  # a dropdown, its first entry the style_image input
                    assert widgets["style_name"]["type"] == "combo" and widgets["style_name"]["options"][0] == USE_STYLE_IMAGE
                    assert widgets["style_name"]["value"] in widgets["style_name"]["options"]
                if node["type"] == "LoadImage":  # the picture is in the fresh install's input folder
                    assert widgets["image"]["value"] in widgets["image"]["options"], (path.name, widgets["image"])
            needs_checkpoint = any(n["type"] == "CheckpointLoaderSimple" for n in nodes)
            notes = [n["widgets"][0]["value"] for n in nodes if n["type"] == "Note"]
            assert all(notes), f"{path.name} has an empty Note"
            if needs_checkpoint:  # the Note says where the checkpoint the pack cannot ship goes
                assert any("models/checkpoints" in note for note in notes), path.name
            editor.page.screenshot(path=str(shots / f"{path.stem}.png"))
        errors = editor.errors
    assert seen_types == set(DUALGAN_WIDGETS)
    # errors the frontend raises on its own before any of our workflows is loaded are not ours
    assert errors == startup_errors, errors


def test_a_workflow_saved_before_the_style_dropdown_loads_and_runs(server):
    """Saved workflows hold style_name as free text ("" meant the style image); the editor keeps the
    value and the server runs it."""
    workflow = json.loads((REPO / "example_workflows" / "stylize_with_painting.json").read_text())
    node = next(n for n in workflow["nodes"] if n["type"] == "DualGAN_StyleTransfer")
    node["widgets_values"][0] = ""
    node["widgets_values"][3] = 64  # render_size: quick
    with Editor(server, settings={"Comfy.TutorialCompleted": True}) as editor:
        nodes = editor.load(workflow)
        widget = next(w for n in nodes if n["type"] == "DualGAN_StyleTransfer" for w in n["widgets"] if w["name"] == "style_name")
        assert widget["value"] == ""
        entry = editor.press_run()
    assert entry["status"]["status_str"] == "success", entry["status"]
