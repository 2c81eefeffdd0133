"""Decoding input: a video file through PyAV, or a folder of images.

Both kinds of input share one interface (`VideoInput`, `ImageFolderInput`): `info` describes the input
before any frame is consumed, and `frames()` streams `(ts, rgb)` pairs, where `ts` is an exact `Fraction`
of seconds relative to the first frame and `rgb` a contiguous (H, W, 3) array: uint8 for 8-bit input,
uint16 (full 16-bit scale, as FFmpeg's rgb48) when the input has more than 8 bits per sample, so 10-bit
video is interpolated from its 10 bits.

Inputs dainctl cannot handle are refused before any work with one line (`InputError`): frames smaller
than `MIN_SIDE` or larger than `MAX_SIDE` pixels on a side, and an alpha channel that is not fully opaque
(transparency cannot be carried through the YUV output; an all-opaque alpha channel is simply dropped).
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from dainctl.errors import InputError
from dainctl.video import yuv
from dainctl.video.probe import is_mov_family

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

# Frame sizes dainctl accepts. The optical flow needs some pixels to work on (OpenCV's DIS refuses
# images under 12 pixels); a header claiming more than 16384 pixels on a side is damaged or absurd
# (H.264/HEVC stop at 8192/16888, and one such RGB frame would take gigabytes).
MIN_SIDE = 16
MAX_SIDE = 16384

# How far before the end of a file we seek to find the end of the last video frame when the container
# does not record the stream's duration (Matroska, WebM, MPEG-TS). Covers a long GOP at any rate.
_END_SCAN_SECONDS = 20


@dataclass(frozen=True)
class ColorInfo:
    """Colour tags of the input's video stream, as FFmpeg's enum values (AVColorSpace, AVColorRange, ...).

    The defaults mean "unspecified". The writer converts RGB back to YUV with the same matrix and range and
    tags the output with these values, so original and synthesized frames look like the input in a player.
    """

    space: int = 2  # AVCOL_SPC_UNSPECIFIED; 1 = BT.709, 5/6 = BT.601, 9 = BT.2020
    range: int = 0  # AVCOL_RANGE_UNSPECIFIED; 1 = limited (tv), 2 = full (pc)
    primaries: int = 2  # AVCOL_PRI_UNSPECIFIED
    trc: int = 2  # AVCOL_TRC_UNSPECIFIED


@dataclass(frozen=True)
class InputInfo:
    """What is known about an input before decoding it.

    rate: the stream's average (or guessed) frame rate; None for folders and when the container knows none.
    start: seconds of the first video frame's pts (0 for folders).
    duration: seconds from the first frame's start to the end of the last frame; None when unknown
        (always None for folders, whose frames have no time).
    frame_count: exact for folders; for videos the container's count, or duration * rate as an estimate.
    color: colour tags of the video stream (pass to `open_output(color=...)`).
    rotation: counter-clockwise degrees a player turns the frames by (phone video's display matrix);
        frames are yielded as stored, width/height are the stored size. Pass to `open_output(rotation=...)`.
    bit_depth: bits per sample of the source (8, 10, 12, 16); above 8, `frames()` yields uint16 RGB.
        Pass to `open_output(bit_depth=...)` so the output keeps it.
    sample_aspect_ratio: shape of a pixel (anamorphic video, e.g. 4/3); None for square pixels.
        Pass to `open_output(sample_aspect_ratio=...)`.
    time_base: the video stream's timestamp unit (Matroska's 1/1000 s rounds them); None for folders.
    """

    path: Path
    is_folder: bool
    width: int
    height: int
    rate: Fraction | None
    start: Fraction
    duration: Fraction | None
    frame_count: int | None
    audio_streams: int
    subtitle_streams: int
    pix_fmt: str
    bit_depth: int
    color: ColorInfo = ColorInfo()
    rotation: int = 0
    sample_aspect_ratio: Fraction | None = None  # None: square pixels or unknown
    time_base: Fraction | None = None


def open_input(path: str | os.PathLike) -> VideoInput | ImageFolderInput:
    """Open a video file or a folder of images; raise `InputError` with one line if that is impossible."""
    input_path = Path(path)
    if not input_path.exists():
        raise InputError(f"input not found: {input_path}")
    if input_path.is_dir():
        return ImageFolderInput(input_path)
    if not os.access(input_path, os.R_OK):
        raise InputError(f"input is not readable (permission denied): {input_path}")
    if input_path.stat().st_size == 0:
        raise InputError(f"input is an empty file (0 bytes): {input_path}")
    return VideoInput(input_path)


def check_frame_size(width: int, height: int, what: Path) -> None:
    """Raise `InputError` for frames too small to interpolate or too large to be real."""
    if width < MIN_SIDE or height < MIN_SIDE:
        raise InputError(f"frames of {width}x{height} are too small to interpolate (at least {MIN_SIDE}x{MIN_SIDE}): {what}")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise InputError(f"frames of {width}x{height} are larger than {MAX_SIDE} pixels on a side (damaged or absurd header): {what}")


def _alpha_message(path: Path) -> str:
    return (
        f"{path} has transparent pixels (an alpha channel); dainctl cannot carry transparency into its "
        "output: flatten the frames onto a background first"
    )


def _fraction_or_none(value) -> Fraction | None:
    """PyAV gives unset rationals as None or a falsy 0/1; both mean "unknown"."""
    if value is None or value == 0:
        return None
    return Fraction(value.numerator, value.denominator)


# Rates that containers with millisecond timestamps (Matroska, WebM) cannot state exactly; a measured rate
# this close to one of them is taken to be it (19001/317 read back from Matroska is 60000/1001).
_STANDARD_RATES = sorted({Fraction(n) for n in range(1, 241)} | {Fraction(n * 1000, 1001) for n in range(1, 241)})
_SNAP_TOLERANCE = Fraction(1, 10_000)


def snap_to_standard_rate(rate: Fraction) -> Fraction:
    """The integer or NTSC (n*1000/1001) rate within 0.01 % of `rate`, or `rate` itself."""
    for standard in _STANDARD_RATES:
        if abs(rate - standard) <= standard * _SNAP_TOLERANCE:
            return standard
    return rate


def _stream_rate(stream) -> Fraction | None:
    """The stream's frame rate: FFmpeg's guess from timestamps when it agrees with the average rate.

    The average (frames / duration) is off when the last frame is held longer (95 frames over 2 s at 48
    fps averages 47.5); the guess is off for variable-rate video, where the average is the better summary.
    """
    average = _fraction_or_none(stream.average_rate)
    guessed = _fraction_or_none(stream.guessed_rate) or _fraction_or_none(stream.base_rate)
    if average and guessed and abs(average - guessed) <= guessed / 50:
        rate = guessed
    else:
        rate = average or guessed
    return snap_to_standard_rate(rate) if rate else None


def _rotation_degrees(frame) -> int:
    """The frame's display rotation, rounded to a multiple of 90 in [-180, 180) (0 when none)."""
    try:
        degrees = float(frame.rotation or 0)
    except (AttributeError, ValueError, TypeError):
        return 0
    quarter_turns = round(degrees / 90) % 4
    return {0: 0, 1: 90, 2: -180, 3: -90}[quarter_turns]


def is_cover_art(stream) -> bool:
    """True for an attached picture (album art), which FFmpeg exposes as a one-frame video stream."""
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


class VideoInput:
    """A video file opened with PyAV. Use `open_input` to create one."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self._container = av.open(str(path), metadata_errors="replace")
        except av.error.InvalidDataError:
            raise InputError(f"not a video file, or a damaged/truncated one (FFmpeg cannot read it): {path}") from None
        except av.error.PermissionError:
            raise InputError(f"input is not readable (permission denied): {path}") from None
        except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
            raise InputError(f"cannot open {path} (damaged or unsupported?): {_ffmpeg_reason(error)}") from None

        try:
            self._stream = self._pick_video_stream()
            self._stream_position = list(self._container.streams.video).index(self._stream)
            # Frame threading must be chosen before the first decode; it cannot change afterwards.
            self._stream.thread_type = "AUTO"
            self._decoded = self._container.decode(self._stream)
            self._first_frame = self._decode_first_frame()
            self.info = self._describe()
        except BaseException:
            self._container.close()
            raise
        self._consumed = False
        # frames() usually runs on a decode thread; close() may come from another (Ctrl-C, an error
        # elsewhere). Decoding a frame and closing the container never overlap: FFmpeg would crash.
        self._lock = threading.Lock()
        self._closed = False
        self.notices: list[str] = list(self._truncation_notice())
        self._yuv_matrices: dict[tuple[int, bool], np.ndarray] = {}
        self.end_ts: Fraction | None = None
        self.repaired_timestamps = 0  # frames without a pts, or whose pts did not increase: placed by rate

    def _pick_video_stream(self):
        streams = [s for s in self._container.streams.video if not is_cover_art(s)]
        if not streams:
            found = sorted({s.type for s in self._container.streams}) or ["nothing"]
            raise InputError(f"no video stream in {self.path} (found: {', '.join(found)})")
        stream = streams[0]
        if stream.codec_context is None:
            raise InputError(f"cannot decode the video codec of {self.path}")
        width, height = stream.codec_context.width, stream.codec_context.height
        if width and height:  # some containers only know the size once a frame is decoded
            check_frame_size(width, height, self.path)
        return stream

    def _decode_first_frame(self):
        try:
            return next(self._decoded)
        except StopIteration:
            raise InputError(f"no decodable video frames in {self.path}") from None
        except av.FFmpegError as error:
            raise InputError(f"cannot decode video in {self.path} (damaged?): {_ffmpeg_reason(error)}") from None
        except MemoryError:
            raise InputError(f"cannot decode video in {self.path}: its first frame does not fit in memory") from None

    def _describe(self) -> InputInfo:
        stream = self._stream
        frame = self._first_frame
        time_base = Fraction(stream.time_base)
        rate = _stream_rate(stream)
        if frame.pts is not None:
            start = frame.pts * time_base
        elif stream.start_time is not None:
            start = stream.start_time * time_base
        else:
            start = Fraction(0)
        end = self._stream_end(time_base, rate)
        duration = end - start if end is not None and end > start else None
        if stream.frames > 0:
            frame_count = stream.frames
        elif duration is not None and rate is not None:
            frame_count = round(duration * rate)
        else:
            frame_count = None
        check_frame_size(frame.width, frame.height, self.path)
        video_format = frame.format
        bit_depth = max((c.bits for c in video_format.components if not c.is_alpha), default=8)
        self._has_alpha = any(c.is_alpha for c in video_format.components)
        self._deep = bit_depth > 8
        if self._has_alpha and not _is_opaque(frame):
            raise InputError(_alpha_message(self.path))
        color = ColorInfo(
            space=int(frame.colorspace),
            range=int(frame.color_range),
            primaries=int(frame.color_primaries),
            trc=int(frame.color_trc),
        )
        return InputInfo(
            path=self.path,
            is_folder=False,
            width=frame.width,
            height=frame.height,
            rate=rate,
            start=start,
            duration=duration,
            frame_count=frame_count,
            audio_streams=len(self._container.streams.audio),
            subtitle_streams=len(self._container.streams.subtitles),
            pix_fmt=video_format.name,
            bit_depth=bit_depth,
            color=color,
            rotation=_rotation_degrees(frame),
            sample_aspect_ratio=_sample_aspect_ratio(frame, stream),
            time_base=time_base,
        )

    def _truncation_notice(self) -> list[str]:
        """A file cut short still plays up to the cut (Matroska, WebM, MPEG-TS); say what is missing when
        the muxer recorded the stream's full length (FFmpeg writes a DURATION tag per Matroska track)."""
        tag = (self._stream.metadata or {}).get("DURATION")
        if not tag or self.info.duration is None or not self.info.rate:
            return []
        try:
            hours, minutes, seconds = tag.split(":")
            recorded = Fraction(int(hours) * 3600 + int(minutes) * 60) + Fraction(seconds)
        except ValueError:
            return []
        missing = round((recorded - self.info.duration) * self.info.rate)
        if missing < 2:
            return []
        return [
            f"{self.path.name} looks truncated: its header says the video lasts {float(recorded):.3f} s but it "
            f"ends at {float(self.info.duration):.3f} s (about {missing} frames lost); the output covers what is there"
        ]

    def _stream_end(self, time_base: Fraction, rate: Fraction | None) -> Fraction | None:
        """Seconds at which the last video frame stops being displayed, or None if unknown."""
        stream = self._stream
        if stream.duration and is_mov_family(self._container):
            first = stream.start_time or 0
            return (first + stream.duration) * time_base
        # Matroska and friends record no per-stream duration, and what AVI, ASF or MPEG-TS declare is an
        # estimate: read the last packets' timestamps instead.
        return _scan_stream_end(self.path, stream.index, rate)

    def frames(self, *, seek_to: Fraction | None = None, width: int | None = None) -> Iterator[tuple[Fraction, np.ndarray]]:
        """Yield `(ts, rgb)` for every frame in display order; `ts` is seconds after `info.start`.

        Afterwards `end_ts` is when the last frame stops being displayed (the container's end when it
        states one, else the last frame's time plus its duration).

        Timestamps are the frames' pts times the stream's time base, exactly. A frame without pts, or
        whose pts does not increase (broken files), is placed 1/rate after the previous one.

        seek_to: start at the keyframe at or before this time (seconds after `info.start`) instead of
            the first frame; the frames before `seek_to` that the keyframe brings are yielded too. Only
            exact for files whose timestamps need no repair (`dainctl.analysis` knows).
        width: frames scaled to this width (height in proportion, 8-bit RGB): thumbnails for analysis.
        """
        if self._consumed:
            raise RuntimeError("frames() can be iterated only once")
        self._consumed = True
        time_base = Fraction(self._stream.time_base)
        step = 1 / self.info.rate if self.info.rate else Fraction(1, 25)
        start = self.info.start
        previous_ts: Fraction | None = None
        previous_duration = step
        frame = self._first_frame
        self._first_frame = None
        if seek_to is not None and seek_to > 0:
            frame = self._seek(seek_to, time_base)
        thumbnail = None if width is None else (width, max(2, round(self.info.height * width / self.info.width / 2) * 2))
        index = 0
        while frame is not None:
            if frame.pts is None:
                ts = Fraction(0) if previous_ts is None else previous_ts + step
                self.repaired_timestamps += 1
            else:
                ts = frame.pts * time_base - start
                if previous_ts is not None and ts <= previous_ts:
                    self.repaired_timestamps += 1
                    ts = previous_ts + step
            with self._lock:
                if self._closed:
                    return
                rgb = self._to_rgb(frame) if thumbnail is None else self._thumbnail(frame, thumbnail)
            previous_duration = frame.duration * time_base if frame.duration else step
            previous_ts = ts
            yield ts, rgb
            index += 1
            with self._lock:
                if self._closed:
                    return  # closed from another thread: stop quietly, the caller is already failing
                try:
                    frame = next(self._decoded, None)
                except av.FFmpegError as error:
                    raise InputError(
                        f"input is damaged: video frame {index} of {self.path} cannot be decoded "
                        f"({_ffmpeg_reason(error)}); nothing was written"
                    ) from None
        if previous_ts is not None:
            declared_end = self.info.duration
            # The container's own end is exact (MP4 edit list, Matroska's last block); a decoded frame's
            # duration is not: MP4 packet durations follow decode order.
            if declared_end is not None and declared_end > previous_ts:
                self.end_ts = declared_end
            else:
                self.end_ts = previous_ts + previous_duration

    def _seek(self, seek_to: Fraction, time_base: Fraction):
        """Position the decoder at a keyframe at or before `seek_to`; returns its first frame. A seek that
        fails or lands after the target (some containers seek only approximately) is retried from 1 s
        and 5 s earlier, then the file is decoded from its start."""
        start = self.info.start
        for back in (Fraction(0), Fraction(1), Fraction(5)):
            target = seek_to - back
            if target <= 0:
                break
            with self._lock:
                try:
                    self._container.seek(int((target + start) / time_base), stream=self._stream, backward=True,
                                         any_frame=False)
                    self._decoded = self._container.decode(self._stream)
                    frame = next(self._decoded, None)
                except av.FFmpegError:
                    break
            if frame is not None and frame.pts is not None and frame.pts * time_base - start <= seek_to:
                return frame
        with self._lock:  # from the start, in a fresh demuxer: a failed seek can leave one anywhere
            self._container.close()
            self._container = av.open(str(self.path), metadata_errors="replace")
            self._stream = self._container.streams.video[self._stream_position]
            self._stream.thread_type = "AUTO"
            self._decoded = self._container.decode(self._stream)
            return next(self._decoded, None)

    def _thumbnail(self, frame, size: tuple[int, int]) -> np.ndarray:
        if self._has_alpha and not _is_opaque(frame):
            raise InputError(_alpha_message(self.path))
        pix_fmt = frame.format.name
        if pix_fmt in yuv.THUMBNAIL_PIX_FMTS and frame.colorspace in yuv._LUMA_WEIGHTS:
            full = frame.color_range == yuv.FULL_RANGE or pix_fmt.startswith("yuvj")
            key = (frame.colorspace, full)
            if key not in self._yuv_matrices:
                self._yuv_matrices[key] = yuv.yuv_to_rgb_matrix(frame.colorspace, yuv.FULL_RANGE if full else 1)
            return yuv.planar_thumbnail(frame, size[0], size[1], self._yuv_matrices[key])
        small = frame.reformat(width=size[0], height=size[1], format="rgb24", interpolation="AREA",
                               src_color_range=frame.color_range)
        return np.ascontiguousarray(small.to_ndarray())

    def _to_rgb(self, frame) -> np.ndarray:
        pix_fmt = frame.format.name
        if self._has_alpha and not _is_opaque(frame):
            raise InputError(_alpha_message(self.path))
        if self._deep:
            # rgb48: 10/12-bit samples scaled to the full 16-bit range, with the frame's own range.
            rgb = frame.to_ndarray(format="rgb48le", src_color_range=frame.color_range)
            return np.ascontiguousarray(rgb)
        if yuv.decodes_fast(pix_fmt, frame.colorspace, frame.width, frame.height):
            full = frame.color_range == yuv.FULL_RANGE or pix_fmt.startswith("yuvj")
            key = (frame.colorspace, full)
            if key not in self._yuv_matrices:
                self._yuv_matrices[key] = yuv.yuv_to_rgb_matrix(frame.colorspace, yuv.FULL_RANGE if full else 1)
            return yuv.planar_yuv_to_rgb(frame, self._yuv_matrices[key])
        # The frame's own range is passed so full-range (JPEG-style) sources are not crushed or clipped.
        rgb = frame.to_ndarray(format="rgb24", src_color_range=frame.color_range)
        return np.ascontiguousarray(rgb)

    def close(self) -> None:
        """Release the decoder and the file (safe while another thread is in `frames()`; it then stops)."""
        with self._lock:
            self._closed = True
            self._container.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def _ffmpeg_reason(error: Exception) -> str:
    """FFmpeg's reason without PyAV's errno and function-name decoration."""
    return getattr(error, "strerror", None) or str(error)


def _is_opaque(frame) -> bool:
    """Whether every pixel of a frame with an alpha channel is fully opaque."""
    rgba = frame.to_ndarray(format="rgba64le" if any(c.bits > 8 for c in frame.format.components) else "rgba")
    return bool((rgba[..., 3] == np.iinfo(rgba.dtype).max).all())


def _sample_aspect_ratio(frame, stream) -> Fraction | None:
    """The pixel shape from the frame, else the stream; None for square or unknown."""
    for source in (frame, stream.codec_context, stream):
        value = _fraction_or_none(getattr(source, "sample_aspect_ratio", None))
        if value is not None:
            return None if value == 1 else value
    return None


def _scan_stream_end(path: Path, stream_index: int, rate: Fraction | None) -> Fraction | None:
    """End of the last packet of one stream, found by demuxing (not decoding) the file's tail."""
    try:
        with av.open(str(path), metadata_errors="replace") as container:
            stream = container.streams[stream_index]
            time_base = Fraction(stream.time_base)
            if container.duration and container.duration > _END_SCAN_SECONDS * av.time_base:
                target = container.duration - _END_SCAN_SECONDS * av.time_base
                try:
                    container.seek(target, backward=True, any_frame=False)
                except av.FFmpegError:
                    container.seek(0)
            end = None
            for packet in container.demux(stream):
                if packet.pts is None:
                    continue
                frame_length = packet.duration or (round(1 / (rate * time_base)) if rate else 0)
                packet_end = (packet.pts + frame_length) * time_base
                if end is None or packet_end > end:
                    end = packet_end
            return end
    except av.FFmpegError:
        return None


def _natural_key(name: str) -> list:
    """Sort key that orders embedded numbers by value: frame2 < frame10."""
    return [(0, int(part), part) if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", name)]


def list_image_files(folder: Path) -> list[Path]:
    """Image files of a folder (not hidden, known extensions), in natural sort order."""
    files = [
        entry
        for entry in folder.iterdir()
        if entry.suffix.lower() in IMAGE_EXTENSIONS and not entry.name.startswith(".") and entry.is_file()
    ]
    return sorted(files, key=lambda entry: _natural_key(entry.name))


def read_image_rgb(path: Path, *, deep: bool = False) -> np.ndarray:
    """Read an image file as contiguous (H, W, 3) RGB: uint8, or uint16 with `deep` (8-bit images scaled
    by 257). Grey is converted; an opaque alpha channel is dropped and a transparent one refused."""
    import cv2

    try:
        encoded = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise InputError(f"cannot read image {path}: {error.strerror or error}") from None
    image = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED) if encoded.size else None
    if image is None:
        raise InputError(f"cannot decode image {path}")
    if image.dtype not in (np.uint8, np.uint16):
        raise InputError(f"unsupported image sample type {image.dtype} in {path}")
    if image.ndim == 3 and image.shape[2] == 4 and not (image[..., 3] == np.iinfo(image.dtype).max).all():
        raise InputError(_alpha_message(path))
    if deep and image.dtype == np.uint8:
        image = image.astype(np.uint16) * 257
    elif not deep and image.dtype == np.uint16:
        image = ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if image.ndim == 2:
        return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_GRAY2RGB))
    if image.shape[2] == 4:
        return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGRA2RGB))
    return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))


def _image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) read from a PNG, JPEG or BMP header without decoding; None for other files."""
    try:
        with open(path, "rb") as file:
            head = file.read(32)
            if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
                return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
            if head[:2] == b"BM" and len(head) >= 26:
                width = int.from_bytes(head[18:22], "little", signed=True)
                height = int.from_bytes(head[22:26], "little", signed=True)
                return abs(width), abs(height)
            if head[:2] == b"\xff\xd8":
                return _jpeg_size(file)
    except OSError as error:
        raise InputError(f"cannot read image {path}: {error.strerror or error}") from None
    return None


# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic); they carry the image size.
_JPEG_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(file) -> tuple[int, int] | None:
    file.seek(2)
    while True:
        byte = file.read(1)
        while byte == b"\xff":
            marker = file.read(1)
            if marker != b"\xff":
                break
        else:
            return None
        if not marker:
            return None
        code = marker[0]
        if code in (0xD8, 0x01) or 0xD0 <= code <= 0xD7:
            continue  # markers without a length field
        length_bytes = file.read(2)
        if len(length_bytes) < 2:
            return None
        length = int.from_bytes(length_bytes, "big")
        if code in _JPEG_SOF_MARKERS:
            body = file.read(5)
            if len(body) < 5:
                return None
            return int.from_bytes(body[3:5], "big"), int.from_bytes(body[1:3], "big")
        file.seek(length - 2, os.SEEK_CUR)


def _check_same_size(files: list[Path], width: int, height: int) -> None:
    """Raise `InputError` naming the first image whose header gives a different size."""
    for file in files[1:]:
        size = _image_size(file)
        if size is not None and size != (width, height):
            raise InputError(
                f"images differ in size: {file.name} is {size[0]}x{size[1]}, "
                f"{files[0].name} is {width}x{height}"
            )


def _image_bit_depth(path: Path) -> int:
    """16 for a 16-bit PNG/TIFF, else 8 (read from the PNG header when there is one, else by decoding)."""
    import cv2

    try:
        with open(path, "rb") as file:
            head = file.read(25)
    except OSError as error:
        raise InputError(f"cannot read image {path}: {error.strerror or error}") from None
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 25:
        return 16 if head[24] == 16 else 8
    if path.suffix.lower() in (".jpg", ".jpeg", ".bmp"):
        return 8
    image = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    return 16 if image is not None and image.dtype == np.uint16 else 8


class ImageFolderInput:
    """A folder of images read in natural sort order; frame i has ts = i. Use `open_input`."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self._files = list_image_files(path)
        except OSError as error:
            raise InputError(f"cannot list folder {path}: {error.strerror or error}") from None
        if not self._files:
            kinds = "/".join(ext.lstrip(".") for ext in IMAGE_EXTENSIONS)
            raise InputError(f"no images ({kinds}) in folder {path}")
        first_size = _image_size(self._files[0])
        if first_size is not None:  # refuse a 100000x100000 header before decoding it
            check_frame_size(*first_size, self._files[0])
        bit_depth = _image_bit_depth(self._files[0])
        self._deep = bit_depth > 8
        self._first_image = read_image_rgb(self._files[0], deep=self._deep)
        height, width = self._first_image.shape[:2]
        check_frame_size(width, height, self._files[0])
        # Header sizes are cheap to read, so a mixed folder fails before any work is done; formats
        # without a parsed header (TIFF) are still checked as they are decoded.
        _check_same_size(self._files, width, height)
        self.info = InputInfo(
            path=path,
            is_folder=True,
            width=width,
            height=height,
            rate=None,
            start=Fraction(0),
            duration=None,
            frame_count=len(self._files),
            audio_streams=0,
            subtitle_streams=0,
            pix_fmt="rgb48le" if self._deep else "rgb24",
            bit_depth=bit_depth,
        )
        self.end_ts: Fraction | None = None
        self.repaired_timestamps = 0
        self.notices: list[str] = []

    @property
    def files(self) -> list[Path]:
        """The image files in the order they are read."""
        return list(self._files)

    def frames(self, *, seek_to: Fraction | None = None, width: int | None = None) -> Iterator[tuple[Fraction, np.ndarray]]:
        """Yield `(Fraction(i), rgb)` for the i-th image; raise `InputError` if an image's size differs.

        seek_to: start at image `floor(seek_to)`; width: images scaled to this width (8-bit thumbnails)."""
        expected = (self.info.height, self.info.width)
        first = max(0, math.floor(seek_to)) if seek_to is not None else 0
        for index, file in enumerate(self._files[first:], start=first):
            if index == 0 and self._first_image is not None:
                rgb, self._first_image = self._first_image, None
            else:
                rgb = read_image_rgb(file, deep=self._deep)
            if rgb.shape[:2] != expected:
                raise InputError(
                    f"images differ in size: {file.name} is {rgb.shape[1]}x{rgb.shape[0]}, "
                    f"{self._files[0].name} is {expected[1]}x{expected[0]}"
                )
            if width is not None:
                import cv2

                height = max(2, round(expected[0] * width / expected[1] / 2) * 2)
                rgb = cv2.resize(rgb if rgb.dtype == np.uint8 else (rgb >> 8).astype(np.uint8), (width, height),
                                 interpolation=cv2.INTER_AREA)
            yield Fraction(index), rgb
        self.end_ts = Fraction(len(self._files))

    def close(self) -> None:
        """Nothing to release; present for symmetry with `VideoInput`."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
