"""Colorize, Style Transfer and Blend by lambda: thin wrappers over gan_core.DualGANRunner."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from gan_core.inference import PRESERVE_COLOR, STYLE_NETWORKS, StyleSpec

from .comfy_glue import DualGANHandle, Progress, finish, to_bchw, to_comfy_image
from .loader import DualGANModel

RENDER_TOOLTIP = ("Short side, in pixels, at which the networks run (the result always has the input's full size: "
                  "colour is upsampled guided by the full-resolution luminance). 0 = run at full resolution, in tiles.")
IMAGE_TOOLTIP = "Image or batch (e.g. video frames). Colour images are read by their luminance; alpha is dropped."


def _render_input(default: int = 512) -> io.Int.Input:
    return io.Int.Input("render_size", default=default, min=0, max=8192, step=8, tooltip=RENDER_TOOLTIP)


def _style_inputs() -> list:
    return [
        io.String.Input("style_name", default="", tooltip="Name of a trained style stored in the model or in "
                        "models/dualgan_styles. Leave empty to use style_image instead. A name wins over an image."),
        io.Image.Input("style_image", optional=True, tooltip="A painting to copy the style of (1 image, or one per input image)."),
    ]


def _style_spec(runner, style_name: str, style_image, strength: float, network: str = "full") -> StyleSpec:
    if not (style_name or "").strip() and style_image is None:
        available = ", ".join(runner.model.style_names) or "none in this model"
        raise ValueError(f"no style given: connect a style_image or type a style_name (trained styles: {available})")
    image = None if style_image is None else to_bchw(style_image, "style_image")
    return runner.style_spec(name=style_name, image=image, strength=strength, network=network)


def _palette(runner, palette):
    return None if palette is None else runner.palette_from_image(to_bchw(palette, "palette"))


def _run(model: DualGANHandle, image, render_size: int, job, *, stylised: bool = False) -> io.NodeOutput:
    """Load the model for this image, run ``job(runner, images, progress)`` without autograd, free caches."""
    runner = model.runner_for(image, render_size)
    progress = Progress(runner.steps_for(image.shape[0], image.shape[1], image.shape[2], render_size, stylised=stylised))
    with torch.inference_mode():
        outs = job(runner, to_bchw(image), progress)
    finish()
    return io.NodeOutput(*(to_comfy_image(o) for o in (outs if isinstance(outs, tuple) else (outs,))))


class Colorize(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DualGAN_Colorize",
            display_name="DualGAN Colorize",
            category="DualGAN",
            description="Gives black-and-white photos natural colours. The output keeps the input's size and its "
            "exact luminance; only the colour (Lab a/b) is predicted.",
            inputs=[
                DualGANModel.Input("model", tooltip="A DUALGAN model from Load DualGAN."),
                io.Image.Input("image", tooltip=IMAGE_TOOLTIP),
                _render_input(),
                io.Float.Input("saturation", default=1.0, min=0.0, max=2.0, step=0.05,
                               tooltip="Scales the predicted colour: 0 = grey, 1 = as predicted, 2 = twice as vivid."),
                io.Float.Input("temporal_smoothing", default=0.0, min=0.0, max=0.95, step=0.05,
                               tooltip="For video frames in one batch: carries colour over from the previous frame where "
                                       "the picture did not change, to stop flicker. 0 = every image on its own."),
                io.Image.Input("palette", optional=True,
                               tooltip="Optional colour reference: its colour histogram steers the colours."),
            ],
            outputs=[io.Image.Output("colorized", display_name="colorized", tooltip="The colourised image, same size as the input.")],
        )

    @classmethod
    def execute(cls, model: DualGANHandle, image, render_size: int, saturation: float, temporal_smoothing: float = 0.0,
                palette=None) -> io.NodeOutput:
        return _run(model, image, render_size, lambda runner, images, progress: runner.colorize(
            images, render_size=render_size, palette=_palette(runner, palette), saturation=saturation,
            temporal_smoothing=temporal_smoothing, progress=progress))


class StyleTransfer(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DualGAN_StyleTransfer",
            display_name="DualGAN Style Transfer",
            category="DualGAN",
            description="Repaints an image in the style of a painting (any style image, or a trained style by name).",
            inputs=[
                DualGANModel.Input("model", tooltip="A DUALGAN model from Load DualGAN."),
                io.Image.Input("image", tooltip=IMAGE_TOOLTIP),
                _style_inputs()[0],
                io.Float.Input("strength", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="How far the features move toward the style's statistics: 0 = content only, 1 = full style."),
                io.Combo.Input("preserve_color", options=list(PRESERVE_COLOR), default="none",
                               tooltip="none: the style's colours; original: the input's own colours; "
                                       "colorized: the colour decoder's natural colours."),
                _render_input(),
                _style_inputs()[1],
                io.Combo.Input("network", options=list(STYLE_NETWORKS), default="full", optional=True,
                               tooltip="full: the VGG16 style path. fast: the model's distilled light style network "
                                       "(several times faster on a CPU, style images only, preserve_color none or "
                                       "original; only in weights made with `python -m train distill`)."),
            ],
            outputs=[io.Image.Output("stylized", display_name="stylized", tooltip="The stylised image, same size as the input.")],
        )

    @classmethod
    def execute(cls, model: DualGANHandle, image, style_name: str, strength: float, preserve_color: str,
                render_size: int, style_image=None, network: str = "full") -> io.NodeOutput:
        return _run(model, image, render_size, lambda runner, images, progress: runner.stylize(
            images, _style_spec(runner, style_name, style_image, strength, network), render_size=render_size,
            preserve_color=preserve_color, progress=progress), stylised=True)


class Blend(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DualGAN_Blend",
            display_name="DualGAN Blend by λ",
            category="DualGAN",
            description="Colour and style from one encoder pass, mixed by the seed's three weights. "
            "λ_content=1, λ_color=1 gives the Colorize output; λ_content=0, λ_color=0 gives Style Transfer "
            "(strength λ_style, preserve colour none).",
            inputs=[
                DualGANModel.Input("model", tooltip="A DUALGAN model from Load DualGAN."),
                io.Image.Input("image", tooltip=IMAGE_TOOLTIP),
                _style_inputs()[0],
                io.Float.Input("lambda_content", default=0.5, min=0.0, max=1.0, step=0.01,
                               tooltip="How much of the original's luminance detail is restored: 0 = the stylised "
                                       "luminance, 1 = the original luminance."),
                io.Float.Input("lambda_style", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="Style strength (feature interpolation toward the style's statistics)."),
                io.Float.Input("lambda_color", default=0.5, min=0.0, max=1.0, step=0.01,
                               tooltip="Where the colour comes from: 1 = the colour decoder's natural colours, 0 = the style's palette."),
                _render_input(),
                _style_inputs()[1],
                io.Image.Input("palette", optional=True, tooltip="Optional colour reference for the colour decoder."),
            ],
            outputs=[
                io.Image.Output("blend", display_name="blend", tooltip="The blend of colour and style by the three lambdas."),
                io.Image.Output("colorized", display_name="colorized", tooltip="The Colorize output from the same pass."),
                io.Image.Output("stylized", display_name="stylized", tooltip="The Style Transfer output (preserve colour none) from the same pass."),
            ],
        )

    @classmethod
    def execute(cls, model: DualGANHandle, image, style_name: str, lambda_content: float, lambda_style: float,
                lambda_color: float, render_size: int, style_image=None, palette=None) -> io.NodeOutput:
        return _run(model, image, render_size, lambda runner, images, progress: runner.blend(
            images, _style_spec(runner, style_name, style_image, lambda_style), lambda_content=lambda_content,
            lambda_color=lambda_color, render_size=render_size, palette=_palette(runner, palette), progress=progress),
            stylised=True)
