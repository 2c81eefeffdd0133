"""Shared fixtures: the shared data folder, small generated clips and a PyAV probe."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test when that folder is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return path


@dataclass
class Probe:
    frames: int
    rate: Fraction
    video_duration: Fraction
    audio_durations: list[Fraction]
    width: int
    height: int


def probe(path: Path) -> Probe:
    """Count frames by decoding, and read stream durations from packet timestamps (not headers)."""
    import av

    with av.open(str(path)) as container:
        video = container.streams.video[0]
        video_index = video.index
        audio_indices = [s.index for s in container.streams.audio]
        rate = video.average_rate
        width, height = video.codec_context.width, video.codec_context.height
        ends: dict[int, Fraction] = {}
        starts: dict[int, Fraction] = {}
        for packet in container.demux():
            if packet.size == 0 or packet.pts is None:
                continue
            tb = packet.time_base
            start = Fraction(packet.pts) * tb
            end = start + Fraction(packet.duration or 0) * tb
            idx = packet.stream.index
            starts[idx] = min(starts.get(idx, start), start)
            ends[idx] = max(ends.get(idx, end), end)
    with av.open(str(path)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    audio = [ends[i] - starts[i] for i in audio_indices if i in ends]
    return Probe(frames, Fraction(rate) if rate else Fraction(0), ends[video_index] - starts[video_index], audio, width, height)


@pytest.fixture(scope="session")
def clip_factory(tmp_path_factory):
    """make(width, height, frames, rate, audio, ext) -> path of a cached synthetic clip."""
    from dainctl.video import make_sample_clip

    cache: dict[tuple, Path] = {}
    root = tmp_path_factory.mktemp("clips")

    def make(width=160, height=96, frames=12, rate=Fraction(24), audio=True, ext=".mp4") -> Path:
        key = (width, height, frames, rate, audio, ext)
        if key not in cache:
            path = root / f"clip_{width}x{height}_{frames}_{str(rate).replace('/', '-')}_{int(audio)}{ext}"
            make_sample_clip(path, width=width, height=height, frames=frames, rate=Fraction(rate), audio=audio)
            cache[key] = path
        return cache[key]

    return make


def decode_rgb(path: Path) -> list:
    """Every frame of a video as uint8 RGB arrays, or the PNGs of a folder in name order."""
    import av
    import cv2

    if path.is_dir():
        return [cv2.imread(str(p))[:, :, ::-1] for p in sorted(path.glob("*.png"))]
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def encode_frames(container, stream, frames) -> None:
    """Encode PyAV video frames in order (pts = their index) into `stream` and flush the encoder."""
    for index, frame in enumerate(frames):
        frame.pts = index
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
