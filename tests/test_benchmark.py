"""`dainctl benchmark`: options, errors and the JSON schema (never timings)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dainctl.benchmark import (
    THROUGHPUT_SCHEMA,
    RssSampler,
    parse_precisions,
    parse_size,
    parse_sizes,
    precision_ratios,
)
from dainctl.cli import main
from dainctl.quality import QUALITY_SCHEMA
from dainctl.errors import UsageError
from signal_helpers import signal_once_ready

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dainctl: error: "), err
    return lines[0]


def test_parse_size_and_sizes():
    assert parse_size("1280x720") == (1280, 720)
    assert parse_sizes(["1280x720,1920x1080", "1280x720", "640x360"]) == [(1280, 720), (1920, 1080), (640, 360)]
    for bad in ("1280", "axb", "1281x720", "8x8", "1280x720x3"):
        with pytest.raises(UsageError):
            parse_size(bad)


def test_parse_precisions():
    assert parse_precisions(None, "cpu") == ["fp32"]
    assert parse_precisions(None, "cuda") == ["fp16", "fp32"]
    assert parse_precisions("fp32,fp16,fp32", "cuda") == ["fp32", "fp16"]
    with pytest.warns(UserWarning, match="fp32"):  # the one rule: a warning and fp32, as in interpolate
        assert parse_precisions("fp16", "cpu") == ["fp32"]
    with pytest.warns(UserWarning):
        assert parse_precisions("fp16,fp32", "cpu") == ["fp32"]
    with pytest.raises(UsageError):
        parse_precisions("int8", "cuda")


def test_precision_ratios_pair_runs_by_engine_and_size():
    def result(precision, width, fps, gpu):
        return {"engine": "dain", "device": "cuda", "precision": precision, "width": width, "height": 720,
                "output_fps": fps, "peak_gpu_bytes": gpu}

    ratios = precision_ratios([result("fp16", 1280, 9.0, 4e9), result("fp32", 1280, 4.0, 8e9), result("fp32", 1920, 2.0, 16e9)])
    assert ratios == [{"engine": "dain", "device": "cuda", "width": 1280, "height": 720,
                       "fps_fp16_over_fp32": 2.25, "peak_gpu_fp16_over_fp32": 0.5}]


def test_rss_sampler_sees_a_temporary_allocation():
    import mmap
    import time

    from dainctl.benchmark import current_rss

    size, extra = 64 * 1024 * 1024, 32 * 1024 * 1024
    start = current_rss()
    with RssSampler(interval=0.001) as sampler:
        # Mapped here rather than by malloc, which may hand out memory that is already resident (a freed
        # heap kept untrimmed), so the RSS rises by the block's size and falls back when it is unmapped.
        block = mmap.mmap(-1, size)
        np.frombuffer(block, dtype=np.uint8)[:] = 1  # touched: resident
        # The block lives until a sample has seen it (or 5 s pass): on a loaded machine (two test workers
        # on two cores) the sampler thread may not run within a fixed short sleep.
        deadline = time.monotonic() + 5.0
        while (sampler.peak or 0) < start + extra and time.monotonic() < deadline:
            time.sleep(0.005)
        block.close()
    # The peak outlives the block: it is the largest value seen, not the last one.
    assert sampler.peak is not None
    assert sampler.peak >= current_rss() + extra


@no_cuda
def test_gpu_without_cuda_is_one_clear_line(capsys):
    code, out, err = run_cli(capsys, "benchmark", "--gpu", "--frames", "2", "--size", "64x48")
    assert code == 5  # EngineError
    assert "CUDA" in error_line(err) and out == ""


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["--size", "12x7"], 2, "--size"),
        (["--precision", "fp8"], 2, "--precision"),
        (["--engine", "nope"], 2, "unknown engine"),
        (["--weights", "w.safetensors"], 2, "--weights"),
        (["--frames", "1"], 2, "--frames"),
        (["--max-memory", "lots"], 2, "memory size"),
        (["--input", "missing.mp4"], 3, "not found"),
        (["--input", "missing.mp4", "--size", "64x48"], 2, "--size"),
        (["--engine", "dain", "--weights", "missing.safetensors"], 3, "not found"),
        (["--profile", "turbo"], 2, "--profile"),
        (["--engine", "dain", "--profile", "fast"], 2, "weight-free engine"),
        (["quality", ".", "--profile", "turbo"], 2, "--profile"),
    ],
)
def test_bad_options_end_with_one_line_and_their_code(capsys, tmp_path, monkeypatch, args, code, words):
    monkeypatch.chdir(tmp_path)
    got, out, err = run_cli(capsys, "benchmark", *args)
    assert got == code, err
    assert words in error_line(err) and out == ""


def check_result_schema(item: dict) -> None:
    keys = {"engine", "profile", "device", "precision", "width", "height", "input", "factor", "input_frames", "output_frames",
            "interpolated_frames", "wall_seconds", "output_fps", "interpolated_fps", "stage_seconds", "alone_seconds",
            "overlap", "breakdown", "peak_rss_bytes", "process_peak_rss_bytes", "peak_gpu_bytes", "max_memory_bytes",
            "tiles", "pairs_per_forward", "ray"}
    assert set(item) == keys
    assert item["pairs_per_forward"] is None or item["pairs_per_forward"] >= 1
    assert set(item["stage_seconds"]) == {"analysis", "decode", "interpolate", "encode"}
    assert all(isinstance(v, float) and v >= 0 for v in item["stage_seconds"].values())
    assert item["wall_seconds"] > 0 and item["output_fps"] > 0
    assert item["output_fps"] == pytest.approx(item["output_frames"] / item["wall_seconds"], rel=1e-3)
    assert isinstance(item["peak_rss_bytes"], int) and item["peak_rss_bytes"] > 50 * 1024**2
    assert item["peak_gpu_bytes"] is None  # CPU runs


def test_throughput_json_schema_and_counts(capsys):
    code, out, err = run_cli(capsys, "benchmark", "--size", "64x48,96x64", "--frames", "3", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["schema"] == THROUGHPUT_SCHEMA
    assert report["machine"]["cpu_count"] >= 1 and report["machine"]["torch"] == torch.__version__
    assert report["ratios"] == []
    assert [(r["width"], r["height"]) for r in report["results"]] == [(64, 48), (96, 64)]
    for item in report["results"]:
        check_result_schema(item)
        assert (item["engine"], item["device"], item["precision"], item["input"]) == ("flow", "cpu", "fp32", "synthetic")
        # 3 frames to 2x: the originals, one new frame per pair, and the last one held.
        assert (item["input_frames"], item["output_frames"], item["interpolated_frames"]) == (3, 6, 2)
        alone = item["alone_seconds"]
        overlap = item["overlap"]
        assert set(alone) == {"decode", "interpolate", "encode"}
        assert overlap["slowest_stage"] == max(alone, key=alone.get)
        assert overlap["stages_alone_sum_seconds"] == pytest.approx(sum(alone.values()), abs=1e-3)
        assert overlap["end_to_end_over_slowest"] == pytest.approx(item["wall_seconds"] / overlap["slowest_stage_seconds"], rel=1e-2)
        assert item["breakdown"]["pairs"] == 2
        assert set(item["breakdown"]["parts_ms_per_pair"]) == {"upload", "flow", "projection_warping", "download", "other"}
    assert "throughput" in err and "output fps" in err  # the table went to stderr


def test_run_subcommand_on_an_input_video_with_a_memory_budget(capsys, clip_factory):
    clip = clip_factory(width=320, height=192, frames=4, audio=True)
    code, out, err = run_cli(capsys, "benchmark", "run", "--input", clip, "--factor", "3", "--no-alone",
                             "--no-breakdown", "--max-memory", "8M", "--json", "--quiet")
    assert code == 0, err
    assert err == ""
    (item,) = json.loads(out)["results"]
    check_result_schema(item)
    assert item["input"] == str(clip) and (item["width"], item["height"]) == (320, 192)
    assert (item["input_frames"], item["output_frames"], item["interpolated_frames"]) == (4, 12, 6)
    assert item["alone_seconds"] is None and item["overlap"] is None and item["breakdown"] is None
    assert item["max_memory_bytes"] == 8 * 1024**2
    # 8 MiB at ~180 B/px allows ~40k pixels per step: two 192x192 tiles instead of one 320x192 frame.
    assert (item["tiles"]["rows"], item["tiles"]["cols"]) == (1, 2)


def write_triplets(root: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    texture = cv2.resize(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), (128, 96), interpolation=cv2.INTER_CUBIC)
    for index in range(1, count + 1):
        folder = root / str(index)
        folder.mkdir(parents=True)
        for k in range(3):
            shifted = np.roll(texture, shift=index * k, axis=1)
            cv2.imwrite(str(folder / f"frame{k}.png"), shifted[:, :, ::-1])


def test_quality_on_triplets_json(capsys, tmp_path):
    write_triplets(tmp_path / "set", 2)
    code, out, err = run_cli(capsys, "benchmark", "quality", tmp_path / "set", "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert payload["schema"] == QUALITY_SCHEMA and payload["kind"] == "triplets"
    assert [item["name"] for item in payload["items"]] == ["1", "2"]
    psnrs = [item["psnr"] for item in payload["items"]]
    assert all(value > 25 for value in psnrs)  # a small translation is easy
    assert payload["mean_psnr"] == pytest.approx(sum(psnrs) / 2, abs=1e-3)
    assert payload["mean_ssim"] == pytest.approx(sum(i["ssim"] for i in payload["items"]) / 2, abs=1e-5)
    assert "mean of 2" in err
    assert payload["profile"] == "auto"


def test_quality_with_each_profile(capsys, tmp_path):
    """--profile picks the weight-free engine's profile: the frames (and so the scores) differ, and the
    JSON says which was used."""
    write_triplets(tmp_path / "set", 1)
    scores = {}
    for profile in ("high", "fast"):
        code, out, err = run_cli(capsys, "benchmark", "quality", tmp_path / "set", "--profile", profile, "--json", "--quiet")
        assert code == 0, err
        payload = json.loads(out)
        assert payload["profile"] == profile
        scores[profile] = payload["items"][0]["psnr"]
    assert scores["high"] != scores["fast"]


def test_quality_self_check_on_a_video(capsys, clip_factory):
    clip = clip_factory(width=160, height=96, frames=8, audio=False)
    code, out, err = run_cli(capsys, "benchmark", "quality", clip, "--json", "--quiet")
    assert code == 0, err
    payload = json.loads(out)
    assert payload["kind"] == "video"
    # Frames 1, 3 and 5 are re-created from their neighbours; frame 7 has no right neighbour.
    assert [item["frame"] for item in payload["items"]] == [1, 3, 5]
    assert all(item["psnr"] is None or 15 < item["psnr"] < 80 for item in payload["items"])
    assert -1 <= payload["mean_ssim"] <= 1
    code, out, _ = run_cli(capsys, "benchmark", "quality", clip, "--json", "--quiet", "--max-items", "2")
    assert code == 0 and len(json.loads(out)["items"]) == 2


def test_quality_errors(capsys, tmp_path):
    code, _, err = run_cli(capsys, "benchmark", "quality", tmp_path / "nothing")
    assert code == 3 and "not found" in error_line(err)
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(capsys, "benchmark", "quality", tmp_path / "empty")
    assert code == 3 and "no triplets" in error_line(err)
    code, _, err = run_cli(capsys, "benchmark", "quality", tmp_path / "empty", "--fp16")
    # --fp16 without CUDA: one warning and fp32, as in every command; then the input's own error
    warning, error = [line for line in err.splitlines() if line.strip()]
    assert code == 3 and "no triplets" in error and warning == "warning: --fp16 needs a CUDA GPU; running in fp32 on the CPU"


def test_random_dain_weights_load_strictly(tmp_path):
    from dainctl.benchmark import write_random_dain_weights
    from dainctl.models.weights import load_dain_weights

    path = write_random_dain_weights(tmp_path / "w.safetensors", seed=3)
    loaded = load_dain_weights(path)  # validates every key and shape against the architecture
    heads = loaded.state_dict["initScaleNets_filter1.2.bias"]
    assert 0.2 <= float(heads.min()) and float(heads.max()) <= 0.3  # kernels start near 1/4


def test_sigterm_removes_the_workspace(tmp_path):
    """SIGTERM during the pipelined run (a CI job's timeout, `kill`): exit 143 with one line, and the
    temporary folder with its clip and partial output is gone."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "DAINCTL_KERNELS": "ref"}
    code, out, err = signal_once_ready(
        ["benchmark", "--size", "160x96", "--frames", "600", "--no-alone", "--no-breakdown", "--json"],
        lambda: any("out_" in p.name for p in scratch.glob("dainctl-bench-*/*")),
        signal.SIGTERM, env=env, start_timeout=120,
    )
    assert code == 143, err
    assert err.strip().splitlines()[-1].startswith("dainctl: error: terminated") and "Traceback" not in err
    assert out == ""
    assert list(scratch.iterdir()) == []


class _LerpEngine:
    name = "lerp"
    device = torch.device("cpu")

    def interpolate(self, frame0, frame1, timesteps):
        return [torch.lerp(frame0, frame1, float(t)) for t in timesteps]


def test_alone_pass_encodes_with_the_pipelines_preset(clip_factory, tmp_path, monkeypatch):
    """The overlap report compares the alone pass's encode time with the pipelined run's: both must open
    the writer with the same settings (x264's preset above all: medium costs twice veryfast)."""
    import dainctl.video
    from dainctl.benchmark import run_alone
    from dainctl.pipeline import EncodeOptions, Job, run

    opened = []
    real_open_output = dainctl.video.open_output

    def recording_open_output(path, **kwargs):
        opened.append(kwargs)
        return real_open_output(path, **kwargs)

    monkeypatch.setattr(dainctl.video, "open_output", recording_open_output)
    clip = clip_factory(width=64, height=48, frames=3, audio=False)
    # The pipelined pass's job, as run_case builds it.
    run(Job(input_path=clip, output_path=tmp_path / "pipelined.mp4", mode="interpolate", factor=2, audio="drop",
            encode=EncodeOptions()), _LerpEngine())
    run_alone(clip, _LerpEngine(), tmp_path / "alone.mp4", 2, "cpu")
    pipelined, alone = opened
    assert alone["preset"] == pipelined["preset"] == dainctl.video.DEFAULT_PRESET
    for key in ("codec", "crf", "pix_fmt", "rate"):
        assert alone[key] == pipelined[key], key
