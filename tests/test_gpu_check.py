"""scripts/gpu_check.sh's plumbing, on the CPU: its dry run (GPU_CHECK_DRY=1) writes a report of every step,
and scripts/gpu_report.py renders reports (whole, partial or failed) as markdown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STEPS = ["install_pyav", "env", "build", "pytest_cuda", "tests", "kernels", "psnr", "finetune", "bench_dain_720p",
         "bench_dain_1080p_pairs1", "bench_dain_1080p_pairs2", "bench_dain_1080p_pairs4", "bench_flow_1080p",
         "bench_dain_4k"]
GPU_ONLY = ("bench_dain_1080p_pairs1", "bench_dain_1080p_pairs2", "bench_dain_1080p_pairs4", "bench_dain_4k")


def run_check(out: Path, timeout: float, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "GPU_CHECK_DRY": "1", "OUT": str(out), "PYTHON": sys.executable, **env}
    environment.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh")], env=environment, capture_output=True,
                          text=True, timeout=timeout)


def render(report_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_report.py"), str(report_path)],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_dry_run_reports_every_step_and_renders(tmp_path):
    if not (ROOT / ".gpu_check" / "oracle_inputs.safetensors").is_file() and not (ROOT.parent / "shared").is_dir():
        pytest.skip("no .gpu_check/ and no ../shared to prepare it from")
    if not (ROOT / ".gpu_check" / "oracle_inputs.safetensors").is_file():
        subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "prepare"], check=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    result = run_check(tmp_path, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    log = (tmp_path / "gpu_check.log").read_text()
    assert log.rstrip().splitlines()[-len(STEPS) - 1].startswith("gpu_check summary (DRY RUN")  # the summary is last

    report = json.loads((tmp_path / "gpu_report.json").read_text())
    assert report["schema"] == "dainctl.gpu_check/1" and report["dry_run"] is True
    steps = {step["name"]: step for step in report["steps"]}
    assert [step["name"] for step in report["steps"]] == STEPS
    for step in report["steps"]:
        assert step["status"] in ("ok", "skipped"), step
        if step["status"] == "skipped":
            assert step["reason"], step
    # install_pyav is skipped only where no wheel was fetched into .whl/ (and PyAV is importable)
    assert steps["install_pyav"]["status"] == ("ok" if list((ROOT / ".whl").glob("av-*.whl")) else "skipped")
    assert all(steps[name]["status"] == "skipped" for name in GPU_ONLY)

    assert report["env"]["dry_run"] is True and report["env"]["pyav"]
    build = report["build"]
    compiled_backward = {"depth_flow_projection", "filter_interpolation", "correlation", "backward_warp"}
    forward = compiled_backward | {"bicubic_warp"}  # its backward is its twin's
    assert build["ok"] and set(build["ops"]) == forward | {f"{name}_backward" for name in compiled_backward}
    assert all({"CPU", "Meta"} <= set(op["kernels"]) for op in build["ops"].values())
    assert all("Autograd" in build["ops"][name]["kernels"] for name in forward)  # the compiled backwards
    tests = report["tests"]
    assert tests["tests"] > 0 and tests["failures"] == tests["errors"] == 0
    assert (tmp_path / "pytest_cuda.xml").is_file()
    kernels = report["kernels"]
    assert kernels["device"] == "cpu" and len(kernels["rows"]) == 5
    assert all(row["compiled_s"] > 0 and row["achieved_GBps"] > 0 for row in kernels["rows"])
    (case,) = report["psnr"]["cases"]
    assert case["case"] == "mb_dogdance" and case["finite"] is True and case["psnr_fp16_vs_fp32"] is None
    (dain,) = report["bench_dain_720p"]["results"]
    assert (dain["engine"], dain["device"], dain["precision"], dain["width"]) == ("dain", "cpu", "fp32", 32)
    assert report["bench_flow_1080p"]["results"][0]["engine"] == "flow"
    assert len(list(tmp_path.iterdir())) <= 8  # what the device tool brings back from $OUT

    rendered = render(tmp_path / "gpu_report.json")
    assert rendered.returncode == 0, rendered.stderr
    markdown = rendered.stdout
    assert "DRY RUN" in markdown and "`dainctl::correlation` | yes | yes |" in markdown
    for name in STEPS:
        assert f"| {name} |" in markdown
    assert "| bench_dain_720p | dain | fp32 | cpu | 32x32 |" in markdown


def test_no_time_left_skips_every_step_but_still_reports(tmp_path):
    result = run_check(tmp_path, timeout=60, GPU_CHECK_TOTAL_S="0")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_report.json").read_text())
    timed = [s for s in report["steps"] if s["name"] not in GPU_ONLY]
    assert timed and all(s["status"] == "skipped" and "no time left" in s["reason"] for s in timed)
    assert "no time left" in render(tmp_path / "gpu_report.json").stdout


def test_without_out_the_check_stops_with_one_line(tmp_path):
    environment = {k: v for k, v in os.environ.items() if k != "OUT"}
    result = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh")], env=environment, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode != 0 and "set OUT" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_report_of_failed_and_timed_out_steps_renders_their_reasons(tmp_path):
    report = {
        "schema": "dainctl.gpu_check/1", "dry_run": False, "date": "2026-12-01 12:00 UTC", "command": "c",
        "commit": "abc1234", "wall_seconds": 480.0,
        "steps": [
            {"name": "build", "status": "failed", "rc": 1, "seconds": 20.0, "budget_s": 150,
             "reason": "could not build the compiled dainctl kernels"},
            {"name": "kernels", "status": "timeout", "rc": 124, "seconds": 60.0, "budget_s": 60,
             "reason": "over its 60 s budget"},
            {"name": "bench_dain_720p", "status": "failed", "rc": 1, "seconds": 3.0, "budget_s": 90, "reason": None},
        ],
        "env": {"gpu": {"name": "NVIDIA H200", "memory_bytes": 150 * 2**30, "multiprocessors": 132,
                        "capability": [9, 0]}, "torch": "2.11.0+cu130"},
        "build": {"error": "could not build the compiled dainctl kernels", "ops": {}},
        "bench_dain_720p": None,
    }
    path = tmp_path / "gpu_report.json"
    path.write_text(json.dumps(report))
    result = render(path)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "NVIDIA H200" in text and "| build | failed | 20.0 | 150 | could not build" in text
    assert "| kernels | timeout | 60.0 | 60 | over its 60 s budget |" in text
    assert "- bench_dain_720p: failed: no result" in text

    path.write_text(json.dumps({"schema": "something else"}))
    result = render(path)
    assert result.returncode == 1 and "not a gpu_check report" in result.stderr
