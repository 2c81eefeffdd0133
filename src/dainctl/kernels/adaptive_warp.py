"""DAIN's FilterInterpolation, the adaptive warping layer: a backward warp through a learned 4x4 kernel.

For output pixel (x, y) with flow (fx, fy), the sample point is (x2, y2) = (x + fx, y + fy). It is valid
when 0 <= x2 <= W-1, 0 <= y2 <= H-1 (inclusive), |fx| < W/2 and |fy| < H/2. For a valid point, with
x0 = floor(x2), y0 = floor(y2), alpha = x2 - x0, beta = y2 - y0, the 4x4 window covers rows y0-1..y0+2
and columns x0-1..x0+2 (image reads clamped to the border), and tap (row a, column b) is multiplied by
the raw, unnormalised kernel value filters[4a+b, y, x]. The window splits into four 2x2 quadrants whose
sums TL, TR, BL, BR are blended with the bilinear weights of the corresponding corner:

    out = (1-alpha)(1-beta) TL + alpha(1-beta) TR + (1-alpha) beta BL + alpha beta BR.

An invalid point (including NaN or infinite flow) copies the input pixel through unchanged.
"""

from __future__ import annotations

import torch

from dainctl.kernels import _dispatch

KERNEL_SIZE = 4  # DAIN's filter_size; the kernel channel of tap (row a, column b) is 4a + b


def filter_interpolation(
    input: torch.Tensor, flow: torch.Tensor, filters: torch.Tensor, impl: str = "auto"
) -> torch.Tensor:
    """Adaptive warping of `input` by `flow` with per-pixel 4x4 kernels (DAIN's FilterInterpolation).

    Args:
        input:   (B,C,H,W) image or features, any C. float32/float64 on CPU, float16/float32 on CUDA.
        flow:    (B,2,H,W) flow from the output pixel into `input` (channel 0 = x), in pixels; any float
                 dtype, used in float32 (float64 for float64 input).
        filters: (B,16,H,W) one raw 4x4 kernel per output pixel, row-major; cast to `input`'s dtype.
        impl:    "auto" | "compiled" | "ref".

    Returns:
        (B,C,H,W), dtype of `input`, contiguous. Sums are taken in float32 (float64 for float64 input).
    """
    _dispatch.check_nchw("input", input)
    _dispatch.check_nchw("flow", flow, channels=2)
    _dispatch.check_nchw("filters", filters, channels=KERNEL_SIZE * KERNEL_SIZE)
    _dispatch.check_same_size("input", input, flow=flow, filters=filters)
    if _dispatch.use_compiled("filter_interpolation", impl, input, flow, filters):
        return torch.ops.dainctl.filter_interpolation(input, flow, filters)
    return filter_interpolation_ref(input, flow, filters)


def filter_interpolation_ref(input: torch.Tensor, flow: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """Pure-PyTorch definition of `filter_interpolation`: 16 gathers, one per kernel tap.

    Shapes and dtypes as in `filter_interpolation`.
    """
    compute_dtype = _dispatch.acc_dtype(input.dtype)
    image = input.to(compute_dtype)
    flow_c = flow.to(compute_dtype)
    kernels = filters.to(input.dtype).to(compute_dtype)
    batch, channels, height, width = image.shape
    ys, xs = _dispatch.pixel_grid(height, width, flow_c)
    flow_x, flow_y = flow_c[:, 0:1], flow_c[:, 1:2]  # (B,1,H,W)

    sample_x = xs + flow_x
    sample_y = ys + flow_y
    valid = (
        (sample_x >= 0) & (sample_x <= width - 1) & (sample_y >= 0) & (sample_y <= height - 1)
        & (flow_x.abs() < width / 2) & (flow_y.abs() < height / 2)
    )
    base_x = torch.floor(torch.where(valid, sample_x, 0))
    base_y = torch.floor(torch.where(valid, sample_y, 0))
    alpha = torch.where(valid, sample_x, 0) - base_x
    beta = torch.where(valid, sample_y, 0) - base_y
    window_x0 = base_x.long() + 1 - KERNEL_SIZE // 2
    window_y0 = base_y.long() + 1 - KERNEL_SIZE // 2

    flat_image = image.reshape(batch, channels, height * width)

    def quadrant_sum(rows: range, cols: range) -> torch.Tensor:
        # Taps added row by row, column by column, as DAIN's kernel does.
        total = torch.zeros_like(image)
        for a in rows:
            tap_y = (window_y0 + a).clamp(0, max(height - 1, 0))
            for b in cols:
                tap_x = (window_x0 + b).clamp(0, max(width - 1, 0))
                index = (tap_y * width + tap_x).reshape(batch, 1, height * width).expand(-1, channels, -1)
                tap = torch.gather(flat_image, 2, index).reshape(image.shape)
                total = total + tap * kernels[:, KERNEL_SIZE * a + b : KERNEL_SIZE * a + b + 1]
        return total

    top_left = quadrant_sum(range(0, 2), range(0, 2))
    top_right = quadrant_sum(range(0, 2), range(2, 4))
    bottom_left = quadrant_sum(range(2, 4), range(0, 2))
    bottom_right = quadrant_sum(range(2, 4), range(2, 4))
    blended = (
        (1 - alpha) * (1 - beta) * top_left
        + alpha * (1 - beta) * top_right
        + (1 - alpha) * beta * bottom_left
        + alpha * beta * bottom_right
    )
    return torch.where(valid, blended, image).to(input.dtype)
