"""Metadata carried from input to output through the CLI: colour tags (matrix, range, primaries, transfer),
display rotation, sample aspect ratio; full vs limited range handled so that original and generated frames
match in brightness. Input clips are written here with plain PyAV, not with dainctl's writer."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from dainctl.cli import main
from dainctl.video import ColorInfo, open_input, render_sample_frame

from conftest import encode_frames

WIDTH, HEIGHT, FRAMES = 64, 48, 5


@pytest.fixture(autouse=True)
def _reference_kernels(monkeypatch):
    monkeypatch.setenv("DAINCTL_KERNELS", "ref")


def write_clip(path: Path, frames: list[np.ndarray], *, color: ColorInfo, pix_fmt: str = "yuv420p",
               rotation: int = 0, sar: Fraction | None = None) -> Path:
    """Encode RGB frames (uint8 or uint16) with x264, converted and tagged with `color`."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, pix_fmt
        context = stream.codec_context
        context.colorspace, context.color_range = color.space, color.range
        context.color_primaries, context.color_trc = color.primaries, color.trc
        context.options = {"crf": "4"}
        if sar is not None:
            context.sample_aspect_ratio = sar
        if rotation:
            stream.set_display_rotation(rotation)
        encode_frames(container, stream, (
            av.VideoFrame.from_ndarray(rgb, format="rgb48le" if rgb.dtype == np.uint16 else "rgb24").reformat(
                format=pix_fmt, dst_colorspace=color.space, dst_color_range=color.range)
            for rgb in frames
        ))
    return path


def stream_tags(path: Path) -> dict:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frame = next(container.decode(stream))
        sar = stream.codec_context.sample_aspect_ratio or stream.sample_aspect_ratio
        return {
            "space": int(frame.colorspace),
            "range": int(frame.color_range),
            "primaries": int(frame.color_primaries),
            "trc": int(frame.color_trc),
            "rotation": round(frame.rotation or 0),
            "sar": Fraction(sar) if sar else None,
            "pix_fmt": frame.format.name,
        }


def luma_means(path: Path) -> list[float]:
    """Mean of the raw Y plane of every frame (code values, no range conversion)."""
    with av.open(str(path)) as container:
        means = []
        for frame in container.decode(video=0):
            dtype = np.uint16 if "10" in frame.format.name else np.uint8
            y = np.frombuffer(frame.planes[0], dtype).reshape(frame.height, -1)[:, : frame.width]
            means.append(float(y.mean()))
    return means


def textured(count: int) -> list[np.ndarray]:
    return [render_sample_frame(WIDTH, HEIGHT, index) for index in range(count)]


@pytest.mark.parametrize(
    ("color", "pix_fmt"),
    [
        (ColorInfo(space=1, range=1, primaries=1, trc=1), "yuv420p"),  # BT.709, limited
        (ColorInfo(space=5, range=2, primaries=5, trc=6), "yuv420p"),  # BT.601 (PAL), full range
        (ColorInfo(space=9, range=1, primaries=9, trc=16), "yuv420p10le"),  # BT.2020, PQ, 10-bit
        (ColorInfo(space=9, range=1, primaries=9, trc=18), "yuv420p10le"),  # BT.2020, HLG, 10-bit
    ],
    ids=["bt709", "bt601-full", "bt2020-pq", "bt2020-hlg"],
)
def test_colour_tags_are_carried_through_the_cli(tmp_path, color, pix_fmt):
    frames = textured(FRAMES)
    if pix_fmt.endswith("10le"):
        frames = [rgb.astype(np.uint16) * 257 for rgb in frames]
    clip = write_clip(tmp_path / "in.mp4", frames, color=color, pix_fmt=pix_fmt)
    source = stream_tags(clip)
    assert (source["space"], source["range"], source["primaries"], source["trc"]) == (color.space, color.range, color.primaries, color.trc)
    out = tmp_path / "out.mp4"
    assert main(["interpolate", str(clip), str(out), "--quiet", "--pix-fmt", pix_fmt]) == 0
    result = stream_tags(out)
    for key in ("space", "range", "primaries", "trc", "pix_fmt"):
        assert result[key] == source[key], key


@pytest.mark.parametrize("rotation", [90, -90])
def test_rotation_is_carried_through_the_cli(tmp_path, rotation):
    clip = write_clip(tmp_path / "in.mp4", textured(FRAMES), color=ColorInfo(1, 1, 1, 1), rotation=rotation)
    assert stream_tags(clip)["rotation"] == rotation
    out = tmp_path / "out.mp4"
    assert main(["interpolate", str(clip), str(out), "--quiet"]) == 0
    assert stream_tags(out)["rotation"] == rotation
    with open_input(out) as result:
        assert (result.info.width, result.info.height, result.info.rotation) == (WIDTH, HEIGHT, rotation)


def test_sample_aspect_ratio_is_read_and_written(tmp_path):
    """An anamorphic (SAR 4:3) clip: the reader reports it and the CLI's output is tagged with it."""
    clip = write_clip(tmp_path / "in.mp4", textured(2), color=ColorInfo(1, 1, 1, 1), sar=Fraction(4, 3))
    assert stream_tags(clip)["sar"] == Fraction(4, 3)
    out = tmp_path / "out.mp4"
    with open_input(clip) as source:
        assert source.info.sample_aspect_ratio == Fraction(4, 3)
    assert main(["interpolate", str(clip), str(out), "--quiet"]) == 0
    assert stream_tags(out)["sar"] == Fraction(4, 3)
    with open_input(out) as result:
        assert result.info.sample_aspect_ratio == Fraction(4, 3)


def test_square_pixels_report_none(tmp_path):
    clip = write_clip(tmp_path / "in.mp4", textured(2), color=ColorInfo(1, 1, 1, 1))
    with open_input(clip) as source:
        assert source.info.sample_aspect_ratio is None


@pytest.mark.parametrize("color_range", [1, 2], ids=["limited", "full"])
def test_generated_frames_match_the_originals_in_brightness(tmp_path, color_range):
    """Flat grey frames brightening step by step: in the output, originals keep their code values and each
    generated frame lies halfway between its neighbours. A range slip (full read as limited or back) would
    stretch or squeeze the originals' levels by 255/219 and show as a jump at every generated frame."""
    greys = [30, 90, 150, 210, 250]
    frames = [np.full((HEIGHT, WIDTH, 3), grey, np.uint8) for grey in greys]
    color = ColorInfo(space=1, range=color_range, primaries=1, trc=1)
    clip = write_clip(tmp_path / "in.mp4", frames, color=color)
    out = tmp_path / "out.mp4"
    assert main(["interpolate", str(clip), str(out), "--quiet", "--no-scene-detect"]) == 0
    assert stream_tags(out)["range"] == color_range
    source, result = luma_means(clip), luma_means(out)
    assert len(result) == 2 * len(source)
    # Full range spreads 0..255 over the code values; limited squeezes it into 16..235.
    if color_range == 2:
        assert source[-1] > 240
    else:
        assert source[-1] <= 236
    for index, level in enumerate(source):
        assert abs(result[2 * index] - level) <= 1.5
    for index in range(len(source) - 1):
        assert abs(result[2 * index + 1] - (source[index] + source[index + 1]) / 2) <= 2.5
