"""Autograd and autocast behaviour of the compiled dainctl ops.

Backward: every op in `COMPILED_BACKWARD` has its compiled backward (`dainctl::<op>_backward`) registered
as its Autograd kernel in C++ (`csrc/torch/autograd.cpp`, a `torch::autograd::Function` per op, for the
CPU and the CUDA variant alike). Its per-pixel math is in the shared headers under `csrc/include`, run
by the CPU (OpenMP) and CUDA drivers, accumulating in float32 (float64 for float64 data; atomics into
float32 buffers on CUDA, cast to the inputs' dtypes at the end). The projection's is the true
derivative of our forward: the original's weight gradient has a sign slip in its mean term, which it
does not reproduce. An op without one would run its differentiable `_ref` twin whenever an input
requires grad (`_dispatch.use_compiled`).

Autocast: under `torch.autocast` every dainctl op computes in float32 (its floating inputs are cast to
float32 and so is its result), on the CPU and on CUDA: coordinates, splat sums and reductions are
float32 in the precision policy (`dainctl.precision`). Outside autocast an op runs in its inputs' dtype.
"""

from __future__ import annotations

import torch

FORWARD_OPS = ("depth_flow_projection", "filter_interpolation", "correlation", "backward_warp")
# Ops whose backward is compiled (csrc/torch/autograd.cpp); any other differentiates through its twin.
COMPILED_BACKWARD = ("depth_flow_projection", "filter_interpolation", "correlation", "backward_warp")

_registered: set[str] = set()


def register_autocast_rules() -> None:
    """Register the autocast rule of every op (idempotent; the library must be loaded)."""
    if _registered:
        return
    for name in FORWARD_OPS:
        for device_type in ("cpu", "cuda"):
            torch.library.register_autocast(f"dainctl::{name}", device_type, torch.float32)
    _registered.update(FORWARD_OPS)
