"""Issue 15: the whole plan first, cut into segments; segments joined by stream copy; crash-safe resume."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import decode_rgb
from dainctl.cli import main
from dainctl.plan import PlanSpec, WholePlan
from dainctl.video import make_sample_clip
from signal_helpers import signal_once_ready

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
SPECS = {
    "2x": lambda rate: PlanSpec.for_factor(rate, 2),
    "3x": lambda rate: PlanSpec.for_factor(rate, 3),
    "60000/1001": lambda rate: PlanSpec.for_rate(Fraction(60000, 1001)),
    "24 from anything": lambda rate: PlanSpec.for_rate(Fraction(24)),
    "slowmo 4x": lambda rate: PlanSpec.for_slowmo(rate, 4),
    "a frame every 4 s": lambda rate: PlanSpec.for_rate(Fraction(1, 4)),
}


@st.composite
def timelines(draw):
    """Input timelines as the analysis pass gives them: constant rate, variable rate (gaps of 1-3
    frame periods, as VFR or dropped duplicates leave them), cuts anywhere, a video's end or a folder's."""
    rate = draw(st.sampled_from([Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(60)]))
    count = draw(st.integers(1, 400))
    gaps = draw(st.lists(st.integers(1, 3), min_size=count, max_size=count)) if draw(st.booleans()) else [1] * count
    timestamps, now = [], Fraction(0)
    for gap in gaps:
        timestamps.append(now)
        now += gap / rate
    cut_before = [False] + [draw(st.floats(0, 1)) < 0.03 for _ in range(count - 1)]
    end = now if draw(st.booleans()) else None
    return rate, timestamps, cut_before, end


@settings(max_examples=150, deadline=None)
@given(timelines(), st.sampled_from(sorted(SPECS)), st.sampled_from([Fraction(1), Fraction(2), Fraction(5, 2), Fraction(7)]))
def test_the_segments_of_a_plan_are_the_whole_plan(timeline, spec_name, seconds):
    rate, timestamps, cut_before, end = timeline
    plan = WholePlan.build(SPECS[spec_name](rate), timestamps, cut_before, end)
    segments = plan.segments(seconds)
    assert [f for s in segments for f in plan.frames_of(s)] == plan.frames
    assert len(segments) == 1 or all(s.frames > 0 for s in segments)
    period = plan.spec.step * plan.spec.stretch
    last = len(timestamps) - 1
    for k, segment in enumerate(segments):
        frames = plan.frames_of(segment)
        # A segment's frames are exactly the plan's frames of its time range ...
        assert frames == [f for f in plan.frames if segment.start <= f.ts < segment.end]
        assert segment.start == segment.first_output * period and segment.end == (segment.first_output + segment.frames) * period
        # ... and come from its own input range: pairs inside it, the boundary frame shared.
        final = k == len(segments) - 1
        for f in frames:
            assert segment.first_input <= f.src <= segment.last_input
            assert f.src < segment.last_input or (final and f.src == last)
        if k:
            assert segment.first_input == segments[k - 1].last_input
    assert segments[0].first_input == 0 and segments[-1].last_input == last
    # A boundary goes to a cut where one lies within half a segment of the target.
    for previous, segment in zip(segments, segments[1:]):
        target = timestamps[previous.first_input] + seconds
        near = [i for i in range(previous.first_input + 1, last) if abs(timestamps[i] - target) <= seconds / 2]
        if any(cut_before[i] for i in near):
            assert cut_before[segment.first_input]


def test_a_plan_shorter_than_one_segment_is_one_segment():
    timestamps = [Fraction(i, 24) for i in range(100)]
    plan = WholePlan.build(PlanSpec.for_factor(Fraction(24), 2), timestamps, [False] * 100, Fraction(100, 24))
    assert len(plan.segments(Fraction(60))) == 1
    assert len(plan.segments(None)) == 1
    assert len(plan.segments(Fraction(1))) == 4  # 4.17 s: three 1-s segments, the last 1.17 s taken in


def test_boundaries_prefer_a_nearby_cut():
    timestamps = [Fraction(i, 10) for i in range(100)]
    cuts = [False] * 100
    cuts[27] = True  # 2.7 s: within half a segment of the 3-s target
    plan = WholePlan.build(PlanSpec.for_factor(Fraction(10), 2), timestamps, cuts, Fraction(10))
    assert plan.segments(Fraction(3))[1].first_input == 27


@pytest.mark.parametrize("ext", [".mp4", ".mkv", ".mov", ".webm"])
def test_seeking_yields_the_frames_of_a_whole_decode_from_a_keyframe_before_the_target(tmp_path, ext):
    from dainctl.video import open_input

    clip = make_sample_clip(tmp_path / f"gop{ext}", width=64, height=48, frames=60, rate=Fraction(30000, 1001),
                            audio=False, gop=12)
    with open_input(clip) as source:
        whole = [(ts, rgb) for ts, rgb in source.frames()]
    times = [ts for ts, _ in whole]
    for target in (times[13], times[30], times[59], times[0] + Fraction(1, 1000)):
        with open_input(clip) as source:
            seeked = list(source.frames(seek_to=target))
        first = times.index(seeked[0][0])
        assert seeked[0][0] <= target
        assert [ts for ts, _ in seeked] == times[first:]
        assert all(np.array_equal(rgb, whole[first + i][1]) for i, (_, rgb) in enumerate(seeked))
        if ext != ".webm":  # x264 honours the keyframe interval
            assert target - seeked[0][0] <= 12 / Fraction(30000, 1001)


# ----------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def cut_clip(tmp_path_factory) -> Path:
    """10 s at 24 fps with a tone (AAC), two scene cuts (frames 84 and 170) and a keyframe every 12 frames
    (so that a segment's decode seeks to near its start)."""
    return make_sample_clip(tmp_path_factory.mktemp("segments") / "cuts.mp4", width=96, height=64, frames=240,
                            rate=Fraction(24), cuts=(84, 170), gop=12)


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dainctl", *args], capture_output=True, text=True, env=ENV, timeout=600)


def _audio_packets(path: Path) -> list[tuple]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return [hashlib.sha256(bytes(p)).hexdigest() for p in container.demux(stream) if p.size]


def _interpolate(clip: Path, out: Path, *extra: str) -> dict:
    args = ["interpolate", str(clip), str(out), "--profile", "fast", "--codec", "ffv1", "--json", "--quiet", *extra]
    result = _run_cli(*args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def unsegmented(cut_clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "whole.mkv"
    return out, _interpolate(cut_clip, out, "--segment-seconds", "0")


def test_segmented_and_unsegmented_runs_give_the_same_frames_and_audio(cut_clip, unsegmented, tmp_path):
    whole, whole_report = unsegmented
    out = tmp_path / "segmented.mkv"
    report = _interpolate(cut_clip, out, "--segment-seconds", "2")
    assert report["segments"]["count"] >= 4 and whole_report["segments"]["count"] == 1
    assert report["verification"]["ok"] and whole_report["verification"]["ok"]
    assert len(report["scene_cuts"]) == 2
    assert report["output_frames"] == whole_report["output_frames"] == 480
    frames, reference = decode_rgb(out), decode_rgb(whole)
    assert len(frames) == len(reference) == 480
    assert all(np.array_equal(a, b) for a, b in zip(frames, reference))
    # Audio is copied from the input, packet by packet, once: the packets of a run of the input's (Matroska
    # cannot mark the AAC priming to skip, so the copy starts at the first packet at or after the video).
    copied, source = _audio_packets(out), _audio_packets(cut_clip)
    assert copied == _audio_packets(whole)
    start = source.index(copied[0])
    assert copied == source[start : start + len(copied)] and start <= 1 and len(copied) >= len(source) - 2
    assert not (tmp_path / "segmented.mkv.dainctl-job").exists()
    # An MP4 output (the MOV family's own timing rules) passes the timing contract too.
    mp4 = _interpolate(cut_clip, tmp_path / "segmented.mp4", "--segment-seconds", "3")
    assert mp4["verification"]["ok"] and mp4["segments"]["count"] >= 3


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


@pytest.mark.slow
def test_a_run_killed_at_60_percent_resumes_and_gives_the_same_output(cut_clip, unsegmented, tmp_path):
    whole, _ = unsegmented
    out = tmp_path / "out.mkv"
    folder = tmp_path / "out.mkv.dainctl-job"
    args = ["interpolate", str(cut_clip), str(out), "--profile", "fast", "--codec", "ffv1", "--json", "--quiet",
            "--segment-seconds", "1"]
    def sixty_percent_done() -> bool:
        try:
            states = [s["state"] for s in _manifest(folder)["segments"]]
        except (OSError, ValueError, KeyError):
            return False
        return bool(states) and states.count("done") >= 0.6 * len(states)

    signal_once_ready(args, sixty_percent_done, signal.SIGKILL, env=ENV, start_timeout=300)
    states = [s["state"] for s in _manifest(folder)["segments"]]
    done, total = states.count("done"), len(states)
    assert done >= 0.6 * total and done < total and not out.exists()
    result = _run_cli(*args)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["segments"]["reused"] >= done
    assert report["segments"]["computed"] <= total / 2
    assert report["segments"]["computed"] + report["segments"]["reused"] == total
    assert report["verification"]["ok"] and not folder.exists()
    assert all(np.array_equal(a, b) for a, b in zip(decode_rgb(out), decode_rgb(whole)))
    assert len(decode_rgb(out)) == 480


def test_other_options_refuse_the_job_folder_and_restart_discards_it(cut_clip, tmp_path, capsys):
    out = tmp_path / "out.mkv"
    args = ["interpolate", str(cut_clip), str(out), "--profile", "fast", "--codec", "ffv1", "--quiet", "--segment-seconds", "2"]
    folder = tmp_path / "out.mkv.dainctl-job"
    folder.mkdir()
    manifest = {"version": 1, "identity": {"input": {}, "options": {}, "plan": "x"}, "segments": []}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--restart" in err and "other input and options and plan" in err
    assert json.loads((folder / "manifest.json").read_text()) == manifest
    assert main([*args, "--restart"]) == 0
    assert not folder.exists() and out.exists()


def _finished_job_folder(clip: Path, tmp_path: Path, capsys, monkeypatch) -> tuple[Path, list[str], Path, dict]:
    """A job folder whose segments are all done: the join fails (a full disk, say) after the last one.
    Returns the output, the command's arguments, the folder and its manifest."""
    import dainctl.pipeline
    from dainctl.errors import OutputError

    out = tmp_path / "out.mkv"
    args = ["interpolate", str(clip), str(out), "--profile", "fast", "--codec", "ffv1", "--quiet", "--json",
            "--segment-seconds", "2"]
    folder = tmp_path / "out.mkv.dainctl-job"

    def full_disk(*args, **kwargs):
        raise OutputError("cannot write: No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(dainctl.pipeline, "_join", full_disk)
        assert main(args) == 4
    capsys.readouterr()
    manifest = _manifest(folder)
    assert all(s["state"] == "done" for s in manifest["segments"])
    return out, args, folder, manifest


def test_a_damaged_finished_segment_is_computed_again(cut_clip, unsegmented, tmp_path, capsys, monkeypatch):
    whole, _ = unsegmented
    out, args, folder, manifest = _finished_job_folder(cut_clip, tmp_path, capsys, monkeypatch)
    damaged = folder / manifest["segments"][1]["file"]
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["segments"]["redone"] == [1] and report["segments"]["computed"] == 1
    assert all(np.array_equal(a, b) for a, b in zip(decode_rgb(out), decode_rgb(whole)))


@pytest.mark.slow
def test_ctrl_c_keeps_the_finished_segments(cut_clip, tmp_path):
    out = tmp_path / "out.mkv"
    folder = tmp_path / "out.mkv.dainctl-job"
    args = ["interpolate", str(cut_clip), str(out), "--profile", "fast", "--codec", "ffv1", "--quiet", "--segment-seconds", "1"]

    def one_done() -> bool:
        try:
            return any(s["state"] == "done" for s in _manifest(folder)["segments"])
        except (OSError, ValueError, KeyError):
            return False

    code, _, stderr = signal_once_ready(args, one_done, signal.SIGINT, env=ENV, start_timeout=300)
    assert code == 130, stderr
    assert "segments are finished and kept" in " ".join(stderr.split())
    assert not list(folder.glob("*.partial*")) and not out.exists()
    done = [s for s in _manifest(folder)["segments"] if s["state"] == "done"]
    assert done and all((folder / s["file"]).is_file() for s in done)


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv444p", "yuvj420p"])
def test_analysis_thumbnails_have_the_colours_of_a_full_conversion(tmp_path, pix_fmt):
    """The analysis pass's thumbnails (planes averaged, then converted) against swscale's area
    downscale of the converted frame."""
    from dainctl.video import yuv
    from dainctl.video.synthetic import render_sample_frame

    rgb = render_sample_frame(320, 192, 3.0, seed=2)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt, dst_colorspace=1 if pix_fmt != "yuvj420p" else None)
    full = pix_fmt.startswith("yuvj")
    matrix = yuv.yuv_to_rgb_matrix(frame.colorspace if frame.colorspace in (1, 5, 6) else 2, yuv.FULL_RANGE if full else 1)
    thumb = yuv.planar_thumbnail(frame, 64, 38, matrix)
    reference = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(width=64, height=38, interpolation="AREA").to_ndarray()
    difference = np.abs(thumb.astype(int) - reference.astype(int))
    assert thumb.shape == (38, 64, 3) and thumb.dtype == np.uint8
    assert difference.mean() < 3 and np.percentile(difference, 99) < 12


def test_a_seek_that_lands_past_its_target_falls_back_to_decoding_from_the_start(cut_clip, unsegmented, tmp_path,
                                                                                 capsys, monkeypatch):
    from dainctl.video.reader import VideoInput

    whole, _ = unsegmented
    out, args, folder, manifest = _finished_job_folder(cut_clip, tmp_path, capsys, monkeypatch)
    (folder / manifest["segments"][2]["file"]).unlink()  # lost: to be computed again, after a seek
    seek = VideoInput._seek

    def seek_too_far(self, seek_to, time_base):
        frame = seek(self, seek_to, time_base)
        for _ in range(30):  # as a container that seeks only approximately might
            frame = next(self._decoded, None)
        return frame

    monkeypatch.setattr(VideoInput, "_seek", seek_too_far)
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["segments"]["redone"] == [2] and report["segments"]["computed"] == 1
    assert all(np.array_equal(a, b) for a, b in zip(decode_rgb(out), decode_rgb(whole)))
