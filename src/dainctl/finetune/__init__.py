"""`dainctl finetune`: DAIN trained further on the user's own clips.

    settings = FinetuneSettings(...)
    summary = run(settings, resume=False, overwrite=False, reporter_factory=Reporter)

`run` checks what can be checked cheaply before any work (the output, the checkpoint folder, each
clip's frame size against the crop, the weights), trains in this process, in `world` processes of its
own (`--nproc`) or as one rank of a torchrun job, then writes the output (the final weights, float32
safetensors, loadable by `interpolate --engine dain --weights` and by `convert`) and the curves PNG
beside it, each atomically. The checkpoint folder stays (`--resume --steps N` continues the run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from dainctl import errors
from dainctl.errors import DainctlError, OutputError, UsageError
from dainctl.finetune import distributed
from dainctl.finetune.checkpoint import CheckpointFolder
from dainctl.finetune.data import check_crop
from dainctl.finetune.plot import plot_curves
from dainctl.finetune.trainer import FinetuneSettings, Reporter, Summary, configure_threads, train
from dainctl.models.weights import load_dain_weights, write_file_atomically
from dainctl.paths import remove_path
from dainctl.video.reader import open_input

__all__ = ["FinetuneSettings", "Reporter", "Summary", "plot_path_for", "run"]


def plot_path_for(output: Path) -> Path:
    """tuned.safetensors -> tuned.curves.png"""
    return output.with_name(output.stem + ".curves.png")


def check_job(settings: FinetuneSettings, *, resume: bool, overwrite: bool) -> None:
    """Everything that can fail before decoding a clip, each as one line."""
    output = Path(settings.output)
    folder = CheckpointFolder(output)
    if output.is_dir():
        raise OutputError(f"{output} is a directory; give a file name such as tuned.safetensors")
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"cannot write {output}: folder {parent} does not exist")
    if any(Path(clip).resolve() == output.resolve() for clip in settings.clips) or output.resolve() == Path(settings.weights).resolve():
        raise OutputError(f"the output {output} is one of the inputs; choose another name")
    if folder.exists() and not resume and not overwrite:
        raise UsageError(f"{folder.path} holds the checkpoint of an earlier run: add --resume to continue it, "
                         "or --overwrite to start over")
    if output.exists() and not overwrite and not (resume and folder.exists()):
        raise OutputError(f"{output} already exists (use --overwrite to replace it)")
    if settings.batch % settings.world:
        raise UsageError(f"--batch {settings.batch} must be a multiple of the number of processes ({settings.world})")
    for clip in settings.clips:
        with open_input(clip) as source:
            check_crop(settings.crop, source.info.width, source.info.height, Path(clip))
    load_dain_weights(settings.weights)


def run(settings: FinetuneSettings, *, resume: bool, overwrite: bool,
        reporter_factory: Callable[[], Reporter] = Reporter) -> Summary | None:
    """Check, train, write the output and the plot; returns the summary (None on a torchrun rank > 0)."""
    torchrun = distributed.from_torchrun()
    if torchrun is not None and torchrun.world != settings.world:
        raise UsageError(f"--nproc {settings.world} does not match torchrun's WORLD_SIZE {torchrun.world}")
    lead = torchrun is None or torchrun.rank == 0
    if lead:
        check_job(settings, resume=resume, overwrite=overwrite)
        if overwrite and not resume:
            remove_path(CheckpointFolder(settings.output).path)
    device_type = "cuda" if str(settings.device).startswith("cuda") else "cpu"
    if torchrun is not None:
        distributed.init(torchrun, device_type)
        try:
            distributed.barrier()  # rank 0 has checked (and maybe cleared) before anyone trains
            configure_threads(1)
            summary = train(settings, rank=torchrun.rank, reporter=reporter_factory() if lead else None, resume=resume)
        finally:
            distributed.shutdown()
    elif settings.world > 1:
        summary = _spawned(settings, resume, reporter_factory)
    else:
        summary = train(settings, reporter=reporter_factory(), resume=resume)
    if summary is not None:
        write_file_atomically(CheckpointFolder(settings.output).latest_weights().read_bytes(), settings.output)
        plot_curves(summary.history, summary.start_val_psnr, plot_path_for(Path(settings.output)))
    return summary


def _spawned(settings: FinetuneSettings, resume: bool, reporter_factory) -> Summary:
    import torch.multiprocessing as mp

    results = mp.get_context("spawn").SimpleQueue()
    distributed.spawn(settings.world, _worker, (settings, resume, reporter_factory, results))
    outcome = None
    while not results.empty():
        item = results.get()
        if outcome is None or item[0] == "error":
            outcome = item
    if outcome is None:
        raise errors.EngineError("the training processes ended without a result")
    if outcome[0] == "error":
        _, name, code, message = outcome
        error = getattr(errors, name, DainctlError)(message)
        error.exit_code = code
        raise error
    return outcome[1]


def _worker(index: int, address: str, settings: FinetuneSettings, resume: bool, reporter_factory, results) -> None:
    rank = distributed.Rank(index, settings.world, index)
    device_type = "cuda" if str(settings.device).startswith("cuda") else "cpu"
    try:
        configure_threads(settings.world)
        distributed.init(rank, device_type, address)
        summary = train(settings, rank=index, reporter=reporter_factory() if index == 0 else None, resume=resume)
        if index == 0:
            results.put(("ok", summary))
    except DainctlError as error:
        if index == 0 or not isinstance(error, errors.StoppedWithCheckpoint):
            results.put(("error", type(error).__name__, error.exit_code, error.message))
    except KeyboardInterrupt:
        results.put(("error", "StoppedWithCheckpoint", errors.INTERRUPTED_EXIT_CODE, "interrupted twice; stopped without a checkpoint"))
    finally:
        distributed.shutdown()

