"""DualGAN for ComfyUI: the custom-node entry point (V3 ``comfy_entrypoint``).

Outside ComfyUI (pytest, ``python -m gan_core``, ``python -m train``) this imports nothing heavy.
Inside ComfyUI the nodes reach the model library relatively (``<this package>.gan_core``), so the
pack adds nothing to ``sys.path`` and another pack's own ``gan_core`` cannot shadow ours.
"""

try:
    import comfy.utils  # noqa: F401  present only inside ComfyUI
except ImportError:
    pass
else:
    from .nodes import DualGANExtension

    async def comfy_entrypoint() -> "DualGANExtension":
        extension = DualGANExtension()
        await extension.on_load()  # ComfyUI 0.3.64 does not call on_load itself; it is safe to run twice
        return extension
