"""Colorize, Style Transfer and Blend by lambda: thin wrappers over gan_core.DualGANRunner."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ..gan_core.hints import hints_or_none
from ..gan_core.style_path import PRESERVE_COLOR, STYLE_NETWORKS, StyleSpec
from .comfy_glue import DualGANHandle, Progress, finish, mask_from_comfy, to_bchw, to_comfy_image
from .loader import DualGANModel
from .style_choices import USE_STYLE_IMAGE, style_choices, style_name_from_choice
from .style_choices import tooltip as style_tooltip


RENDER_TOOLTIP = ("Size, in pixels, of the short side at which the networks work; lower is faster. The result always "
                  "has the input's full size (what the networks make is carried up along the full-size picture's "
                  "edges). 0 = work at full size, in tiles: slowest, finest detail.")
IMAGE_TOOLTIP = "A picture or a batch of pictures (e.g. video frames). Colour pictures are read by their brightness; transparency is dropped."
MODEL_TOOLTIP = "The model from Load DualGAN."
PALETTE_TOOLTIP = "Optional: a picture whose colours the result should lean towards."
TEMPORAL_TOOLTIP = ("For video frames in one batch: above 0, the batch is treated as a video; each frame takes its "
                    "colours from the previous output frame (and any reference) where they show the same things, and "
                    "carries colour over where the picture did not change, to stop flicker. 0 = every image on its "
                    "own (unrelated images never borrow each other's colours).")
HINTS_TOOLTIP = ("Optional: the picture with colour strokes or dots painted where you know the colour (the sky blue, "
                 "a coat navy). Without hint_mask, a pixel counts as a hint where you painted on it (it differs from "
                 "the picture) and its colour stands clearly apart from the picture's own tint (more than 6 Lab "
                 "units), so strokes painted over a grey or sepia scan in any editor work, and JPEG noise and the "
                 "scan's own tones do not. Each hint spreads over the region it belongs to, and "
                 "also colours other parts of the picture that look like that region. "
                 "One picture for the whole batch, or one per image. Needs weights trained with guided colour.")
HINT_MASK_TOOLTIP = ("Optional: marks which pixels of hints are hints (white = hint), e.g. the MASK of Load Image "
                     "after painting in ComfyUI's mask editor. Any size; an empty mask is ignored.")
REFERENCE_TOOLTIP = ("Optional: one or more colour photos of the same place, person or era (any batch size: every "
                     "picture counts). Each region takes the colours of the regions it resembles in them, the more "
                     "fully the closer the resemblance, and keeps the automatic colours where nothing resembles it. "
                     "Hints win where given. "
                     "Needs weights trained with guided colour.")


def _render_input(default: int = 512) -> io.Int.Input:
    return io.Int.Input("render_size", default=default, min=0, max=8192, step=8, tooltip=RENDER_TOOLTIP)


def _style_name_input() -> io.Combo.Input:
    return io.Combo.Input("style_name", options=style_choices(), default=USE_STYLE_IMAGE, tooltip=style_tooltip())


def _style_image_input() -> io.Image.Input:
    return io.Image.Input("style_image", optional=True, tooltip="A painting to copy the style of (one picture, or one per "
                          "input image). Used when style_name is " + USE_STYLE_IMAGE + ".")


def _accept_saved_style_name(style_name) -> bool | str:
    """Workflows saved before the dropdown hold free text, and ComfyUI may check a combo's value against its
    list; any text is accepted here, and a name the loaded weights lack is refused when the node runs."""
    return style_name is None or isinstance(style_name, str) or f"style_name must be text, got {type(style_name).__name__}"


def _style_spec(runner, style_name: str, style_image, strength: float, network: str = "full") -> StyleSpec:
    name = style_name_from_choice(style_name)
    if not name and style_image is None:
        available = ", ".join(runner.model.style_names) or "none in these weights"
        raise ValueError(f"no style given: connect a painting to style_image or pick a style in style_name "
                         f"(trained styles: {available})")
    image = None if style_image is None else to_bchw(style_image, "style_image")
    return runner.style_spec(name=name, image=image, strength=strength, network=network)


def _palette(runner, palette):
    return None if palette is None else runner.palette_from_image(to_bchw(palette, "palette"))


def _guidance_inputs() -> list:
    return [io.Image.Input("hints", optional=True, tooltip=HINTS_TOOLTIP),
            io.Mask.Input("hint_mask", optional=True, tooltip=HINT_MASK_TOOLTIP),
            io.Image.Input("reference", optional=True, tooltip=REFERENCE_TOOLTIP)]


def _colour_guidance(images, hints, hint_mask, reference, temporal_smoothing: float) -> dict:
    """The runner's guidance arguments from the node's optional inputs; a batch is a video when
    temporal_smoothing is above 0."""
    if hint_mask is not None and hints is None:
        raise ValueError("hint_mask is connected but hints is not: connect the picture with the painted colours to hints")
    hint_map = None if hints is None else hints_or_none(to_bchw(hints, "hints"), images, mask_from_comfy(hint_mask))
    refs = None if reference is None else [to_bchw(reference, "reference")]
    return {"hints": hint_map, "reference": refs, "video": temporal_smoothing > 0}


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
            description="Gives black-and-white photos natural colours. The result keeps the photo's size and its "
            "brightness exactly; only the colours are added.",
            inputs=[
                DualGANModel.Input("model", tooltip=MODEL_TOOLTIP),
                io.Image.Input("image", tooltip=IMAGE_TOOLTIP),
                _render_input(),
                io.Float.Input("saturation", default=1.0, min=0.0, max=2.0, step=0.05,
                               tooltip="Scales the predicted colour: 0 = grey, 1 = as predicted, 2 = twice as vivid."),
                io.Float.Input("temporal_smoothing", default=0.0, min=0.0, max=0.95, step=0.05,
                               tooltip=TEMPORAL_TOOLTIP),
                io.Image.Input("palette", optional=True, tooltip=PALETTE_TOOLTIP),
                *_guidance_inputs(),
            ],
            outputs=[io.Image.Output("colorized", display_name="colorized", tooltip="The colourised picture, same size as the input.")],
        )

    @classmethod
    def execute(cls, model: DualGANHandle, image, render_size: int, saturation: float, temporal_smoothing: float = 0.0,
                palette=None, hints=None, hint_mask=None, reference=None) -> io.NodeOutput:
        return _run(model, image, render_size, lambda runner, images, progress: runner.colorize(
            images, render_size=render_size, palette=_palette(runner, palette), saturation=saturation,
            temporal_smoothing=temporal_smoothing, progress=progress,
            **_colour_guidance(images, hints, hint_mask, reference, temporal_smoothing)))


class StyleTransfer(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DualGAN_StyleTransfer",
            display_name="DualGAN Style Transfer",
            category="DualGAN",
            description="Repaints a picture in the style of a painting: connect the painting to style_image, or pick "
            "a trained style in style_name.",
            inputs=[
                DualGANModel.Input("model", tooltip=MODEL_TOOLTIP),
                io.Image.Input("image", tooltip=IMAGE_TOOLTIP),
                _style_name_input(),
                io.Float.Input("strength", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="How strongly the style is applied: 0 = none (the picture redrawn), 1 = full style."),
                io.Combo.Input("preserve_color", options=list(PRESERVE_COLOR), default="none",
                               tooltip="Whose colours the result has. none: the painting's; original: the input "
                                       "picture's own; colorized: natural colours, as Colorize would give."),
                _render_input(),
                _style_image_input(),
                io.Combo.Input("network", options=list(STYLE_NETWORKS), default="full", optional=True,
                               tooltip="full: the normal style network. fast: a smaller, several times faster one, "
                                       "present only in weights made with `python -m train distill`; it takes a "
                                       "style_image (not a trained style) and preserve_color none or original."),
            ],
            outputs=[io.Image.Output("stylized", display_name="stylized", tooltip="The repainted picture, same size as the input.")],
        )

    @classmethod
    def validate_inputs(cls, style_name=None) -> bool | str:
        return _accept_saved_style_name(style_name)

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
            description="Colourises and stylises a picture in one go and mixes the two with three sliders: "
            "lambda_content (how much of the picture's own detail shows), lambda_style (how strong the style is) "
            "and lambda_color (natural colours or the painting's). Both lambda_content and lambda_color at 1 gives "
            "Colorize's result; both at 0 gives Style Transfer's. The plain colourised and stylised pictures come out too.",
            inputs=[
                DualGANModel.Input("model", tooltip=MODEL_TOOLTIP),
                io.Image.Input("image", tooltip=IMAGE_TOOLTIP),
                _style_name_input(),
                io.Float.Input("lambda_content", default=0.5, min=0.0, max=1.0, step=0.01,
                               tooltip="How much of the picture's own detail and brightness shows through: "
                                       "0 = the painted version's, 1 = the picture's own."),
                io.Float.Input("lambda_style", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="How strongly the style is applied: 0 = none, 1 = full style."),
                io.Float.Input("lambda_color", default=0.5, min=0.0, max=1.0, step=0.01,
                               tooltip="Where the colours come from: 1 = natural colours (as Colorize), 0 = the painting's colours."),
                _render_input(),
                _style_image_input(),
                io.Image.Input("palette", optional=True, tooltip=PALETTE_TOOLTIP + " Affects the natural colours."),
                *_guidance_inputs(),
                io.Float.Input("temporal_smoothing", default=0.0, min=0.0, max=0.95, step=0.05, optional=True,
                               tooltip=TEMPORAL_TOOLTIP),
            ],
            outputs=[
                io.Image.Output("blend", display_name="blend", tooltip="The mix set by the three sliders."),
                io.Image.Output("colorized", display_name="colorized", tooltip="The picture with natural colours (as Colorize)."),
                io.Image.Output("stylized", display_name="stylized", tooltip="The picture in the painting's style and colours (as Style Transfer)."),
            ],
        )

    @classmethod
    def validate_inputs(cls, style_name=None) -> bool | str:
        return _accept_saved_style_name(style_name)

    @classmethod
    def execute(cls, model: DualGANHandle, image, style_name: str, lambda_content: float, lambda_style: float,
                lambda_color: float, render_size: int, style_image=None, palette=None, hints=None, hint_mask=None,
                reference=None, temporal_smoothing: float = 0.0) -> io.NodeOutput:
        return _run(model, image, render_size, lambda runner, images, progress: runner.blend(
            images, _style_spec(runner, style_name, style_image, lambda_style), lambda_content=lambda_content,
            lambda_color=lambda_color, render_size=render_size, palette=_palette(runner, palette),
            temporal_smoothing=temporal_smoothing, progress=progress,
            **_colour_guidance(images, hints, hint_mask, reference, temporal_smoothing)), stylised=True)
