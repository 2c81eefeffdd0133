"""Choosing between the compiled kernels and their pure-PyTorch twins (`impl=`).

`impl="auto"` uses the compiled op when the library builds and supports the inputs' device and dtype,
otherwise the reference (a failed build warns once per process). `impl="compiled"` insists and raises
`EngineError`. `impl="ref"` always takes the reference. The environment variable `DAINCTL_KERNELS=ref`
turns every `auto` into `ref` (an explicit `impl="compiled"`, as in tests and benchmarks, still wins).
"""

from __future__ import annotations

import os
import warnings

import torch

from dainctl.errors import EngineError, UsageError

IMPLS = ("auto", "compiled", "ref")
ENV_VAR = "DAINCTL_KERNELS"

# Compiled drivers exist for these (device type -> dtypes); anything else runs the reference.
SUPPORTED_DTYPES = {
    "cpu": (torch.float32, torch.float64),
    "cuda": (torch.float16, torch.float32),
}

_warned_build_failure: set[str] = set()  # cache of log paths already warned about


def use_compiled(op_name: str, impl: str, *tensors: torch.Tensor) -> bool:
    """Decide whether `op_name` runs compiled for these input tensors.

    Returns True when the caller should call `torch.ops.dainctl.<op_name>` (the library is then loaded),
    False for the reference. Raises `UsageError` for an unknown `impl` and `EngineError` when
    `impl="compiled"` cannot be honoured.
    """
    if impl not in IMPLS:
        raise UsageError(f"kernel impl must be one of {', '.join(IMPLS)}, got {impl!r}")
    if impl == "ref":
        return False
    if impl == "auto" and os.environ.get(ENV_VAR, "").strip().lower() == "ref":
        return False

    reason = _unsupported_reason(op_name, tensors)
    if reason is not None:
        if impl == "compiled":
            raise EngineError(f"compiled {op_name} does not support {reason}; use impl='ref'")
        return False

    from dainctl.kernels import _build  # local import: building is only needed on this path

    try:
        _build.load_library(need_cuda=any(t.is_cuda for t in tensors))
    except EngineError as error:
        if impl == "compiled":
            raise
        if error.message not in _warned_build_failure:
            _warned_build_failure.add(error.message)
            warnings.warn(
                f"{error.message}; using the slower pure-PyTorch kernels", RuntimeWarning, stacklevel=3
            )
        return False
    return True


def _unsupported_reason(op_name: str, tensors: tuple[torch.Tensor, ...]) -> str | None:
    first = tensors[0]
    device_type = first.device.type
    if device_type not in SUPPORTED_DTYPES:
        return f"device {device_type!r}"
    # Under autocast the op computes in float32 whatever its inputs' dtype (`_autograd`).
    autocast = torch.is_autocast_enabled(device_type)
    if first.dtype not in SUPPORTED_DTYPES[device_type] and not autocast:
        return f"{first.dtype} on {device_type}"
    if any(t.device != first.device for t in tensors):
        return "inputs on different devices"
    # Ops without a compiled backward differentiate through their reference twins.
    from dainctl.kernels._autograd import COMPILED_BACKWARD

    if op_name not in COMPILED_BACKWARD and torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return "autograd (inputs require grad; no compiled backward yet)"
    return None


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the references compute in: float64 for float64 inputs, float32 otherwise."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def pixel_grid(height: int, width: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer pixel coordinates as `like`'s dtype and device: ys (H,1) and xs (1,W)."""
    ys = torch.arange(height, dtype=like.dtype, device=like.device).view(height, 1)
    xs = torch.arange(width, dtype=like.dtype, device=like.device).view(1, width)
    return ys, xs


def check_nchw(name: str, tensor: torch.Tensor, channels: int | None = None) -> None:
    """Raise `ValueError` unless `tensor` is a 4-D float tensor (with `channels` channels if given).

    Shape mistakes are programming errors, not user input, so they are plain `ValueError`s.
    """
    if tensor.dim() != 4:
        raise ValueError(f"{name} must be 4-D (B,C,H,W), got shape {tuple(tensor.shape)}")
    if channels is not None and tensor.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channels, got shape {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {tensor.dtype}")


def check_same_size(reference_name: str, reference: torch.Tensor, **others: torch.Tensor) -> None:
    """Raise `ValueError` unless every tensor in `others` matches `reference` in B, H and W."""
    batch, _, height, width = reference.shape
    for name, tensor in others.items():
        if tensor.shape[0] != batch or tensor.shape[2:] != (height, width):
            raise ValueError(
                f"{name} {tuple(tensor.shape)} does not match {reference_name} {tuple(reference.shape)} "
                "in batch, height and width"
            )
