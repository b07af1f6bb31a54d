"""Load DualGAN: a weights file from models/dualgan (or the shipped default) as a DUALGAN model."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import folder_paths
from comfy_api.latest import io

from ..gan_core.precision import DTYPES
from ..gan_core.shipped import DEFAULT_WEIGHTS, SHIPPED_WEIGHTS
from ..gan_core.weights import WeightsError, load_style_file, load_weights
from .comfy_glue import DualGANHandle

logger = logging.getLogger(__name__)

DualGANModel = io.Custom("DUALGAN")
EXTENSIONS = {".safetensors", ".sft"}
MODEL_FOLDERS = ("dualgan", "dualgan_styles")  # weights files, style files


def register_folders() -> None:
    """models/dualgan for weights, models/dualgan_styles for style files, each with the folders named in
    extra_model_paths.yaml after it; only .safetensors/.sft files are listed."""
    for name in MODEL_FOLDERS:
        default = os.path.join(folder_paths.models_dir, name)
        paths = list(folder_paths.folder_names_and_paths.get(name, ([], set()))[0])
        if default not in paths:
            paths.insert(0, default)
        folder_paths.folder_names_and_paths[name] = (paths, EXTENSIONS)


def weight_choices() -> list[str]:
    files = [f for f in folder_paths.get_filename_list("dualgan") if f != DEFAULT_WEIGHTS]
    return [DEFAULT_WEIGHTS] + files


def resolve_weights(name: str) -> Path:
    if name == DEFAULT_WEIGHTS:
        user_copy = folder_paths.get_full_path("dualgan", name)
        if user_copy:
            return Path(user_copy)
        if not SHIPPED_WEIGHTS.is_file():
            raise FileNotFoundError(
                "no default DualGAN weights are installed yet: put a DualGAN .safetensors file in models/dualgan "
                "or train one with `python -m train base` and export it"
            )
        return SHIPPED_WEIGHTS
    folders = folder_paths.folder_names_and_paths.get("dualgan", ([], set()))[0]
    full = folder_paths.get_full_path("dualgan", name)
    inside = full and any(os.path.commonpath([os.path.realpath(full), os.path.realpath(f)]) == os.path.realpath(f) for f in folders)
    if not inside:
        raise FileNotFoundError(f"{name} is not a weights file in the DualGAN model folders ({', '.join(folders)}); "
                                "put it in models/dualgan or choose another")
    return Path(full)


def load_style_files(model) -> None:
    """Add every style file in models/dualgan_styles; a broken one is skipped with a warning naming it."""
    for name in folder_paths.get_filename_list("dualgan_styles"):
        path = folder_paths.get_full_path("dualgan_styles", name)
        try:
            added = load_style_file(path, model)
            logger.info("DualGAN: added styles %s from %s", added, name)
        except (WeightsError, ValueError) as exc:
            logger.warning("DualGAN: skipping style file %s: %s", name, exc)


class LoadDualGAN(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DualGAN_Load",
            display_name="Load DualGAN",
            category="DualGAN",
            description="Loads the DualGAN model that the other DualGAN nodes use: the default weights that come "
            "with the node pack, or a weights file you put in models/dualgan, together with the trained styles in "
            "models/dualgan_styles.",
            inputs=[
                io.Combo.Input("weights", options=weight_choices(), default=DEFAULT_WEIGHTS,
                               tooltip="Which weights to use: dualgan_default.safetensors comes with the node pack; "
                                       "other .safetensors files you put in models/dualgan appear here after pressing R. "
                                       ".ckpt/.pt files are not read (they can run code)."),
                io.Combo.Input("dtype", options=["auto", *DTYPES], default="auto",
                               tooltip="Number precision of the network; lower is faster and uses less memory. "
                                       "auto: fp16 on a GPU that supports it; on a CPU bf16 where the processor has "
                                       "native bf16 (AVX512-BF16 or AMX), else fp32. fp16 on a CPU runs as fp32."),
            ],
            outputs=[DualGANModel.Output("model", display_name="model", tooltip="The loaded model with its trained styles; connect it to the DualGAN nodes.")],
        )

    @classmethod
    def execute(cls, weights: str, dtype: str) -> io.NodeOutput:
        path = resolve_weights(weights)
        model, info = load_weights(path)
        load_style_files(model)
        return io.NodeOutput(DualGANHandle.wrap(model, info, dtype))
