"""Autograd and autocast behaviour of the compiled dainctl ops.

Backward: every op in `COMPILED_BACKWARD` has its compiled backward (`dainctl::<op>_backward`) registered
as its Autograd kernel in C++ (`csrc/torch/autograd.cpp`, a `torch::autograd::Function` per op, for the
CPU and the CUDA variant alike). Its per-pixel math is in the shared headers under `csrc/include`, run
by the CPU (OpenMP) and CUDA drivers, accumulating in float32 (float64 for float64 data; atomics into
float32 buffers on CUDA, cast to the inputs' dtypes at the end). The projection's is the true
derivative of our forward: the original's weight gradient has a sign slip in its mean term, which it
does not reproduce. An op without one (`bicubic_warp`) runs its differentiable `_ref` twin whenever an
input requires grad (`_dispatch.use_compiled`); called directly, its compiled forward differentiates
through the twin too (`register_twin_backwards`: the twin is re-run under autograd in the backward).

Autocast: under `torch.autocast` every dainctl op computes in float32 (its floating inputs are cast to
float32 and so is its result), on the CPU and on CUDA: coordinates, splat sums and reductions are
float32 in the precision policy (`dainctl.precision`). Outside autocast an op runs in its inputs' dtype.
"""

from __future__ import annotations

import torch

FORWARD_OPS = ("depth_flow_projection", "filter_interpolation", "correlation", "backward_warp", "bicubic_warp")
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


def _save_inputs(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs)


def _twin_backward(twin):
    """A backward that re-runs `twin` (the op's reference) under autograd on the saved inputs."""

    def backward(ctx, grad):
        with torch.enable_grad():
            leaves = [t.detach().requires_grad_(needs) for t, needs in zip(ctx.saved_tensors, ctx.needs_input_grad)]
            wanted = [t for t in leaves if t.requires_grad]
            grads = iter(torch.autograd.grad(twin(*leaves), wanted, grad) if wanted else ())
        return tuple(next(grads) if t.requires_grad else None for t in leaves)

    return backward


_twins_registered: set[str] = set()


def register_twin_backwards() -> None:
    """The Autograd kernels of the ops without a compiled backward, through their `_ref` twins
    (idempotent; the library must be loaded)."""
    if _twins_registered:
        return
    from dainctl.kernels.warp import bicubic_warp_ref

    torch.library.register_autograd("dainctl::bicubic_warp", _twin_backward(bicubic_warp_ref), setup_context=_save_inputs)
    _twins_registered.add("bicubic_warp")
