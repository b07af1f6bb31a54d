"""DualGAN for ComfyUI: the custom-node entry point (V3 ``comfy_entrypoint``).

Outside ComfyUI (pytest, ``python -m gan_core``, ``python -m train``) this imports nothing heavy.
"""

import os
import sys

try:
    import comfy.utils  # noqa: F401  present only inside ComfyUI
except ImportError:
    pass
else:
    # ComfyUI imports this folder as a package without putting it on sys.path; the nodes import the
    # model library as the top-level package ``gan_core`` (as pip-installed copies do).
    _here = os.path.dirname(os.path.abspath(__file__))
    if _here not in sys.path:
        sys.path.append(_here)
    from .nodes import DualGANExtension

    async def comfy_entrypoint() -> "DualGANExtension":
        return DualGANExtension()
