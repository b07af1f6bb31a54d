"""Interrupt points: where a long run stops when the host asks it to (ComfyUI's Cancel).

``interrupt_points(model, check)`` calls ``check`` before every convolution of ``model`` (forward
pre-hooks, so the networks' code is untouched) and makes it the check that ``interrupt_point()``
calls from the long steps that run no convolution (the annealed mean over a tile's pixels, the
guided filter's box passes); ``checking(check)`` does the latter alone. ``check`` raises to stop the
run. The active check is a context variable, so each thread sees its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

from torch import nn

_ACTIVE: ContextVar[Callable[[], None] | None] = ContextVar("dualgan_interrupt_check", default=None)


def interrupt_point() -> None:
    """Call the active check (it raises when the host asked to stop); nothing outside ``interrupt_points``."""
    check = _ACTIVE.get()
    if check is not None:
        check()


@contextlib.contextmanager
def checking(check: Callable[[], None] | None) -> Iterator[None]:
    """Make ``check`` the one ``interrupt_point()`` calls (None: keep the active one)."""
    if check is None:
        yield
        return
    token = _ACTIVE.set(check)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


@contextlib.contextmanager
def interrupt_points(model: nn.Module, check: Callable[[], None] | None) -> Iterator[None]:
    """Call ``check`` before every convolution of ``model`` and at every ``interrupt_point()``, so a
    long pass stops within one layer or one block of pixels."""
    if check is None:
        yield
        return
    handles = [m.register_forward_pre_hook(lambda module, args: check()) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with checking(check):
            yield
    finally:
        for handle in handles:
            handle.remove()
