"""Colour photos -> plausible old black-and-white scans, for training and for a degraded held-out set.

Real old photographs are not the luminance of a colour photo: film has its own spectral response
(orthochromatic film is blind to red, so red renders dark and blue light), and the print and scan
add grain, blur, faded or lifted tones, dust, scratches and JPEG blocks. ``degrade_grey`` draws all
of that at random per picture; ``degraded_eval_copy`` is the same with a fixed seed, so the degraded
held-out set is the same on every run.

Input: B x 3 x H x W sRGB in 0..1. Output: B x 1 x H x W grey sRGB value in 0..1 (repeat it to three
channels for the grey RGB image the model sees). With strength 0 the output is plain luminance: the
grey whose Lab L equals the photo's (``gan_core.color.luminance``). Randomness comes only from the
``torch.Generator`` passed in (drawn on the CPU, whatever the tensors' device), so a seed fixes it.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from gan_core.color import linear_to_srgb, srgb_to_linear

# Spectral weights on linear R, G, B (each sums to 1). Luminance is the CIE Y row of sRGB.
LUMINANCE = (0.212671, 0.715160, 0.072169)
# Early panchromatic film: sees red, but more blue and less green than the eye.
PANCHROMATIC = (0.30, 0.45, 0.25)
# Orthochromatic film: blind to red, most sensitive to blue.
ORTHOCHROMATIC = (0.03, 0.42, 0.55)
FILMS = {"luminance": LUMINANCE, "panchromatic": PANCHROMATIC, "orthochromatic": ORTHOCHROMATIC}

# Each effect happens to a picture with this chance (times strength, at most 1); its size scales with strength.
P_GRAIN, P_BLUR, P_TONE, P_DUST, P_SCRATCH, P_JPEG = 0.8, 0.7, 0.8, 0.5, 0.35, 0.6
MAX_DUST, MAX_SCRATCHES = 24, 3
EVAL_STRENGTH = 1.0


def film_grey(rgb: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Grey sRGB value (B x 1 x H x W) of ``rgb`` seen by film with per-picture spectral ``weights`` (B x 3,
    rows summing to 1), mixed in linear light as film exposure is."""
    lin = srgb_to_linear(rgb.clamp(0.0, 1.0))
    y = torch.einsum("bchw,bc->bhw", lin, weights.to(lin)).unsqueeze(1)
    return linear_to_srgb(y.clamp(0.0, 1.0)).clamp_(0.0, 1.0)


def uniform(generator: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return torch.rand(n, generator=generator) * (high - low) + low


def _chance(generator: torch.Generator, n: int, p: float) -> torch.Tensor:
    return torch.rand(n, generator=generator) < min(p, 1.0)


def _gaussian_taps(sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """B x (2 radius + 1) normalised Gaussian taps; sigma 0 gives the identity tap."""
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    taps = torch.exp(-0.5 * (x[None] / sigma.clamp_min(1e-3)[:, None]) ** 2)
    return taps / taps.sum(1, keepdim=True)


def gaussian_blur(grey: torch.Tensor, sigma: torch.Tensor, radius: int = 4) -> torch.Tensor:
    """Separable Gaussian blur of B x 1 x H x W pictures with one sigma per picture (a grouped convolution: one
    group per picture), taps out to ``radius`` pixels (less than H and W: the edges are reflected)."""
    b, _, h, w = grey.shape
    taps = _gaussian_taps(sigma, radius).to(grey)
    x = F.pad(grey.reshape(1, b, h, w), (radius, radius, 0, 0), mode="reflect")
    x = F.conv2d(x, taps.view(b, 1, 1, -1), groups=b)
    x = F.pad(x, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(x, taps.view(b, 1, -1, 1), groups=b).reshape(b, 1, h, w)


def _grain(grey: torch.Tensor, amount: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Film grain: noise clumped over a pixel or two, strongest in the mid-tones (none in pure black or white)."""
    b, _, h, w = grey.shape
    noise = torch.randn(b, 1, h, w, generator=generator).to(grey)
    noise = gaussian_blur(noise, torch.full((b,), 0.7), radius=2) * 1.9  # clumping keeps about half the spread; restore it
    midtones = 2.0 * (grey * (1.0 - grey)).clamp_min(0.0).sqrt()
    return grey + amount.to(grey).view(b, 1, 1, 1) * midtones * noise


def _tone(grey: torch.Tensor, black: torch.Tensor, white: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Faded print: blacks lifted to ``black``, whites dulled to ``white``, mid-tones bent by ``gamma``."""
    b = grey.shape[0]
    shape = (b, 1, 1, 1)
    curved = grey.clamp(1e-4, 1.0) ** gamma.to(grey).view(shape)
    black, white = black.to(grey).view(shape), white.to(grey).view(shape)
    return black + (white - black) * curved


def _dust(grey: torch.Tensor, counts: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Dust specks: soft dots of a pixel or three, mostly white (dust on the negative prints white)."""
    b, _, h, w = grey.shape
    where = torch.randint(0, h * w, (b, MAX_DUST), generator=generator)
    size = torch.rand(b, MAX_DUST, generator=generator) * 0.5 + 0.3
    sign = torch.where(torch.rand(b, MAX_DUST, generator=generator) < 0.75, 1.0, -1.0)
    used = torch.arange(MAX_DUST)[None] < counts[:, None]
    impulses = torch.zeros(b, h * w)
    impulses.scatter_add_(1, where, size * sign * used)
    spot = _gaussian_taps(torch.tensor([0.9]), 2)[0]
    kernel = torch.outer(spot, spot)
    kernel = (kernel / kernel.max()).view(1, 1, 5, 5).to(grey)
    return grey + F.conv2d(impulses.view(b, 1, h, w).to(grey), kernel, padding=2)


def _scratches(grey: torch.Tensor, counts: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Long thin scratches, nearly vertical (film runs through the camera lengthwise), bright or dark."""
    b, _, h, w = grey.shape
    k = MAX_SCRATCHES
    x0 = torch.rand(b, k, 1, 1, generator=generator) * w
    slope = (torch.rand(b, k, 1, 1, generator=generator) - 0.5) * 0.1
    width = torch.rand(b, k, 1, 1, generator=generator) * 0.8 + 0.6
    top = torch.rand(b, k, 1, 1, generator=generator) * h * 0.6
    length = (torch.rand(b, k, 1, 1, generator=generator) * 0.7 + 0.3) * h
    strength = (torch.rand(b, k, 1, 1, generator=generator) * 0.3 + 0.1)
    strength = strength * torch.where(torch.rand(b, k, 1, 1, generator=generator) < 0.7, 1.0, -1.0)
    strength = strength * (torch.arange(k)[None, :, None, None] < counts[:, None, None, None])
    ys = torch.arange(h, dtype=torch.float32).view(1, 1, h, 1)
    xs = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w)
    across = (1.0 - (xs - x0 - slope * ys).abs() / width).clamp_min(0.0)
    along = ((ys >= top) & (ys < top + length)).float()
    return grey + (strength * across * along).sum(1, keepdim=True).to(grey)


def _jpeg(grey: torch.Tensor, quality: torch.Tensor, apply: torch.Tensor) -> torch.Tensor:
    """JPEG round trip through PIL (8-bit grey), per picture, where ``apply`` says so."""
    if not bool(apply.any()):
        return grey
    out = grey.clone()
    pixels = (grey.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8).cpu().numpy()
    for i in torch.nonzero(apply).flatten().tolist():
        buf = io.BytesIO()
        Image.fromarray(pixels[i, 0], mode="L").save(buf, "JPEG", quality=int(quality[i]))
        decoded = np.asarray(Image.open(io.BytesIO(buf.getvalue())), dtype=np.float32) / 255.0
        out[i, 0] = torch.from_numpy(decoded).to(grey)
    return out


def _film_weights(generator: torch.Generator, n: int, strength: float, films: tuple[str, ...]) -> torch.Tensor:
    """Per picture: one film's weights, jittered, blended with luminance by ``strength`` (0 = luminance)."""
    table = torch.tensor([FILMS[f] for f in films], dtype=torch.float32)
    chosen = table[torch.randint(0, len(films), (n,), generator=generator)]
    jitter = 1.0 + 0.25 * (torch.rand(n, 3, generator=generator) - 0.5)
    chosen = chosen * jitter
    chosen = chosen / chosen.sum(1, keepdim=True)
    s = min(max(strength, 0.0), 1.0)
    return (1.0 - s) * torch.tensor(LUMINANCE)[None] + s * chosen


@torch.no_grad()
def degrade_grey(rgb: torch.Tensor, generator: torch.Generator, strength: float = 1.0,
                 films: tuple[str, ...] = ("luminance", "panchromatic", "orthochromatic")) -> torch.Tensor:
    """A batch of colour photos (B x 3 x H x W, 0..1) as old black-and-white scans (B x 1 x H x W, 0..1).

    Per picture, at random: a film response from ``films`` (see FILMS), film grain, blur, a faded
    tone curve, dust, scratches and JPEG compression. ``strength`` scales both how often each effect
    happens and how strong it is: 0 gives plain luminance, 1 the intended mix, more exaggerates it."""
    if rgb.dim() != 4 or rgb.shape[1] != 3:
        raise ValueError(f"degrade_grey wants a B x 3 x H x W RGB batch, got shape {tuple(rgb.shape)}")
    unknown = set(films) - set(FILMS)
    if not films or unknown:
        raise ValueError(f"unknown film response {sorted(unknown)}; choose from {sorted(FILMS)}")
    strength = float(strength)
    if not math.isfinite(strength) or strength < 0:
        raise ValueError(f"strength must be a number >= 0, got {strength}")
    b = rgb.shape[0]
    g = generator
    grey = film_grey(rgb.float(), _film_weights(g, b, strength, films))
    if strength == 0.0:
        return grey.to(rgb.dtype)
    s = strength
    on = _chance(g, b, P_GRAIN * s).float()
    grey = _grain(grey, on * uniform(g, b, 0.01, 0.06) * s, g)
    on = _chance(g, b, P_BLUR * s).float()
    grey = gaussian_blur(grey, on * uniform(g, b, 0.3, 1.4) * s)
    grey = _dust(grey, _chance(g, b, P_DUST * s) * torch.randint(1, MAX_DUST + 1, (b,), generator=g), g)
    grey = _scratches(grey, _chance(g, b, P_SCRATCH * s) * torch.randint(1, MAX_SCRATCHES + 1, (b,), generator=g), g)
    on = _chance(g, b, P_TONE * s).float()
    black = on * uniform(g, b, 0.0, 0.15) * s
    white = 1.0 - on * uniform(g, b, 0.0, 0.15) * s
    gamma = torch.exp(on * uniform(g, b, -0.35, 0.35) * s)
    grey = _tone(grey.clamp(0.0, 1.0), black, white, gamma)
    quality = (95.0 - uniform(g, b, 0.0, 65.0) * min(s, 1.0)).round()
    grey = _jpeg(grey.clamp(0.0, 1.0), quality, _chance(g, b, P_JPEG * s))
    return grey.clamp(0.0, 1.0).to(rgb.dtype)


def degraded_eval_copy(rgb: torch.Tensor, seed: int) -> torch.Tensor:
    """The held-out set's degraded grey input: ``degrade_grey`` at EVAL_STRENGTH with a generator seeded by
    ``seed`` (give each held-out photo its own fixed seed, e.g. its index). Takes 3 x H x W or B x 3 x H x W."""
    single = rgb.dim() == 3
    batch = rgb.unsqueeze(0) if single else rgb
    out = degrade_grey(batch, torch.Generator().manual_seed(int(seed)), EVAL_STRENGTH)
    return out[0] if single else out
