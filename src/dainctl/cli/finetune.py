"""`dainctl finetune`: train DAIN further on your own clips (mixed precision on CUDA)."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..errors import UsageError
from ..scene import DEFAULT_DEDUP_THRESHOLD, DEFAULT_SCENE_THRESHOLD
from . import ui
from .options import ConfigOpt, DeviceOpt, JsonOpt, OverwriteOpt, QuietOpt

PRECISION_CHOICES = ("fp16", "bf16", "fp32")


class ConsoleReporter:
    """The bar (step, loss, validation PSNR, learning rate, loss scale, steps/s) on stderr; with --json
    one JSON line per step on stdout."""

    def __init__(self, quiet: bool = False, json_out: bool = False):
        self.quiet = quiet
        self.json_out = json_out
        self._progress: Progress | None = None
        self._task = None
        self._val = "-"

    def clips(self, clips) -> None:
        from ..finetune.data import describe_clip

        for clip in clips:
            ui.info(describe_clip(clip), quiet=self.quiet)

    def start(self, step: int, steps: int) -> None:
        if step:
            ui.info(f"resuming at step {step} of {steps}", quiet=self.quiet)
        if self.quiet:
            return
        self._progress = Progress(
            TextColumn("[bold]finetune"), BarColumn(), MofNCompleteColumn(), TextColumn("steps"),
            TextColumn("loss {task.fields[loss]}  val {task.fields[val]}  lr {task.fields[lr]}  "
                       "scale {task.fields[scale]}  {task.fields[speed]} steps/s"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=ui.stderr,
        )
        self._progress.start()
        self._task = self._progress.add_task("finetune", total=steps, completed=step, loss="-", val="-", lr="-",
                                             scale="-", speed="-")

    def step(self, record: dict) -> None:
        if "val_psnr" in record:
            self._val = f"{record['val_psnr']:.2f} dB"
        if self._progress is not None:
            scale = record["loss_scale"]
            self._progress.update(self._task, completed=record["step"], loss=f"{record['loss']:.4f}", val=self._val,
                                  lr=f"{record['lr']:.2e}", scale="-" if scale is None else f"{scale:g}",
                                  speed=f"{record['steps_per_second']:.2f}")
        if self.json_out:
            sys.stdout.write(json.dumps({"event": "step", **record}) + "\n")
            sys.stdout.flush()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def finetune(
    clips: Annotated[list[Path], typer.Argument(help="Videos or image folders to learn from.", show_default=False)],
    weights: Annotated[Path, typer.Option("--weights", help="Starting DAIN weights: a file made by `dainctl convert`, or best.pth.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="The tuned weights to write (safetensors), e.g. tuned.safetensors.", show_default=False)],
    steps: Annotated[int, typer.Option("--steps", min=1, help="Optimiser steps in all (a resumed run counts the steps already done).")] = 1000,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Triplets per step, over all processes.")] = 4,
    crop: Annotated[int, typer.Option("--crop", min=64, help="Side of the square random crops, pixels.")] = 256,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="Base learning rate (Adamax); PWC-Net takes 0.01x of it, MegaDepth 0.001x.")] = 5e-4,
    precision: Annotated[Optional[str], typer.Option("--precision", help="fp16 (autocast with loss scaling; CUDA only, the default there), bf16 (autocast) or fp32 (the CPU's default).", show_default=False)] = None,
    train: Annotated[str, typer.Option("--train", help="Sub-networks that learn: any of pwc,depth,kernel,context,rectifier.")] = "kernel,context,rectifier",
    val_every: Annotated[int, typer.Option("--val-every", min=1, help="Validate on the held-out triplets every K steps (and lower the LR on a plateau).")] = 100,
    val_items: Annotated[int, typer.Option("--val-items", min=1, help="Held-out triplets in the validation (centre crops).")] = 16,
    checkpoint_every: Annotated[Optional[int], typer.Option("--checkpoint-every", min=1, help="Save a checkpoint every K steps (default: --val-every).", show_default=False)] = None,
    accumulate: Annotated[int, typer.Option("--accumulate", min=1, help="Batches whose gradients are summed per step.")] = 1,
    grad_clip: Annotated[float, typer.Option("--grad-clip", min=0.0, help="Largest global gradient norm (0: no clipping).")] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the triplet sampling and augmentation.")] = 0,
    device: DeviceOpt = "auto",
    nproc: Annotated[int, typer.Option("--nproc", min=1, help="Processes on this machine (DistributedDataParallel: gloo on the CPU, nccl on GPUs); under torchrun give its --nproc-per-node x nodes.")] = 1,
    scene_threshold: Annotated[float, typer.Option("--scene-threshold", min=0.0, max=1.0, help="Scene-cut score above which a triplet is excluded; 1 turns detection off.")] = DEFAULT_SCENE_THRESHOLD,
    dedup_threshold: Annotated[float, typer.Option("--dedup-threshold", min=0.0, help="Largest thumbnail pixel change (8-bit levels) of a duplicate frame.")] = DEFAULT_DEDUP_THRESHOLD,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run whose checkpoint is beside --out (same options; starts afresh if there is none).")] = False,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Fine-tune DAIN on your own footage; writes tuned weights, a curves PNG and a resumable checkpoint."""
    from ..engines import resolve_device
    from ..finetune import FinetuneSettings, plot_path_for, run
    from ..finetune.trainer import parse_train
    from ..precision import PrecisionPolicy

    if precision is not None and precision not in PRECISION_CHOICES:
        raise UsageError(f"invalid --precision {precision!r}: use fp16, bf16 or fp32")
    resolved = resolve_device(device)
    if precision in (None, "fp16"):
        policy = PrecisionPolicy.choose(resolved, None if precision is None else True, on_fallback=ui.warn)
    else:
        policy = PrecisionPolicy(precision, resolved)
    settings = FinetuneSettings(
        clips=tuple(clips), weights=weights, output=out, steps=steps, batch=batch, crop=crop, lr=lr,
        precision=policy.name, device=resolved, train=parse_train(train), val_every=val_every, val_items=val_items,
        checkpoint_every=checkpoint_every or val_every, accumulate=accumulate, grad_clip=grad_clip, seed=seed,
        world=nproc, scene_threshold=scene_threshold if scene_threshold < 1.0 else None,
        dedup_threshold=dedup_threshold,
    )
    summary = run(settings, resume=resume, overwrite=overwrite,
                  reporter_factory=functools.partial(ConsoleReporter, quiet=quiet, json_out=json_out))
    if summary is None:  # a torchrun rank other than 0
        return
    counters = summary.counters
    scaling = (f", loss scaling: {counters['skipped_steps']} steps skipped, {counters['scale_backoffs']} backoffs, "
               f"{counters['scale_growths']} growths" if summary.precision == "fp16" else "")
    ui.info(
        f"done: {summary.steps} steps ({summary.precision} on {summary.device}, {summary.world} process"
        f"{'es' if summary.world > 1 else ''}, training {','.join(summary.train)}) in {summary.elapsed_seconds:.1f} s; "
        f"validation PSNR {summary.start_val_psnr:.2f} dB (starting weights) -> {summary.final_val_psnr:.2f} dB (tuned)"
        f"{scaling}",
        quiet=quiet,
    )
    ui.info(f"wrote {summary.output} (use with --engine dain --weights), curves {plot_path_for(Path(summary.output))}, "
            f"checkpoint {summary.checkpoint_folder} (--resume --steps N continues)", quiet=quiet)
    if json_out:
        payload = {"event": "summary", **{k: v for k, v in vars(summary).items() if k != "history"}}
        sys.stdout.write(json.dumps(payload, default=str) + "\n")
        sys.stdout.flush()
