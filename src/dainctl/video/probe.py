"""Measure what a written file really contains, by demuxing its packets (no decoding).

Used to check the timing contract after writing: every stream's first and last instant, its packet count
and the duration the container declares.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

import av

from dainctl.errors import InputError

# FFmpeg muxers and demuxers of the QuickTime/MP4 family (format names as `av` reports them; a demuxer's
# name lists them all: "mov,mp4,m4a,3gp,3g2,mj2"). Their stream durations are exact (edit lists), and
# their edit lists can start a stream before time zero with the head marked to be skipped.
MOV_FAMILY = frozenset({"mov", "mp4", "m4a", "3gp", "3g2", "mj2", "ipod", "psp", "ismv", "f4v"})


def format_name(container) -> str:
    """An open PyAV container's format, by its first name ("mov" for the demuxer "mov,mp4,m4a,...")."""
    return container.format.name.split(",")[0]


def is_mov_family(container) -> bool:
    """Whether an open PyAV container (input or output) is of the QuickTime/MP4 family."""
    return format_name(container) in MOV_FAMILY


@dataclass(frozen=True)
class StreamTiming:
    """One stream of a file, measured from its packets; times are seconds in the container's timeline.

    start: earliest packet pts (negative for an audio encoder's priming samples).
    end: where playback of the stream stops: in MP4/MOV, which state a stream duration (the edit list's;
        packet durations follow decode order there), the later of 0 and the first pts plus that duration;
        otherwise the latest packet pts + duration (Matroska, AVI, MPEG-TS: what they declare, if anything,
        is an estimate).
    packets: packets with data (for video: frames).
    declared_duration: the stream duration the container header states, or None.
    """

    index: int
    kind: str
    codec: str
    start: Fraction | None
    end: Fraction | None
    packets: int
    declared_duration: Fraction | None

    @property
    def duration(self) -> Fraction | None:
        """end - start, or None when the stream has no timed packets."""
        if self.start is None or self.end is None:
            return None
        return self.end - self.start


def measure_streams(path: str | os.PathLike) -> list[StreamTiming]:
    """Demux every packet of a file and return the measured timing of each stream, in stream order."""
    try:
        container = av.open(str(path), metadata_errors="replace")
    except (av.FFmpegError, OSError) as error:
        raise InputError(f"cannot open {path}: {error}") from None
    with container:
        # Only MP4/MOV state stream durations that can be trusted (their edit lists); elsewhere (AVI,
        # MPEG-TS) a declared duration is an estimate or counts an empty packet, and packets tell the truth.
        trusts_declared = is_mov_family(container)
        streams = list(container.streams)
        starts: dict[int, int] = {}
        ends: dict[int, int] = {}
        counts = {stream.index: 0 for stream in streams}
        for packet in container.demux():
            if packet.size == 0 or packet.pts is None:
                continue
            index = packet.stream_index
            counts[index] += 1
            end = packet.pts + (packet.duration or 0)
            starts[index] = min(starts.get(index, packet.pts), packet.pts)
            ends[index] = max(ends.get(index, end), end)
        timings = []
        for stream in streams:
            time_base = Fraction(stream.time_base)
            index = stream.index
            declared = stream.duration * time_base if stream.duration else None
            start = starts[index] * time_base if index in starts else None
            end = ends[index] * time_base if index in ends else None
            if declared is not None and start is not None and trusts_declared:
                end = max(start, Fraction(0)) + declared
            timings.append(
                StreamTiming(
                    index=index,
                    kind=stream.type,
                    codec=stream.codec_context.name if stream.codec_context else "?",
                    start=start,
                    end=end,
                    packets=counts[index],
                    declared_duration=declared,
                )
            )
        return timings
