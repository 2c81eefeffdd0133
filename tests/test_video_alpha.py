"""Alpha: transparency cannot be carried through dainctl's YUV output, so an input with transparent pixels
is refused with one line (exit 3) before anything is written; an alpha channel that is fully opaque carries
nothing and is dropped, and the run goes ahead."""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from dainctl.cli import main
from dainctl.video import open_input, render_sample_frame

from conftest import encode_frames

WIDTH, HEIGHT, FRAMES = 64, 48, 3
INPUT_ERROR = 3


@pytest.fixture(autouse=True)
def _reference_kernels(monkeypatch):
    monkeypatch.setenv("DAINCTL_KERNELS", "ref")


def rgba_frames(transparent: bool) -> list[np.ndarray]:
    frames = []
    for index in range(FRAMES):
        rgba = np.dstack([render_sample_frame(WIDTH, HEIGHT, index), np.full((HEIGHT, WIDTH), 255, np.uint8)])
        if transparent:
            rgba[: HEIGHT // 3, : WIDTH // 3, 3] = 0  # a transparent corner
        frames.append(rgba)
    return frames


def png_folder(path: Path, frames: list[np.ndarray]) -> Path:
    path.mkdir()
    for index, rgba in enumerate(frames):
        cv2.imwrite(str(path / f"{index:03d}.png"), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    return path


def qtrle_clip(path: Path, frames: list[np.ndarray]) -> Path:
    """QuickTime Animation (qtrle) with an ARGB alpha channel."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("qtrle", rate=24)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "argb"
        encode_frames(container, stream, (
            av.VideoFrame.from_ndarray(rgba, format="rgba").reformat(format="argb") for rgba in frames
        ))
    return path


def digest(path: Path) -> list[str]:
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in files]


@pytest.mark.parametrize("make", [png_folder, qtrle_clip], ids=["png-folder", "qtrle-mov"])
def test_transparent_input_is_refused(capsys, tmp_path, make):
    source = make(tmp_path / ("frames" if make is png_folder else "alpha.mov"), rgba_frames(transparent=True))
    before = digest(source)
    out = tmp_path / "out.mp4"
    assert main(["interpolate", str(source), str(out)]) == INPUT_ERROR
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dainctl: error: ") and "Traceback" not in err
    assert "transparen" in lines[0] and "alpha" in lines[0]
    assert digest(source) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [source.name]


@pytest.mark.parametrize("make", [png_folder, qtrle_clip], ids=["png-folder", "qtrle-mov"])
def test_opaque_alpha_is_dropped_and_the_run_goes_ahead(tmp_path, make):
    frames = rgba_frames(transparent=False)
    source = make(tmp_path / ("frames" if make is png_folder else "alpha.mov"), frames)
    with open_input(source) as src:
        decoded = [rgb for _, rgb in src.frames()]
    assert all(rgb.shape == (HEIGHT, WIDTH, 3) for rgb in decoded)
    assert np.array_equal(decoded[0], frames[0][..., :3])  # lossless input: exactly the colours
    out = tmp_path / "out.mp4"
    assert main(["interpolate", str(source), str(out), "--quiet"]) == 0
    with open_input(out) as result:
        assert sum(1 for _ in result.frames()) == (2 * FRAMES if make is qtrle_clip else 2 * FRAMES - 1)


def test_transparency_later_in_a_video_stops_the_run(capsys, tmp_path):
    """Only the last frame is transparent: found while decoding, the run stops and removes its output."""
    frames = rgba_frames(transparent=False)
    frames[-1][..., 3] = 128
    source = qtrle_clip(tmp_path / "late.mov", frames)
    out = tmp_path / "out.mp4"
    assert main(["interpolate", str(source), str(out), "--quiet"]) == INPUT_ERROR
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("dainctl: error: ") and "alpha" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [source.name]
