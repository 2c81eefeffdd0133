"""`dainctl benchmark` (throughput, the default) and `dainctl benchmark quality DIR|VIDEO`.

Registered in `dainctl.cli` with `app.add_typer(benchmark.app, name="benchmark")`. A rich table goes to
stderr; `--json` prints the machine-readable result on stdout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import InputError, UsageError
from . import ui
from .options import BatchPairsOpt, EngineOpt, MaxMemoryOpt, ProfileOpt, RayOpt, RayWorkersOpt

app = typer.Typer(
    name="benchmark",
    help="Measure throughput and memory (default), or quality with `benchmark quality DIR|VIDEO`.",
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    invoke_without_command=True,
)

GpuOpt = Annotated[bool, typer.Option("--gpu", help="Run on the CUDA GPU (an error without one).")]
WeightsOpt = Annotated[
    Optional[Path],
    typer.Option("--weights", help="DAIN weights; without them DAIN runs on random, well-scaled weights (speed only).", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the results as JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No table and no progress on stderr.")]


def _device(gpu: bool) -> str:
    from ..engines import resolve_device

    return resolve_device("cuda" if gpu else "cpu")  # EngineError (one line) when --gpu has no CUDA


def _check_engine(engine: str, weights: Optional[Path], profile: str = "auto") -> None:
    from ..engines import check_engine

    check_engine(engine, weights, profile, need_weights=False)  # throughput: random weights when none


def _max_memory(text: Optional[str]) -> Optional[int]:
    from ..tiling import parse_memory

    return None if text is None else parse_memory(text)


@app.callback()
def throughput(
    ctx: typer.Context,
    gpu: GpuOpt = False,
    engine: EngineOpt = "flow",
    profile: ProfileOpt = "auto",
    weights: WeightsOpt = None,
    size: Annotated[
        Optional[list[str]],
        typer.Option("--size", help="Frame size WIDTHxHEIGHT of the synthetic clip; repeat or comma-separate for several.", show_default="1280x720"),
    ] = None,
    frames: Annotated[Optional[int], typer.Option("--frames", help="Frames in the synthetic clip.", show_default="30")] = None,
    precision: Annotated[
        Optional[str],
        typer.Option("--precision", help="fp16, fp32 or fp16,fp32 (ratios reported); fp16 needs --gpu.", show_default="fp32 on CPU, fp16,fp32 on GPU"),
    ] = None,
    input: Annotated[
        Optional[Path],
        typer.Option("--input", help="Benchmark on this video instead of a synthetic clip.", show_default=False),
    ] = None,
    factor: Annotated[int, typer.Option("--factor", help="Frames per input frame (2 = one new frame per pair).")] = 2,
    max_memory: MaxMemoryOpt = None,
    alone: Annotated[
        bool,
        typer.Option("--alone/--no-alone", help="Also time each stage alone, for the overlap report (doubles the run time)."),
    ] = True,
    breakdown: Annotated[bool, typer.Option("--breakdown/--no-breakdown", help="Time the engine's parts on a few pairs.")] = True,
    batch_pairs: BatchPairsOpt = None,
    ray: RayOpt = None,
    ray_workers: RayWorkersOpt = None,
    segment_seconds: Annotated[float, typer.Option("--segment-seconds", min=0.1, help="With --ray: the segments of the comparison, seconds of input.")] = 2.0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Throughput: per-stage times, output fps, overlap, peak RSS and GPU memory, fp16/fp32 ratios; with
    --ray, segments per second on Ray against the same segments computed here."""
    if ctx.invoked_subcommand is not None:
        return
    cases = plan_cases(gpu, engine, weights, size, frames, precision, input, factor, max_memory, alone, breakdown, profile,
                       pairs=batch_pairs)
    if ray is not None:
        from dataclasses import replace
        from fractions import Fraction

        from ..cluster import import_ray

        import_ray()  # one line on how to install it, before any work
        cases = [replace(case, ray=ray, ray_workers=ray_workers,
                         segment_seconds=Fraction(segment_seconds).limit_denominator(1000)) for case in cases]
    from ..benchmark import throughput as measure

    report = measure(cases, log=lambda message: ui.info(f"benchmark: {message}", quiet=quiet))
    if not quiet:
        print_throughput(report)
    if json_out:
        ui.emit_json(report)


def plan_cases(gpu, engine, weights, size, frames, precision, input, factor, max_memory, alone, breakdown, profile="auto",
               pairs=None):
    """Check every option before any work starts; returns the list of `benchmark.Case`."""
    from ..benchmark import Case, parse_precisions, parse_sizes

    _check_engine(engine, weights, profile)
    if weights is not None and not weights.is_file():
        raise InputError(f"weights file not found: {weights}")
    if not 2 <= factor <= 64:
        raise UsageError(f"invalid --factor {factor}: use 2 to 64")
    if input is not None:
        if size:
            raise UsageError("--size is for the synthetic clip; with --input the video's own size is used")
        if frames is not None:
            raise UsageError("--frames is for the synthetic clip; with --input the whole video is used")
        if not input.exists():
            raise InputError(f"input not found: {input}")
        if not input.is_file():
            raise InputError(f"--input must be a video file, not a folder: {input}")
        sizes: list = [(None, None)]
    else:
        sizes = parse_sizes(size or ["1280x720"])
        frames = 30 if frames is None else frames
        if not 2 <= frames <= 1_000_000:
            raise UsageError(f"invalid --frames {frames}: a benchmark needs at least 2 frames")
    budget = _max_memory(max_memory)
    device = _device(gpu)
    precisions = parse_precisions(precision, device)
    return [
        Case(engine=engine, device=device, precision=p, width=w, height=h, frames=frames, input_path=input,
             weights=weights, max_memory=budget, factor=factor, measure_alone=alone, breakdown=breakdown,
             profile=profile, pairs=pairs)
        for (w, h) in sizes
        for p in precisions
    ]


def print_throughput(report: dict) -> None:
    """One column per case, one row per measure (narrow enough for an 80-column terminal)."""
    from rich.table import Table

    from ..tiling import format_bytes

    results = report["results"]
    table = Table(title="dainctl benchmark: throughput", title_justify="left")
    table.add_column("")
    for item in results:
        table.add_column(f"{item['engine']} {item['precision']} {item['device']}\n{item['width']}x{item['height']}", justify="right")

    def row(label: str, render) -> None:
        table.add_row(label, *(render(item) for item in results))

    row("frames in -> out", lambda i: f"{i['input_frames']} -> {i['output_frames']}")
    row("end-to-end wall s", lambda i: f"{i['wall_seconds']:.2f}")
    row("output fps", lambda i: _num(i["output_fps"]))
    row("analysis pass s", lambda i: _num(i["stage_seconds"].get("analysis")))
    for stage in ("decode", "interpolate", "encode"):
        row(f"{stage} s (pipelined)", lambda i, stage=stage: _num(i["stage_seconds"].get(stage)))
    for stage in ("decode", "interpolate", "encode"):
        row(f"{stage} s (alone)", lambda i, stage=stage: _num((i["alone_seconds"] or {}).get(stage)))
    row("wall / slowest alone", lambda i: _num((i["overlap"] or {}).get("end_to_end_over_slowest")))
    if any(item.get("ray") for item in results):
        row("segments", lambda i: str((i["ray"] or {}).get("segments", "-")))
        row("segments/s here", lambda i: _num((i["ray"] or {}).get("segments_per_second_local")))
        row("segments/s on Ray", lambda i: _num((i["ray"] or {}).get("segments_per_second_ray")))
        row("Ray wall / here", lambda i: _num((i["ray"] or {}).get("ray_over_local")))
    row("engine ms/pair", lambda i: _num(i["breakdown"]["engine_ms_per_pair"]) if i["breakdown"] else "-")
    parts = []
    for item in results:
        for name in (item["breakdown"] or {}).get("parts_ms_per_pair", {}):
            if name not in parts:
                parts.append(name)
    for name in parts:
        row(f"  {name} ms/pair", lambda i, name=name: _num(((i["breakdown"] or {}).get("parts_ms_per_pair") or {}).get(name)))
    row("peak RSS", lambda i: format_bytes(i["peak_rss_bytes"]))
    row("peak GPU memory", lambda i: format_bytes(i["peak_gpu_bytes"]))
    if any(i["tiles"] for i in results):
        row("tiles", lambda i: f"{i['tiles']['rows']}x{i['tiles']['cols']} of {i['tiles']['tile_height']}x{i['tiles']['tile_width']}" if i["tiles"] else "-")
    ui.stderr.print(table)
    for ratio in report["ratios"]:
        ui.stderr.print(
            f"{ratio['engine']} {ratio['width']}x{ratio['height']}: fp16/fp32 speed {_num(ratio['fps_fp16_over_fp32'])}x, "
            f"peak GPU memory {_num(ratio['peak_gpu_fp16_over_fp32'])}x"
        )


def _num(value) -> str:
    return "-" if value is None else f"{value:.2f}"


@app.command("run", help="Throughput (the same as plain `dainctl benchmark`).")
def run_command(
    ctx: typer.Context,
    gpu: GpuOpt = False,
    engine: EngineOpt = "flow",
    profile: ProfileOpt = "auto",
    weights: WeightsOpt = None,
    size: Annotated[Optional[list[str]], typer.Option("--size", help="WIDTHxHEIGHT; repeat or comma-separate.", show_default="1280x720")] = None,
    frames: Annotated[Optional[int], typer.Option("--frames", help="Frames in the synthetic clip.", show_default="30")] = None,
    precision: Annotated[Optional[str], typer.Option("--precision", help="fp16, fp32 or fp16,fp32.", show_default=False)] = None,
    input: Annotated[Optional[Path], typer.Option("--input", help="A video instead of the synthetic clip.", show_default=False)] = None,
    factor: Annotated[int, typer.Option("--factor", help="Frames per input frame.")] = 2,
    max_memory: MaxMemoryOpt = None,
    alone: Annotated[bool, typer.Option("--alone/--no-alone", help="Also time each stage alone.")] = True,
    breakdown: Annotated[bool, typer.Option("--breakdown/--no-breakdown", help="Time the engine's parts.")] = True,
    batch_pairs: BatchPairsOpt = None,
    ray: RayOpt = None,
    ray_workers: RayWorkersOpt = None,
    segment_seconds: Annotated[float, typer.Option("--segment-seconds", min=0.1, help="With --ray: the segments of the comparison.")] = 2.0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    throughput(ctx, gpu, engine, profile, weights, size, frames, precision, input, factor, max_memory, alone, breakdown,
               batch_pairs, ray=ray, ray_workers=ray_workers, segment_seconds=segment_seconds, json_out=json_out,
               quiet=quiet)


@app.command("quality")
def quality(
    source: Annotated[Path, typer.Argument(help="A folder of triplets (Middlebury or UCF101 layout), or a video.", show_default=False)],
    gpu: GpuOpt = False,
    engine: EngineOpt = "flow",
    profile: ProfileOpt = "auto",
    weights: WeightsOpt = None,
    fp16: Annotated[bool, typer.Option("--fp16/--fp32", help="Half precision (with --gpu; fp32 and a warning without).")] = False,
    max_memory: MaxMemoryOpt = None,
    max_items: Annotated[
        Optional[int],
        typer.Option("--max-items", help="For a video: stop after this many re-created frames.", show_default=False),
    ] = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    summary: Annotated[bool, typer.Option("--summary", help="One line with the means instead of the table.")] = False,
) -> None:
    """PSNR/SSIM per item and mean: triplets in a folder, or a video's every other frame re-created."""
    _check_engine(engine, weights, profile)
    if not source.exists():
        raise InputError(f"not found: {source}")
    if max_items is not None and max_items < 1:
        raise UsageError(f"invalid --max-items {max_items}: it must be at least 1")
    budget = _max_memory(max_memory)
    device = _device(gpu)
    from ..engines import create_engine

    model = create_engine(engine, device=device, fp16=fp16, weights=weights, profile=profile, max_memory=budget,
                          warn=ui.warn, on_retry=ui.warn)

    with ui.frame_progress("quality", quiet=quiet) as bar:

        def update(done: int, total: int | None) -> None:
            bar.start()  # on the first result, so an error found while opening the input prints alone
            bar.update(done, total)

        if source.is_dir():
            from ..quality import evaluate_triplets

            report = evaluate_triplets(model, source, progress=lambda done, total, score: update(done, total))
            items = [{"name": s.name, "psnr": _finite(s.psnr), "ssim": round(s.ssim, 6)} for s in report.items]
            finite = [item["psnr"] for item in items if item["psnr"] is not None]
            result = {
                "items": items,
                "mean_psnr": round(sum(finite) / len(finite), 4) if finite else None,
                "mean_ssim": round(report.mean_ssim, 6),
                "identical": len(items) - len(finite),
            }
            kind = "triplets"
        else:
            from ..quality import video_self_check

            result = video_self_check(model, source, max_items=max_items, progress=lambda done, total, item: update(done, total))
            kind = "video"
    from ..quality import QUALITY_SCHEMA

    payload = {"schema": QUALITY_SCHEMA, "source": str(source), "kind": kind, "engine": engine, "profile": profile,
               "device": device,
               "precision": "fp16" if fp16 else "fp32", **result}
    profile_ran = (getattr(model, "stats", None) or {}).get("profile")
    if profile_ran is not None:
        payload["profile_ran"] = profile_ran
    if summary:
        ui.info(quality_line(payload), quiet=quiet)
    elif not quiet:
        print_quality(payload)
    if json_out:
        ui.emit_json(payload)


def quality_line(payload: dict) -> str:
    """The means in one line: what `--summary` prints."""
    video = payload["kind"] == "video"
    what = "frames re-created from their neighbours" if video else "triplets"
    mean = payload["mean_psnr"]
    psnr = "identical" if mean is None else f"mean PSNR {mean:.2f} dB"
    ran = f", profile {payload['profile_ran']}" if payload.get("profile_ran") else ""
    return (f"{'quality self-check' if video else 'quality'}: {payload['source']}: {len(payload['items'])} {what}, {psnr}, "
            f"SSIM {payload['mean_ssim']:.4f} (engine {payload['engine']}{ran})")


def _finite(value: float) -> float | None:
    import math

    return None if math.isinf(value) else round(value, 4)


def print_quality(payload: dict) -> None:
    from rich.table import Table

    title = f"dainctl benchmark quality: {payload['source']} ({payload['kind']}, engine {payload['engine']})"
    table = Table(title=title, title_justify="left")
    table.add_column("item")
    table.add_column("PSNR dB", justify="right")
    table.add_column("SSIM", justify="right")
    for item in payload["items"]:
        table.add_row(item["name"], "identical" if item["psnr"] is None else f"{item['psnr']:.2f}", f"{item['ssim']:.4f}")
    table.add_section()
    mean = payload["mean_psnr"]
    table.add_row(f"mean of {len(payload['items'])}", "-" if mean is None else f"{mean:.2f}", f"{payload['mean_ssim']:.4f}")
    ui.stderr.print(table)
