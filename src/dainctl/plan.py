"""The frame plan: for every output timestamp, which input pair and which t.

Pure and exact: every rate and timestamp is a `Fraction` of a second, never a float. The plan is
streaming: input timestamps are pushed one by one as frames are decoded, and each push returns the
output frames that fall between the previous input frame and this one; `finish()` returns the frames
that hold the last input frame until the end of the input.

Sampling happens on the *input* timeline at a fixed step; output timestamps are the sample times
multiplied by `stretch` (1 for `interpolate`, N for `slowmo --factor N`). The k-th output frame is
therefore at exactly `k * step * stretch`, computed from time, not accumulated from counters.

The rules of the output's timeline (the README's "Timing" states them; the writer, the pipeline and the
timing check all take them from here):

- Time zero is the first video frame: the input's timestamps are taken relative to its first frame's.
- The end: there is one output frame for every sample time `k * step` before the input's end (the end of
  its last frame), and every output frame lasts exactly one output frame period. So the output is
  constant-rate and lasts `frames / output_rate` (`PlanSpec.output_duration`): as long as the input (times
  the stretch) when the rate divides it, else at most one output frame longer. The output never ends
  before the input does, and the last input frame is shown for at least as long as the input showed it.
- Audio and subtitles keep their offset to the first video frame exactly: whatever plays before it is cut
  (it has no picture), a stream that starts later starts as late in the output, and a stream that outlasts
  the video is carried whole (nothing the input plays after its first frame is lost). A carried stream's
  presented length is therefore `carried_span` of its input start and end. Codec delay is not part of a
  stream's length: AAC priming, Opus pre-skip and MP3 encoder padding are samples a player skips, marked
  as such in the container (MP4 edit lists, Opus pre-skip, Matroska's codec delay) and measured so.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterable

from .errors import UsageError

# Rates written as decimals that mean the NTSC family n*1000/1001 (23.976, 29.97, 59.94, 119.88 ...).
_NTSC_TOLERANCE = Fraction(1, 200)


def parse_rate(text: str | int | float | Fraction) -> Fraction:
    """Parse a frame rate: `60`, `59.94`, `60000/1001`, `30000:1001`, `23.976`.

    Decimals within 0.005 of an NTSC rate n*1000/1001 become that exact rate, as every video tool
    understands them; any other decimal is taken exactly (`12.5` -> 25/2).
    """
    if isinstance(text, Fraction):
        rate = text
    elif isinstance(text, int):
        rate = Fraction(text)
    else:
        spec = str(text).strip()
        try:
            if re.fullmatch(r"\d+\s*[/:]\s*\d+", spec):
                num, den = re.split(r"\s*[/:]\s*", spec)
                if int(den) == 0:
                    raise ValueError
                rate = Fraction(int(num), int(den))
            elif re.fullmatch(r"\d+(\.\d+)?|\.\d+", spec):
                rate = Fraction(spec)
                if rate.denominator != 1:
                    ntsc = Fraction(round(rate * Fraction(1001, 1000)) * 1000, 1001)
                    if abs(ntsc - rate) <= _NTSC_TOLERANCE:
                        rate = ntsc
            else:
                raise ValueError
        except (ValueError, ZeroDivisionError):
            raise UsageError(f"invalid frame rate {spec!r}: use e.g. 60, 59.94 or 60000/1001") from None
    if rate <= 0 or rate > 10_000:
        raise UsageError(f"invalid frame rate {text!s}: it must be between 0 and 10000 frames per second")
    return rate


def format_rate(rate: Fraction) -> str:
    """A short human name for a rate: 60, 59.94, 12.5."""
    if rate.denominator == 1:
        return str(rate.numerator)
    return f"{float(rate):.3f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class OutputFrame:
    """One output frame.

    `index` is its number in the output, `ts` its timestamp on the output timeline (seconds),
    `src` the input frame it starts from and `t` where it lies between `src` and `src + 1`:
    `t == 0` means the input frame itself (copied, never recomputed).
    """

    index: int
    ts: Fraction
    src: int
    t: Fraction

    @property
    def is_copy(self) -> bool:
        return self.t == 0


@dataclass(frozen=True)
class PlanSpec:
    """What is asked: sample the input every `step` seconds; output time = input time * `stretch`."""

    step: Fraction
    stretch: Fraction = Fraction(1)

    @property
    def output_rate(self) -> Fraction:
        return 1 / (self.step * self.stretch)

    @classmethod
    def for_factor(cls, input_rate: Fraction, factor: int) -> "PlanSpec":
        """`interpolate --factor N`: N times the input rate, same duration."""
        return cls(step=1 / (input_rate * factor))

    @classmethod
    def for_rate(cls, output_rate: Fraction) -> "PlanSpec":
        """`interpolate --fps R`: resample to exactly R, same duration."""
        return cls(step=1 / output_rate)

    @classmethod
    def for_slowmo(cls, input_rate: Fraction, factor: int) -> "PlanSpec":
        """`slowmo --factor N`: N-1 new frames per pair, played at the input rate (N times longer)."""
        return cls(step=1 / (input_rate * factor), stretch=Fraction(factor))

    def output_duration(self, frames: int) -> Fraction:
        """How long an output of `frames` frames lasts: each frame lasts one output frame period."""
        return Fraction(frames) / self.output_rate

    def frame_count(self, end: Fraction, hold_last: bool, last_ts: Fraction | None = None) -> int:
        """Number of output frames for an input whose frames span [0, end).

        With `hold_last` (videos), samples fill [0, end): the last input frame is held as long as the
        input held it. Without (image folders, where frames are instants), samples stop at the last
        input frame `last_ts` inclusive.
        """
        if hold_last:
            return max(1, math.ceil(end / self.step))
        assert last_ts is not None
        return math.floor(last_ts / self.step) + 1


def carried_span(start: Fraction, end: Fraction, video_start: Fraction, stretch: Fraction = Fraction(1)) -> Fraction:
    """Presented length in the output of an audio or subtitle stream that plays from `start` to `end` in
    the input, whose first video frame is at `video_start` (the module's rules): what plays before the
    first video frame is cut, the rest is carried whole, times `stretch` (slow motion). 0 when the stream
    ends before the video starts."""
    return max(Fraction(0), end - max(start, video_start)) * stretch


class FramePlanner:
    """Streaming planner: push input timestamps in order, collect output frames.

    Input timestamps must start at 0 and strictly increase (the reader guarantees both).
    """

    def __init__(self, spec: PlanSpec):
        self.spec = spec
        self._next_index = 0
        self._last_ts: Fraction | None = None
        self._count = 0

    @property
    def input_frames(self) -> int:
        return self._count

    @property
    def output_frames(self) -> int:
        return self._next_index

    def _sample_time(self, index: int) -> Fraction:
        return index * self.spec.step

    def _emit_until(self, limit: Fraction, *, inclusive: bool, nxt: Fraction | None) -> list[OutputFrame]:
        """Output frames whose sample time lies in [last_ts, limit) (or up to limit inclusive)."""
        assert self._last_ts is not None
        frames = []
        src = self._count - 1
        while True:
            s = self._sample_time(self._next_index)
            if s > limit or (s == limit and not inclusive):
                break
            if nxt is not None and s > self._last_ts:
                t = (s - self._last_ts) / (nxt - self._last_ts)
            else:
                t = Fraction(0)
            frames.append(OutputFrame(self._next_index, s * self.spec.stretch, src, t))
            self._next_index += 1
        return frames

    def push(self, ts: Fraction) -> list[OutputFrame]:
        """Add input frame number `input_frames` at time `ts`; return the output frames before it."""
        if self._last_ts is None:
            if ts != 0:
                raise ValueError(f"the first input timestamp must be 0, not {ts}")
            frames: list[OutputFrame] = []
        else:
            if ts <= self._last_ts:
                raise ValueError(f"input timestamps must increase: {ts} after {self._last_ts}")
            frames = self._emit_until(ts, inclusive=False, nxt=ts)
        self._last_ts = ts
        self._count += 1
        return frames

    def finish(self, end: Fraction | None) -> list[OutputFrame]:
        """Close the plan. `end` is when the last input frame stops being shown (videos); `None` for
        image folders, whose last frame is an instant: it is emitted once, not held."""
        if self._last_ts is None:
            return []
        if end is None:
            return self._emit_until(self._last_ts, inclusive=True, nxt=None)
        if end <= self._last_ts:
            raise ValueError(f"end {end} must come after the last frame at {self._last_ts}")
        return self._emit_until(end, inclusive=False, nxt=None)


def plan_all(spec: PlanSpec, timestamps: Iterable[Fraction], end: Fraction | None) -> list[OutputFrame]:
    """The whole plan at once (for tests, `--dry-run` and small inputs)."""
    planner = FramePlanner(spec)
    frames: list[OutputFrame] = []
    for ts in timestamps:
        frames.extend(planner.push(ts))
    frames.extend(planner.finish(end))
    return frames


# ------------------------------------------------------------------------------------ the whole plan
DEFAULT_SEGMENT_SECONDS = Fraction(60)


@dataclass(frozen=True)
class Segment:
    """A contiguous part of the plan: input positions `first_input`..`last_input` (the last one shared
    with the next segment as its first) and the output frames `first_output` .. `first_output + frames
    - 1`, from `start` to `end` seconds on the output timeline."""

    index: int
    first_input: int
    last_input: int
    first_output: int
    frames: int
    start: Fraction
    end: Fraction

    def as_dict(self) -> dict:
        return {"index": self.index, "first_input": self.first_input, "last_input": self.last_input,
                "first_output": self.first_output, "frames": self.frames, "start": str(self.start),
                "end": str(self.end)}


@dataclass
class WholePlan:
    """Every output frame of a run, decided before any is computed.

    timestamps: the input timeline's times (seconds from its first frame); cut_before[i]: a cut lies
    between input frames i-1 and i; end: the input's end (videos) or None (image folders, whose last
    frame is an instant).
    """

    spec: PlanSpec
    timestamps: list[Fraction]
    cut_before: list[bool]
    end: Fraction | None
    frames: list[OutputFrame]
    _by_src: list[list[OutputFrame]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_src = [[] for _ in self.timestamps]
        for frame in self.frames:
            self._by_src[frame.src].append(frame)

    @classmethod
    def build(cls, spec: PlanSpec, timestamps: list[Fraction], cut_before: list[bool], end: Fraction | None) -> "WholePlan":
        return cls(spec, list(timestamps), list(cut_before), end, plan_all(spec, timestamps, end))

    @property
    def input_frames(self) -> int:
        return len(self.timestamps)

    @property
    def output_frames(self) -> int:
        return len(self.frames)

    @property
    def output_duration(self) -> Fraction:
        return self.spec.output_duration(len(self.frames))

    def blends_after(self, src: int) -> bool:
        """Whether the output frames between input frames `src` and `src + 1` are computed from that pair:
        a next input frame exists and no cut lies between the two (the old shot is held until the new one
        starts); otherwise they are copies of input frame `src`."""
        return src + 1 < len(self.timestamps) and not self.cut_before[src + 1]

    def blends(self, frame: OutputFrame) -> bool:
        """Whether `frame` is computed from its pair, not copied: t > 0 and `blends_after(frame.src)`."""
        return not frame.is_copy and self.blends_after(frame.src)

    def frames_from(self, src: int) -> list[OutputFrame]:
        """The output frames that start at input frame `src` (between it and the next, or held after the
        last), in order."""
        return self._by_src[src]

    def sources(self, first_input: int, last_input: int) -> range:
        """The input positions whose output frames a segment from `first_input` to `last_input` makes: all
        but its last, which starts the next segment; the plan's last segment also makes those of the last
        input frame (held until the end)."""
        return range(first_input, last_input + 1 if last_input == len(self.timestamps) - 1 else last_input)

    def segments(self, seconds: Fraction | None) -> list[Segment]:
        """The plan cut into segments of about `seconds` of input each (None: one segment). A boundary is
        an input frame; where a scene cut lies within half a segment of the target, it goes there, so that
        no pair that a segment computes crosses into the next shot's segment; a last part shorter than
        half a segment joins the one before."""
        last = len(self.timestamps) - 1
        bounds = [0]
        if seconds is not None and seconds > 0 and last > 0:
            ts, half = self.timestamps, seconds / 2
            while True:
                start = ts[bounds[-1]]
                if (self.end if self.end is not None else ts[last]) - start < seconds + half:
                    break
                target = start + seconds
                window = [i for i in range(bounds[-1] + 1, last) if abs(ts[i] - target) <= half]
                cuts = [i for i in window if self.cut_before[i]]
                if cuts:
                    boundary = min(cuts, key=lambda i: (abs(ts[i] - target), i))
                else:
                    boundary = next((i for i in range(bounds[-1] + 1, last) if ts[i] >= target), None)
                if boundary is None:
                    break
                bounds.append(boundary)
        bounds.append(last)
        # A part without output frames (a low --fps over a short stretch) joins the next part, or the one
        # before at the end.
        parts = [[first, final, sum(len(self.frames_from(i)) for i in self.sources(first, final))]
                 for first, final in zip(bounds[:-1], bounds[1:])]
        merged: list[list[int]] = []
        for part in parts:
            if merged and merged[-1][2] == 0:
                merged[-1] = [merged[-1][0], part[1], part[2]]
            else:
                merged.append(part)
        if len(merged) > 1 and merged[-1][2] == 0:
            last_part = merged.pop()
            merged[-1] = [merged[-1][0], last_part[1], merged[-1][2]]
        segments, first_output = [], 0
        period = self.spec.step * self.spec.stretch
        for index, (first, final, count) in enumerate(merged):
            segments.append(Segment(index, first, final, first_output, count, first_output * period,
                                    (first_output + count) * period))
            first_output += count
        return segments

    def frames_of(self, segment: Segment) -> list[OutputFrame]:
        return self.frames[segment.first_output : segment.first_output + segment.frames]

    def digest(self) -> str:
        """A digest of every output frame's (ts, src, t) and blend decision: equal plans, equal digests."""
        import hashlib

        text = ";".join(f"{f.ts},{f.src},{f.t},{int(self.blends(f))}" for f in self.frames)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
