"""Bad input and bad output settings end with one clear line through dainctl's error classes."""

from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np
import pytest

from dainctl.errors import InputError, OutputError, UsageError
from dainctl.video import make_sample_clip, open_input, open_output


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert message and "\n" not in message
    return message


def test_missing_input(tmp_path):
    with pytest.raises(InputError) as error:
        open_input(tmp_path / "nowhere.mp4")
    assert "not found" in _one_line(error)


def test_zero_byte_file(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.touch()
    with pytest.raises(InputError) as error:
        open_input(empty)
    assert "empty" in _one_line(error)


def test_random_bytes_named_mp4(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(InputError) as error:
        open_input(junk)
    assert "junk.mp4" in _one_line(error)


def test_audio_only_file(tmp_path):
    audio_only = tmp_path / "tone.m4a"
    with av.open(str(audio_only), "w") as container:
        stream = container.add_stream("aac", rate=48_000)
        frame = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
        frame.sample_rate = 48_000
        for index in range(10):
            frame.pts = index * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(InputError) as error:
        open_input(audio_only)
    assert "no video stream" in _one_line(error) and "audio" in str(error.value)


def test_empty_folder(tmp_path):
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(InputError) as error:
        open_input(tmp_path)
    assert "no images" in _one_line(error)


def test_folder_with_mixed_sizes_fails_before_decoding(tmp_path):
    make_sample_clip(tmp_path / "frames", width=64, height=48, frames=3)
    make_sample_clip(tmp_path / "other", width=48, height=48, frames=1)
    os.replace(tmp_path / "other" / "00000000.png", tmp_path / "frames" / "00000003.png")
    with pytest.raises(InputError) as error:
        open_input(tmp_path / "frames")
    assert "00000003.png is 48x48" in _one_line(error)


def test_undecodable_image_in_folder(tmp_path):
    folder = make_sample_clip(tmp_path / "frames", width=64, height=48, frames=2)
    (folder / "00000002.png").write_bytes(b"not a png")
    with open_input(folder) as src:
        frames = src.frames()
        next(frames), next(frames)
        with pytest.raises(InputError) as error:
            next(frames)
    assert "00000002.png" in _one_line(error)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"codec": "no-such-codec"}, "unknown video encoder"),
        ({"codec": "aac"}, "not a video encoder"),
        ({"pix_fmt": "no-such-format"}, "unknown pixel format"),
        ({"pix_fmt": "rgb24"}, "libx264 cannot encode rgb24"),
        ({"preset": "warp-speed"}, "cannot open the libx264 encoder"),
    ],
)
def test_bad_encoder_settings_are_usage_errors(tmp_path, settings, expected):
    with pytest.raises(UsageError) as error:
        open_output(tmp_path / "out.mp4", width=64, height=48, rate=Fraction(24), **settings)
    assert expected in _one_line(error)


def test_codec_that_does_not_fit_the_container(tmp_path):
    with pytest.raises(UsageError) as error:
        open_output(tmp_path / "out.webm", width=64, height=48, rate=Fraction(24), codec="libx264")
    assert "cannot hold libx264" in _one_line(error)


def test_webm_gets_vp9_by_default(tmp_path):
    with open_output(tmp_path / "out.webm", width=64, height=48, rate=Fraction(24)) as output:
        assert output._stream.codec_context.name == "libvpx-vp9"


def test_output_in_missing_folder(tmp_path):
    with pytest.raises(OutputError) as error:
        open_output(tmp_path / "missing" / "out.mp4", width=64, height=48, rate=Fraction(24))
    assert "does not exist" in _one_line(error)


def test_bad_rate_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError):
        open_output(tmp_path / "out.mp4", width=64, height=48, rate=Fraction(0))


def test_abort_stops_the_writer_and_can_be_repeated(tmp_path):
    dst = open_output(tmp_path / "partial.mp4", width=64, height=48, rate=Fraction(24))
    dst.write(np.zeros((48, 64, 3), np.uint8), Fraction(0))
    dst.abort()
    dst.abort()  # error handlers may both call it
    with pytest.raises(RuntimeError):
        dst.write(np.zeros((48, 64, 3), np.uint8), Fraction(1, 24))
    dst.close(Fraction(1))  # after abort, close finishes nothing and does not raise


def test_measuring_a_file_that_is_not_media(tmp_path):
    from dainctl.video import measure_streams

    junk = tmp_path / "junk.mkv"
    junk.write_bytes(b"\x00" * 1000)
    with pytest.raises(InputError) as error:
        measure_streams(junk)
    assert "junk.mkv" in _one_line(error)
