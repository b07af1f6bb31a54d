"""The graph editor in headless Chromium: every example workflow loads and the DualGAN nodes render.

Skips unless COMFYUI_PATH is set, the python package ``playwright`` imports, and Chromium exists
(Debian's /usr/bin/chromium, or $CHROMIUM). Screenshots go to $DUALGAN_SCREENSHOT_DIR (default: a
temporary folder); the README's picture and the workflow thumbnails come from this test.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path

import pytest

from .comfy_server import REPO, ComfyServer, comfyui_path

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(comfyui_path() is None, reason="COMFYUI_PATH is not set: point it at a ComfyUI checkout to run the browser test"),
    pytest.mark.skipif(sync_playwright is None, reason="the playwright python package is not installed (pip install playwright)"),
    pytest.mark.skipif(not (os.path.exists(CHROMIUM) or shutil.which("chromium")), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
]

DUALGAN_WIDGETS = {
    "DualGAN_Load": {"weights", "dtype"},
    "DualGAN_Colorize": {"render_size", "saturation", "temporal_smoothing"},
    "DualGAN_StyleTransfer": {"style_name", "strength", "preserve_color", "render_size"},
    "DualGAN_Blend": {"style_name", "lambda_content", "lambda_style", "lambda_color", "render_size"},
}

INSPECT_JS = """
async (workflow) => {
  await window.app.loadGraphData(workflow);
  await new Promise(r => setTimeout(r, 800));
  return window.app.graph._nodes.map(n => ({type: n.type, widgets: (n.widgets || []).map(w => w.name),
                                           size: n.size, has_errors: !!n.has_errors}));
}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from gan_core.testing import write_tiny_weights

    srv = ComfyServer(comfyui_path(), tmp_path_factory.mktemp("comfy_browser"))
    write_tiny_weights(srv.models_dir / "dualgan" / "tiny.safetensors")
    srv.start()
    req = urllib.request.Request(f"{srv.base}/settings/Comfy.TutorialCompleted", data=b"true",
                                 headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(req, timeout=10).read()
    yield srv
    srv.stop()


def test_example_workflows_load_and_nodes_render(server, tmp_path):
    shots = Path(os.environ.get("DUALGAN_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    workflows = sorted((REPO / "example_workflows").glob("*.json"))
    assert len(workflows) >= 5
    seen_types = set()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
                                    headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 900})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.base + "/", wait_until="domcontentloaded", timeout=120_000)
        page.wait_for_function("() => window.app && window.app.graph && window.LiteGraph && "
                               "window.LiteGraph.registered_node_types['DualGAN_Blend']", timeout=120_000)
        page.wait_for_timeout(1000)
        startup_errors = list(errors)
        for path in workflows:
            before = len(errors)
            nodes = page.evaluate(INSPECT_JS, json.loads(path.read_text()))
            errors[before:] = [f"{path.name}: {e}" for e in errors[before:]]
            types = [n["type"] for n in nodes]
            assert types == [n["type"] for n in json.loads(path.read_text())["nodes"]], path.name
            for node in nodes:
                if node["type"] in DUALGAN_WIDGETS:
                    seen_types.add(node["type"])
                    assert DUALGAN_WIDGETS[node["type"]] <= set(node["widgets"]), (path.name, node)
            page.evaluate("() => { window.app.canvas.ds.offset = [20, 40]; window.app.canvas.ds.scale = 0.75; "
                          "window.app.graph.setDirtyCanvas(true, true); }")
            page.wait_for_timeout(500)
            page.screenshot(path=str(shots / f"{path.stem}.png"))
        browser.close()
    assert seen_types == set(DUALGAN_WIDGETS)
    # errors the frontend raises on its own before any of our workflows is loaded are not ours
    assert errors == startup_errors, errors
