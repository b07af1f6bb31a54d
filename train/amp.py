"""Mixed precision for training: the one autocast helper of ``train base``, ``train style`` and ``train distill``.

``--amp`` (the default) autocasts where a lower precision is fast: bf16 on a CPU that multiplies
bf16 natively (the check ``gan_core.precision`` makes for inference; emulated bf16 is slower than
fp32), bf16 on a CUDA GPU that has it and fp16 with loss scaling on one that does not. Elsewhere,
and with ``--no-amp``, training runs in fp32. Only the networks run under autocast: losses,
histograms, feature statistics and the annealed mean are computed outside it, in fp32, since
autocast would round their matrix products (covariances, the einsum over bins) to 8 mantissa bits.
"""

from __future__ import annotations

import contextlib

import torch

from gan_core.precision import cpu_has_native_bf16


def amp_dtype(device: torch.device, enabled: bool = True, *, cpu_bf16: bool | None = None,
              cuda_bf16: bool | None = None) -> torch.dtype | None:
    """The autocast type for ``device``, or None for fp32. ``cpu_bf16`` / ``cuda_bf16`` say whether
    the device has fast bf16 (None: ask the hardware)."""
    if not enabled:
        return None
    if device.type == "cpu":
        return torch.bfloat16 if (cpu_has_native_bf16() if cpu_bf16 is None else cpu_bf16) else None
    if device.type == "cuda":
        return torch.bfloat16 if (torch.cuda.is_bf16_supported() if cuda_bf16 is None else cuda_bf16) else torch.float16
    return None


class Amp:
    """Autocast for the forward passes, and backward + optimiser step (loss-scaled in fp16)."""

    def __init__(self, device: torch.device, enabled: bool = True, *, cpu_bf16: bool | None = None,
                 cuda_bf16: bool | None = None) -> None:
        self.device = device
        self.dtype = amp_dtype(device, enabled, cpu_bf16=cpu_bf16, cuda_bf16=cuda_bf16)
        # fp16 gradients underflow without scaling; bf16 has fp32's range and needs none.
        self.scaler = torch.amp.GradScaler(device.type) if self.dtype == torch.float16 else None

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def autocast(self):
        """Run the networks inside this; compute losses after it."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer, max_grad_norm: float = 0.0) -> None:
        """One optimiser step; with ``max_grad_norm`` > 0 the gradients are first scaled down so that
        their joint norm is at most that (measured in true units, after undoing any loss scaling)."""
        if max_grad_norm > 0:
            if self.scaler is not None:
                self.scaler.unscale_(optimizer)
            params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()
