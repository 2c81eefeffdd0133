"""The analysis pass: the input's timeline, fixed for the whole input before any interpolation.

    timeline = analyze(job.input_path, folder_rate=..., scene_threshold=0.3, dedup=False)
    plan = WholePlan.build(spec, timeline)          # dainctl.plan: every output frame, and the segments

One decode of every frame, at thumbnail size (`ANALYSIS_WIDTH` pixels across: the scene detector's
signatures are thumbnails of at most 128 pixels anyway), gives:
  * each frame's timestamp as the reader gives it (repaired where the file's own do not increase);
  * scene cuts and, with `--dedup`, the duplicate frames left off the timeline (`dainctl.scene`);
  * the timeline: the frames that stay, their times relative to the first of them (a frame at or
    before its predecessor is dropped, never reordered), and whether a cut comes before each;
  * the input's end (the container's end, or the last frame's end).
The interpolation pass then decodes the frames at full size and looks each up here: by position when
it decodes from the start, by timestamp after a seek (only where no timestamp needed repair:
`seekable`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

from dainctl.errors import InputError
from dainctl.scene import DEFAULT_DEDUP_THRESHOLD, DEFAULT_SCENE_THRESHOLD, SceneCut, SceneTimeline

ANALYSIS_WIDTH = 256


@dataclass(frozen=True)
class TimelineEntry:
    """One input frame that stays on the timeline.

    decode_index: its number in decode order (0 = the first decoded frame);
    source_ts: its time as the reader yields it (seconds after the stream's start; frame numbers for
        image folders);
    ts: seconds from the first frame on the timeline (image folders: frame number / folder rate);
    cut_before: a scene cut separates it from the previous entry (never blend the two).
    """

    decode_index: int
    source_ts: Fraction
    ts: Fraction
    cut_before: bool


@dataclass
class InputTimeline:
    """What the analysis pass found; `end` is the input's end on the timeline (seconds)."""

    path: Path
    entries: list[TimelineEntry]
    end: Fraction
    is_folder: bool
    input_rate: Fraction
    decoded: int
    duplicates_dropped: int
    cuts: list[SceneCut]  # decode-order index and the reader's timestamp of each cut
    seekable: bool
    notices: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def hold_last(self) -> bool:
        """Videos hold their last frame until the input's end; an image folder's last frame is an instant."""
        return not self.is_folder


class AnalysisCancelled(Exception):
    """The analysis pass was stopped before its end (`analyze`'s `stop`)."""


def analyze(
    path: str | Path,
    *,
    folder_rate: Fraction,
    scene_threshold: float | None = DEFAULT_SCENE_THRESHOLD,
    dedup: bool = False,
    dedup_threshold: float = DEFAULT_DEDUP_THRESHOLD,
    width: int | None = ANALYSIS_WIDTH,
    stop: threading.Event | None = None,
) -> InputTimeline:
    """Decode `path` once (thumbnails `width` wide; None: full size) and fix its timeline. Once `stop` is
    set, the pass ends at its next frame with `AnalysisCancelled`."""
    from dainctl.video import open_input

    started = time.perf_counter()
    with open_input(path) as source:
        info = source.info
        input_rate = info.rate if (info.rate and not info.is_folder) else folder_rate
        timeline: SceneTimeline[tuple[int, Fraction]] = SceneTimeline(scene_threshold, dedup=dedup,
                                                                      dedup_threshold=dedup_threshold)
        entries: list[TimelineEntry] = []
        first_ts: Fraction | None = None
        decoded = 0
        thumbnail_width = width if (width is not None and width < info.width) else None

        def place(kept) -> None:
            nonlocal first_ts
            for item in kept:
                index, source_ts = item.frame
                ts = source_ts / folder_rate if info.is_folder else source_ts
                if first_ts is None:
                    first_ts = ts
                ts -= first_ts
                if entries and ts <= entries[-1].ts:
                    continue  # broken timestamps: dropped, never reordered
                entries.append(TimelineEntry(index, source_ts, ts, item.cut_before))

        for source_ts, rgb in source.frames(width=thumbnail_width):
            if stop is not None and stop.is_set():
                raise AnalysisCancelled(f"the analysis of {path} was stopped")
            place(timeline.push(source_ts, (decoded, source_ts), rgb))
            decoded += 1
        place(timeline.finish())
        if not entries:
            raise InputError(f"no frames could be decoded from {path}")
        end = _input_end(source, info.is_folder, first_ts or Fraction(0), entries[-1].ts, input_rate)
        if not info.is_folder and getattr(info, "time_base", None):
            entries, end = snap_to_rate_grid(entries, end, input_rate, info.time_base)
        notices = list(getattr(source, "notices", []))
        # Frames are found again after a seek by their timestamps: exact unless some had to be repaired.
        seekable = info.is_folder or getattr(source, "repaired_timestamps", 0) == 0
    return InputTimeline(Path(path), entries, end, info.is_folder, input_rate, decoded, timeline.dropped,
                         list(timeline.cuts), seekable, notices, time.perf_counter() - started)


class BackgroundAnalysis:
    """`analyze(path, **options)` started on a thread of its own, so that it runs while the process goes
    on loading: the CLI starts it before it imports the pipeline (and torch, 1-1.4 s of one core on a
    2-core machine, with the other idle), and decoding and OpenCV release the GIL. `result()` waits for
    the timeline, or raises the error the pass raised, as `analyze` would have. A run that ends before it
    needs the result (an error, Ctrl-C) calls `cancel()` (or leaves the `with` block): the pass stops at
    its next frame and its thread ends, as it must before the process does (the interpreter's shutdown
    aborts a thread it finds inside the decoder: exit 134 instead of the error's code).
    Measured on 2 cores, `dainctl interpolate` of 50-frame clips, three alternating runs each: 640x360
    3.35-3.50 -> 3.37-3.39 s, 1280x720 4.75-4.87 -> 4.68-4.80 s, 1920x1080 7.21-7.38 -> 6.98-7.11 s
    (docs/benchmarks.md, tenth session)."""

    def __init__(self, path: str | Path, **options):
        self.path = Path(path)
        self.options = options
        self._timeline: InputTimeline | None = None
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._work, name="dainctl-analysis", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        try:
            self._timeline = analyze(self.path, stop=self._stop, **self.options)
        except BaseException as error:  # handed to the thread that asks for the result
            self._error = error
        finally:
            self._done.set()

    def serves(self, path: str | Path, options: dict) -> bool:
        """Whether this is the pass `analyze(path, **options)` would make."""
        return self.path == Path(path) and self.options == options

    def cancel(self) -> None:
        """Stop the pass at its next frame (a finished one: nothing to stop) and wait for its thread."""
        self._stop.set()
        self._wait()

    def _wait(self) -> None:
        # An event, not Thread.join alone: a join that Ctrl-C interrupts can mark a running thread as
        # stopped (CPython 3.11, bpo-45274's fix), and a later join would then not wait for it.
        self._done.wait()
        self._thread.join()

    def __enter__(self) -> "BackgroundAnalysis":
        return self

    def __exit__(self, *exc_info) -> None:
        self.cancel()

    def result(self) -> InputTimeline:
        self._wait()
        if self._error is not None:
            raise self._error
        return self._timeline


def snap_to_rate_grid(entries: list[TimelineEntry], end: Fraction, rate: Fraction,
                      tick: Fraction) -> tuple[list[TimelineEntry], Fraction]:
    """Times that a coarse time base rounded, put back on the stream's frame grid.

    Matroska stores times in milliseconds: frame k of a 15 fps stream is at round(66.67 k) ms, so a
    frame that a 2x output should copy lies 0.3 ms off the output's grid and is recomputed at t = 0.995
    instead. A time within half a tick (rounding's reach) of a multiple of 1/rate, and the end too, is
    set to that multiple when the result still strictly increases; other times (variable-rate video,
    gaps) keep their own.
    """
    if rate <= 0 or tick <= 0 or 1 / rate <= 2 * tick:
        return entries, end

    def snapped(ts: Fraction) -> Fraction:
        grid = Fraction(round(ts * rate)) / rate
        return grid if abs(grid - ts) <= tick / 2 else ts

    times = [snapped(entry.ts) for entry in entries]
    if any(later <= earlier for earlier, later in zip(times, times[1:])) or times[0] != 0:
        return entries, end
    new_end = snapped(end)
    if new_end <= times[-1]:
        new_end = end
    return [replace(entry, ts=ts) for entry, ts in zip(entries, times)], new_end


def _input_end(source, is_folder: bool, first_ts: Fraction, last_ts: Fraction, input_rate: Fraction) -> Fraction:
    """The input's own end (container duration, or the last decoded frame's end): frames dropped as
    duplicates at the very end still count, and the last kept frame is held over them."""
    declared = getattr(source, "end_ts", None)
    if declared is not None and not is_folder and declared - first_ts > last_ts:
        return declared - first_ts
    return last_ts + 1 / input_rate
