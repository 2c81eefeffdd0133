"""`--ray`: segments as Ray tasks give the output of a local run; without Ray, one line on installing it."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from conftest import decode_rgb
from dainctl.cli import main
from dainctl.video import make_sample_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_sample_clip(tmp_path_factory.mktemp("ray") / "cuts.mp4", width=96, height=64, frames=120,
                            rate=Fraction(24), cuts=(50,))


def test_without_ray_the_option_says_how_to_install_it(clip, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code = main(["interpolate", str(clip), str(tmp_path / "out.mp4"), "--ray", "local"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "pip install 'dainctl[ray]'" in err
    assert not (tmp_path / "out.mp4").exists()


def test_ray_needs_an_output_segments_can_be_joined_into(clip, tmp_path, capsys):
    pytest.importorskip("ray")
    code = main(["interpolate", str(clip), str(tmp_path / "frames"), "--ray", "local"])
    err = capsys.readouterr().err
    assert code == 2 and ".mp4, .mov" in err


@pytest.mark.slow
def test_ray_local_with_two_workers_gives_the_output_of_a_local_run(clip, tmp_path):
    pytest.importorskip("ray")
    common = ["--profile", "fast", "--codec", "ffv1", "--segment-seconds", "1", "--json", "--quiet"]
    outputs = {}
    for name, extra in (("local", []), ("ray", ["--ray", "local", "--ray-workers", "2"])):
        out = tmp_path / f"{name}.mkv"
        result = subprocess.run([sys.executable, "-m", "dainctl", "interpolate", str(clip), str(out), *common, *extra],
                                capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stderr
        outputs[name] = (out, json.loads(result.stdout))
    report = outputs["ray"][1]
    assert report["verification"]["ok"] and report["segments"]["count"] >= 4
    assert report["engine_stats"]["ray"]["tasks"] == report["segments"]["count"]
    frames, reference = decode_rgb(outputs["ray"][0]), decode_rgb(outputs["local"][0])
    assert len(frames) == len(reference) == report["output_frames"]
    assert all(np.array_equal(a, b) for a, b in zip(frames, reference))
    assert not (tmp_path / "ray.mkv.dainctl-job").exists()


def test_benchmark_ray_without_ray_says_how_to_install_it(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    code = main(["benchmark", "--size", "64x48", "--frames", "4", "--ray", "local"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "pip install 'dainctl[ray]'" in err.splitlines()[-1]


@pytest.mark.slow
def test_benchmark_ray_reports_segments_per_second_and_the_overhead(capsys):
    pytest.importorskip("ray")
    code = main(["benchmark", "--size", "96x64", "--frames", "72", "--profile", "fast", "--no-alone", "--no-breakdown",
                 "--ray", "local", "--ray-workers", "2", "--segment-seconds", "1", "--json", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    ray = json.loads(captured.out)["results"][0]["ray"]
    assert ray["segments"] >= 2 and ray["ray_tasks"] == ray["segments"]
    assert ray["segments_per_second_ray"] == pytest.approx(ray["segments"] / ray["ray_wall_seconds"], rel=1e-3)
    assert ray["ray_over_local"] == pytest.approx(ray["ray_wall_seconds"] / ray["local_wall_seconds"], rel=1e-3)


def test_a_task_on_a_node_without_the_job_folder_returns_the_segment_bytes(clip, tmp_path):
    """What a Ray task does (here called directly): with the job folder out of its sight it encodes into a
    scratch file and returns the bytes, which hold exactly the segment's frames."""
    from dainctl.cluster import EngineSpec, compute_segment
    from dainctl.jobfolder import count_packets
    from dainctl.pipeline import EncodeOptions, Job, analyze_job, plan_job

    job = Job(clip, tmp_path / "out.mkv", "interpolate", factor=2, encode=EncodeOptions(codec="ffv1"))
    timeline = analyze_job(job)
    plan = plan_job(job, timeline)
    segment = plan.segments(Fraction(1))[1]
    result = compute_segment(job, timeline, plan, segment, EngineSpec("flow", device="cpu", profile="fast"),
                             str(tmp_path / "not-visible-here"), 1)
    assert "file" not in result and result["index"] == 1
    written = tmp_path / "segment.mp4"
    written.write_bytes(result["data"])
    assert count_packets(written) == segment.frames
    assert not list(tmp_path.glob("**/*.partial*"))
