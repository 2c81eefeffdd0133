"""Backward warps with replicate borders, out(x) = input(x + flow(x)): bilinear and bicubic.

The sample point (x + fx, y + fy) is clamped to [0, W-1] x [0, H-1] (so anything outside reads the
nearest border pixel, like `grid_sample(padding_mode="border", align_corners=True)`), then read
bilinearly from the pixels (x0, y0), (x0+1, y0), (x0, y0+1), (x0+1, y0+1) with x0 = floor(x) (the
right/bottom neighbour clamps to the last column/row). A NaN flow component counts as 0 (that axis
samples the pixel's own coordinate); infinite flow clamps to the border. The weight-free engine calls
this on its hot path.

`bicubic_warp` clamps the sample point the same way and reads the 4x4 pixels around it (columns x0-1
.. x0+2, rows y0-1 .. y0+2, each clamped to the plane) with Keys' cubic convolution weights, a = -0.5
(Catmull-Rom: exact on quadratics; OpenCV's INTER_CUBIC and PyTorch's bicubic use -0.75). It keeps
detail that the bilinear blend smooths away at fractional displacements: the weight-free engine warps
its full-size frames with it (balanced, Middlebury 34.59 -> 35.41 dB, docs/benchmarks.md, 2026-12-04). Its values may overshoot the input's range near
edges (the engine clamps its frames). It has no compiled backward: with inputs that require grad,
`auto` runs the twin.
"""

from __future__ import annotations

import torch

from dainctl.kernels import _dispatch


def backward_warp(input: torch.Tensor, flow: torch.Tensor, impl: str = "auto") -> torch.Tensor:
    """Warp `input` backward by `flow`, bilinear, border clamped.

    Args:
        input: (B,C,H,W) image or features, any C. float32/float64 on CPU, float16/float32 on CUDA.
        flow:  (B,2,H,W) where each output pixel reads from (channel 0 = x, 1 = y), in pixels; any float
               dtype, used in float32 (float64 for float64 input).
        impl:  "auto" | "compiled" | "ref".

    Returns:
        (B,C,H,W), dtype of `input`, contiguous; weights and blend in float32 (float64 for float64).
    """
    _check_warp_args(input, flow)
    if _dispatch.use_compiled("backward_warp", impl, input, flow):
        return torch.ops.dainctl.backward_warp(input, flow)
    return backward_warp_ref(input, flow)


def _check_warp_args(input: torch.Tensor, flow: torch.Tensor) -> None:
    """Both warps' arguments: (B,C,H,W) input and (B,2,H,W) flow of one batch and size."""
    _dispatch.check_nchw("input", input)
    _dispatch.check_nchw("flow", flow, channels=2)
    _dispatch.check_same_size("input", input, flow=flow)


def _sample_points(input: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The input in the compute dtype, and where each output pixel reads, (B,1,H,W) x and y: x + flow,
    a NaN displacement counting as none, clamped to the plane. Both warps' twins share it."""
    compute_dtype = _dispatch.acc_dtype(input.dtype)
    image = input.to(compute_dtype)
    flow_c = torch.nan_to_num(flow.to(compute_dtype), nan=0.0)
    height, width = image.shape[-2:]
    ys, xs = _dispatch.pixel_grid(height, width, flow_c)
    sample_x = torch.clamp(xs + flow_c[:, 0:1], 0, max(width - 1, 0))
    sample_y = torch.clamp(ys + flow_c[:, 1:2], 0, max(height - 1, 0))
    return image, sample_x, sample_y


def backward_warp_ref(input: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Pure-PyTorch definition of `backward_warp`: four gathers and a bilinear blend.

    Shapes and dtypes as in `backward_warp`.
    """
    image, sample_x, sample_y = _sample_points(input, flow)
    batch, channels, height, width = image.shape
    x0 = torch.floor(sample_x)
    y0 = torch.floor(sample_y)
    alpha = sample_x - x0
    beta = sample_y - y0
    left = x0.long()
    top = y0.long()
    right = torch.clamp(left + 1, max=max(width - 1, 0))
    bottom = torch.clamp(top + 1, max=max(height - 1, 0))

    flat_image = image.reshape(batch, channels, height * width)

    def tap(row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
        index = (row * width + col).reshape(batch, 1, height * width).expand(-1, channels, -1)
        return torch.gather(flat_image, 2, index).reshape(image.shape)

    blended = (
        (1 - alpha) * (1 - beta) * tap(top, left)
        + alpha * (1 - beta) * tap(top, right)
        + (1 - alpha) * beta * tap(bottom, left)
        + alpha * beta * tap(bottom, right)
    )
    return blended.to(input.dtype)


def bicubic_warp(input: torch.Tensor, flow: torch.Tensor, impl: str = "auto") -> torch.Tensor:
    """Warp `input` backward by `flow`, bicubic (Catmull-Rom, a = -0.5), border clamped.

    Shapes, dtypes and `impl` as in `backward_warp`; weights and sums in float32 (float64 for float64).
    """
    _check_warp_args(input, flow)
    if _dispatch.use_compiled("bicubic_warp", impl, input, flow):
        return torch.ops.dainctl.bicubic_warp(input, flow)
    return bicubic_warp_ref(input, flow)


def cubic_weights(fraction: torch.Tensor, a: float = -0.5) -> list[torch.Tensor]:
    """Keys' cubic convolution weights of the taps at -1, 0, 1, 2 for fractional positions in [0, 1)."""

    def near(d: torch.Tensor) -> torch.Tensor:  # distance in [0, 1]
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d: torch.Tensor) -> torch.Tensor:  # distance in [1, 2]
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

    return [far(fraction + 1), near(fraction), near(1 - fraction), far(2 - fraction)]


def bicubic_warp_ref(input: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Pure-PyTorch definition of `bicubic_warp`: 16 gathers, each row of taps blended along x, then
    the four rows along y. Shapes and dtypes as in `bicubic_warp`."""
    image, sample_x, sample_y = _sample_points(input, flow)
    batch, channels, height, width = image.shape
    x0 = torch.floor(sample_x)
    y0 = torch.floor(sample_y)
    weights_x = cubic_weights(sample_x - x0)
    weights_y = cubic_weights(sample_y - y0)
    left = x0.long()
    top = y0.long()
    flat_image = image.reshape(batch, channels, height * width)

    def tap(row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
        index = (row * width + col).reshape(batch, 1, height * width).expand(-1, channels, -1)
        return torch.gather(flat_image, 2, index).reshape(image.shape)

    result = torch.zeros_like(image)
    for i, weight_y in enumerate(weights_y):
        row = torch.clamp(top + (i - 1), 0, max(height - 1, 0))
        across = sum(weight_x * tap(row, torch.clamp(left + (j - 1), 0, max(width - 1, 0)))
                     for j, weight_x in enumerate(weights_x))
        result = result + weight_y * across
    return result.to(input.dtype)
