"""End to end through the CLI on small generated clips: frames, rates, durations and audio."""

from __future__ import annotations

import json
from fractions import Fraction

import cv2
import numpy as np
import pytest

from dainctl.cli import main

from conftest import probe


def run_ok(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out, err


def assert_duration(actual: Fraction, expected: Fraction, rate: Fraction):
    assert abs(actual - expected) <= 1 / rate, (float(actual), float(expected))


def test_interpolate_2x_keeps_duration_and_audio(capsys, tmp_path, clip_factory):
    clip = clip_factory(frames=12, rate=Fraction(24))
    out = tmp_path / "out.mp4"
    run_ok(capsys, "interpolate", clip, out, "--quiet")
    src, res = probe(clip), probe(out)
    assert res.rate == 48
    assert res.frames == 2 * src.frames == 24
    assert_duration(res.video_duration, Fraction(12, 24), res.rate)
    assert len(res.audio_durations) == 1
    assert_duration(res.audio_durations[0], src.audio_durations[0], res.rate)
    assert (res.width, res.height) == (src.width, src.height)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_ntsc_doubled_is_60000_over_1001(capsys, tmp_path, clip_factory):
    clip = clip_factory(frames=10, rate=Fraction(30000, 1001), audio=False)
    out = tmp_path / "out.mp4"
    run_ok(capsys, "interpolate", clip, out, "--quiet")
    res = probe(out)
    assert res.rate == Fraction(60000, 1001)
    assert res.frames == 20
    assert_duration(res.video_duration, Fraction(10) / Fraction(30000, 1001), res.rate)


def test_matroska_output(capsys, tmp_path, clip_factory):
    # Matroska keeps millisecond timestamps, so only frames and duration are exact there.
    clip = clip_factory(frames=10, rate=Fraction(25), audio=True, ext=".mkv")
    out = tmp_path / "out.mkv"
    run_ok(capsys, "interpolate", clip, out, "--quiet")
    res = probe(out)
    assert res.frames == 20
    assert_duration(res.video_duration, Fraction(10, 25), Fraction(50))
    assert len(res.audio_durations) == 1


@pytest.mark.parametrize("in_rate, target, expected_rate", [(24, "60", 60), (25, "50", 50), (Fraction(24000, 1001), "59.94", Fraction(60000, 1001))])
def test_exact_target_rate(capsys, tmp_path, clip_factory, in_rate, target, expected_rate):
    clip = clip_factory(frames=10, rate=Fraction(in_rate))
    out = tmp_path / "out.mp4"
    stdout, _ = run_ok(capsys, "interpolate", clip, out, "--fps", target, "--quiet", "--json")
    res = probe(out)
    duration = Fraction(10) / Fraction(in_rate)
    assert res.rate == expected_rate
    assert res.frames == -(-duration * expected_rate // 1)  # ceil: every k/rate below the duration
    assert_duration(res.video_duration, duration, res.rate)
    summary = json.loads(stdout)
    assert summary["output_frames"] == res.frames
    assert Fraction(summary["output_rate"]) == expected_rate


def test_slowmo_stretch_audio(capsys, tmp_path, clip_factory):
    clip = clip_factory(frames=12, rate=Fraction(24))
    out = tmp_path / "slow.mp4"
    run_ok(capsys, "slowmo", clip, out, "--factor", "4", "--audio", "stretch", "--quiet")
    src, res = probe(clip), probe(out)
    assert res.rate == 24
    assert res.frames == 4 * 12
    assert_duration(res.video_duration, 4 * Fraction(12, 24), res.rate)
    assert len(res.audio_durations) == 1
    assert abs(res.audio_durations[0] - 4 * src.audio_durations[0]) <= Fraction(1, 10)


def test_slowmo_drops_audio_by_default_with_a_notice(capsys, tmp_path, clip_factory):
    out = tmp_path / "slow.mp4"
    _, err = run_ok(capsys, "slowmo", clip_factory(), out, "--factor", "2")
    assert "audio" in err and "--audio stretch" in err
    res = probe(out)
    assert res.audio_durations == []
    assert res.frames == 24


def test_folder_to_folder_keeps_originals_at_every_factor(capsys, tmp_path):
    rng = np.random.default_rng(0)
    base = (rng.random((40, 56, 3)) * 255).astype(np.uint8)
    frames = tmp_path / "frames"
    frames.mkdir()
    originals = []
    for i in range(5):
        img = np.roll(base, i, axis=1)
        originals.append(img)
        cv2.imwrite(str(frames / f"f{i + 1}.png"), img[:, :, ::-1])  # natural order: f1 .. f5
    (frames / "f10.png").write_bytes((frames / "f5.png").read_bytes())  # f10 sorts after f5
    originals.append(originals[-1])
    out = tmp_path / "out"
    run_ok(capsys, "interpolate", frames, out, "--factor", "3", "--quiet")
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"{i:08d}.png" for i in range((6 - 1) * 3 + 1)]
    for i, original in enumerate(originals):
        written = cv2.imread(str(out / f"{3 * i:08d}.png"))[:, :, ::-1]
        assert np.array_equal(written, original)


def test_default_output_name_and_never_over_existing(capsys, tmp_path, clip_factory):
    clip = tmp_path / "in.mp4"
    clip.write_bytes(clip_factory(audio=False).read_bytes())
    run_ok(capsys, "interpolate", clip, "--quiet")
    assert (tmp_path / "in.2x.mp4").exists()
    run_ok(capsys, "interpolate", clip, "--fps", "60", "--quiet")
    assert (tmp_path / "in.60fps.mp4").exists()
    run_ok(capsys, "slowmo", clip, "--factor", "4", "--quiet")
    assert (tmp_path / "in.slowmo4x.mp4").exists()
    assert main(["interpolate", str(clip), "--quiet"]) == 4  # in.2x.mp4 exists now


def test_overwrite_replaces(capsys, tmp_path, clip_factory):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"old")
    run_ok(capsys, "interpolate", clip_factory(audio=False), out, "--overwrite", "--quiet")
    assert probe(out).frames == 24


def test_config_file_under_flags(capsys, tmp_path, clip_factory):
    config = tmp_path / "c.yaml"
    config.write_text("factor: 3\npix-fmt: yuv444p\nquiet: true\n")
    out = tmp_path / "a.mp4"
    out_err = run_ok(capsys, "interpolate", clip_factory(audio=False), out, "--config", config)
    assert out_err == ("", "")  # quiet came from the file
    assert probe(out).frames == 36
    out2 = tmp_path / "b.mp4"
    run_ok(capsys, "interpolate", clip_factory(audio=False), out2, "--config", config, "--factor", "2")
    assert probe(out2).frames == 24  # the flag wins


def test_quiet_is_silent_and_json_goes_to_stdout(capsys, tmp_path, clip_factory):
    out = tmp_path / "o.mp4"
    stdout, stderr = run_ok(capsys, "interpolate", clip_factory(), out, "--quiet", "--json")
    assert stderr == ""
    summary = json.loads(stdout)
    assert summary["input_frames"] == 12 and summary["output_frames"] == 24
    assert summary["audio"] == "copy"


def test_summary_and_fp16_warning_on_cpu(capsys, tmp_path, clip_factory):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    _, err = run_ok(capsys, "interpolate", clip_factory(audio=False), tmp_path / "o.mp4", "--fp16")
    assert "fp16" in err and "fp32" in err
    assert "12 -> 24 frames" in err


def test_video_to_folder(capsys, tmp_path, clip_factory):
    out = tmp_path / "frames_out"
    run_ok(capsys, "interpolate", clip_factory(frames=6, audio=False), out, "--quiet")
    assert len(list(out.glob("*.png"))) == 12


def test_memory_budget_tiles_and_matches_untiled(capsys, tmp_path, clip_factory):
    from conftest import decode_rgb

    clip = clip_factory(width=320, height=192, frames=4, audio=False)
    whole, tiled = tmp_path / "whole", tmp_path / "tiled"
    run_ok(capsys, "interpolate", clip, whole, "--quiet")
    # The flow engine needs about 180 bytes per pixel: 8 MB fits 192x192 tiles, not the 320x192 frame.
    stdout, _ = run_ok(capsys, "interpolate", clip, tiled, "--quiet", "--max-memory", "8M", "--json")
    tiles = json.loads(stdout)["tiles"]
    assert tiles["rows"] * tiles["cols"] >= 2
    a, b = decode_rgb(whole), decode_rgb(tiled)
    assert len(a) == len(b) == 8
    for x, y in zip(a, b):
        mse = np.mean((x.astype(np.float64) - y.astype(np.float64)) ** 2)
        assert mse == 0 or 10 * np.log10(255**2 / mse) >= 40
