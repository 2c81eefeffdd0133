"""Everyday input variants made in-process with PyAV (no FFmpeg binary): containers, NTSC rates, odd frame
counts, B-frames, stream start offsets, variable frame rate, audio priming, short, long and several audio
streams, subtitles. Each clip is small (96x64) so that a whole matrix of runs fits in the test suite.

`ClipSpec` says what a clip is; `make_clip(spec, path)` writes it. `probe_clip(path)` reads a file back
independently of dainctl's own reader and verifier (packet timestamps and decoded frames, with PyAV), so
that tests compare dainctl's output with a second opinion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from dainctl.video.synthetic import render_sample_frame

WIDTH, HEIGHT = 96, 64


@dataclass(frozen=True)
class AudioSpec:
    codec: str = "aac"
    sample_rate: int = 48_000
    offset: Fraction = Fraction(0)  # its first sample's time minus the first video frame's time
    length: Fraction | None = None  # seconds; None: as long as the video
    channels: int = 2


@dataclass(frozen=True)
class ClipSpec:
    name: str
    ext: str = ".mp4"
    codec: str = "libx264"
    rate: Fraction = Fraction(24)
    frames: int = 25
    pix_fmt: str = "yuv420p"
    bframes: bool = True
    video_start: Fraction = Fraction(0)  # the first video frame's timestamp in the container
    frame_durations: tuple[Fraction, ...] | None = None  # variable frame rate: per-frame display times
    audio: tuple[AudioSpec, ...] = (AudioSpec(),)
    subtitles: str | None = None  # "subrip" or "ass": two cues
    format: str | None = None  # container format name when the extension is not enough
    flash_frame: int | None = None  # sync clip: dark frames, this one white, and a beep starting with it

    @property
    def timestamps(self) -> list[Fraction]:
        if self.frame_durations is None:
            return [Fraction(i) / self.rate for i in range(self.frames)]
        times, now = [], Fraction(0)
        for i in range(self.frames):
            times.append(now)
            now += self.frame_durations[i % len(self.frame_durations)]
        return times

    @property
    def duration(self) -> Fraction:
        """Seconds from the first video frame's start to the end of the last one."""
        if self.frame_durations is None:
            return Fraction(self.frames) / self.rate
        return sum((self.frame_durations[i % len(self.frame_durations)] for i in range(self.frames)), Fraction(0))


def _video_options(codec: str, bframes: bool) -> dict[str, str]:
    if codec in ("libx264", "libx265"):
        options = {"preset": "ultrafast" if not bframes else "veryfast", "crf": "20"}
        if codec == "libx264":
            options["bframes"] = "3" if bframes else "0"
        else:
            options["x265-params"] = f"log-level=error:bframes={3 if bframes else 0}"
        return options
    if codec.startswith("libvpx"):
        return {"crf": "20", "b": "0", "deadline": "realtime", "cpu-used": "8"}
    return {"qscale": "3"}


def _time_base(spec: ClipSpec) -> Fraction:
    if spec.frame_durations is not None:
        return Fraction(1, 90_000)
    return 1 / spec.rate


def make_clip(spec: ClipSpec, path: Path) -> Path:
    """Write the clip described by `spec` to `path` (video, audio streams, subtitle cues)."""
    time_base = _time_base(spec)
    with av.open(str(path), "w", format=spec.format) as container:
        video = container.add_stream(spec.codec, rate=spec.rate if spec.frame_durations is None else None)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, spec.pix_fmt
        video.codec_context.time_base = time_base
        if spec.frame_durations is not None:
            video.codec_context.framerate = spec.rate
        video.codec_context.options = _video_options(spec.codec, spec.bframes)
        if spec.codec == "mpeg4" and spec.bframes:
            video.codec_context.max_b_frames = 2
        audio_streams = []
        for audio in spec.audio:
            stream = container.add_stream(audio.codec, rate=audio.sample_rate)
            stream.codec_context.layout = "stereo" if audio.channels == 2 else "mono"
            stream.codec_context.time_base = Fraction(1, audio.sample_rate)
            if audio.codec in ("aac", "ac3", "libmp3lame", "libopus", "mp2", "wmav2"):
                stream.codec_context.bit_rate = 96_000
            audio_streams.append(stream)
        subtitle_stream = None
        if spec.subtitles is not None:
            subtitle_stream = container.add_mux_stream(spec.subtitles)
            subtitle_stream.time_base = Fraction(1, 1000)

        feeders = [_AudioFeeder(container, stream, audio, spec) for stream, audio in zip(audio_streams, spec.audio)]
        timestamps = spec.timestamps
        # Every packet lasts as long as its frame is displayed, so the file states the clip's duration.
        durations = {
            round((ts + spec.video_start) / time_base): round(((timestamps[i + 1] if i + 1 < len(timestamps) else spec.duration) - ts) / time_base)
            for i, ts in enumerate(timestamps)
        }

        def mux_video(packets) -> None:
            for packet in packets:
                if packet.pts in durations:
                    packet.duration = durations[packet.pts]
                container.mux(packet)

        for index, ts in enumerate(timestamps):
            if spec.flash_frame is None:
                rgb = render_sample_frame(WIDTH, HEIGHT, float(ts * 24))
            else:
                rgb = np.full((HEIGHT, WIDTH, 3), 255 if index == spec.flash_frame else 16, np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = round((ts + spec.video_start) / time_base)
            frame.time_base = time_base
            end = timestamps[index + 1] if index + 1 < len(timestamps) else spec.duration
            mux_video(video.encode(frame))
            for feeder in feeders:
                feeder.feed_until(end)
            if subtitle_stream is not None and index in (0, len(timestamps) // 2):
                cue = av.Packet(_cue_text(spec.subtitles, index).encode())
                cue.stream, cue.time_base = subtitle_stream, Fraction(1, 1000)
                cue.pts = cue.dts = round((ts + spec.video_start) * 1000)
                cue.duration = 300
                container.mux(cue)
        mux_video(video.encode(None))
        for feeder in feeders:
            feeder.finish()
    return path


def _cue_text(kind: str, index: int) -> str:
    if kind == "ass":
        return f"{index},0,Default,,0,0,0,,cue {index}"
    return f"cue {index}"


class _AudioFeeder:
    """Encodes a 440 Hz tone for one audio stream, interleaved with the video by time."""

    def __init__(self, container, stream, audio: AudioSpec, spec: ClipSpec):
        self.container, self.stream, self.audio = container, stream, audio
        length = audio.length if audio.length is not None else spec.duration
        self.total = round(length * audio.sample_rate)
        self.first = round((spec.video_start + audio.offset) * audio.sample_rate)
        self.offset = audio.offset
        self.beep = None
        if spec.flash_frame is not None:  # the beep's first and last sample, on this stream's clock
            onset = round((spec.timestamps[spec.flash_frame] - audio.offset) * audio.sample_rate)
            self.beep = (onset, onset + audio.sample_rate // 10)
        self.done = 0
        frame_size = stream.codec_context.frame_size or 1024
        self.chunk = frame_size

    def feed_until(self, video_time: Fraction) -> None:
        target = min(self.total, max(0, round((video_time - self.offset) * self.audio.sample_rate)))
        while self.done + self.chunk <= target or (self.done < target and target == self.total):
            count = min(self.chunk, self.total - self.done)
            t = (np.arange(self.done, self.done + count) / self.audio.sample_rate).astype(np.float64)
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            if self.beep is not None:
                index = np.arange(self.done, self.done + count)
                tone = np.where((index >= self.beep[0]) & (index < self.beep[1]), 0.5 * np.sin(2 * np.pi * 1000 * t), 0.0)
                tone = tone.astype(np.float32)
            channels = self.audio.channels
            fmt = self.stream.codec_context.format.name
            data = np.tile(tone, (channels, 1))
            if fmt in ("s16", "s16p"):
                data = (data * 32767).astype(np.int16)
            elif fmt in ("s32", "s32p"):
                data = (data * 2147483647).astype(np.int32)
            if not self.stream.codec_context.format.is_planar:
                data = data.T.reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(data, format=fmt, layout=self.stream.codec_context.layout.name)
            frame.sample_rate = self.audio.sample_rate
            frame.pts = self.first + self.done
            frame.time_base = Fraction(1, self.audio.sample_rate)
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
            self.done += count

    def finish(self) -> None:
        self.feed_until(Fraction(10**6))
        for packet in self.stream.encode(None):
            self.container.mux(packet)


def _offset_mp4() -> ClipSpec:
    return ClipSpec("mp4-start-offset", video_start=Fraction(3, 2), audio=(AudioSpec(offset=Fraction(-24, 1000)),))


# The matrix's input variants: every container dainctl reads, with the usual codecs for each, and the
# timestamp and audio situations that real files come in.
VARIANTS: tuple[ClipSpec, ...] = (
    ClipSpec("mp4-24-odd", frames=25),
    ClipSpec("mp4-ntsc-bframes", rate=Fraction(30000, 1001), frames=31),
    ClipSpec("mov-25", ext=".mov", rate=Fraction(25), frames=27),
    ClipSpec("m4v-ntsc24", ext=".m4v", rate=Fraction(24000, 1001), frames=23),
    ClipSpec("mkv-opus", ext=".mkv", rate=Fraction(30), frames=29, audio=(AudioSpec("libopus"),)),
    ClipSpec("webm-vp9-opus", ext=".webm", codec="libvpx-vp9", rate=Fraction(25), frames=26, audio=(AudioSpec("libopus"),)),
    ClipSpec("avi-mpeg4-mp3", ext=".avi", codec="mpeg4", rate=Fraction(25), frames=25,
             audio=(AudioSpec("libmp3lame", sample_rate=44_100),)),
    ClipSpec("ts-ntsc-aac", ext=".ts", rate=Fraction(30000, 1001), frames=59),
    ClipSpec("m2ts-ac3", ext=".m2ts", rate=Fraction(30000, 1001), frames=60, audio=(AudioSpec("ac3"),)),
    ClipSpec("mts-5994", ext=".mts", rate=Fraction(60000, 1001), frames=61),
    ClipSpec("flv-aac", ext=".flv", rate=Fraction(30), frames=31, audio=(AudioSpec(sample_rate=44_100),)),
    _offset_mp4(),
    ClipSpec("mp4-audio-late-short", audio=(AudioSpec(offset=Fraction(1, 4), length=Fraction(1, 2)),)),
    ClipSpec("mp4-audio-long", frames=24, audio=(AudioSpec(length=Fraction(3, 2)),)),
    ClipSpec("mkv-two-audio-srt", ext=".mkv", frames=24,
             audio=(AudioSpec(), AudioSpec("libopus", offset=Fraction(1, 10))), subtitles="subrip"),
    ClipSpec("mp4-vfr", frame_durations=(Fraction(1, 30), Fraction(1, 20), Fraction(1, 24)), rate=Fraction(24),
             frames=26, bframes=False),
    ClipSpec("mkv-hevc10", ext=".mkv", codec="libx265", pix_fmt="yuv420p10le", frames=24),
    ClipSpec("mov-no-audio", ext=".mov", rate=Fraction(50), frames=51, audio=()),
    # Older, professional and phone formats, rates and edge cases.
    ClipSpec("mpg-mpeg2-mp2", ext=".mpg", codec="mpeg2video", rate=Fraction(25), frames=27,
             audio=(AudioSpec("mp2"),), format="vob"),
    ClipSpec("wmv-no-audio", ext=".wmv", codec="wmv2", rate=Fraction(25), frames=26, bframes=False, audio=()),
    ClipSpec("3gp-phone-15", ext=".3gp", rate=Fraction(15), frames=17, audio=(AudioSpec(channels=1, sample_rate=44_100),)),
    ClipSpec("mov-prores-pcm", ext=".mov", codec="prores_ks", pix_fmt="yuv422p10le", rate=Fraction(24000, 1001),
             frames=25, bframes=False, audio=(AudioSpec("pcm_s16le"),)),
    ClipSpec("mkv-flac-2398", ext=".mkv", rate=Fraction(24000, 1001), frames=25, audio=(AudioSpec("flac", sample_rate=44_100),)),
    ClipSpec("mp4-ac3-120", rate=Fraction(120), frames=61, audio=(AudioSpec("ac3"),)),
    ClipSpec("ts-audio-late", ext=".ts", rate=Fraction(25), frames=40, audio=(AudioSpec(offset=Fraction(1, 2)),)),
    ClipSpec("ts-video-late", ext=".ts", rate=Fraction(25), frames=40,
             audio=(AudioSpec(offset=Fraction(-3, 10), length=Fraction(19, 10)),)),
    ClipSpec("mp4-one-frame", frames=1, audio=(AudioSpec(length=Fraction(1, 24)),)),
    ClipSpec("mp4-two-frames", frames=2),
    ClipSpec("mp4-vfr-bframes", frame_durations=(Fraction(1, 30), Fraction(1, 20), Fraction(1, 24)), rate=Fraction(24),
             frames=26),
    ClipSpec("mkv-vfr", ext=".mkv", frame_durations=(Fraction(1, 25), Fraction(1, 50), Fraction(3, 100)), rate=Fraction(30),
             frames=31, bframes=False),
    ClipSpec("avi-mjpeg-pcm", ext=".avi", codec="mjpeg", pix_fmt="yuvj420p", rate=Fraction(30), frames=31, bframes=False,
             audio=(AudioSpec("pcm_s16le", sample_rate=32_000, channels=1),)),
    ClipSpec("nut-ffv1", ext=".nut", codec="ffv1", rate=Fraction(50), frames=26, bframes=False,
             audio=(AudioSpec("pcm_s16le"),)),
    ClipSpec("mkv-start-offset", ext=".mkv", rate=Fraction(30000, 1001), frames=29, video_start=Fraction(1),
             audio=(AudioSpec("libopus", offset=Fraction(-1, 50)),)),
    ClipSpec("mp4-8k-mono", rate=Fraction(25), frames=25, audio=(AudioSpec(sample_rate=8_000, channels=1),)),
    ClipSpec("mov-96k-ac3-late", ext=".mov", rate=Fraction(60), frames=59,
             audio=(AudioSpec("ac3", offset=Fraction(1, 3)), AudioSpec("pcm_s16le", sample_rate=96_000))),
)


def variant(name: str) -> ClipSpec:
    for spec in VARIANTS:
        if spec.name == name:
            return spec
    raise KeyError(name)


# The operations of the matrix: dainctl arguments after IN OUT, and the output extension family.
OPERATIONS: dict[str, list[str]] = {
    "x2": ["interpolate", "--factor", "2"],
    "x3": ["interpolate", "--factor", "3"],
    "fps24": ["interpolate", "--fps", "24"],
    "fps50": ["interpolate", "--fps", "50"],
    "fps60": ["interpolate", "--fps", "60"],
    "fps59.94": ["interpolate", "--fps", "60000/1001"],
    "slowmo-drop": ["slowmo", "--factor", "2"],
    "slowmo-stretch": ["slowmo", "--factor", "2", "--audio", "stretch"],
    # The same 2x into each container dainctl writes.
    "x2-mp4": ["interpolate", "--factor", "2"],
    "x2-mov": ["interpolate", "--factor", "2"],
    "x2-mkv": ["interpolate", "--factor", "2"],
    "x2-webm": ["interpolate", "--factor", "2"],
}


# More factors, rates and slow-motion factors, run on a few variants (tests/test_conformance.py).
EXTRA_OPERATIONS: dict[str, list[str]] = {
    "x4": ["interpolate", "--factor", "4"],
    "x5": ["interpolate", "--factor", "5"],
    "fps23.976": ["interpolate", "--fps", "24000/1001"],
    "fps25": ["interpolate", "--fps", "25"],
    "fps30": ["interpolate", "--fps", "30"],
    "fps120": ["interpolate", "--fps", "120"],
    "slowmo4-stretch": ["slowmo", "--factor", "4", "--audio", "stretch"],
    "slowmo8-stretch": ["slowmo", "--factor", "8", "--audio", "stretch"],
}
ALL_OPERATIONS = {**OPERATIONS, **EXTRA_OPERATIONS}


def output_extension(spec: ClipSpec, operation: str = "") -> str:
    """Where a matrix run writes: the container the operation names, else the input's own when dainctl
    writes it, else MP4."""
    if operation.startswith("x2-"):
        return "." + operation[3:]
    if spec.ext in (".mp4", ".mov", ".mkv", ".webm"):
        return spec.ext
    return ".mp4"


@dataclass
class StreamReading:
    kind: str
    codec: str
    start: Fraction
    end: Fraction

    @property
    def duration(self) -> Fraction:
        return self.end - max(self.start, Fraction(0))


@dataclass
class ClipReading:
    frames: int
    rate: Fraction | None
    video: StreamReading
    audio: list[StreamReading] = field(default_factory=list)
    subtitles: list[StreamReading] = field(default_factory=list)


def probe_clip(path: Path) -> ClipReading:
    """Read a file back with PyAV alone: decoded frame count, the video's declared rate, and each stream's
    first and last instant from packet timestamps (times in the container's timeline; MP4 edit lists are
    applied by FFmpeg's demuxer, and packets it marks to be skipped count from 0)."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        rate = video.average_rate
        video_index = video.index
        # MP4/MOV state each stream's duration (edit lists); packet durations there follow decode order.
        mov = container.format.name.split(",")[0] in ("mov", "mp4", "m4a", "3gp", "3g2", "mj2")
        declared = {s.index: s.duration * Fraction(s.time_base) for s in container.streams if mov and s.duration}
        starts: dict[int, Fraction] = {}
        ends: dict[int, Fraction] = {}
        for packet in container.demux():
            if packet.size == 0 or packet.pts is None:
                continue
            tb = Fraction(packet.time_base)
            start = packet.pts * tb
            duration = packet.duration * tb if packet.duration else Fraction(0)
            if not duration and packet.stream.type == "video" and rate:
                duration = 1 / Fraction(rate)  # ASF leaves the last frame's duration unset
            end = start + duration
            idx = packet.stream.index
            starts[idx] = min(starts.get(idx, start), start)
            ends[idx] = max(ends.get(idx, end), end)
        kinds = {s.index: (s.type, s.codec_context.name if s.codec_context else "?") for s in container.streams}
    with av.open(str(path)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    for index, duration in declared.items():
        if index in starts:
            ends[index] = max(starts[index], Fraction(0)) + duration
    readings = {i: StreamReading(kinds[i][0], kinds[i][1], starts[i], ends[i]) for i in starts}
    return ClipReading(
        frames=frames,
        rate=Fraction(rate) if rate else None,
        video=readings[video_index],
        audio=[r for i, r in sorted(readings.items()) if r.kind == "audio"],
        subtitles=[r for i, r in sorted(readings.items()) if r.kind == "subtitle"],
    )


def _opus_pre_skip(path: Path, audio_index: int) -> Fraction:
    with av.open(str(path)) as container:
        context = container.streams.audio[audio_index].codec_context
        extradata = context.extradata or b""
        if context.name == "opus" and extradata[:8] == b"OpusHead":
            return Fraction(int.from_bytes(extradata[10:12], "little"), 48_000)
    return Fraction(0)


def _last_packet_end(path: Path, audio_index: int) -> Fraction:
    with av.open(str(path)) as container:
        stream = container.streams.audio[audio_index]
        frame = Fraction(stream.codec_context.frame_size or 0, stream.codec_context.sample_rate)
        return max(p.pts * Fraction(p.time_base) + max((p.duration or 0) * Fraction(p.time_base), frame)
                   for p in container.demux(stream) if p.size and p.pts is not None)


def _sample_rate(path: Path, audio_index: int) -> int:
    with av.open(str(path)) as container:
        return container.streams.audio[audio_index].codec_context.sample_rate


def _first_packet_at_or_after(path: Path, audio_index: int, time: Fraction) -> Fraction:
    with av.open(str(path)) as container:
        stream = container.streams.audio[audio_index]
        allowance = Fraction(0)
        extradata = stream.codec_context.extradata or b""
        if stream.codec_context.name == "opus" and extradata[:8] == b"OpusHead":
            allowance = Fraction(int.from_bytes(extradata[10:12], "little"), 48_000) + Fraction(1, 1000)
        starts = [p.pts * Fraction(p.time_base) for p in container.demux(stream) if p.size and p.pts is not None]
    kept = [t for t in starts if t >= time - allowance]
    return min(kept) if kept else time


def with_name(spec: ClipSpec, name: str, **changes) -> ClipSpec:
    return replace(spec, name=name, **changes)


def ceil_frames(duration: Fraction, rate: Fraction) -> int:
    return math.ceil(duration * rate)


def output_rate(spec: ClipSpec, reading: ClipReading, operation: str) -> tuple[Fraction, Fraction]:
    """(output rate, time stretch) an operation promises, from the independent reading of the input."""
    args = ALL_OPERATIONS[operation]
    input_rate = spec.rate
    if spec.frame_durations is not None:  # variable rate: --factor multiplies FFmpeg's average rate
        input_rate = reading.rate
    if args[0] == "slowmo":
        return input_rate, Fraction(int(args[2]))
    if args[1] == "--fps":
        text = args[2]
        return (Fraction(*map(int, text.split("/"))) if "/" in text else Fraction(text)), Fraction(1)
    return input_rate * int(args[2]), Fraction(1)


def conformance_problems(spec: ClipSpec, source: Path, output: Path, operation: str) -> list[str]:
    """What an independent reading of `output` finds wrong against the documented rules (empty: none).

    The rules (README, "Timing"): the output is constant-rate at the promised rate; it has one frame for
    every output time k/rate before the input's end (times the slow-motion stretch), each lasting 1/rate;
    its time zero is the first video frame; every audio stream of the input is carried (dropped by
    `slowmo` unless stretched) and keeps its offset to the video: audio before the first video frame is
    trimmed, so each stream's presented length is its end minus the later of its start and the video's
    start (times the stretch), whole otherwise, even where it outlasts the video.
    """
    problems = []
    source_reading = probe_clip(source)
    reading = probe_clip(output)
    rate, stretch = output_rate(spec, source_reading, operation)
    duration = source_reading.video.end - source_reading.video.start
    frames = math.ceil(duration * stretch * rate - Fraction(1, 10**6))
    frame_time = 1 / rate
    if abs(reading.frames - frames) > 0:
        problems.append(f"frames {reading.frames}, expected {frames}")
    if reading.rate is None or abs(reading.rate - rate) > rate / 1000:
        problems.append(f"rate {reading.rate}, expected {rate}")
    video_duration = reading.video.end - reading.video.start
    if abs(video_duration - frames * frame_time) > frame_time / 2:
        problems.append(f"video duration {float(video_duration):.4f} s, expected {float(frames * frame_time):.4f} s")
    if abs(reading.video.start) > frame_time / 2:
        problems.append(f"video starts at {float(reading.video.start):.4f} s, not 0")
    dropped = ALL_OPERATIONS[operation][0] == "slowmo" and "stretch" not in ALL_OPERATIONS[operation]
    stretched = "stretch" in ALL_OPERATIONS[operation]
    vstart = source_reading.video.start
    expected_audio = []
    for index, a in enumerate([] if dropped else source_reading.audio):
        # Opus's pre-skip is codec delay: outside MP4/MOV the first packet comes that much before the sound.
        start = max(a.start + (_opus_pre_skip(source, index) if source.suffix not in (".mp4", ".mov", ".m4v", ".3gp") else 0), vstart)
        copied = not stretched and index < len(reading.audio) and reading.audio[index].codec == a.codec
        end = a.end
        if copied and output.suffix in (".mkv", ".webm"):
            # Without an edit list a copy is cut at packet boundaries: it starts with its first packet
            # at or after the first video frame (a packet inside Opus's pre-skip counts as at it) and
            # ends with its last packet.
            start = max(start, _first_packet_at_or_after(source, index, vstart))
            end = _last_packet_end(source, index)
        late = (not copied) and start > vstart and reading.audio[index].codec == "aac" if index < len(reading.audio) else False
        # A re-encoded stream that starts after the video shows its encoder's priming (AAC: 1024 samples).
        priming = Fraction(1024, _sample_rate(output, index)) if late else Fraction(0)
        expected_audio.append((end - start) * stretch + priming)
    if len(reading.audio) != len(expected_audio):
        problems.append(f"{len(reading.audio)} audio streams, expected {len(expected_audio)}")
    else:
        for number, (got, want) in enumerate(zip(reading.audio, expected_audio), start=1):
            got_span = got.end - max(got.start, reading.video.start)
            if abs(got_span - want) > frame_time:
                problems.append(f"audio #{number} lasts {float(got_span):.4f} s, expected {float(want):.4f} s")
    if len(reading.subtitles) != len(source_reading.subtitles):
        problems.append(f"{len(reading.subtitles)} subtitle streams, expected {len(source_reading.subtitles)}")
    return problems


BEEP_SECONDS = Fraction(1, 10)


def flash_and_beep_times(path: Path) -> tuple[Fraction, Fraction, float]:
    """(time of the flash frame, time of the beep's first loud sample, time of the beep's energy centroid)
    of a sync clip on the file's own timeline, by decoding with PyAV (the decoder applies the container's
    skip of priming). The centroid is where a listener hears a time-stretched beep: a stretch smears
    its onset but keeps its centre."""
    with av.open(str(path)) as container:
        # The brightest frame (the first of equals): the flash itself, or where no output time falls on
        # it (24 to 60 fps), the frame nearest to it.
        levels = [(frame.to_ndarray(format="gray").mean(), frame.pts * Fraction(frame.time_base))
                  for frame in container.decode(video=0)]
        peak = max(level for level, _ in levels)
        flash = min(ts for level, ts in levels if level >= peak - 1)
    with av.open(str(path)) as container:
        chunks, first_pts, sample_rate = [], None, None
        for frame in container.decode(audio=0):
            data = frame.to_ndarray().astype(np.float64)
            name = frame.format.name
            if name.startswith("s16"):
                data /= 32768.0
            elif name.startswith("s32"):
                data /= 2147483648.0
            data = data if frame.format.is_planar else data.reshape(-1, frame.layout.nb_channels).T
            if first_pts is None:
                first_pts, sample_rate = frame.pts * Fraction(frame.time_base), frame.sample_rate
            chunks.append(np.abs(data).max(axis=0))
    level = np.concatenate(chunks)
    loud = np.flatnonzero(level > 0.1)
    assert flash is not None and loud.size, (flash, loud.size)
    onset = first_pts + Fraction(int(loud[0]), sample_rate)
    # Energy centroid of the beep: the loud region from its onset over twice its longest stretched length.
    lo, hi = int(loud[0]), int(loud[0]) + int(sample_rate * 1.5)  # the clips are silent after the beep
    energy = level[lo:hi] ** 2
    centroid = float(first_pts) + (lo + float((np.arange(energy.size) * energy).sum() / energy.sum())) / sample_rate
    return flash, onset, centroid
