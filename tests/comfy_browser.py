"""Drive ComfyUI's graph editor in headless Chromium (playwright) against a ComfyServer.

It opens the page, loads a workflow, presses Run, opens the template dialog, and takes pictures
cropped to the graph. The browser tests use it, and it remakes the template thumbnails (the
README's first picture is one of them):

    COMFYUI_PATH=$HOME/.cache/comfyui-harness/ComfyUI $HOME/.cache/comfyui-harness/venv/bin/python \\
        -m tests.comfy_browser --thumbnails example_workflows

Needs the ``playwright`` package and a Chromium (Debian's /usr/bin/chromium, or $CHROMIUM).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
# Settings for pictures of the graph alone: no first-run template picker, no badges naming the pack's
# folder or node ids, no minimap or canvas statistics.
CLEAN_SETTINGS = {
    "Comfy.TutorialCompleted": True,
    "Comfy.NodeBadge.NodeSourceBadgeMode": "None",
    "Comfy.NodeBadge.NodeIdBadgeMode": "None",
    "Comfy.Minimap.Visible": False,
    "Comfy.Graph.CanvasInfo": False,
}
THUMBNAIL_WIDTH = 768  # about three times the template dialog's card, so it stays sharp on high-density screens
MARGIN = 24  # canvas pixels kept around the graph
TOP_BAR = 64  # the workflow tabs stay visible in focus mode; the graph is placed below them

GRAPH_BOX_JS = """
() => {
  const th = window.LiteGraph.NODE_TITLE_HEIGHT;
  let box = [Infinity, Infinity, -Infinity, -Infinity];
  for (const n of window.app.graph._nodes) {
    box = [Math.min(box[0], n.pos[0]), Math.min(box[1], n.pos[1] - th),
           Math.max(box[2], n.pos[0] + n.size[0]), Math.max(box[3], n.pos[1] + n.size[1])];
  }
  return box;
}
"""

NODES_JS = """
() => window.app.graph._nodes.map(n => ({
  id: n.id, type: n.type, title: n.title, pos: [...n.pos], size: [...n.size], has_errors: !!n.has_errors,
  widgets: (n.widgets || []).map(w => ({name: w.name, type: w.type, value: w.value,
                                        options: (w.options && w.options.values) || null})),
  images: (n.imgs || []).filter(i => i.complete && i.naturalWidth > 0).length,
}))
"""


def chromium_path() -> str | None:
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    return shutil.which("chromium")


def post_setting(base: str, key: str, value) -> None:
    req = urllib.request.Request(f"{base}/settings/{key}", data=json.dumps(value).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(req, timeout=10).read()


class Editor:
    """One Chromium page on the server's graph editor; use as a context manager."""

    def __init__(self, server, viewport=(1500, 900), settings: dict | None = None) -> None:
        self.server, self.viewport = server, viewport
        self.settings = dict(CLEAN_SETTINGS if settings is None else settings)
        self.errors: list[str] = []

    def __enter__(self) -> "Editor":
        from playwright.sync_api import sync_playwright

        for key, value in self.settings.items():
            post_setting(self.server.base, key, value)
        self._pw = sync_playwright().start()
        self.browser = self._pw.chromium.launch(executable_path=chromium_path(), headless=True, args=ARGS)
        self.page = self.browser.new_page(viewport={"width": self.viewport[0], "height": self.viewport[1]})
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(self.server.base + "/", wait_until="domcontentloaded", timeout=120_000)
        self.page.wait_for_function("() => window.app && window.app.graph && window.LiteGraph && "
                                    "window.LiteGraph.registered_node_types['DualGAN_Blend']", timeout=120_000)
        self.page.wait_for_timeout(1000)
        return self

    def __exit__(self, *exc) -> None:
        self.browser.close()
        self._pw.stop()

    # ---- the graph --------------------------------------------------------------------------
    def load(self, workflow: dict) -> list[dict]:
        self.page.evaluate("async (w) => { await window.app.loadGraphData(w); }", workflow)
        self.page.wait_for_timeout(800)
        return self.nodes()

    def nodes(self) -> list[dict]:
        return self.page.evaluate(NODES_JS)

    def press_run(self, timeout: float = 600.0) -> dict:
        """Click the Run button, wait until the server finished the prompt; returns its history entry."""
        before = set(self.server.get("/history"))
        self.page.get_by_role("button", name="Run", exact=True).first.click()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            new = set(self.server.get("/history")) - before
            if new:
                return self.server.wait(new.pop(), timeout=max(1.0, deadline - time.monotonic()))
            time.sleep(0.5)
        raise TimeoutError(f"no prompt reached the server's history in {timeout}s after pressing Run")

    def wait_for_pictures(self, node_ids, timeout: float = 60.0) -> None:
        """Wait until the editor shows the result pictures of these nodes."""
        self.page.wait_for_function(
            "(ids) => ids.every(id => { const n = window.app.graph.getNodeById(Number(id)); "
            "return n && n.imgs && n.imgs.length && n.imgs.every(i => i.complete && i.naturalWidth > 0); })",
            arg=[str(i) for i in node_ids], timeout=timeout * 1000)
        self.page.wait_for_timeout(500)

    def graph_box(self) -> tuple[float, float, float, float]:
        """The nodes' bounding box in canvas units (titles included): x0, y0, x1, y1. ``shot_graph`` maps
        canvas point (x, y) to picture pixel (x - x0 + MARGIN, y - y0 + MARGIN) before any resize."""
        return tuple(self.page.evaluate(GRAPH_BOX_JS))

    def shot_graph(self, path: Path, width: int | None = THUMBNAIL_WIDTH) -> tuple[int, int]:
        """A picture of the whole graph at 100 % zoom, cropped to it, without the editor's menus."""
        from PIL import Image

        x0, y0, x1, y1 = self.graph_box()
        w, h = int(x1 - x0) + 2 * MARGIN, int(y1 - y0) + 2 * MARGIN
        # the zoom controls sit in the page's bottom-right corner: leave room so the crop misses them
        self.page.set_viewport_size({"width": w + 320, "height": h + TOP_BAR + 120})
        focus = "() => window.app.extensionManager.command.execute('Workspace.ToggleFocusMode')"  # hides the menus
        self.page.evaluate("() => window.app.canvas.deselectAll()")
        self.page.evaluate(focus)
        self.page.evaluate("([x, y]) => { const c = window.app.canvas; c.ds.scale = 1; c.ds.offset = [x, y]; "
                           "c.setDirty(true, true); }", [MARGIN - x0, TOP_BAR + MARGIN - y0])
        self.page.wait_for_timeout(700)
        raw = Path(tempfile.mkdtemp()) / "graph.png"
        self.page.screenshot(path=str(raw), clip={"x": 0, "y": TOP_BAR, "width": w, "height": h})
        image = Image.open(raw).convert("RGB")
        if width and image.width > width:
            image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() in (".jpg", ".jpeg"):
            image.save(path, quality=85, optimize=True)
        else:
            image.save(path)
        shutil.rmtree(raw.parent, ignore_errors=True)
        self.page.evaluate(focus)
        self.page.set_viewport_size({"width": self.viewport[0], "height": self.viewport[1]})
        return image.size

    # ---- the template dialog ---------------------------------------------------------------------
    def open_templates(self, pack: str) -> list[dict]:
        """Open Browse Templates at this pack's section; returns its cards (title, thumbnail loaded)."""
        self.page.evaluate("() => window.app.extensionManager.command.execute('Comfy.BrowseTemplates')")
        dialog = self.page.get_by_role("dialog")
        dialog.get_by_text(pack, exact=True).first.click()
        # The dialog's grid is virtual: it loads a card's thumbnail when the card scrolls into view and
        # recycles the ones that scroll out. So scroll through it and collect the cards seen loaded.
        scroll_js = ("(share) => { const img = document.querySelector('[role=dialog] img'); let el = img && img.parentElement; "
                     "while (el && !(el.scrollHeight > el.clientHeight + 10 && /auto|scroll/.test(getComputedStyle(el).overflowY))) "
                     "el = el.parentElement; if (!el) return 0; el.scrollTop = share * (el.scrollHeight - el.clientHeight); "
                     "return (el.scrollHeight - el.clientHeight) / el.clientHeight; }")
        cards_js = ("() => { const imgs = [...document.querySelectorAll('[role=dialog] img')].filter(i => i.src); "
                    "if (!imgs.length || !imgs.every(i => i.complete)) return null; "
                    "return imgs.filter(i => i.naturalWidth > 0).map(i => { const r = i.getBoundingClientRect(); "
                    "return {width: r.width, height: r.height, natural: [i.naturalWidth, i.naturalHeight], "
                    "card: (() => { let el = i; while (el && !(el.innerText || '').trim()) el = el.parentElement; "
                    "return el ? el.innerText : ''; })()}; }); }")
        self.page.wait_for_function("() => document.querySelector('[role=dialog] img')", timeout=60_000)
        pages = self.page.evaluate(scroll_js, 0)
        steps = max(1, math.ceil(pages * 3))  # a third of the visible height at a time
        cards: dict[str, dict] = {}
        for k in range(steps + 1):
            self.page.evaluate(scroll_js, k / steps)
            self.page.wait_for_timeout(700)  # the grid swaps in the cards now in view
            deadline = time.monotonic() + 30
            while (seen := self.page.evaluate(cards_js)) is None:
                if time.monotonic() > deadline:
                    raise TimeoutError("the template dialog's thumbnails did not load within 30 s")
                self.page.wait_for_timeout(200)
            cards.update((c["card"], c) for c in seen)
        self.page.evaluate(scroll_js, 0)
        self.page.wait_for_timeout(800)
        return list(cards.values())

    def open_template(self, name: str) -> None:
        """Click a card in the open template dialog; the dialog closes and the workflow loads."""
        self.page.get_by_role("dialog").get_by_text(name, exact=True).first.click()
        self.page.wait_for_function("() => !document.querySelector('[role=dialog]')", timeout=30_000)
        self.page.wait_for_timeout(1000)


def make_thumbnails(folder: Path) -> list[Path]:
    """Run every template in the editor as a user would and save <template>.jpg beside it."""
    from .comfy_server import ComfyServer, comfyui_path

    comfy = comfyui_path()
    if comfy is None:
        raise SystemExit("set COMFYUI_PATH to a ComfyUI checkout")
    written = []
    with tempfile.TemporaryDirectory() as work:
        server = ComfyServer(comfy, Path(work)).start()
        try:
            with Editor(server) as editor:
                for template in sorted(folder.glob("*.json")):
                    editor.load(json.loads(template.read_text()))
                    entry = editor.press_run()
                    shown = [k for k, v in entry.get("outputs", {}).items() if v.get("images")]
                    editor.wait_for_pictures(shown)
                    size = editor.shot_graph(template.with_suffix(".jpg"))
                    written.append(template.with_suffix(".jpg"))
                    print(f"{template.with_suffix('.jpg')}: {size[0]} x {size[1]}, results of nodes {', '.join(shown)}")  # noqa: T201 (a CLI)
        finally:
            server.stop()
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.comfy_browser", description=__doc__.split("\n\n")[0])
    parser.add_argument("--thumbnails", type=Path, required=True, help="folder of workflow templates (example_workflows)")
    args = parser.parse_args(argv)
    make_thumbnails(args.thumbnails)
    return 0


if __name__ == "__main__":
    sys.exit(main())
