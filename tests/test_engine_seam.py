"""The engine seam: per-frame work once per input frame, batches of pairs, one factory, one precision rule.

DAIN runs with random well-scaled weights (`dainctl.benchmark.write_random_dain_weights`) on small
frames, so nothing here needs ../shared.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from dainctl.engines.base import PairJob, Window, as_engine
from dainctl.errors import UsageError


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    from dainctl.benchmark import write_random_dain_weights

    return write_random_dain_weights(tmp_path_factory.mktemp("weights") / "dain_random.safetensors", seed=1)


def _frames(count: int, height: int = 64, width: int = 96, seed: int = 0) -> list[torch.Tensor]:
    """A textured scene moving right by 2 px per frame (float32 (3,H,W) on the CPU)."""
    generator = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.interpolate(torch.rand(1, 3, height // 4, width // 4 + 8, generator=generator),
                                           size=(height, width + 32), mode="bicubic", align_corners=False)[0].clamp(0, 1)
    return [base[:, :, 2 * k : 2 * k + width].contiguous() for k in range(count)]


def _count_forwards(module: torch.nn.Module) -> list[int]:
    """Batch sizes of every forward of `module`."""
    calls: list[int] = []
    module.register_forward_hook(lambda m, inputs, output: calls.append(int(inputs[0].shape[0])))
    return calls


def test_dain_depth_and_context_run_once_per_input_frame_through_the_pipeline(random_weights, clip_factory, tmp_path):
    from dainctl.engines import create_engine
    from dainctl.pipeline import Job, run

    engine = create_engine("dain", device="cpu", weights=random_weights)  # wrapped for memory, as the CLI does
    network = engine.inner.network
    depth, context = _count_forwards(network.depthNet), _count_forwards(network.ctxNet)
    pyramids = _count_forwards(network.flownets.conv1a)  # the first layer of PWC-Net's feature pyramid
    clip = clip_factory(width=96, height=64, frames=7, audio=False)
    result = run(Job(clip, tmp_path / "out.mp4", "interpolate", factor=3, audio="drop", scene_threshold=None), engine)
    assert result.input_frames == 7 and result.interpolated_frames == 6 * 2
    # One MegaDepth, one context and one pyramid forward per input frame (each of 7 frames, in 6 pairs).
    assert sum(depth) == 7 and sum(context) == 7 and sum(pyramids) == 7
    assert engine.stats["frame_features"] == 7 and engine.stats["frames_loaded"] == 7 and engine.stats["pairs"] == 6


@pytest.mark.parametrize("timesteps", [[(0.5,), (0.5,), (0.5,)], [(0.25, 0.5, 0.75), (0.4,), (0.2, 0.9)]])
def test_dain_pairs_batched_in_one_forward_equal_one_pair_per_forward(random_weights, timesteps):
    """Several pairs (and all their times) per forward give the frames of one pair per forward."""
    from dainctl.engines.dain import DainEngine

    frames = _frames(4)
    single = DainEngine(random_weights, device="cpu", max_pairs=1)
    batched = DainEngine(random_weights, device="cpu", max_pairs=4)
    pyramid_batches = _count_forwards(batched.network.flownets.conv5a)
    decoder_batches = _count_forwards(batched.network.flownets.conv6_0)

    def run(engine):
        loaded = [engine.load(frame) for frame in frames]
        jobs = [PairJob(loaded[i], loaded[i + 1], ts) for i, ts in enumerate(timesteps)]
        if engine is single:
            return [engine.interpolate_jobs([job])[0] for job in jobs]
        return engine.interpolate_jobs(jobs)

    expected, got = run(single), run(batched)
    # The batched engine decoded PWC-Net's flows for the three pairs (both directions) in one forward.
    assert decoder_batches == [6] and pyramid_batches == [1, 1, 1, 1]
    for pair_expected, pair_got in zip(expected, got):
        assert len(pair_got) == len(pair_expected)
        for a, b in zip(pair_expected, pair_got):
            assert a.shape == b.shape == (3, 64, 96)
            torch.testing.assert_close(b, a, atol=1e-5, rtol=0)


def test_a_tiled_render_computes_the_frames_work_per_window_and_matches_the_whole(random_weights):
    from dainctl.engines.dain import DainEngine
    from dainctl.quality import psnr
    from dainctl.tiling import TiledEngine

    engine = DainEngine(random_weights, device="cpu")
    frame0, frame1 = _frames(2, 100, 200)
    whole = engine.interpolate(frame0, frame1, [0.5])[0]
    depth = _count_forwards(engine.network.depthNet)
    tiled = TiledEngine(engine, max_pixels=128 * 192, overlap=64, min_tile=64)
    out = tiled.interpolate(frame0, frame1, [0.5])[0]
    assert tiled.last_grid.count == 2
    assert depth == [2, 2]  # both frames of each window in one forward, per window
    # Measured 37.3 dB with these random weights (41.3 dB with the fake checkpoint on Grove3, in
    # test_tiling_dain.py): the windows see less of the frame than the whole, so not bit-identical.
    assert psnr(out, whole) >= 33.0


def test_flow_engine_through_the_seam_equals_its_one_pair_call():
    from dainctl.engines.flow import FlowEngine

    frames = _frames(3)
    engine = FlowEngine(profile="fast")
    pairwise = [engine.interpolate(frames[i], frames[i + 1], [0.25, 0.75]) for i in range(2)]
    loaded = [engine.load(frame) for frame in frames]
    jobs = [PairJob(loaded[i], loaded[i + 1], (0.25, 0.75)) for i in range(2)]
    seam = engine.interpolate_jobs(jobs)
    for a_pair, b_pair in zip(pairwise, seam):
        for a, b in zip(a_pair, b_pair):
            assert torch.equal(a, b)
    # The middle frame's work images were made once, for both of its pairs.
    assert len(loaded[1].whole["work"]) == 1


@pytest.mark.parametrize("profile", ["fast", "balanced", "high"])
def test_flow_engine_prepare_starts_the_dis_calls_that_motion_then_uses(profile, monkeypatch):
    from dainctl.engines.flow import FlowEngine

    frames = _frames(3)
    plain = FlowEngine(profile=profile, flow_workers=2)
    expected = [plain.interpolate(frames[i], frames[i + 1], [0.5]) for i in range(2)]
    engine = FlowEngine(profile=profile, flow_workers=2)
    loaded = [engine.load(frame) for frame in frames]
    jobs = [PairJob(loaded[i], loaded[i + 1], (0.5,)) for i in range(2)]
    assert engine.prepare(jobs)
    calls, start = [], engine._start
    monkeypatch.setattr(engine, "_start", lambda jobs: calls.append(len(jobs)) or start(jobs))
    seam = engine.interpolate_jobs(jobs)
    # Nothing computed again: the prepared calls were used.
    assert calls == []
    assert not engine._prepared
    for a_pair, b_pair in zip(expected, seam):
        for a, b in zip(a_pair, b_pair):
            assert torch.equal(a, b)


def test_flow_engine_prepares_nothing_before_auto_calibrates_or_without_a_second_worker():
    from dainctl.engines.flow import FlowEngine

    for engine in (FlowEngine(profile="auto", flow_workers=2), FlowEngine(profile="fast", flow_workers=1)):
        loaded = [engine.load(frame) for frame in _frames(2)]
        assert not engine.prepare([PairJob(loaded[0], loaded[1], (0.5,))])
        assert not engine._prepared


def test_flow_engine_window_renders_the_same_pixels_as_the_whole_frame():
    from dainctl.engines.flow import FlowEngine

    frame0, frame1 = _frames(2, 64, 96)
    engine = FlowEngine(profile="fast")
    loaded = [engine.load(frame) for frame in (frame0, frame1)]
    jobs = [PairJob(loaded[0], loaded[1], (0.5,))]
    motions = engine.motion(jobs)
    whole = engine.render(jobs, motions)[0][0]
    for window in (Window(0, 32, 0, 48), Window(16, 64, 40, 96), Window(5, 21, 70, 90)):
        part = engine.render(jobs, motions, window)[0][0].clamp(0, 1)
        torch.testing.assert_close(part, window.of(whole), atol=1e-5, rtol=0)


def test_frame_store_uploads_each_frame_once_and_releases_it():
    from dainctl.engines.flow import FlowEngine
    from dainctl.framestore import FrameStore, to_rgb

    engine = FlowEngine(profile="fast")
    store = FrameStore(engine)
    rgbs = [to_rgb(frame) for frame in _frames(5)]
    for index in range(4):
        first, second = store.get(index, rgbs[index]), store.get(index + 1, rgbs[index + 1])
        assert first.image.dtype == torch.float32 and first.image.shape == (1, 3, 64, 96)
        store.release_before(index + 1)
        assert len(store) == 1
    assert store.uploads == 5
    # The device conversion is the CPU's exact one, both ways.
    host = store.download([second.image[0]], np.uint8)[0].numpy()
    assert np.array_equal(host, rgbs[4])


def test_one_factory_one_fp16_rule(random_weights):
    from dainctl.engines import create_engine
    from dainctl.tiling import TiledEngine

    messages: list[str] = []
    engine = create_engine("flow", device="cpu", fp16=True, warn=messages.append)
    assert messages == ["--fp16 needs a CUDA GPU; running in fp32 on the CPU"]
    assert engine.policy.name == "fp32" and not isinstance(engine, TiledEngine)
    dain = create_engine("dain", device="cpu", fp16=None, weights=random_weights, warn=messages.append)
    assert len(messages) == 1  # the default (None) is fp16 on CUDA only, and says nothing elsewhere
    assert isinstance(dain, TiledEngine) and dain.policy.name == "fp32" and dain.device.type == "cpu"
    assert create_engine("flow", device="cpu", max_memory=2**30).max_pixels > 0  # a budget: tiled
    with pytest.raises(UsageError, match="batch-pairs"):
        create_engine("dain", device="cpu", weights=random_weights, pairs=0)


def test_an_engine_with_only_interpolate_gets_the_seam():
    class Lerp:
        name = "lerp"

        def interpolate(self, frame0, frame1, timesteps):
            return [torch.lerp(frame0, frame1, t) for t in timesteps]

    engine = as_engine(Lerp())
    frames = _frames(2)
    loaded = [engine.load(frame) for frame in frames]
    (outputs,) = engine.interpolate_jobs([PairJob(loaded[0], loaded[1], (0.5,))])
    assert torch.equal(outputs[0], torch.lerp(frames[0], frames[1], 0.5))
    assert as_engine(engine) is engine


def test_cli_batch_pairs_gives_the_same_video(random_weights, clip_factory, tmp_path, capsys):
    """--batch-pairs changes how many pairs go through one forward, not the frames: the same 8-bit video
    but for rounding, and a handful of values where batched and single-pair convolutions, rounding
    differently in float32, tip the model one way or the other (measured on 2026-12-04 on this clip: 6 of
    18,432 values of one frame, by up to 11 levels; a batching error moves whole frames)."""
    import json

    from conftest import decode_rgb
    from dainctl.cli import main

    clip = clip_factory(width=96, height=64, frames=4, rate=Fraction(12), audio=False)
    outputs = []
    for pairs in ("1", "3"):
        out = tmp_path / f"out{pairs}.mkv"
        code = main(["interpolate", str(clip), str(out), "--engine", "dain", "--weights", str(random_weights),
                     "--batch-pairs", pairs, "--codec", "ffv1", "--json", "--quiet"])
        assert code == 0
        payload = json.loads(capsys.readouterr().out)
        assert payload["precision"] == "fp32" and payload["engine_stats"]["pairs"] == 3
        outputs.append(decode_rgb(out))
    assert len(outputs[0]) == len(outputs[1]) == 8
    for a, b in zip(*outputs):
        difference = np.abs(a.astype(int) - b.astype(int))
        assert (difference > 1).mean() <= 0.001 and difference.mean() < 0.01
