"""The analysis pass started on a thread while torch loads (`dainctl.analysis.BackgroundAnalysis`): the
same timeline as the pass run in place, its errors raised where the run asks for it, used by a run only
when it is the pass of that run's input and options, and started by the CLI for the run it makes."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import pytest

import dainctl.analysis
import dainctl.pipeline
from dainctl.analysis import BackgroundAnalysis, analyze
from dainctl.cli import main
from dainctl.errors import InputError
from dainctl.job import Job, analysis_options

from conftest import SHARED


def _without_timing(timeline) -> dict:
    return {k: v for k, v in dataclasses.asdict(timeline).items() if k != "seconds"}


def _inputs(clip_factory):
    clips = [clip_factory(frames=13, rate=Fraction(25))]
    bikes = SHARED / "data" / "videos" / "bikes.mp4"  # real cuts, when ../shared is there
    if bikes.exists():
        clips.append(bikes)
    return clips


@pytest.mark.parametrize("options", [{}, {"dedup": True}, {"scene_threshold": None}])
def test_the_background_pass_finds_the_timeline_the_pass_in_place_finds(clip_factory, options):
    options = {"folder_rate": Fraction(24), **options}
    for clip in _inputs(clip_factory):
        assert _without_timing(BackgroundAnalysis(clip, **options).result()) == _without_timing(analyze(clip, **options))


def test_its_error_is_raised_where_the_result_is_asked_for(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    started = BackgroundAnalysis(junk, folder_rate=Fraction(24))
    with pytest.raises(InputError) as raised:
        started.result()
    with pytest.raises(InputError) as in_place:
        analyze(junk, folder_rate=Fraction(24))
    assert str(raised.value) == str(in_place.value)


def _count_analyses(monkeypatch) -> list:
    calls = []
    real = dainctl.analysis.analyze

    def counting(path, stop=None, **options):
        calls.append((path, options))
        return real(path, stop=stop, **options)

    monkeypatch.setattr(dainctl.analysis, "analyze", counting)  # the background pass's
    monkeypatch.setattr(dainctl.pipeline, "analyze", counting)  # the pass in place
    return calls


def test_a_run_takes_the_started_pass_only_when_it_is_its_inputs(clip_factory, tmp_path, monkeypatch):
    from dainctl.engines.flow import FlowEngine

    clip, other = clip_factory(frames=13, rate=Fraction(25)), clip_factory(frames=9, rate=Fraction(25))
    job = Job(clip, tmp_path / "out.mp4", "interpolate", factor=2)
    options = analysis_options(job)
    calls = _count_analyses(monkeypatch)
    for path, started_options, analyses in [(clip, options, 1),  # used: no second pass
                                            (other, options, 2),  # another input: a pass here
                                            (clip, {**options, "dedup": True}, 2)]:  # other options
        calls.clear()
        started = BackgroundAnalysis(path, **started_options)
        assert started.serves(clip, options) == (analyses == 1)
        result = dainctl.pipeline.run(job, FlowEngine(profile="fast"), analysis=started)
        started.result()  # its thread is done (an unused pass too)
        assert len(calls) == analyses
        assert calls[-1] == (clip, options)  # the run's own input and options, wherever it ran
        assert result.input_frames == 13


@pytest.mark.parametrize("args", [["interpolate", "--factor", "3"], ["slowmo", "--factor", "2"],
                                  ["interpolate", "--dedup", "--no-scene-detect"]])
def test_the_cli_analyses_its_input_once_beside_the_start_up(clip_factory, tmp_path, monkeypatch, capsys, args):
    clip = clip_factory(frames=9, rate=Fraction(25))
    calls = _count_analyses(monkeypatch)
    command, *options = args
    assert main([command, str(clip), str(tmp_path / "out.mp4"), "--quiet", *options]) == 0, capsys.readouterr().err
    assert len(calls) == 1
    assert calls[0][1]["dedup"] == ("--dedup" in options)
    assert (calls[0][1]["scene_threshold"] is None) == ("--no-scene-detect" in options)


@pytest.fixture
def slow_analysis(monkeypatch):
    """Each analysed frame takes 0.05 s more: a 48-frame pass outlasts the start-up of a run."""
    import time

    from dainctl.scene import SceneTimeline

    push = SceneTimeline.push

    def slow_push(self, *args, **kwargs):
        time.sleep(0.05)
        return push(self, *args, **kwargs)

    monkeypatch.setattr(SceneTimeline, "push", slow_push)


def _analysis_threads() -> list:
    import threading

    return [t for t in threading.enumerate() if t.name == "dainctl-analysis"]


def test_cancel_stops_a_running_pass_and_ends_its_thread(clip_factory, slow_analysis):
    from dainctl.analysis import AnalysisCancelled

    started = BackgroundAnalysis(clip_factory(frames=48, rate=Fraction(24)), folder_rate=Fraction(24))
    assert _analysis_threads()
    started.cancel()
    assert not _analysis_threads()  # stopped at its next frame, not after the 48th
    with pytest.raises(AnalysisCancelled):
        started.result()


def test_a_run_that_fails_before_it_needs_the_pass_ends_its_thread(clip_factory, tmp_path, capsys, slow_analysis):
    # The process must not end while the pass is inside the decoder: the interpreter's shutdown aborts
    # such a thread (exit 134 instead of the error's own code).
    clip = clip_factory(frames=48, rate=Fraction(24))
    code = main(["interpolate", str(clip), str(tmp_path / "out.mp4"), "--engine", "dain",
                 "--weights", str(tmp_path / "missing.pth")])
    assert code == 6, capsys.readouterr().err
    assert not _analysis_threads()


def test_a_run_stopped_while_it_waits_for_the_pass_ends_its_thread(clip_factory, tmp_path, capsys, monkeypatch,
                                                                   slow_analysis):
    # SIGTERM while the run waits for the pass (a signal during Thread.join can mark a running thread as
    # stopped, so that a second join would not wait).
    import os
    import signal
    import threading

    clip = clip_factory(frames=48, rate=Fraction(24))
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGTERM))
    waiting = dainctl.pipeline.analysis_options  # called by the run just before it waits

    def then_signal(job):
        timer.start()
        return waiting(job)

    monkeypatch.setattr(dainctl.pipeline, "analysis_options", then_signal)
    try:
        code = main(["interpolate", str(clip), str(tmp_path / "out.mp4"), "--quiet"])
    finally:
        timer.cancel()
    assert code == 143, capsys.readouterr().err
    assert not _analysis_threads()
    assert not (tmp_path / "out.mp4").exists()
