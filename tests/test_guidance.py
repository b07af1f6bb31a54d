"""Guided colour: hint maps, hint spreading, reference matching, the guided decoder and the training simulation."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from gan_core.chroma import AbGrid
from gan_core.color import lightness_ab_to_rgb, rgb_to_lab
from gan_core.config import DualGANConfig, tiny_config
from gan_core.encoder import VGGEncoder
from gan_core.guidance import AB_SCALE, GuidanceFusion, guidance_map
from gan_core.hints import HintMap, hints_from_image, spread_hints
from gan_core.references import ReferenceMemory, match_reference
from gan_core.model import DualGAN
from train.guidance_sim import GuidanceMix, simulate_guidance, simulate_hints


def _lab_image(lightness: torch.Tensor, a: float, b: float) -> torch.Tensor:
    ab = torch.stack([torch.full_like(lightness[:, 0], a), torch.full_like(lightness[:, 0], b)], dim=1)
    return lightness_ab_to_rgb(lightness, ab)


def test_strokes_on_a_sepia_scan_are_hints_and_jpeg_noise_is_not():
    gen = torch.Generator().manual_seed(0)
    lightness = 30 + 40 * torch.rand(1, 1, 40, 50, generator=gen)
    scan = _lab_image(lightness, 4.0, 12.0)  # sepia tint
    painted = scan.clone()
    painted[:, :, 10:14, 20:30] = _lab_image(lightness[:, :, 10:14, 20:30], -10.0, -45.0)  # a blue stroke
    noisy = (painted + (torch.rand(painted.shape, generator=gen) - 0.5) * 0.01).clamp(0, 1)  # +-1.3 levels of noise
    hints = hints_from_image(noisy, scan)
    assert hints.count() == 40
    assert hints.mask[0, 0, 10:14, 20:30].all()
    assert hints.ab[0, 1, 12, 25] < -35


def test_only_painted_pixels_are_hints_not_a_sepia_prints_own_tones():
    gen = torch.Generator().manual_seed(1)
    lightness = 5 + 90 * torch.rand(1, 1, 40, 50, generator=gen)
    # A sepia print: warm in the shadows, almost neutral in the highlights, so its own tones lie up to ~25 Lab
    # units from its mean tint.
    warmth = (100 - lightness) / 100
    scan = lightness_ab_to_rgb(lightness, torch.cat([8 * warmth, 30 * warmth], dim=1))
    assert hints_from_image(scan, scan).count() == 0
    assert hints_from_image(torch.rand(1, 3, 40, 50, generator=gen), scan).count() > 1000  # another picture: its colours
    painted = scan.clone()
    painted[:, :, 5:8, 5:15] = torch.tensor([0.1, 0.3, 0.9]).view(1, 3, 1, 1)
    hints = hints_from_image(painted, scan)
    assert hints.count() == 30 and hints.mask[0, 0, 5:8, 5:15].all()


def test_alpha_and_explicit_masks_mark_hints_and_other_sizes_are_scaled():
    image = torch.full((1, 3, 32, 32), 0.5)
    rgba = torch.zeros(1, 4, 16, 16)
    rgba[:, 0, 4:8, 4:8] = 1.0
    rgba[:, 3, 4:8, 4:8] = 1.0
    hints = hints_from_image(rgba, image)
    assert hints.mask.shape[-2:] == (32, 32) and 40 <= hints.count() <= 80 and hints.ab[0, 0, 12, 12] > 50
    mask = torch.zeros(1, 32, 32)
    mask[0, 0, 0] = 1
    explicit = hints_from_image(torch.full((1, 3, 32, 32), 0.5), image, mask)
    assert explicit.count() == 1  # a grey hint under the mask counts, though its chroma is the image's own


def test_bad_hint_inputs_get_one_sentence():
    image = torch.rand(2, 3, 16, 16)
    with pytest.raises(ValueError, match="hints batch has 3"):
        hints_from_image(torch.rand(3, 3, 16, 16), image)
    with pytest.raises(ValueError, match="hint mask must be"):
        hints_from_image(torch.rand(1, 3, 16, 16), image, torch.rand(1, 2, 16, 16))


def test_shrinking_hints_keeps_single_pixel_dots():
    ab = torch.zeros(1, 2, 400, 400)
    mask = torch.zeros(1, 1, 400, 400)
    ab[0, :, 201, 37] = torch.tensor([30.0, -20.0])
    mask[0, 0, 201, 37] = 1
    small = HintMap(ab, mask).resized((50, 50))
    assert small.count() == 1
    assert torch.allclose(small.ab[0, :, 25, 4], torch.tensor([30.0, -20.0]))


@pytest.mark.parametrize("share", [0.001, 0.5])  # a few dots (summed hint by hint) and painted areas (whole map)
def test_shrinking_hints_averages_the_hints_in_each_pixel(share):
    g = torch.Generator().manual_seed(0)
    ab = torch.randn(2, 2, 301, 207, generator=g) * 40
    mask = (torch.rand(2, 1, 301, 207, generator=g) < share).float()
    small = HintMap(ab, mask).resized((40, 30))
    rows, columns = torch.arange(301) * 40 // 301, torch.arange(207) * 30 // 207  # each pixel's cell
    for i, y, x in [(0, 0, 0), (1, 39, 29), (0, 17, 11), (1, 5, 22)]:
        inside = mask[i, 0][rows == y][:, columns == x] > 0
        colours = ab[i][:, rows == y][:, :, columns == x][:, inside]
        assert small.mask[i, 0, y, x] == float(inside.any())
        expected = colours.mean(dim=1) if inside.any() else torch.zeros(2)
        assert torch.allclose(small.ab[i, :, y, x], expected, atol=1e-4)
    assert small.count() == int(sum(((mask[i, 0][rows == y][:, columns == x] > 0).any()) for i in range(2)
                                    for y in range(40) for x in range(30)))


def test_hints_from_pixels_are_the_hints_of_their_maps():
    g = torch.Generator().manual_seed(2)
    ab = torch.randn(2, 2, 30, 40, generator=g) * 30
    mask = (torch.rand(2, 1, 30, 40, generator=g) < 0.05).float()
    dense = HintMap(ab * mask, mask)
    b, _, y, x = mask.nonzero(as_tuple=True)
    sparse = HintMap.from_pixels((2, 30, 40), b, y, x, ab[b, :, y, x])
    assert sparse.count() == dense.count() and sparse.batch == 2
    assert torch.equal(sparse.mask, dense.mask) and torch.equal(sparse.ab, dense.ab)
    for small, reference in ((sparse.network_half((30, 40), (32, 40)), dense.network_half((30, 40), (32, 40))),
                             (sparse.select(1, 2).resized((7, 9)), dense.select(1, 2).resized((7, 9)))):
        assert torch.equal(small.mask, reference.mask) and torch.allclose(small.ab, reference.ab)


@pytest.mark.parametrize("share", [0.001, 0.5])  # a few dots (summed hint by hint) and painted areas (whole map)
@pytest.mark.parametrize("render, padded", [((301, 207), (304, 208)), ((150, 103), (152, 104))])
def test_hints_reach_the_network_on_the_cells_of_the_render_size_halved(share, render, padded):
    g = torch.Generator().manual_seed(1)
    mask = (torch.rand(1, 1, 301, 207, generator=g) < share).float()
    hints = HintMap(torch.tensor([25.0, -40.0]).view(1, 2, 1, 1) * mask, mask)
    half = hints.network_half(render, padded)
    pad = (0, padded[1] - render[1], 0, padded[0] - render[0])
    at_render = hints.resized(render)
    two_steps = HintMap(F.pad(at_render.ab, pad), F.pad(at_render.mask, pad)).resized((padded[0] // 2, padded[1] // 2))
    assert half.mask.shape[-2:] == (padded[0] // 2, padded[1] // 2)
    assert half.count() > 0
    assert torch.equal(half.mask, two_steps.mask)
    assert torch.allclose(half.ab, two_steps.ab, atol=1e-4)


def test_a_hint_spreads_along_its_region_and_stops_at_an_edge():
    lightness = torch.zeros(1, 1, 96, 128)
    lightness[..., :48, :] = 0.8  # sky
    lightness[..., 48:, :] = 0.3  # mountain
    ab = torch.zeros(1, 2, 96, 128)
    mask = torch.zeros(1, 1, 96, 128)
    ab[0, :, 8, 10] = torch.tensor([-5.0, -40.0])
    mask[0, 0, 8, 10] = 1
    spread, confidence = spread_hints(HintMap(ab, mask), lightness)
    assert torch.allclose(spread[0, :, 40, 120], torch.tensor([-5.0, -40.0]), atol=0.5)  # far end of the sky
    assert spread[0, :, 90, 10].abs().max() < 1.0  # the mountain below the hint stays unguided
    assert confidence[0, 0, 8, 10] == 1 and confidence[0, 0, 8, 14] > confidence[0, 0, 40, 120] > confidence[0, 0, 90, 10]


@pytest.mark.parametrize("shape", [(1, 3, 36, 53, 53), (2, 3, 15, 4, 4), (1, 2, 4, 1, 2)])
def test_hint_grid_blur_is_the_separable_binomial_kernel_with_zeros_beyond_the_edges(shape):
    import torch.nn.functional as F

    from gan_core.hints import _blur_grid

    grid = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    kernel = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
    expected = grid
    for axis in range(3):
        view = [1, 1, 1, 1, 1]
        view[2 + axis] = 5
        pad = [0, 0, 0, 0, 0, 0]
        pad[4 - 2 * axis : 6 - 2 * axis] = [2, 2]
        weight = kernel.view(view).expand(shape[1], 1, *view[2:]).contiguous()
        expected = F.conv3d(F.pad(expected, pad), weight, groups=shape[1])
    assert torch.allclose(_blur_grid(grid), expected, atol=1e-6)


def test_reference_memory_carries_the_colour_of_the_best_matching_positions():
    # Keys are three distinct unit features; each target position should take the ab stored with its own feature.
    basis = torch.eye(3)
    ref_feats = basis[[0, 1, 2, 2]].t().reshape(1, 3, 2, 2)
    ref_ab = torch.tensor([[10.0, 0.0], [0.0, -20.0], [30.0, 5.0], [30.0, 5.0]]).t().reshape(1, 2, 2, 2)
    memory = ReferenceMemory.build([ref_feats], [ref_ab])
    target = basis[[2, 0, 1]].t().reshape(1, 3, 1, 3)
    ab, confidence = memory.match(target, chunk=2)
    assert torch.allclose(ab[0, :, 0].t(), torch.tensor([[30.0, 5.0], [10.0, 0.0], [0.0, -20.0]]), atol=1e-3)
    assert torch.allclose(confidence, torch.ones(1, 1, 1, 3))
    # A second reference joins the same memory: a position matching neither well gets low confidence.
    both = memory.extended(ReferenceMemory.build([-ref_feats], [ref_ab]))
    _, low = both.match(torch.tensor([0.0, 0.0, 0.0]).view(1, 3, 1, 1) + 1e-3)
    assert both.keys.shape[0] == 8 and low.max() < 0.01


def test_a_reference_is_remembered_at_its_size_and_enlarged():
    from gan_core.references import REFERENCE_SCALES, memory_from_lab, reference_memory

    torch.manual_seed(0)
    encoder = VGGEncoder((8, 16, 16, 16)).eval()
    photo = _lab_image(30 + 40 * torch.rand(1, 1, 64, 96), 20.0, -30.0)
    memory = reference_memory(encoder, [photo])
    lab = rgb_to_lab(photo)
    single = memory_from_lab(encoder, lab[:, :1], lab[:, 1:])
    enlarged = memory_from_lab(encoder, lab[:, :1], lab[:, 1:], scale=1.4)
    assert REFERENCE_SCALES == (1.0, 1.4) and single.keys.shape[0] == 8 * 12
    assert enlarged.keys.shape[0] == 12 * 17  # 90 x 134 px: the 12 x 17 positions at 1/8 that its pixels reach
    assert memory.keys.shape[0] == single.keys.shape[0] + enlarged.keys.shape[0]
    assert torch.allclose(memory.ab.mean(0), torch.tensor([20.0, -30.0]), atol=0.5)


def test_match_reference_runs_on_encoder_features_in_chunks():
    torch.manual_seed(0)
    encoder = VGGEncoder((8, 16, 16, 16)).eval()
    grey = torch.rand(1, 3, 64, 48)
    with torch.no_grad():
        feats = encoder(grey)
        whole = match_reference(feats, [feats, feats], [torch.randn(1, 2, 64, 48)] * 2)
        chunked = match_reference(feats, [feats, feats], [torch.randn(1, 2, 64, 48)] * 2, chunk=5)
    assert whole[0].shape == (1, 2, 8, 6) and whole[1].shape == (1, 1, 8, 6)
    assert torch.allclose(whole[1], chunked[1])


def test_matching_in_the_networks_16_bit_features_keeps_the_float32_colours():
    from gan_core.references import match_features

    torch.manual_seed(0)
    feats = {"relu3_3": torch.rand(1, 16, 16, 24) * torch.rand(1, 16, 1, 1),
             "relu4_1": torch.rand(1, 32, 8, 12) * torch.rand(1, 32, 1, 1)}
    keys = match_features(feats)
    half = match_features({k: v.bfloat16() for k, v in feats.items()}, torch.bfloat16)
    assert half.dtype == torch.bfloat16 and torch.allclose(keys.norm(dim=1), torch.ones(1, 8, 12), atol=1e-5)
    assert (half.float() - keys).abs().max() < 0.01
    memory = ReferenceMemory.build([keys[..., :6]], [torch.randn(1, 2, 8, 6) * 30])
    ab, confidence = memory.match(keys, temperature=0.05)
    ab16, confidence16 = memory.match(half, temperature=0.05)
    assert ab16.dtype == torch.float32 and confidence16.dtype == torch.float32
    assert (ab16 - ab).abs().mean() < 0.5 and (confidence16 - confidence).abs().max() < 0.01


def test_the_guidance_gate_is_one_convolution_over_features_and_guidance():
    torch.manual_seed(0)
    model = DualGAN(dataclasses.replace(tiny_config(), guided=True)).eval()
    decoder = model.color_decoder
    with torch.no_grad():
        decoder.guide_gate.weight.normal_()
        decoder.guide_gate.bias.normal_()
        x = torch.randn(2, decoder.guide_gate.in_channels - 6, 8, 8)
        guide = torch.rand(2, 6, 8, 8)
        weights, _ = decoder.guidance_logits(x, guide)
        gates = decoder.guide_gate(torch.cat([x, guide], dim=1))
    hint_w, ref_w = guide[:, 2:3] * gates[:, 0:1], guide[:, 5:6] * gates[:, 1:2]
    assert torch.allclose(weights[:, 2:], hint_w + ref_w, atol=1e-5)


def test_guided_decoder_starts_as_the_unguided_one():
    torch.manual_seed(0)
    plain = DualGAN(tiny_config()).eval()
    guided = DualGAN(dataclasses.replace(tiny_config(), guided=True)).eval()
    result = guided.load_state_dict(plain.state_dict(), strict=False)
    assert result.missing_keys and all(k.startswith("color_decoder.guide") for k in result.missing_keys)
    feats = plain.encoder(torch.rand(2, 3, 32, 32))
    guide = guidance_map((16, 16), batch=2, hint=(torch.randn(2, 2, 16, 16) * 20, torch.rand(2, 1, 16, 16)))
    with torch.no_grad():
        reference = plain.color_decoder(feats)
        assert torch.equal(guided.color_decoder(feats).float(), reference.float())
        assert torch.equal(guided.color_decoder(feats, guide=guide).float(), reference.float())
    with pytest.raises(ValueError, match="takes no guidance"):
        plain.color_decoder(feats, guide=guide)


def test_gated_guidance_logits_reproduce_a_hint_colour():
    torch.manual_seed(0)
    model = DualGAN(dataclasses.replace(tiny_config(), guided=True, ab_bins_per_axis=22)).eval()
    with torch.no_grad():
        # Trust in the hint; a gate near 1 keeps the tempered Gaussian wider than a bin, so its mean is exact.
        model.color_decoder.guide_gate.bias.fill_(1.0)
        feats = model.encoder(torch.rand(1, 3, 32, 32))
        hint_ab = torch.tensor([35.0, -25.0]).view(1, 2, 1, 1).expand(1, 2, 16, 16)
        guide = guidance_map((16, 16), batch=1, hint=(hint_ab, torch.ones(1, 1, 16, 16)))
        ab = model.ab_from_logits(model.color_decoder(feats, guide=guide))
    assert (ab - hint_ab).abs().max() < 3.0


def test_fusion_keeps_hints_exact_lets_hints_win_and_leaves_unguided_pixels_alone():
    ab = torch.full((1, 2, 4, 4), 10.0)
    hint_ab, hint_conf = torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 4, 4)
    hint_ab[..., 0, 0], hint_conf[..., 0, 0] = torch.tensor([-40.0, 30.0]).view(1, 2), 1.0  # a hint pixel
    hint_ab[..., 0, 1], hint_conf[..., 0, 1] = torch.tensor([-40.0, 30.0]).view(1, 2), 0.3  # near a hint
    ref_ab, ref_conf = torch.full((1, 2, 4, 4), 50.0), torch.zeros(1, 1, 4, 4)
    ref_conf[..., :, :2] = 1.0  # a perfect match over the hints' columns
    ref_conf[..., 2, 2] = 0.5  # a middling match
    guide = guidance_map((4, 4), batch=1, hint=(hint_ab, hint_conf), reference=(ref_ab, ref_conf))
    fused = GuidanceFusion(hint_power=0.25, reference_power=0.5)(ab, guide)
    assert torch.allclose(fused[0, :, 0, 0], torch.tensor([-40.0, 30.0]), atol=1e-4)  # the hint wins over the match
    share = 0.3 ** 0.25
    assert torch.allclose(fused[0, :, 0, 1], torch.tensor([-40.0, 30.0]) * share + 50.0 * (1 - share), atol=1e-3)
    assert torch.allclose(fused[0, :, 1, 0], torch.tensor([50.0, 50.0]), atol=1e-4)  # a perfect match shows through
    assert torch.allclose(fused[0, :, 2, 2], torch.tensor([10.0, 10.0]) + 40.0 * 0.5 ** 0.5, atol=1e-3)
    assert torch.equal(fused[0, :, 3, 3], ab[0, :, 3, 3])  # no guidance here: the decoder's own colour
    # A power of 0 takes the guidance colour wherever it has any confidence, and still nowhere else.
    hard = GuidanceFusion(hint_power=0.0, reference_power=0.0)(ab, guide)
    assert torch.allclose(hard[0, :, 0, 1], torch.tensor([-40.0, 30.0]), atol=1e-4)
    assert torch.equal(hard[0, :, 3, 3], ab[0, :, 3, 3])
    assert torch.equal(GuidanceFusion()(ab, guidance_map((4, 4), batch=1)), ab)
    with pytest.raises(ValueError, match="hint_power"):
        GuidanceFusion(hint_power=-1.0)


def test_config_round_trip_and_old_files_read_as_unguided():
    config = dataclasses.replace(DualGANConfig(), guided=True, chroma_confidence=0.5)
    assert DualGANConfig.from_json(config.to_json()) == config
    old = DualGANConfig().to_json()
    assert "guided" not in old and not DualGANConfig.from_json(old).guided
    with pytest.raises(ValueError, match="guided"):
        dataclasses.replace(DualGANConfig(), guided="yes")


def test_confidence_aware_decoding_mutes_uncertain_pixels_only():
    grid = AbGrid(8)
    logits = torch.zeros(1, grid.num_bins, 1, 2)
    logits[0, 5, 0, 0] = 30.0  # confident
    logits[0, :, 0, 1] = torch.linspace(0, 0.5, grid.num_bins)  # spread out, mean off-centre
    plain = grid.annealed_mean(logits)
    muted = grid.annealed_mean(logits, confidence=1.0)
    assert torch.allclose(muted[..., 0], plain[..., 0], atol=1e-3)
    assert muted[..., 1].abs().max() < 0.1 * plain[..., 1].abs().max()


def test_simulated_hints_are_true_patch_means_and_sometimes_absent():
    gen = torch.Generator().manual_seed(3)
    ab = torch.randn(16, 2, 24, 24) * 20
    hints = simulate_hints(ab, gen, GuidanceMix(no_hints=0.5))
    counts = hints.mask.flatten(1).sum(1)
    assert (counts == 0).any() and (counts > 0).any()
    again = simulate_hints(ab, torch.Generator().manual_seed(3), GuidanceMix(no_hints=0.5))
    assert torch.equal(hints.mask, again.mask) and torch.equal(hints.ab, again.ab)


def test_simulated_guidance_map_has_the_decoders_shape_and_range():
    torch.manual_seed(0)
    encoder = VGGEncoder((8, 16, 16, 16)).eval()
    rgb = torch.rand(4, 3, 48, 48)
    with torch.no_grad():
        feats = encoder(rgb.mean(1, keepdim=True).expand(-1, 3, -1, -1))
    guide = simulate_guidance(rgb, rgb_to_lab(rgb)[:, :1], feats, encoder, torch.Generator().manual_seed(0),
                              GuidanceMix(no_hints=0.0, same_photo_reference=1.0, other_photo_reference=0.0))
    assert guide.shape == (4, 6, 24, 24)
    assert guide[:, [0, 1, 3, 4]].abs().max() <= 128 / AB_SCALE
    assert (guide[:, 2].amax(dim=(1, 2)) == 1).all() and (guide[:, 5].amax(dim=(1, 2)) > 0.5).all()


def test_guided_chroma_filter_applies_only_with_hints_or_references():
    from gan_core.runner import DualGANRunner

    torch.manual_seed(0)
    model = DualGAN(dataclasses.replace(tiny_config(), guided=True)).eval()
    grey = torch.rand(1, 1, 64, 80).expand(-1, 3, -1, -1).contiguous()
    ab = torch.zeros(1, 2, 64, 80)
    mask = torch.zeros(1, 1, 64, 80)
    ab[0, :, 20:23, 30:33] = torch.tensor([40.0, -30.0])[:, None, None]
    mask[0, 0, 20:23, 30:33] = 1
    hints = HintMap(ab, mask)
    reference = torch.rand(1, 3, 48, 48)
    frames = torch.cat([grey, grey.roll(4, dims=-1)])

    def colours(**settings):
        runner = DualGANRunner(model, **settings)
        return [runner.colorize(grey, render_size=64, **guidance) for guidance in
                ({}, {"hints": hints}, {"reference": reference})] + [runner.colorize(frames, render_size=64, video=True)]

    fine = colours(guided_chroma_radius=1, guided_chroma_eps=1e-4)
    coarse = colours(guided_chroma_radius=8, guided_chroma_eps=1e-2)
    assert torch.equal(fine[0], coarse[0])  # automatic colour keeps the automatic filter
    assert not torch.allclose(fine[1], coarse[1]) and not torch.allclose(fine[2], coarse[2])
    assert torch.equal(fine[3], coarse[3])  # a video's previous frame alone is no user guidance


def test_reference_matching_prefers_positions_of_the_same_lightness():
    # Two memory positions with the same features but different lightness and colour: the target position's
    # lightness picks the colour; without lightness (or weight 0) the two colours are averaged.
    feature = torch.nn.functional.normalize(torch.rand(1, 8, 1, 1), dim=1)
    memory = ReferenceMemory.build([feature.expand(1, 8, 1, 2)], [torch.tensor([[[[40.0, -40.0]], [[0.0, 0.0]]]])],
                                   [torch.tensor([[[[0.2, 0.8]]]])])
    dark, light = torch.full((1, 1, 1, 1), 0.2), torch.full((1, 1, 1, 1), 0.8)
    assert memory.match(feature, dark)[0][0, :, 0, 0].tolist() == pytest.approx([40.0, 0.0], abs=0.5)
    assert memory.match(feature, light)[0][0, :, 0, 0].tolist() == pytest.approx([-40.0, 0.0], abs=0.5)
    for ab in (memory.match(feature)[0], memory.match(feature, dark, lightness_weight=0.0)[0]):
        assert ab[0, :, 0, 0].tolist() == pytest.approx([0.0, 0.0], abs=0.5)
    joined = memory.extended(ReferenceMemory(memory.keys, memory.ab))  # a memory without lightness: features only
    assert joined.lightness is None


def _two_stuff_keys(batch: int = 1) -> torch.Tensor:
    """Matching features of a picture of two kinds of stuff: columns 0-3 one feature, columns 4-7 another
    (orthogonal), on a 6 x 8 grid."""
    keys = torch.zeros(batch, 4, 6, 8)
    keys[:, 0, :, :4] = 1.0
    keys[:, 1, :, 4:] = 1.0
    return keys


def test_a_pictures_hints_colour_the_stuff_they_are_on_wherever_it_is():
    from gan_core.references import hint_memory, match_guidance

    keys = _two_stuff_keys()
    ab, mask = torch.zeros(1, 2, 24, 32), torch.zeros(1, 1, 24, 32)  # the hints live at 4x the keys' size
    ab[0, :, 0:2, 0:2] = torch.tensor([40.0, -20.0])[:, None, None]  # one hint in the top-left corner
    mask[0, 0, 0:2, 0:2] = 1.0
    memory = hint_memory(keys, ab, mask)
    assert memory.keys.shape == (1, 4) and torch.allclose(memory.ab, torch.tensor([[40.0, -20.0]]))
    matched_ab, confidence = match_guidance(keys, None, (ab, mask))
    assert torch.allclose(matched_ab[0, :, 5, 3], torch.tensor([40.0, -20.0]))  # far from the hint, same stuff
    assert confidence[0, 0, :, :4].min() == 1.0 and confidence[0, 0, :, 4:].max() == 0.0  # other stuff: no match
    assert hint_memory(keys, ab, torch.zeros_like(mask)) is None
    assert match_guidance(keys, None, None) is None


def test_hint_matching_keeps_each_picture_to_its_own_hints_and_joins_the_references():
    from gan_core.references import match_guidance

    keys = _two_stuff_keys(batch=2)
    ab, mask = torch.zeros(2, 2, 24, 32), torch.zeros(2, 1, 24, 32)
    ab[0, :, 0:2, 0:2] = torch.tensor([40.0, -20.0])[:, None, None]
    mask[0, 0, 0:2, 0:2] = 1.0  # only the first picture has a hint
    matched_ab, confidence = match_guidance(keys, None, (ab, mask))
    assert confidence[1].max() == 0.0 and matched_ab[1].abs().max() == 0.0  # nothing borrowed across the batch
    reference = ReferenceMemory(torch.tensor([[0.0, 1.0, 0.0, 0.0]]), torch.tensor([[-30.0, 50.0]]))  # the other stuff
    matched_ab, confidence = match_guidance(keys, reference, (ab, mask))
    assert torch.allclose(matched_ab[0, :, 2, 1], torch.tensor([40.0, -20.0]))  # the hint's stuff
    assert torch.allclose(matched_ab[0, :, 2, 6], torch.tensor([-30.0, 50.0]))  # the reference's stuff
    assert torch.allclose(matched_ab[1, :, 2, 6], torch.tensor([-30.0, 50.0])) and confidence[1, 0, :, :4].max() == 0.0


def test_hints_alone_are_fused_with_their_own_power():
    fusion = GuidanceFusion(hint_power=0.5, reference_power=0.25, hint_match_power=2.0)
    assert fusion.hints_only() == GuidanceFusion(hint_power=0.5, reference_power=2.0, hint_match_power=2.0)
    from gan_core.network_pass import ColourCondition

    points = (torch.zeros(1, 2, 4, 4), torch.ones(1, 1, 4, 4))
    memory = ReferenceMemory(torch.ones(1, 4), torch.zeros(1, 2))
    assert ColourCondition(fusion=fusion, hint_points=points).active_fusion.reference_power == 2.0
    assert ColourCondition(fusion=fusion, hint_points=points, memory=memory).active_fusion.reference_power == 0.25
    with pytest.raises(ValueError, match="hint_match_power"):
        GuidanceFusion(hint_match_power=-1.0)


def test_hints_reach_the_decoder_through_their_own_matches_in_tiles_and_batches():
    from gan_core.runner import DualGANRunner

    torch.manual_seed(0)
    model = DualGAN(dataclasses.replace(tiny_config(), guided=True)).eval()
    grey = torch.rand(2, 1, 96, 112).expand(-1, 3, -1, -1).contiguous()
    ab, mask = torch.zeros(2, 2, 96, 112), torch.zeros(2, 1, 96, 112)
    ab[0, :, 40:44, 50:54] = torch.tensor([40.0, -30.0])[:, None, None]
    mask[0, 0, 40:44, 50:54] = 1
    hints = HintMap(ab, mask)
    whole = DualGANRunner(model).colorize(grey, render_size=96, hints=hints)
    tiled = DualGANRunner(model, tile=64, overlap=16).colorize(grey, render_size=96, hints=hints)
    other = HintMap(torch.where(mask > 0, torch.tensor([-40.0, 60.0]).view(1, 2, 1, 1), ab), mask)
    recoloured = DualGANRunner(model).colorize(grey, render_size=96, hints=other)
    assert whole.shape == tiled.shape == (2, 3, 96, 112) and torch.isfinite(tiled).all()
    assert not torch.allclose(recoloured[:1], whole[:1], atol=1e-3)
    assert torch.equal(recoloured[1:], whole[1:])  # the first picture's hints never reach the second
    weak = DualGANRunner(model, guidance_fusion=GuidanceFusion(hint_match_power=16.0)).colorize(grey[:1], render_size=96,
                                                                                                   hints=hints.select(0, 1))
    assert not torch.allclose(weak, whole[:1], atol=1e-4)  # the hints' own matches change the colours
