"""What the nodes need from ComfyUI: devices, memory, progress, interrupts, tensor layout.

No model maths here: gan_core does the work; this module adapts it to ComfyUI's conventions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils
import torch
from einops import rearrange

from ..gan_core.model import DualGAN
from ..gan_core.precision import choose_dtype, memory_format_for, prepare
from ..gan_core.runner import DualGANRunner, default_pixel_budget
from ..gan_core.weights import WeightsInfo

logger = logging.getLogger(__name__)


@dataclass
class DualGANHandle:
    """What travels along a DUALGAN socket: the network, its ModelPatcher, dtype and file info."""

    model: DualGAN
    patcher: object
    dtype: torch.dtype
    info: WeightsInfo

    @classmethod
    def wrap(cls, model: DualGAN, info: WeightsInfo, dtype_choice: str) -> "DualGANHandle":
        load_device = mm.get_torch_device()
        dtype = choose_dtype(dtype_choice, load_device, gpu_fp16_ok=load_device.type != "cpu" and mm.should_use_fp16(load_device))
        # Cast and laid out for the compute device; ComfyUI's patcher moves it there when a job runs.
        model = prepare(model, torch.device("cpu"), dtype, memory_format_for(load_device)).eval()
        patcher = comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=mm.unet_offload_device())
        return cls(model=model, patcher=patcher, dtype=dtype, info=info)

    def runner_for(self, image_bhwc: torch.Tensor, render_size: int) -> DualGANRunner:
        """Load the model onto the compute device with the room this job needs (the runner says how
        much); return a runner that stops at ComfyUI's interrupt within one layer."""
        batch, height, width = image_bhwc.shape[0], image_bhwc.shape[1], image_bhwc.shape[2]
        runner = DualGANRunner(self.model, oom_types=(mm.OOM_EXCEPTION,), on_oom=mm.soft_empty_cache,
                               pixel_budget=default_pixel_budget(self.patcher.load_device),
                               check_interrupt=mm.throw_exception_if_processing_interrupted)
        mm.load_models_gpu([self.patcher], memory_required=runner.memory_required(batch, height, width, render_size))
        return runner


def to_bchw(image: torch.Tensor, what: str = "image") -> torch.Tensor:
    """ComfyUI IMAGE (B x H x W x C) to gan_core's B x C x H x W."""
    if not isinstance(image, torch.Tensor) or image.ndim != 4:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"{what} must be a ComfyUI IMAGE batch (B x H x W x C), got {shape}")
    return rearrange(image, "b h w c -> b c h w")


def mask_from_comfy(mask: torch.Tensor | None, what: str = "hint_mask") -> torch.Tensor | None:
    """ComfyUI MASK (B x H x W, or H x W) to B x 1 x H x W; a mask that marks nothing counts as no mask
    (Load Image gives an empty 64 x 64 mask for a picture without transparency)."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor) or mask.ndim not in (2, 3):
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"{what} must be a ComfyUI MASK (B x H x W), got {shape}")
    mask = mask.reshape(-1, 1, *mask.shape[-2:]).float()
    return mask if bool((mask > 0.5).any()) else None


def to_comfy_image(image_bchw: torch.Tensor) -> torch.Tensor:
    """gan_core output to a ComfyUI IMAGE: float32, clamped, on the intermediate device."""
    out = rearrange(image_bchw.float().clamp(0.0, 1.0), "b c h w -> b h w c")
    return out.to(mm.intermediate_device()).contiguous()


class Progress:
    """A ComfyUI progress bar fed by gan_core's progress callback; every update is an interrupt point."""

    def __init__(self, total: int) -> None:
        self.bar = comfy.utils.ProgressBar(max(1, total))

    def __call__(self, done: int, total: int) -> None:
        mm.throw_exception_if_processing_interrupted()
        self.bar.update_absolute(done, total)


def finish() -> None:
    """Give back cached device memory after big work (the model itself is offloaded by ComfyUI)."""
    mm.soft_empty_cache()
