"""Video input/output: exact timestamps, the duration contract, audio carried in sync, image folders."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from dainctl.video import (
    ColorInfo,
    atempo_chain,
    make_sample_clip,
    measure_streams,
    open_input,
    open_output,
    render_sample_frame,
)

FRAMES = 12
WIDTH, HEIGHT = 96, 64


def _clip(tmp_path: Path, rate: Fraction, ext: str, audio: bool, frames: int = FRAMES) -> Path:
    return make_sample_clip(
        tmp_path / f"clip{ext}", width=WIDTH, height=HEIGHT, frames=frames, rate=rate, audio=audio
    )


def _timing(path: Path, kind: str):
    found = [s for s in measure_streams(path) if s.kind == kind]
    return found[0] if found else None


def _container_tick(ext: str) -> Fraction:
    """Timestamp resolution of the container: Matroska stores milliseconds."""
    return Fraction(1, 1000) if ext == ".mkv" else Fraction(0)


def _double_rate(src, out_path: Path, **kwargs):
    """Write every input frame twice, at 2x the rate (what `interpolate --factor 2` emits), holding the last."""
    info = src.info
    rate = info.rate * 2
    dst = open_output(out_path, width=info.width, height=info.height, rate=rate, audio_from=src, **kwargs)
    written = []
    for ts, rgb in src.frames():
        for k in range(2):
            dst.write(rgb, ts + Fraction(k) / rate)
            written.append(ts + Fraction(k) / rate)
    dst.close(src.end_ts)
    return dst, written


@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
@pytest.mark.parametrize("rate", [Fraction(24), Fraction(25), Fraction(30000, 1001)], ids=["24", "25", "ntsc"])
@pytest.mark.parametrize("audio", [True, False], ids=["audio", "silent"])
def test_duration_contract_round_trip(tmp_path, ext, rate, audio):
    clip = _clip(tmp_path, rate, ext, audio)
    tick = _container_tick(ext)
    with open_input(clip) as src:
        info = src.info
        assert (info.width, info.height, info.frame_count) == (WIDTH, HEIGHT, FRAMES)
        assert info.rate == rate
        assert info.audio_streams == int(audio)
        assert abs(info.duration - FRAMES / rate) <= tick
        out = tmp_path / f"out{ext}"
        dst, written = _double_rate(src, out)
        assert abs(src.end_ts - FRAMES / rate) <= tick
    assert dst.frames_written == 2 * FRAMES

    video = _timing(out, "video")
    assert video.packets == 2 * FRAMES
    # The caller asked for the input's end; the written video ends there (exactly, up to the container's clock).
    assert video.start == 0
    assert abs(video.end - FRAMES / rate) <= max(tick, Fraction(0))
    with open_input(out) as back:
        assert back.info.rate == 2 * rate  # 30000/1001 doubled is 60000/1001, not 59.94
        stamps = [ts for ts, _ in back.frames()]
    assert all(abs(a - b) <= tick for a, b in zip(stamps, written, strict=True))

    out_audio = _timing(out, "audio")
    if audio:
        in_audio = _timing(clip, "audio")
        assert out_audio is not None and out_audio.codec == "aac"
        if ext == ".mp4":
            # Stream copy keeps every packet at its own time: same count, same start, same end (the edit
            # list marks the priming before 0 to be skipped).
            assert (out_audio.packets, out_audio.start, out_audio.end) == (in_audio.packets, in_audio.start, in_audio.end)
        else:
            # Matroska cannot mark a head to skip: the packet of AAC priming before the first video
            # frame is dropped, every later packet keeps its time.
            assert in_audio.start < 0
            assert (out_audio.packets, out_audio.start, out_audio.end) == (in_audio.packets - 1, 0, in_audio.end)
        assert abs(out_audio.end - video.end) <= 1 / rate
    else:
        assert out_audio is None


def test_sample_clip_audio_is_as_long_as_the_video(tmp_path):
    clip = _clip(tmp_path, Fraction(30000, 1001), ".mp4", True)
    video, audio = _timing(clip, "video"), _timing(clip, "audio")
    assert video.end == Fraction(FRAMES * 1001, 30000)
    assert abs(audio.end - video.end) <= Fraction(1, 48_000)


def test_sample_frames_move(tmp_path):
    first, second = render_sample_frame(WIDTH, HEIGHT, 0), render_sample_frame(WIDTH, HEIGHT, 1)
    assert first.shape == (HEIGHT, WIDTH, 3) and first.dtype == np.uint8
    assert np.abs(first.astype(int) - second).mean() > 2
    np.testing.assert_array_equal(first, render_sample_frame(WIDTH, HEIGHT, 0))  # deterministic


def test_frames_are_contiguous_rgb_and_iterate_once(tmp_path):
    clip = _clip(tmp_path, Fraction(24), ".mp4", False, frames=3)
    with open_input(clip) as src:
        frames = list(src.frames())
        assert [ts for ts, _ in frames] == [Fraction(0), Fraction(1, 24), Fraction(2, 24)]
        for _, rgb in frames:
            assert rgb.dtype == np.uint8 and rgb.shape == (HEIGHT, WIDTH, 3) and rgb.flags["C_CONTIGUOUS"]
        # Each decoded frame is its own rendered instant (lossy yuv420p, so closest, not equal).
        for index, (_, rgb) in enumerate(frames):
            errors = [np.abs(rgb.astype(int) - render_sample_frame(WIDTH, HEIGHT, t)).mean() for t in range(3)]
            assert int(np.argmin(errors)) == index
        with pytest.raises(RuntimeError):
            next(iter(src.frames()))


def test_timestamps_come_from_time_not_counters(tmp_path):
    """Frames written at uneven times come back at those times, and the first frame's offset is `start`."""
    out = tmp_path / "uneven.mp4"
    times = [Fraction(1), Fraction(1) + Fraction(1, 24), Fraction(1) + Fraction(5, 24), Fraction(2)]
    dst = open_output(out, width=WIDTH, height=HEIGHT, rate=Fraction(24))
    for index, ts in enumerate(times):
        dst.write(render_sample_frame(WIDTH, HEIGHT, index), ts)
    dst.close(Fraction(9, 4))
    with open_input(out) as src:
        assert src.info.start == 1
        assert [ts for ts, _ in src.frames()] == [t - 1 for t in times]
        assert src.end_ts == Fraction(5, 4)


def test_writer_refuses_non_increasing_timestamps(tmp_path):
    dst = open_output(tmp_path / "x.mp4", width=WIDTH, height=HEIGHT, rate=Fraction(24))
    frame = render_sample_frame(WIDTH, HEIGHT, 0)
    dst.write(frame, Fraction(0))
    # 1/100 s rounds to the same 1/24 s tick as the previous frame: the writer must not invent a time.
    with pytest.raises(ValueError):
        dst.write(frame, Fraction(1, 100))
    dst.abort()


@pytest.mark.parametrize("stretch", [2, 4])
def test_stretched_audio_lasts_stretch_times_longer_at_the_same_pitch(tmp_path, stretch):
    rate = Fraction(24)
    clip = _clip(tmp_path, rate, ".mp4", True)
    out = tmp_path / "slow.mp4"
    with open_input(clip) as src:
        dst = open_output(
            out, width=WIDTH, height=HEIGHT, rate=rate, audio_from=src, audio="stretch", stretch=Fraction(stretch)
        )
        for ts, rgb in src.frames():
            dst.write(rgb, ts * stretch)
        dst.close(src.end_ts * stretch)
    assert dst.audio_streams == 1
    video, audio, source_audio = _timing(out, "video"), _timing(out, "audio"), _timing(clip, "audio")
    assert video.end == stretch * FRAMES / rate
    assert abs(audio.end - stretch * source_audio.end) <= 1 / rate
    assert abs(audio.end - video.end) <= 1 / rate

    with av.open(str(out)) as container:
        stream = container.streams.audio[0]
        left = np.concatenate([frame.to_ndarray()[0] for frame in container.decode(stream)])
        sample_rate = stream.sample_rate
    window = left[sample_rate // 10 : sample_rate // 10 + sample_rate // 4]
    spectrum = np.abs(np.fft.rfft(window * np.hanning(window.size)))
    peak_hz = np.argmax(spectrum) * sample_rate / window.size
    assert abs(peak_hz - 440) < 10  # atempo keeps the pitch: a resampling slow-down would give 110-220 Hz


def test_drop_writes_no_audio(tmp_path):
    clip = _clip(tmp_path, Fraction(24), ".mp4", True, frames=4)
    with open_input(clip) as src:
        dst, _ = _double_rate(src, tmp_path / "x.mp4", audio="drop")
    assert dst.audio_streams == 0
    assert _timing(tmp_path / "x.mp4", "audio") is None


def test_audio_is_carried_as_the_video_is_written(tmp_path):
    """Audio packets are muxed as the video advances, not all at close (memory stays flat on long videos)."""
    rate = Fraction(24)
    clip = _clip(tmp_path, rate, ".mkv", True, frames=48)
    with open_input(clip) as src:
        dst = open_output(tmp_path / "x.mkv", width=WIDTH, height=HEIGHT, rate=rate, audio_from=src)
        for ts, rgb in src.frames():
            dst.write(rgb, ts)
            # Audio stays within about one audio packet (21 ms at 48 kHz) of the video's time.
            assert dst.carried_until is not None and ts - Fraction(1, 20) <= dst.carried_until <= ts
        dst.close(src.end_ts)
    assert dst.carried_until >= src.end_ts - Fraction(1, 20)


def test_odd_size_is_padded_for_yuv420p(tmp_path):
    out = tmp_path / "odd.mp4"
    frame = render_sample_frame(65, 49, 0)
    dst = open_output(out, width=65, height=49, rate=Fraction(24))
    assert (dst.width, dst.height) == (66, 50)
    assert any("66x50" in notice for notice in dst.notices)
    dst.write(frame, Fraction(0))
    dst.close(Fraction(1, 24))
    with open_input(out) as src:
        assert (src.info.width, src.info.height) == (66, 50)
        (_, back), = list(src.frames())
    # The extra column repeats the last one (up to compression).
    assert np.abs(back[:49, 65].astype(int) - back[:49, 64]).mean() < 6


@pytest.mark.parametrize(
    "color",
    [ColorInfo(1, 1, 1, 1), ColorInfo(), ColorInfo(5, 2, 5, 6), ColorInfo(9, 1, 9, 14)],
    ids=["bt709", "untagged", "bt601-full", "bt2020"],
)
@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv444p"])
def test_colours_survive_with_their_tags(tmp_path, color, pix_fmt):
    """The writer converts with the tagged matrix and range: the file decodes back to what was written."""
    colours = np.array([[200, 40, 60], [20, 180, 90], [250, 250, 10], [16, 16, 16]], np.uint8)
    frame = np.repeat(np.repeat(colours[None], 16, axis=0), 16, axis=1)  # four 16-pixel-wide flat bars
    out = tmp_path / "colours.mp4"
    dst = open_output(out, width=64, height=16, rate=Fraction(24), color=color, pix_fmt=pix_fmt, crf=0)
    dst.write(frame, Fraction(0))
    dst.close(Fraction(1, 24))
    with open_input(out) as src:
        read = src.info.color
        assert (read.space, read.primaries, read.trc) == (color.space, color.primaries, color.trc)
        # Untagged input is written as limited range, which may come back unspecified (0) or tagged (1).
        assert read.range == color.range if color.range else read.range in (0, 1)
        ((_, back),) = list(src.frames())
    for index, colour in enumerate(colours):
        bar = back[:, index * 16 + 2 : index * 16 + 14].reshape(-1, 3).astype(int)
        assert np.abs(bar.mean(axis=0) - colour).max() <= 3  # 8-bit YUV quantization (swscale: same)


def test_image_folder_round_trip_in_natural_order(tmp_path):
    folder = make_sample_clip(tmp_path / "frames", width=WIDTH, height=HEIGHT, frames=FRAMES)
    written = sorted(folder.iterdir())
    assert [p.name for p in written] == [f"{i:08d}.png" for i in range(FRAMES)]
    # Rename to unpadded numbers: lexical order would put frame10 before frame2.
    for index, path in enumerate(written):
        path.rename(folder / f"frame{index}.png")
    (folder / "notes.txt").write_text("not an image")
    with open_input(folder) as src:
        assert src.info.is_folder and src.info.frame_count == FRAMES and src.info.rate is None
        frames = list(src.frames())
    assert [ts for ts, _ in frames] == [Fraction(i) for i in range(FRAMES)]
    for index, (_, rgb) in enumerate(frames):
        np.testing.assert_array_equal(rgb, render_sample_frame(WIDTH, HEIGHT, index))

    out = tmp_path / "copy"
    dst = open_output(out, width=WIDTH, height=HEIGHT, rate=Fraction(24))
    for ts, rgb in frames:
        dst.write(rgb, ts)
    dst.close(Fraction(FRAMES))
    with open_input(out) as back:
        for (_, original), (_, copied) in zip(frames, back.frames(), strict=True):
            np.testing.assert_array_equal(original, copied)


def test_image_folder_reads_grey_and_16_bit(tmp_path):
    import cv2

    folder = tmp_path / "mixed_depth"
    folder.mkdir()
    grey = np.arange(WIDTH * HEIGHT, dtype=np.uint32).reshape(HEIGHT, WIDTH) % 256
    cv2.imwrite(str(folder / "a1.png"), grey.astype(np.uint8))
    cv2.imwrite(str(folder / "a2.png"), (np.stack([grey] * 3, axis=2) * 257).astype(np.uint16))
    with open_input(folder) as src:
        frames = [rgb for _, rgb in src.frames()]
    for rgb in frames:
        assert rgb.dtype == np.uint8 and rgb.shape == (HEIGHT, WIDTH, 3)
        np.testing.assert_array_equal(rgb[..., 0], grey)


def test_atempo_chain_multiplies_to_the_slowdown():
    for stretch in (Fraction(2), Fraction(3), Fraction(4), Fraction(8), Fraction(5, 2), Fraction(1, 3)):
        stages = atempo_chain(stretch)
        assert all(Fraction(1, 2) <= tempo <= 100 for tempo in stages)
        assert np.prod([float(t) for t in stages]) == pytest.approx(float(1 / stretch))


def _clip_with_subtitles(path: Path) -> Path:
    """A 1 s Matroska clip at 24 fps with two SubRip cues, at 0 s and 0.5 s, each 0.4 s long."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        subtitles = container.add_mux_stream("subrip")
        subtitles.time_base = Fraction(1, 1000)
        for index in range(24):
            frame = av.VideoFrame.from_ndarray(render_sample_frame(WIDTH, HEIGHT, index), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, 24)
            container.mux(video.encode(frame))
            if index in (0, 12):
                cue = av.Packet(f"cue {index}".encode())
                cue.stream, cue.time_base = subtitles, Fraction(1, 1000)
                cue.pts = cue.dts = index * 1000 // 24
                cue.duration = 400
                container.mux(cue)
        container.mux(video.encode(None))
    return path


@pytest.mark.parametrize(("ext", "codec"), [(".mkv", "srt"), (".mp4", "mov_text"), (".mov", "mov_text"), (".webm", "webvtt")])
def test_subtitles_are_copied_or_converted_and_retimed(tmp_path, ext, codec):
    """SubRip is copied into Matroska, converted to mov_text for MP4/MOV and to WebVTT for WebM; the
    cues keep their text and are retimed by the slow-motion stretch either way."""
    source = _clip_with_subtitles(tmp_path / "subs.mkv")
    out = tmp_path / f"slow{ext}"
    with open_input(source) as src:
        assert src.info.subtitle_streams == 1
        dst = open_output(out, width=WIDTH, height=HEIGHT, rate=Fraction(24), audio_from=src, audio="stretch", stretch=Fraction(2))
        for ts, rgb in src.frames():
            dst.write(rgb, ts * 2)
        dst.close(src.end_ts * 2)
    with av.open(str(out)) as container:
        streams = list(container.streams.subtitles)
        assert [s.codec_context.name for s in streams] == [codec]
        packets = container.demux(*streams)
        cues = [(p.pts * p.time_base, p.duration * p.time_base, bytes(p)) for p in packets if p.size]
    # mov_text samples are a 16-bit length and the text; the MP4 muxer fills the gaps with empty samples.
    cues = [(start, length, text[2:] if codec == "mov_text" else text) for start, length, text in cues if text != b"\x00\x00"]
    assert cues == [(0, Fraction(4, 5), b"cue 0"), (1, Fraction(4, 5), b"cue 12")]
    # FFmpeg names the SubRip decoder "srt".
    assert dst.subtitles == {"carried": [("srt copied" if codec == "srt" else f"srt converted to {codec}")], "dropped": []}


@pytest.mark.parametrize("rotation", [90, -90, -180])
def test_display_rotation_is_carried(tmp_path, rotation):
    """A phone video's display rotation survives into the output (frames stay as stored)."""
    out = tmp_path / "rotated.mp4"
    frame = render_sample_frame(WIDTH, HEIGHT, 0)
    dst = open_output(out, width=WIDTH, height=HEIGHT, rate=Fraction(24), rotation=rotation)
    dst.write(frame, Fraction(0))
    dst.close(Fraction(1, 24))
    with open_input(out) as src:
        assert src.info.rotation == rotation
        assert (src.info.width, src.info.height) == (WIDTH, HEIGHT)
        folder = open_output(tmp_path / "upright", width=WIDTH, height=HEIGHT, rate=Fraction(24), rotation=rotation)
        for ts, rgb in src.frames():
            folder.write(rgb, ts)
    with open_input(tmp_path / "upright") as upright:
        ((_, turned),) = list(upright.frames())
    # Image folders have no display matrix: frames are turned as a player would show them
    # (counter-clockwise by `rotation`, FFmpeg's sign convention for the display matrix).
    expected, opposite = np.rot90(frame, k=rotation // 90), np.rot90(frame, k=rotation // 90 + 2)
    assert turned.shape == expected.shape
    assert np.abs(turned.astype(int) - expected).mean() < np.abs(turned.astype(int) - opposite).mean() / 3


def test_unrotated_input_reports_zero(tmp_path):
    clip = _clip(tmp_path, Fraction(24), ".mp4", False, frames=2)
    with open_input(clip) as src:
        assert src.info.rotation == 0


def test_audio_the_container_cannot_hold_is_re_encoded_not_lost(tmp_path):
    clip = _clip(tmp_path, Fraction(24), ".mp4", True)
    out = tmp_path / "out.webm"
    with open_input(clip) as src:
        dst = open_output(out, width=WIDTH, height=HEIGHT, rate=Fraction(24), codec="libvpx-vp9", audio_from=src)
        for ts, rgb in src.frames():
            dst.write(rgb, ts)
        dst.close(src.end_ts)
    assert any("re-encoded as libopus" in notice for notice in dst.notices)
    audio, video = _timing(out, "audio"), _timing(out, "video")
    assert audio.codec == "opus"
    assert abs(audio.end - video.end) <= Fraction(1, 24)


@pytest.mark.parametrize("pix_fmt, colorspace, color_range", [("yuv420p", 2, 0), ("yuv420p", 1, 1), ("yuv420p", 5, 2),
                                                              ("yuv422p", 6, 1), ("yuv444p", 2, 0)])
def test_copied_frames_keep_their_yuv_planes(tmp_path, pix_fmt, colorspace, color_range):
    """A frame decoded to RGB and written again in its own format keeps its Y, Cb and Cr (up to one level
    of rounding, on a few pixels): a 2x run's copies of the input frames are the input frames."""
    from dainctl.cli import main

    rng = np.random.default_rng(1)
    height, width = 48, 64
    source = tmp_path / "in.mkv"
    planes_in = []
    with av.open(str(source), "w") as container:
        stream = container.add_stream("ffv1", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for index in range(4):
            # In-gamut content: luma 60-190, chroma within 10 of neutral, so no RGB value saturates.
            luma = (60 + 130 * np.linspace(0, 1, width)[None, :] * np.linspace(0.3, 1, height)[:, None]
                    + rng.integers(-8, 9, (height, width))).clip(60, 190).astype(np.uint8)
            chroma_shape = {"yuv420p": (height // 2, width // 2), "yuv422p": (height, width // 2)}.get(pix_fmt, (height, width))
            chroma = [rng.integers(118, 139, chroma_shape).astype(np.uint8) for _ in range(2)]
            frame = av.VideoFrame(width, height, pix_fmt)
            for plane, values in zip(frame.planes, [luma, *chroma]):
                view = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
                view[:, : values.shape[1]] = values
            frame.colorspace, frame.color_range = colorspace, color_range
            frame.pts = index
            planes_in.append([luma, *chroma])
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    out = tmp_path / "out.mkv"
    assert main(["interpolate", str(source), str(out), "--codec", "ffv1", "--pix-fmt", pix_fmt, "--profile", "fast",
                 "--quiet"]) == 0
    with av.open(str(out)) as container:
        decoded = list(container.decode(video=0))
    assert len(decoded) == 8 and decoded[0].format.name == pix_fmt
    for index, expected in enumerate(planes_in):
        frame = decoded[2 * index]  # the copy of input frame `index`
        for plane, values in zip(frame.planes, expected):
            got = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : values.shape[1]]
            difference = np.abs(got.astype(int) - values)
            assert difference.max() <= 1 and difference.mean() < 0.05, (index, difference.max(), difference.mean())
