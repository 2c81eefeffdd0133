"""Backward of the custom ops with a compiled backward: gradcheck in float64, compiled against autograd
through the `_ref` twins in float32, and no NaN gradient from NaN or infinite flows.

Parametrized over device and flow kind as tests/test_ops.py is; CUDA cases are marked `cuda`.
"""

from __future__ import annotations

import pytest
import torch

from dainctl.kernels import (
    _autograd,
    backward_warp,
    backward_warp_ref,
    correlation,
    correlation_ref,
    depth_flow_projection,
    depth_flow_projection_ref,
    filter_interpolation,
    filter_interpolation_ref,
)
from test_ops import make_flow, require_device, seeded

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def _warp_inputs(kind: str, dtype: torch.dtype, device: str, shape=(2, 3, 7, 9)):
    batch, channels, height, width = shape
    generator = seeded("warp", kind, shape)
    image = torch.rand(shape, generator=generator, dtype=torch.float64)
    flow = make_flow(kind, batch, height, width, generator)
    return [image.to(device, dtype).requires_grad_(), flow.to(device, dtype).requires_grad_()]


def _filter_inputs(kind: str, dtype: torch.dtype, device: str, shape=(2, 3, 7, 9)):
    batch, channels, height, width = shape
    generator = seeded("filter", kind, shape)
    image = torch.rand(shape, generator=generator, dtype=torch.float64)
    # Flows within the valid range (|f| < size/2) for most pixels, so every gradient term is exercised.
    flow = make_flow(kind, batch, height, width, generator) * (0.3 if kind in ("random", "large") else 1.0)
    filters = torch.rand((batch, 16, height, width), generator=generator, dtype=torch.float64) / 4
    return [t.to(device, dtype).requires_grad_() for t in (image, flow, filters)]


def _correlation_inputs(kind: str, dtype: torch.dtype, device: str, shape=(2, 3, 7, 9)):
    """Two feature maps (the flow kind does not apply: correlation has no flow)."""
    generator = seeded("correlation", kind, shape)
    a = torch.randn(shape, generator=generator, dtype=torch.float64)
    b = torch.randn(shape, generator=generator, dtype=torch.float64)
    return [t.to(device, dtype).requires_grad_() for t in (a, b)]


def _projection_inputs(kind: str, dtype: torch.dtype, device: str, shape=(2, 2, 7, 9)):
    batch, _, height, width = shape
    generator = seeded("projection", kind, shape)
    flow = make_flow(kind, batch, height, width, generator)
    weight = 0.1 + torch.rand((batch, 1, height, width), generator=generator, dtype=torch.float64)
    return [flow.to(device, dtype).requires_grad_(), weight.to(device, dtype).requires_grad_()]


OPS = {
    "backward_warp": {
        "compiled": lambda image, flow: backward_warp(image, flow, impl="compiled"),
        "ref": backward_warp_ref,
        "inputs": _warp_inputs,
    },
    "filter_interpolation": {
        "compiled": lambda image, flow, filters: filter_interpolation(image, flow, filters, impl="compiled"),
        "ref": filter_interpolation_ref,
        "inputs": _filter_inputs,
    },
    "correlation": {
        "compiled": lambda a, b: correlation(a, b, max_displacement=2, impl="compiled"),
        "ref": lambda a, b: correlation_ref(a, b, max_displacement=2),
        "inputs": _correlation_inputs,
    },
    "depth_flow_projection": {
        "compiled": lambda flow, weight: depth_flow_projection(flow, weight, fill_holes=True, impl="compiled"),
        "ref": lambda flow, weight: depth_flow_projection_ref(flow, weight, fill_holes=True),
        "inputs": _projection_inputs,
    },
    "depth_flow_projection_no_fill": {
        "compiled": lambda flow, weight: depth_flow_projection(flow, weight, fill_holes=False, impl="compiled"),
        "ref": lambda flow, weight: depth_flow_projection_ref(flow, weight, fill_holes=False),
        "inputs": _projection_inputs,
        "op": "depth_flow_projection",
    },
}


def test_every_op_with_a_compiled_backward_is_tested_here():
    assert {spec.get("op", name) for name, spec in OPS.items()} == set(_autograd.COMPILED_BACKWARD)


@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("kind", ["random", "large"])  # smooth almost everywhere: what gradcheck needs
def test_gradcheck_float64(op, kind):
    inputs = OPS[op]["inputs"](kind, torch.float64, "cpu")
    assert torch.autograd.gradcheck(OPS[op]["compiled"], inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("kind", ["random", "integer", "border", "large", "nonfinite"])
def test_compiled_gradients_match_the_reference(device, op, kind):
    require_device(device)
    inputs = OPS[op]["inputs"](kind, torch.float32, device, shape=(2, 5, 24, 31))
    output = OPS[op]["compiled"](*inputs)
    grad = torch.randn(output.shape, generator=seeded("grad", op, kind), dtype=torch.float32).to(device)
    compiled = torch.autograd.grad(output, inputs, grad)
    reference = torch.autograd.grad(OPS[op]["ref"](*inputs), inputs, grad)
    # float32 rounding of sums whose terms are about |input| * |gradient| (large flows: terms of ~60x the
    # result, which cancel): the tolerance scales with the largest finite input too.
    largest_input = max(float(x.detach()[torch.isfinite(x.detach())].abs().max()) for x in inputs)
    for got, want in zip(compiled, reference):
        assert got.dtype == want.dtype and got.shape == want.shape
        assert torch.isfinite(got).all()  # NaN or infinite flows give no NaN gradient
        # Autograd through a twin can give NaN where a flow is NaN or infinite (0 * inf in a product's
        # gradient); the compiled backward gives none: compare where the twin's gradient is finite.
        finite = torch.isfinite(want)
        assert kind == "nonfinite" or bool(finite.all())
        scale = max(1.0, float(want[finite].abs().max())) * max(1.0, largest_input)
        torch.testing.assert_close(got[finite], want[finite], atol=1e-5 * scale, rtol=1e-5)


@pytest.mark.parametrize("op", sorted(OPS))
def test_the_compiled_backward_runs_and_autocast_computes_in_float32(op):
    """Autograd calls the compiled backward op (not autograd through the twin), and under autocast the
    op computes in float32."""
    inputs = OPS[op]["inputs"]("random", torch.float32, "cpu")
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        OPS[op]["compiled"](*inputs).sum().backward()
    names = {event.name for event in profile.events()}
    name = OPS[op].get("op", op)
    assert f"dainctl::{name}_backward" in names and f"dainctl::{name}" in names
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = OPS[op]["compiled"](*[x.detach().to(torch.bfloat16) for x in inputs])
    assert low.dtype == torch.float32


@pytest.mark.parametrize("op", ["backward_warp", "filter_interpolation"])
@pytest.mark.parametrize("threads", [1, 2, 3, 64])
@pytest.mark.parametrize("kind", ["random", "far", "large"])
def test_the_cpu_scatter_gives_the_same_gradients_with_any_thread_count(op, threads, kind):
    """The input's gradient scatters straight into the result on one thread, and on several where the
    rows can be cut into bands that no two threads share. Small motion ("random": taps up to 15 rows
    away for the warp, 7 for the filter) gives equal bands on 2 and 3 threads. "far" is the same with
    one pixel moving 31 rows: on 2 threads the bands are uneven (the outer ones shorter). With large
    motion, and on 64 threads, each thread adds into its own buffers, a chunk of the channels at a time
    (at most 16M elements in all: on 64 threads 256x256 frames go in chunks of 4 channels, and 9
    channels need three chunks). Every way agrees with the reference."""
    inputs = OPS[op]["inputs"]("large" if kind == "large" else "random", torch.float32, "cpu",
                               shape=(2, 9, 256, 256))
    if kind == "far":
        with torch.no_grad():
            inputs[1][:, 1, 100, 100] = 31.0
    grad = torch.randn((2, 9, 256, 256), generator=seeded("grad", op, "threads"), dtype=torch.float32)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        compiled = torch.autograd.grad(OPS[op]["compiled"](*inputs), inputs, grad)
    finally:
        torch.set_num_threads(before)
    reference = torch.autograd.grad(OPS[op]["ref"](*inputs), inputs, grad)
    for got, want in zip(compiled, reference):
        torch.testing.assert_close(got, want, atol=1e-4 * max(1.0, float(want.abs().max())), rtol=1e-5)


@pytest.mark.parametrize("op", sorted(OPS))
def test_a_gradient_for_each_input_alone(op):
    """With only one input requiring grad, the backward gives that input's gradient (as the reference
    does) and leaves the others without one."""
    inputs = OPS[op]["inputs"]("random", torch.float32, "cpu")
    for index in range(len(inputs)):
        alone = [x.detach().requires_grad_(i == index) for i, x in enumerate(inputs)]
        OPS[op]["compiled"](*alone).square().sum().backward()
        want = torch.autograd.grad(OPS[op]["ref"](*inputs).square().sum(), inputs[index])[0]
        torch.testing.assert_close(alone[index].grad, want, atol=1e-4 * max(1.0, float(want.abs().max())), rtol=1e-4)
        assert all(x.grad is None for i, x in enumerate(alone) if i != index)


@pytest.mark.parametrize("op", sorted(OPS))
def test_an_input_changed_in_place_after_the_forward_is_refused_by_the_backward(op):
    """The backward reads the inputs saved by the forward; autograd refuses one changed since."""
    inputs = OPS[op]["inputs"]("random", torch.float32, "cpu")
    output = OPS[op]["compiled"](*inputs)
    with torch.no_grad():
        inputs[0].mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        output.sum().backward()
