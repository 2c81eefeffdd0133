"""Execute a frame plan: decode, interpolate and encode concurrently.

The plan is complete before any frame is computed: the analysis pass fixes the input's timeline
(`dainctl.analysis`: timestamps, scene cuts, duplicates, the end) and `dainctl.plan.WholePlan` every
output frame, which pair and t it comes from and whether it is copied (t = 0, a held last frame, a
scene cut) or computed. This module only executes it, segment by segment (`WholePlan.segments`; one
segment unless `segment_seconds` cuts a long plan), in three stages joined by bounded queues, so memory
does not grow with the length of the video:

    decoder thread --(position, rgb)--> compute (this thread) --(segment, ts, rgb)--> encoder thread

The decoder starts at the first frame a segment to compute needs (seeking where the timestamps allow)
and looks each decoded frame up in the timeline. The compute stage keeps the frames it still needs in a
`FrameStore` (each goes to the engine's device once and gets its per-frame work once), gathers up to the
engine's pairs per forward, and hands them to the engine's seam in one call (`dainctl.engines.base`).
The encoder writes each segment's frames from its own start: into the output (one segment), or into
the job folder (`dainctl.jobfolder`), whose finished segments are then joined by stream copy with the
audio muxed once (`dainctl.video.join`).

An error in any stage stops the others (no hang: every blocking put/get wakes up to check the stop
flag), the temporary output (and a segment being written) is removed, and the error is raised here;
finished segments stay in the job folder. Ctrl-C lands in this thread and takes the same path.
"""

from __future__ import annotations

import contextlib
import ctypes
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

from .analysis import BackgroundAnalysis, InputTimeline, analyze
from .engines.base import Engine, PairJob, as_engine
from .errors import InputError, StoppedWithCheckpoint, Terminated, UsageError, VerifyError
from .framestore import FrameStore, HostFrame, to_rgb, to_tensor  # noqa: F401  (to_rgb, to_tensor: re-exported)
from .job import EncodeOptions, Job, analysis_options  # noqa: F401  (EncodeOptions: re-exported)
from .paths import commit_output, remove_path, temp_path_for
from .plan import OutputFrame, PlanSpec, WholePlan
from .profiling import process_seconds
from .verify import ExpectedOutput, expected_audio_durations, failure_message, verify_output

_QUEUE_DEPTH = 8
_POLL_SECONDS = 0.1
_END = object()


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
    segments: dict = field(default_factory=lambda: {"count": 1, "computed": 1, "reused": 0, "redone": []})


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


# glibc's malloc (mallopt's M_TRIM_THRESHOLD and M_MMAP_THRESHOLD).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_BLOCKS_UP_TO = 256 << 20


def reuse_freed_frames() -> bool:
    """Let glibc's malloc hand freed blocks of up to 256 MB (a 4K float32 frame is 100 MB) back to the
    next allocation instead of returning them to the kernel; True where that was set (Linux, glibc).

    By default glibc maps every block over 32 MB afresh, and smaller ones too until its threshold has
    adapted, and it unmaps them on free. The engines allocate frame-sized tensors for every frame, so
    each new frame paid its pages' faults again: 14,000 faults per 720p frame at worst, measured. A run's
    peak memory is unchanged, since the same sizes recur. Measured (docs/benchmarks.md): 720p, balanced,
    50 frames, 7.30-7.50 s and 173,000-363,000 page faults before, 6.99-7.17 s and 116,000-129,000 after.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no C library with mallopt (musl's has one, which returns 0: False)
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _KEEP_BLOCKS_UP_TO) and mallopt(_M_TRIM_THRESHOLD, 2 * _KEEP_BLOCKS_UP_TO))


def configure_cpu_threads(engine_name: str, cpu_count: int | None = None) -> int:
    """Set torch's and OpenCV's thread counts for engine work on the CPU, and glibc's reuse of freed
    frames (`reuse_freed_frames`); returns the count.

    The decoder and encoder run beside the engine. On a small machine, an engine that also takes every
    core oversubscribes it: measured on 2 cores, cockatoo.mp4 (720p) to 2x took 200-290 s with two
    engine threads and 43-53 s with one (and, with decoding and encoding niced, 33.2 s against 30.9 s).
    The weight-free engine leaves one core to decode and encode; DAIN's convolutions dominate its runs,
    so it keeps them all. (A pair's independent DIS calls are the exception: its two directions, and
    the high profile's candidates, run on a pool of one thread per core, `FlowEngine.flow_workers`, each
    call single-threaded inside.)
    """
    cores = cpu_count or os.cpu_count() or 1
    threads = cores if engine_name == "dain" else max(1, cores - 1)
    reuse_freed_frames()
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


def analyze_job(job: Job) -> InputTimeline:
    """The analysis pass for `job` (`dainctl.analysis`)."""
    return analyze(job.input_path, **analysis_options(job))


def plan_job(job: Job, timeline: InputTimeline) -> WholePlan:
    """The whole plan of `job` from its input's timeline."""
    return WholePlan.build(plan_spec(job, timeline.input_rate), [e.ts for e in timeline.entries],
                           [e.cut_before for e in timeline.entries], timeline.end if timeline.hold_last else None)


def can_segment(job: Job) -> bool:
    """Whether the output can be made of joined segments: a video container that takes stream-copied
    packets, with an encoder whose packets a segment file holds (`dainctl.video.join`)."""
    from .video.join import can_join
    from .video.writer import default_video_codec, is_folder_output

    if is_folder_output(job.output_path):
        return False
    return can_join(job.output_path, job.encode.codec or default_video_codec(job.output_path))


def describe_engine(engine) -> list:
    """What of an engine decides its frames: name, precision, weights, profile."""
    return [getattr(engine, "name", type(engine).__name__), getattr(getattr(engine, "policy", None), "name", None),
            str(getattr(engine, "weights_path", None)), getattr(engine, "profile", None)]


def job_identity(job: Job, engine: list, plan: WholePlan) -> dict:
    """What a resumed run must share with the run that left the job folder: the input, the options
    (the engine's description among them) and the plan."""
    from .jobfolder import input_digest

    options = {
        "mode": job.mode, "factor": job.factor, "fps": str(job.fps) if job.fps is not None else None,
        "audio": job.audio, "encode": [job.encode.codec, job.encode.crf, job.encode.preset, job.encode.pix_fmt],
        "folder_fps": str(job.folder_fps), "scene_threshold": job.scene_threshold, "dedup": job.dedup,
        "dedup_threshold": job.dedup_threshold, "engine": engine,
    }
    return {"input": input_digest(job.input_path), "options": options, "plan": plan.digest()}


def run(
    job: Job,
    engine: Engine,
    *,
    progress: Callable[[int, int | None], None] | None = None,
    on_plan: Callable[[dict], None] | None = None,
    segment_seconds: Fraction | None = None,
    restart: bool = False,
    executor: Callable | None = None,
    engine_identity: list | None = None,
    fixed_seconds: float | None = None,
    analysis: BackgroundAnalysis | None = None,
) -> RunResult:
    """Interpolate `job.input_path` into `job.output_path` with `engine`.

    First the analysis pass and the whole plan (`dainctl.analysis`, `dainctl.plan.WholePlan`); then the
    plan is executed. With `segment_seconds`, a plan longer than one segment is executed segment by
    segment into the job folder beside the output (`dainctl.jobfolder`), resuming an earlier run's, and
    the segments are joined by stream copy with the audio muxed once; a plan of one segment (or an output
    that cannot be joined) is written directly, as one pass.

    `progress(done, total)` is called after every output frame; `on_plan(summary)` once before the first
    frame, with the planned rates and frame count (exact: the plan is complete). `executor` computes the
    pending segments of a segmented run elsewhere (`dainctl.cluster.RayExecutor`), `engine_identity`
    then describes the engine for the job folder (default: `engine`'s name, precision, weights, profile).
    `fixed_seconds`: what this run spent before the analysis pass outside the engine, which the engine's
    time budget counts with the analysis pass (default: the process's start-up, for the process's first
    run, as in one CLI run; 0 for later runs in the same process). `dainctl benchmark` passes 0: its clip
    making and warm-up are not a run's costs. `analysis`: the analysis pass of this job's input, started
    earlier (`dainctl.analysis.BackgroundAnalysis`, as the CLI does); used when its input and options are
    the job's. The budget counts the time this run waits for the pass: what it ran before lies in the
    start-up.
    """
    global _STARTED_BEFORE
    if fixed_seconds is None:
        fixed_seconds = 0.0 if _STARTED_BEFORE else process_seconds()
    _STARTED_BEFORE = True
    started = time.perf_counter()
    engine = as_engine(engine) if engine is not None else None
    nice = BACKGROUND_NICE if engine is not None and _computes_on_cpu(engine) else 0
    segmentable = can_segment(job)
    if executor is not None and not segmentable:
        raise UsageError("computing elsewhere (--ray) needs a video output that segments can be joined into: "
                         ".mp4, .mov, .m4v, .mkv or .webm, with libx264, libx265, libvpx-vp9 or ffv1")
    started_here = analysis is None or not analysis.serves(job.input_path, analysis_options(job))
    waited = time.perf_counter()
    timeline = analyze_job(job) if started_here else analysis.result()
    # The pass run here is a fixed cost of the run; one started earlier costs it what it waits for it.
    analysis_cost = timeline.seconds if started_here else time.perf_counter() - waited
    plan = plan_job(job, timeline)
    segments = plan.segments(segment_seconds if segmentable else None)
    folder = None
    if len(segments) > 1 or executor is not None:
        from .jobfolder import JobFolder

        identity = {**job_identity(job, engine_identity or describe_engine(engine), plan),
                    "segments": [[s.first_input, s.last_input, s.first_output, s.frames] for s in segments]}
        folder = JobFolder.open(job.output_path, identity, segments, restart=restart)
    if on_plan is not None:
        on_plan({"input_rate": timeline.input_rate, "output_rate": plan.spec.output_rate,
                 "input_frames": plan.input_frames, "output_frames": plan.output_frames,
                 "output_duration": plan.output_duration, "segments": len(segments),
                 "segments_done": folder.reused if folder is not None else 0})
    tell_engine_the_run(engine, plan, segments if folder is None else folder.pending, fixed_seconds + analysis_cost)
    if folder is None:
        outcome = _run_single(job, engine, timeline, plan, segments[0], progress, nice)
    else:
        outcome = _run_segmented(job, engine, timeline, plan, folder, progress, nice, executor)
    counts, stage_seconds, audio, writer_facts, report = outcome
    stage_seconds = {"analysis": timeline.seconds, **stage_seconds}
    cuts = [{"input_frame": c.index, "time": float(c.ts) if not timeline.is_folder else float(c.ts / timeline.input_rate),
             "score": round(c.score, 3)} for c in timeline.cuts]
    return RunResult(
        input_path=job.input_path,
        output_path=job.output_path,
        input_frames=plan.input_frames,
        output_frames=plan.output_frames,
        input_rate=timeline.input_rate,
        output_rate=plan.spec.output_rate,
        input_duration=timeline.end if timeline.hold_last else Fraction(plan.input_frames) / timeline.input_rate,
        output_duration=plan.output_duration,
        interpolated_frames=counts["interpolated"],
        elapsed=time.perf_counter() - started,
        stage_seconds=stage_seconds,
        audio=audio,
        decoded_frames=timeline.decoded,
        duplicates_dropped=timeline.duplicates_dropped,
        scene_cuts=cuts,
        verification=report.to_dict(),
        notices=list(timeline.notices) + writer_facts["notices"],
        subtitles=writer_facts["subtitles"],
        segments={"count": len(segments), "computed": counts["segments"],
                  "reused": folder.reused if folder is not None else 0,
                  "redone": list(folder.redone) if folder is not None else []},
    )


# Whether a run has started in this process: the process's start-up is the first run's fixed cost only.
_STARTED_BEFORE = False


def tell_engine_the_run(engine, plan: WholePlan, segments, fixed_seconds: float) -> None:
    """What the engine's time budget (profile auto) is for: `engine.expect_run` with how many frames
    `segments` of `plan` compute (blended, not copied), from how many pairs, and `fixed_seconds`. An
    object that implements the seam without `expect_run` is left alone."""
    expect = getattr(engine, "expect_run", None)
    if expect is None:
        return
    blended = [frame for segment in segments for frame in plan.frames_of(segment) if plan.blends(frame)]
    expect(len(blended), len({frame.src for frame in blended}), fixed_seconds)


def _audio_mode(job: Job, info) -> tuple[str, list[str]]:
    from .video.writer import is_folder_output

    audio = job.audio if (not info.is_folder and info.audio_streams) else "drop"
    notices: list[str] = []
    if audio != "drop" and is_folder_output(job.output_path):
        audio = "drop"
        notices.append(f"an image folder holds no sound: the input's {info.audio_streams} audio stream(s) are not written")
    return audio, notices


def writer_options(job: Job, info, rate: Fraction) -> dict:
    """The encoder settings of `job`'s output at `rate` (for `open_output`): the output itself, its
    segments (whose own .mp4 name must not pick the codec: a WebM output's segments are VP9 too) and
    the benchmark's alone pass all open their writers with these."""
    from .video import DEFAULT_PRESET
    from .video.writer import default_video_codec

    return dict(width=info.width, height=info.height, rate=rate,
                codec=job.encode.codec or default_video_codec(job.output_path),
                crf=job.encode.crf, preset=job.encode.preset or DEFAULT_PRESET, pix_fmt=job.encode.pix_fmt,
                color=getattr(info, "color", None), rotation=getattr(info, "rotation", 0),
                sample_aspect_ratio=getattr(info, "sample_aspect_ratio", None), bit_depth=getattr(info, "bit_depth", 8))


def _run_single(job, engine, timeline, plan, segment, progress, nice):
    """The whole plan in one pass, written directly (with the audio) to a temporary file beside the output."""
    from .video import open_input, open_output

    with niced_new_threads(nice):
        source = open_input(job.input_path)
    temp_path = temp_path_for(job.output_path)
    writer = None
    try:
        audio, notices = _audio_mode(job, source.info)
        with niced_new_threads(nice):  # the codec's worker threads start when it is opened
            writer = open_output(temp_path, audio_from=source, audio=audio, stretch=plan.spec.stretch,  # subtitles
                                 **writer_options(job, source.info, plan.spec.output_rate))  # carried without audio
        sink = _DirectSink(writer)
        counts, stage_seconds = _run_stages(source, timeline, plan, [segment], engine, sink, progress, nice)
        facts = {"notices": notices + list(getattr(writer, "notices", [])),
                 "subtitles": getattr(writer, "subtitles", {"carried": [], "dropped": []})}
        audio_plan = list(getattr(writer, "audio_plan", []))
        writer = None
        source.close()
        report = _verify(job, temp_path, plan, audio_plan, source.info.start)
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
    return counts, stage_seconds, audio, facts, report


def _run_segmented(job, engine, timeline, plan, folder, progress, nice, executor=None):
    """The pending segments into the job folder (by `executor`, default: here, in order), then the join,
    the check and the rename."""
    stage_seconds = {"decode": 0.0, "interpolate": 0.0, "encode": 0.0, "join": 0.0}
    counts = {"decoded": 0, "interpolated": 0, "output": 0, "segments": 0}
    if folder.pending:
        execute = executor or _execute_here
        try:
            counts, seconds = execute(job, engine, timeline, plan, folder, progress, nice)
        except KeyboardInterrupt as error:
            done = sum(1 for s in folder.states if s.done)
            cause = "terminated (SIGTERM)" if isinstance(error, Terminated) else "interrupted"
            raise StoppedWithCheckpoint(
                f"{cause}; {done} of {len(folder.states)} segments are finished and kept in {folder.path}: "
                "run the same command again to compute only the rest") from None
        stage_seconds.update(seconds)
    t0 = time.perf_counter()
    audio, facts, report = _join(job, timeline, plan, folder, nice)
    stage_seconds["join"] = time.perf_counter() - t0
    return counts, stage_seconds, audio, facts, report


def _execute_here(job, engine, timeline, plan, folder, progress, nice):
    """The pending segments in this process, in one decode (seeking to the first one's start)."""
    from .video import open_input

    with niced_new_threads(nice):
        source = open_input(job.input_path)
    sink = _SegmentSink(folder, lambda path: open_segment_writer(path, job, source.info, plan), nice)
    try:
        done_frames = sum(s.segment.frames for s in folder.states if s.done)
        return _run_stages(source, timeline, plan, folder.pending, engine, sink, progress, nice, done_frames)
    except BaseException:
        sink.abort()
        raise
    finally:
        source.close()


def open_segment_writer(path: Path, job: Job, info, plan: WholePlan):
    """A segment's file: video only, the output's encoder settings, timestamps from 0."""
    from .video import open_output

    return open_output(path, audio_from=None, audio="drop", **writer_options(job, info, plan.spec.output_rate))


def _join(job: Job, timeline, plan: WholePlan, folder, nice):
    """Join the finished segments by stream copy, with the audio and subtitles muxed once from the input,
    check the result against the plan, and only then rename it into place and remove the job folder."""
    from .video import open_input
    from .video.join import SegmentJoiner

    temp_path = temp_path_for(job.output_path)
    source = open_input(job.input_path)
    joiner = None
    try:
        audio, notices = _audio_mode(job, source.info)
        states = folder.states
        joiner = SegmentJoiner(temp_path, template=folder.path / states[0].file, rate=plan.spec.output_rate,
                               rotation=getattr(source.info, "rotation", 0), audio_from=source, audio=audio,
                               stretch=plan.spec.stretch)
        for state in states:
            joiner.append(folder.path / state.file, state.segment.start)
        joiner.close(plan.output_duration)
        facts = {"notices": notices + list(joiner.notices), "subtitles": joiner.subtitles}
        audio_plan = list(joiner.audio_plan)
        joiner = None
        source.close()
        report = _verify(job, temp_path, plan, audio_plan, source.info.start)
        if not report.ok and job.verify:
            kept_unverified = _keep_unverified(temp_path, job.output_path)
            raise VerifyError(f"{failure_message(report)}; the output was kept as {kept_unverified} for inspection "
                              f"(the segments stay in {folder.path})")
        commit_output(temp_path, job.output_path)
    except BaseException:
        if joiner is not None:
            joiner.abort()
        source.close()
        remove_path(temp_path)
        raise
    folder.remove()
    return audio, facts, report


def _verify(job: Job, path: Path, plan: WholePlan, audio_plan: list, video_start: Fraction):
    """Re-open the written output and check it against the plan."""
    frames = plan.output_frames
    if plan.end is not None:
        audio_durations = expected_audio_durations(job.input_path, audio_plan, video_start, plan.spec.stretch)
    else:
        audio_durations = ()
    expected = ExpectedOutput(frames, plan.spec.output_rate, plan.output_duration,
                              audio_durations=audio_durations, subtitle_durations=None)
    return verify_output(path, expected)


def _keep_unverified(temp_path: Path, output_path: Path) -> Path:
    """A complete output that failed its check is not put under the output name, nor thrown away."""
    suffix = output_path.suffix if temp_path.is_file() else ""
    kept = output_path.with_name(f"{output_path.stem if suffix else output_path.name}.unverified{suffix}")
    commit_output(temp_path, kept)
    return kept


class _DirectSink:
    """Where the encoder stage writes: one writer for the whole plan (opened by the caller)."""

    def __init__(self, writer):
        self.writer = writer

    def writer_for(self, segment):
        return self.writer

    def finish(self, segment) -> None:
        self.writer.close(segment.end - segment.start)

    def abort(self) -> None:
        pass


class _SegmentSink:
    """Where the encoder stage writes in a segmented run: one file per segment in the job folder, opened
    at its first frame, closed and moved into place (with the manifest updated) at its end."""

    def __init__(self, folder, open_writer, nice: int):
        self.folder, self.open_writer, self.nice = folder, open_writer, nice
        self.current = None  # (segment, writer, partial path)

    def writer_for(self, segment):
        if self.current is None or self.current[0] is not segment:
            path = self.folder.partial_path(segment)
            with niced_new_threads(self.nice):
                self.current = (segment, self.open_writer(path), path)
        return self.current[1]

    def finish(self, segment) -> None:
        current, self.current = self.current, None
        if current is None:
            return
        _, writer, path = current
        writer.close(segment.end - segment.start)
        self.folder.complete(segment, path)

    def abort(self) -> None:
        current, self.current = self.current, None
        if current is not None:
            try:
                current[1].abort()
            except Exception:
                pass
            remove_path(current[2])


def _run_stages(source, timeline, plan: WholePlan, todo: list, engine, sink, progress, nice, done_frames: int = 0):
    """Execute the segments `todo` (in order) of `plan`: decode the input frames they need, compute their
    pairs, and hand their frames to `sink` (segment by segment, each from its own start)."""
    stop = threading.Event()
    decoded: queue.Queue = queue.Queue(maxsize=_QUEUE_DEPTH)
    to_encode: queue.Queue = queue.Queue(maxsize=_QUEUE_DEPTH)
    stage_seconds = {"decode": 0.0, "interpolate": 0.0, "encode": 0.0}
    counts = {"decoded": 0, "output": done_frames, "interpolated": 0, "segments": 0}
    entries = timeline.entries
    last = len(entries) - 1
    # Input position -> the segment (to compute) whose output frames start there.
    owner = {position: segment for segment in todo for position in plan.sources(segment.first_input, segment.last_input)}
    needed = {position for segment in todo for position in range(segment.first_input, segment.last_input + 1)}
    order = sorted(needed)
    last_needed = order[-1]
    seek = entries[todo[0].first_input].source_ts if (timeline.seekable and todo[0].first_input > 0) else None
    by_index = {entry.decode_index: position for position, entry in enumerate(entries)}
    by_ts = {entry.source_ts: position for position, entry in enumerate(entries)} if seek is not None else None

    def decode() -> None:
        # Each needed position must arrive, in order. After a seek a frame is found by its timestamp; if
        # the first one found is not the first needed (a container that seeks or stamps differently),
        # the input is decoded again from its start, frames found by their decode order.
        reader, mapping, skip_reader = source, by_ts, False
        frames: Iterator = iter(source.frames(seek_to=seek))
        index, want = -1, 0
        while True:
            t0 = time.perf_counter()
            item = next(frames, _END)
            stage_seconds["decode"] += time.perf_counter() - t0
            if item is _END:
                break
            index += 1
            counts["decoded"] += 1
            source_ts, rgb = item
            position = mapping.get(source_ts) if mapping is not None else by_index.get(index)
            if position is None or position not in needed or position < order[want]:
                if position is not None and position > last_needed:
                    break
                continue
            if position != order[want]:
                if mapping is not None and want == 0:
                    from .video import open_input

                    reader = open_input(source.path)
                    skip_reader = True
                    frames, mapping, index = iter(reader.frames()), None, -1
                    continue
                raise InputError(
                    f"{source.path}: decoded frame {index} is not where the analysis pass found it "
                    "(the file decodes differently from one pass to the next); run again with --segment-seconds 0")
            _put(decoded, (position, rgb), stop)
            want += 1
            if want == len(order):
                break
        if skip_reader:
            reader.close()
        _put(decoded, _END, stop)

    def encode() -> None:
        while True:
            item = _get(to_encode, stop)
            if item is _END:
                return
            t0 = time.perf_counter()
            if item[0] == "end":
                sink.finish(item[1])
                counts["segments"] += 1
            else:
                _, segment, ts, rgb = item
                sink.writer_for(segment).write(rgb.numpy() if isinstance(rgb, HostFrame) else rgb, ts)
            stage_seconds["encode"] += time.perf_counter() - t0

    decoder = _Stage("dainctl-decode", decode, stop)
    encoder = _Stage("dainctl-encode", encode, stop)
    try:
        # Started inside the try: a Ctrl-C landing here must still stop them before the input closes.
        with niced_new_threads(nice):
            decoder.start()
            encoder.start()
        batch = _Batch(engine, to_encode, stop, counts, stage_seconds, plan.output_frames, progress)
        previous: tuple[np.ndarray, int] | None = None  # (pixels, position)
        current = None
        while True:
            item = _get(decoded, stop)
            if item is _END:
                break
            position, rgb = item
            if previous is not None and previous[1] == position - 1:
                current = _pair(batch, plan, owner.get(position - 1), current, previous, (rgb, position))
            previous = (rgb, position)
        if previous is not None and previous[1] == last:
            # The last input frame is held until the end.
            current = _pair(batch, plan, owner.get(last), current, previous, None)
        batch.flush()
        if current is not None:
            _put(to_encode, ("end", current), stop)
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
    return counts, stage_seconds


def _pair(batch, plan: WholePlan, segment, current, first, second):
    """Queue the output frames that start at input position first[1] (when its segment is computed now),
    closing the previous segment first when this one is another; the plan says whether they blend the
    pair (first, second) or copy first."""
    if segment is None:
        return current
    if current is not None and current is not segment:
        batch.flush()
        _put(batch.to_encode, ("end", current), batch.stop)
    outputs = plan.frames_from(first[1])
    if outputs:
        batch.add(outputs, first, second if plan.blends_after(first[1]) else None, segment)
    return segment


def _computes_on_cpu(engine) -> bool:
    return engine.compute_device.type == "cpu"


def _halt(stop: threading.Event, *stages: _Stage) -> None:
    """Stop every stage and wait (briefly: they poll the flag) for those that were started."""
    stop.set()
    for stage in stages:
        if stage.ident is not None:
            stage.join(2)


class _Batch:
    """Output frames in order, the generated ones computed up to the engine's pairs per forward at once.

    `add(outputs, (rgb0, index0), (rgb1, index1) or None, segment)` queues the output frames between
    two input frames: copies of rgb0 where t == 0, and everywhere when the second frame is None (the last
    frame held, or a scene cut). Everything queued is computed and sent to the encoder, in order, when the
    batch is full and by `flush`, each frame as ("frame", segment, its time from the segment's start,
    pixels).
    """

    def __init__(self, engine, to_encode, stop, counts, stage_seconds, total, progress):
        self.engine = engine
        self.store = FrameStore(engine)
        self.to_encode, self.stop, self.counts = to_encode, stop, counts
        self.stage_seconds, self.total, self.progress = stage_seconds, total, progress
        # (outputs, rgb0, job or None, segment, index0)
        self.pending: list[tuple[list[OutputFrame], np.ndarray, PairJob | None, object, int]] = []
        self.pairs = 0
        self.last_index = 0  # input index of the newest frame a queued pair uses
        self.size: int | None = None

    def add(self, outputs: list[OutputFrame], first, second, segment) -> None:
        rgb0, index0 = first
        wanted = tuple(float(f.t) for f in outputs if not f.is_copy) if second is not None else ()
        job = None
        started = False
        if wanted:
            rgb1, index1 = second
            t0 = time.perf_counter()
            if self.size is None:
                self.size = max(1, self.engine.pairs_per_forward(*rgb0.shape[:2]))
            job = PairJob(self.store.get(index0, rgb0), self.store.get(index1, rgb1), wanted)
            # An engine that starts this pair's motion in the background gets it one pair early: the
            # batch before it is computed while it runs, and it waits for the next pair.
            prepare = getattr(self.engine, "prepare", None)
            started = bool(prepare([job])) if prepare is not None else False
            self.last_index = index1
            self.stage_seconds["interpolate"] += time.perf_counter() - t0
            self.pairs += 1
        self.pending.append((outputs, rgb0, job, segment, index0))
        if self.size is not None and self.pairs >= self.size + started:
            self.flush(keep_newest=started)
        elif job is None and self.pairs == 0:
            self.flush()  # nothing to compute: pass the copies on now

    def flush(self, keep_newest: bool = False) -> None:
        """Compute and send on everything queued; with `keep_newest`, all but the newest pair (started
        by the engine's `prepare`), which stays queued with its frames."""
        kept = self.pending[-1:] if keep_newest else []
        self.pending = self.pending[:-1] if keep_newest else self.pending
        jobs = [job for _outputs, _rgb, job, _segment, _index in self.pending if job is not None]
        generated: dict[int, list[HostFrame]] = {}
        if jobs:
            t0 = time.perf_counter()
            results = self.engine.interpolate_jobs(jobs)
            dtype = self.pending[0][1].dtype
            for job, frames in zip(jobs, results):
                generated[id(job)] = self.store.download(frames, dtype)
            self.stage_seconds["interpolate"] += time.perf_counter() - t0
            self.counts["interpolated"] += sum(len(job.timesteps) for job in jobs)
            # Only the newest frame can belong to a pair still to come (and the kept pair's two).
            self.store.release_before(kept[0][4] if kept else self.last_index)
        for outputs, rgb0, job, segment, _index in self.pending:
            frames = iter(generated.get(id(job), ()))
            for f in outputs:
                pixels = next(frames) if (job is not None and not f.is_copy) else rgb0
                _put(self.to_encode, ("frame", segment, f.ts - segment.start, pixels), self.stop)
                self.counts["output"] += 1
                if self.progress is not None:
                    self.progress(self.counts["output"], self.total)
        self.pending = kept
        self.pairs = len(kept)
