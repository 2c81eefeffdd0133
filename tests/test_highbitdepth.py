"""10-bit input stays 10-bit: decoded to 16-bit RGB, interpolated from it, written as yuv420p10le."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from dainctl.cli import main
from dainctl.pipeline import to_rgb, to_tensor
from dainctl.video import open_input, open_output

from conftest import encode_frames

WIDTH, HEIGHT, FRAMES = 64, 48, 6


def grey_gradient(t: int) -> np.ndarray:
    """uint16 (H, W, 3) grey ramp, distinct at every pixel (3072 levels), moving 2 px right per frame.

    R = G = B, so an 8-bit path could give at most 256 distinct luma levels."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    value = ((x - 2 * t) % (WIDTH + 16)) * HEIGHT + y
    grey = (value / ((WIDTH + 16) * HEIGHT) * 65535).astype(np.uint16)
    return np.repeat(grey[..., None], 3, axis=2)


def make_10bit_clip(path: Path, frames: int = FRAMES, codec: str = "libx264") -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=24)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p10le"
        stream.codec_context.color_range = 1
        stream.codec_context.colorspace = 1
        stream.codec_context.color_primaries = 1
        stream.codec_context.color_trc = 1
        # Lossless, so the input really holds 10-bit levels.
        stream.codec_context.options = {"qp": "0"} if codec == "libx264" else {"x265-params": "lossless=1:log-level=error"}
        encode_frames(container, stream, (
            av.VideoFrame.from_ndarray(grey_gradient(index), format="rgb48le").reformat(
                format="yuv420p10le", dst_colorspace=1, dst_color_range=1)
            for index in range(frames)
        ))
    return path


def luma_planes(path: Path) -> tuple[str, list[np.ndarray]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pix_fmt = stream.codec_context.pix_fmt
        planes = []
        for frame in container.decode(stream):
            y = np.frombuffer(frame.planes[0], np.uint16 if "10" in frame.format.name else np.uint8)
            planes.append(y.reshape(frame.height, -1)[:, : frame.width].copy())
    return pix_fmt, planes


def test_to_tensor_and_back_keep_16_bit_values():
    rgb = grey_gradient(0)
    tensor = to_tensor(rgb)
    assert tensor.dtype == torch.float32 and tensor.shape == (3, HEIGHT, WIDTH)
    assert float(tensor.max()) <= 1.0 and float(tensor.min()) >= 0.0
    back = to_rgb(tensor, np.uint16)
    assert back.dtype == np.uint16 and np.array_equal(back, rgb)
    assert to_rgb(tensor).dtype == np.uint8  # the default stays 8-bit
    with pytest.raises(ValueError):
        to_tensor(rgb.astype(np.float64))


def test_10bit_input_is_decoded_to_16_bit_rgb(tmp_path):
    clip = make_10bit_clip(tmp_path / "ten.mp4", frames=2)
    with open_input(clip) as src:
        assert src.info.bit_depth == 10
        (_, first), _ = list(src.frames())
    assert first.dtype == np.uint16
    assert len(np.unique(first[..., 1])) > 256
    # Within a 10-bit quantization step (64 on the 16-bit scale, plus chroma rounding) of what was encoded.
    assert np.abs(first.astype(int) - grey_gradient(0)).mean() < 64


def test_writer_follows_the_source_bit_depth(tmp_path):
    frame = grey_gradient(0)
    ten = open_output(tmp_path / "ten.mp4", width=WIDTH, height=HEIGHT, rate=Fraction(24), bit_depth=10)
    eight = open_output(tmp_path / "eight.mp4", width=WIDTH, height=HEIGHT, rate=Fraction(24))
    vp9 = open_output(tmp_path / "vp9.webm", width=WIDTH, height=HEIGHT, rate=Fraction(24), codec="libvpx-vp9", bit_depth=10)
    assert (ten.pix_fmt, eight.pix_fmt) == ("yuv420p10le", "yuv420p")
    vp9_formats = {f.name for f in av.Codec("libvpx-vp9", "w").video_formats}
    assert vp9.pix_fmt == ("yuv420p10le" if "yuv420p10le" in vp9_formats else "yuv420p")
    for dst in (ten, eight, vp9):
        dst.write(frame, Fraction(0))  # uint16 frames go into 8-bit outputs too
        dst.close(Fraction(1, 24))
    assert luma_planes(tmp_path / "ten.mp4")[0] == "yuv420p10le"
    assert luma_planes(tmp_path / "eight.mp4")[0] == "yuv420p"


@pytest.mark.parametrize("codec", ["libx264", "libx265"])
def test_10bit_clip_survives_interpolation_with_more_than_256_levels(tmp_path, monkeypatch, codec):
    monkeypatch.setenv("DAINCTL_KERNELS", "ref")
    clip = make_10bit_clip(tmp_path / "ten.mp4", codec=codec)
    out = tmp_path / "out.mp4"
    code = main(["interpolate", str(clip), str(out), "--pix-fmt", "yuv420p10le", "--codec", codec, "--crf", "0", "--quiet", "--no-scene-detect"])
    assert code == 0
    pix_fmt, planes = luma_planes(out)
    assert pix_fmt == "yuv420p10le"
    assert len(planes) == 2 * FRAMES
    _, inputs = luma_planes(clip)
    # Original frames come back within a 10-bit level (an 8-bit stage on the way costs ~5 levels here).
    for index, original in enumerate(inputs):
        assert np.abs(planes[2 * index].astype(int) - original).mean() < 2
    # A generated frame is the ramp moved 1 px: compared away from the ramp's wrap-around edge, it is as
    # precise as the originals (an 8-bit stage: 4-6 levels off).
    for k in (1, 3):
        expected = inputs[k // 2][:, 7:39].astype(int)
        assert np.abs(planes[k][:, 8:40].astype(int) - expected).mean() < 2
    # Odd output frames are generated: computed from 16-bit data they keep far more than 256 grey levels
    # (an 8-bit path, R = G = B, would give at most 256).
    for generated in planes[1:-2:2]:
        assert len(np.unique(generated)) > 256
    # Generated frames sit between their neighbours in brightness (no 8-bit vs 16-bit scale slip).
    means = [float(p.mean()) for p in planes]
    for k in range(1, len(planes) - 2, 2):
        assert abs(means[k] - (means[k - 1] + means[k + 1]) / 2) < 8


def test_10bit_follows_into_the_output_when_no_pix_fmt_is_given(tmp_path, monkeypatch):
    """pipeline.run with EncodeOptions(pix_fmt=None): the output takes the input's depth."""
    monkeypatch.setenv("DAINCTL_KERNELS", "ref")
    from dainctl.engines import create_engine
    from dainctl.pipeline import EncodeOptions, Job, run

    clip = make_10bit_clip(tmp_path / "ten.mp4", frames=3)
    out = tmp_path / "out.mp4"
    engine = create_engine("flow", device="cpu", fp16=False, weights=None)
    run(Job(clip, out, "interpolate", factor=2, encode=EncodeOptions(pix_fmt=None), scene_threshold=None), engine)
    pix_fmt, planes = luma_planes(out)
    assert pix_fmt == "yuv420p10le" and len(planes) == 6
    assert len(np.unique(planes[1])) > 256


def test_16_bit_png_folder_stays_16_bit(tmp_path, monkeypatch):
    """A folder of 16-bit PNGs is read as uint16 and the generated frames are written as 16-bit PNGs."""
    import cv2

    monkeypatch.setenv("DAINCTL_KERNELS", "ref")
    source = tmp_path / "deep"
    source.mkdir()
    for index in range(3):
        cv2.imwrite(str(source / f"{index}.png"), grey_gradient(index))
    with open_input(source) as src:
        assert src.info.bit_depth == 16
        assert all(rgb.dtype == np.uint16 for _, rgb in src.frames())
    out = tmp_path / "out"
    assert main(["interpolate", str(source), str(out), "--quiet", "--no-scene-detect"]) == 0
    written = sorted(out.iterdir())
    assert len(written) == 5
    generated = cv2.imread(str(written[1]), cv2.IMREAD_UNCHANGED)
    assert generated.dtype == np.uint16
    assert len(np.unique(generated)) > 256
    # The originals come back exactly (PNG is lossless, no 8-bit stage on the way).
    assert np.array_equal(cv2.imread(str(written[2]), cv2.IMREAD_UNCHANGED), grey_gradient(1))
