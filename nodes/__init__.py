"""The four DualGAN nodes on ComfyUI's V3 schema. Importing defines classes and registers the model
folders; nothing is built or read until a node runs. ``on_load`` prepares a fresh install."""

from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from .first_run import prepare_first_run
from .image_nodes import Blend, Colorize, StyleTransfer
from .loader import LoadDualGAN, register_folders

register_folders()

NODES = [LoadDualGAN, Colorize, StyleTransfer, Blend]


class DualGANExtension(ComfyExtension):
    async def on_load(self) -> None:
        prepare_first_run()

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)
