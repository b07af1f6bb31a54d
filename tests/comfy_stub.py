"""A minimal stand-in for the few ComfyUI modules the nodes import, for tests without ComfyUI.

It mimics only what the nodes use: ``comfy_api.latest`` (io: ComfyNode, Schema, Custom, Image, Int,
Float, String, Combo, NodeOutput; ComfyExtension), ``comfy.utils.ProgressBar``,
``comfy.model_management`` and ``comfy.model_patcher.ModelPatcher``, and ``folder_paths``.
``install(models_dir)`` puts them into ``sys.modules`` and returns a handle for assertions;
``import_pack()`` then imports this repository the way ComfyUI imports a custom-node folder: as a
package under a name of its own, with nothing added to ``sys.path``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
PACK = "dualgan_pack_under_test"  # ComfyUI names the package after its folder path; any unique name will do


class InterruptProcessingException(Exception):
    pass


class FakeOOM(Exception):
    """Plays torch.cuda.OutOfMemoryError for OOM-retry tests."""


class _Input:
    def __init__(self, id, *, optional=False, tooltip=None, default=None, options=None, **extra):
        self.id, self.optional, self.tooltip, self.default, self.options, self.extra = id, optional, tooltip, default, options, extra


class _Output:
    def __init__(self, id=None, *, tooltip=None, display_name=None):
        self.id, self.tooltip, self.display_name = id, tooltip, display_name


def _type(name):
    cls = type(name, (), {})
    cls.io_type = name
    cls.Input = type("Input", (_Input,), {"io_type": name})
    cls.Output = type("Output", (_Output,), {"io_type": name})
    return cls


def _make_io():
    io = types.ModuleType("comfy_api.latest.io")

    class Schema:
        def __init__(self, node_id, display_name=None, category="sd", inputs=None, outputs=None, description="", **kw):
            self.node_id, self.display_name, self.category = node_id, display_name, category
            self.inputs, self.outputs, self.description = inputs or [], outputs or [], description
            # ComfyUI's Schema.validate: ids unique among inputs, among outputs, and between the two
            ins, outs = [i.id for i in self.inputs], [o.id for o in self.outputs]
            if len(set(ins)) != len(ins) or len(set(outs)) != len(outs) or set(ins) & set(outs):
                raise ValueError(f"{node_id}: input and output ids must be unique ({ins} / {outs})")

    class NodeOutput:
        def __init__(self, *args, ui=None):
            self.args, self.ui = args, ui

        @property
        def result(self):
            return self.args

    class ComfyNode:
        @classmethod
        def define_schema(cls):
            raise NotImplementedError

    io.Schema, io.NodeOutput, io.ComfyNode = Schema, NodeOutput, ComfyNode
    for name, io_type in (("Image", "IMAGE"), ("Int", "INT"), ("Float", "FLOAT"), ("String", "STRING"), ("Combo", "COMBO"), ("Mask", "MASK")):
        setattr(io, name, _type(io_type))
    io.Custom = _type
    return io


class Recorder:
    """What the fake ComfyUI saw: progress updates, model loads, cache flushes."""

    def __init__(self):
        self.progress: list[tuple[int, int]] = []
        self.loads: list[int] = []
        self.empty_cache = 0
        self.interrupt_after: int | None = None  # raise once this many progress updates were seen
        self.interrupt_checks = 0  # how often the nodes asked whether the user pressed Cancel


def install(models_dir: str, input_dir: str | None = None) -> Recorder:
    rec = Recorder()
    latest = types.ModuleType("comfy_api.latest")
    latest.io = _make_io()

    class ComfyExtension:
        async def on_load(self):
            return None

        async def get_node_list(self):
            return []

    latest.ComfyExtension = ComfyExtension
    comfy_api = types.ModuleType("comfy_api")
    comfy_api.latest = latest

    comfy = types.ModuleType("comfy")
    utils = types.ModuleType("comfy.utils")
    mm = types.ModuleType("comfy.model_management")
    patcher_mod = types.ModuleType("comfy.model_patcher")

    class ProgressBar:
        def __init__(self, total):
            self.total = total

        def update_absolute(self, value, total=None):
            rec.progress.append((value, total or self.total))

    utils.ProgressBar = ProgressBar

    def throw_exception_if_processing_interrupted():
        rec.interrupt_checks += 1
        if rec.interrupt_after is not None and len(rec.progress) >= rec.interrupt_after:
            raise InterruptProcessingException()

    mm.get_torch_device = lambda: torch.device("cpu")
    mm.unet_offload_device = lambda: torch.device("cpu")
    mm.intermediate_device = lambda: torch.device("cpu")
    mm.should_use_fp16 = lambda device=None, **kw: False
    mm.load_models_gpu = lambda models, memory_required=0, **kw: rec.loads.append(memory_required)
    mm.soft_empty_cache = lambda *a, **kw: setattr(rec, "empty_cache", rec.empty_cache + 1)
    mm.OOM_EXCEPTION = FakeOOM
    mm.InterruptProcessingException = InterruptProcessingException
    mm.throw_exception_if_processing_interrupted = throw_exception_if_processing_interrupted

    class ModelPatcher:
        def __init__(self, model, load_device, offload_device, **kw):
            self.model, self.load_device, self.offload_device = model, load_device, offload_device

    patcher_mod.ModelPatcher = ModelPatcher
    comfy.utils, comfy.model_management, comfy.model_patcher = utils, mm, patcher_mod

    folder_paths = types.ModuleType("folder_paths")
    folder_paths.models_dir = models_dir
    folder_paths.folder_names_and_paths = {}
    folder_paths.get_input_directory = lambda: input_dir or os.path.join(os.path.dirname(models_dir), "input")

    def get_filename_list(name):
        paths, exts = folder_paths.folder_names_and_paths.get(name, ([], set()))
        out = []
        for p in paths:
            if os.path.isdir(p):
                out += sorted(f for f in os.listdir(p) if os.path.splitext(f)[1] in exts)
        return out

    def get_full_path(name, filename):
        for p in folder_paths.folder_names_and_paths.get(name, ([], set()))[0]:
            full = os.path.join(p, filename)
            # like ComfyUI: a name must stay inside its folder
            if os.path.commonpath([os.path.abspath(full), os.path.abspath(p)]) != os.path.abspath(p):
                continue
            if os.path.isfile(full):
                return full
        return None

    def get_full_path_or_raise(name, filename):
        full = get_full_path(name, filename)
        if full is None:
            raise FileNotFoundError(f"Model in folder '{name}' with filename '{filename}' not found.")
        return full

    folder_paths.get_filename_list = get_filename_list
    folder_paths.get_full_path = get_full_path
    folder_paths.get_full_path_or_raise = get_full_path_or_raise

    sys.modules.update({
        "comfy_api": comfy_api, "comfy_api.latest": latest, "comfy_api.latest.io": latest.io,
        "comfy": comfy, "comfy.utils": utils, "comfy.model_management": mm, "comfy.model_patcher": patcher_mod,
        "folder_paths": folder_paths,
    })
    return rec


def import_pack(name: str = PACK, before_exec=None) -> types.ModuleType:
    """Import the repository root as the package ``name`` (as ComfyUI's load_custom_node does).

    ``before_exec(name)`` runs once the package exists but before its ``__init__`` runs, e.g. to patch
    ``<name>.gan_core`` before the nodes import it.
    """
    spec = importlib.util.spec_from_file_location(name, REPO / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        if before_exec is not None:
            before_exec(name)
        spec.loader.exec_module(module)
    except BaseException:
        forget_pack(name)
        raise
    return module


def forget_pack(name: str = PACK) -> None:
    for module in list(sys.modules):
        if module == name or module.startswith(name + "."):
            sys.modules.pop(module)


STUB_MODULES = ("comfy_api", "comfy_api.latest", "comfy_api.latest.io", "comfy", "comfy.utils",
                "comfy.model_management", "comfy.model_patcher", "folder_paths")
