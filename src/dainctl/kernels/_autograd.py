"""Autograd and autocast behaviour of the compiled dainctl ops (`torch.library`).

Backward: each op with a compiled backward (`COMPILED_BACKWARD`) gets it registered with
`torch.library.register_autograd`; its per-pixel math is in the shared headers under `csrc/include`,
run by the CPU (OpenMP) and CUDA drivers, accumulating in float32 (float64 for float64 data; atomics
into float32 buffers on CUDA, cast to the inputs' dtypes at the end). An op without one runs its
differentiable `_ref` twin whenever an input requires grad (`_dispatch.use_compiled`).

Autocast: under `torch.autocast` every dainctl op computes in float32 (its floating inputs are cast to
float32 and so is its result), on the CPU and on CUDA: coordinates, splat sums and reductions are
float32 in the precision policy (`dainctl.precision`). Outside autocast an op runs in its inputs' dtype.
"""

from __future__ import annotations

import torch

FORWARD_OPS = ("depth_flow_projection", "filter_interpolation", "correlation", "backward_warp")
# Ops whose backward is compiled (registered below); any other differentiates through its reference twin.
COMPILED_BACKWARD = ("depth_flow_projection", "filter_interpolation", "correlation", "backward_warp")

_registered: set[str] = set()


def _backward_warp_setup(ctx, inputs, output) -> None:
    input, flow = inputs
    ctx.save_for_backward(input, flow)


def _backward_warp_backward(ctx, grad):
    input, flow = ctx.saved_tensors
    grad_input, grad_flow = torch.ops.dainctl.backward_warp_backward(grad.contiguous(), input, flow)
    return (grad_input if ctx.needs_input_grad[0] else None, grad_flow if ctx.needs_input_grad[1] else None)


def _filter_interpolation_setup(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs)


def _filter_interpolation_backward(ctx, grad):
    input, flow, filters = ctx.saved_tensors
    grads = torch.ops.dainctl.filter_interpolation_backward(grad.contiguous(), input, flow, filters)
    return tuple(g if needed else None for g, needed in zip(grads, ctx.needs_input_grad))


def _correlation_setup(ctx, inputs, output) -> None:
    a, b, max_displacement = inputs
    ctx.save_for_backward(a, b)
    ctx.max_displacement = max_displacement


def _correlation_backward(ctx, grad):
    a, b = ctx.saved_tensors
    grad_a, grad_b = torch.ops.dainctl.correlation_backward(grad.contiguous(), a, b, ctx.max_displacement)
    return (grad_a if ctx.needs_input_grad[0] else None, grad_b if ctx.needs_input_grad[1] else None, None)


def _projection_setup(ctx, inputs, output) -> None:
    flow, weight, fill_holes = inputs
    ctx.save_for_backward(flow, weight)
    ctx.fill_holes = fill_holes


def _projection_backward(ctx, grad):
    """The true derivative of our forward (hole filling included); the original's weight gradient has
    a sign slip in its mean term, which this does not reproduce."""
    flow, weight = ctx.saved_tensors
    grad_flow, grad_weight = torch.ops.dainctl.depth_flow_projection_backward(grad.contiguous(), flow, weight,
                                                                              ctx.fill_holes)
    return (grad_flow if ctx.needs_input_grad[0] else None, grad_weight if ctx.needs_input_grad[1] else None, None)


def register_autograd_kernels() -> None:
    """Register the compiled backward of every op and the autocast rule of every op (idempotent; the
    library must be loaded). The names are written out so that scripts/check_cuda_dispatch.py can read
    from the source which ops must have an Autograd kernel."""
    if _registered:
        return
    torch.library.register_autograd("dainctl::depth_flow_projection", _projection_backward,
                                    setup_context=_projection_setup)
    torch.library.register_autograd("dainctl::filter_interpolation", _filter_interpolation_backward,
                                    setup_context=_filter_interpolation_setup)
    torch.library.register_autograd("dainctl::correlation", _correlation_backward, setup_context=_correlation_setup)
    torch.library.register_autograd("dainctl::backward_warp", _backward_warp_backward, setup_context=_backward_warp_setup)
    for name in FORWARD_OPS:
        for device_type in ("cpu", "cuda"):
            torch.library.register_autocast(f"dainctl::{name}", device_type, torch.float32)
    _registered.update(FORWARD_OPS)
