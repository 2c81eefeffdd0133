"""Synthetic sample clips: textured content in known motion, with an audio tone of the same length.

`render_sample_frame` draws the scene at any continuous time, so the exact in-between frame of a sample
clip is available as ground truth. The scene is a textured background panning by a sub-pixel amount per
frame and a textured disk moving in a straight line that bounces off the frame edges.
"""

from __future__ import annotations

import math
import os
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import numpy as np

from dainctl.video.writer import ImageFolderOutput, is_folder_output, movie_timescale

# Motion in pixels per frame: sub-pixel for the background so interpolators cannot get away with
# integer shifts, larger for the object so occlusions appear at its edges.
BACKGROUND_VELOCITY = (0.6, 0.35)
OBJECT_VELOCITY = (2.3, -1.4)
# Extra background texture around the frame; the pan turns back after crossing it.
_PAN_MARGIN = 96

AUDIO_SAMPLE_RATE = 48_000
TONE_HZ = 440.0
_AUDIO_CHUNK = 1024


@lru_cache(maxsize=8)
def _texture(height: int, width: int, seed: int) -> np.ndarray:
    """Colourful multi-scale noise, float32 (height, width, 3) in [0, 255]."""
    import cv2

    rng = np.random.default_rng(seed)
    texture = np.zeros((height, width, 3), np.float32)
    for cell, weight in ((32, 0.5), (8, 0.3), (2, 0.2)):
        coarse = rng.random((max(2, height // cell + 2), max(2, width // cell + 2), 3), dtype=np.float32)
        texture += weight * cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    texture -= texture.min()
    texture *= 255.0 / max(float(texture.max()), 1e-6)
    return texture


def _bounce(position: float, low: float, high: float) -> float:
    """Fold a position moving in a straight line back and forth between low and high."""
    span = high - low
    if span <= 0:
        return low
    phase = (position - low) % (2 * span)
    return low + (phase if phase <= span else 2 * span - phase)


def sample_object_center(width: int, height: int, t: float) -> tuple[float, float]:
    """Centre (x, y) of the moving disk at time t (in frames)."""
    radius = _object_radius(width, height)
    x = _bounce(radius + 1 + OBJECT_VELOCITY[0] * t + width * 0.2, radius, width - radius)
    y = _bounce(height * 0.6 + OBJECT_VELOCITY[1] * t, radius, height - radius)
    return x, y


def _object_radius(width: int, height: int) -> float:
    return max(2.0, min(width, height) / 6)


def render_sample_frame(width: int, height: int, t: float, seed: int = 0) -> np.ndarray:
    """The sample scene at time t (frames, may be fractional) as uint8 (height, width, 3) RGB."""
    import cv2

    background = _texture(height + _PAN_MARGIN, width + _PAN_MARGIN, seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    # The background pans: pixel (x, y) shows texture point (x + v t, y + v t), turning back at the margin.
    shift_x = _bounce(BACKGROUND_VELOCITY[0] * t, 0, _PAN_MARGIN - 2)
    shift_y = _bounce(BACKGROUND_VELOCITY[1] * t, 0, _PAN_MARGIN - 2)
    frame = cv2.remap(
        background, xs + np.float32(shift_x), ys + np.float32(shift_y), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )

    radius = _object_radius(width, height)
    size = int(math.ceil(2 * radius)) + 4
    object_texture = _texture(size, size, seed + 1)
    center_x, center_y = sample_object_center(width, height, t)
    # The disk's texture moves with it; its edge is anti-aliased over one pixel.
    local_x = xs - np.float32(center_x) + np.float32(size / 2)
    local_y = ys - np.float32(center_y) + np.float32(size / 2)
    disk = cv2.remap(object_texture, local_x, local_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    distance = np.hypot(xs - np.float32(center_x), ys - np.float32(center_y))
    coverage = np.clip(radius + 0.5 - distance, 0.0, 1.0)[..., None]
    frame = frame * (1 - coverage) + disk * coverage
    return np.clip(frame + 0.5, 0, 255).astype(np.uint8)


def sample_tone(samples: int, sample_rate: int = AUDIO_SAMPLE_RATE, start: int = 0) -> np.ndarray:
    """A stereo float32 (2, samples) tone: TONE_HZ on the left, an octave up on the right."""
    time = (np.arange(start, start + samples, dtype=np.float64)) / sample_rate
    left = 0.3 * np.sin(2 * np.pi * TONE_HZ * time)
    right = 0.2 * np.sin(2 * np.pi * 2 * TONE_HZ * time)
    return np.stack([left, right]).astype(np.float32)


def make_sample_clip(
    path: str | os.PathLike,
    width: int = 320,
    height: int = 240,
    frames: int = 48,
    rate: Fraction = Fraction(24),
    audio: bool = True,
    seed: int = 0,
    *,
    codec: str | None = None,
    crf: int = 12,
    cuts: tuple[int, ...] = (),
    gop: int | None = None,
) -> Path:
    """Write a synthetic clip: `frames` frames at `rate`, with a tone of exactly frames/rate seconds.

    cuts: frame numbers where another scene (the next seed's texture) starts: scene cuts for tests.
    gop: a keyframe at least every `gop` frames (x264/x265), so that seeking lands near its target.

    A path with a video extension gives a video file (libx264 + AAC for mp4/mov/mkv, VP9 + Opus for webm;
    `codec` overrides the video encoder); any other path gives a folder of PNG frames 00000000.png, ...
    (no audio). Returns the path.
    """
    output_path = Path(path)
    rate = Fraction(rate)
    if frames < 1 or rate <= 0:
        raise ValueError(f"need at least one frame and a positive rate, got {frames} at {rate}")
    if is_folder_output(output_path):
        with ImageFolderOutput(output_path, width=width, height=height) as folder:
            for index in range(frames):
                folder.write(render_sample_frame(width, height, index, seed + 7 * sum(index >= c for c in cuts)), Fraction(index))
        return output_path

    time_base = 1 / rate
    webm = output_path.suffix.lower() == ".webm"
    if codec is None:
        codec = "libvpx-vp9" if webm else "libx264"
    container_options = {}
    if output_path.suffix.lower() in (".mp4", ".mov", ".m4v"):
        timescale = movie_timescale(rate, [AUDIO_SAMPLE_RATE] if audio else [])
        if timescale is not None:
            container_options["movie_timescale"] = str(timescale)
    with av.open(str(output_path), "w", container_options=container_options) as container:
        video = container.add_stream(codec, rate=rate)
        video.width, video.height = width, height
        video.pix_fmt = "yuv420p"
        video.codec_context.time_base = time_base
        if codec.startswith("libx26"):
            video.codec_context.options = {"crf": str(crf), "preset": "veryfast", **({"g": str(gop)} if gop else {})}
        elif codec.startswith("libvpx"):
            video.codec_context.options = {"crf": str(crf), "b": "0", "deadline": "realtime", "cpu-used": "8"}
        tone = None
        if audio:
            audio_codec = "libopus" if webm else "aac"
            tone = container.add_stream(audio_codec, rate=AUDIO_SAMPLE_RATE)
            tone.codec_context.layout = "stereo"
            tone.codec_context.time_base = Fraction(1, AUDIO_SAMPLE_RATE)
        total_samples = round(frames * time_base * AUDIO_SAMPLE_RATE)
        samples_written = 0

        def write_audio_until(sample: int) -> None:
            nonlocal samples_written
            while tone is not None and samples_written < min(sample, total_samples):
                count = min(_AUDIO_CHUNK, total_samples - samples_written)
                chunk = av.AudioFrame.from_ndarray(sample_tone(count, start=samples_written), format="fltp", layout="stereo")
                chunk.sample_rate = AUDIO_SAMPLE_RATE
                chunk.pts = samples_written
                chunk.time_base = Fraction(1, AUDIO_SAMPLE_RATE)
                container.mux(tone.encode(chunk))
                samples_written += count

        def mux_video(packets) -> None:
            for packet in packets:
                packet.duration = 1  # one tick of 1/rate: every frame lasts one frame period
                container.mux(packet)

        for index in range(frames):
            scene_seed = seed + 7 * sum(index >= c for c in cuts)
            frame = av.VideoFrame.from_ndarray(render_sample_frame(width, height, index, scene_seed), format="rgb24")
            frame.pts = index
            frame.time_base = time_base
            mux_video(video.encode(frame))
            write_audio_until(round((index + 1) * time_base * AUDIO_SAMPLE_RATE))
        mux_video(video.encode(None))
        write_audio_until(total_samples)
        if tone is not None:
            container.mux(tone.encode(None))
    return output_path
