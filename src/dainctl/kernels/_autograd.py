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
# Ops whose backward is compiled; the others differentiate through their reference twins.
COMPILED_BACKWARD = ("backward_warp", "filter_interpolation", "correlation", "depth_flow_projection")

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


_BACKWARDS = {
    "backward_warp": (_backward_warp_backward, _backward_warp_setup),
    "filter_interpolation": (_filter_interpolation_backward, _filter_interpolation_setup),
    "correlation": (_correlation_backward, _correlation_setup),
    "depth_flow_projection": (_projection_backward, _projection_setup),
}


def register_autograd_kernels() -> None:
    """Register the backward of every op in COMPILED_BACKWARD and the autocast rule of every op
    (idempotent; the library must be loaded)."""
    for name in FORWARD_OPS:
        if name in _registered:
            continue
        qualified = f"dainctl::{name}"
        if name in _BACKWARDS:
            backward, setup = _BACKWARDS[name]
            torch.library.register_autograd(qualified, backward, setup_context=setup)
        for device_type in ("cpu", "cuda"):
            torch.library.register_autocast(qualified, device_type, torch.float32)
        _registered.add(name)
