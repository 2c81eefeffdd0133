"""`dainctl convert SRC DST --dtype fp16|bf16|fp32`: turn a DAIN checkpoint into a safetensors file.

The source is read safely (`torch.load(weights_only=True)`, see `dainctl.models.weights`), validated key
by key and shape by shape against the architecture, cast, and written atomically with metadata: the
source file's sha256, the dtype, the dainctl version and the architecture id.  BatchNorm running
statistics stay float32 whatever the dtype (a variance near eps or a large mean loses the digits that
matter in half precision, and they are 14k values); the int64 `num_batches_tracked` counters are kept
as they are, so the file holds exactly the original layout.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from dainctl import __version__
from dainctl.errors import OutputError, UsageError
from dainctl.models.weights import (
    ARCHITECTURE_ID,
    read_checkpoint,
    sha256_of_file,
    validate_state_dict,
    write_weights_file,
)

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
FLOAT32_KEY_SUFFIXES = (".running_mean", ".running_var")


@dataclass
class ConvertResult:
    """What `convert_checkpoint` did; sizes in bytes."""

    source: str
    destination: str
    source_format: str  # "torch-legacy", "torch-zip" or "safetensors"
    dtype: str  # "fp16", "bf16" or "fp32"
    num_tensors: int
    num_parameters: int  # floating-point elements (parameters and BatchNorm statistics)
    source_bytes: int
    destination_bytes: int
    source_sha256: str

    def as_dict(self) -> dict:
        return asdict(self)


def _cast(name: str, tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if not tensor.is_floating_point():
        return tensor.contiguous()
    if name.endswith(FLOAT32_KEY_SUFFIXES):
        return tensor.to(torch.float32).contiguous()
    return tensor.to(dtype).contiguous()


def convert_checkpoint(
    source: str | os.PathLike, destination: str | os.PathLike, dtype: str = "fp16", *, overwrite: bool = False
) -> ConvertResult:
    """Convert a DAIN checkpoint (`best.pth` or a converted file) to safetensors at `destination`.

    Raises `UsageError` for an unknown dtype, `WeightsError` for an unreadable, unsafe or mismatched
    source (one line, naming the offending keys), `OutputError` when the destination exists (without
    `overwrite`), is the source, or cannot be written.
    """
    if dtype not in DTYPES:
        raise UsageError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    source_path = Path(source)
    destination_path = Path(destination)
    if destination_path.exists() and source_path.exists() and destination_path.resolve() == source_path.resolve():
        raise OutputError(f"destination {destination_path} is the source checkpoint; choose another name")
    if destination_path.exists() and not overwrite:
        raise OutputError(f"{destination_path} already exists (use --overwrite to replace it)")
    if destination_path.is_dir():
        raise OutputError(f"{destination_path} is a directory; give a file name such as dain.safetensors")

    checkpoint = read_checkpoint(source_path)
    validate_state_dict(checkpoint.state_dict, source_path)
    target_dtype = DTYPES[dtype]
    tensors = {name: _cast(name, tensor, target_dtype) for name, tensor in checkpoint.state_dict.items()}
    source_sha256 = sha256_of_file(source_path)
    metadata = {
        "format": "dainctl-weights",
        "architecture": ARCHITECTURE_ID,
        "dtype": dtype,
        "dainctl_version": __version__,
        "source_sha256": source_sha256,
        "source_name": source_path.name,
        "source_format": checkpoint.file_format,
    }

    write_weights_file(tensors, metadata, destination_path)

    return ConvertResult(
        source=str(source_path),
        destination=str(destination_path),
        source_format=checkpoint.file_format,
        dtype=dtype,
        num_tensors=len(tensors),
        num_parameters=sum(t.numel() for t in tensors.values() if t.is_floating_point()),
        source_bytes=source_path.stat().st_size,
        destination_bytes=destination_path.stat().st_size,
        source_sha256=source_sha256,
    )
