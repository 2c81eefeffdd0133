"""Run a frame plan: decode, interpolate and encode concurrently.

Three stages joined by bounded queues, so memory does not grow with the length of the video:

    decoder thread --(ts, rgb)--> compute (this thread) --(ts, rgb)--> encoder thread

The compute stage keeps the decoded frames it still needs in a `FrameStore` (each goes to the engine's
device once and gets its per-frame work once), gathers up to the engine's pairs per forward, and hands
them to the engine's seam in one call (`dainctl.engines.base`).

An error in any stage stops the others (no hang: every blocking put/get wakes up to check the stop
flag), the temporary output is removed, and the error is raised here. Ctrl-C lands in this thread
and takes the same path.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from .engines.base import Engine, PairJob, as_engine
from .errors import InputError, VerifyError
from .framestore import FrameStore, HostFrame, to_rgb, to_tensor  # noqa: F401  (to_rgb, to_tensor: re-exported)
from .paths import commit_output, remove_path, temp_path_for
from .plan import FramePlanner, OutputFrame, PlanSpec
from .scene import DEFAULT_DEDUP_THRESHOLD, DEFAULT_SCENE_THRESHOLD, SceneTimeline
from .verify import ExpectedOutput, expected_audio_durations, failure_message, verify_output

_QUEUE_DEPTH = 8
_POLL_SECONDS = 0.1
_END = object()


@dataclass(frozen=True)
class EncodeOptions:
    codec: str | None = None  # None: the container's default (`dainctl.video.writer.default_video_codec`)
    crf: int = 18
    preset: str | None = None
    pix_fmt: str | None = None  # None: follow the input's bit depth


@dataclass
class Job:
    """One run: what to read, what to write and how to sample time."""

    input_path: Path
    output_path: Path
    mode: str  # "interpolate" or "slowmo"
    factor: int | None = None
    fps: Fraction | None = None
    audio: str = "copy"  # "copy", "drop" or "stretch"
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    folder_fps: Fraction = Fraction(24)
    scene_threshold: float | None = DEFAULT_SCENE_THRESHOLD  # None: no scene-cut detection
    dedup: bool = False
    dedup_threshold: float = DEFAULT_DEDUP_THRESHOLD
    verify: bool = True  # False: a failed timing check only warns


@dataclass
class RunResult:
    input_path: Path
    output_path: Path
    input_frames: int
    output_frames: int
    input_rate: Fraction
    output_rate: Fraction
    input_duration: Fraction
    output_duration: Fraction
    interpolated_frames: int
    elapsed: float
    stage_seconds: dict[str, float]
    audio: str
    decoded_frames: int = 0
    duplicates_dropped: int = 0
    scene_cuts: list[dict] = field(default_factory=list)
    verification: dict | None = None
    notices: list[str] = field(default_factory=list)
    subtitles: dict = field(default_factory=lambda: {"carried": [], "dropped": []})


class _Stop(Exception):
    """Raised inside a stage when another stage has failed."""


# How much decoding and encoding are niced when the engine computes on the CPU: the decode and encode
# threads (colour conversion, scene detection, feeding the codecs) and the codecs' own worker threads
# (x264: frame threads plus lookahead). The engine, on the main thread, is the bottleneck there; at
# equal priority the scheduler gives each of those many threads the same share of the cores as the
# engine's one. Niced, they take what the engine leaves, and the pipeline runs at the engine's speed.
BACKGROUND_NICE = 10


def lower_thread_priority(increment: int, tid: int) -> bool:
    """Nice one thread of this process (native id `tid`) by `increment`: Linux, where niceness is per
    thread and inherited by the threads it starts. Returns whether it was done; elsewhere, or when
    refused (the thread has ended, say), nothing changes."""
    if increment <= 0 or not sys.platform.startswith("linux"):
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + increment)
    except (OSError, AttributeError):
        return False
    return True


def _thread_ids() -> set[int]:
    try:
        return {int(name) for name in os.listdir("/proc/self/task")}
    except OSError:
        return set()


@contextlib.contextmanager
def niced_new_threads(increment: int) -> Iterator[None]:
    """Nice, by `increment`, the threads this process starts while the block runs (Linux): the decode and
    encode stages, and a codec's worker threads, started when the main thread opens it. Threads those
    start later inherit the niceness."""
    if increment <= 0 or not sys.platform.startswith("linux"):
        yield
        return
    before = _thread_ids()
    try:
        yield
    finally:
        for tid in sorted(_thread_ids() - before):
            lower_thread_priority(increment, tid)


class _Stage(threading.Thread):
    def __init__(self, name: str, target: Callable[[], None], failed: threading.Event):
        super().__init__(name=name, daemon=True)
        self._target_fn = target
        self._failed = failed
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._target_fn()
        except _Stop:
            pass
        except BaseException as exc:  # handed to the main thread, which re-raises it
            self.error = exc
            self._failed.set()


def _put(q: queue.Queue, item, stop: threading.Event) -> None:
    while True:
        if stop.is_set():
            raise _Stop
        try:
            q.put(item, timeout=_POLL_SECONDS)
            return
        except queue.Full:
            continue


def _get(q: queue.Queue, stop: threading.Event):
    while True:
        if stop.is_set():
            raise _Stop
        try:
            return q.get(timeout=_POLL_SECONDS)
        except queue.Empty:
            continue


def configure_cpu_threads(engine_name: str, cpu_count: int | None = None) -> int:
    """Set torch's and OpenCV's thread counts for engine work on the CPU; returns the count.

    The decoder and encoder run beside the engine. On a small machine, an engine that also takes every
    core oversubscribes it: measured on 2 cores, cockatoo.mp4 (720p) to 2x took 200-290 s with two
    engine threads and 43-53 s with one (and, with decoding and encoding niced, 33.2 s against 30.9 s).
    The weight-free engine leaves one core to decode and encode; DAIN's convolutions dominate its runs,
    so it keeps them all. (The high profile's independent DIS calls are the exception: they run on a
    pool of one thread per core, `FlowEngine.flow_workers`, each call single-threaded inside.)
    """
    cores = cpu_count or os.cpu_count() or 1
    threads = cores if engine_name == "dain" else max(1, cores - 1)
    torch.set_num_threads(threads)
    try:
        import cv2

        cv2.setNumThreads(threads)
    except ImportError:  # pragma: no cover - OpenCV is a dependency
        pass
    return threads


def plan_spec(job: Job, input_rate: Fraction) -> PlanSpec:
    if job.mode == "slowmo":
        return PlanSpec.for_slowmo(input_rate, job.factor or 2)
    if job.fps is not None:
        return PlanSpec.for_rate(job.fps)
    return PlanSpec.for_factor(input_rate, job.factor or 2)


def run(
    job: Job,
    engine: Engine,
    *,
    progress: Callable[[int, int | None], None] | None = None,
    on_plan: Callable[[dict], None] | None = None,
) -> RunResult:
    """Interpolate `job.input_path` into `job.output_path` with `engine`.

    `progress(done, total)` is called after every output frame (total may be None when unknown);
    `on_plan(summary)` once before the first frame, with the planned rates and frame count.
    """
    from .video import DEFAULT_PRESET, open_input, open_output  # PyAV is only needed once a run starts
    from .video.writer import is_folder_output

    started = time.perf_counter()
    engine = as_engine(engine)
    nice = BACKGROUND_NICE if _computes_on_cpu(engine) else 0
    with niced_new_threads(nice):
        source = open_input(job.input_path)
    info = source.info
    temp_path = temp_path_for(job.output_path)
    writer = None
    try:
        input_rate = info.rate if (info.rate and not info.is_folder) else job.folder_fps
        spec = plan_spec(job, input_rate)
        hold_last = not info.is_folder
        planned_total = _planned_total(spec, info, input_rate, hold_last)
        if on_plan is not None:
            on_plan(
                {
                    "input_rate": input_rate,
                    "output_rate": spec.output_rate,
                    "input_frames": info.frame_count,
                    "output_frames": planned_total,
                    "output_duration": (planned_total / spec.output_rate) if planned_total else None,
                }
            )
        audio = job.audio if (not info.is_folder and info.audio_streams) else "drop"
        run_notices: list[str] = []
        if audio != "drop" and is_folder_output(job.output_path):
            audio = "drop"
            run_notices.append(
                f"an image folder holds no sound: the input's {info.audio_streams} audio stream(s) are not written"
            )
        with niced_new_threads(nice):  # the codec's worker threads start when it is opened
            writer = open_output(
                temp_path,
                width=info.width,
                height=info.height,
                rate=spec.output_rate,
                codec=job.encode.codec,
                crf=job.encode.crf,
                preset=job.encode.preset or DEFAULT_PRESET,
                pix_fmt=job.encode.pix_fmt,
                audio_from=source,  # subtitles are carried even when the audio is dropped
                audio=audio,
                stretch=spec.stretch,
                color=getattr(info, "color", None),
                rotation=getattr(info, "rotation", 0),
                sample_aspect_ratio=getattr(info, "sample_aspect_ratio", None),
                bit_depth=getattr(info, "bit_depth", 8),
            )
        timeline = SceneTimeline(job.scene_threshold, dedup=job.dedup, dedup_threshold=job.dedup_threshold)
        counts, stage_seconds, end = _run_stages(
            source, writer, engine, spec, input_rate, hold_last, planned_total, progress, timeline, nice
        )
        # The plan's rule for the end: every output frame lasts one output frame period.
        end_ts = spec.output_duration(counts["output"])
        close_started = time.perf_counter()
        writer.close(end_ts)
        stage_seconds["encode"] += time.perf_counter() - close_started
        notices = run_notices + list(getattr(source, "notices", [])) + list(getattr(writer, "notices", []))
        audio_plan = list(getattr(writer, "audio_plan", []))
        subtitles = getattr(writer, "subtitles", {"carried": [], "dropped": []})
        writer = None
        source.close()
        if counts["input"] == 0:
            raise InputError(f"no frames could be decoded from {job.input_path}")
        report = _verify(job, temp_path, spec, end, hold_last, counts, audio_plan, info.start)
        if not report.ok and job.verify:
            kept_unverified = _keep_unverified(temp_path, job.output_path)
            raise VerifyError(f"{failure_message(report)}; the output was kept as {kept_unverified} for inspection")
        commit_output(temp_path, job.output_path)
    except BaseException:
        if writer is not None:
            try:
                writer.abort()
            except Exception:
                pass
        source.close()
        remove_path(temp_path)
        raise
    return RunResult(
        input_path=job.input_path,
        output_path=job.output_path,
        input_frames=counts["input"],
        output_frames=counts["output"],
        input_rate=input_rate,
        output_rate=spec.output_rate,
        input_duration=end if hold_last else Fraction(counts["input"]) / input_rate,
        output_duration=end_ts,
        interpolated_frames=counts["interpolated"],
        elapsed=time.perf_counter() - started,
        stage_seconds=stage_seconds,
        audio=audio,
        decoded_frames=counts["decoded"],
        duplicates_dropped=timeline.dropped,
        scene_cuts=[{"input_frame": c.index, "time": float(c.ts) if not info.is_folder else float(c.ts / input_rate), "score": round(c.score, 3)} for c in timeline.cuts],
        verification=report.to_dict(),
        notices=notices,
        subtitles=subtitles,
    )


def _verify(job: Job, path: Path, spec: PlanSpec, end: Fraction, hold_last: bool, counts: dict, audio_plan: list,
            video_start: Fraction):
    """Re-open the written output and check it against the plan, computed anew from the input's end."""
    if hold_last:
        frames = spec.frame_count(end, hold_last=True)
        audio_durations = expected_audio_durations(job.input_path, audio_plan, video_start, spec.stretch)
    else:
        frames = counts["output"]
        audio_durations = ()
    expected = ExpectedOutput(frames, spec.output_rate, spec.output_duration(frames),
                              audio_durations=audio_durations, subtitle_durations=None)
    return verify_output(path, expected)


def _keep_unverified(temp_path: Path, output_path: Path) -> Path:
    """A complete output that failed its check is not put under the output name, nor thrown away."""
    suffix = output_path.suffix if temp_path.is_file() else ""
    kept = output_path.with_name(f"{output_path.stem if suffix else output_path.name}.unverified{suffix}")
    commit_output(temp_path, kept)
    return kept


def _planned_total(spec: PlanSpec, info, input_rate: Fraction, hold_last: bool) -> int | None:
    if info.frame_count is None:
        return None
    if hold_last:
        end = info.duration if info.duration else Fraction(info.frame_count) / input_rate
        return spec.frame_count(end, hold_last=True)
    return spec.frame_count(Fraction(0), hold_last=False, last_ts=Fraction(info.frame_count - 1) / input_rate)


def _run_stages(source, writer, engine, spec, input_rate, hold_last, planned_total, progress, timeline, nice):
    folder_rate = input_rate if source.info.is_folder else None
    stop = threading.Event()
    decoded: queue.Queue = queue.Queue(maxsize=_QUEUE_DEPTH)
    to_encode: queue.Queue = queue.Queue(maxsize=_QUEUE_DEPTH)
    stage_seconds = {"decode": 0.0, "interpolate": 0.0, "encode": 0.0}
    counts = {"decoded": 0, "input": 0, "output": 0, "interpolated": 0}

    def decode() -> None:
        # Scene cuts and duplicates are found here, beside decoding, off the compute thread.
        frames: Iterator = iter(source.frames())
        while True:
            t0 = time.perf_counter()
            item = next(frames, _END)
            if item is _END:
                kept = timeline.finish()
            else:
                counts["decoded"] += 1
                kept = timeline.push(*item)
            stage_seconds["decode"] += time.perf_counter() - t0
            for frame in kept:
                _put(decoded, (frame.ts, frame.frame, frame.cut_before), stop)
            if item is _END:
                _put(decoded, _END, stop)
                return

    def encode() -> None:
        while True:
            item = _get(to_encode, stop)
            if item is _END:
                return
            ts, rgb = item
            t0 = time.perf_counter()
            writer.write(rgb.numpy() if isinstance(rgb, HostFrame) else rgb, ts)
            stage_seconds["encode"] += time.perf_counter() - t0

    decoder = _Stage("dainctl-decode", decode, stop)
    encoder = _Stage("dainctl-encode", encode, stop)
    planner = FramePlanner(spec)
    end: Fraction | None = None
    try:
        # Started inside the try: a Ctrl-C landing here must still stop them before the input closes.
        with niced_new_threads(nice):
            decoder.start()
            encoder.start()
        first_ts: Fraction | None = None
        previous: tuple[Fraction, np.ndarray, int] | None = None  # (time since the first frame, pixels, index)
        batch = _Batch(engine, to_encode, stop, counts, stage_seconds, planned_total, progress)
        index = -1
        while True:
            item = _get(decoded, stop)
            if item is _END:
                break
            ts, rgb, cut_before = item
            if folder_rate is not None:
                ts = ts / folder_rate  # image folders count frames; their rate is --folder-fps
            if first_ts is None:
                first_ts = ts
            ts -= first_ts
            # A frame at or before the previous one (broken timestamps) is dropped, never reordered.
            if previous is not None and ts <= previous[0]:
                continue
            index += 1
            outputs = planner.push(ts)
            counts["input"] += 1
            if outputs:
                # Never blend across a scene cut: the old shot is held until the new one starts.
                batch.add(outputs, previous, None if cut_before else (rgb, index))
            previous = (ts, rgb, index)
        end = Fraction(0)
        if previous is not None:
            # The input's own end (container duration, or the last decoded frame's end): frames dropped
            # as duplicates at the very end still count, and the last kept frame is held over them.
            end = _input_end(source, first_ts or Fraction(0), previous[0], input_rate)
            outputs = planner.finish(end if hold_last else None)
            batch.add(outputs, previous, None)
        batch.flush()
        _put(to_encode, _END, stop)
        while encoder.is_alive() and not stop.is_set():
            encoder.join(_POLL_SECONDS)
    except _Stop:
        pass
    except BaseException:
        _halt(stop, decoder, encoder)
        raise
    for stage in (decoder, encoder):
        if stage.error is not None:
            _halt(stop, decoder, encoder)
            raise stage.error
    assert end is not None
    return counts, stage_seconds, end


def _computes_on_cpu(engine) -> bool:
    return engine.compute_device.type == "cpu"


def _halt(stop: threading.Event, *stages: _Stage) -> None:
    """Stop every stage and wait (briefly: they poll the flag) for those that were started."""
    stop.set()
    for stage in stages:
        if stage.ident is not None:
            stage.join(2)


def _input_end(source, first_ts: Fraction, last_kept_ts: Fraction, input_rate: Fraction) -> Fraction:
    declared = getattr(source, "end_ts", None)
    if declared is not None and not source.info.is_folder and declared - first_ts > last_kept_ts:
        return declared - first_ts
    return last_kept_ts + 1 / input_rate


class _Batch:
    """Output frames in order, the generated ones computed up to the engine's pairs per forward at once.

    `add(outputs, (ts, rgb0, index0), (rgb1, index1) or None)` queues the output frames between two input
    frames: copies of rgb0 where t == 0, and everywhere when the second frame is None (the last frame
    held, or a scene cut). Everything queued is computed and sent to the encoder, in order, when the
    batch is full and by `flush`.
    """

    def __init__(self, engine, to_encode, stop, counts, stage_seconds, total, progress):
        self.engine = engine
        self.store = FrameStore(engine)
        self.to_encode, self.stop, self.counts = to_encode, stop, counts
        self.stage_seconds, self.total, self.progress = stage_seconds, total, progress
        self.pending: list[tuple[list[OutputFrame], np.ndarray, PairJob | None]] = []
        self.pairs = 0
        self.last_index = 0  # input index of the newest frame a queued pair uses
        self.size: int | None = None

    def add(self, outputs: list[OutputFrame], first, second) -> None:
        _ts, rgb0, index0 = first
        wanted = tuple(float(f.t) for f in outputs if not f.is_copy) if second is not None else ()
        job = None
        if wanted:
            rgb1, index1 = second
            t0 = time.perf_counter()
            if self.size is None:
                self.size = max(1, self.engine.pairs_per_forward(*rgb0.shape[:2]))
            job = PairJob(self.store.get(index0, rgb0), self.store.get(index1, rgb1), wanted)
            self.last_index = index1
            self.stage_seconds["interpolate"] += time.perf_counter() - t0
            self.pairs += 1
        self.pending.append((outputs, rgb0, job))
        if self.size is not None and self.pairs >= self.size:
            self.flush()
        elif job is None and self.pairs == 0:
            self.flush()  # nothing to compute: pass the copies on now

    def flush(self) -> None:
        jobs = [job for _outputs, _rgb, job in self.pending if job is not None]
        generated: dict[int, list[HostFrame]] = {}
        if jobs:
            t0 = time.perf_counter()
            results = self.engine.interpolate_jobs(jobs)
            dtype = self.pending[0][1].dtype
            for job, frames in zip(jobs, results):
                generated[id(job)] = self.store.download(frames, dtype)
            self.stage_seconds["interpolate"] += time.perf_counter() - t0
            self.counts["interpolated"] += sum(len(job.timesteps) for job in jobs)
            # Only the newest frame can belong to a pair still to come.
            self.store.release_before(self.last_index)
        for outputs, rgb0, job in self.pending:
            frames = iter(generated.get(id(job), ()))
            for f in outputs:
                pixels = next(frames) if (job is not None and not f.is_copy) else rgb0
                _put(self.to_encode, (f.ts, pixels), self.stop)
                self.counts["output"] += 1
                if self.progress is not None:
                    self.progress(self.counts["output"], self.total)
        self.pending = []
        self.pairs = 0
