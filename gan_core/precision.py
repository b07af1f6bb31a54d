"""Which floating-point type the networks run in.

'auto' picks the fastest type that keeps the outputs: fp16 on a CUDA GPU; bf16 on a CPU that
multiplies bf16 natively (x86 AVX512-BF16 or AMX); fp32 elsewhere. Both half types stay close to
fp32 (``python -m bench.precision`` measures how close; bench/results/NOTES.md). CPUs without native
bf16 emulate it slower than fp32, hence the check. Colour maths is always fp32.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True where the CPU's flags (Linux /proc/cpuinfo) list a bf16 dot-product instruction."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def choose_dtype(choice: str, device: torch.device, *, gpu_fp16_ok: bool = True) -> torch.dtype:
    """The dtype for ``choice`` (auto, fp32, fp16, bf16) on ``device``.

    ``gpu_fp16_ok`` lets a host (ComfyUI) say a GPU handles fp16 badly; auto then uses fp32 there.
    fp16 on the CPU is slow or unsupported in PyTorch, so it becomes fp32 with a warning.
    """
    if choice == "auto":
        if device.type == "cpu":
            return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
        return torch.float16 if gpu_fp16_ok else torch.float32
    if choice not in DTYPES:
        raise ValueError(f"dtype must be one of auto, {', '.join(DTYPES)}; got {choice!r}")
    if device.type == "cpu" and choice == "fp16":
        logger.warning("fp16 on the CPU is slow or unsupported; running in fp32")
        return torch.float32
    return DTYPES[choice]


def memory_format_for(device: torch.device) -> torch.memory_format:
    """channels_last on the CPU, where oneDNN's convolutions are faster in it; the default layout on
    CUDA, where channels_last was the slower one in fp16 (bench/results/NOTES.md)."""
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


def prepare(model: torch.nn.Module, device: torch.device, dtype: torch.dtype,
            memory_format: torch.memory_format | None = None) -> torch.nn.Module:
    """Move a DualGAN to ``device``, cast it (BatchNorm stays fp32) and lay it out for that device."""
    layout = memory_format_for(device) if memory_format is None else memory_format
    return model.to(device).cast(dtype).to(memory_format=layout)
