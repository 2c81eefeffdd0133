"""Options shared by the commands that run an engine (Annotated, as in huggingface_hub's CLI)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .config import load_config

InputArg = Annotated[Path, typer.Argument(help="Input video file, or a folder of images (png/jpg).", show_default=False)]
OutputArg = Annotated[
    Optional[Path],
    typer.Argument(help="Output video file or folder; default: next to the input, named for what was done.", show_default=False),
]
FactorOpt = Annotated[Optional[int], typer.Option("--factor", "-x", help="Frames per input frame (integer >= 2); N-1 new frames per pair.", show_default=False)]
EngineOpt = Annotated[str, typer.Option("--engine", help="Interpolation engine: flow (weight-free, default) or dain.")]
ProfileOpt = Annotated[
    str,
    typer.Option("--profile", help="Weight-free engine: high (best quality, 0.4-0.6 s per 640x480 pair on 2 cores), balanced, fast (the fastest), or auto: the best profile predicted to fit the time budget on this machine (calibrated on the first pair)."),
]
WeightsOpt = Annotated[Optional[Path], typer.Option("--weights", help="DAIN weights: a file made by `dainctl convert`, or the original best.pth.", show_default=False)]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]
PrecisionOpt = Annotated[
    Optional[bool],
    typer.Option("--fp16/--fp32", help="Half precision on CUDA (default there); fp32 elsewhere.", show_default=False),
]
CodecOpt = Annotated[
    Optional[str],
    typer.Option("--codec", help="Video encoder (libx264, libx265, libvpx-vp9, ...); default: libx264, libvpx-vp9 for WebM.", show_default=False),
]
CrfOpt = Annotated[int, typer.Option("--crf", help="Constant rate factor (quality; lower is better).")]
PresetOpt = Annotated[Optional[str], typer.Option("--preset", help="Encoder preset (libx264: ultrafast ... veryslow); default: the writer's.", show_default=False)]
PixFmtOpt = Annotated[
    Optional[str],
    typer.Option("--pix-fmt", help="Output pixel format (default: yuv420p, or yuv420p10le for input deeper than 8 bits where the codec allows).", show_default=False),
]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")]
FolderFpsOpt = Annotated[str, typer.Option("--folder-fps", help="Frame rate given to an image-folder input.")]
ConfigOpt = Annotated[
    Optional[Path],
    typer.Option("--config", help="YAML file of option values; flags on the command line win.", is_eager=True, callback=load_config, show_default=False),
]
SceneThresholdOpt = Annotated[
    float,
    typer.Option("--scene-threshold", help="Scene-cut score (0-1) above which frames are held, never blended; 1 turns detection off.", min=0.0, max=1.0),
]
NoSceneDetectOpt = Annotated[bool, typer.Option("--no-scene-detect", help="Interpolate across every pair, cuts included.")]
DedupOpt = Annotated[bool, typer.Option("--dedup", help="Interpolate across runs of duplicate frames (animation on twos, static frames) instead of repeating them.")]
DedupThresholdOpt = Annotated[float, typer.Option("--dedup-threshold", help="Largest pixel change (8-bit levels, on a thumbnail) that still counts as a duplicate.", min=0.0)]
NoVerifyOpt = Annotated[bool, typer.Option("--no-verify", help="A failed check of the written output (frames, duration, audio) only warns.")]
MaxMemoryOpt = Annotated[
    Optional[str],
    typer.Option("--max-memory", help="Memory budget for the engine, e.g. 16G: large frames are processed in overlapping tiles that fit it (default: the GPU's free memory).", show_default=False),
]
BatchPairsOpt = Annotated[Optional[int], typer.Option("--batch-pairs", min=1, show_default=False, help="DAIN: frame pairs per forward (default: 4 on CUDA within the memory budget, 1 on the CPU).")]
SegmentSecondsOpt = Annotated[
    float,
    typer.Option("--segment-seconds", min=0.0, help="Long inputs are done in segments of about this many seconds of input, kept in OUT.dainctl-job/ until joined, so that an interrupted run resumes where it stopped (0: one pass, no segments)."),
]
RestartOpt = Annotated[bool, typer.Option("--restart", help="Discard an unfinished earlier run's segments (OUT.dainctl-job/) instead of resuming it.")]
RayOpt = Annotated[
    Optional[str],
    typer.Option("--ray", help="Compute the segments as Ray tasks: local (a private Ray instance on this machine, all its GPUs), auto (the running cluster) or a cluster address; needs pip install 'dainctl[ray]'.", show_default=False),
]
RayWorkersOpt = Annotated[Optional[int], typer.Option("--ray-workers", min=1, help="With --ray local and no GPU: tasks at once (default: one per core).", show_default=False)]
