"""The frame plan: exact timing for factors, rational target rates, slow motion and hold-last."""

from fractions import Fraction as F

import pytest

from dainctl.errors import UsageError
from dainctl.plan import FramePlanner, PlanSpec, format_rate, parse_rate, plan_all


def cfr(n, rate):
    return [F(i) / rate for i in range(n)]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("60", F(60)),
        ("59.94", F(60000, 1001)),
        ("29.97", F(30000, 1001)),
        ("23.976", F(24000, 1001)),
        ("119.88", F(120000, 1001)),
        ("60000/1001", F(60000, 1001)),
        ("30000:1001", F(30000, 1001)),
        ("12.5", F(25, 2)),
        ("50", F(50)),
    ],
)
def test_parse_rate(text, expected):
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["0", "-5", "abc", "60/0", "", "1e3", "20000"])
def test_parse_rate_rejects(text):
    with pytest.raises(UsageError):
        parse_rate(text)


def test_format_rate():
    assert format_rate(F(60)) == "60"
    assert format_rate(F(60000, 1001)) == "59.94"
    assert format_rate(F(25, 2)) == "12.5"


@pytest.mark.parametrize("factor", [2, 3, 4, 8])
def test_factor_on_video_holds_last_frame(factor):
    rate = F(20)
    n = 10
    frames = plan_all(PlanSpec.for_factor(rate, factor), cfr(n, rate), end=F(n) / rate)
    # Same duration: n*factor frames at factor*rate, the last frame held factor-1 extra frames.
    assert len(frames) == n * factor
    assert [f.index for f in frames] == list(range(n * factor))
    out_rate = rate * factor
    assert all(f.ts == F(f.index) / out_rate for f in frames)
    for f in frames[: (n - 1) * factor + 1]:
        assert f.src == f.index // factor
        assert f.t == F(f.index % factor, factor)
    assert all(f.src == n - 1 and f.is_copy for f in frames[(n - 1) * factor :])


def test_factor_on_folder_gives_n_minus_1_times_factor_plus_1():
    n, factor = 7, 4
    frames = plan_all(PlanSpec.for_factor(F(1), factor), [F(i) for i in range(n)], end=None)
    assert len(frames) == (n - 1) * factor + 1
    originals = [f for f in frames if f.is_copy]
    assert [f.index for f in originals] == list(range(0, len(frames), factor))
    assert [f.src for f in originals] == list(range(n))


def test_ntsc_doubled_is_exactly_60000_over_1001():
    rate = F(30000, 1001)
    spec = PlanSpec.for_factor(rate, 2)
    assert spec.output_rate == F(60000, 1001)
    frames = plan_all(spec, cfr(120, rate), end=F(120) / rate)
    assert len(frames) == 240
    assert frames[-1].ts == F(239) / F(60000, 1001)


@pytest.mark.parametrize(
    "in_rate, out_rate", [(F(24), F(60)), (F(25), F(50)), (F(24000, 1001), F(60000, 1001)), (F(30), F(24))]
)
def test_target_rate_maps_every_timestamp_exactly(in_rate, out_rate):
    n = 50
    duration = F(n) / in_rate
    frames = plan_all(PlanSpec.for_rate(out_rate), cfr(n, in_rate), end=duration)
    # Every output timestamp k/out_rate below the input's end, and nothing else.
    assert [f.ts for f in frames] == [F(k) / out_rate for k in range(len(frames))]
    assert frames[-1].ts < duration <= frames[-1].ts + 1 / out_rate
    for f in frames:
        if f.src < n - 1:
            # The exact t between the two input frames around the output time.
            assert f.ts == (f.src + f.t) / in_rate
            assert 0 <= f.t < 1
        else:
            assert f.is_copy


def test_24_to_60_reuses_coinciding_input_frames():
    frames = plan_all(PlanSpec.for_rate(F(60)), cfr(24, F(24)), end=F(1))
    assert len(frames) == 60
    # 24 and 60 share every 1/12 s: input frames 0, 2, 4, ... are reused as they are.
    copies = [f for f in frames if f.is_copy and f.src < 23]
    assert [f.src for f in copies] == list(range(0, 23, 2))
    ts = sorted({f.t for f in frames if not f.is_copy})
    # Output k lies at input position 0.4 k: the in-betweens are at t = 0.2, 0.4, 0.6 and 0.8.
    assert ts == [F(1, 5), F(2, 5), F(3, 5), F(4, 5)]


@pytest.mark.parametrize("factor", [2, 4])
def test_slowmo_plays_at_input_rate_and_lasts_factor_times_longer(factor):
    rate = F(25)
    n = 9
    spec = PlanSpec.for_slowmo(rate, factor)
    assert spec.output_rate == rate
    frames = plan_all(spec, cfr(n, rate), end=F(n) / rate)
    assert len(frames) == n * factor
    assert all(f.ts == F(f.index) / rate for f in frames)
    assert frames[-1].ts + 1 / rate == factor * F(n) / rate
    assert [f.t for f in frames[:factor]] == [F(k, factor) for k in range(factor)]


def test_variable_frame_rate_uses_real_timestamps():
    # Frames at 0, 0.1, 0.3 (a dropped frame), 0.4; output at 20 fps.
    ts = [F(0), F(1, 10), F(3, 10), F(4, 10)]
    frames = plan_all(PlanSpec.for_rate(F(20)), ts, end=F(1, 2))
    assert len(frames) == 10
    by_index = {f.index: f for f in frames}
    assert (by_index[3].src, by_index[3].t) == (1, F(1, 4))  # 0.15 s is a quarter of the way 0.1 -> 0.3
    assert (by_index[4].src, by_index[4].t) == (1, F(1, 2))
    assert by_index[6].src == 2 and by_index[6].is_copy


def test_streaming_push_returns_frames_before_each_input():
    planner = FramePlanner(PlanSpec.for_factor(F(10), 2))
    assert planner.push(F(0)) == []
    got = planner.push(F(1, 10))
    assert [(f.src, f.t) for f in got] == [(0, F(0)), (0, F(1, 2))]
    assert [(f.src, f.t) for f in planner.finish(F(2, 10))] == [(1, F(0)), (1, F(0))]
    assert planner.output_frames == 4 and planner.input_frames == 2


def test_frame_count_matches_plan():
    spec = PlanSpec.for_rate(F(60000, 1001))
    ts = cfr(37, F(24000, 1001))
    end = F(37) / F(24000, 1001)
    assert spec.frame_count(end, hold_last=True) == len(plan_all(spec, ts, end))
    spec2 = PlanSpec.for_factor(F(1), 3)
    assert spec2.frame_count(F(0), hold_last=False, last_ts=F(36)) == len(plan_all(spec2, [F(i) for i in range(37)], None))


def test_timestamps_must_start_at_zero_and_increase():
    planner = FramePlanner(PlanSpec.for_factor(F(10), 2))
    with pytest.raises(ValueError):
        planner.push(F(1))
    planner.push(F(0))
    with pytest.raises(ValueError):
        planner.push(F(0))


def test_single_frame_video_is_held():
    frames = plan_all(PlanSpec.for_factor(F(10), 2), [F(0)], end=F(1, 10))
    assert [(f.src, f.is_copy) for f in frames] == [(0, True), (0, True)]


# --------------------------------------------------------------- times a coarse time base rounded
def _entries(times):
    from dainctl.analysis import TimelineEntry

    return [TimelineEntry(i, t, t, False) for i, t in enumerate(times)]


@pytest.mark.parametrize("rate", [F(15), F(30000, 1001), F(24000, 1001), F(60)])
def test_millisecond_times_go_back_on_the_frame_grid(rate):
    from dainctl.analysis import snap_to_rate_grid

    frames = 40
    rounded = [F(round(k / rate * 1000), 1000) for k in range(frames)]
    end = F(round(frames / rate * 1000), 1000)
    assert any(t != F(k) / rate for k, t in enumerate(rounded))  # the case: some are off the grid
    entries, snapped_end = snap_to_rate_grid(_entries(rounded), end, rate, F(1, 1000))
    assert [e.ts for e in entries] == [F(k) / rate for k in range(frames)]
    assert [e.source_ts for e in entries] == rounded  # what the reader yields is unchanged
    assert snapped_end == F(frames) / rate
    # With those times, a 2x plan copies every input frame instead of recomputing it at t ~ 0 or 1.
    plan = plan_all(PlanSpec.for_factor(rate, 2), [e.ts for e in entries], snapped_end)
    assert [f.t for f in plan] == [F(0), F(1, 2)] * (frames - 1) + [F(0), F(0)]  # the last one held


def test_times_that_rounding_cannot_explain_keep_their_own():
    from dainctl.analysis import snap_to_rate_grid

    tick = F(1, 1000)
    # variable rate: steps of 1/25, 1/50 and 3/100 s at a declared 30 fps, none within 0.5 ms of the grid
    vfr = [F(0), F(1, 25), F(6, 100), F(9, 100), F(13, 100)]
    entries, end = snap_to_rate_grid(_entries(vfr), F(16, 100), F(30), tick)
    assert [e.ts for e in entries] == vfr and end == F(16, 100)
    # a frame 2 ms off the grid: more than rounding to a millisecond explains
    off = [F(0), F(1, 30) + F(2, 1000), F(2, 30)]
    entries, _ = snap_to_rate_grid(_entries(off), F(3, 30), F(30), tick)
    assert [e.ts for e in entries] == off
    # a time base as fine as the frame period (1/rate <= 2 ticks): nothing to snap to
    coarse = [F(0), F(1, 30), F(2, 30)]
    entries, _ = snap_to_rate_grid(_entries(coarse), F(3, 30), F(30), F(1, 50))
    assert [e.ts for e in entries] == coarse
