"""DAIN's custom ops: hand-computed cases for each reference, compiled vs reference, oracle checks.

The compiled library is built on first use (about a minute on 2 cores, cached afterwards under
~/.cache/dainctl/kernels). CUDA cases are marked `cuda` and skipped without a GPU.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from dainctl.errors import EngineError, UsageError
from dainctl.kernels import (
    _build,
    _dispatch,
    backward_warp,
    backward_warp_ref,
    bicubic_warp,
    bicubic_warp_ref,
    correlation,
    correlation_ref,
    depth_flow_projection,
    depth_flow_projection_ref,
    filter_interpolation,
    filter_interpolation_ref,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
ORACLE_CASES = ("mb_dogdance", "slowmo_venus")

DEVICE_DTYPES = [
    pytest.param("cpu", torch.float32, id="cpu-float32"),
    pytest.param("cpu", torch.float64, id="cpu-float64"),
    pytest.param("cuda", torch.float32, id="cuda-float32", marks=pytest.mark.cuda),
    pytest.param("cuda", torch.float16, id="cuda-float16", marks=pytest.mark.cuda),
]
LAYOUTS = ("contiguous", "channels_last", "transposed")
FLOW_KINDS = ("random", "integer", "border", "large", "nonfinite")
# (B, C, H, W): odd sizes, batch > 1, C in {1, 3, 196}, single pixels.
SHAPES = [(1, 1, 1, 1), (2, 3, 7, 11), (1, 196, 6, 5), (3, 1, 16, 9), (1, 12, 13, 14)]


def tolerance(dtype: torch.dtype, scale: float = 1.0) -> dict:
    """assert_close tolerances for results of magnitude about `scale`: ~1e-5 float32, ~4e-3 half."""
    relative = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 4e-3}[dtype]
    return {"rtol": relative, "atol": relative * max(scale, 1.0)}


def require_device(device: str) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")


def to_layout(tensor: torch.Tensor, layout: str) -> torch.Tensor:
    """The same values in another memory layout."""
    if layout == "channels_last":
        return tensor.contiguous(memory_format=torch.channels_last)
    if layout == "transposed":  # a non-contiguous view
        return tensor.transpose(2, 3).contiguous().transpose(2, 3)
    return tensor.contiguous()


def make_flow(kind: str, batch: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """(B,2,H,W) float64 test flows of one kind."""
    shape = (batch, 1, height, width)
    ys = torch.arange(height, dtype=torch.float64).view(1, 1, height, 1).expand(shape)
    xs = torch.arange(width, dtype=torch.float64).view(1, 1, 1, width).expand(shape)
    if kind == "random":
        return torch.randn((batch, 2, height, width), generator=generator, dtype=torch.float64) * 3
    if kind == "integer":
        return torch.randint(-3, 4, (batch, 2, height, width), generator=generator).double()
    if kind == "large":
        return torch.randn((batch, 2, height, width), generator=generator, dtype=torch.float64) * 2 * max(height, width)
    if kind == "border":
        # Targets exactly on the first/last row and column, and displacements of exactly +-W/2, +-H/2.
        pick = torch.randint(0, 4, shape, generator=generator)
        flow_x = torch.where(pick == 0, -xs, torch.where(pick == 1, (width - 1) - xs, width / 2 * (pick - 2.5) * 2))
        pick = torch.randint(0, 4, shape, generator=generator)
        flow_y = torch.where(pick == 0, -ys, torch.where(pick == 1, (height - 1) - ys, height / 2 * (pick - 2.5) * 2))
        return torch.cat((flow_x, flow_y), dim=1)
    if kind == "nonfinite":
        flow = torch.randn((batch, 2, height, width), generator=generator, dtype=torch.float64) * 3
        pick = torch.randint(0, 8, flow.shape, generator=generator)
        flow[pick == 0] = math.nan
        flow[pick == 1] = math.inf
        flow[pick == 2] = -math.inf
        return flow
    raise ValueError(kind)


def seeded(*key) -> torch.Generator:
    """A generator seeded from a test's parameters (stable across processes, unlike hash())."""
    return torch.Generator().manual_seed(zlib.crc32(repr(key).encode()))


def finite_scale(tensor: torch.Tensor) -> float:
    finite = tensor[torch.isfinite(tensor)]
    return float(finite.abs().max()) if finite.numel() else 1.0


def assert_same(compiled: torch.Tensor, reference: torch.Tensor, dtype: torch.dtype, scale: float) -> None:
    assert compiled.dtype == reference.dtype == dtype
    assert compiled.shape == reference.shape
    assert compiled.is_contiguous()
    torch.testing.assert_close(compiled.cpu(), reference.cpu(), equal_nan=True, **tolerance(dtype, scale))


# ---------------------------------------------------------------------------------------------------
# Hand-computed cases for each reference (and the compiled CPU op, which must agree exactly here).

IMPLS_CPU = ("ref", "compiled")


def row(*values: float) -> torch.Tensor:
    """A (1,1,1,W) float64 tensor."""
    return torch.tensor(values, dtype=torch.float64).view(1, 1, 1, -1)


@pytest.mark.parametrize("impl", IMPLS_CPU)
def test_projection_collision_is_weighted_mean_of_negated_flows(impl):
    # Pixel 0 moves +2 (weight 1), pixel 1 moves +1.5 (weight 3): both reach columns 2 and 3.
    # Pixels 2 and 3 move out of the image and contribute nothing.
    flow = torch.cat((row(2.0, 1.5, 10.0, -10.0), row(0, 0, 0, 0)), dim=1)
    weight = row(1.0, 3.0, 5.0, 5.0)
    out = depth_flow_projection(flow, weight, fill_holes=False, impl=impl)
    expected = -(1 * 2.0 + 3 * 1.5) / (1 + 3)
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([0, 0, expected, expected], dtype=torch.float64))
    assert torch.all(out[0, 1] == 0)


@pytest.mark.parametrize("impl", IMPLS_CPU)
def test_projection_bounds_are_inclusive_and_corners_clamp(impl):
    # Pixel (y=0, x=0) moves by exactly (W-1, H-1): it lands on the last pixel, which takes all four
    # corners. Pixel (0, 1) lands just past the right edge, pixel (0, 2) has NaN flow, and the bottom
    # row leaves the image: none of them lands anywhere.
    flow = torch.zeros(1, 2, 2, 3, dtype=torch.float64)
    flow[0, :, 0, 0] = torch.tensor([2.0, 1.0], dtype=torch.float64)
    flow[0, :, 0, 1] = torch.tensor([1.0 + 1e-9, 0.0], dtype=torch.float64)
    flow[0, :, 0, 2] = torch.tensor([math.nan, 0.0], dtype=torch.float64)
    flow[0, 0, 1, :] = 10.0
    weight = torch.full((1, 1, 2, 3), 0.5, dtype=torch.float64)
    out = depth_flow_projection(flow, weight, fill_holes=False, impl=impl)
    expected = torch.zeros(1, 2, 2, 3, dtype=torch.float64)
    expected[0, :, 1, 2] = torch.tensor([-2.0, -1.0])
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("impl", IMPLS_CPU)
def test_projection_fills_holes_with_mean_of_nearest_reached_pixels(impl):
    # One row of 5. Pixel 0 moves +4 onto the last column (all four corners clamp there): -4.
    # Pixel 1 moves -1 onto column 0, splatting columns 0 and 1: +1. The rest leave the image.
    flow = torch.full((1, 2, 1, 5), 100.0, dtype=torch.float64)
    flow[0, :, 0, 0] = torch.tensor([4.0, 0.0])
    flow[0, :, 0, 1] = torch.tensor([-1.0, 0.0])
    weight = torch.ones(1, 1, 1, 5, dtype=torch.float64)
    out = depth_flow_projection(flow, weight, fill_holes=True, impl=impl)
    # Columns 2 and 3 are holes: the nearest reached pixel to the left is column 1 (+1), to the
    # right column 4 (-4); their unweighted mean is -1.5.
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([1.0, 1.0, -1.5, -1.5, -4.0], dtype=torch.float64))
    assert torch.all(out[0, 1] == 0)


@pytest.mark.parametrize("impl", IMPLS_CPU)
def test_projection_fills_a_thin_crack(impl):
    # A 40x40 image whose right half moves 2.5 px right: column 21 receives nothing (column 19 lands on
    # 19 and 20, column 20 on 22 and 23). With so few holes the compiled CPU driver scans from each
    # hole (as CUDA does) instead of sweeping; the answer is the mean of columns 20 (0) and 22 (-2.5).
    flow = torch.zeros(1, 2, 40, 40, dtype=torch.float64)
    flow[0, 0, :, 20:] = 2.5
    weight = torch.ones(1, 1, 40, 40, dtype=torch.float64)
    out = depth_flow_projection(flow, weight, fill_holes=True, impl=impl)
    assert torch.all(out[0, 0, :, 21] == -1.25)
    assert torch.all(out[0, 0, :, 22:] == -2.5) and torch.all(out[0, 0, :, :21] == 0)
    assert torch.all(out[0, 1] == 0)


@pytest.mark.parametrize("impl", IMPLS_CPU)
def test_projection_hole_fill_uses_no_diagonals(impl):
    # In a 4x4 image only pixel (1,1) stays inside: it lands at (1.25, 1.5) and splats to (1,1),
    # (1,2), (2,1) and (2,2). A corner such as (0,0) has no reached pixel along its row or column,
    # so it stays 0 (no diagonal search); an edge pixel such as (0,1) finds (1,1) below it.
    flow = torch.full((1, 2, 4, 4), 100.0, dtype=torch.float64)
    flow[0, :, 1, 1] = torch.tensor([0.25, 0.5])
    weight = torch.ones(1, 1, 4, 4, dtype=torch.float64)
    out = depth_flow_projection(flow, weight, fill_holes=True, impl=impl)
    reached = torch.zeros(4, 4, dtype=torch.bool)
    reached[1:3, 1:3] = True
    assert torch.all(out[0, 0][reached] == -0.25) and torch.all(out[0, 1][reached] == -0.5)
    for y, x in ((0, 0), (0, 3), (3, 0), (3, 3)):
        assert out[0, 0, y, x] == 0 and out[0, 1, y, x] == 0
    for y, x in ((0, 1), (1, 0), (3, 2), (2, 3)):
        assert out[0, 0, y, x] == -0.25 and out[0, 1, y, x] == -0.5


@pytest.mark.parametrize("impl", IMPLS_CPU)
def test_filter_interpolation_centre_tap_is_identity(impl):
    image = torch.rand(2, 3, 5, 7, dtype=torch.float64)
    filters = torch.zeros(2, 16, 5, 7, dtype=torch.float64)
    filters[:, 5] = 1  # tap (row 1, column 1) of the window starting at floor-1 is the pixel itself
    out = filter_interpolation(image, torch.zeros(2, 2, 5, 7, dtype=torch.float64), filters, impl=impl)
    torch.testing.assert_close(out, image)


@pytest.mark.parametrize("impl", IMPLS_CPU)
def test_filter_interpolation_half_pixel_blends_quadrants(impl):
    # Ramp image value = x. Flow +0.5 in x, taps 5 (TL quadrant) and 6 (TR quadrant) set to 1:
    # out = 0.5*img[x] + 0.5*img[x+1] = x + 0.5, except the last column, whose sample point is
    # outside the image, so it copies the input through.
    width = 5
    image = torch.arange(width, dtype=torch.float64).view(1, 1, 1, width).repeat(1, 1, 2, 1)
    flow = torch.zeros(1, 2, 2, width, dtype=torch.float64)
    flow[:, 0] = 0.5
    filters = torch.zeros(1, 16, 2, width, dtype=torch.float64)
    filters[:, 5] = 1
    filters[:, 6] = 1
    out = filter_interpolation(image, flow, filters, impl=impl)
    expected = torch.tensor([0.5, 1.5, 2.5, 3.5, 4.0], dtype=torch.float64)
    torch.testing.assert_close(out[0, 0, 0], expected)
    torch.testing.assert_close(out[0, 0, 1], expected)


@pytest.mark.parametrize("impl", IMPLS_CPU)
def test_filter_interpolation_validity_and_clamped_reads(impl):
    width = 4
    image = torch.tensor([[10.0, 20.0, 30.0, 40.0]], dtype=torch.float64).view(1, 1, 1, width)
    flow = torch.zeros(1, 2, 1, width, dtype=torch.float64)
    flow[0, 0] = torch.tensor([0.0, 1.0, -2.0, math.nan])  # pixel 2: |fx| = W/2 is not < W/2 -> copy
    filters = torch.ones(1, 16, 1, width, dtype=torch.float64)
    out = filter_interpolation(image, flow, filters, impl=impl)
    # Pixel 0, zero flow, all 16 taps = 1: the TL quadrant (alpha = beta = 0) reads columns -1 and 0
    # (clamped to 0) on rows -1 and 0 (clamped to 0): 4 * 10. Pixel 1 samples column 2: 2*20 + 2*30.
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([40.0, 100.0, 30.0, 40.0], dtype=torch.float64))


@pytest.mark.parametrize("impl", IMPLS_CPU)
def test_correlation_small_case(impl):
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64).view(1, 2, 1, 2)
    b = torch.tensor([[5.0, 6.0], [7.0, 8.0]], dtype=torch.float64).view(1, 2, 1, 2)
    out = correlation(a, b, max_displacement=1, impl=impl)
    assert out.shape == (1, 9, 1, 2)
    expected = torch.zeros(9, 2, dtype=torch.float64)
    expected[4] = torch.tensor([(1 * 5 + 3 * 7) / 2, (2 * 6 + 4 * 8) / 2])  # dy = 0, dx = 0
    expected[5] = torch.tensor([(1 * 6 + 3 * 8) / 2, 0.0])  # dx = +1: column 2 is outside
    expected[3] = torch.tensor([0.0, (2 * 5 + 4 * 7) / 2])  # dx = -1
    torch.testing.assert_close(out[0, :, 0], expected)


@pytest.mark.parametrize("impl", IMPLS_CPU)
def test_correlation_channel_order_is_dy_major(impl):
    # b is a one-hot at (y=2, x=3); a is ones at (y=1, x=1): the match is at dy=+1, dx=+2.
    a = torch.zeros(1, 1, 5, 5, dtype=torch.float64)
    b = torch.zeros(1, 1, 5, 5, dtype=torch.float64)
    a[0, 0, 1, 1] = 1
    b[0, 0, 2, 3] = 1
    out = correlation(a, b, max_displacement=2, impl=impl)
    hits = (out[0, :, 1, 1] != 0).nonzero().flatten().tolist()
    assert hits == [(1 + 2) * 5 + (2 + 2)]


@pytest.mark.parametrize("impl", IMPLS_CPU)
def test_backward_warp_small_case(impl):
    width = 4
    image = torch.tensor([0.0, 10.0, 20.0, 30.0], dtype=torch.float64).view(1, 1, 1, width)
    flow = torch.zeros(1, 2, 1, width, dtype=torch.float64)
    flow[0, 0] = torch.tensor([0.25, -5.0, math.nan, math.inf])
    flow[0, 1, 0, 1] = 3.0  # off the single row: clamped back onto it
    out = backward_warp(image, flow, impl=impl)
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([2.5, 0.0, 20.0, 30.0], dtype=torch.float64))


@pytest.mark.parametrize("impl", IMPLS_CPU)
def test_bicubic_warp_small_case(impl):
    # One row [0, 0, 0, 8, 0, 0]. Catmull-Rom's weights at a half-pixel: -0.0625, 0.5625, 0.5625, -0.0625.
    # Pixel 2 reads 2.5: 0.5625 * 8 = 4.5 (bilinear: 4). Pixel 1 reads 1.5, the negative lobe: -0.0625 * 8.
    # Pixel 0 reads -5, clamped to 0 (taps clamped, weights (0, 1, 0, 0)); pixel 3 a NaN (its own
    # pixel); pixel 4 +inf (the last pixel); pixel 5 moves off the single row and is clamped back: 0.25
    # to the left, f = 0.75 from pixel 4: the weight of pixel 3 (distance 1.75) is
    # a (d^3 - 5 d^2 + 8 d - 4) with a = -0.5; the others fall on zeros.
    image = torch.tensor([0.0, 0.0, 0.0, 8.0, 0.0, 0.0], dtype=torch.float64).view(1, 1, 1, 6)
    flow = torch.zeros(1, 2, 1, 6, dtype=torch.float64)
    flow[0, 0] = torch.tensor([-5.0, 0.5, 0.5, math.nan, math.inf, -0.25])
    flow[0, 1, 0, 5] = 3.0
    out = bicubic_warp(image, flow, impl=impl)
    d = 1.75
    far = -0.5 * (d**3 - 5 * d**2 + 8 * d - 4)
    expected = torch.tensor([0.0, -0.0625 * 8, 0.5625 * 8, 8.0, 0.0, far * 8], dtype=torch.float64)
    torch.testing.assert_close(out[0, 0, 0], expected)


@pytest.mark.parametrize("dtype", (torch.float32, torch.float64))
@pytest.mark.parametrize("impl", IMPLS_CPU)
def test_bicubic_warp_copies_at_integer_flow_keeps_constants_and_is_exact_on_quadratics(impl, dtype):
    generator = torch.Generator().manual_seed(21)
    height, width = 23, 31
    image = torch.rand((1, 3, height, width), generator=generator, dtype=dtype)
    # Integer displacements copy pixels exactly; a constant image stays constant (the weights sum to 1).
    shift = torch.zeros(1, 2, height, width, dtype=dtype)
    shift[:, 0] = 2.0
    shift[:, 1] = -1.0
    copied = bicubic_warp(image, shift, impl=impl)
    assert torch.equal(copied[..., 1:, : width - 2], image[..., :-1, 2:])
    constant = torch.full((1, 1, height, width), 0.375, dtype=dtype)
    wavy = torch.randn((1, 2, height, width), generator=generator, dtype=dtype) * 5
    torch.testing.assert_close(bicubic_warp(constant, wavy, impl=impl), constant, rtol=0, atol=1e-6)
    # Catmull-Rom reproduces quadratics: a field of degree 2 in each axis, read at any point whose 4x4
    # taps lie inside, is the field's value there (a = -0.75 misses by up to about 0.2 here).
    ys, xs = torch.meshgrid(torch.arange(height, dtype=dtype), torch.arange(width, dtype=dtype), indexing="ij")

    def field(x, y):
        return (0.02 * x * x - 0.3 * x + 0.05 * y * y + 0.01 * x * y + 0.001 * x * x * y * y) / 10

    targets_x = 1 + torch.rand((height, width), generator=generator, dtype=dtype) * (width - 4)
    targets_y = 1 + torch.rand((height, width), generator=generator, dtype=dtype) * (height - 4)
    flow = torch.stack([targets_x - xs, targets_y - ys]).unsqueeze(0)
    read = bicubic_warp(field(xs, ys).view(1, 1, height, width), flow, impl=impl)[0, 0]
    scale = {torch.float32: 1e-4, torch.float64: 1e-10}[dtype]
    torch.testing.assert_close(read, field(targets_x, targets_y), rtol=0, atol=scale)


# ---------------------------------------------------------------------------------------------------
# Compiled vs reference.


@pytest.mark.parametrize("kind", FLOW_KINDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("fill_holes", (True, False), ids=("fill", "nofill"))
@pytest.mark.parametrize("device,dtype", DEVICE_DTYPES)
def test_projection_compiled_matches_reference(device, dtype, fill_holes, shape, kind):
    require_device(device)
    generator = seeded(shape, kind)
    batch, _, height, width = shape
    flow = make_flow(kind, batch, height, width, generator).to(device, dtype)
    weight = (torch.rand((batch, 1, height, width), generator=generator, dtype=torch.float64) + 0.05).to(device, dtype)
    compiled = depth_flow_projection(flow, weight, fill_holes, impl="compiled")
    reference = depth_flow_projection_ref(flow, weight, fill_holes)
    # Sums of colliding splats may be added in another order (atomics on CUDA); the difference is
    # bounded by a few ulp of the largest flow.
    assert_same(compiled, reference, dtype, scale=finite_scale(flow.double()))
    assert torch.isfinite(compiled).all()


@pytest.mark.parametrize("kind", FLOW_KINDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("device,dtype", DEVICE_DTYPES)
def test_filter_interpolation_compiled_matches_reference(device, dtype, shape, kind):
    require_device(device)
    generator = seeded(shape, kind, "fi")
    batch, channels, height, width = shape
    image = torch.rand(shape, generator=generator, dtype=torch.float64).to(device, dtype)
    flow = make_flow(kind, batch, height, width, generator).to(device, dtype)
    filters = (torch.rand((batch, 16, height, width), generator=generator, dtype=torch.float64) / 4).to(device, dtype)
    compiled = filter_interpolation(image, flow, filters, impl="compiled")
    reference = filter_interpolation_ref(image, flow, filters)
    assert_same(compiled, reference, dtype, scale=4.0)


# The warps: compiled op, twin, and the scale of their results (bicubic: 16 weighted taps whose
# weights' magnitudes sum to at most about 1.3).
WARPS = {"backward_warp": (backward_warp, backward_warp_ref, 1.0), "bicubic_warp": (bicubic_warp, bicubic_warp_ref, 2.0)}


@pytest.mark.parametrize("kind", FLOW_KINDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("device,dtype", DEVICE_DTYPES)
@pytest.mark.parametrize("warp", WARPS)
def test_warps_compiled_match_reference(warp, device, dtype, shape, kind):
    require_device(device)
    op, ref, scale = WARPS[warp]
    generator = seeded(shape, kind, "bw" if warp == "backward_warp" else "bicubic")
    batch, _, height, width = shape
    image = torch.rand(shape, generator=generator, dtype=torch.float64).to(device, dtype)
    flow = make_flow(kind, batch, height, width, generator).to(device, dtype)
    assert_same(op(image, flow, impl="compiled"), ref(image, flow), dtype, scale=scale)


@pytest.mark.parametrize("max_displacement", (0, 1, 4))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("device,dtype", DEVICE_DTYPES)
def test_correlation_compiled_matches_reference(device, dtype, shape, max_displacement):
    require_device(device)
    generator = seeded(shape, max_displacement)
    a = torch.randn(shape, generator=generator, dtype=torch.float64).to(device, dtype)
    b = torch.randn(shape, generator=generator, dtype=torch.float64).to(device, dtype)
    compiled = correlation(a, b, max_displacement, impl="compiled")
    reference = correlation_ref(a, b, max_displacement)
    assert compiled.shape == (shape[0], (2 * max_displacement + 1) ** 2, shape[2], shape[3])
    assert_same(compiled, reference, dtype, scale=1.0)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("device,dtype", DEVICE_DTYPES)
def test_all_ops_accept_any_memory_layout(device, dtype, layout):
    require_device(device)
    generator = torch.Generator().manual_seed(7)
    batch, channels, height, width = 2, 3, 9, 13
    image = torch.rand((batch, channels, height, width), generator=generator, dtype=torch.float64)
    flow = make_flow("random", batch, height, width, generator)
    weight = torch.rand((batch, 1, height, width), generator=generator, dtype=torch.float64) + 0.1
    filters = torch.rand((batch, 16, height, width), generator=generator, dtype=torch.float64) / 4

    def prepare(tensor):
        return to_layout(tensor.to(device, dtype), layout)

    image_l, flow_l, weight_l, filters_l = map(prepare, (image, flow, weight, filters))
    # The references are computed from contiguous copies, so a layout bug cannot cancel out.
    image_c, flow_c, weight_c, filters_c = (t.to(device, dtype).contiguous() for t in (image, flow, weight, filters))
    pairs = [
        (depth_flow_projection(flow_l, weight_l, impl="compiled"), depth_flow_projection_ref(flow_c, weight_c), 10.0),
        (
            filter_interpolation(image_l, flow_l, filters_l, impl="compiled"),
            filter_interpolation_ref(image_c, flow_c, filters_c),
            4.0,
        ),
        (backward_warp(image_l, flow_l, impl="compiled"), backward_warp_ref(image_c, flow_c), 1.0),
        (bicubic_warp(image_l, flow_l, impl="compiled"), bicubic_warp_ref(image_c, flow_c), 2.0),
        (correlation(image_l, image_l.flip(3), 2, impl="compiled"), correlation_ref(image_c, image_c.flip(3), 2), 1.0),
    ]
    for compiled, reference, scale in pairs:
        assert_same(compiled, reference, dtype, scale)


def test_flows_weights_and_filters_of_another_dtype_are_converted():
    # Coordinates are computed in the input's compute dtype (float32 here) whatever the flow's dtype;
    # filters are stored in the input's dtype. The output keeps the input's dtype.
    generator = seeded("mixed")
    image = torch.rand((2, 3, 7, 8), generator=generator)
    flow = make_flow("random", 2, 7, 8, generator)  # float64
    filters = torch.rand((2, 16, 7, 8), generator=generator, dtype=torch.float64) / 4
    weight = torch.rand((2, 1, 7, 8), generator=generator, dtype=torch.float64) + 0.1
    pairs = [
        (filter_interpolation(image, flow, filters, impl="compiled"), filter_interpolation_ref(image, flow, filters)),
        (backward_warp(image, flow, impl="compiled"), backward_warp_ref(image, flow)),
        (bicubic_warp(image, flow, impl="compiled"), bicubic_warp_ref(image, flow)),
        (depth_flow_projection(flow.float(), weight, impl="compiled"), depth_flow_projection_ref(flow.float(), weight)),
    ]
    for compiled, reference in pairs:
        assert_same(compiled, reference, torch.float32, scale=10.0)


@pytest.mark.parametrize("empty_dim", (0, 2, 3), ids=("batch", "height", "width"))
@pytest.mark.parametrize("impl", ("ref", "compiled"))
def test_empty_tensors(impl, empty_dim):
    shape = [2, 3, 4, 5]
    shape[empty_dim] = 0

    def sized(channels):
        return torch.zeros([shape[0], channels, shape[2], shape[3]])

    image = torch.zeros(shape)
    assert depth_flow_projection(sized(2), sized(1), impl=impl).shape == sized(2).shape
    assert filter_interpolation(image, sized(2), sized(16), impl=impl).shape == image.shape
    assert backward_warp(image, sized(2), impl=impl).shape == image.shape
    assert bicubic_warp(image, sized(2), impl=impl).shape == image.shape
    assert correlation(image, image, 4, impl=impl).shape == sized(81).shape


def test_projection_with_nonfinite_flow_writes_only_inside():
    # A large image with non-finite and huge flows everywhere: nothing may land out of bounds
    # (which would crash or corrupt memory), and the result equals the reference.
    generator = torch.Generator().manual_seed(3)
    flow = make_flow("nonfinite", 1, 64, 48, generator).float() * 1e30
    weight = torch.ones(1, 1, 64, 48)
    compiled = depth_flow_projection(flow, weight, impl="compiled")
    torch.testing.assert_close(compiled, depth_flow_projection_ref(flow, weight))


# ---------------------------------------------------------------------------------------------------
# The references against the original DAIN's outputs (shared/dain/oracle).


def oracle_case(name: str) -> dict:
    path = SHARED / "dain" / "oracle" / name / "case.safetensors"
    if not path.exists():
        pytest.skip(f"{path} is not available")
    from safetensors.torch import load_file

    return load_file(str(path))


def oracle_rule(mine: torch.Tensor, oracle: torch.Tensor) -> None:
    """The acceptance rule of shared/dain/oracle/README.md for float tensors."""
    difference = (mine.double() - oracle.double()).abs().flatten()
    assert difference.median() <= 5e-5
    assert torch.quantile(difference, 0.99) <= 1e-3
    assert (difference > 1e-2).double().mean() <= 0.005


def oracle_projections(case: dict):
    """Yield (tag, which, full-resolution flow, weight) for every t of a case, as DAIN computes them."""
    for t in case["timesteps"].tolist():
        tag = f"t{round(100 * t):03d}"
        directions = (("Ft0", "pwc_f01", "log_depth0", t), ("Ft1", "pwc_f10", "log_depth1", 1 - t))
        for which, raw, log_depth, scale in directions:
            # Bit-level details as in the oracle README: (20 * f) * t, then x4 bilinear, align_corners=False.
            flow = F.interpolate((20 * case[raw]) * scale, scale_factor=4, mode="bilinear", align_corners=False)
            weight = 1e-6 + 1 / torch.exp(case[log_depth])
            yield tag, which, flow, weight


def crop(case: dict, tensor: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    left, _, top, _ = case["pads_lrtb"].tolist()
    height, width = like.shape[-2:]
    return tensor[..., top : top + height, left : left + width]


@pytest.mark.parametrize("impl", ("ref", "compiled"))
@pytest.mark.parametrize("name", ORACLE_CASES)
def test_projection_matches_oracle(name, impl):
    case = oracle_case(name)
    for tag, which, flow, weight in oracle_projections(case):
        expected = case[f"{which}_{tag}"]
        oracle_rule(crop(case, depth_flow_projection(flow, weight, impl=impl), expected), expected)


@pytest.mark.parametrize("impl", ("ref", "compiled"))
@pytest.mark.parametrize("name", ORACLE_CASES)
def test_filter_interpolation_matches_oracle_on_stored_kernel_grid(name, impl):
    # The oracle keeps the kernels only at every 4th pixel. An output pixel reads only its own kernel,
    # so the warped frame can be checked exactly at those pixels.
    case = oracle_case(name)
    for tag, which, flow, weight in oracle_projections(case):
        if which != "Ft0":
            continue
        kernels_s4 = case["filter0_s4"]
        filters = torch.zeros(1, 16, *flow.shape[-2:])
        filters[:, :, ::4, ::4] = kernels_s4
        projected = depth_flow_projection(flow, weight, impl=impl)
        warped = filter_interpolation(case["input0_padded"], projected, filters, impl=impl)
        expected = case[f"ref0_{tag}"]
        left, _, top, _ = case["pads_lrtb"].tolist()
        first_row, first_col = (-top) % 4, (-left) % 4
        mine = crop(case, warped, expected)[..., first_row::4, first_col::4]
        oracle_rule(mine, expected[..., first_row::4, first_col::4])


# ---------------------------------------------------------------------------------------------------
# Registration, dispatch and the build cache.


def test_fake_kernels_give_output_shapes_and_dtypes():
    from torch._subclasses.fake_tensor import FakeTensorMode

    _build.load_library()
    with FakeTensorMode():
        image = torch.empty(2, 5, 7, 9, dtype=torch.float64)
        flow = torch.empty(2, 2, 7, 9, dtype=torch.float64)
        weight = torch.empty(2, 1, 7, 9, dtype=torch.float64)
        filters = torch.empty(2, 16, 7, 9, dtype=torch.float64)
        outputs = {
            "projection": torch.ops.dainctl.depth_flow_projection(flow, weight, True),
            "filter": torch.ops.dainctl.filter_interpolation(image, flow, filters),
            "correlation": torch.ops.dainctl.correlation(image, image, 3),
            "warp": torch.ops.dainctl.backward_warp(image, flow),
            "bicubic": torch.ops.dainctl.bicubic_warp(image, flow),
        }
        shapes = {key: (tuple(value.shape), value.dtype) for key, value in outputs.items()}
    assert shapes == {
        "projection": ((2, 2, 7, 9), torch.float64),
        "filter": ((2, 5, 7, 9), torch.float64),
        "correlation": ((2, 49, 7, 9), torch.float64),
        "warp": ((2, 5, 7, 9), torch.float64),
        "bicubic": ((2, 5, 7, 9), torch.float64),
    }


def test_opcheck_schema_and_fake_tensor():
    _build.load_library()
    image = torch.rand(1, 3, 6, 7)
    flow = torch.randn(1, 2, 6, 7)
    for op, args in (
        (torch.ops.dainctl.depth_flow_projection.default, (flow, torch.rand(1, 1, 6, 7) + 0.1, True)),
        (torch.ops.dainctl.filter_interpolation.default, (image, flow, torch.rand(1, 16, 6, 7))),
        (torch.ops.dainctl.correlation.default, (image, image, 2)),
        (torch.ops.dainctl.backward_warp.default, (image, flow)),
        (torch.ops.dainctl.bicubic_warp.default, (image, flow)),
    ):
        torch.library.opcheck(op, args, test_utils=("test_schema", "test_faketensor"))


@pytest.mark.filterwarnings("error")  # torch only warns when it backprops through an op without an Autograd kernel
def test_opcheck_with_gradients_autograd_registration_and_aot_dispatch():
    """With inputs that require grad, opcheck's every test: each op has its C++ Autograd kernel (torch's
    fallback for an op without one only warns, and the warning fails this test), and AOTAutograd traces
    forward and backward through the fake kernels."""
    _build.load_library()
    generator = torch.Generator().manual_seed(14)

    def grad_input(*shape, scale=1.0, offset=0.0):
        return (torch.rand(shape, generator=generator) * scale + offset).requires_grad_()

    image, flow = grad_input(1, 3, 6, 7), grad_input(1, 2, 6, 7, scale=4.0, offset=-2.0)
    for op, args in (
        (torch.ops.dainctl.depth_flow_projection.default, (flow, grad_input(1, 1, 6, 7, offset=0.1), True)),
        (torch.ops.dainctl.filter_interpolation.default, (image, flow, grad_input(1, 16, 6, 7))),
        (torch.ops.dainctl.correlation.default, (image, grad_input(1, 3, 6, 7), 2)),
        (torch.ops.dainctl.backward_warp.default, (image, flow)),
        (torch.ops.dainctl.bicubic_warp.default, (image, flow)),  # its backward: the twin's
    ):
        results = torch.library.opcheck(op, args)
        assert set(results.values()) == {"SUCCESS"}, (op, results)


def test_ops_trace_through_torch_compile():
    # fullgraph: the ops must be traceable (through their fake kernels) without graph breaks.
    _build.load_library()

    def warp_then_project(image, flow, weight):
        warped = torch.ops.dainctl.backward_warp(image, flow)
        return warped * 2, torch.ops.dainctl.depth_flow_projection(flow, weight, True)

    compiled = torch.compile(warp_then_project, backend="aot_eager", fullgraph=True)
    image, flow, weight = torch.rand(1, 3, 5, 6), torch.randn(1, 2, 5, 6), torch.rand(1, 1, 5, 6) + 0.1
    warped, projected = compiled(image, flow, weight)
    torch.testing.assert_close(warped, 2 * backward_warp_ref(image, flow))
    torch.testing.assert_close(projected, depth_flow_projection_ref(flow, weight))


def test_unknown_impl_is_a_usage_error():
    with pytest.raises(UsageError, match="impl"):
        backward_warp(torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2, 2), impl="fast")


def test_wrong_shapes_are_rejected_with_names():
    with pytest.raises(ValueError, match="flow"):
        backward_warp(torch.zeros(1, 1, 2, 2), torch.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match="filters"):
        filter_interpolation(torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2, 2), torch.zeros(1, 16, 3, 2))


def test_unsupported_dtype_falls_back_in_auto_and_fails_in_compiled():
    image = torch.rand(1, 1, 3, 3, dtype=torch.float16)
    flow = torch.zeros(1, 2, 3, 3, dtype=torch.float16)
    assert torch.equal(backward_warp(image, flow), image)  # half on CPU: the reference
    with pytest.raises(EngineError, match="float16"):
        backward_warp(image, flow, impl="compiled")


def test_auto_uses_the_differentiable_reference_when_grad_is_needed():
    image = torch.rand(1, 1, 3, 3, requires_grad=True)
    out = backward_warp(image, torch.zeros(1, 2, 3, 3))
    assert out.grad_fn is not None


def test_environment_variable_forces_reference(monkeypatch):
    def no_build(need_cuda=False):
        raise AssertionError("auto must not build when DAINCTL_KERNELS=ref")

    monkeypatch.setenv("DAINCTL_KERNELS", "ref")
    monkeypatch.setattr(_build, "load_library", no_build)
    image = torch.rand(1, 1, 3, 3)
    assert torch.equal(backward_warp(image, torch.zeros(1, 2, 3, 3)), image)


def test_failed_build_warns_once_in_auto_and_raises_in_compiled(monkeypatch, tmp_path):
    def failing_build(variant):
        raise EngineError(f"could not build the compiled dainctl kernels (see {tmp_path / 'build.log'})")

    monkeypatch.delenv("DAINCTL_KERNELS", raising=False)
    monkeypatch.setattr(_build, "_loaded", {})
    monkeypatch.setattr(_build, "_failed", {})
    monkeypatch.setattr(_build, "_build_and_load", failing_build)
    monkeypatch.setattr(_dispatch, "_warned_build_failure", set())
    image = torch.rand(1, 1, 3, 3)
    flow = torch.zeros(1, 2, 3, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = backward_warp(image, flow)
        backward_warp(image, flow)
    assert torch.equal(first, image)
    assert len(caught) == 1 and "build.log" in str(caught[0].message)
    with pytest.raises(EngineError, match="build.log"):
        backward_warp(image, flow, impl="compiled")


def test_build_key_covers_headers_and_changes_with_them(monkeypatch, tmp_path):
    import shutil

    copy = tmp_path / "csrc"
    shutil.copytree(_build.CSRC_DIR, copy)
    monkeypatch.setattr(_build, "CSRC_DIR", copy)
    before = _build.build_key("cpu")
    header = copy / "include" / "dainctl" / "projection.h"
    header.write_text(header.read_text() + "\n// edited\n")
    assert _build.build_key("cpu") != before
    assert any(p.suffix == ".h" for p in _build.source_files())


def test_second_process_reuses_the_cached_build():
    library = _build.load_library()
    assert library.is_file() and library.parent.parent == _build.cache_root()
    result = subprocess.run(
        [sys.executable, "-c", "from dainctl.kernels import _build; print(_build.load_library())"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DAINCTL_KERNELS": ""},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(library)
    assert "compiling" not in result.stderr


def test_without_a_working_compiler_auto_warns_and_compiled_names_the_log(tmp_path):
    # A fresh process with an empty cache and a compiler that does not exist.
    script = """
import warnings, torch
from dainctl.errors import EngineError
from dainctl.kernels import backward_warp
image, flow = torch.rand(1, 1, 3, 3), torch.zeros(1, 2, 3, 3)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    assert torch.equal(backward_warp(image, flow), image)
    backward_warp(image, flow)
print("warnings:", len(caught), caught[0].message)
try:
    backward_warp(image, flow, impl="compiled")
except EngineError as error:
    print("error:", error.message)
"""
    env = {**os.environ, "CXX": str(tmp_path / "no-such-compiler"), "DAINCTL_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("DAINCTL_KERNELS", None)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert lines["warnings"].startswith("1 ")
    log = lines["error"].split("see ")[-1].rstrip(")")
    assert Path(log).is_file() and Path(log).parent == tmp_path / "cache" / "kernels"
    assert "\n" not in lines["error"]


@pytest.mark.parametrize("kind", ["random", "integer", "large", "nonfinite"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_projection_is_the_same_on_any_thread_count(kind, dtype):
    """The CPU splat runs in bands of target rows, each summing its targets' sources in raster order:
    bit for bit the result of one thread (the serial order), forward and backward, on 2, 3 and 8."""
    generator = seeded("projection-threads", kind)
    flow = make_flow(kind, 2, 200, 64, generator).to(dtype)
    weight = (0.1 + torch.rand((2, 1, 200, 64), generator=generator, dtype=torch.float64)).to(dtype)
    grad = torch.randn((2, 2, 200, 64), generator=generator, dtype=torch.float64).to(dtype)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3, 8):
            torch.set_num_threads(threads)
            out = depth_flow_projection(flow, weight, True, impl="compiled")
            backward = torch.ops.dainctl.depth_flow_projection_backward(grad, flow, weight, True)
            results.append((out, *backward))
    finally:
        torch.set_num_threads(before)
    for result in results[1:]:
        for got, want in zip(result, results[0]):
            assert torch.equal(torch.nan_to_num(got, nan=7.0), torch.nan_to_num(want, nan=7.0))


@pytest.mark.parametrize("needs", ["both", "input", "flow"])
def test_the_compiled_bicubic_warp_differentiates_through_its_twin(needs):
    # No compiled backward: called directly, the op's Autograd kernel re-runs the reference under
    # autograd; `bicubic_warp(impl="auto")` runs the reference itself when an input requires grad.
    _build.load_library()
    generator = torch.Generator().manual_seed(5)
    image = torch.rand((2, 3, 6, 7), generator=generator, dtype=torch.float64)
    flow = torch.rand((2, 2, 6, 7), generator=generator, dtype=torch.float64) * 5 - 2.5
    image.requires_grad_(needs in ("both", "input"))
    flow.requires_grad_(needs in ("both", "flow"))
    wanted = [t for t in (image, flow) if t.requires_grad]
    weights = torch.rand((2, 3, 6, 7), generator=generator, dtype=torch.float64)
    compiled = torch.autograd.grad((torch.ops.dainctl.bicubic_warp(image, flow) * weights).sum(), wanted)
    reference = torch.autograd.grad((bicubic_warp_ref(image, flow) * weights).sum(), wanted)
    for ours, theirs in zip(compiled, reference):
        torch.testing.assert_close(ours, theirs)
    assert torch.autograd.gradcheck(lambda *t: torch.ops.dainctl.bicubic_warp(*t), (image, flow), eps=1e-6, atol=1e-6)
    with pytest.raises(EngineError, match="autograd"):
        bicubic_warp(image, flow, impl="compiled")


@pytest.mark.parametrize("width", [7, 16, 53])
@pytest.mark.parametrize("kind", FLOW_KINDS)
def test_bicubic_warp_cpu_paths_agree(kind, width, monkeypatch):
    # float32 on the CPU takes an AVX2+FMA loop where the CPU has it and an SSE loop otherwise
    # (DAINCTL_CPU_BASELINE=1 forces the latter): both match the twin, and each other to rounding.
    # The AVX2 loop takes eight pixels at a time and the row's rest per pixel: rows of only a rest
    # (7), of whole chunks (16) and of both (53).
    generator = seeded("paths", kind, width)
    image = torch.rand((2, 3, 37, width), generator=generator)
    flow = make_flow(kind, 2, 37, width, generator).float()
    reference = bicubic_warp_ref(image, flow)
    default = bicubic_warp(image, flow, impl="compiled")
    monkeypatch.setenv("DAINCTL_CPU_BASELINE", "1")
    baseline = bicubic_warp(image, flow, impl="compiled")
    for result in (default, baseline):
        assert_same(result, reference, torch.float32, scale=2.0)
    torch.testing.assert_close(default, baseline, rtol=0, atol=1e-5)
