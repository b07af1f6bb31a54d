"""gan_core units: Lab, chroma grid, weights format round trip and error paths, inference properties."""

from __future__ import annotations

import json
import math
import struct

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from gan_core.chroma import AbGrid
from gan_core.color import _f, _f_inv, lab_to_rgb, linear_to_srgb, luminance, rgb_to_lab, srgb_to_linear
from gan_core.guided import box_mean
from gan_core import DualGANRunner, StyleSpec
from gan_core.fullres import FullResolution
from gan_core.geometry import check_image, is_grey
from gan_core.precision import choose_dtype, cpu_has_native_bf16
from gan_core.style_codes import feature_stats, stylize_features
from gan_core.testing import tiny_model, write_tiny_weights
from gan_core.weights import WeightsError, load_weights, save_weights


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def runner(model):
    return DualGANRunner(model)


@pytest.fixture(scope="module")
def style(runner):
    return runner.style_from_image(torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(9)))


# ---- colour space ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lab_round_trip(dtype):
    rgb = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0), dtype=dtype)
    assert (lab_to_rgb(rgb_to_lab(rgb)) - rgb).abs().max() < 1e-4


def test_lab_reference_values():
    white = rgb_to_lab(torch.ones(1, 3, 1, 1))[0, :, 0, 0]
    assert white.tolist() == pytest.approx([100.0, 0.0, 0.0], abs=0.01)
    red = rgb_to_lab(torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1))[0, :, 0, 0]
    assert red.tolist() == pytest.approx([53.24, 80.09, 67.20], abs=0.05)


def test_lab_gradients_are_finite():
    rgb = torch.rand(1, 3, 8, 8, requires_grad=True)
    (lab_to_rgb(rgb_to_lab(rgb)).sum() + rgb_to_lab(torch.zeros(1, 3, 2, 2) + rgb[..., :2, :2]).sum()).backward()
    assert torch.isfinite(rgb.grad).all()



def test_piecewise_curves_match_the_textbook_formulas():
    """The clamp-based pieces (``_knee``) equal the torch.where definitions of the standards (float64)."""
    x = torch.linspace(-0.2, 1.2, 20001, dtype=torch.float64)
    c = x.clamp(0.0, 1.0)
    srgb_lin = torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    lin_srgb = torch.where(c <= 0.0031308, c * 12.92, 1.055 * c.clamp_min(1e-12) ** (1 / 2.4) - 0.055)
    eps, kappa = 216 / 24389, 24389 / 27
    f = torch.where(x > eps, x.clamp_min(1e-12) ** (1 / 3), (kappa * x + 16) / 116)
    f_inv = torch.where(x**3 > eps, x**3, (116 * x - 16) / kappa)
    for ours, textbook in ((srgb_to_linear(x), srgb_lin), (linear_to_srgb(x), lin_srgb), (_f(x), f), (_f_inv(x), f_inv)):
        assert (ours - textbook).abs().max() < 1e-7
    assert torch.allclose(_f(x, 116.0, -16.0), 116 * f - 16, atol=1e-6)


def test_grey_luminance_fast_path_equals_the_general_path():
    grey = torch.rand(2, 1, 17, 23, generator=torch.Generator().manual_seed(6)).expand(-1, 3, -1, -1)
    assert torch.allclose(luminance(grey, grey=True), luminance(grey), atol=1e-4)
    assert is_grey(grey) and is_grey(grey.contiguous())  # expanded (known) and stored (read) grey
    colour = grey.contiguous()
    colour[1, 2, 16, 22] += 0.01  # one pixel of one image differs
    assert not is_grey(colour)


@pytest.mark.parametrize("radius", [1, 3, 8])
def test_separable_box_mean_equals_the_2d_window(radius):
    """Exact with count_include_pad=False (the in-image count of a window is the product of the 1-D
    counts), also for images smaller than the window."""
    k = 2 * radius + 1
    for shape in ((2, 6, 31, 45), (1, 1, 5, 7)):
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(radius), dtype=torch.float64)
        reference = F.avg_pool2d(x, k, stride=1, padding=radius, count_include_pad=False)
        assert torch.allclose(box_mean(x, radius), reference, atol=1e-12)


def test_full_resolution_rows_equal_bilinear_interpolation():
    """Columns upsampled once per image, then rows per strip: the same as F.interpolate."""
    small = torch.randn(1, 4, 8, 10, generator=torch.Generator().manual_seed(8))
    full = FullResolution(device=None, rgb=torch.zeros(1, 3, 24, 30), lightness=torch.zeros(1, 1, 24, 30),
                          coefficients=small, coefficient_scale=(8 / 24, 10 / 30), stylised=None, stylised_scale=(1, 1))
    reference = F.interpolate(small, size=(24, 30), mode="bilinear", align_corners=False)
    strips = [full._up("coefficients", full.coefficient_scale, y0, min(y0 + 7, 24)) for y0 in range(0, 24, 7)]
    assert torch.allclose(torch.cat(strips, dim=2), reference, atol=1e-5)


def test_full_resolution_maps_hold_no_network_padding(runner, style):
    """A render of 37 x 50 reaches the encoder padded to 40 x 56 (replicated rows and columns); the maps
    brought back to full size are the render's own, so the bilinear taps of the last rows and columns clamp
    at the image's edge (F.interpolate of the unpadded map) instead of blending in the network's output
    over the padding."""
    image = torch.rand(1, 3, 61, 83, generator=torch.Generator().manual_seed(5))
    full = next(runner.run(image, render_size=37, style=StyleSpec(style, None, 1.0)))
    assert full.stylised.shape[-2:] == (37, 50) and full.coefficients.shape[-2:] == (19, 25)
    reference = F.interpolate(full.stylised, size=(61, 83), mode="bilinear", align_corners=False)
    assert torch.allclose(full._up("stylised", full.stylised_scale, 0, 61), reference, atol=1e-5)


# ---- chroma grid ----------------------------------------------------------------------------

def test_luminance_is_the_lab_lightness():
    rgb = torch.rand(2, 3, 17, 23, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(luminance(rgb), rgb_to_lab(rgb)[:, :1], atol=1e-4)


def test_auto_dtype_follows_native_bf16(tmp_path, monkeypatch):
    with_bf16, without = tmp_path / "bf16", tmp_path / "plain"
    with_bf16.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 avx512_vnni\n")
    without.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n")
    assert cpu_has_native_bf16(str(with_bf16)) and not cpu_has_native_bf16(str(without))
    assert not cpu_has_native_bf16(str(tmp_path / "missing"))
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr("gan_core.precision.cpu_has_native_bf16", lambda: True)
    assert choose_dtype("auto", cpu) == torch.bfloat16
    monkeypatch.setattr("gan_core.precision.cpu_has_native_bf16", lambda: False)
    assert choose_dtype("auto", cpu) == torch.float32
    assert choose_dtype("auto", gpu) == torch.float16 and choose_dtype("auto", gpu, gpu_fp16_ok=False) == torch.float32
    assert choose_dtype("fp16", cpu) == torch.float32 and choose_dtype("bf16", cpu) == torch.bfloat16
    with pytest.raises(ValueError, match="dtype must be one of"):
        choose_dtype("int8", cpu)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_keeps_batchnorm_statistics(dtype):
    """Running variances above float16's range must survive the cast (they broke fp16 colour on GPUs)."""
    reference, half = tiny_model(seed=5), tiny_model(seed=5)
    for m in (reference, half):
        for bn in (x for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d)):
            bn.running_var.fill_(2e5)
            bn.running_mean.fill_(300.0)
    half.cast(dtype)
    bns = [x for x in half.modules() if isinstance(x, torch.nn.BatchNorm2d)]
    assert bns and all(bn.running_var.dtype == torch.float32 and bool((bn.running_var == 2e5).all()) for bn in bns)
    assert next(half.encoder.parameters()).dtype == dtype
    image = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        ours, ref = DualGANRunner(half).colorize(image), DualGANRunner(reference.eval()).colorize(image)
    assert (ours - ref).abs().mean() < 0.02


def test_grid_bins_and_annealed_mean():
    grid = AbGrid(22, 110)
    ab = grid.centres[[5, 300]].T.reshape(1, 2, 1, 2)
    assert grid.bin_index(ab).flatten().tolist() == [5, 300]
    logits = torch.full((1, grid.num_bins, 1, 1), -50.0)
    logits[0, 300] = 50.0
    assert torch.allclose(grid.annealed_mean(logits)[0, :, 0, 0], grid.centres[300], atol=1e-4)
    hist = grid.histogram(torch.randn(2, 2, 6, 6) * 40)
    assert torch.allclose(hist.sum(1), torch.ones(2))
    # a lower temperature pulls the mean toward the most likely bin
    two = torch.full((1, grid.num_bins, 1, 1), -50.0)
    two[0, 10], two[0, 400] = 1.0, 0.5
    hot, cold = grid.annealed_mean(two, 1.0), grid.annealed_mean(two, 0.1)
    assert (cold[0, :, 0, 0] - grid.centres[10]).norm() < (hot[0, :, 0, 0] - grid.centres[10]).norm()
    # both memory layouts decode alike (channels_last takes the pixels x bins path)
    many = torch.randn(2, grid.num_bins, 5, 7, generator=torch.Generator().manual_seed(1)) * 3
    nhwc = many.contiguous(memory_format=torch.channels_last)
    assert torch.allclose(grid.annealed_mean(many), grid.annealed_mean(nhwc), atol=1e-4)
    # more pixels than one block of the channels_last path, the last block partial
    big = torch.randn(2, grid.num_bins, 23, 37, generator=torch.Generator().manual_seed(2)) * 3
    assert torch.allclose(grid.annealed_mean(big), grid.annealed_mean(big.contiguous(memory_format=torch.channels_last)), atol=1e-4)
    # the confidence muting too (per block on the channels_last path)
    assert torch.allclose(grid.annealed_mean(big, confidence=0.25),
                          grid.annealed_mean(big.contiguous(memory_format=torch.channels_last), confidence=0.25), atol=1e-3)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_annealed_mean_of_far_spread_logits_equals_the_exact_mean(layout):
    # Guidance logits push far-off bins hundreds below the best; the floor keeps their exponentials out of
    # the subnormal range without changing the colours or the entropy.
    from gan_core.chroma import floor_logits

    grid = AbGrid()
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, grid.num_bins, 6, 7, generator=gen) * 3
    logits[:, 100:] -= 300 * torch.rand(2, grid.num_bins - 100, 6, 7, generator=gen)
    floored = floor_logits(logits, 0.38, dim=1)
    assert torch.equal(floored.amax(1), logits.amax(1)) and (floored >= logits).all()
    assert (floored > logits).any() and floored.min() >= (logits.amax(1, keepdim=True) - 80 * 0.38).min()
    probs = torch.softmax(logits.double() / 0.38, dim=1)
    exact = torch.einsum("bqhw,qc->bchw", probs, grid.centres.double())
    log_p = torch.log_softmax(logits.double(), dim=1)
    entropy = -(log_p.exp() * log_p).sum(1, keepdim=True) / math.log(grid.num_bins)
    got = grid.annealed_mean(logits.contiguous(memory_format=layout), 0.38, confidence=0.25)
    assert torch.allclose(got.double(), exact * (1 - 0.25 * entropy), atol=1e-4)


def test_guided_colour_logits_in_row_bands_and_as_an_offset(monkeypatch):
    """A guided colour decoder's training path adds the guidance logits a band of rows at a time: the same
    logits as in one band. The inference path hands them over as a low-rank offset that the annealed mean
    adds block by block: the same colours, in either memory layout and from bf16 logits. Without guidance
    every confidence is zero, so the term is skipped and the logits equal those of an all-zero guidance map."""
    import dataclasses

    from gan_core import color_decoder
    from gan_core.config import tiny_config

    torch.manual_seed(0)
    model = tiny_model(config=dataclasses.replace(tiny_config(), guided=True))
    dec = model.color_decoder
    with torch.no_grad():
        dec.guide_gate.weight.normal_()
        dec.guide_gate.bias.normal_()
        feats = model.encoder(torch.rand(1, 3, 64, 48))
        guide = torch.rand(1, 6, 32, 24)
        whole = dec(feats, None, guide)
        monkeypatch.setattr(color_decoder, "_GUIDANCE_PIXELS", 48)  # 2 rows of 24 pixels a band
        banded = dec(feats, None, guide)
        assert torch.equal(banded, whole)
        assert torch.equal(dec(feats, None, None), dec(feats, None, torch.zeros(1, 6, 32, 24)))

        logits, offset = dec.logits_and_guidance(feats, None, guide)
        assert torch.equal(logits.float() + torch.einsum("bkhw,kq->bqhw", *offset), whole)
        assert dec.logits_and_guidance(feats, None, None)[1] is None
        expected = model.ab_from_logits(whole)
        for layout in (torch.contiguous_format, torch.channels_last):
            got = model.ab_from_logits(logits.contiguous(memory_format=layout), offset)
            assert got.dtype == torch.float32 and torch.allclose(got, expected, atol=1e-4)
        low = logits.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
        reference = model.ab_from_logits(low.float() + torch.einsum("bkhw,kq->bqhw", *offset))
        assert torch.allclose(model.ab_from_logits(low, offset), reference, atol=1e-4)


def test_interrupt_points_in_the_loops_without_convolutions():
    """A tile's annealed mean, the guided filter and the strip loops run no convolution, so they check on
    their own: before every block of pixels and every box pass (inside ``interrupt_points`` or
    ``checking``) and before every strip of rows."""
    from gan_core.chroma import _PIXELS_PER_BLOCK
    from gan_core.fullres import full_lightness, grey_network_input
    from gan_core.interrupts import checking, interrupt_points

    calls = []
    grid = AbGrid(22, 110)
    logits = torch.randn(1, grid.num_bins, 40, 64).contiguous(memory_format=torch.channels_last)
    with interrupt_points(torch.nn.Identity(), lambda: calls.append("block")):
        grid.annealed_mean(logits)
    grid.annealed_mean(logits)  # no check outside the context
    assert calls == ["block"] * -(-40 * 64 // _PIXELS_PER_BLOCK)
    full_lightness(torch.rand(1, 3, 30, 10), torch.device("cpu"), 100, check=lambda: calls.append("strip"))
    assert calls.count("strip") == 3  # 10 rows of 10 pixels each
    assert grey_network_input(torch.rand(1, 1, 30, 10) * 100, 100, check=lambda: calls.append("grey")).shape == (1, 3, 32, 16)
    assert calls.count("grey") == 3
    with checking(lambda: calls.append("box")):
        box_mean(torch.rand(1, 2, 8, 8), 2)
    assert calls.count("box") == 2  # the column pass and the row pass


# ---- weights format -------------------------------------------------------------------------

def test_weights_round_trip_bit_exact(tmp_path, model):
    path = tmp_path / "m.safetensors"
    save_weights(path, model, dtype=torch.float32, licence="CC0-1.0", training={"steps": 3})
    loaded, info = load_weights(path)
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    assert info.licence == "CC0-1.0" and info.training == {"steps": 3} and info.config == model.config
    half = tmp_path / "h.safetensors"
    save_weights(half, model)  # fp16 by default
    loaded16, info16 = load_weights(half)
    assert info16.stored_dtype == "F16"
    w = model.state_dict()["color_decoder.head.weight"]
    assert torch.equal(loaded16.state_dict()["color_decoder.head.weight"], w.half().float())


def _rewrite_header(path, mutate):
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    mutate(header)
    raw = json.dumps(header).encode()
    raw += b" " * ((8 - len(raw) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])


def _cases(tmp_path):
    valid = write_tiny_weights(tmp_path / "valid.safetensors")
    data = valid.read_bytes()

    def make(name, content=None, header=None):
        p = tmp_path / name
        if content is not None:
            p.write_bytes(content)
        else:
            p.write_bytes(data)
            _rewrite_header(p, header)
        return p

    n = struct.unpack("<Q", data[:8])[0]

    def del_tensor(h):
        h.pop("color_decoder.head.bias")

    def add_tensor(h):
        h["extra.weight"] = dict(h["color_decoder.head.bias"])

    def bad_shape(h):
        h["color_decoder.head.bias"]["shape"] = [h["color_decoder.head.bias"]["shape"][0] // 2, 2]

    def int_dtype(h):
        h["color_decoder.head.bias"]["dtype"] = "I32"

    def version(h):
        h["__metadata__"]["dualgan.format"] = "99"

    def no_config(h):
        h["__metadata__"].pop("dualgan.config")

    def bad_config(h):
        h["__metadata__"]["dualgan.config"] = '{"vgg_widths": [1, 2, 3, 4], "colour": 1}'

    def sd_like(h):
        h.pop("__metadata__")
        h["model.diffusion_model.input_blocks.0.0.weight"] = h.pop("color_decoder.head.bias")

    def style_like(h):
        h.pop("__metadata__")
        for name in list(h):
            h[f"styles.mine.{name}"] = h.pop(name)

    return [
        (tmp_path / "missing.safetensors", "no such file"),
        (make("zero.safetensors", b""), "too short"),
        (make("trunc.safetensors", data[: len(data) // 2]), "truncated"),
        (make("huge.safetensors", struct.pack("<Q", 2**40) + data[8:]), "claims"),
        (make("nojson.safetensors", struct.pack("<Q", 8) + b"notjson!" + b"\0" * 64), "not valid JSON"),
        (make("ver.safetensors", header=version), "format '99' is not supported"),
        (make("noconf.safetensors", header=no_config), "dualgan.config"),
        (make("badconf.safetensors", header=bad_config), "unknown fields"),
        (make("missing_t.safetensors", header=del_tensor), "missing"),
        (make("extra_t.safetensors", header=add_tensor), "not part of this architecture"),
        (make("shape.safetensors", header=bad_shape), "shape"),
        (make("dtype.safetensors", header=int_dtype), "dtype I32"),
        (make("sd.safetensors", header=sd_like), "Stable Diffusion"),
        (make("style.safetensors", header=style_like), "load it as a style"),
        (make("model.ckpt", data), "pickles"),
        (tmp_path, "not a file"),
    ], n


def test_every_loader_error_is_one_sentence_naming_the_file(tmp_path):
    cases, _ = _cases(tmp_path)
    for path, expected in cases:
        with pytest.raises(WeightsError) as err:
            load_weights(path)
        message = str(err.value)
        assert expected in message, (path.name, message)
        assert path.name in message and "\n" not in message


def test_pickle_renamed_and_nan_weights(tmp_path, model):
    pickled = tmp_path / "pickled.safetensors"
    torch.save({"a": torch.zeros(2)}, pickled)
    with pytest.raises(WeightsError, match="pickle"):
        load_weights(pickled)
    path = tmp_path / "nan.safetensors"
    save_weights(path, model, dtype=torch.float32)
    from safetensors.torch import load_file

    tensors = load_file(path)
    tensors["color_decoder.head.bias"][0] = float("nan")
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata()
    save_file(tensors, path, metadata=meta)
    with pytest.raises(WeightsError, match="NaN"):
        load_weights(path)


# ---- inference ------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 3, 1, 1), (1, 3, 17, 531), (2, 3, 3, 2), (1, 1, 9, 9), (1, 4, 12, 20)])
def test_output_shapes_and_ranges(runner, style, shape):
    image = torch.rand(*shape)
    out = runner.colorize(image)
    assert out.shape == (shape[0], 3, shape[2], shape[3]) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    s = runner.stylize(image, StyleSpec(style, None, 1.0), render_size=64)
    assert s.shape == out.shape and torch.isfinite(s).all()


def test_full_resolution_path_on_4000x3000(runner):
    image = torch.rand(1, 3, 3000, 4000)
    out = runner.colorize(image, render_size=64)
    assert out.shape == image.shape
    # the output keeps the input's luminance (up to gamut clipping)
    l_in, l_out = rgb_to_lab(image[..., :300, :300])[:, 0], rgb_to_lab(out[..., :300, :300])[:, 0]
    assert (l_in - l_out).abs().median() < 0.5


def test_hostile_values_and_empty_batch(runner):
    image = torch.rand(1, 3, 16, 16)
    image[0, 0, 0, 0], image[0, 1, 1, 1], image[0, 2, 2, 2] = float("nan"), float("inf"), -float("inf")
    image[0, :, 5] = 7.0
    assert torch.isfinite(runner.colorize(image)).all()
    with pytest.raises(ValueError, match="empty batch"):
        runner.colorize(torch.zeros(0, 3, 8, 8))
    with pytest.raises(ValueError, match="channels"):
        check_image(torch.zeros(1, 2, 8, 8))


def test_blend_endpoints_equal_colorize_and_stylize(runner, style):
    image = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(2))
    colour = runner.colorize(image, render_size=32)
    for strength in (0.3, 1.0):
        spec = StyleSpec(style, None, strength)
        stylised = runner.stylize(image, spec, render_size=32)
        b_colour = runner.blend(image, spec, lambda_content=1.0, lambda_color=1.0, render_size=32)
        b_style = runner.blend(image, spec, lambda_content=0.0, lambda_color=0.0, render_size=32)
        assert torch.equal(b_colour[0], colour) and torch.equal(b_colour[1], colour)
        assert torch.equal(b_style[0], stylised) and torch.equal(b_style[2], stylised)


@pytest.mark.parametrize("which", ["lambda_content", "lambda_color"])
def test_lambda_sweeps_are_monotone_and_smooth(runner, style, which):
    image = torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(4))
    spec = StyleSpec(style, None, 1.0)
    values = [i / 10 for i in range(11)]
    outs = []
    for v in values:
        kwargs = {"lambda_content": 0.5, "lambda_color": 0.5, which: v}
        outs.append(rgb_to_lab(runner.blend(image, spec, render_size=32, **kwargs)[0]))
    distances = [(o - outs[0]).abs().mean().item() for o in outs]
    assert all(b >= a - 1e-4 for a, b in zip(distances, distances[1:])), distances
    steps = [(b - a).abs().mean().item() for a, b in zip(outs, outs[1:])]
    assert max(steps) < 3 * (sum(steps) / len(steps)) + 1e-3, steps  # no jumps


def test_lambda_style_interpolates_features_monotonically(runner, style):
    feats = torch.rand(1, runner.model.encoder.channels("relu4_1"), 4, 6)
    content = feature_stats(feats)
    distances = [(stylize_features(feats, content, style, v / 10) - feats).norm().item() for v in range(11)]
    assert distances[0] == 0.0
    assert all(b > a for a, b in zip(distances, distances[1:]))
    image = torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(4))
    outs = [runner.stylize(image, StyleSpec(style, None, v / 10), render_size=32) for v in range(11)]
    out_d = [(o - outs[0]).abs().mean().item() for o in outs]
    assert all(b >= a - 1e-3 for a, b in zip(out_d, out_d[1:])), out_d


def test_palette_and_saturation(runner):
    image = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(6))
    grey = runner.colorize(image, saturation=0.0)
    assert rgb_to_lab(grey)[:, 1:].abs().max() < 0.5
    red = runner.palette_from_image(torch.tensor([0.9, 0.1, 0.1]).view(1, 3, 1, 1).expand(1, 3, 16, 16))
    blue = runner.palette_from_image(torch.tensor([0.1, 0.1, 0.9]).view(1, 3, 1, 1).expand(1, 3, 16, 16))
    assert not torch.equal(runner.colorize(image, palette=red), runner.colorize(image, palette=blue))
    with pytest.raises(ValueError, match="palette batch"):
        runner.colorize(image.expand(3, -1, -1, -1), palette=torch.cat([red, blue]))


def test_axis_spans_cover_evenly_and_own_each_pixel_once():
    from gan_core.tiling import axis_spans

    for length in (8, 200, 264, 1544, 2048, 3000, 4000, 12000):
        for tile, overlap in ((1536, 96), (256, 128), (128, 96), (64, 32)):
            spans = axis_spans(length, tile, overlap, 8)
            assert spans[0].start == 0 and spans[-1].stop == length
            assert all(s.stop - s.start <= max(8, tile // 8 * 8) for s in spans)
            assert all(a.stop - b.start >= min(overlap, tile // 2) for a, b in zip(spans, spans[1:]))
            owned = [(s.own_start, s.own_stop) for s in spans]
            assert owned[0][0] == 0 and owned[-1][1] == length
            assert all(a[1] == b[0] for a, b in zip(owned, owned[1:]))
            assert all(s.start <= s.own_start < s.own_stop <= s.stop for s in spans)
            # shared evenly: the tiles add up to the length plus little more than the overlaps
            # (2048 px in 1536 px tiles is 2 x 1072, not 2 x 1536)
            extra = sum(s.stop - s.start for s in spans) - length
            assert extra <= (len(spans) - 1) * (min(overlap, tile // 2) + 16) + 8, (length, tile, extra)


def test_tiled_equals_untiled(model, style):
    image = torch.rand(1, 3, 300, 400, generator=torch.Generator().manual_seed(8))
    whole, tiled = DualGANRunner(model), DualGANRunner(model, tile=256, overlap=128)
    assert tiled.steps_for(1, 300, 400, 0) > 1
    c1, c2 = whole.colorize(image, render_size=0), tiled.colorize(image, render_size=0)
    assert (c1 - c2).abs().max() < 5e-3
    spec = StyleSpec(style, None, 1.0)
    s1, s2 = whole.stylize(image, spec, render_size=0), tiled.stylize(image, spec, render_size=0)
    assert (s1 - s2).abs().mean() < 1e-3 and (s1 - s2).abs().max() < 2e-2


def test_tiled_blend_encodes_each_tile_once(model, style, monkeypatch):
    runner = DualGANRunner(model, tile=128, overlap=96)  # overlap is cut to half a tile (64)
    image = torch.rand(1, 3, 200, 264, generator=torch.Generator().manual_seed(9))
    tiles = runner.steps_for(1, 200, 264, 0)
    assert tiles > 4 and runner.steps_for(1, 200, 264, 0, stylised=True) == 2 * tiles
    calls, steps = [], []
    original = model.encoder.forward
    monkeypatch.setattr(model.encoder, "forward", lambda x, until="relu4_3": calls.append(1) or original(x, until=until))
    spec = StyleSpec(style, None, 1.0)
    blend, colorized, stylized = runner.blend(image, spec, lambda_content=0.5, lambda_color=0.5, render_size=0,
                                              progress=lambda done, total: steps.append((done, total)))
    assert len(calls) == tiles
    assert steps[-1] == (2 * tiles, 2 * tiles)
    monkeypatch.undo()
    whole = DualGANRunner(model)
    assert (whole.stylize(image, spec, render_size=0) - stylized).abs().mean() < 1e-3
    assert (whole.colorize(image, render_size=0) - colorized).abs().max() < 5e-3


def test_tiled_blend_with_per_image_styles_and_palettes(model):
    whole, tiled = DualGANRunner(model), DualGANRunner(model, tile=128, overlap=64)
    image = torch.rand(2, 3, 200, 264, generator=torch.Generator().manual_seed(3))
    spec = StyleSpec(whole.style_from_image(torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(4))), None, 0.7)
    palette = whole.palette_from_image(torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5)))
    kwargs = dict(lambda_content=0.3, lambda_color=0.6, render_size=0, palette=palette)
    for ours, reference in zip(tiled.blend(image, spec, **kwargs), whole.blend(image, spec, **kwargs)):
        assert ours.shape == (2, 3, 200, 264)
        assert (ours - reference).abs().mean() < 1e-3 and (ours - reference).abs().max() < 2e-2


def test_out_of_memory_retry_with_smaller_tiles(model, style, monkeypatch):
    class FakeOOM(Exception):
        pass

    runner = DualGANRunner(model, oom_types=(FakeOOM,))
    original = model.encoder.forward
    sizes = []

    def flaky(x, until="relu4_3"):
        sizes.append(max(x.shape[-2:]))
        if len(sizes) == 1:
            raise FakeOOM()
        return original(x, until=until)

    monkeypatch.setattr(model.encoder, "forward", flaky)
    image = torch.rand(1, 3, 200, 160)
    out = runner.colorize(image, render_size=0)
    monkeypatch.undo()
    assert sizes[0] == 200 and max(sizes[1:]) <= 100
    assert torch.isfinite(out).all() and out.shape == image.shape


def test_temporal_smoothing_steadies_static_frames(runner):
    base = torch.rand(1, 3, 40, 60, generator=torch.Generator().manual_seed(1))
    frames = base.repeat(4, 1, 1, 1)
    frames[2] = torch.rand(1, 3, 40, 60)  # a cut: nothing is carried over where everything changed
    plain = runner.colorize(frames, render_size=32)
    smooth = runner.colorize(frames, render_size=32, temporal_smoothing=0.9)
    assert torch.allclose(plain[0], smooth[0])  # the first frame has nothing to carry
    assert torch.allclose(smooth[1], plain[1], atol=1e-4)  # identical frames: carrying changes nothing
    assert (smooth[3] - plain[3]).abs().max() > 0  # after the cut, frame 3 borrows from frame 2 only where similar
    with pytest.raises(ValueError, match="temporal_smoothing"):
        runner.colorize(frames, temporal_smoothing=2.0)
