"""Start and stop a real ComfyUI server with this package installed, for the end-to-end tests.

Needs ``COMFYUI_PATH`` (a ComfyUI checkout). The server runs from that checkout with the python in
``COMFYUI_PYTHON`` (default: ``$COMFYUI_PATH/../venv/bin/python`` when it exists, else this python),
on a free loopback port, with a temporary base directory (``--base-directory``: its own models, input,
output, user and custom_nodes folders, all empty, as on a fresh install), this package linked into
that ``custom_nodes/`` as ``comfyui-dualgan`` (the name a user's install has), and only this custom
node package enabled. Files a test provides (weights, style files) go to ``extra_models/``, which
``extra_model_paths.yaml`` adds, so the pack's own start-up work on ``models/`` and ``input/`` shows.
Nothing is written into the ComfyUI checkout. The server is stopped by its own process id.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACK_FOLDER = "comfyui-dualgan"  # the folder name a user's install has; ComfyUI shows it on node badges and templates


def comfyui_path() -> Path | None:
    value = os.environ.get("COMFYUI_PATH")
    return Path(value) if value else None


def comfyui_python(comfy: Path) -> str:
    if os.environ.get("COMFYUI_PYTHON"):
        return os.environ["COMFYUI_PYTHON"]
    venv = comfy.parent / "venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    def __init__(self, comfy: Path, workdir: Path, startup_timeout: float = 240.0) -> None:
        self.comfy, self.workdir, self.startup_timeout = comfy, workdir, startup_timeout
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.link_name = PACK_FOLDER
        self.link = workdir / "custom_nodes" / self.link_name
        self.log_path = workdir / "server.log"
        self.proc: subprocess.Popen | None = None
        for sub in ("custom_nodes", "extra_models/dualgan", "extra_models/dualgan_styles"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)

    @property
    def input_dir(self) -> Path:
        return self.workdir / "input"

    @property
    def output_dir(self) -> Path:
        return self.workdir / "output"

    @property
    def models_dir(self) -> Path:
        """ComfyUI's models folder (created by ComfyUI and the pack at start-up)."""
        return self.workdir / "models"

    @property
    def extra_models_dir(self) -> Path:
        """Where tests put weights and style files: dualgan/ and dualgan_styles/, via extra_model_paths.yaml."""
        return self.workdir / "extra_models"

    def start(self) -> "ComfyServer":
        if self.link.exists() or self.link.is_symlink():
            self.link.unlink()
        self.link.symlink_to(REPO, target_is_directory=True)
        extra = self.workdir / "extra_model_paths.yaml"
        extra.write_text(f"dualgan_e2e:\n    base_path: {self.extra_models_dir}\n    dualgan: dualgan\n"
                         f"    dualgan_styles: dualgan_styles\n")
        cmd = [comfyui_python(self.comfy), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
               "--disable-auto-launch", "--disable-all-custom-nodes", "--whitelist-custom-nodes", self.link_name,
               "--base-directory", str(self.workdir), "--database-url", f"sqlite:///{self.workdir / 'comfy.db'}",
               "--extra-model-paths-config", str(extra)]
        self.log = self.log_path.open("w")
        self.proc = subprocess.Popen(cmd, cwd=self.comfy, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited during start-up:\n{self.log_text()[-4000:]}")
            try:
                self.get("/system_stats")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"ComfyUI did not answer within {self.startup_timeout}s:\n{self.log_text()[-4000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
        if self.link.is_symlink():
            self.link.unlink()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # ---- HTTP -------------------------------------------------------------------------------
    def get(self, path: str):
        with urllib.request.urlopen(self.base + path, timeout=30) as resp:
            return json.loads(resp.read())

    def post(self, path: str, payload: dict) -> tuple[int, dict]:
        req = urllib.request.Request(self.base + path, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def queue(self, prompt: dict) -> tuple[int, dict]:
        return self.post("/prompt", {"prompt": prompt, "client_id": "dualgan-e2e"})

    def wait(self, prompt_id: str, timeout: float = 600.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            history = self.get(f"/history/{prompt_id}")
            if prompt_id in history and history[prompt_id].get("status", {}).get("completed") is not None:
                entry = history[prompt_id]
                if entry["status"].get("status_str") in ("success", "error"):
                    return entry
            time.sleep(0.5)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout}s:\n{self.log_text()[-3000:]}")
