"""`--profile auto`: the weight-free engine's profile chosen by predicted time, after a calibration pair."""

from __future__ import annotations

import json

import pytest
import torch

from dainctl.cli import main
from dainctl.engines import create_engine
from dainctl.engines.flow import (
    AUTO_BUDGET_S_PER_MPX,
    AUTO_ORDER,
    PROFILE_SETTINGS,
    FlowEngine,
    choose_profile,
    minterpolate_frame_share,
    reference_seconds,
)
from dainctl.errors import EngineError

from test_flow_engine import textured_frame


def test_order_runs_from_best_to_the_fast_floor():
    assert AUTO_ORDER[0] == "high" and AUTO_ORDER[-1] == "fast"
    assert set(AUTO_ORDER) <= set(PROFILE_SETTINGS)


def test_cost_model_grows_with_size_and_quality():
    for profile in AUTO_ORDER:
        settings = PROFILE_SETTINGS[profile]
        assert reference_seconds(480, 640, 1, settings) < reference_seconds(1080, 1920, 1, settings)
        # more timesteps share the pair's flow: cheaper per frame
        assert reference_seconds(480, 640, 4, settings) / 4 < reference_seconds(480, 640, 1, settings)
    costs = [reference_seconds(480, 640, 1, PROFILE_SETTINGS[profile]) for profile in AUTO_ORDER]
    assert costs == sorted(costs, reverse=True)


def test_choice_is_the_best_profile_within_the_budget():
    # A machine as fast as the reference one with the default budget: the predicted time fits.
    choice = choose_profile(360, 640, 1, 1.0, AUTO_BUDGET_S_PER_MPX)
    assert choice.predicted_s_per_frame <= choice.budget_s_per_frame
    assert choice.budget_s_per_frame == pytest.approx(AUTO_BUDGET_S_PER_MPX * 640 * 360 / 1e6)
    # Any budget: the first profile in the order whose prediction fits, else the floor.
    for budget in (0.0, 0.05, 0.3, 1.0, 3.0, 30.0, 1e6):
        choice = choose_profile(480, 640, 1, 1.0, budget)
        fitting = [p for p in AUTO_ORDER
                   if reference_seconds(480, 640, 1, PROFILE_SETTINGS[p]) <= budget * 640 * 480 / 1e6]
        assert choice.profile == (fitting[0] if fitting else AUTO_ORDER[-1])
    assert choose_profile(480, 640, 1, 1.0, 1e6).profile == "high"
    assert choose_profile(480, 640, 1, 1.0, 0.0).profile == "fast"
    # A machine 100x slower than the reference one gets the floor; its reason says none fits.
    slow = choose_profile(480, 640, 1, 100.0, AUTO_BUDGET_S_PER_MPX)
    assert slow.profile == "fast" and "none is predicted within the budget" in slow.reason
    assert "calibration pair" in slow.reason and "100.00x" in slow.reason


def test_the_runs_fixed_costs_come_off_each_new_frames_budget():
    """A short clip pays the start-up and the calibration over few frames: the budget per frame shrinks
    by their share, and a share larger than what the better profiles leave drops auto to the floor."""
    full = choose_profile(360, 640, 1, 1.0, AUTO_BUDGET_S_PER_MPX)
    spread = choose_profile(360, 640, 1, 1.0, AUTO_BUDGET_S_PER_MPX, overhead_s_per_frame=0.01)
    assert spread.budget_s_per_frame == pytest.approx(full.budget_s_per_frame - 0.01)
    assert "start-up and calibration" in spread.reason and "start-up" not in full.reason
    gap = full.budget_s_per_frame - full.predicted_s_per_frame  # what the default's choice leaves
    assert gap > 0
    squeezed = choose_profile(360, 640, 1, 1.0, AUTO_BUDGET_S_PER_MPX, overhead_s_per_frame=gap * 1.01)
    assert AUTO_ORDER.index(squeezed.profile) > AUTO_ORDER.index(full.profile)


def test_the_budget_per_new_frame_falls_with_more_frames_per_pair_as_minterpolates_time_does():
    megapixels = 1280 * 720 / 1e6
    assert minterpolate_frame_share(1) == 1.0 and minterpolate_frame_share(0.5) == 1.0
    shares = [minterpolate_frame_share(n) for n in (1, 1.5, 2, 3, 7, 1e9)]
    assert shares == sorted(shares, reverse=True) and shares[-1] > 0.5
    one = choose_profile(720, 1280, 1, 1.0, AUTO_BUDGET_S_PER_MPX)
    assert one.budget_s_per_frame == pytest.approx(AUTO_BUDGET_S_PER_MPX * megapixels)
    assert "per pair" not in one.reason
    three = choose_profile(720, 1280, 3, 1.0, AUTO_BUDGET_S_PER_MPX, overhead_s_per_frame=0.01)
    assert three.budget_s_per_frame == pytest.approx(AUTO_BUDGET_S_PER_MPX * megapixels * minterpolate_frame_share(3) - 0.01)
    assert "3 new frames per pair" in three.reason and three.as_dict()["frames_per_pair"] == 3
    # A machine on which high's predicted time at 4x (3 new frames per pair) is 90 % of a budget per new
    # frame as large as at 2x: the smaller budget at 4x leaves high out.
    high_per_frame = reference_seconds(720, 1280, 3, PROFILE_SETTINGS["high"]) / 3
    speed_factor = 0.9 * AUTO_BUDGET_S_PER_MPX * megapixels / high_per_frame
    assert choose_profile(720, 1280, 3, speed_factor, AUTO_BUDGET_S_PER_MPX).profile != "high"
    assert choose_profile(720, 1280, 3, speed_factor * minterpolate_frame_share(3) * 0.9,
                          AUTO_BUDGET_S_PER_MPX).profile == "high"


@pytest.mark.parametrize("new_frames, slower", [(1, True), (10**9, False)])
def test_expect_run_spreads_the_fixed_seconds_and_the_calibration(new_frames, slower):
    frame0 = textured_frame(96, 128, 0.0, 0.0)
    frame1 = textured_frame(96, 128, 2.5, -1.5)
    engine = FlowEngine(profile="auto")
    engine.expect_run(new_frames, new_frames, fixed_seconds=30.0)
    engine.interpolate(frame0, frame1, [0.5])
    auto = engine.auto_choice(96, 128, 1)
    assert engine.stats["auto"]["profile"] == auto.profile
    overhead = (30.0 + 2 * engine.stats["calibration_seconds"]) / new_frames  # at least both passes
    assert auto.overhead_s_per_frame >= overhead * 0.999
    if slower:
        assert auto.profile == AUTO_ORDER[-1] and auto.budget_s_per_frame < 0
    else:
        alone = choose_profile(96, 128, 1, engine.speed_factor, AUTO_BUDGET_S_PER_MPX)
        assert auto.profile == alone.profile


@pytest.mark.parametrize("flags, frames, pairs", [([], 6, 6), (["--factor", "3"], 12, 6)])
def test_the_pipeline_tells_the_engine_the_new_frames_of_the_plan(tmp_path, clip_factory, monkeypatch, flags,
                                                                  frames, pairs):
    """The run's new frames (blended, not copied), its pairs and its start-up so far reach the engine
    before the first pair: 7 input frames make 6 pairs (the held last frame is a copy), with 1 new frame
    each at 2x and 2 at 3x."""
    told = []
    monkeypatch.setattr(FlowEngine, "expect_run", lambda self, *args: told.append(args))
    code = main(["interpolate", str(clip_factory(frames=7)), str(tmp_path / "out.mp4"), "--profile", "fast",
                 "--quiet", *flags])
    assert code == 0
    assert len(told) == 1 and told[0][:2] == (frames, pairs) and told[0][2] > 0


def test_a_tiled_engine_passes_the_run_on_to_the_flow_engine():
    """On CUDA or with --max-memory the flow engine runs inside a TiledEngine, which must forward it."""
    tiled = create_engine("flow", device="cpu", profile="auto", tile=True, max_memory=2**30)
    assert tiled is not tiled.inner
    tiled.expect_run(40, 20, 3.0)
    flow = tiled.inner
    assert flow._expected_frames == 40 and flow._frames_per_pair == 2.0 and flow._fixed_seconds == 3.0


def test_every_pair_of_a_run_gets_the_same_profile_whatever_its_frame_count():
    """Pairs that make different numbers of frames (24 to 60 fps: 2 or 3; uneven timestamps: 1 or 2)
    must not alternate between profiles: auto chooses once per frame size, for the run's mean frames
    per pair."""
    frame0 = textured_frame(48, 64, 0.0, 0.0)
    frame1 = textured_frame(48, 64, 1.5, 0.5)
    factors = [10 ** (k / 4) for k in range(-16, 17)]
    # Speed factors at which a choice per frame count would differ between 1 and 3 frames per pair.
    split = [f for f in factors
             if choose_profile(48, 64, 1, f, AUTO_BUDGET_S_PER_MPX).profile
             != choose_profile(48, 64, 3, f, AUTO_BUDGET_S_PER_MPX).profile]
    assert split
    for factor in split:
        for told in (None, (4, 2)):  # no plan, and a run of 2 pairs making 4 new frames
            engine = FlowEngine(profile="auto", speed_factor=factor)
            if told:
                engine.expect_run(*told, fixed_seconds=0.0)
            profiles = []
            for timesteps in ([0.5], [0.25, 0.5, 0.75], [0.5]):
                engine.interpolate(frame0, frame1, timesteps)
                profiles.append(engine.stats["profile"])
            assert len(set(profiles)) == 1
            expected = choose_profile(48, 64, 2 if told else 1, factor, AUTO_BUDGET_S_PER_MPX).profile
            assert profiles[0] == expected


def test_auto_calibrates_on_the_first_pair_and_reports_its_choice():
    frame0 = textured_frame(96, 128, 0.0, 0.0)
    frame1 = textured_frame(96, 128, 2.5, -1.5)
    engine = FlowEngine(profile="auto")
    with pytest.raises(EngineError, match="calibration"):
        engine.profile_for(96, 128)
    frames = engine.interpolate(frame0, frame1, [0.5])
    assert engine.speed_factor is not None and engine.speed_factor > 0
    assert engine.stats["calibration_seconds"] > 0
    chosen = engine.stats["profile"]
    assert chosen in AUTO_ORDER and engine.stats["auto"]["profile"] == chosen
    assert engine.stats["auto"]["reason"] and engine.stats["pairs"] == 1
    # The frames are exactly those of the chosen profile (the calibration frames are discarded).
    (expected,) = FlowEngine(profile=chosen).interpolate(frame0, frame1, [0.5])
    assert torch.equal(frames[0], expected)
    # Later pairs reuse the calibration.
    factor = engine.speed_factor
    engine.interpolate(frame1, frame0, [0.25, 0.75])
    assert engine.speed_factor == factor and engine.stats["pairs"] == 2


@pytest.mark.parametrize("speed_factor, expected", [(1e-6, "high"), (1e6, "fast")])
def test_a_given_speed_factor_skips_the_calibration(speed_factor, expected):
    engine = FlowEngine(profile="auto", speed_factor=speed_factor)
    frame = textured_frame(48, 64, 0.0, 0.0)
    engine.interpolate(frame, frame, [0.5])
    assert "calibration_seconds" not in engine.stats
    assert engine.stats["profile"] == expected


def test_named_profiles_do_not_calibrate():
    engine = create_engine("flow", device="cpu", profile="fast")
    frame = textured_frame(48, 64, 0.0, 0.0)
    engine.interpolate(frame, frame, [0.5])
    assert engine.speed_factor is None and engine.stats["profile"] == "fast" and engine.stats["auto"] is None


@pytest.mark.parametrize("flags, auto", [([], True), (["--profile", "fast"], False)])
def test_summary_and_json_say_which_profile_ran_and_why(capsys, tmp_path, clip_factory, flags, auto):
    code = main(["interpolate", str(clip_factory(frames=4)), str(tmp_path / "out.mp4"), "--json", *flags])
    out, err = capsys.readouterr()
    assert code == 0, err
    payload = json.loads(out)
    assert payload["profile"] in AUTO_ORDER
    if auto:
        assert payload["profile_reason"].startswith("chosen by --profile auto")
        assert payload["engine_stats"]["auto"]["profile"] == payload["profile"]
    else:
        assert payload["profile"] == "fast" and payload["profile_reason"] == "asked for with --profile"
    assert f"profile {payload['profile']}: {payload['profile_reason']}" in " ".join(err.split())


@pytest.mark.parametrize("profile", ["auto", "balanced", "fast"])
def test_one_flow_per_pair_for_every_timestep(monkeypatch, profile):
    """Slow motion and --fps ask for many t per pair: the pair's flows are computed once for all of them
    (auto's calibration adds its two passes on the first pair only, at one t)."""
    engine = FlowEngine(profile=profile)
    calls = []
    original = FlowEngine.pair_flows

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(FlowEngine, "pair_flows", counting)
    frame0 = textured_frame(48, 64, 0.0, 0.0)
    frame1 = textured_frame(48, 64, 1.5, 0.5)
    first = 2 if profile == "auto" else 0
    assert len(engine.interpolate(frame0, frame1, [0.125 * k for k in range(1, 8)])) == 7
    assert len(calls) == first + 1
    engine.interpolate(frame1, frame0, [0.25, 0.5, 0.75])
    assert len(calls) == first + 2


def test_a_caller_can_say_what_the_run_spent_before_it(tmp_path, clip_factory, monkeypatch):
    """`dainctl benchmark` runs the pipeline after making clips and warming up in the same process: it
    passes fixed_seconds=0, and the engine is told only the analysis pass, not the process's age. By
    default the start-up counts for a process's first run only."""
    import time

    from dainctl.pipeline import Job, run

    told = []
    monkeypatch.setattr(FlowEngine, "expect_run", lambda self, *args: told.append(args))
    time.sleep(0.3)  # the process is older than the analysis of a 7-frame clip takes
    job = Job(input_path=clip_factory(frames=7, audio=False), output_path=tmp_path / "out.mp4", mode="interpolate",
              factor=2)
    result = run(job, FlowEngine(profile="fast"), fixed_seconds=0.0)
    assert told[0][:2] == (6, 6)
    assert told[0][2] == pytest.approx(result.stage_seconds["analysis"], abs=1e-6)
    monkeypatch.setattr("dainctl.pipeline._STARTED_BEFORE", False)  # as in a fresh process
    run(job, FlowEngine(profile="fast"))
    assert told[1][2] > 0.3  # the default for a process's first run: its start-up counts
    run(job, FlowEngine(profile="fast"))
    assert told[2][2] < 0.3  # later runs in the same process pay only their own analysis
