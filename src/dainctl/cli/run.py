"""`dainctl interpolate` and `dainctl slowmo`: plan, run and report a job."""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ..engines import DEFAULT_ENGINE
from ..errors import UsageError
from ..paths import check_paths, default_output
from ..plan import DEFAULT_SEGMENT_SECONDS, format_rate, parse_rate
from . import ui
from .options import (
    CodecOpt,
    BatchPairsOpt,
    ConfigOpt,
    CrfOpt,
    DeviceOpt,
    EngineOpt,
    FactorOpt,
    FolderFpsOpt,
    InputArg,
    JsonOpt,
    OutputArg,
    OverwriteOpt,
    PixFmtOpt,
    PresetOpt,
    PrecisionOpt,
    DedupOpt,
    MaxMemoryOpt,
    ProfileOpt,
    DedupThresholdOpt,
    NoSceneDetectOpt,
    NoVerifyOpt,
    QuietOpt,
    RayOpt,
    RayWorkersOpt,
    RestartOpt,
    SceneThresholdOpt,
    SegmentSecondsOpt,
    WeightsOpt,
)
from ..scene import DEFAULT_DEDUP_THRESHOLD, DEFAULT_SCENE_THRESHOLD

if TYPE_CHECKING:
    from ..job import Job
    from ..pipeline import RunResult

# The pipeline and the engines (torch, PyAV, OpenCV) are imported where a command runs, so that --help
# and the checks of the options answer at once.

AUDIO_MODES = ("drop", "stretch")


def interpolate(
    input: InputArg,
    output: OutputArg = None,
    factor: FactorOpt = None,
    fps: Annotated[Optional[str], typer.Option("--fps", help="Exact target rate: 60, 59.94, 60000/1001 ...", show_default=False)] = None,
    engine: EngineOpt = DEFAULT_ENGINE,
    profile: ProfileOpt = "auto",
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    fp16: PrecisionOpt = None,
    codec: CodecOpt = None,
    crf: CrfOpt = 18,
    preset: PresetOpt = None,
    pix_fmt: PixFmtOpt = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
    folder_fps: FolderFpsOpt = "24",
    scene_threshold: SceneThresholdOpt = DEFAULT_SCENE_THRESHOLD,
    no_scene_detect: NoSceneDetectOpt = False,
    dedup: DedupOpt = False,
    dedup_threshold: DedupThresholdOpt = DEFAULT_DEDUP_THRESHOLD,
    no_verify: NoVerifyOpt = False,
    max_memory: MaxMemoryOpt = None,
    batch_pairs: BatchPairsOpt = None,
    segment_seconds: SegmentSecondsOpt = float(DEFAULT_SEGMENT_SECONDS),
    restart: RestartOpt = False,
    ray: RayOpt = None,
    ray_workers: RayWorkersOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Raise the frame rate (2x by default, any factor, or an exact --fps); duration and audio kept."""
    if factor is not None and fps is not None:
        raise UsageError("give either --factor or --fps, not both")
    rate = parse_rate(fps) if fps is not None else None
    factor = _check_factor(factor if factor is not None else (None if rate else 2))
    tag = f"{format_rate(rate)}fps" if rate is not None else f"{factor}x"
    _execute(
        _checked_job(input, output or default_output(input, tag), overwrite, mode="interpolate", factor=factor,
                     fps=rate, audio="copy", encode=(codec, crf, preset, pix_fmt), folder_fps=parse_rate(folder_fps),
                     **_content_options(scene_threshold, no_scene_detect, dedup, dedup_threshold, no_verify)),
        engine, weights, device, fp16, quiet, json_out, max_memory, profile, batch_pairs,
        _segments(segment_seconds), restart, ray, ray_workers,
    )


def slowmo(
    input: InputArg,
    output: OutputArg = None,
    factor: FactorOpt = 2,
    audio: Annotated[str, typer.Option("--audio", help="drop the audio, or stretch it by the factor (pitch kept).")] = "drop",
    engine: EngineOpt = DEFAULT_ENGINE,
    profile: ProfileOpt = "auto",
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    fp16: PrecisionOpt = None,
    codec: CodecOpt = None,
    crf: CrfOpt = 18,
    preset: PresetOpt = None,
    pix_fmt: PixFmtOpt = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
    folder_fps: FolderFpsOpt = "24",
    scene_threshold: SceneThresholdOpt = DEFAULT_SCENE_THRESHOLD,
    no_scene_detect: NoSceneDetectOpt = False,
    dedup: DedupOpt = False,
    dedup_threshold: DedupThresholdOpt = DEFAULT_DEDUP_THRESHOLD,
    no_verify: NoVerifyOpt = False,
    max_memory: MaxMemoryOpt = None,
    batch_pairs: BatchPairsOpt = None,
    segment_seconds: SegmentSecondsOpt = float(DEFAULT_SEGMENT_SECONDS),
    restart: RestartOpt = False,
    ray: RayOpt = None,
    ray_workers: RayWorkersOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Slow motion: N-1 new frames per pair, played at the input rate (N times longer)."""
    factor = _check_factor(factor)
    if audio not in AUDIO_MODES:
        raise UsageError(f"invalid --audio {audio!r}: use drop or stretch")
    _execute(
        _checked_job(input, output or default_output(input, f"slowmo{factor}x"), overwrite, mode="slowmo",
                     factor=factor, audio=audio, encode=(codec, crf, preset, pix_fmt),
                     folder_fps=parse_rate(folder_fps),
                     **_content_options(scene_threshold, no_scene_detect, dedup, dedup_threshold, no_verify)),
        engine, weights, device, fp16, quiet, json_out, max_memory, profile, batch_pairs,
        _segments(segment_seconds), restart, ray, ray_workers,
    )


def _checked_job(input, output, overwrite: bool, *, encode: tuple, **fields) -> Job:
    """The job, once its paths are checked: a path that could lose data, or is not there, is answered
    before the pipeline (and torch with it) is loaded. encode: EncodeOptions' fields."""
    check_paths(input, output, overwrite)
    from ..job import EncodeOptions, Job

    return Job(input, output, encode=EncodeOptions(*encode), **fields)


def _content_options(scene_threshold, no_scene_detect, dedup, dedup_threshold, no_verify) -> dict:
    detect = not no_scene_detect and scene_threshold < 1.0
    return {
        "scene_threshold": scene_threshold if detect else None,
        "dedup": dedup,
        "dedup_threshold": dedup_threshold,
        "verify": not no_verify,
    }


def _segments(seconds: float) -> Fraction | None:
    """--segment-seconds as an exact time (0: no segments)."""
    return Fraction(seconds).limit_denominator(1000) if seconds > 0 else None


def _check_factor(factor: int | None) -> int | None:
    if factor is not None and not 2 <= factor <= 1000:
        raise UsageError(f"invalid --factor {factor}: it must be an integer from 2 to 1000")
    return factor


def _execute(job: Job, *args, **kwargs) -> None:
    """Run `job` (`_run_job`), its analysis pass started first: it decodes the input while the imports of
    `_run_job` load torch, and needs neither. The pass is stopped (and its thread ended) when the run ends
    before it needs it."""
    from ..analysis import BackgroundAnalysis
    from ..job import analysis_options

    with BackgroundAnalysis(job.input_path, **analysis_options(job)) as analysis:
        _run_job(job, analysis, *args, **kwargs)


def _run_job(job: Job, analysis, engine_name, weights, device, fp16, quiet, json_out, max_memory, profile="auto",
             batch_pairs=None, segment_seconds=None, restart=False, ray=None, ray_workers=None) -> None:
    from ..engines import check_engine, create_engine
    from ..pipeline import configure_cpu_threads, run
    from ..tiling import parse_memory

    budget = parse_memory(max_memory) if max_memory is not None else None
    executor = None
    if ray is not None:
        # The tasks build their engines on the cluster's nodes; here only the options are checked.
        from ..cluster import EngineSpec, RayExecutor

        check_engine(engine_name, weights, profile)
        spec = EngineSpec(engine_name, device=device, fp16=fp16, weights=str(weights) if weights else None,
                          profile=profile, max_memory=budget, pairs=batch_pairs)
        executor = RayExecutor(ray, spec, workers=ray_workers)
        engine, where = None, f"Ray ({ray})"
    else:
        # The device is resolved once, by the factory. Tiles sized for the budget (or the GPU's free memory)
        # where frames may not fit; an out-of-memory error retries the same pair with smaller tiles.
        engine = create_engine(engine_name, device=device, fp16=fp16, weights=weights, profile=profile,
                               max_memory=budget, pairs=batch_pairs, warn=ui.warn, on_retry=ui.warn)
        where = engine.device.type
        if where == "cpu":
            configure_cpu_threads(engine_name)
        if engine.stats.get("weights_converted_in_memory"):
            ui.info(f"hint: {weights} was converted in memory; convert it once with `dainctl convert {weights} dain.safetensors`", quiet=quiet)
    if job.mode == "slowmo" and job.audio == "drop":
        ui.info("note: slowmo drops the audio by default; --audio stretch keeps it, slowed with its pitch kept", quiet=quiet)

    with ui.frame_progress(job.mode, quiet=quiet) as bar:

        def announce(plan: dict) -> None:
            frames = plan["output_frames"]
            ui.info(
                f"{job.input_path} -> {job.output_path}: {format_rate(plan['input_rate'])} -> "
                f"{format_rate(plan['output_rate'])} fps, {frames if frames is not None else '?'} frames planned "
                f"({ui.seconds(plan['output_duration'])}), engine {engine_name} on {where}"
                + (f", {plan['segments']} segments" if plan["segments"] > 1 else "")
                + (f" ({plan['segments_done']} done by an earlier run, kept)" if plan["segments_done"] else ""),
                quiet=quiet,
            )
            bar.start()

        try:
            result = run(job, engine, progress=bar.update, on_plan=announce, segment_seconds=segment_seconds,
                         analysis=analysis,
                         restart=restart, executor=executor,
                         engine_identity=executor.identity if executor is not None else None)
        finally:
            if executor is not None:
                executor.close()
    _report(result, engine, engine_name, where, quiet, json_out, executor)


def _report(result: RunResult, engine, engine_name: str, device: str, quiet: bool, json_out: bool, executor=None) -> None:
    from ..verify import failure_message

    speed = result.output_frames / result.elapsed if result.elapsed > 0 else 0.0
    engine_stats = dict(getattr(engine, "stats", {}) or {})
    if executor is not None:
        engine_stats["ray"] = executor.stats
    verification = result.verification or {}
    ui.info(
        f"done: {result.input_frames} -> {result.output_frames} frames "
        f"({result.interpolated_frames} new), {format_rate(result.input_rate)} -> {format_rate(result.output_rate)} fps, "
        f"{ui.seconds(result.input_duration)} -> {ui.seconds(result.output_duration)}, audio {result.audio}, "
        f"{result.elapsed:.1f} s ({speed:.1f} fps) -> {result.output_path}",
        quiet=quiet,
    )
    profile, profile_reason = _profile(engine_stats)
    if profile is not None:
        ui.info(f"profile {profile}: {profile_reason}", quiet=quiet)
    for notice in result.notices:
        ui.info(f"note: {notice}", quiet=quiet)
    if result.scene_cuts:
        where = ", ".join(f"{cut['time']:.3f} s" for cut in result.scene_cuts[:10])
        more = f" and {len(result.scene_cuts) - 10} more" if len(result.scene_cuts) > 10 else ""
        ui.info(f"scene cuts held, not blended: {len(result.scene_cuts)} (at {where}{more})", quiet=quiet)
    if result.duplicates_dropped:
        ui.info(f"duplicate frames interpolated over: {result.duplicates_dropped}", quiet=quiet)
    if engine_stats.get("fp32_recomputed"):
        ui.info(f"frames recomputed in fp32 after a half-precision overflow: {engine_stats['fp32_recomputed']}", quiet=quiet)
    if verification.get("ok"):
        ui.info("checked: frame count, rate, duration and audio of the written file match the plan", quiet=quiet)
    elif verification:
        ui.warn(f"the written file does not match the plan (--no-verify): {failure_message(_as_report(verification))}")
    if json_out:
        ui.emit_json(
            {
                "input": str(result.input_path),
                "output": str(result.output_path),
                "engine": engine_name,
                "device": device,
                "precision": engine.policy.name if engine is not None else None,
                "decoded_frames": result.decoded_frames,
                "input_frames": result.input_frames,
                "output_frames": result.output_frames,
                "interpolated_frames": result.interpolated_frames,
                "duplicates_dropped": result.duplicates_dropped,
                "scene_cuts": result.scene_cuts,
                "input_rate": str(result.input_rate),
                "output_rate": str(result.output_rate),
                "input_duration": float(result.input_duration),
                "output_duration": float(result.output_duration),
                "audio": result.audio,
                "elapsed_seconds": round(result.elapsed, 3),
                "stage_seconds": {k: round(v, 3) for k, v in result.stage_seconds.items()},
                "profile": profile,
                "profile_reason": profile_reason,
                "engine_stats": engine_stats,
                "tiles": _tiles(engine),
                "verification": verification,
                "notices": result.notices,
                "subtitles": result.subtitles,
                "segments": result.segments,
            }
        )


def _profile(engine_stats: dict) -> tuple[str | None, str | None]:
    """The weight-free engine's profile of the last pair and why it ran (None, None for other engines or
    when no pair was interpolated)."""
    profile = engine_stats.get("profile")
    if profile is None:
        return None, None
    auto = engine_stats.get("auto")
    return profile, (f"chosen by --profile auto, {auto['reason']}" if auto else "asked for with --profile")


def _tiles(engine) -> dict | None:
    """The tile grid of the last pair, when the engine runs within a memory budget."""
    grid = getattr(engine, "last_grid", None)
    if grid is None:
        return None
    return {"rows": grid.rows, "cols": grid.cols, "tile_width": grid.tile_width, "tile_height": grid.tile_height,
            "oom_retries": getattr(engine, "retries", 0)}


def _as_report(data: dict):
    from ..verify import Check, VerifyReport

    return VerifyReport(data["path"], data["method"], data["ok"], [Check(**c) for c in data["checks"]], data.get("error"))
