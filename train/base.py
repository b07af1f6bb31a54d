"""``python -m train base``: train the shared model's two decoders (and optionally the encoder).

One step: the grey luminance of a batch of photos (for a share of it, an old-scan rendering,
``train.degrade``) goes through the shared encoder once; the colour decoder predicts ab bins
(cross-entropy with rebalancing + histogram loss + a conditional PatchGAN), guided, when the model is,
by simulated hints and references (``train.guidance_sim``); and the style decoder repaints the same
features with the statistics of a batch of paintings (AdaIN target; content + mean/covariance style
+ TV losses + a PatchGAN), unless ``train_style_decoder`` is off. The adversarial losses
switch on after ``adv_start`` steps of plain pre-training, as DeOldify's NoGAN recipe does.
Runs unchanged under ``torchrun`` (DDP; gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from gan_core.color import grey_rgb_from_lightness, luminance, rgb_to_lab
from gan_core.encoder import VGGEncoder
from gan_core.model import DualGAN
from gan_core.precision import memory_format_for
from gan_core.style_codes import StyleCode, adain, feature_stats
from gan_core.weights import save_weights

from . import losses
from .amp import Amp
from .data import CropDataset
from .degrade import degrade_grey
from .discriminator import PatchDiscriminator, lab_for_discriminator
from .guidance_sim import guidance_mix, simulate_guidance
from .run import RunFolder, TrainingData, step_generator
from .samples import save_sample_grid
from .settings import BaseSettings
from .warm_start import VGG16_WIDTHS, build_generator, describe_init

logger = logging.getLogger(__name__)

LOGGED = ("ce", "hist", "adv_color", "content", "style", "tv", "adv_style", "d_color", "d_style", "ab")
MAY_CHANGE_ON_RESUME = ("steps", "export", "export_every", "workers", "max_minutes")


def untimed(part: str):
    """The default step timer: times nothing (``train profile-step`` passes a real one, train.step_profile)."""
    return contextlib.nullcontext()


class GeneratorStep(nn.Module):
    """Both decoders' forward for one training step (a module so DDP can wrap it)."""

    def __init__(self, model: DualGAN) -> None:
        super().__init__()
        self.model = model

    def forward(self, feats, palette, style_mean, style_std, guide=None, colour: bool = True):
        logits = self.model.color_decoder(feats, palette, guide) if colour else None
        if style_mean is None:
            return logits, None, None
        f = feats["relu4_1"].float()  # the AdaIN target is also the content loss's target: fp32
        target = adain(f, feature_stats(f), StyleCode(style_mean, style_std))
        stylised = self.model.style_decoder(target)
        return logits, stylised, target


class Batch(NamedTuple):
    """A step's inputs and targets, computed without gradients."""

    rgb: torch.Tensor
    paint: torch.Tensor | None  # None in a run without paintings (the style decoder not trained)
    lightness: torch.Tensor  # what the model sees: the photo's L, or an old-scan rendering's
    grey: torch.Tensor
    ab_half: torch.Tensor  # true chroma at the colour decoder's 1/2 scale
    l_half: torch.Tensor
    palette: torch.Tensor  # the photo's own ab histogram for a share of the batch, zero (no palette) elsewhere
    style_taps: dict  # the paintings' loss-network taps relu1_2 .. relu4_1
    code: StyleCode  # the paintings' relu4_1 statistics


@dataclasses.dataclass
class Networks:
    model: DualGAN
    loss_net: VGGEncoder  # a frozen copy of the encoder (the model's own may be fine-tuned)
    d_color: PatchDiscriminator
    d_style: PatchDiscriminator
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    finetune_encoder: bool = False
    style_info: dict = dataclasses.field(default_factory=dict)  # the metadata of the model's named styles

    @property
    def modules(self) -> dict[str, nn.Module]:
        """What a checkpoint holds. The loss network is in it only when the model's encoder is fine-tuned,
        since only then does it differ from that encoder (it stays the encoder the run started from)."""
        modules = {"generator": self.model, "d_color": self.d_color, "d_style": self.d_style}
        if self.finetune_encoder:
            modules["loss_net"] = self.loss_net
        return modules

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"g": self.opt_g, "d": self.opt_d}


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


def estimate_prior(dataset: CropDataset, grid, samples: int = 64) -> torch.Tensor:
    """Empirical ab bin frequencies over the first sample numbers (deterministic)."""
    counts = torch.zeros(grid.num_bins)
    for g in range(min(samples, 4 * len(dataset))):
        ab = rgb_to_lab(F.avg_pool2d(dataset[g].unsqueeze(0), 4))[:, 1:]
        counts += torch.bincount(grid.bin_index(ab).flatten(), minlength=grid.num_bins).float()
    return counts / counts.sum()


GUIDANCE_MODULES = ("guide8", "guide4", "guide2", "guide_gate")


def trained_colour_parameters(model: DualGAN, parts: str) -> list[nn.Parameter]:
    """The colour decoder's parameters to train: all, or (``parts`` "guidance") only those that read the guidance map,
    so a short run teaches the decoder to use hints and references without moving its automatic colours' layers."""
    decoder = model.color_decoder
    if parts == "all":
        return list(decoder.parameters())
    if parts != "guidance":
        raise ValueError(f"color_decoder_parts must be 'all' or 'guidance', got {parts!r}")
    if not model.guided:
        raise ValueError("color_decoder_parts 'guidance' needs a guided model (model_config guided: true)")
    decoder.requires_grad_(False)
    params = []
    for name in GUIDANCE_MODULES:
        getattr(decoder, name).requires_grad_(True)
        params += list(getattr(decoder, name).parameters())
    return params


def build_networks(settings: BaseSettings, model: DualGAN, device: torch.device, style_info: dict | None = None) -> Networks:
    """The loss network, discriminators and optimisers around ``model``, on ``device`` in its
    convolution layout (channels_last on the CPU, as for inference: oneDNN's bf16 convolutions,
    forward and backward, are fastest in it)."""
    layout = memory_format_for(device)
    loss_net = VGGEncoder(model.config.vgg_widths)
    loss_net.load_state_dict(model.encoder.state_dict())
    loss_net.requires_grad_(False).eval().to(device, memory_format=layout)
    model.encoder.requires_grad_(settings.finetune_encoder)
    model.styles.requires_grad_(False)  # named styles kept from --init: trained by `train style`, not here
    model.to(device, memory_format=layout)
    d_width = 64 if model.config.vgg_widths == VGG16_WIDTHS else 8
    d_color = PatchDiscriminator(3, d_width).to(device, memory_format=layout)
    d_style = PatchDiscriminator(3, d_width).to(device, memory_format=layout)
    gen_params = []
    if settings.train_color_decoder:
        gen_params += trained_colour_parameters(model, settings.color_decoder_parts)
    else:
        model.color_decoder.requires_grad_(False)
    if settings.train_style_decoder:
        gen_params += list(model.style_decoder.parameters())
    else:
        model.style_decoder.requires_grad_(False)
    groups = [{"params": gen_params, "lr": settings.lr_g}]
    if settings.finetune_encoder:
        groups.append({"params": list(model.encoder.parameters()), "lr": settings.lr_encoder})
    opt_g = torch.optim.Adam(groups, betas=(0.5, 0.99))
    opt_d = torch.optim.Adam(list(d_color.parameters()) + list(d_style.parameters()), lr=settings.lr_d, betas=(0.5, 0.99))
    return Networks(model, loss_net, d_color, d_style, opt_g, opt_d, finetune_encoder=settings.finetune_encoder,
                    style_info=style_info or {})


class BaseTrainer:
    """One training step of ``train base`` on prepared networks (wrapped in DDP when ``world`` > 1)."""

    def __init__(self, settings: BaseSettings, nets: Networks, class_weights: torch.Tensor, device: torch.device,
                 world: int = 1, timer=untimed) -> None:
        self.settings, self.nets, self.class_weights, self.device = settings, nets, class_weights, device
        wrap = (lambda m: DDP(m, device_ids=[device.index] if device.type == "cuda" else None)) if world > 1 else (lambda m: m)
        self.gen = wrap(GeneratorStep(nets.model))
        self.d_color, self.d_style = wrap(nets.d_color), wrap(nets.d_style)
        self.amp = Amp(device, settings.amp)
        self.layout = memory_format_for(device)
        self.timer = timer
        self.mix = guidance_mix(settings.guidance_mix)

    def train_mode(self) -> None:
        self.nets.model.train()
        if not self.settings.finetune_encoder:
            self.nets.model.encoder.eval()
        if self.settings.color_decoder_parts == "guidance":
            # The frozen layers keep their batch-norm statistics: they normalise as at inference.
            decoder = self.nets.model.color_decoder
            decoder.eval()
            for name in GUIDANCE_MODULES:
                getattr(decoder, name).train()

    @torch.no_grad()
    def prepare(self, rgb: torch.Tensor, paint: torch.Tensor | None, step: int) -> Batch:
        grid = self.nets.model.grid
        rgb = rgb.to(self.device, memory_format=self.layout)
        paint = None if paint is None else paint.to(self.device, memory_format=self.layout)
        with self.timer("inputs"):
            lab = rgb_to_lab(rgb)
            lightness, ab_true = lab[:, :1], lab[:, 1:]
            palette = grid.histogram(F.avg_pool2d(ab_true, 4))
            keep = torch.rand(rgb.shape[0], 1, generator=step_generator(self.settings.seed, step)) < self.settings.palette_prob
            palette = palette * keep.to(self.device)
            lightness = self.degraded(rgb, lightness, step)
        taps = {}
        if self.settings.train_style_decoder:
            with self.timer("loss network"), self.amp.autocast():
                taps = self.nets.loss_net(paint, until="relu4_1")
            taps = {k: v.float() for k, v in taps.items()}
        code = feature_stats(taps["relu4_1"]) if taps else None
        grey = grey_rgb_from_lightness(lightness).contiguous(memory_format=self.layout)
        return Batch(rgb, paint, lightness, grey, F.avg_pool2d(ab_true, 2),
                     F.avg_pool2d(lightness, 2), palette, taps, code)

    def degraded(self, rgb: torch.Tensor, lightness: torch.Tensor, step: int) -> torch.Tensor:
        """``lightness`` with a ``degrade_prob`` share of the photos replaced by an old-scan rendering's L."""
        share = self.settings.degrade_prob
        if share <= 0:
            return lightness
        gen = step_generator(self.settings.seed + 13, step)
        chosen = (torch.rand(rgb.shape[0], generator=gen) < share).nonzero().flatten().tolist()
        if not chosen:
            return lightness
        grey = degrade_grey(rgb[chosen].cpu().float(), gen).to(rgb.device)
        lightness = lightness.clone()
        lightness[chosen] = luminance(grey.expand(-1, 3, -1, -1), grey=True)
        return lightness

    def generator_losses(self, b: Batch, adversarial: bool, step: int = 0) -> tuple[dict, torch.Tensor, torch.Tensor]:
        """(losses, predicted ab at 1/2 scale, stylised photos) with the generator's graph."""
        s, model = self.settings, self.nets.model
        styled, coloured = s.train_style_decoder, s.train_color_decoder
        with self.amp.autocast():
            with self.timer("frozen encoder"), torch.set_grad_enabled(s.finetune_encoder):
                feats = model.encoder(b.grey, until="relu4_3" if coloured else "relu4_1")
            guide = None
            if model.guided and coloured:
                with self.timer("guidance"), torch.no_grad():
                    guide = simulate_guidance(b.rgb, b.lightness, feats, model.encoder, step_generator(s.seed + 7, step),
                                              self.mix, dtype=b.grey.dtype)
            with self.timer("generator heads"):
                logits, stylised, target = self.gen(feats, b.palette, b.code.mean if styled else None,
                                                    b.code.std if styled else None, guide, coloured)
            if styled:
                with self.timer("loss network"):
                    out_taps = self.nets.loss_net(stylised, until="relu4_1")
        parts, ab_pred = {}, None
        with self.timer("losses"):
            if coloured:
                ab_pred = model.ab_from_logits(logits.float().contiguous())  # the plain layout: the differentiable path
                parts["ce"] = losses.chroma_cross_entropy(logits, b.ab_half, model.grid, self.class_weights)
                parts["hist"] = losses.color_histogram_loss(F.avg_pool2d(ab_pred, 2), F.avg_pool2d(b.ab_half, 2), model.grid)
                if s.lambda_ab > 0:
                    parts["ab"] = losses.ab_regression_loss(ab_pred, b.ab_half)
            if styled:
                parts["content"] = losses.content_loss(out_taps, {"relu4_1": target.detach()}, ["relu4_1"])
                parts["style"] = losses.style_loss(out_taps, b.style_taps, losses.STYLE_LAYERS)
                parts["tv"] = losses.total_variation(stylised.float())
        if adversarial:
            # The discriminators' own (unwrapped, frozen) forward: the generator's loss needs their input
            # gradients only, and a DDP wrapper would expect their weight gradients.
            with self.timer("discriminators"), frozen(self.nets.d_color, self.nets.d_style), self.amp.autocast():
                fake_color = self.nets.d_color(lab_for_discriminator(b.l_half, ab_pred)) if coloured else None
                fake_style = self.nets.d_style(stylised * 2 - 1) if styled else None
            if coloured:
                parts["adv_color"] = losses.g_loss(fake_color.float(), s.gan)
            if styled:
                parts["adv_style"] = losses.g_loss(fake_style.float(), s.gan)
        return parts, ab_pred, stylised

    def discriminator_losses(self, b: Batch, ab_pred: torch.Tensor, stylised: torch.Tensor) -> dict:
        gan = self.settings.gan
        out = {}
        with self.timer("discriminators"), self.amp.autocast():
            if ab_pred is not None:
                real_c = self.d_color(lab_for_discriminator(b.l_half, b.ab_half))
                fake_c = self.d_color(lab_for_discriminator(b.l_half, ab_pred.detach()))
                out["d_color"] = losses.d_loss(real_c.float(), fake_c.float(), gan)
            if stylised is not None:
                real_s = self.d_style(b.paint * 2 - 1)
                fake_s = self.d_style(stylised.detach() * 2 - 1)
                out["d_style"] = losses.d_loss(real_s.float(), fake_s.float(), gan)
        return out

    def step(self, rgb: torch.Tensor, paint: torch.Tensor | None, step: int) -> tuple[dict, Batch, torch.Tensor, torch.Tensor]:
        """One optimisation step of the generator (and, once adversarial, the discriminators)."""
        s, nets = self.settings, self.nets
        b = self.prepare(rgb, paint, step)
        adversarial = step >= s.adv_start
        parts, ab_pred, stylised = self.generator_losses(b, adversarial, step)
        loss_g = sum(getattr(s, f"lambda_{k}") * v for k, v in parts.items())
        self._optimise(loss_g, nets.opt_g)
        if adversarial:
            d_parts = self.discriminator_losses(b, ab_pred, stylised)
            self._optimise(sum(d_parts.values()), nets.opt_d)
            parts.update(d_parts)
        return parts, b, None if ab_pred is None else ab_pred.detach(), None if stylised is None else stylised.detach()

    def _optimise(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        with self.timer("optimiser"):
            optimizer.zero_grad(set_to_none=True)
        with self.timer("backward"):
            self.amp.backward(loss)
        with self.timer("optimiser"):
            self.amp.step(optimizer)


@contextlib.contextmanager
def frozen(*modules: nn.Module):
    """No weight gradients for ``modules`` inside (inputs still get theirs)."""
    flags = [[p.requires_grad for p in m.parameters()] for m in modules]
    for m in modules:
        m.requires_grad_(False)
    try:
        yield
    finally:
        for m, fl in zip(modules, flags):
            for p, f in zip(m.parameters(), fl):
                p.requires_grad_(f)


def make_trainer(settings: BaseSettings, data: TrainingData, run: RunFolder | None, *, resume: bool, device: torch.device,
                 world: int = 1, timer=untimed) -> tuple[BaseTrainer, int]:
    """The trainer of a run, and the step it starts at (its checkpoint's on ``resume``)."""
    torch.manual_seed(settings.seed)
    resuming = run is not None and resume and run.checkpoint.exists()
    model, style_info = build_generator(settings, run.checkpoint if resuming else None)
    nets = build_networks(settings, model, device, style_info)
    start = run.start(resume, modules=nets.modules, optimizers=nets.optimizers) if run is not None else 0
    if resuming and not settings.finetune_encoder:
        # build_networks copied the encoder before the checkpoint's weights were loaded into it.
        nets.loss_net.load_state_dict(model.encoder.state_dict())
    prior = estimate_prior(data.photos, model.grid)
    weights = losses.rebalancing_weights(prior, bins_per_axis=model.grid.bins_per_axis, strength=settings.rebalance).to(device)
    return BaseTrainer(settings, nets, weights, device, world, timer), start


def train_base(settings: BaseSettings, resume: bool = False) -> Path:
    if settings.train_style_decoder and not settings.styles:
        raise ValueError("--styles (a folder of paintings) is required unless --no-train-style-decoder")
    if not (settings.train_style_decoder or settings.train_color_decoder):
        raise ValueError("nothing to train: --no-train-color-decoder and --no-train-style-decoder together leave no decoder")
    if settings.fresh_style_decoder and not (settings.init and settings.train_style_decoder):
        raise ValueError("--fresh-style-decoder needs --init (the file the rest comes from) and the style decoder trained")
    rank, world, device = setup_distributed()
    run = RunFolder(settings.run_dir, settings, may_change=MAY_CHANGE_ON_RESUME, rank=rank)
    data = TrainingData(settings)
    trainer, start = make_trainer(settings, data, run, resume=resume, device=device, world=world)
    log = run.open_log(list(LOGGED), start)
    logger.info("train base: %s on %s, from step %d of %d", trainer.amp.name, device, start, settings.steps)
    trainer.train_mode()
    bar = tqdm(total=settings.steps, initial=start, disable=rank != 0, desc="base", dynamic_ncols=True)
    t0 = time.time()
    deadline = t0 + 60 * settings.max_minutes if settings.max_minutes > 0 else None
    meta = {"config": trainer.nets.model.config.to_json(), "styles": trainer.nets.style_info,
            "device": describe_device(device), "amp_dtype": trainer.amp.name}
    batches = data.batches(start=start, stop=settings.steps, rank=rank, world=world)
    done = start
    for step, (rgb, paint) in enumerate(batches, start=start):
        parts, batch, ab_pred, stylised = trainer.step(rgb, paint, step)
        done = step + 1
        out_of_time = deadline is not None and time_is_up(deadline, device, world)
        last = done == settings.steps or out_of_time
        if rank == 0:
            bar.update(1)
            _log_and_sample(settings, run, log, done, time.time() - t0, parts, batch, ab_pred, stylised, bar, last)
        if rank == 0 and settings.export_every and done % settings.export_every == 0:
            export_from_model(trainer.nets.model, settings, run.dir / "exports" / f"step_{done:06d}.safetensors", steps=done,
                              styles=trainer.nets.style_info)
            trainer.train_mode()
        if done % settings.checkpoint_every == 0 or last:
            run.save(done, modules=trainer.nets.modules, optimizers=trainer.nets.optimizers, **meta)
            if world > 1:
                dist.barrier()
        if out_of_time:
            logger.info("train base: max_minutes (%g) reached, stopped after step %d", settings.max_minutes, done)
            break
    bar.close()
    if log is not None:
        log.close()
    if rank == 0 and settings.export:
        export_from_model(trainer.nets.model, settings, Path(settings.export), steps=done, styles=trainer.nets.style_info)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return run.checkpoint


def time_is_up(deadline: float, device: torch.device, world: int = 1) -> bool:
    """Whether the wall clock has passed ``deadline``; under DDP, whether it has on any rank, so all stop together."""
    up = time.time() >= deadline
    if world > 1:
        flag = torch.tensor([float(up)], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        up = bool(flag.item())
    return up


def describe_device(device: torch.device) -> str:
    """The training device in words for the checkpoint and the weights' metadata, e.g. "cuda (NVIDIA H200)"."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def _log_and_sample(settings, run, log, done, seconds, parts, batch, ab_pred, stylised, bar, last=False) -> None:
    if done % settings.log_every == 0 or last:
        values = {k: float(v.detach()) for k, v in parts.items()}
        bar.set_postfix({k: f"{values[k]:.3f}" for k in ("ce", "ab", "style") if k in values})
        log.write({"step": done, "seconds": f"{seconds:.2f}", **values})
    if settings.sample_every and (done % settings.sample_every == 0 or last):
        save_sample_grid(run.dir / f"samples_{done:06d}.png", batch.grey, batch.lightness, ab_pred, batch.rgb, stylised,
                         batch.paint)


def _relative_to(path: str | Path, folder: Path) -> str:
    """``path`` relative to ``folder`` when it lies inside it, else its name only: weights metadata never
    names a directory of the training machine."""
    path = Path(path)
    try:
        return path.resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        return path.name


def training_summary(settings: BaseSettings, steps: int) -> dict:
    """What a weights file records about its training: data paths relative to the data folder (the folder
    that holds the photos' ``manifest.json``), the budget and the settings that shape the model."""
    data = Path(settings.photos).parent.parent
    manifest = data / "manifest.json"
    summary = {
        "photos": _relative_to(settings.photos, data),
        "styles": _relative_to(settings.styles, data) if settings.styles else "",
        "steps": steps,
        "batch": settings.batch,
        "crop": settings.crop,
        "gan": settings.gan,
        "adv_start": settings.adv_start,
        "init": describe_init(settings.init) if settings.init else None,
        "finetune_encoder": settings.finetune_encoder,
        "train_style_decoder": settings.train_style_decoder,
        "train_color_decoder": settings.train_color_decoder,
        "fresh_style_decoder": settings.fresh_style_decoder,
        "degrade_prob": settings.degrade_prob,
        "defocus_prob": settings.defocus_prob,
        "palette_prob": settings.palette_prob,
        "lr_g": settings.lr_g,
        "lambdas": settings.lambdas,
        "amp": settings.amp,
    }
    if manifest.exists():
        summary["data_manifest"] = _relative_to(manifest, data)
    return summary


def export_from_model(model: DualGAN, settings: BaseSettings, out: Path, steps: int, dtype=torch.float16,
                      styles: dict[str, dict] | None = None) -> None:
    """Write ``model`` (switched to eval mode; its device unchanged) as a DualGAN weights file;
    ``styles``: the metadata of its named styles."""
    save_weights(out, model.eval(), styles=styles, training=training_summary(settings, steps), licence=settings.licence,
                 dtype=dtype)
    logger.info("exported %s", out)
