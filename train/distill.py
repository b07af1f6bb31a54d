"""``python -m train distill``: distil a fast style network from a trained model's style path.

The full style path is VGG16 to relu4_1 (most of a Style Transfer's time on a CPU,
``python -m bench --jobs stylize --profile``) plus the style decoder. The student is the same shape
with far fewer channels (``gan_core.model.FastStyle``): a VGG-shaped encoder whose relu4_1 keeps the
teacher's 512 channels, and a narrow decoder. Both learn from the teacher alone, on crops of photos
(seen grey, as Style Transfer sees its content) and paintings (seen in colour, as style references):

  features  the student's relu4_1 against the teacher's, relative squared error, plus the same for
            their channel means and deviations (the statistics AdaIN transfers);
  image     the student's stylised crop (its own features, AdaIN'd to its own statistics of the
            painting, at a random strength) against the teacher's, L1 on pixels and on gradients.

``--shape residual`` trains the residual fast network instead (``gan_core.residual_style``): no encoder
of its own (style codes come from the teacher's encoder), so it learns from the image loss and, with
``--lambda-style`` / ``--lambda-content``, the trainer's own losses from the first step.

The output is a copy of the teacher's weights file with the fast network inside
(``fast_style.*`` tensors, widths in the config), which Style Transfer uses with network "fast".
Checkpoints are atomic and a resumed run continues exactly (every random choice is seeded by step).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from gan_core.color import grey_rgb_from_lightness, luminance
from gan_core.model import DualGAN
from gan_core.style_codes import StyleCode, feature_stats, stylize_features
from gan_core.weights import inspect_weights, load_weights, save_weights

from . import losses
from .amp import Amp
from .checkpoint import load_checkpoint, read_checkpoint_meta
from .run import RunFolder, TrainingData, step_generator
from .settings import add_settings_arguments, settings_from_args

logger = logging.getLogger(__name__)
LOGGED = ("features", "stats", "image", "style", "content")


@dataclasses.dataclass
class DistillSettings:
    teacher: str = ""
    photos: str = ""
    styles: str = ""
    run_dir: str = "runs/distill"
    export: str = ""  # the teacher's file with the fast network added
    shape: str = "vgg"  # vgg: distilled encoder and decoder; residual: gan_core.residual_style
    residual_widths: str = "16,32,48"  # --shape residual: widths at 1/1, 1/2, 1/4
    residual_blocks: int = 6
    encoder_widths: str = "16,32,64,512"
    decoder_widths: str = "64,32,16,16"
    steps: int = 3000
    stop_at: int = 0  # stop after this step (0: run to --steps), to go on later with --resume
    batch: int = 8
    crop: int = 128
    lr: float = 1e-3
    warmup_steps: int = 0  # the learning rate rises linearly over these first steps
    max_grad_norm: float = 0.0  # clip the student's gradient norm to this (0: no clipping)
    lambda_features: float = 1.0
    lambda_stats: float = 1.0
    lambda_image: float = 10.0
    lambda_style: float = 0.0  # the trainer's style loss on the student's picture (0: off)
    lambda_content: float = 0.0  # the trainer's content loss on it, to the teacher's AdaIN target
    full_strength_prob: float = 0.7  # share of steps at strength 1; the rest draw it uniformly
    init: str = ""  # start the fast network from another distillation checkpoint
    seed: int = 0
    workers: int = 2
    amp: bool = True  # the teacher's passes in bf16 where the CPU has it natively (train.amp)
    cache_images: bool = True  # keep the decoded, reduced images in memory
    log_every: int = 10
    checkpoint_every: int = 100
    extra: dict = dataclasses.field(default_factory=dict)


SHAPES = ("vgg", "residual")


def parse_widths(text: str, what: str, count: int = 4) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise ValueError(f"--{what} must be {count} comma-separated integers, got {text!r}") from None
    if len(widths) != count or min(widths) <= 0:
        raise ValueError(f"--{what} must be {count} comma-separated positive integers, got {text!r}")
    return widths


def fast_fields(settings: DistillSettings, teacher: DualGAN) -> dict:
    """The config fields of the fast network ``settings`` asks for (checked, one sentence when wrong)."""
    if settings.shape not in SHAPES:
        raise ValueError(f"--shape must be one of {', '.join(SHAPES)}, got {settings.shape!r}")
    if settings.shape == "residual":
        if settings.residual_blocks < 1:
            raise ValueError(f"--residual-blocks must be at least 1, got {settings.residual_blocks}")
        return {"fast_residual_widths": parse_widths(settings.residual_widths, "residual-widths", 3),
                "fast_residual_blocks": settings.residual_blocks}
    encoder_widths = parse_widths(settings.encoder_widths, "encoder-widths")
    if encoder_widths[3] != teacher.encoder.channels("relu4_1"):
        raise ValueError(f"the fast encoder's last width must be {teacher.encoder.channels('relu4_1')} "
                         f"(the teacher's relu4_1 channels), got {encoder_widths[3]}")
    return {"fast_encoder_widths": encoder_widths,
            "fast_decoder_widths": parse_widths(settings.decoder_widths, "decoder-widths")}


def with_fast_style(teacher: DualGAN, settings: DistillSettings) -> DualGAN:
    """A float32 copy of ``teacher`` (its weights and styles) with a freshly initialised fast network."""
    config = dataclasses.replace(teacher.config, **fast_fields(settings, teacher))
    student = DualGAN(config, tuple(teacher.style_names))
    state = student.state_dict()
    state.update({k: v.float() for k, v in teacher.state_dict().items()})
    student.load_state_dict(state, strict=True)
    return student


def learning_rate(settings: DistillSettings, step: int) -> float:
    """A linear rise over ``warmup_steps`` (an unnormalised student's first steps are the unstable
    ones), then cosine decay from ``lr`` to 5 % of it over the run."""
    progress = min(1.0, step / max(1, settings.steps))
    warmup = min(1.0, (step + 1) / settings.warmup_steps) if settings.warmup_steps > 0 else 1.0
    return warmup * settings.lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def he_init(module: nn.Module) -> None:
    """He-normal convolutions, zero biases: activations keep their scale through the layers. With
    PyTorch's default the student's relu4_1 comes out ~100x smaller than its target and learns slowly.
    A residual block's second convolution starts small, so the unnormalised residual stack starts close
    to the identity instead of growing its activations block after block."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)
    for block in getattr(module, "blocks", ()):
        block.second.weight.data.mul_(0.1)


def stats_error(pred: StyleCode, target: StyleCode) -> torch.Tensor:
    return losses.relative_mse(pred.mean, target.mean) + losses.relative_mse(pred.std, target.std)


def image_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 on pixels plus L1 on horizontal and vertical differences (keeps edges sharp)."""
    def grads(x):
        return x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]

    (py, px), (ty, tx) = grads(pred), grads(target)
    return F.l1_loss(pred, target) + F.l1_loss(py, ty) + F.l1_loss(px, tx)


class TeacherOutputs(NamedTuple):
    content: torch.Tensor  # relu4_1 of the grey content, times style_input_scale (the fast encoder's units)
    paint: torch.Tensor  # relu4_1 of the paintings, likewise
    image: torch.Tensor  # the teacher's stylised content
    paint_taps: dict[str, torch.Tensor]  # the paintings' VGG16 taps relu1_2 .. relu4_1 (for the style loss)
    target: torch.Tensor  # the AdaIN target in VGG16 units (for the content loss)


@torch.no_grad()
def teacher_pass(teacher: DualGAN, grey: torch.Tensor, paint: torch.Tensor, strength: float, amp: Amp) -> TeacherOutputs:
    """Everything the student learns from, from one teacher pass over the batch. The paintings are
    training crops, encoded whole: their taps feed the style loss and their relu4_1 the feature loss."""
    scale = teacher.config.style_input_scale
    with amp.autocast():
        f_content = teacher.encoder(grey, until="relu4_1")["relu4_1"].float()
        paint_taps = {k: v.float() for k, v in teacher.encoder(paint, until="relu4_1").items()}
    f_paint = paint_taps["relu4_1"]
    target = stylize_features(f_content, feature_stats(f_content), feature_stats(f_paint), strength)
    with amp.autocast():
        image = teacher.style_decoder(target).float()
    return TeacherOutputs(f_content * scale, f_paint * scale, image, paint_taps, target)


class Distiller:
    """The teacher (frozen), the student (the model's fast style network) and its optimiser."""

    def __init__(self, settings: DistillSettings) -> None:
        self.settings = settings
        torch.manual_seed(settings.seed)
        self.teacher, _ = load_weights(settings.teacher)
        self.teacher.requires_grad_(False).eval()
        model = with_fast_style(self.teacher, settings)
        he_init(model.fast_style)
        if settings.init:
            load_checkpoint(settings.init, modules={"fast_style": model.fast_style}, optimizers={})
            logger.info("fast style network initialised from %s", settings.init)
        # channels_last: oneDNN runs the student's thin convolutions faster in it on the CPU.
        self.fast = model.fast_style.train().to(memory_format=torch.channels_last)
        self.opt = torch.optim.Adam(self.fast.parameters(), lr=settings.lr)
        self.amp = Amp(torch.device("cpu"), settings.amp)  # the teacher's passes; the student trains in fp32

    @property
    def modules(self) -> dict:
        return {"fast_style": self.fast}

    @property
    def optimizers(self) -> dict:
        return {"fast": self.opt}

    def vgg_parts(self, grey: torch.Tensor, paint: torch.Tensor, t: TeacherOutputs,
                  strength: float) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The VGG-shaped student's losses against the teacher, and its picture."""
        fast = self.fast
        s_content = fast.encoder(grey, until="relu4_1")["relu4_1"]
        s_paint = fast.encoder(paint, until="relu4_1")["relu4_1"]
        s_code, s_paint_code = feature_stats(s_content), feature_stats(s_paint)
        # End to end: the image loss also shapes the encoder, so its few channels keep what the decoder
        # needs (a decoder that only reads detached features gives sepia, blotchy pictures).
        s_image = fast.decoder(stylize_features(s_content, s_code, s_paint_code, strength))
        parts = {
            "features": losses.relative_mse(s_content, t.content) + losses.relative_mse(s_paint, t.paint),
            "stats": stats_error(s_code, feature_stats(t.content)) + stats_error(s_paint_code, feature_stats(t.paint)),
            "image": image_error(s_image, t.image),
        }
        return parts, s_image

    def residual_parts(self, grey: torch.Tensor, t: TeacherOutputs,
                       strength: float) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The residual student's picture (styled by the teacher's code of each painting) against the teacher's."""
        s_image = self.fast(grey, self.fast.modulation(feature_stats(t.paint_taps["relu4_1"]), strength))
        return {"image": image_error(s_image, t.image)}, s_image

    def step(self, rgb: torch.Tensor, paint: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        s = self.settings
        rng = step_generator(s.seed, step)
        full = float(torch.rand((), generator=rng)) < s.full_strength_prob
        strength = 1.0 if full else float(torch.rand((), generator=rng))
        for group in self.opt.param_groups:  # a function of the step alone, so a resume needs no scheduler state
            group["lr"] = learning_rate(s, step)
        grey = grey_rgb_from_lightness(luminance(rgb)).contiguous(memory_format=torch.channels_last)
        paint = paint.contiguous(memory_format=torch.channels_last)
        t = teacher_pass(self.teacher, grey, paint, strength, self.amp)
        parts, s_image = self.residual_parts(grey, t, strength) if s.shape == "residual" else self.vgg_parts(grey, paint, t, strength)
        if s.lambda_style or s.lambda_content:
            # The trainer's own losses on the student's picture, through the teacher's encoder as the
            # loss network: what the teacher's decoder was trained with, and what `train eval` scores.
            with self.amp.autocast():
                out_feats = self.teacher.encoder(s_image, until="relu4_1")
            parts["style"] = losses.style_loss(out_feats, t.paint_taps, losses.STYLE_LAYERS)
            parts["content"] = losses.content_loss(out_feats, {"relu4_1": t.target}, ["relu4_1"])
        loss = sum(getattr(s, f"lambda_{k}") * v for k, v in parts.items())
        self.opt.zero_grad(set_to_none=True)
        self.amp.backward(loss)
        self.amp.step(self.opt, s.max_grad_norm)
        return parts


def distill(settings: DistillSettings, resume: bool = False) -> Path:
    run = RunFolder(settings.run_dir, settings, may_change=("workers", "export", "stop_at"))
    if not settings.teacher or not settings.photos or not settings.styles:
        raise ValueError("--teacher (a DualGAN weights file), --photos and --styles (folders of images) are required")
    trainer = Distiller(settings)
    start = run.start(resume, modules=trainer.modules, optimizers=trainer.optimizers)
    stop = min(settings.steps, settings.stop_at) if settings.stop_at > 0 else settings.steps
    batches = TrainingData(settings).batches(start=start, stop=stop)
    log = run.open_log([*LOGGED, "lr"], start)
    bar = tqdm(total=settings.steps, initial=start, desc="distill", dynamic_ncols=True)
    t0 = time.time()
    for step, (rgb, paint) in enumerate(batches, start=start):
        parts = trainer.step(rgb, paint, step)
        done = step + 1
        bar.update(1)
        if done % settings.log_every == 0 or done == settings.steps:
            values = {k: float(v.detach()) for k, v in parts.items()}
            bar.set_postfix({k: f"{v:.3f}" for k, v in values.items()})
            log.write({"step": done, "seconds": f"{time.time() - t0:.1f}", **values, "lr": f"{learning_rate(settings, step):.6f}"})
        if done % settings.checkpoint_every == 0 or done == stop:
            run.save(done, modules=trainer.modules, optimizers=trainer.optimizers)
    bar.close()
    log.close()
    if settings.export and stop == settings.steps:
        export_fast(run.checkpoint, settings.teacher, settings.export)
    return run.checkpoint


def export_fast(checkpoint: str | Path, teacher_path: str | Path, out: str | Path) -> Path:
    """Write the teacher's weights file again, with the checkpoint's fast network inside."""
    meta = read_checkpoint_meta(checkpoint)
    settings = DistillSettings(**meta["settings"])
    teacher, info = load_weights(teacher_path)
    model = with_fast_style(teacher, settings)
    load_checkpoint(checkpoint, modules={"fast_style": model.fast_style}, optimizers={})
    training = dict(info.training)
    training["fast_style"] = {"distilled_from": Path(teacher_path).name, "shape": settings.shape,
                              "steps": int(meta["step"]), "batch": settings.batch,
                              "crop": settings.crop, "photos": settings.photos, "styles": settings.styles}
    dtype = {"F16": torch.float16, "BF16": torch.bfloat16}.get(inspect_weights(teacher_path).stored_dtype, torch.float32)
    save_weights(out, model.eval(), styles=info.styles, training=training, licence=info.licence, dtype=dtype)
    logger.info("exported %s (fast style network from step %d)", out, meta["step"])
    return Path(out)


def register(subparsers) -> None:
    p = subparsers.add_parser("distill", help="distil a fast style network (light encoder and decoder) from a trained model")
    add_settings_arguments(p, DistillSettings)
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir exactly where it stopped")
    p.set_defaults(func=_run)
    p = subparsers.add_parser("export-fast", help="add a distillation checkpoint's fast network to a copy of its teacher file")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("teacher", type=Path)
    p.add_argument("out", type=Path)
    p.set_defaults(func=_export)


def _run(args) -> str:
    return f"checkpoint: {distill(settings_from_args(args, DistillSettings), resume=args.resume)}"


def _export(args) -> str:
    return f"wrote {export_fast(args.checkpoint, args.teacher, args.out)}"
