"""`dainctl convert`: the original DAIN checkpoint (best.pth) -> a strict, half-size safetensors file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import ui


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def convert(
    source: Annotated[Path, typer.Argument(help="The DAIN checkpoint: best.pth (legacy or zip format) or a converted file.", show_default=False)],
    destination: Annotated[Path, typer.Argument(help="The safetensors file to write, e.g. dain.safetensors.", show_default=False)],
    dtype: Annotated[str, typer.Option("--dtype", help="fp16, bf16 or fp32.")] = "fp16",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing destination.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary on stderr.")] = False,
) -> None:
    """Convert the original DAIN checkpoint into dainctl's weights file (strict key and shape check)."""
    from ..convert import convert_checkpoint

    result = convert_checkpoint(source, destination, dtype, overwrite=overwrite)
    ui.info(
        f"converted {result.source} ({result.source_format}, {_mb(result.source_bytes)}) -> "
        f"{result.destination} ({result.dtype}, {_mb(result.destination_bytes)}): "
        f"{result.num_tensors} tensors, {result.num_parameters:,} values, all keys and shapes checked",
        quiet=quiet,
    )
    if json_out:
        ui.emit_json(result.as_dict())
