"""``python -m train base``: train the shared model's two decoders (and optionally the encoder).

One step: the grey luminance of a batch of photos goes through the shared encoder once; the colour
decoder predicts ab bins (cross-entropy with rebalancing + histogram loss + a conditional PatchGAN),
and the style decoder repaints the same features with the statistics of a batch of paintings
(AdaIN target; content + mean/covariance style + TV losses + a PatchGAN). The adversarial losses
switch on after ``adv_start`` steps of plain pre-training, as DeOldify's NoGAN recipe does.
Runs unchanged under ``torchrun`` (DDP; gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from gan_core.color import grey_rgb_from_lightness, rgb_to_lab
from gan_core.config import DualGANConfig, tiny_config
from gan_core.encoder import VGGEncoder
from gan_core.model import DualGAN
from gan_core.style_codes import StyleCode, adain, feature_stats
from gan_core.weights import save_weights

from . import losses
from .checkpoint import CHECKPOINT, check_resume_settings, load_checkpoint, remove_stale_temporaries, save_checkpoint
from .data import CropDataset, make_loader, sample_seed
from .discriminator import PatchDiscriminator, lab_for_discriminator
from .samples import save_sample_grid
from .settings import BaseSettings
from .vgg_weights import load_vgg_into

logger = logging.getLogger(__name__)

STYLE_LAYERS = ["relu1_2", "relu2_2", "relu3_3", "relu4_1"]


class GeneratorStep(nn.Module):
    """Both decoders' forward for one training step (a module so DDP can wrap it)."""

    def __init__(self, model: DualGAN) -> None:
        super().__init__()
        self.model = model

    def forward(self, feats, palette, style_mean, style_std):
        logits = self.model.color_decoder(feats, palette)
        f = feats["relu4_1"]
        content = feature_stats(f)
        target = adain(f, content, StyleCode(style_mean, style_std))
        stylised = self.model.style_decoder(target)
        return logits, stylised, target


def setup_distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def init_generator(model: DualGAN, path: Path) -> None:
    """Copy generator weights from a training checkpoint or an exported weights file (same architecture)."""
    from safetensors import safe_open

    from gan_core.weights import load_weights, read_header

    from .checkpoint import CHECKPOINT_DTYPES

    _, metadata = read_header(path, CHECKPOINT_DTYPES)
    if metadata.get("dualgan.checkpoint") == "1":
        with safe_open(str(path), framework="pt") as fh:
            prefix = "mod.generator."
            state = {k[len(prefix):]: fh.get_tensor(k) for k in fh.keys() if k.startswith(prefix)}
    else:
        source, _ = load_weights(path)
        if source.config != model.config:
            raise ValueError(f"{path.name} has another architecture than this run")
        state = source.state_dict()
    model.load_state_dict(state, strict=True)
    logger.info("generator initialised from %s", path)


def estimate_prior(dataset: CropDataset, grid, samples: int = 64) -> torch.Tensor:
    """Empirical ab bin frequencies over the first sample numbers (deterministic)."""
    counts = torch.zeros(grid.num_bins)
    for g in range(min(samples, 4 * len(dataset))):
        ab = rgb_to_lab(F.avg_pool2d(dataset[g].unsqueeze(0), 4))[:, 1:]
        counts += torch.bincount(grid.bin_index(ab).flatten(), minlength=grid.num_bins).float()
    return counts / counts.sum()


def build_model(settings: BaseSettings) -> DualGAN:
    config = tiny_config() if settings.architecture == "tiny" else DualGANConfig()
    if settings.architecture not in ("tiny", "default"):
        raise ValueError(f"unknown architecture {settings.architecture!r}; use 'default' or 'tiny'")
    return DualGAN(config)


def check_run_dir(run_dir: Path) -> None:
    """Fail before training if the run folder cannot be written (or the disk is full)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        with probe.open("wb") as fh:
            fh.write(b"\0" * 1024 * 1024)
            fh.flush()
            os.fsync(fh.fileno())
        probe.unlink()
    except OSError as exc:
        raise OSError(f"{run_dir}: the run folder cannot be written ({exc.strerror or exc}); choose another --run-dir") from None


def train_base(settings: BaseSettings, resume: bool = False) -> Path:
    rank, world, device = setup_distributed()
    run_dir = Path(settings.run_dir)
    if rank == 0:
        check_run_dir(run_dir)
        remove_stale_temporaries(run_dir)
    torch.manual_seed(settings.seed)
    model = build_model(settings)
    if settings.vgg:
        load_vgg_into(model.encoder, settings.vgg)
    elif settings.architecture == "default":
        raise ValueError("--vgg is required for the default architecture (make it with `python -m train import-vgg16 OUT`)")
    if settings.init:
        init_generator(model, Path(settings.init))
    loss_net = VGGEncoder(model.config.vgg_widths)
    loss_net.load_state_dict(model.encoder.state_dict())
    loss_net.requires_grad_(False).eval().to(device)
    model.encoder.requires_grad_(settings.finetune_encoder)
    model.to(device)
    grid = model.grid

    photos = CropDataset(settings.photos, settings.crop, seed=settings.seed)
    paintings = CropDataset(settings.styles, settings.crop, scales=(0.2, 0.8), seed=settings.seed + 1)
    class_weights = losses.rebalancing_weights(estimate_prior(photos, grid), bins_per_axis=grid.bins_per_axis).to(device)

    d_color = PatchDiscriminator(3, 64 if settings.architecture == "default" else 8).to(device)
    d_style = PatchDiscriminator(3, 64 if settings.architecture == "default" else 8).to(device)
    gen = GeneratorStep(model)
    gen_params = list(model.color_decoder.parameters()) + list(model.style_decoder.parameters())
    groups = [{"params": gen_params, "lr": settings.lr_g}]
    if settings.finetune_encoder:
        groups.append({"params": list(model.encoder.parameters()), "lr": settings.lr_encoder})
    opt_g = torch.optim.Adam(groups, betas=(0.5, 0.99))
    opt_d = torch.optim.Adam(list(d_color.parameters()) + list(d_style.parameters()), lr=settings.lr_d, betas=(0.5, 0.99))
    modules = {"generator": model, "d_color": d_color, "d_style": d_style}
    optimizers = {"g": opt_g, "d": opt_d}

    start = 0
    ckpt = run_dir / CHECKPOINT
    if resume and ckpt.exists():
        check_resume_settings(ckpt, dataclasses.asdict(settings), may_change=("steps", "export", "workers"))
        meta = load_checkpoint(ckpt, modules=modules, optimizers=optimizers)
        start = int(meta["step"])
        logger.info("resumed from %s at step %d", ckpt, start)
    elif ckpt.exists() and rank == 0:
        raise FileExistsError(f"{ckpt} exists; pass --resume to continue it or choose a new --run-dir")

    wrap = (lambda m: DDP(m, device_ids=[device.index] if device.type == "cuda" else None)) if world > 1 else (lambda m: m)
    gen_w, d_color_w, d_style_w = wrap(gen), wrap(d_color), wrap(d_style)
    photo_loader = make_loader(photos, batch_size=settings.batch, start_step=start, total_steps=settings.steps, rank=rank, world=world, workers=settings.workers)
    paint_loader = make_loader(paintings, batch_size=settings.batch, start_step=start, total_steps=settings.steps, rank=rank, world=world, workers=settings.workers)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=settings.amp and device.type == "cuda")

    log_path = run_dir / "losses.csv"
    log_file = log_writer = None
    if rank == 0:
        new_log = not log_path.exists() or start == 0
        log_file = log_path.open("w" if new_log else "a", newline="")
        log_writer = csv.writer(log_file)
        if new_log:
            log_writer.writerow(["step", "seconds", "ce", "hist", "adv_color", "content", "style", "tv", "adv_style", "d_color", "d_style"])
        (run_dir / "settings.json").write_text(json.dumps(dataclasses.asdict(settings), indent=2))
    model.train()
    if not settings.finetune_encoder:
        model.encoder.eval()
    bar = tqdm(total=settings.steps, initial=start, disable=rank != 0, desc="base", dynamic_ncols=True)
    t0 = time.time()
    step = start
    for step, (rgb, paint) in enumerate(zip(photo_loader, paint_loader), start=start):
        rng = torch.Generator().manual_seed(sample_seed(settings.seed, -(10**9) - step))
        rgb, paint = rgb.to(device), paint.to(device)
        with torch.no_grad():
            lab = rgb_to_lab(rgb)
            lightness, ab_true = lab[:, :1], lab[:, 1:]
            grey = grey_rgb_from_lightness(lightness)
            style_feats = loss_net(paint, until="relu4_1")
            code = feature_stats(style_feats["relu4_1"])
            ab_half = F.avg_pool2d(ab_true, 2)
            l_half = F.avg_pool2d(lightness, 2)
            palette = grid.histogram(F.avg_pool2d(ab_true, 4))
            keep = (torch.rand(rgb.shape[0], 1, generator=rng) < settings.palette_prob).to(device)
            palette = palette * keep
        adversarial = step >= settings.adv_start
        with autocast:
            with torch.set_grad_enabled(settings.finetune_encoder):
                feats = model.encoder(grey)
            logits, stylised, target = gen_w(feats, palette, code.mean, code.std)
            ab_pred = model.ab_from_logits(logits.float())
            out_feats = loss_net(stylised, until="relu4_1")
            parts = {
                "ce": losses.chroma_cross_entropy(logits, ab_half, grid, class_weights),
                "hist": losses.color_histogram_loss(F.avg_pool2d(ab_pred, 2), F.avg_pool2d(ab_half, 2), grid),
                "content": losses.content_loss(out_feats, {"relu4_1": target.detach()}, ["relu4_1"]),
                "style": losses.style_loss(out_feats, style_feats, STYLE_LAYERS),
                "tv": losses.total_variation(stylised),
            }
            if adversarial:
                parts["adv_color"] = losses.g_loss(d_color_w(lab_for_discriminator(l_half, ab_pred)), settings.gan)
                parts["adv_style"] = losses.g_loss(d_style_w(stylised * 2 - 1), settings.gan)
            loss_g = sum(getattr(settings, f"lambda_{k}") * v for k, v in parts.items())
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        if adversarial:
            with autocast:
                real_c = lab_for_discriminator(l_half, ab_half)
                fake_c = lab_for_discriminator(l_half, ab_pred.detach())
                parts["d_color"] = losses.d_loss(d_color_w(real_c), d_color_w(fake_c), settings.gan)
                parts["d_style"] = losses.d_loss(d_style_w(paint * 2 - 1), d_style_w(stylised.detach() * 2 - 1), settings.gan)
            opt_d.zero_grad(set_to_none=True)
            (parts["d_color"] + parts["d_style"]).backward()
            opt_d.step()
        done = step + 1
        if rank == 0:
            bar.update(1)
            if done % settings.log_every == 0 or done == settings.steps:
                values = {k: float(v.detach()) for k, v in parts.items()}
                bar.set_postfix(ce=f"{values['ce']:.3f}", style=f"{values['style']:.3f}")
                log_writer.writerow([done, round(time.time() - t0, 2)] + [f"{values[k]:.5f}" if k in values else "" for k in
                                    ("ce", "hist", "adv_color", "content", "style", "tv", "adv_style", "d_color", "d_style")])
                log_file.flush()
            if settings.sample_every and (done % settings.sample_every == 0 or done == settings.steps):
                save_sample_grid(run_dir / f"samples_{done:06d}.png", grey, lightness, ab_pred.detach(), rgb, stylised.detach(), paint)
        if done % settings.checkpoint_every == 0 or done == settings.steps:
            if rank == 0:
                save_checkpoint(ckpt, modules=modules, optimizers=optimizers, meta={"step": done, "settings": dataclasses.asdict(settings)})
            if world > 1:
                dist.barrier()
    bar.close()
    if log_file is not None:
        log_file.close()
    if rank == 0 and settings.export:
        export_from_model(model, settings, Path(settings.export), steps=step + 1)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return ckpt


def training_summary(settings: BaseSettings, steps: int) -> dict:
    manifest = Path(settings.photos).parent.parent / "manifest.json"
    summary = {
        "photos": str(settings.photos),
        "styles": str(settings.styles),
        "steps": steps,
        "batch": settings.batch,
        "crop": settings.crop,
        "gan": settings.gan,
        "adv_start": settings.adv_start,
        "init": str(settings.init) if settings.init else None,
        "finetune_encoder": settings.finetune_encoder,
        "lambdas": settings.lambdas,
    }
    if manifest.exists():
        summary["data_manifest"] = str(manifest)
    return summary


def export_from_model(model: DualGAN, settings: BaseSettings, out: Path, steps: int, dtype=torch.float16) -> None:
    model = model.cpu().eval()
    save_weights(out, model, training=training_summary(settings, steps), licence=settings.licence, dtype=dtype)
    logger.info("exported %s", out)
