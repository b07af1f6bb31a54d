"""``python -m train style``: learn a named style adapter for a trained model, in minutes on a CPU.

Everything of the base model stays frozen. The adapter (gan_core.style_decoder.StyleAdapter) starts
from the painting's relu4_1 statistics (``gan_core.style_path.style_code_from_image``, the code a
style image gets at inference) and identity scales/shifts, and is fitted to minimise the content
loss (to the AdaIN target) plus the mean/covariance style loss to the painting over crops of
content photos. The result is written as a separate style file, or into a copy of the model.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from tqdm import tqdm

from gan_core.color import grey_rgb_from_lightness, rgb_to_lab
from gan_core.geometry import render_shape, resize
from gan_core.model import DualGAN, check_style_name
from gan_core.style_codes import StyleCode, adain, feature_stats
from gan_core.style_path import STYLE_SIZE, style_code_from_image
from gan_core.style_decoder import StyleAdapter
from gan_core.weights import inspect_weights, load_weights, save_style_file, save_weights

from . import losses
from .amp import Amp
from .data import CropDataset, load_rgb, make_loader
from .decoder_parts import portable
from .run import check_run_dir

logger = logging.getLogger(__name__)


@torch.no_grad()
def painting_targets(model: DualGAN, painting: str | Path, amp: Amp) -> tuple[StyleCode, dict[str, torch.Tensor]]:
    """The painting's style code and its loss-network taps relu1_2 .. relu4_1 (fp32), both at the
    size inference reduces a style image to. The taps come from the unpadded image, so padding
    adds nothing to the statistics the style loss matches."""
    art = load_rgb(Path(painting))
    if art is None:
        raise ValueError(f"{painting}: the painting cannot be read as an image")
    art = art.unsqueeze(0)
    code = style_code_from_image(model.encoder, art, size=STYLE_SIZE)
    with amp.autocast():
        taps = model.encoder(resize(art, render_shape(*art.shape[-2:], STYLE_SIZE)), until="relu4_1")
    return code, {k: v.float() for k, v in taps.items()}


def fit_adapter(model: DualGAN, adapter: StyleAdapter, style_taps: dict, loader, *, steps: int, lr: float, amp: Amp,
                weights: tuple[float, float, float], desc: str, progress: bool) -> None:
    """Adam on the adapter alone: content (to the AdaIN target) + style + TV losses over the loader's crops."""
    lambda_content, lambda_style, lambda_tv = weights
    opt = torch.optim.Adam(adapter.parameters(), lr=lr)
    for step, rgb in enumerate(tqdm(loader, total=steps, desc=desc, disable=not progress)):
        with torch.no_grad(), amp.autocast():
            grey = grey_rgb_from_lightness(rgb_to_lab(rgb)[:, :1])
            f = model.encoder(grey, until="relu4_1")["relu4_1"].float()
        target = adain(f, feature_stats(f), StyleCode(adapter.mean[None], adapter.std.abs()[None] + 1e-5))
        with amp.autocast():
            image = model.style_decoder(target, adapter)
            feats = model.encoder(image, until="relu4_1")
        loss = (
            lambda_content * losses.content_loss(feats, {"relu4_1": target.detach()}, ["relu4_1"])
            + lambda_style * losses.style_loss(feats, style_taps, losses.STYLE_LAYERS)
            + lambda_tv * losses.total_variation(image.float())
        )
        opt.zero_grad(set_to_none=True)
        amp.backward(loss)
        amp.step(opt)
        if step % 50 == 0:
            logger.info("step %d loss %.4f", step, float(loss.detach()))


def train_style(
    *,
    base: str | Path,
    painting: str | Path,
    name: str,
    content: str | Path,
    out: str | Path,
    into_model: bool = False,
    steps: int = 300,
    batch: int = 2,
    crop: int = 160,
    lr: float = 0.01,
    lambda_content: float = 1.0,
    lambda_style: float = 1.0,
    lambda_tv: float = 1.0,
    source: str = "",
    licence: str = "unknown",
    seed: int = 0,
    workers: int = 0,
    amp: bool = True,
    progress: bool = True,
) -> Path:
    check_style_name(name)
    out = Path(out)
    check_run_dir(out.parent)
    model, info = load_weights(base)
    if name in model.styles:
        raise ValueError(f"{Path(base).name} already has a style named {name!r}; choose another --name")
    model.requires_grad_(False).eval()
    mixed = Amp(torch.device("cpu"), amp)
    code, style_taps = painting_targets(model, painting, mixed)
    adapter = model.new_style_adapter()
    with torch.no_grad():
        adapter.mean.copy_(code.mean[0])
        adapter.std.copy_(code.std[0])
    photos = CropDataset(content, crop, seed=seed, cache=True)
    loader = make_loader(photos, batch_size=batch, start_step=0, total_steps=steps, workers=workers)
    fit_adapter(model, adapter, style_taps, loader, steps=steps, lr=lr, amp=mixed,
                weights=(lambda_content, lambda_style, lambda_tv), desc=f"style {name}", progress=progress)
    model.add_style(name, adapter.requires_grad_(False))
    style_info = {name: {"source": source or Path(painting).name, "licence": licence, "steps": steps,
                          "content": portable(str(Path(content).resolve()))}}  # no directory of this machine
    if into_model:
        styles = dict(info.styles)
        styles.update(style_info)
        dtype = {"F16": torch.float16, "BF16": torch.bfloat16}.get(inspect_weights(base).stored_dtype, torch.float32)
        save_weights(out, model, styles=styles, training=info.training, licence=info.licence, dtype=dtype)
    else:
        save_style_file(out, model, [name], style_info)
    return out
