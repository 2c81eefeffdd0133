"""Real files from ../shared/data: MP3-in-MP4 and Opus-in-Matroska carried through the writer."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from dainctl.video import measure_streams, open_input, open_output

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def shared_video(name: str) -> Path:
    path = SHARED / "data" / "videos" / name
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return path


def _streams(path: Path, kind: str):
    return [s for s in measure_streams(path) if s.kind == kind]


def _write_first_frames(src, out: Path, count: int, *, end: Fraction | None = None, **kwargs):
    """Encode the first `count` input frames (fast settings) and close at `end` (default: after them)."""
    info = src.info
    dst = open_output(out, width=info.width, height=info.height, rate=info.rate, preset="ultrafast", **kwargs)
    stretch = kwargs.get("stretch", Fraction(1))
    last = Fraction(0)
    for index, (ts, rgb) in enumerate(src.frames()):
        if index == count:
            break
        dst.write(rgb, ts * stretch)
        last = ts * stretch
    dst.close(end if end is not None else last + stretch / info.rate)
    return dst


def test_cockatoo_info():
    with open_input(shared_video("cockatoo.mp4")) as src:
        info = src.info
    assert (info.width, info.height, info.rate, info.frame_count) == (1280, 720, 20, 280)
    assert info.duration == 14 and info.start == 0
    assert info.audio_streams == 1 and info.pix_fmt == "yuv444p" and info.bit_depth == 8


def test_cockatoo_mp3_is_stream_copied_in_sync(tmp_path):
    source = shared_video("cockatoo.mp4")
    out = tmp_path / "cockatoo.mp4"
    with open_input(source) as src:
        dst = _write_first_frames(src, out, 4, end=Fraction(14), audio_from=src, audio="copy")
    assert dst.audio_streams == 1 and not dst.notices
    (before,), (after,) = _streams(source, "audio"), _streams(out, "audio")
    assert after.codec == before.codec == "mp3float"
    assert (after.packets, after.start) == (before.packets, before.start)
    # The source's edit list trims its end to the millisecond; the copy ends where the packets do.
    assert abs(after.end - before.end) <= Fraction(1, 1000)
    assert _streams(out, "video")[0].end == 14


def test_cockatoo_mp3_stretched_four_times(tmp_path):
    source = shared_video("cockatoo.mp4")
    out = tmp_path / "cockatoo.slow.mp4"
    with open_input(source) as src:
        _write_first_frames(src, out, 2, end=Fraction(56), audio_from=src, audio="stretch", stretch=Fraction(4))
    (before,), (after,) = _streams(source, "audio"), _streams(out, "audio")
    assert after.codec == "aac"
    # The source's audio ends at 13.898 s; slowed 4x it ends at 55.59 s (within one 20 fps frame).
    assert abs(after.end - 4 * before.end) <= Fraction(1, 20)


@pytest.mark.parametrize("ext", [".mkv", ".mp4"])
def test_pancake_opus_is_stream_copied(tmp_path, ext):
    source = shared_video("flipping_a_pancake.mkv")
    out = tmp_path / f"pancake{ext}"
    with open_input(source) as src:
        assert src.info.rate == 30 and src.info.frame_count == 310
        assert abs(src.info.duration - Fraction(31, 3)) <= Fraction(1, 1000)
        dst = _write_first_frames(src, out, 3, end=src.info.duration, audio_from=src, audio="copy")
    assert dst.audio_streams == 1
    (before,), (after,) = _streams(source, "audio"), _streams(out, "audio")
    assert after.codec == "opus" and after.packets == before.packets
    assert abs(after.start - before.start) <= Fraction(1, 1000)
    assert abs(after.end - before.end) <= Fraction(1, 1000)


def test_ntsc_rate_is_exact():
    with open_input(shared_video("carphone_pristine.mp4")) as src:
        assert src.info.rate == Fraction(30000, 1001)
        stamps = [ts for ts, _ in src.frames()]
        assert src.end_ts == Fraction(120 * 1001, 30000)
    assert stamps == [Fraction(i * 1001, 30000) for i in range(120)]


def test_cockatoo_yuv444p_decodes_like_swscale():
    """The fast yuv444p path gives swscale's colours (within one level)."""
    import av
    import numpy as np

    source = shared_video("cockatoo.mp4")
    with av.open(str(source)) as container:
        reference = [frame.to_ndarray(format="rgb24") for _, frame in zip(range(2), container.decode(video=0))]
    with open_input(source) as src:
        ours = [rgb for _, (_, rgb) in zip(range(2), src.frames())]
    for expected, got in zip(reference, ours, strict=True):
        assert np.abs(expected.astype(int) - got).max() <= 1
