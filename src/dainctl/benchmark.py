"""Throughput and memory measurement behind `dainctl benchmark`.

One benchmark case (engine, device, precision, frame size) is measured in three passes over the same clip
(a synthetic one made with `make_sample_clip`, or the user's `--input`), after one warm-up pair:

1. pipelined: the real `pipeline.run` (decode, interpolate and encode on threads joined by bounded
   queues): end-to-end wall time, output fps, the pipeline's own per-stage busy seconds, peak host RSS
   (sampled) and peak GPU memory (`torch.cuda.max_memory_allocated`);
2. alone: the same work in one thread, one stage at a time, each stage timed on its own. The overlap
   report compares the pipelined wall time with the slowest stage alone: 1.0 is perfect overlap, the
   sum of the stages divided by the slowest is what no overlap at all would give;
3. breakdown: a few pairs straight through the engine, timing the stages the engines mark with
   `profiling.section` (upload, flow, depth, context, kernels, projection and warping, synthesis,
   download; the weight-free engine has no depth, context, kernels or synthesis); what is left of the
   engine's time is reported as "other". On CUDA these timers synchronise the device, which is why
   they run in a pass of their own.

Everything returned is plain data (dicts of numbers and strings), so the CLI can print it as a table or
as JSON without knowing the details.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import platform
import tempfile
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch

from .errors import InputError, UsageError
from .profiling import STAGES, recording

THROUGHPUT_SCHEMA = "dainctl.benchmark.throughput/1"
PRECISIONS = ("fp16", "fp32")
SYNTHETIC_RATE = Fraction(30)
BREAKDOWN_PAIRS = 3
_RSS_INTERVAL = 0.01


# --------------------------------------------------------------------------------------------------
# option parsing


def parse_size(text: str) -> tuple[int, int]:
    """`1280x720` -> (width, height); UsageError for anything else."""
    parts = str(text).lower().replace("*", "x").split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise UsageError(f"invalid --size {text!r}: use WIDTHxHEIGHT, e.g. 1280x720") from None
    if not (16 <= width <= 16384 and 16 <= height <= 16384):
        raise UsageError(f"invalid --size {text!r}: width and height must be 16 to 16384 pixels")
    if width % 2 or height % 2:
        raise UsageError(f"invalid --size {text!r}: width and height must be even (yuv420p video)")
    return width, height


def parse_sizes(values: Sequence[str]) -> list[tuple[int, int]]:
    """Each value may hold several sizes separated by commas; order kept, duplicates dropped."""
    sizes: list[tuple[int, int]] = []
    for value in values:
        for item in str(value).split(","):
            if item.strip():
                size = parse_size(item.strip())
                if size not in sizes:
                    sizes.append(size)
    if not sizes:
        raise UsageError("--size needs at least one WIDTHxHEIGHT")
    return sizes


def parse_precisions(text: str | None, device: str) -> list[str]:
    """`fp16,fp32` -> ["fp16", "fp32"]. Default: fp32 on the CPU, both on CUDA (so the ratios appear).

    fp16 without CUDA follows the one rule of every command: a warning, and fp32 instead."""
    if text is None:
        return ["fp16", "fp32"] if device == "cuda" else ["fp32"]
    precisions: list[str] = []
    for item in str(text).split(","):
        item = item.strip().lower()
        if not item:
            continue
        if item not in PRECISIONS:
            raise UsageError(f"invalid --precision {item!r}: use fp16, fp32 or fp16,fp32")
        if item not in precisions:
            precisions.append(item)
    if not precisions:
        raise UsageError("--precision needs fp16, fp32 or both")
    from .precision import PrecisionPolicy, warn_about_precision

    return list(dict.fromkeys(PrecisionPolicy.choose(device, p == "fp16", warn_about_precision).name for p in precisions))


# --------------------------------------------------------------------------------------------------
# memory probes


def current_rss() -> int | None:
    """Resident set size of this process in bytes (Linux /proc), or None where unavailable."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def lifetime_peak_rss() -> int | None:
    """The process's peak RSS since it started (getrusage), in bytes."""
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
    except (ImportError, OSError):  # pragma: no cover - not Linux
        return None


class RssSampler:
    """Samples this process's RSS on a thread; `peak` is the largest value seen between start and stop.

    getrusage's peak cannot be reset, so a run that follows a bigger one would report the bigger one;
    sampling every 10 ms gives a per-run peak (a spike shorter than that can be missed).
    """

    def __init__(self, interval: float = _RSS_INTERVAL):
        self.interval = interval
        self.peak: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="dainctl-rss", daemon=True)

    def _sample(self) -> None:
        while True:
            self._take()
            if self._stop.wait(self.interval):
                self._take()
                return

    def _take(self) -> None:
        value = current_rss()
        if value is not None and (self.peak is None or value > self.peak):
            self.peak = value

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()


@contextlib.contextmanager
def gpu_peak(device: str) -> Iterator[dict]:
    """Yield a dict that holds `peak_bytes` (max_memory_allocated during the block) on CUDA, else None."""
    box: dict = {"peak_bytes": None}
    if device != "cuda":
        yield box
        return
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    try:
        yield box
    finally:
        torch.cuda.synchronize()
        box["peak_bytes"] = int(torch.cuda.max_memory_allocated())


# --------------------------------------------------------------------------------------------------
# engine parts, timed from outside


# --------------------------------------------------------------------------------------------------
# fake DAIN weights


def write_random_dain_weights(path: Path, seed: int = 0) -> Path:
    """Write random but well-scaled DAIN weights (float32 safetensors) for speed and memory runs.

    Values follow the rules of the fake-checkpoint recipe that came with the DAIN anatomy notes the
    project was built from (He-normal convolutions, batch-norm statistics near identity, output layers
    scaled so flows are a few pixels, log-depth is of order 1, kernels are near 1/4 and the rectifier's
    residual is small), so every stage does realistic work; speed does not depend on the values. They
    are NOT the original network and not bit-identical to the recipe's files.
    """
    from safetensors.torch import save_file

    from .models.dain import DAIN

    generator = torch.Generator().manual_seed(seed)
    state = DAIN().state_dict()
    running_means = {key[: -len("running_mean")] for key in state if key.endswith("running_mean")}
    tensors: dict[str, torch.Tensor] = {}

    def normal(shape, std: float) -> torch.Tensor:
        return torch.randn(shape, generator=generator) * std

    def uniform(shape, low: float, high: float) -> torch.Tensor:
        return torch.rand(shape, generator=generator) * (high - low) + low

    for key, value in state.items():
        shape = tuple(value.shape)
        prefix = key.rsplit(".", 1)[0] + "."
        if key.endswith("num_batches_tracked"):
            tensors[key] = torch.zeros((), dtype=torch.int64)
            continue
        if key.endswith("running_mean"):
            tensor = normal(shape, 0.1)
        elif key.endswith("running_var"):
            tensor = uniform(shape, 0.5, 2.0)
        elif prefix in running_means:  # affine batch-norm parameters
            tensor = uniform(shape, 0.9, 1.1) if key.endswith("weight") else uniform(shape, -0.05, 0.05)
        elif value.dim() == 4:
            transposed = "deconv" in key or "upfeat" in key
            fan_in = shape[0 if transposed else 1] * shape[2] * shape[3] / (4 if transposed else 1)
            gain = math.sqrt(2.0)
            if key.startswith("initScaleNets_filter1.") or key.startswith("initScaleNets_filter2."):
                gain = 0.02
            elif key.startswith("flownets.predict_flow") or key.startswith("flownets.dc_conv7"):
                gain = 2.5
            elif key.startswith("depthNet.4."):
                gain = 4.0
            elif key.startswith("rectifyNet.block5."):
                gain = 0.012
            tensor = normal(shape, gain / math.sqrt(fan_in))
        elif key.startswith(("initScaleNets_filter1.", "initScaleNets_filter2.")) and value.dim() == 1:
            tensor = uniform(shape, 0.2, 0.3)  # kernels start near 1/4: the warp returns image-like pixels
        elif key.startswith("depthNet.4.") and value.dim() == 1:
            tensor = torch.zeros(shape)
        else:
            tensor = uniform(shape, -0.05, 0.05)
        tensors[key] = tensor.to(value.dtype).contiguous()
    save_file(tensors, str(path), metadata={"note": "random weights for benchmarking, not trained"})
    return path


# --------------------------------------------------------------------------------------------------
# throughput


@dataclass
class Case:
    """One benchmark case: which engine on which device, precision and input."""

    engine: str
    device: str
    precision: str
    width: int | None
    height: int | None
    frames: int | None
    input_path: Path | None = None
    weights: Path | None = None
    max_memory: int | None = None
    factor: int = 2
    measure_alone: bool = True
    breakdown: bool = True
    profile: str = "auto"  # the weight-free engine's profile
    pairs: int | None = None  # pairs per forward (DAIN); None: the engine's default
    ray: str | None = None  # also run the clip's segments on Ray (local, auto or an address)
    ray_workers: int | None = None
    segment_seconds: Fraction = Fraction(2)  # the segments of the Ray comparison


@dataclass
class Workspace:
    """Temporary files of a benchmark run (clips, outputs, fake weights), removed on exit."""

    root: Path
    clips: dict = field(default_factory=dict)
    fake_weights: Path | None = None

    def clip(self, width: int, height: int, frames: int) -> Path:
        from .video import make_sample_clip

        key = (width, height, frames)
        if key not in self.clips:
            path = self.root / f"clip_{width}x{height}_{frames}.mp4"
            make_sample_clip(path, width=width, height=height, frames=frames, rate=SYNTHETIC_RATE, audio=False)
            self.clips[key] = path
        return self.clips[key]

    def random_weights(self) -> Path:
        if self.fake_weights is None:
            self.fake_weights = write_random_dain_weights(self.root / "dain_random.safetensors")
        return self.fake_weights


@contextlib.contextmanager
def workspace() -> Iterator[Workspace]:
    with tempfile.TemporaryDirectory(prefix="dainctl-bench-") as root:
        yield Workspace(Path(root))


def build_engine(case: Case, space: Workspace):
    """The engine for a case (random DAIN weights when none are given), from the one factory that
    `dainctl interpolate` uses, with its tiling rule and the thread policy of a real run."""
    from .engines import create_engine
    from .pipeline import configure_cpu_threads

    weights = case.weights
    if case.engine == "dain" and weights is None:
        weights = space.random_weights()
    if case.device == "cpu":
        configure_cpu_threads(case.engine)  # the thread policy of a real run, so the numbers match one
    return create_engine(case.engine, device=case.device, fp16=case.precision == "fp16", weights=weights,
                         profile=case.profile, max_memory=case.max_memory, pairs=case.pairs)


def _first_pair(path: Path):
    from .pipeline import to_tensor
    from .video import open_input

    source = open_input(path)
    try:
        frames = iter(source.frames())
        first = next(frames, None)
        second = next(frames, None)
    finally:
        source.close()
    if first is None or second is None:
        raise InputError(f"{path} has fewer than two frames; a benchmark needs at least two")
    return to_tensor(first[1]), to_tensor(second[1])


def _timesteps(factor: int) -> list[float]:
    return [k / factor for k in range(1, factor)]


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def run_alone(path: Path, engine, output: Path, factor: int, device: str) -> dict[str, float]:
    """Decode, interpolate and encode the clip in one thread, timing each stage on its own (seconds)."""
    from .pipeline import EncodeOptions, Job, to_rgb, to_tensor, writer_options
    from .video import open_input, open_output

    seconds = {"decode": 0.0, "interpolate": 0.0, "encode": 0.0}
    source = open_input(path)
    rate = (source.info.rate or SYNTHETIC_RATE) * factor
    # The pipelined run's encoder settings (`run_case`'s job), so that the encode times compare.
    job = Job(input_path=path, output_path=output, mode="interpolate", factor=factor, audio="drop", encode=EncodeOptions())
    timesteps = _timesteps(factor)
    index = 0
    writer = None
    try:
        writer = open_output(output, audio="drop", **writer_options(job, source.info, rate))
        frames = iter(source.frames())
        previous = None
        while True:
            started = time.perf_counter()
            item = next(frames, None)
            seconds["decode"] += time.perf_counter() - started
            if item is None:
                break
            rgb = item[1]
            outputs = []
            if previous is not None:
                started = time.perf_counter()
                generated = engine.interpolate(to_tensor(previous), to_tensor(rgb), timesteps)
                outputs = [to_rgb(frame) for frame in generated]
                _sync(device)
                seconds["interpolate"] += time.perf_counter() - started
            started = time.perf_counter()
            if previous is not None:
                for frame in [previous, *outputs]:
                    writer.write(frame, Fraction(index) / rate)
                    index += 1
            seconds["encode"] += time.perf_counter() - started
            previous = rgb
        started = time.perf_counter()
        if previous is not None:
            writer.write(previous, Fraction(index) / rate)
            index += 1
        writer.close(Fraction(index) / rate)
        seconds["encode"] += time.perf_counter() - started
        writer = None
    finally:
        if writer is not None:
            writer.abort()
        source.close()
    return seconds


def run_breakdown(path: Path, engine, factor: int, device: str, pairs: int = BREAKDOWN_PAIRS) -> dict:
    """Milliseconds per pair of each engine part, over the first `pairs` pairs of the clip."""
    from .pipeline import to_rgb, to_tensor
    from .video import open_input

    source = open_input(path)
    decoded = []
    try:
        for _, rgb in source.frames():
            decoded.append(rgb)
            if len(decoded) > pairs:
                break
    finally:
        source.close()
    timesteps = _timesteps(factor)
    total = 0.0
    with recording(sync=device == "cuda") as recorder:
        for frame0, frame1 in zip(decoded, decoded[1:]):
            _sync(device)
            started = time.perf_counter()
            for frame in engine.interpolate(to_tensor(frame0), to_tensor(frame1), timesteps):
                to_rgb(frame)
            _sync(device)
            total += time.perf_counter() - started
    count = max(1, len(decoded) - 1)
    parts = {name: 1000.0 * recorder.seconds[name] / count for name in STAGES if name in recorder.seconds}
    parts["other"] = max(0.0, 1000.0 * total / count - sum(parts.values()))
    return {"pairs": count, "engine_ms_per_pair": 1000.0 * total / count, "parts_ms_per_pair": parts}


def run_case(case: Case, space: Workspace, log: Callable[[str], None] = lambda message: None) -> dict:
    """Measure one case; returns the JSON-ready result dict (see docs/benchmarks.md for the fields)."""
    from .pipeline import EncodeOptions, Job, run

    if case.input_path is not None:
        clip = case.input_path
    else:
        clip = space.clip(case.width, case.height, case.frames)
    engine = build_engine(case, space)
    frame0, frame1 = _first_pair(clip)
    height, width = frame0.shape[-2:]
    log(f"{case.engine} {case.precision} on {case.device}, {width}x{height}: warm-up")
    engine.interpolate(frame0, frame1, _timesteps(case.factor))  # first-call costs: kernel builds, cuDNN autotune
    _sync(case.device)

    output = space.root / f"out_{case.engine}_{case.precision}_{width}x{height}.mp4"
    log(f"{case.engine} {case.precision} {width}x{height}: pipelined run")
    job = Job(input_path=clip, output_path=output, mode="interpolate", factor=case.factor, audio="drop",
              encode=EncodeOptions())
    with RssSampler() as rss, gpu_peak(case.device) as gpu:
        # The engine's steady choice: this process's clip making and warm-up are not the run's costs.
        result = run(job, engine, fixed_seconds=0.0)
    output.unlink(missing_ok=True)
    stage_seconds = dict(result.stage_seconds)
    wall = result.elapsed

    alone = None
    if case.measure_alone:
        log(f"{case.engine} {case.precision} {width}x{height}: each stage alone")
        alone_output = space.root / f"alone_{case.engine}_{case.precision}_{width}x{height}.mp4"
        # Rounded once, here: the slowest stage is picked from the same numbers the report shows (two
        # stages of a tiny clip can differ by less than the rounding).
        alone = {name: round(value, 4) for name, value in run_alone(clip, engine, alone_output, case.factor,
                                                                     case.device).items()}
        alone_output.unlink(missing_ok=True)

    breakdown = None
    if case.breakdown:
        log(f"{case.engine} {case.precision} {width}x{height}: engine breakdown")
        breakdown = run_breakdown(clip, engine, case.factor, case.device)

    overlap = None
    if alone is not None:
        slowest = max(alone, key=alone.get)
        overlap = {
            "slowest_stage": slowest,
            "slowest_stage_seconds": alone[slowest],
            "stages_alone_sum_seconds": round(sum(alone.values()), 4),
            "end_to_end_seconds": round(wall, 4),
            # From the rounded times, so that the report agrees with itself for stages of milliseconds.
            "end_to_end_over_slowest": round(round(wall, 4) / alone[slowest], 4)
            if alone[slowest] > 0 else None,
        }
    ray = run_on_ray(case, clip, engine, space, log) if case.ray else None
    grid = getattr(engine, "last_grid", None)
    return {
        "engine": case.engine,
        "profile": case.profile,
        "device": case.device,
        "precision": engine.policy.name,
        "pairs_per_forward": engine.pairs_per_forward(height, width) if width and height else None,
        "width": width,
        "height": height,
        "input": str(case.input_path) if case.input_path is not None else "synthetic",
        "factor": case.factor,
        "input_frames": result.input_frames,
        "output_frames": result.output_frames,
        "interpolated_frames": result.interpolated_frames,
        "wall_seconds": round(wall, 4),
        # From the rounded wall time, so that the report agrees with itself even for runs of milliseconds.
        "output_fps": round(result.output_frames / round(wall, 4), 4) if round(wall, 4) > 0 else None,
        "interpolated_fps": round(result.interpolated_frames / stage_seconds["interpolate"], 4)
        if stage_seconds.get("interpolate") else None,
        "stage_seconds": {name: round(value, 4) for name, value in stage_seconds.items()},
        "alone_seconds": alone,
        "overlap": overlap,
        "breakdown": _rounded(breakdown),
        "peak_rss_bytes": rss.peak,
        "process_peak_rss_bytes": lifetime_peak_rss(),
        "peak_gpu_bytes": gpu["peak_bytes"],
        "max_memory_bytes": case.max_memory,
        "tiles": {"rows": grid.rows, "cols": grid.cols, "tile_height": grid.tile_height, "tile_width": grid.tile_width}
        if grid is not None else None,
        "ray": ray,
    }


def run_on_ray(case: Case, clip: Path, engine, space: Workspace, log: Callable[[str], None]) -> dict:
    """The clip cut into segments of `case.segment_seconds`, computed here and then as Ray tasks (each
    building its own engine from the case), both joined: segments per second and Ray's overhead."""
    from .cluster import EngineSpec, RayExecutor
    from .pipeline import EncodeOptions, Job, run

    spec = EngineSpec(case.engine, device=case.device, fp16=case.precision == "fp16",
                      weights=str(case.weights or (space.random_weights() if case.engine == "dain" else "")) or None,
                      profile=case.profile, max_memory=case.max_memory, pairs=case.pairs)
    walls = {}
    segments = None
    for name in ("local", "ray"):
        out = space.root / f"segments_{name}.mp4"
        job = Job(input_path=clip, output_path=out, mode="interpolate", factor=case.factor, audio="drop",
                  encode=EncodeOptions())
        log(f"{case.engine} {case.precision}: segments of {float(case.segment_seconds):g} s, {name}")
        executor = RayExecutor(case.ray, spec, workers=case.ray_workers) if name == "ray" else None
        began = time.perf_counter()
        try:
            result = run(job, engine if executor is None else None, segment_seconds=case.segment_seconds,
                         executor=executor, engine_identity=executor.identity if executor else None,
                         fixed_seconds=0.0)
        finally:
            if executor is not None:
                stats = executor.stats
                executor.close()
        walls[name] = time.perf_counter() - began
        segments = result.segments["count"]
        out.unlink(missing_ok=True)
    return {"address": case.ray, "workers": case.ray_workers, "segment_seconds": float(case.segment_seconds),
            "segments": segments, "local_wall_seconds": round(walls["local"], 4), "ray_wall_seconds": round(walls["ray"], 4),
            "segments_per_second_local": round(segments / walls["local"], 4),
            "segments_per_second_ray": round(segments / walls["ray"], 4),
            "ray_over_local": round(walls["ray"] / walls["local"], 4), "ray_nodes": stats.get("nodes"),
            "ray_tasks": stats.get("tasks")}


def _rounded(value):
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def precision_ratios(results: list[dict]) -> list[dict]:
    """fp16 / fp32 ratios of output fps and peak GPU memory, per engine and frame size with both runs."""
    ratios = []
    by_key: dict[tuple, dict[str, dict]] = {}
    for item in results:
        by_key.setdefault((item["engine"], item["device"], item["width"], item["height"]), {})[item["precision"]] = item
    for (engine, device, width, height), runs in by_key.items():
        if "fp16" not in runs or "fp32" not in runs:
            continue
        half, full = runs["fp16"], runs["fp32"]
        ratios.append({
            "engine": engine,
            "device": device,
            "width": width,
            "height": height,
            "fps_fp16_over_fp32": _ratio(half["output_fps"], full["output_fps"]),
            "peak_gpu_fp16_over_fp32": _ratio(half["peak_gpu_bytes"], full["peak_gpu_bytes"]),
        })
    return ratios


def _ratio(numerator, denominator) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 4)


def machine_info(device: str) -> dict:
    """What the numbers were measured on."""
    import av

    from . import __version__

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        "dainctl": __version__,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "pyav": av.__version__,
        "gpu": None,
    }
    if device == "cuda":
        properties = torch.cuda.get_device_properties(0)
        info["gpu"] = {"name": properties.name, "memory_bytes": int(properties.total_memory), "cuda": torch.version.cuda}
    return info


def throughput(cases: list[Case], log: Callable[[str], None] = lambda message: None) -> dict:
    """Run every case; returns {"schema", "machine", "results": [...], "ratios": [...]}."""
    if not cases:
        raise UsageError("nothing to benchmark")
    results = []
    with workspace() as space:
        for case in cases:
            results.append(run_case(case, space, log))
            # The finished case's engine is garbage now; give its cached blocks back so the next case's
            # tile plan (from the driver's free memory) and peak start from the same state.
            gc.collect()
            if case.device == "cuda":
                torch.cuda.empty_cache()
    return {
        "schema": THROUGHPUT_SCHEMA,
        "machine": machine_info(cases[0].device),
        "results": results,
        "ratios": precision_ratios(results),
    }
