"""One video on a Ray cluster: the pending segments of a run's plan as Ray tasks (`--ray`).

    executor = RayExecutor("local", engine_spec, workers=2)     # or "auto", or "ray://host:10001", "host:6379"
    run(job, None, segment_seconds=..., executor=executor, engine_identity=executor.identity)

The driver (this process) runs the analysis pass, makes the plan and opens the job folder as a local run
does (`dainctl.pipeline`); each pending segment becomes one task (`num_gpus=1` where the cluster has GPUs,
else one CPU), which builds the engine from `engine_spec` (the factory's arguments), decodes the frames
its segment needs (seeking to its start) and writes the segment file. Where the task's node sees the job
folder (shared storage, or the same machine) it writes the file there; elsewhere it returns the file's
bytes and the driver writes them. The driver alone updates the manifest, shows one progress bar over
all segments and joins them as a local run does, so the output is the same. A task that fails is retried
by Ray (`max_retries`, `retry_exceptions`); the input must be readable on every node.

`local` starts a private Ray instance in this process for the run (all the machine's GPUs, or `workers`
CPUs) and shuts it down at the end; `auto` or an address joins an existing cluster.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from dainctl.errors import DainctlError, EngineError, InputError, UsageError

TASK_RETRIES = 2
INSTALL_HINT = "--ray needs Ray, which is not installed: pip install 'dainctl[ray]' (or pip install 'ray>=2.9')"


def import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    return ray


@dataclass(frozen=True)
class EngineSpec:
    """The engine factory's arguments (`dainctl.engines.create_engine`), for a task to build its own."""

    name: str
    device: str = "auto"
    fp16: bool | None = None
    weights: str | None = None
    profile: str = "auto"
    max_memory: int | None = None
    pairs: int | None = None

    def create(self):
        from dainctl.engines import create_engine

        return create_engine(self.name, device=self.device, fp16=self.fp16,
                             weights=Path(self.weights) if self.weights else None, profile=self.profile,
                             max_memory=self.max_memory, pairs=self.pairs, warn=lambda message: None)

    @property
    def identity(self) -> list:
        return [self.name, self.device, self.fp16, self.weights, self.profile]


def compute_segment(job, timeline, plan, segment, spec: EngineSpec, folder_path: str, cpus: int) -> dict:
    """A task: compute one segment into the job folder (when this node sees it) or a temporary file whose
    bytes are returned. Returns {"index", "file"} or {"index", "data"}, and the task's counts."""
    from dainctl.jobfolder import PARTIAL
    from dainctl.pipeline import (_run_stages, _SegmentSink, configure_cpu_threads, open_segment_writer,
                                  tell_engine_the_run)
    from dainctl.video import open_input

    if not Path(job.input_path).exists():
        raise InputError(f"the input {job.input_path} is not visible on this Ray node; put it on storage every node sees")
    folder = Path(folder_path)
    shared = folder.is_dir() and os.access(folder, os.W_OK)
    scratch = None if shared else Path(tempfile.mkdtemp(prefix="dainctl-segment-"))
    target = (folder if shared else scratch) / f"segment-{segment.index:04d}{PARTIAL}.{os.getpid()}.mp4"
    engine = spec.create()
    # The task's own frames and pairs; its worker's start-up is not this run's (a worker serves many).
    tell_engine_the_run(engine, plan, [segment], 0.0)
    if engine.compute_device.type == "cpu":
        configure_cpu_threads(spec.name, cpu_count=max(1, cpus) + (0 if spec.name == "dain" else 1))
    source = open_input(job.input_path)

    class _TaskFolder:  # the sink's view of the job folder: the task only writes its one file
        def partial_path(self, _segment):
            return target

        def complete(self, _segment, _path):
            pass

    sink = _SegmentSink(_TaskFolder(), lambda path: open_segment_writer(path, job, source.info, plan), 0)
    try:
        counts, seconds = _run_stages(source, timeline, plan, [segment], engine, sink, None, 0)
    except BaseException:
        sink.abort()
        target.unlink(missing_ok=True)
        raise
    finally:
        source.close()
    result = {"index": segment.index, "counts": counts, "seconds": seconds, "node": os.uname().nodename}
    if shared:
        result["file"] = target.name
    else:
        result["data"] = target.read_bytes()
        target.unlink()
        scratch.rmdir()
    return result


class RayExecutor:
    """Computes a run's pending segments as Ray tasks (see the module docstring)."""

    def __init__(self, address: str, spec: EngineSpec, *, workers: int | None = None):
        self.ray = import_ray()
        if not address:
            raise UsageError("--ray needs local, auto or a cluster address")
        if workers is not None and workers < 1:
            raise UsageError(f"--ray-workers must be at least 1, got {workers}")
        self.address = address
        self.spec = spec
        self.workers = workers
        self.identity = spec.identity
        self.started_here = False
        self.stats: dict = {}

    def _connect(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return
        options = dict(include_dashboard=False, log_to_driver=False, configure_logging=True, logging_level="ERROR")
        if self.address == "local":
            import torch

            gpus = torch.cuda.device_count()
            cpus = self.workers or (os.cpu_count() or 1)
            ray.init(num_cpus=cpus, num_gpus=gpus, **options)
            self.started_here = True
        else:
            try:
                ray.init(address=self.address, **options)
            except (ConnectionError, RuntimeError, ValueError) as error:
                raise EngineError(f"cannot join the Ray cluster at {self.address!r}: {str(error).splitlines()[0]}") from None

    def close(self) -> None:
        if self.started_here and self.ray.is_initialized():
            self.ray.shutdown()
            self.started_here = False

    def __call__(self, job, engine, timeline, plan, folder, progress, nice):
        ray = self.ray
        began = time.perf_counter()
        self._connect()
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        wants_gpu = gpus > 0 and self.spec.device in ("auto", "cuda")
        if self.spec.device == "cuda" and gpus == 0:
            raise EngineError("--device cuda was asked for, but the Ray cluster has no GPUs")
        cpus_per_task = 1
        task = ray.remote(compute_segment).options(
            num_gpus=1 if wants_gpu else 0, num_cpus=cpus_per_task, max_retries=TASK_RETRIES,
            retry_exceptions=[OSError, RuntimeError],
        )
        spec = self.spec if wants_gpu or self.spec.device != "auto" else EngineSpec(**{**self.spec.__dict__, "device": "cpu"})
        shared_job, shared_timeline, shared_plan = ray.put(job), ray.put(timeline), ray.put(plan)
        pending = {task.remote(shared_job, shared_timeline, shared_plan, segment, spec, str(folder.path), cpus_per_task): segment
                   for segment in folder.pending}
        total = plan.output_frames
        done_frames = sum(s.segment.frames for s in folder.states if s.done)
        counts = {"decoded": 0, "interpolated": 0, "output": done_frames, "segments": 0}
        seconds = {"decode": 0.0, "interpolate": 0.0, "encode": 0.0}
        nodes: set[str] = set()
        if progress is not None:
            progress(done_frames, total)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                segment = pending.pop(ready[0])
                try:
                    result = ray.get(ready[0])
                except ray.exceptions.RayTaskError as error:
                    cause = error.cause if isinstance(getattr(error, "cause", None), BaseException) else None
                    if isinstance(cause, DainctlError):
                        raise cause from None
                    raise EngineError(f"segment {segment.index} failed on the Ray cluster: {str(error).splitlines()[0]}") from None
                if "data" in result:
                    path = folder.partial_path(segment)
                    path.write_bytes(result["data"])
                else:
                    path = folder.path / result["file"]
                folder.complete(segment, path)
                nodes.add(result["node"])
                for key in ("decoded", "interpolated"):
                    counts[key] += result["counts"][key]
                for key in seconds:
                    seconds[key] += result["seconds"][key]
                counts["segments"] += 1
                counts["output"] += segment.frames
                if progress is not None:
                    progress(counts["output"], total)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        finally:
            self.stats = {"address": self.address, "tasks": counts["segments"], "nodes": sorted(nodes),
                          "gpus": gpus, "seconds": round(time.perf_counter() - began, 3)}
        return counts, seconds
