"""Encoding output: a video file through PyAV, or a folder of numbered PNG images.

The caller gives every frame's timestamp (`Fraction` seconds, first frame at 0) and, at `close`, the time
at which the last frame stops being displayed. The writer never invents timestamps: a frame's pts is its
timestamp in the encoder's time base (1/rate), and each frame's duration is the gap to the next one, so the
container's video duration is exactly the `end_ts` the caller asked for.
"""

from __future__ import annotations

import math
import os
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from dainctl.errors import OutputError, UsageError
from dainctl.paths import is_video_path
from dainctl.video import yuv
from dainctl.video.audio import AUDIO_MODES, StreamCarrier, container_accepts
from dainctl.video.probe import is_mov_family
from dainctl.video.reader import ColorInfo, VideoInput
from dainctl.video.yuv import rgb_to_planar_yuv

# x264 at CRF 18 on 120 frames of cockatoo.mp4 (720p), CPU seconds / file size, from
# `python benchmarks/preset_timing.py --frames 120`: ultrafast 1.4 s / 3570 KiB, superfast 2.7 / 3196,
# veryfast 4.0 / 1650, faster 4.6 / 1647, medium 8.2 / 1571. veryfast costs half of medium for 5 % more
# bits; the presets below it double the file. Encoding is a large share of a 2-core run.
DEFAULT_PRESET = "veryfast"
DEFAULT_CRF = 18

# Encoders whose quality is set with -crf, and those that also take a speed -preset.
_CRF_ENCODERS = {"libx264", "libx264rgb", "libx265", "libvpx", "libvpx-vp9", "libaom-av1", "libsvtav1"}
_PRESET_ENCODERS = {"libx264", "libx264rgb", "libx265", "libsvtav1"}

_UNSPECIFIED_COLORSPACE = 2


def is_folder_output(path: str | os.PathLike) -> bool:
    """An output path names an image folder unless it has a video extension (`dainctl.paths`' rule)."""
    return not is_video_path(Path(path))


def open_output(
    path: str | os.PathLike,
    *,
    width: int,
    height: int,
    rate: Fraction,
    codec: str | None = None,
    crf: int | None = DEFAULT_CRF,
    preset: str | None = DEFAULT_PRESET,
    pix_fmt: str | None = None,
    audio_from: VideoInput | None = None,
    audio: str = "copy",
    stretch: Fraction = Fraction(1),
    color: ColorInfo | None = None,
    rotation: int = 0,
    bit_depth: int = 8,
    sample_aspect_ratio: Fraction | None = None,
    folder: bool | None = None,
    options: dict[str, str] | None = None,
) -> VideoOutput | ImageFolderOutput:
    """Open a video file (container chosen by the extension) or an image folder for writing.

    audio_from: the input whose audio and subtitle streams are carried over ("copy" or "stretch" by
        `stretch`, or "drop"); ignored for folders.
    color: colour tags to convert and tag with (normally `src.info.color`); None leaves them unspecified.
    rotation: display rotation (normally `src.info.rotation`): stored in a video's display matrix; an image
        folder gets its frames turned upright instead.
    pix_fmt: None follows the source's `bit_depth`: yuv420p10le for 10-bit and deeper sources when the
        encoder has it (libx264, libx265), else yuv420p.
    bit_depth: bits per sample of the source (`src.info.bit_depth`); frames may be uint8 or uint16 either
        way, and are converted to the output's depth.
    sample_aspect_ratio: pixel shape to tag the video with (`src.info.sample_aspect_ratio`).
    folder: force folder (True) or video (False) output; None decides with `is_folder_output`.
    options: extra encoder options (FFmpeg names, string values), applied after crf/preset.
    Raises `UsageError` for unknown or unfitting codec/pix_fmt/container and `OutputError` when the
    location cannot be written.
    """
    if width <= 0 or height <= 0:
        raise UsageError(f"output size must be positive, got {width}x{height}")
    rate = Fraction(rate)
    if rate <= 0:
        raise UsageError(f"output frame rate must be positive, got {rate}")
    if audio not in AUDIO_MODES:
        raise UsageError(f"audio must be one of {', '.join(AUDIO_MODES)}, got {audio!r}")
    if Fraction(stretch) <= 0:
        raise UsageError(f"audio stretch must be positive, got {stretch}")
    if folder is None:
        folder = is_folder_output(path)
    if rotation % 90:
        raise UsageError(f"rotation must be a multiple of 90 degrees, got {rotation}")
    if folder:
        return ImageFolderOutput(Path(path), width=width, height=height, rotation=rotation)
    if codec is None:
        codec = default_video_codec(path)
    if pix_fmt is None:
        pix_fmt = default_pix_fmt(codec, bit_depth)
    return VideoOutput(
        Path(path),
        width=width,
        height=height,
        rate=rate,
        codec=codec,
        crf=crf,
        preset=preset,
        pix_fmt=pix_fmt,
        audio_from=audio_from,
        audio=audio,
        stretch=Fraction(stretch),
        color=color,
        rotation=rotation,
        sample_aspect_ratio=sample_aspect_ratio,
        options=options or {},
    )


def default_video_codec(path: str | os.PathLike) -> str:
    """The encoder used when none is asked for: H.264, or VP9 for WebM (which cannot hold H.264)."""
    return "libvpx-vp9" if Path(path).suffix.lower() == ".webm" else "libx264"


def default_pix_fmt(codec: str, bit_depth: int) -> str:
    """yuv420p, or yuv420p10le for a source deeper than 8 bits when the encoder can write it."""
    if bit_depth > 8:
        try:
            formats = {f.name for f in av.Codec(codec, "w").video_formats or ()}
        except ValueError:
            formats = set()  # an unknown encoder is reported by VideoOutput with one line
        if "yuv420p10le" in formats:
            return "yuv420p10le"
    return "yuv420p"


def _bits_per_sample(video_format: av.VideoFormat) -> int:
    return max((c.bits for c in video_format.components if not c.is_alpha), default=8)


def movie_timescale(rate: Fraction, sample_rates: list[int]) -> int | None:
    """An MP4 movie timescale in which the video's frame times and every audio sample time are exact.

    Edit lists are written in the movie timescale (1000 by default), so at 1 ms resolution a 30000/1001 fps
    video or an audio track of 19219 samples would end up to a millisecond away from where it really ends.
    None when no such timescale fits the format's 32-bit field comfortably.
    """
    timescale = math.lcm(1000, Fraction(rate).numerator, *[r for r in sample_rates if r])
    return timescale if timescale <= 10_000_000 else None


def _chroma_alignment(video_format: av.VideoFormat) -> tuple[int, int]:
    """How many luma pixels share one chroma sample horizontally and vertically (2, 2 for yuv420p)."""
    probe = 64
    return probe // video_format.chroma_width(probe), probe // video_format.chroma_height(probe)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


class VideoMuxer:
    """The container side of a video file being written: the video stream's packets in order (the last
    one in decode order held back until `close`, which may lengthen it so that the track ends exactly
    at `end_ts`), the input's audio and subtitle streams carried alongside (`StreamCarrier`), the MOV
    family's timescale. `VideoOutput` feeds it packets it encodes; `dainctl.video.join` packets it
    copies from finished segments."""

    path: Path
    rate: Fraction
    time_base: Fraction

    def _init_muxer(self, path: Path, rate: Fraction) -> None:
        self.path = path
        self.rate = rate
        self.time_base = 1 / rate
        self.notices: list[str] = []
        self._closed = False
        self._held_packet: av.Packet | None = None
        self._first_video_timestamps: tuple[int, int] | None = None
        self._carrier: StreamCarrier | None = None
        if not path.parent.is_dir():
            raise OutputError(f"output folder does not exist: {path.parent}")
        try:
            self._container = av.open(str(path), "w")
        except ValueError:
            raise UsageError(f"unknown output container for extension {path.suffix!r}: {path.name}") from None
        except (av.FFmpegError, OSError) as error:
            raise OutputError(f"cannot create {path}: {_reason(error)}") from None

    def _start_muxing(self, stream, rotation: int, audio_from, audio: str, stretch: Fraction, before_start=None) -> None:
        """After the video stream is added: rotation, the carried streams, then the container's header."""
        self._stream = stream
        if rotation % 360:
            stream.set_display_rotation(rotation)
        if audio_from is not None and isinstance(audio_from, VideoInput):
            info = audio_from.info
            if info.audio_streams or info.subtitle_streams:
                self._carrier = StreamCarrier(audio_from.path, self._container, start=info.start, audio=audio, stretch=stretch)
                self.notices.extend(self._carrier.notices)
        if before_start is not None:
            before_start()
        if is_mov_family(self._container):
            sample_rates = [s.codec_context.sample_rate for s in self._container.streams.audio]
            timescale = movie_timescale(self.rate, sample_rates)
            if timescale is not None:
                self._container.container_options["movie_timescale"] = str(timescale)
        try:
            self._container.start_encoding()
        except (av.FFmpegError, OSError) as error:
            raise OutputError(f"cannot write {self.path}: {_reason(error)}") from None

    @property
    def carried_until(self) -> Fraction | None:
        """Output time up to which audio/subtitle packets have been muxed (they follow the video's progress)."""
        return self._carrier.carried_until if self._carrier is not None else None

    @property
    def audio_plan(self) -> list:
        """How each audio stream written was carried (`dainctl.video.audio.CarriedAudio`), in output order."""
        return list(self._carrier.audio_plan) if self._carrier is not None else []

    @property
    def subtitles(self) -> dict:
        """Subtitle streams carried ("subrip copied", "ass converted to mov_text") and dropped (codecs)."""
        if self._carrier is None:
            return {"carried": [], "dropped": []}
        return {"carried": list(self._carrier.subtitles_carried), "dropped": list(self._carrier.subtitles_dropped)}

    @property
    def audio_streams(self) -> int:
        """Number of audio streams written (copied or stretched)."""
        return self._carrier.audio_streams if self._carrier is not None else 0

    def _carry_until(self, ts: Fraction) -> None:
        if self._carrier is not None:
            self._carrier.carry_until(self._container, Fraction(ts))

    def _mux_video(self, packet: av.Packet) -> None:
        if self._first_video_timestamps is None:
            self._first_video_timestamps = (packet.pts, packet.dts if packet.dts is not None else packet.pts)
        # The packet last in decode order is held back until close(), which may lengthen it.
        if self._held_packet is not None:
            self._container.mux(self._held_packet)
        self._held_packet = packet

    def _mux_last_packet(self, end_pts: int) -> None:
        packet = self._held_packet
        self._held_packet = None
        if packet is None:
            return
        if is_mov_family(self._container) and packet.dts is not None:
            # MP4/MOV store decode-order sample durations, and the track lasts from the first packet's dts to
            # the last packet's dts + duration (shown from the first pts, as the edit list says). With
            # B-frames the last packet in decode order is not the last one displayed, so its own duration
            # does not end the track at end_pts; set it so that it does.
            first_pts, first_dts = self._first_video_timestamps
            packet_end = round(end_pts * self.time_base / packet.time_base)
            packet.duration = packet_end - first_pts - (packet.dts - first_dts)
        self._container.mux(packet)

    def _finish_muxing(self, end_pts: int) -> None:
        """The last video packet (ending the track at `end_pts`, in 1/rate ticks), the carried streams'
        rest, the trailer."""
        try:
            self._mux_last_packet(end_pts)
            if self._carrier is not None:
                self._carrier.finish(self._container)
            self._container.close()
        except (av.FFmpegError, OSError) as error:
            self.abort()
            raise OutputError(f"cannot finish {self.path}: {_reason(error)}") from None
        finally:
            if self._carrier is not None:
                self._carrier.close()
        self._closed = True

    def abort(self) -> None:
        """Stop without finishing the file (on error or Ctrl-C); the caller deletes it. Waits for a frame
        being encoded on another thread; a later write() fails instead of touching the closed file."""
        lock = getattr(self, "_lock", None)
        if lock is None:
            self._abort()
            return
        with lock:
            self._abort()

    def _abort(self) -> None:
        self._closed = True
        self._pending = None
        for resource in (getattr(self, "_container", None), self._carrier):
            if resource is None:
                continue
            try:
                resource.close()
            except Exception:  # noqa: BLE001 - the file is being thrown away; nothing useful to report
                pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc_info):
        if not self._closed:
            self.abort()



class VideoOutput(VideoMuxer):
    """A video file being encoded. Use `open_output` to create one.

    width, height: the encoded size; when the pixel format subsamples chroma (yuv420p) an odd size is
    padded by repeating the last column/row, so the encoded size may exceed the frames' size by one.
    """

    def __init__(
        self,
        path: Path,
        *,
        width: int,
        height: int,
        rate: Fraction,
        codec: str,
        crf: int | None,
        preset: str | None,
        pix_fmt: str,
        audio_from: VideoInput | None,
        audio: str,
        stretch: Fraction,
        color: ColorInfo | None,
        rotation: int,
        options: dict[str, str],
        sample_aspect_ratio: Fraction | None = None,
    ):
        self._init_muxer(path, rate)
        self.frame_width, self.frame_height = width, height
        self.frames_written = 0
        # write() runs on an encode thread; abort() may come from another (Ctrl-C): they never overlap.
        self._lock = threading.RLock()
        self._pending: tuple[av.VideoFrame, int] | None = None
        self._durations: dict[int, int] = {}
        self._last_pts: int | None = None
        try:
            encoder = _find_video_encoder(codec)
            video_format = _check_pix_fmt(encoder, pix_fmt)
            align_x, align_y = _chroma_alignment(video_format)
            self.width, self.height = _round_up(width, align_x), _round_up(height, align_y)
            if (self.width, self.height) != (width, height):
                self.notices.append(
                    f"{pix_fmt} needs a size divisible by {align_x}x{align_y}: {width}x{height} is encoded as "
                    f"{self.width}x{self.height}, the last column/row repeated"
                )
            self.pix_fmt = pix_fmt
            self.bit_depth = _bits_per_sample(video_format)
            self.sample_aspect_ratio = Fraction(sample_aspect_ratio) if sample_aspect_ratio else None
            self._color = color if color is not None else ColorInfo()
            self._yuv_matrix = None
            if yuv.supports(pix_fmt, self._color.space, self.width, self.height):
                self._yuv_matrix = yuv.rgb_to_yuv_matrix(self._color.space, self._color.range or 1)
            stream = self._add_video_stream(encoder, crf, preset, options)
            self._start_muxing(stream, rotation, audio_from, audio, stretch,
                               before_start=lambda: self._open_encoder(encoder.name, crf, preset))
        except BaseException:
            self.abort()
            raise

    def _add_video_stream(self, encoder: av.Codec, crf, preset, options):
        if not container_accepts(self._container, encoder.name):
            raise UsageError(f"the {self.path.suffix} container cannot hold {encoder.name} video")
        stream = self._container.add_stream(encoder.name, rate=self.rate)
        stream.width, stream.height = self.width, self.height
        stream.pix_fmt = self.pix_fmt
        context = stream.codec_context
        context.time_base = self.time_base
        # 0 = let the encoder pick (x264 uses all cores, frame threads plus lookahead).
        context.thread_count = 0
        encoder_options = {}
        if crf is not None and encoder.name in _CRF_ENCODERS:
            encoder_options["crf"] = str(crf)
            if encoder.name.startswith("libvpx"):
                encoder_options["b"] = "0"  # constant quality needs the bit-rate cap off for VP8/VP9
        if preset is not None and encoder.name in _PRESET_ENCODERS:
            encoder_options["preset"] = str(preset)
        if encoder.name.startswith("libvpx"):
            # libvpx's defaults (deadline "good", cpu-used 0) are its slowest; 5 with row threading is
            # several times faster at a small cost in size.
            encoder_options.update({"deadline": "good", "cpu-used": "5", "row-mt": "1"})
        if encoder.name == "libx265":
            encoder_options["x265-params"] = "log-level=error"  # x265 prints its statistics to stderr itself
        encoder_options.update({str(k): str(v) for k, v in options.items()})
        context.options = encoder_options
        if self._color.space != _UNSPECIFIED_COLORSPACE:
            context.colorspace = self._color.space
        context.color_range = self._color.range or 1  # limited range unless the source said otherwise
        context.color_primaries = self._color.primaries
        context.color_trc = self._color.trc
        if self.sample_aspect_ratio is not None and self.sample_aspect_ratio != 1:
            context.sample_aspect_ratio = self.sample_aspect_ratio
        return stream

    def _open_encoder(self, encoder_name: str, crf, preset) -> None:
        try:
            self._stream.codec_context.open()
        except (av.FFmpegError, ValueError) as error:
            raise UsageError(
                f"cannot open the {encoder_name} encoder with pix_fmt={self.pix_fmt}, crf={crf}, "
                f"preset={preset}, rate={self.rate}: {getattr(error, 'strerror', None) or error}"
            ) from None

    def _to_encoder_frame(self, rgb: np.ndarray) -> av.VideoFrame:
        if rgb.shape != (self.frame_height, self.frame_width, 3) or rgb.dtype not in (np.uint8, np.uint16):
            raise ValueError(
                f"frame must be uint8 or uint16 ({self.frame_height}, {self.frame_width}, 3), got {rgb.dtype} {rgb.shape}"
            )
        if rgb.dtype == np.uint16 and self.bit_depth <= 8:
            rgb = to_8_bit(rgb)  # 8-bit output: round once here, not in swscale's dither
        if (self.width, self.height) != (self.frame_width, self.frame_height):
            pad = ((0, self.height - self.frame_height), (0, self.width - self.frame_width), (0, 0))
            rgb = np.pad(rgb, pad, mode="edge")
        if self._yuv_matrix is not None and rgb.dtype == np.uint8:
            return av.VideoFrame.from_ndarray(rgb_to_planar_yuv(rgb, self.pix_fmt, self._yuv_matrix), format=self.pix_fmt)
        rgb_format = "rgb48le" if rgb.dtype == np.uint16 else "rgb24"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format=rgb_format)
        # Convert here, with the source's matrix and range, instead of letting the encoder pick defaults.
        return frame.reformat(
            format=self.pix_fmt,
            dst_colorspace=self._color.space if self._color.space != _UNSPECIFIED_COLORSPACE else None,
            dst_color_range=self._color.range or 1,
        )

    def write(self, rgb: np.ndarray, ts: Fraction) -> None:
        """Encode one uint8 or uint16 (H, W, 3) RGB frame displayed from `ts` seconds (strictly increasing)."""
        with self._lock:
            self._write(rgb, ts)

    def _write(self, rgb: np.ndarray, ts: Fraction) -> None:
        if self._closed:
            raise RuntimeError("write() after close()")
        pts = round(Fraction(ts) / self.time_base)
        if pts < 0 or (self._last_pts is not None and pts <= self._last_pts):
            raise ValueError(
                f"frame time {ts} s gives pts {pts} at 1/{self.rate} s per tick, "
                f"not after the previous pts {self._last_pts}"
            )
        frame = self._to_encoder_frame(rgb)
        self._last_pts = pts
        try:
            # A frame is encoded once the next one arrives: only then is its duration known, and the last
            # frame's duration is what makes the container's duration come out exact.
            if self._pending is not None:
                self._encode(*self._pending, duration=pts - self._pending[1])
            self._pending = (frame, pts)
            self._carry_until(Fraction(ts))
        except (av.FFmpegError, OSError) as error:
            raise OutputError(f"cannot write {self.path}: {_reason(error)}") from None
        self.frames_written += 1

    def _encode(self, frame: av.VideoFrame | None, pts: int = 0, *, duration: int = 0) -> None:
        if frame is not None:
            frame.pts = pts
            frame.time_base = self.time_base
            frame.duration = duration
            self._durations[pts] = duration
        for packet in self._stream.encode(frame):
            # Encoders do not all pass frame durations through; the muxer needs them for the last sample.
            if packet.pts in self._durations:
                packet.duration = self._durations.pop(packet.pts)
            self._mux_video(packet)

    def close(self, end_ts: Fraction) -> None:
        """Finish the file: the last frame is displayed until `end_ts` seconds; audio is completed."""
        with self._lock:
            self._close(end_ts)

    def _close(self, end_ts: Fraction) -> None:
        if self._closed:
            return
        if self._pending is None:
            self.abort()
            raise ValueError("close() before any frame was written")
        end_pts = round(Fraction(end_ts) / self.time_base)
        last_pts = self._pending[1]
        if end_pts <= last_pts:
            self.abort()
            raise ValueError(f"end time {end_ts} s is not after the last frame's time {last_pts * self.time_base} s")
        try:
            self._encode(*self._pending, duration=end_pts - last_pts)
            self._pending = None
            self._encode(None)
        except (av.FFmpegError, OSError) as error:
            self.abort()
            raise OutputError(f"cannot finish {self.path}: {_reason(error)}") from None
        self._finish_muxing(end_pts)

def _reason(error: BaseException) -> str:
    """The OS/FFmpeg reason for a failed write, without PyAV's errno and repeated file name."""
    import errno

    if getattr(error, "errno", None) == errno.ENOSPC:
        return "the disk is full (no space left on device)"
    return getattr(error, "strerror", None) or str(error)


def to_8_bit(rgb: np.ndarray) -> np.ndarray:
    """uint16 (full 16-bit scale) -> uint8, rounded to nearest."""
    return ((rgb.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _find_video_encoder(codec: str) -> av.Codec:
    try:
        encoder = av.Codec(codec, "w")
    except ValueError:
        raise UsageError(f"unknown video encoder: {codec}") from None
    if encoder.type != "video":
        raise UsageError(f"{codec} is not a video encoder")
    return encoder


def _check_pix_fmt(encoder: av.Codec, pix_fmt: str) -> av.VideoFormat:
    try:
        video_format = av.VideoFormat(pix_fmt)
    except ValueError:
        raise UsageError(f"unknown pixel format: {pix_fmt}") from None
    supported = [f.name for f in encoder.video_formats or ()]
    if supported and pix_fmt not in supported:
        raise UsageError(f"{encoder.name} cannot encode {pix_fmt}; it supports {', '.join(supported)}")
    return video_format


class ImageFolderOutput:
    """A folder receiving frames as 00000000.png, 00000001.png, ... in write order. Use `open_output`."""

    def __init__(self, path: Path, *, width: int, height: int, rotation: int = 0):
        self.path = path
        self.frame_width, self.frame_height = width, height
        # Images have no display matrix: frames are turned upright as they are written.
        self._quarter_turns = (rotation // 90) % 4
        self.width, self.height = (height, width) if self._quarter_turns % 2 else (width, height)
        self.notices: list[str] = []
        self.frames_written = 0
        self.audio_streams = 0
        self._last_ts: Fraction | None = None
        try:
            path.mkdir(exist_ok=True)
        except FileNotFoundError:
            raise OutputError(f"output folder's parent does not exist: {path.parent}") from None
        except OSError as error:
            raise OutputError(f"cannot create output folder {path}: {error.strerror or error}") from None
        if not os.access(path, os.W_OK):
            raise OutputError(f"output folder is not writable: {path}")

    def frame_path(self, index: int) -> Path:
        """Where the index-th frame is written."""
        return self.path / f"{index:08d}.png"

    def write(self, rgb: np.ndarray, ts: Fraction) -> None:
        """Write the next frame as PNG (16-bit for uint16 frames); `ts` must increase (it orders frames, names come from the count)."""
        import cv2

        if rgb.shape != (self.frame_height, self.frame_width, 3) or rgb.dtype not in (np.uint8, np.uint16):
            raise ValueError(
                f"frame must be uint8 or uint16 ({self.frame_height}, {self.frame_width}, 3), got {rgb.dtype} {rgb.shape}"
            )
        if self._quarter_turns:
            rgb = np.ascontiguousarray(np.rot90(rgb, k=self._quarter_turns))
        if self._last_ts is not None and ts <= self._last_ts:
            raise ValueError(f"frame time {ts} is not after the previous {self._last_ts}")
        ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if not ok:
            raise OutputError(f"cannot encode frame {self.frames_written} as PNG")
        target = self.frame_path(self.frames_written)
        try:
            encoded.tofile(target)
        except OSError as error:
            raise OutputError(f"cannot write {target}: {_reason(error)}") from None
        self._last_ts = Fraction(ts)
        self.frames_written += 1

    def close(self, end_ts: Fraction | None = None) -> None:
        """Nothing to finish: every frame is complete once written."""

    def abort(self) -> None:
        """Nothing to undo here; the caller removes the folder."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        pass
