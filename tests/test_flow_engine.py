"""The weight-free flow engine on synthetic motion with a known answer, and on the real triplets."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from dainctl.engines.flow import PROFILE_SETTINGS, FlowEngine
from dainctl.errors import EngineError, InputError, UsageError
from dainctl.quality import evaluate_triplets, psnr

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def textured_frame(height: int, width: int, shift_x: float, shift_y: float, seed: int = 0) -> torch.Tensor:
    """A smooth random colour texture translated by (shift_x, shift_y) pixels, evaluated exactly.

    The texture is a sum of sinusoids (periods 9-40 px), so a sub-pixel shift is computed in closed form
    instead of by resampling. Returns (3, H, W) float32 in [0, 1].
    """
    generator = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                            indexing="ij")
    xs, ys = xs - shift_x, ys - shift_y
    channels = []
    for _ in range(3):
        value = torch.zeros(height, width, dtype=torch.float64)
        for _ in range(12):
            period = 9.0 + 31.0 * torch.rand(1, generator=generator, dtype=torch.float64)
            angle = 2 * math.pi * torch.rand(1, generator=generator, dtype=torch.float64)
            phase = 2 * math.pi * torch.rand(1, generator=generator, dtype=torch.float64)
            omega = 2 * math.pi / period
            value += torch.sin(omega * (torch.cos(angle) * xs + torch.sin(angle) * ys) + phase)
        channels.append(value)
    image = torch.stack(channels)
    image = 0.5 + 0.4 * image / image.abs().amax()
    return image.float()


def interior(frame: torch.Tensor, margin: int) -> torch.Tensor:
    """Drop a border where content enters or leaves the view."""
    return frame[:, margin:-margin, margin:-margin]


@pytest.fixture(scope="module")
def engine() -> FlowEngine:
    # The high profile, named: auto's choice depends on the machine's speed (tests/test_auto_profile.py).
    return FlowEngine(profile="high")


@pytest.mark.parametrize("shift", [(3.4, -1.7), (-5.25, 2.6)])
def test_subpixel_translation_gives_near_exact_frames(engine, shift):
    height, width = 96, 128
    frame0 = textured_frame(height, width, 0.0, 0.0)
    frame1 = textured_frame(height, width, *shift)
    timesteps = [0.25, 0.5]
    outputs = engine.interpolate(frame0, frame1, timesteps)
    assert len(outputs) == 2
    for t, output in zip(timesteps, outputs):
        assert output.shape == (3, height, width) and output.dtype == torch.float32 and output.device.type == "cpu"
        assert 0.0 <= output.min() and output.max() <= 1.0
        truth = textured_frame(height, width, t * shift[0], t * shift[1])
        # Near-exact: better than 40 dB away from the borders, and far better than a cross-fade.
        score = psnr(interior(output, 10), interior(truth, 10))
        crossfade = psnr(interior((1 - t) * frame0 + t * frame1, 10), interior(truth, 10))
        assert score > 40.0, (t, score)
        assert score > crossfade + 15.0


def test_identical_frames_come_back_unchanged(engine):
    frame = textured_frame(64, 80, 0.0, 0.0, seed=3)
    (output,) = engine.interpolate(frame, frame, [0.5])
    assert torch.allclose(output, frame, atol=2e-3)


def test_large_frames_use_reduced_flow_resolution_and_stay_accurate():
    # A flow resolution cap at half the frame size takes the downscale/upsample path.
    height, width = 120, 200
    frame0 = textured_frame(height, width, 0.0, 0.0, seed=5)
    frame1 = textured_frame(height, width, 4.6, 1.2, seed=5)
    engine = FlowEngine(profile="fast", max_flow_side=100)
    flow01, _flow10, work = engine.pair_flows(frame0, frame1)
    assert flow01.shape == (1, 2, 60, 100) and work.shape == (2, 3, 60, 100)
    # Work-size flow of the 4.6 px shift is 2.3 px in the middle of the frame.
    assert flow01[0, 0, 20:40, 30:70].median().item() == pytest.approx(2.3, abs=0.1)
    (output,) = engine.interpolate(frame0, frame1, [0.5])
    truth = textured_frame(height, width, 2.3, 0.6, seed=5)
    assert psnr(interior(output, 12), interior(truth, 12)) > 36.0


def test_occluding_square_is_placed_at_its_midpoint(engine):
    """A textured square moving over a static textured background: the uncovered strip behind it
    must come from the frame that sees it, so the middle frame beats a plain two-sided blend there."""
    height, width, side, step = 128, 160, 48, 10
    background = 0.5 * textured_frame(height, width, 0.0, 0.0, seed=1)
    square = 0.5 + 0.5 * textured_frame(side, side, 0.0, 0.0, seed=2)

    def scene(left: int) -> torch.Tensor:
        frame = background.clone()
        frame[:, 40 : 40 + side, left : left + side] = square
        return frame

    frame0, truth, frame1 = scene(50), scene(50 + step // 2), scene(50 + step)
    (output,) = engine.interpolate(frame0, frame1, [0.5])
    (plain,) = FlowEngine(profile="high", occlusion_strength=0.0).interpolate(frame0, frame1, [0.5])
    window = (slice(None), slice(30, 100), slice(40, 120))
    score = psnr(output[window], truth[window])
    assert score > 28.0
    assert score > psnr(plain[window], truth[window]) + 0.5


@pytest.mark.parametrize("profile, workers, used", [("high", 3, 3), ("balanced", 2, 2), ("fast", 3, 2)])
def test_parallel_dis_calls_give_the_same_frames(profile, workers, used):
    """A pair's DIS calls (the high profile's candidates, the two directions of the others) run on
    several threads: the frames must not depend on how many."""
    frame0 = textured_frame(96, 128, 0.0, 0.0)
    frame1 = textured_frame(96, 128, 2.5, -1.5)
    serial = FlowEngine(profile=profile, flow_workers=1).interpolate(frame0, frame1, [0.3, 0.5])
    parallel_engine = FlowEngine(profile=profile, flow_workers=workers)
    parallel = parallel_engine.interpolate(frame0, frame1, [0.3, 0.5])
    assert parallel_engine._pool_size == used  # no more threads than calls
    for a, b in zip(serial, parallel):
        assert torch.equal(a, b)


def _settings_engine(monkeypatch, name, settings, **options):
    monkeypatch.setitem(PROFILE_SETTINGS, name, settings)
    engine = FlowEngine(profile="fast", flow_workers=1, **options)
    engine.profile = name
    return engine


def test_the_mirror_average_makes_the_engine_exactly_mirror_symmetric(monkeypatch):
    # DIS is not mirror-invariant, so a plain engine's frame for a mirrored pair is not the mirror of
    # its frame for the pair; averaged with the frame of the mirrored pair (mirrored back) it is, to the bit.
    frame0 = textured_frame(64, 96, 0.0, 0.0)
    frame1 = textured_frame(64, 96, 3.3, -1.7)
    mirrored = [f.flip(-1).contiguous() for f in (frame0, frame1)]
    balanced = PROFILE_SETTINGS["balanced"]
    for averaged in (False, True):
        engine = _settings_engine(monkeypatch, f"test-mirror-{averaged}", replace(balanced, mirror_average=averaged))
        (direct,) = engine.interpolate(frame0, frame1, [0.4])
        (other,) = engine.interpolate(*mirrored, [0.4])
        assert torch.equal(direct, other.flip(-1)) == averaged


def test_shifted_and_mirrored_candidates_are_moved_back_onto_the_frame(monkeypatch):
    # A stand-in for DIS whose "flow" at a pixel is the two images' values there: a candidate made on
    # moved images and moved back must give each pixel its own values again. Shifted: exactly the
    # direct result, wrapped row and column aside; mirrored: the same with x negated (a motion to the
    # right in the mirrored images is one to the left).
    class PointwiseDIS:
        def calc(self, image0, image1, _):
            return np.stack([image0, image1], -1).astype(np.float32)

    monkeypatch.setattr(FlowEngine, "_dis", staticmethod(lambda settings: PointwiseDIS()))
    frame0, frame1 = (torch.rand(3, 20, 30, generator=torch.Generator().manual_seed(seed)) for seed in (1, 2))
    engine = FlowEngine(profile="fast", flow_workers=1)
    settings = replace(PROFILE_SETTINGS["high"], scale=1.0, shifted_candidates=True)
    images = engine._work_pair(engine.load(frame0), engine.load(frame1), settings)
    calls = engine._dis_calls(settings, images)
    assert len(calls) == 12  # grey + 3 colours, each direct, mirrored and shifted
    results = engine._results(engine._start(calls))
    for image in range(4):
        direct, mirrored, shifted = (results[image + 4 * kind] for kind in range(3))
        for way in range(2):  # forward, backward
            assert torch.equal(shifted[way][..., :-1, :-1], direct[way][..., :-1, :-1])
            assert torch.equal(mirrored[way][:, 0], -direct[way][:, 0])
            assert torch.equal(mirrored[way][:, 1], direct[way][:, 1])


def test_bad_options_raise_engine_error():
    with pytest.raises(EngineError, match="profile"):
        FlowEngine(profile="glacial")
    with pytest.raises(EngineError, match="max_flow_side"):
        FlowEngine(max_flow_side=4)
    engine = FlowEngine(profile="fast")
    frame = torch.zeros(3, 16, 16)
    # Bad calls are checked by the seam alike for every engine (the DAIN engine's tests expect the same).
    with pytest.raises(UsageError, match="between 0 and 1"):
        engine.interpolate(frame, frame, [1.0])
    with pytest.raises(InputError, match="frames"):
        engine.interpolate(frame, torch.zeros(3, 16, 17), [0.5])
    if not torch.cuda.is_available():
        with pytest.raises(EngineError, match="CUDA"):
            FlowEngine(device="cuda")


def _shared_report(engine, dataset, count):
    folder = SHARED / "data" / dataset
    if not folder.is_dir():
        pytest.skip("../shared/data is absent")
    report = evaluate_triplets(engine, folder)
    assert len(report.items) == count
    return report


# Measured per profile (docs/benchmarks.md, 2026-12-04, every profile warping bicubically): high 35.70 /
# 34.54 dB, balanced 35.41 / 34.33 dB, fast 34.47 / 33.54 dB (Middlebury / UCF101; with the bilinear read
# before: high (then 48 DIS calls) 35.02 / 34.48, balanced 34.59 / 34.23, fast 33.84 / 33.43); balanced
# with its backward flow from the projected forward one or DIS to level 1 (2026-12-06): 35.37 / 34.38. The floors
# sit 0.15 dB below those numbers and catch a real regression; issue 2's targets are checked on the high
# profile separately below. (The default, auto, picks one of these by the machine's speed:
# tests/test_auto_profile.py.) balanced's UCF101 mean owes about 0.55 dB to one triplet (8) that its
# work size gets nearly exact (48.7 dB; 36.9 at 0.65 of the size).
MEASURED_FLOORS = {
    "high": {"middlebury": 35.55, "ucf101": 34.39},
    "balanced": {"middlebury": 35.22, "ucf101": 34.23},
    "fast": {"middlebury": 34.32, "ucf101": 33.39},
}
ISSUE_TARGETS = {"middlebury": 35.0, "ucf101": 33.8}
COUNTS = {"middlebury": 12, "ucf101": 21}


@pytest.fixture(scope="module")
def shared_reports():
    return {}


def _report_for(shared_reports, profile, dataset):
    if (profile, dataset) not in shared_reports:
        engine = FlowEngine(profile=profile)
        shared_reports[profile, dataset] = _shared_report(engine, dataset, COUNTS[dataset])
    return shared_reports[profile, dataset]


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["high", "balanced", "fast"])
@pytest.mark.parametrize("dataset", ["middlebury", "ucf101"])
def test_real_triplets_do_not_regress(shared_reports, profile, dataset):
    report = _report_for(shared_reports, profile, dataset)
    floor = MEASURED_FLOORS[profile][dataset]
    assert report.mean_psnr >= floor, f"{profile}, {dataset}: mean PSNR {report.mean_psnr:.3f} dB"
    assert report.mean_ssim > (0.93 if profile == "fast" else 0.94)


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["middlebury", "ucf101"])
def test_real_triplets_meet_issue_targets(shared_reports, dataset):
    """Issue 2's quality targets: mean PSNR of the middle frame on the shared triplets (high profile)."""
    report = _report_for(shared_reports, "high", dataset)
    assert report.mean_psnr >= ISSUE_TARGETS[dataset], f"{dataset}: mean PSNR {report.mean_psnr:.3f} dB"


def test_work_images_are_the_exact_area_average_of_the_frame():
    # 50x30 to 20x12 (a ratio of 2.5): each work pixel is the mean over the 2.5x2.5 frame pixels it
    # covers, halves of the border pixels included. Reference: the frame upsampled 2x by repetition, then
    # 5x5 block means (exact for this ratio). Pooling whole pixels instead is off by many levels here.
    frame = torch.rand(3, 30, 50, generator=torch.Generator().manual_seed(3))
    fine = frame.repeat_interleave(2, 1).repeat_interleave(2, 2)
    expected = fine.reshape(3, 12, 5, 20, 5).mean((2, 4)).permute(1, 2, 0).numpy() * 255.0
    work = FlowEngine._work_rgb(frame, (20, 12))
    assert work.shape == (12, 20, 3) and work.dtype == np.uint8
    assert np.abs(work.astype(np.float64) - expected).max() <= 0.5 + 1e-3


@pytest.mark.parametrize("shape", [(1, 1), (2, 7), (13, 5), (216, 384)])
@pytest.mark.parametrize("radius", [0, 1, 5])
def test_box_mean_is_avg_pool_without_the_padding(shape, radius):
    # The engine's box means (hole softening, candidate costs) run on OpenCV on the CPU: the mean over
    # the part of each box inside the map, as avg_pool2d with count_include_pad=False, also where the
    # box is larger than the map.
    from dainctl.engines.flow import _box_mean

    generator = torch.Generator().manual_seed(sum(shape) + radius)
    maps = torch.rand((1, 1, *shape), generator=generator) * 4 - 1
    expected = torch.nn.functional.avg_pool2d(maps, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)
    result = _box_mean(maps, radius)
    assert result.shape == maps.shape and result.dtype == torch.float32
    torch.testing.assert_close(result, expected, rtol=0, atol=1e-5)
    # Taken from a non-contiguous view, as the candidates' per-pixel costs are.
    wide = torch.rand((1, 2, *shape), generator=generator)
    view = wide[:, 1:2]
    torch.testing.assert_close(_box_mean(view, radius),
                               torch.nn.functional.avg_pool2d(view, 2 * radius + 1, stride=1, padding=radius,
                                                              count_include_pad=False), rtol=0, atol=1e-5)


def _flow_field(height: int, width: int, left: tuple[float, float], right: tuple[float, float]) -> torch.Tensor:
    """(1,2,H,W): one flow on the left half of the columns, another on the right half."""
    flow = torch.empty(1, 2, height, width)
    flow[:, :, :, : width // 2] = torch.tensor(left).view(1, 2, 1, 1)
    flow[:, :, :, width // 2 :] = torch.tensor(right).view(1, 2, 1, 1)
    return flow


def test_most_consistent_keeps_each_pixels_best_candidate_and_the_first_on_ties():
    from dainctl import kernels

    height, width = 30, 48
    engine = FlowEngine(profile="high", grey_preference=1.0, candidate_radius=2)
    image_b = textured_frame(height, width, 0.0, 0.0, seed=5).unsqueeze(0)
    truth = _flow_field(height, width, (2.0, 1.0), (-3.0, 0.0))
    image_a = kernels.backward_warp(image_b, truth)
    wrong = _flow_field(height, width, (-4.0, 2.0), (5.0, -2.0))
    left_right = torch.cat([truth[..., : width // 2], wrong[..., width // 2 :]], -1)
    right_left = torch.cat([wrong[..., : width // 2], truth[..., width // 2 :]], -1)
    chosen = engine._most_consistent([left_right, right_left], image_a, image_b)
    # Away from the seam (the cost's box is 5 wide) and the borders, each half takes the true flow.
    for columns in (slice(4, width // 2 - 3), slice(width // 2 + 3, width - 6)):
        torch.testing.assert_close(chosen[..., 4:-4, columns], truth[..., 4:-4, columns], rtol=0, atol=0)
    # A flat frame b matches every flow equally: the first candidate wins everywhere, as argmin's first
    # minimum would.
    flat = torch.full_like(image_b, 0.5)
    tied = engine._most_consistent([wrong, truth, left_right], kernels.backward_warp(flat, truth), flat)
    assert torch.equal(tied, wrong)
    # The first candidate's cost is scaled by grey_preference (and only its): at 0 it always wins, and
    # a later candidate scaled instead would still lose to the true flow.
    engine.grey_preference = 0.0
    assert torch.equal(engine._most_consistent([wrong, truth], image_a, image_b), wrong)
    assert torch.equal(engine._most_consistent([truth, wrong], image_a, image_b), truth)


def test_the_derived_backward_flow_of_a_translation_is_its_reverse():
    # F01 = (+3, -2) everywhere: every source lands on whole pixels, so every target reached holds the
    # weighted mean of one flow, exactly its negative, whatever the photo-consistency weights.
    height, width = 32, 40
    frame0 = textured_frame(height, width, 0.0, 0.0, seed=2)
    frame1 = textured_frame(height, width, 3.0, -2.0, seed=2)
    flow01 = _flow_field(height, width, (3.0, -2.0), (3.0, -2.0))
    derived = FlowEngine._derived_backward(flow01, torch.stack([frame0, frame1]))
    assert derived.shape == (1, 2, height, width) and derived.dtype == torch.float32
    # Rows 0-1 and columns 0-3 of frame 1 are where frame 0's content has not arrived: holes, filled.
    expected = torch.tensor([-3.0, 2.0]).view(1, 2, 1, 1).expand(1, 2, height - 3, width - 4)
    torch.testing.assert_close(derived[..., : height - 3, 4:], expected, rtol=0, atol=1e-6)


def test_balanced_takes_each_pixels_better_backward_flow_of_the_two(monkeypatch):
    # balanced's backward flow: DIS stopped at level 1, or the forward flow projected onto frame 1,
    # whichever matches better. With the level-1 DIS made useless (a wrong flow everywhere), the projected
    # one is kept wherever frame 0's content reaches frame 1; with both made of the forward flow alone
    # (backward_finest_scale None) the engine is the two-way DIS it was.
    settings = PROFILE_SETTINGS["balanced"]
    assert settings.backward_finest_scale == 1 and settings.finest_scale == 0
    height, width = 48, 64
    frame0 = textured_frame(height, width, 0.0, 0.0, seed=4)
    frame1 = textured_frame(height, width, 2.0, 1.0, seed=4)
    engine = FlowEngine(profile="balanced", flow_workers=1)
    levels = []
    real_dis = FlowEngine._dis

    def recording_dis(dis_settings):
        levels.append(dis_settings.finest_scale)
        dis = real_dis(dis_settings)
        if dis_settings.finest_scale == 1:
            class Wrong:
                def calc(self, image0, image1, flow):
                    return np.full((*image0.shape, 2), 7.0, dtype=np.float32)
            return Wrong()
        return dis

    monkeypatch.setattr(FlowEngine, "_dis", staticmethod(recording_dis))
    flow01, flow10, _ = engine.pair_flows(frame0, frame1)
    assert levels == [0, 1]
    scale = flow10.shape[-1] / width
    # The true backward flow is (-2, -1) frame pixels; inside, away from where the new content enters.
    inside = flow10[..., 3:-6, 3:-6] / scale
    assert (inside - torch.tensor([-2.0, -1.0]).view(1, 2, 1, 1)).abs().amax() < 0.5
    monkeypatch.setitem(PROFILE_SETTINGS, "balanced", replace(settings, backward_finest_scale=None))
    levels.clear()
    engine.pair_flows(frame0, frame1)
    assert levels == [0, 0]
