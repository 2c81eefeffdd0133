"""The checked timing contract: re-open a written output and compare it with the plan.

    expected = ExpectedOutput(frame_count=..., rate=..., duration=...,
                              audio_durations=expected_stream_durations(input_path, "audio", stretch))
    report = verify_output(output_path, expected)     # never raises for a mismatch
    raise_if_failed(report)                           # VerifyError with the numbers, or nothing

What is checked, each with a tolerance of one output frame (1 / rate seconds, or 1 frame):
- frames: the number of video frames in the file;
- rate: the frame rate the container declares, to 0.01% (a constant-rate output declares its rate
  exactly, up to the container's clock: Matroska's milliseconds turn 60000/1001 into 59.9401; 59.94
  against 60 is a 0.1% difference and fails);
- video duration: from the first frame's start to the end of the last frame;
- the number of audio (subtitle) streams, and each one's presented duration (for subtitles: the span
  of their cues, see below).

Frames are counted from demuxed packets by default: every encoder dainctl writes with puts one frame in
one packet, and demuxing reads the file once without decoding (50 ms for cockatoo.mp4's 280 frames of
720p, against 2.9 s to decode them). `count="decode"` decodes every packet (no pixel conversion) and
counts the frames the decoder really returns, for when a damaged file is suspected.

Stream timings come from `dainctl.video.probe.measure_streams` (packet timestamps, and the edit list in
MP4/MOV). An audio or subtitle stream's presented duration is its end minus its start, where a start
before 0 (an audio encoder's priming samples, which players skip) counts as 0: compute the expected
values from the input with `expected_stream_durations` so that both sides are measured the same way.
Subtitle streams are measured from their packets only: from the first cue's start (0 if earlier) to the
last cue's end. Containers' declared subtitle durations say nothing about the cues (Matroska reports the
whole segment's duration for a subtitle track).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av

from .errors import InputError, VerifyError
from .plan import carried_span
from .video.probe import StreamTiming, measure_streams

CountMethod = Literal["packets", "decode"]

_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_RATE_RELATIVE_TOLERANCE = Fraction(1, 10_000)


@dataclass(frozen=True)
class ExpectedOutput:
    """What the plan promises about the output file.

    frame_count: video frames; rate: output frame rate; duration: seconds from the first frame's start
    to the end of the last frame. audio_durations / subtitle_durations: the presented duration of each
    carried stream, in stream order (an empty tuple means "no such stream expected"); None skips the
    check for that kind. For an image-folder output only frame_count is checked.
    """

    frame_count: int
    rate: Fraction
    duration: Fraction
    audio_durations: tuple[Fraction, ...] | None = ()
    subtitle_durations: tuple[Fraction, ...] | None = None


@dataclass
class Check:
    """One comparison. Numbers are plain floats/ints so that `asdict(report)` is JSON-ready."""

    name: str
    unit: str
    expected: float
    actual: float | None
    tolerance: float
    ok: bool


@dataclass
class VerifyReport:
    """The result of `verify_output`: `ok` is True when every check passed."""

    path: str
    method: str
    ok: bool
    checks: list[Check] = field(default_factory=list)
    error: str | None = None

    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    def to_dict(self) -> dict:
        return asdict(self)


def presented_duration(timing: StreamTiming) -> Fraction | None:
    """A stream's duration as a player presents it: end minus start, a start before 0 counting as 0."""
    if timing.start is None or timing.end is None:
        return None
    return timing.end - max(timing.start, Fraction(0))


def subtitle_spans(path: str | os.PathLike) -> list[Fraction | None]:
    """For each subtitle stream, in stream order: last cue end minus first cue start (a start before 0
    counts as 0), from the packets; None for a stream without timed cues."""
    with av.open(str(path), metadata_errors="replace") as container:
        streams = list(container.streams.subtitles)
        if not streams:
            return []
        first: dict[int, Fraction] = {}
        last_end: dict[int, Fraction] = {}
        for packet in container.demux(*streams):
            if packet.size == 0 or packet.pts is None:
                continue
            time_base = Fraction(packet.time_base)
            start = packet.pts * time_base
            end = (packet.pts + (packet.duration or 0)) * time_base
            index = packet.stream.index
            first[index] = min(first.get(index, start), start)
            last_end[index] = max(last_end.get(index, end), end)
        return [
            last_end[s.index] - max(first[s.index], Fraction(0)) if s.index in last_end else None
            for s in streams
        ]


def expected_stream_durations(
    input_path: str | os.PathLike,
    kind: str = "audio",
    stretch: Fraction = Fraction(1),
    video_start: Fraction | None = None,
) -> tuple[Fraction, ...]:
    """Presented durations in the output of the input's streams of `kind` ("audio" or "subtitle"), times
    `stretch` (1 when they are copied, N for `slowmo --audio stretch`). Audio follows the plan's rule as
    `expected_audio_durations` applies it, for every stream copied with an edit list (stretch 1) or
    re-encoded (stretch N); `video_start` is the input's `info.start` (None: the video stream's first
    packet time). Streams without timed packets count 0."""
    if kind == "subtitle":
        return tuple((span or Fraction(0)) * stretch for span in subtitle_spans(input_path))
    from .video.audio import CarriedAudio

    timings = measure_streams(input_path)
    if video_start is None:
        video_start = next((t.start for t in timings if t.kind == "video" and t.start is not None), Fraction(0))
    mode = "copy" if stretch == 1 else "encode"
    carried = [CarriedAudio(t.index, mode) for t in timings if t.kind == kind]
    return expected_audio_durations(input_path, carried, video_start, stretch)


def expected_audio_durations(
    input_path: str | os.PathLike,
    carried: list,
    video_start: Fraction,
    stretch: Fraction = Fraction(1),
) -> tuple[Fraction, ...]:
    """Presented durations in the output of the input's audio streams as the writer carried them
    (`dainctl.video.audio.CarriedAudio`, in output order), by the plan's rule (`carried_span`): a stream
    cut to the sample ("copy" with an edit list, "encode") loses exactly what plays before the first video
    frame; one cut at a packet boundary ("copy-packets") starts at its first packet carried
    (`keeps_copied_packet`). Re-encoded streams are slowed by `stretch`, copies never."""
    from .video.audio import keeps_copied_packet, opus_pre_skip
    from .video.probe import is_mov_family

    timings = {t.index: t for t in measure_streams(input_path)}
    first_kept: dict[int, Fraction] = {}
    last_end: dict[int, Fraction] = {}
    by_packets = [c.source_index for c in carried if c.mode == "copy-packets"]
    with av.open(str(input_path), metadata_errors="replace") as container:
        # Opus's pre-skip is codec delay, not sound: outside MP4/MOV (whose edit list already ends the
        # stream where its sound ends) the first packet's time is the sound's start minus it.
        mov = is_mov_family(container)
        pre_skips = {c.source_index: Fraction(0) if mov else opus_pre_skip(container.streams[c.source_index]) for c in carried}
        if by_packets:
            streams = [container.streams[i] for i in by_packets]
            heads = {s.index: opus_pre_skip(s) for s in streams}
            # A packet lasts at least its codec's frame (an MP4 demuxer shortens the last one to the edit
            # list's end; the containers that cut at packets keep it whole).
            frames = {s.index: Fraction(s.codec_context.frame_size or 0, s.codec_context.sample_rate or 1) for s in streams}
            for packet in container.demux(*streams):
                ticks = packet.pts if packet.pts is not None else packet.dts
                if packet.size == 0 or ticks is None:
                    continue
                start = ticks * Fraction(packet.time_base)
                index = packet.stream.index
                if keeps_copied_packet(start - video_start, heads[index], False, Fraction(packet.time_base)):
                    first_kept[index] = min(first_kept.get(index, start), start)
                end = start + max((packet.duration or 0) * Fraction(packet.time_base), frames[index])
                last_end[index] = max(last_end.get(index, end), end)
    durations = []
    for item in carried:
        timing = timings.get(item.source_index)
        if timing is None or timing.start is None or timing.end is None:
            durations.append(Fraction(0))
            continue
        start, end = max(timing.start + pre_skips.get(item.source_index, Fraction(0)), Fraction(0)), timing.end
        if item.mode == "copy-packets":
            # Whole packets: from the first carried to the last one's end (an MP4 input's edit list may
            # end the stream inside its last packet; these containers cannot).
            start = first_kept.get(item.source_index, timing.end)
            end = last_end.get(item.source_index, timing.end)
        span = carried_span(start, end, video_start, stretch if item.mode == "encode" else Fraction(1))
        if item.mode == "encode" and start > video_start:
            span += item.priming  # it starts after time zero, where no container can hide the priming
        durations.append(span)
    return tuple(durations)


def _check(name: str, unit: str, expected, actual, tolerance) -> Check:
    ok = actual is not None and abs(Fraction(actual) - Fraction(expected)) <= Fraction(tolerance)
    return Check(
        name=name,
        unit=unit,
        expected=_number(expected),
        actual=None if actual is None else _number(actual),
        tolerance=_number(tolerance),
        ok=ok,
    )


def _number(value) -> float | int:
    if isinstance(value, int):
        return value
    if isinstance(value, Fraction) and value.denominator == 1:
        return int(value)
    return float(value)


def _declared_rate(path: Path) -> Fraction | None:
    with av.open(str(path), metadata_errors="replace") as container:
        if not container.streams.video:
            return None
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        return Fraction(rate) if rate else None


def _decoded_frame_count(path: Path) -> int:
    with av.open(str(path), metadata_errors="replace") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        # decode() returns frames in the decoder's own format: no conversion to RGB happens here.
        return sum(1 for _ in container.decode(stream))


def _verify_folder(path: Path, expected: ExpectedOutput) -> VerifyReport:
    images = [p for p in path.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_EXTENSIONS]
    check = _check("frames", "frames", expected.frame_count, len(images), 1)
    return VerifyReport(path=str(path), method="files", ok=check.ok, checks=[check])


def _stream_checks(
    label: str, durations: list[Fraction | None], expected: tuple[Fraction, ...] | None, tolerance: Fraction
) -> list[Check]:
    if expected is None:
        return []
    checks = [_check(f"{label} streams", "streams", len(expected), len(durations), 0)]
    for number, (actual, want) in enumerate(zip(durations, expected), start=1):
        checks.append(_check(f"{label} #{number} duration", "s", want, actual, tolerance))
    return checks


def verify_output(
    path: str | os.PathLike, expected: ExpectedOutput, count: CountMethod = "packets"
) -> VerifyReport:
    """Re-open a written output (video file or image folder) and check it against `expected`.

    Never raises for a mismatch or an unreadable file: the report says what failed (`error` is set when
    the file cannot be read at all). See the module docstring for the checks and tolerances.
    """
    output_path = Path(path)
    if count not in ("packets", "decode"):
        raise ValueError(f"count must be 'packets' or 'decode', not {count!r}")
    if output_path.is_dir():
        return _verify_folder(output_path, expected)
    report = VerifyReport(path=str(output_path), method=count, ok=False)
    try:
        timings = measure_streams(output_path)
        videos = [t for t in timings if t.kind == "video"]
        if not videos:
            report.error = "the output has no video stream"
            return report
        video = videos[0]
        rate = _declared_rate(output_path)
        frames = _decoded_frame_count(output_path) if count == "decode" else video.packets
        audio = [presented_duration(t) for t in timings if t.kind == "audio"]
        subtitles = subtitle_spans(output_path) if expected.subtitle_durations is not None else []
    except (InputError, av.FFmpegError, OSError) as error:
        message = error.message if isinstance(error, InputError) else str(error)
        report.error = f"cannot read the output back: {message}"
        return report

    frame_time = 1 / expected.rate
    duration = video.duration
    report.checks.append(_check("frames", "frames", expected.frame_count, frames, 1))
    rate_tolerance = expected.rate * _RATE_RELATIVE_TOLERANCE
    report.checks.append(_check("rate", "fps", expected.rate, rate, rate_tolerance))
    report.checks.append(_check("video duration", "s", expected.duration, duration, frame_time))
    report.checks += _stream_checks("audio", audio, expected.audio_durations, frame_time)
    report.checks += _stream_checks("subtitle", subtitles, expected.subtitle_durations, frame_time)
    report.ok = all(check.ok for check in report.checks)
    return report


def _format(value: float | int | None, unit: str) -> str:
    if value is None:
        return "none"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "fps":
        return f"{value:.4f} fps".replace(".0000 fps", " fps")
    return f"{value:g} {unit}"


def failure_message(report: VerifyReport) -> str:
    """One line naming every failed check with its expected and actual numbers."""
    if report.error:
        return f"output check failed for {report.path}: {report.error}"
    parts = [
        f"{check.name} {_format(check.actual, check.unit)}, expected {_format(check.expected, check.unit)}"
        f" (+-{_format(check.tolerance, check.unit)})"
        for check in report.failed()
    ]
    return f"output does not match the plan: {'; '.join(parts)} ({report.path})"


def raise_if_failed(report: VerifyReport) -> None:
    """Raise `VerifyError` with `failure_message` when the report is not ok."""
    if not report.ok:
        raise VerifyError(failure_message(report))
