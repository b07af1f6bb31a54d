"""The network a ``train base`` run starts from: its configuration, and ``--init`` across architectures.

Without ``--init`` the configuration is ``--architecture``'s (the VGG16 widths, or the tiny test
one) and the encoder comes from ``--vgg``. With ``--init FILE`` (a DualGAN weights file or a
``train base`` checkpoint) the configuration is the file's, the encoder included, so no ``--vgg``
is needed. Either way ``--model-config`` overrides single fields (e.g. ``{"guided": true}``).
Every tensor of the file whose name and shape match is loaded; parameters the file lacks keep the
fresh initialisation, which the model defines to have no effect (the guided decoder's zero
injections and gates), so the run starts from the file's output; the new names are logged. A
tensor present in both with another shape is refused: its weights would not mean the same thing.

The file's named styles adapt its style decoder and encoder, so they stay in the run's generator
(checkpoints and exports carry them, with their metadata) when neither of those trains, and are
left out otherwise.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch

from gan_core.config import DualGANConfig, tiny_config
from gan_core.model import DualGAN
from gan_core.weights import STYLE_PREFIX, inspect_weights, load_weights, read_header, style_names_in

from .checkpoint import CHECKPOINT_DTYPES, read_checkpoint_meta, read_module_state
from .vgg_weights import load_vgg_into

logger = logging.getLogger(__name__)

VGG16_WIDTHS = DualGANConfig().vgg_widths
ARCHITECTURES = {"default": DualGANConfig, "tiny": tiny_config}
STYLED_PARTS = ("style_decoder.", "encoder.")  # what named styles adapt


def with_overrides(config: DualGANConfig, overrides: dict) -> DualGANConfig:
    """``config`` with the fields of ``overrides`` (``--model-config``) replaced."""
    return DualGANConfig.with_fields(overrides, config, source="--model-config")

def architecture_config(settings) -> DualGANConfig:
    if settings.architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {settings.architecture!r}; use 'default' or 'tiny'")
    return ARCHITECTURES[settings.architecture]()


def is_checkpoint(path: Path) -> bool:
    _, metadata = read_header(path, CHECKPOINT_DTYPES)
    return metadata.get("dualgan.checkpoint") == "1"


def checkpoint_config(path: Path) -> DualGANConfig:
    """The generator configuration a ``train base`` checkpoint was trained with."""
    meta = read_checkpoint_meta(path)
    if "config" in meta:
        return DualGANConfig.from_json(meta["config"])
    # Checkpoints that predate the stored config: --architecture and --model-config rebuild it.
    settings = meta.get("settings", {})
    base = ARCHITECTURES.get(settings.get("architecture", "default"), DualGANConfig)()
    return with_overrides(base, settings.get("model_config", {}))


def trained_prefixes(settings) -> tuple[str, ...]:
    """The generator modules a run with ``settings`` changes."""
    return (("color_decoder.",) if settings.train_color_decoder else ()) + (
        ("style_decoder.",) if settings.train_style_decoder else ()) + (
        ("encoder.",) if settings.finetune_encoder else ())


def styles_fit(trained: tuple[str, ...]) -> bool:
    """Whether named styles still fit a generator after the modules ``trained`` (prefixes) changed:
    they adapt the style decoder and the encoder, so they do while neither changes."""
    return not any(p in trained for p in STYLED_PARTS)


def checkpoint_generator(path: str | Path) -> tuple[DualGAN, dict[str, dict]]:
    """The generator a ``train base`` checkpoint holds (its configuration and named styles; the
    weights are not loaded), and the metadata of those styles."""
    header, _ = read_header(path, CHECKPOINT_DTYPES)
    prefix = "mod.generator."
    names = style_names_in(k[len(prefix):] for k in header if k.startswith(prefix))
    info = read_checkpoint_meta(path).get("styles", {})
    return DualGAN(checkpoint_config(path), names), {n: info.get(n, {}) for n in names}


def init_source(path: str | Path) -> tuple[DualGANConfig, dict[str, torch.Tensor], dict[str, dict]]:
    """(configuration, generator tensors, named styles' metadata) of a weights file or a training checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file or checkpoint for --init")
    if is_checkpoint(path):
        state = read_module_state(path, "generator")
        if not state:
            raise ValueError(f"{path.name} is a checkpoint without a generator (not from `train base`); give a weights file")
        return checkpoint_config(path), state, read_checkpoint_meta(path).get("styles", {})
    model, info = load_weights(path)
    return info.config, model.state_dict(), info.styles


def load_matching(model: DualGAN, state: dict[str, torch.Tensor], source: str) -> list[str]:
    """Load every tensor of ``state`` that ``model`` has; returns the model's names the file lacks."""
    own = model.state_dict()
    for name, tensor in state.items():
        if name in own and own[name].shape != tensor.shape:
            raise ValueError(f"{source}: tensor {name!r} has shape {tuple(tensor.shape)} but this run's configuration needs "
                             f"{tuple(own[name].shape)}; use the file's value for that setting or start without --init")
    matched = {k: v.to(own[k].dtype) for k, v in state.items() if k in own}
    new = sorted(k for k in own if k not in state and not k.endswith("num_batches_tracked"))
    model.load_state_dict({**own, **matched}, strict=True)
    unused = sorted(k for k in state if k not in own)
    logger.info("initialised %d tensors from %s", len(matched), source)
    if new:
        logger.info("new in this configuration (fresh, zero-effect initialisation): %s", ", ".join(new))
    if unused:
        logger.info("not used from %s: %d tensors (%s ...)", source, len(unused), unused[0])
    return new


def build_generator(settings, resume_from: Path | None = None) -> tuple[DualGAN, dict[str, dict]]:
    """The generator of a ``train base`` run, with its starting weights, and the metadata of its
    named styles (the ``--init`` file's, while they fit: ``styles_fit``).

    ``resume_from``: the run's checkpoint when resuming; its stored configuration and styles are
    used and its weights are loaded later, so neither ``--init`` nor ``--vgg`` is read again.
    """
    overrides = settings.model_config or {}
    if resume_from is not None and "config" in read_checkpoint_meta(resume_from):
        return checkpoint_generator(resume_from)
    if settings.init:
        if settings.vgg:
            raise ValueError("give --init or --vgg, not both: with --init the encoder comes from the file")
        file_config, state, style_info = init_source(settings.init)
        # The fast style network is distilled from the decoders this run changes: `train distill` makes it anew.
        config = with_overrides(dataclasses.replace(file_config, fast_encoder_widths=(), fast_decoder_widths=(),
                                                    fast_residual_widths=(), fast_residual_blocks=0), overrides)
        init_styles = style_names_in(state)
        names = init_styles if styles_fit(trained_prefixes(settings)) else ()
        if init_styles and not names:
            logger.info("leaving out the named styles of %s: this run trains the style decoder or encoder they adapt",
                        Path(settings.init).name)
            state = {k: v for k, v in state.items() if not k.startswith(STYLE_PREFIX)}
        if getattr(settings, "fresh_style_decoder", False):
            # A style decoder that has never seen the file's paintings (the held-out ones among them).
            state = {k: v for k, v in state.items() if not k.startswith("style_decoder.")}
        model = DualGAN(config, names)
        load_matching(model, state, Path(settings.init).name)
        if names:
            logger.info("keeping the named styles of %s (%s): the style decoder and encoder they adapt do not train",
                        Path(settings.init).name, ", ".join(names))
        return model, {n: style_info.get(n, {}) for n in names}
    model = DualGAN(with_overrides(architecture_config(settings), overrides))
    if settings.vgg:
        load_vgg_into(model.encoder, settings.vgg)
    elif model.config.vgg_widths == VGG16_WIDTHS:
        raise ValueError("--vgg is required for the VGG16 widths (make it with `python -m train import-vgg16 OUT`), "
                         "or --init a DualGAN weights file")
    return model, {}


def describe_init(path: str | Path) -> dict:
    """What the training summary records about an --init file: its name and its own training summary."""
    path = Path(path)
    if is_checkpoint(path):
        return {"file": path.name, "step": int(read_checkpoint_meta(path)["step"])}
    return {"file": path.name, "steps": inspect_weights(path).training.get("steps")}
