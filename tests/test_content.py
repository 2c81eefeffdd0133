"""Content-aware behaviour through the CLI: scene cuts are held, duplicates interpolated over, and the
written file is checked against the plan."""

from __future__ import annotations

import json
from fractions import Fraction

import cv2
import numpy as np
import pytest

from dainctl.cli import main
from dainctl.scene import compare_frames

from conftest import probe, shared_path


def decode_frames(path, first, last):
    import av

    frames = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i > last:
                break
            if i >= first:
                frames.append(frame.to_ndarray(format="rgb24"))
    return frames


def write_folder(folder, frames):
    folder.mkdir()
    for i, rgb in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:04d}.png"), rgb[:, :, ::-1])


def read_folder(folder):
    return [cv2.imread(str(p))[:, :, ::-1] for p in sorted(folder.iterdir())]


def test_no_generated_frame_mixes_two_shots_at_bikes_cuts(tmp_path, capsys):
    """bikes.mp4 cuts at frames 30 and 76 (among others); around each, the frames between the two shots
    are the old shot held, pixel for pixel, while frames elsewhere are interpolated."""
    bikes = shared_path("data", "videos", "bikes.mp4")
    originals = decode_frames(bikes, 26, 33) + decode_frames(bikes, 73, 79)
    write_folder(tmp_path / "frames", originals)
    out = tmp_path / "out"
    code = main(["interpolate", str(tmp_path / "frames"), str(out), "--factor", "3", "--quiet", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    # Folder index 4 is bikes frame 30, index 8 is frame 73 (a jump between two excerpts: also a cut)
    # and index 11 is frame 76.
    assert [cut["input_frame"] for cut in summary["scene_cuts"]] == [4, 8, 11]
    written = read_folder(out)
    assert len(written) == (len(originals) - 1) * 3 + 1
    for i in range(len(originals) - 1):
        for k in (1, 2):
            generated = written[3 * i + k]
            if i + 1 in (4, 8, 11):
                assert np.array_equal(generated, originals[i]), f"pair {i}: the old shot must be held"
            else:
                # An in-between, not a copy of either side.
                assert compare_frames(generated, originals[i]).max_change > 0 or compare_frames(generated, originals[i + 1]).max_change > 0


def test_scene_detection_can_be_turned_off(tmp_path, capsys):
    bikes = shared_path("data", "videos", "bikes.mp4")
    originals = decode_frames(bikes, 28, 31)
    write_folder(tmp_path / "frames", originals)
    code = main(["interpolate", str(tmp_path / "frames"), str(tmp_path / "out"), "--no-scene-detect", "--quiet", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["scene_cuts"] == []
    written = read_folder(tmp_path / "out")
    assert not np.array_equal(written[3], originals[1])  # the cut pair is blended now


def _on_twos_clip(path, frames=16, rate=24):
    """A textured square moving 3 px per drawing, each drawing shown twice (animation on twos)."""
    import av

    rng = np.random.default_rng(3)
    texture = (rng.random((24, 24, 3)) * 255).astype(np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 128, 64, "yuv444p"
        stream.options = {"crf": "0", "preset": "ultrafast"}
        for i in range(frames):
            drawing = i // 2
            img = np.full((64, 128, 3), 90, np.uint8)
            x = 10 + 3 * drawing
            img[20:44, x : x + 24] = texture
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_dedup_interpolates_across_repeated_frames_and_keeps_duration(tmp_path, capsys):
    clip = tmp_path / "twos.mp4"
    _on_twos_clip(clip)
    plain, dedup = tmp_path / "plain.mp4", tmp_path / "dedup.mp4"
    assert main(["interpolate", str(clip), str(plain), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["interpolate", str(clip), str(dedup), "--dedup", "--quiet", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["duplicates_dropped"] >= 6
    a, b = probe(plain), probe(dedup)
    assert a.frames == b.frames == 32
    assert abs(b.video_duration - Fraction(16, 24)) <= Fraction(1, 48)
    # Without dedup each drawing is shown as A, A (A blended with its repeat), A, then half-way to the
    # next: two of every four steps stand still. With dedup the square moves at every output frame.
    plain_frames = decode_frames(plain, 0, 31)
    dedup_frames = decode_frames(dedup, 0, 31)
    still_plain = sum(compare_frames(x, y).max_change < 4 for x, y in zip(plain_frames, plain_frames[1:]))
    still_dedup = sum(compare_frames(x, y).max_change < 4 for x, y in zip(dedup_frames[:24], dedup_frames[1:24]))
    assert still_plain >= 12
    assert still_dedup <= 2


def test_failed_verification_is_an_error_and_keeps_the_file_aside(tmp_path, capsys, clip_factory, monkeypatch):
    from dainctl.video import writer as writer_module

    original_write = writer_module.VideoOutput.write
    calls = {"n": 0}

    def drop_two_frames(self, rgb, ts):
        calls["n"] += 1
        if calls["n"] in (5, 6):
            return None  # a writer bug: two frames lost
        return original_write(self, rgb, ts)

    monkeypatch.setattr(writer_module.VideoOutput, "write", drop_two_frames)
    out = tmp_path / "out.mp4"
    code = main(["interpolate", str(clip_factory(audio=False)), str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 7, err
    assert "frame" in err and "out.unverified.mp4" in err
    assert not out.exists()
    assert (tmp_path / "out.unverified.mp4").exists()

    calls["n"] = 0
    code = main(["interpolate", str(clip_factory(audio=False)), str(out), "--no-verify", "--quiet"])
    err = capsys.readouterr().err
    assert code == 0
    assert "does not match" in err
    assert out.exists()


def test_verification_is_reported(tmp_path, capsys, clip_factory):
    code = main(["interpolate", str(clip_factory()), str(tmp_path / "o.mp4"), "--quiet", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert summary["verification"]["ok"] is True
    names = {check["name"] for check in summary["verification"]["checks"]}
    assert any("frame" in n for n in names) and any("audio" in n for n in names)


def _vfr_clip(path, times_ms, speed_px_per_s=120.0):
    """A square moving at constant speed in *time*, sampled at irregular timestamps (milliseconds)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 160, 64, "yuv444p"
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.options = {"crf": "0", "preset": "ultrafast", "bf": "0"}
        for ms in times_ms:
            img = np.full((64, 160, 3), 60, np.uint8)
            x = 10 + speed_px_per_s * ms / 1000
            img[20:44, int(round(x)) : int(round(x)) + 16] = 230
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = ms
            frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _square_x(rgb):
    columns = np.nonzero(rgb[32, :, 0] > 145)[0]
    return (columns[0] + columns[-1] + 1) / 2 - 8 if len(columns) else None


def test_variable_frame_rate_input_is_resampled_by_real_timestamps(tmp_path, capsys):
    # Gaps of 33, 66 and 100 ms: a counter-based tool would place the square wrongly after each gap.
    times = [0, 33, 100, 133, 233, 266, 300, 400, 433, 500]
    clip = tmp_path / "vfr.mp4"
    _vfr_clip(clip, times)
    out = tmp_path / "cfr.mp4"
    assert main(["interpolate", str(clip), str(out), "--fps", "30", "--quiet", "--json", "--no-scene-detect"]) == 0
    summary = json.loads(capsys.readouterr().out)
    res = probe(out)
    assert res.rate == 30
    assert summary["verification"]["ok"] is True
    frames = decode_frames(out, 0, res.frames - 1)
    last_ms = times[-1]
    for k, rgb in enumerate(frames):
        t_ms = 1000 * k / 30
        if t_ms > last_ms:
            break  # the last frame is held
        expected = 10 + 120.0 * t_ms / 1000
        assert abs(_square_x(rgb) - expected) <= 1.5, (k, _square_x(rgb), expected)
