"""DAIN's DepthFlowProjection: project a flow from frame k to the intermediate time t.

Every source pixel q with flow f_q lands at q + f_q. If that point lies inside the image (bounds
inclusive: 0 <= x <= W-1, 0 <= y <= H-1) it adds -w_q*f_q and w_q to the four pixels around it,
with the *same* weight at all four corners (not bilinear; the right/bottom corners clamp to the last
column/row, so a point exactly on the last column adds twice to the same pixel). Each target then holds

    out(p) = - sum_{q -> p} w_q f_q / sum_{q -> p} w_q,

a depth-weighted average in which near pixels (large inverse depth w) win. With `fill_holes` every pixel
no source reached (summed weight <= 0) takes the unweighted mean of the nearest reached pixel to its
left, right, above and below (axis directions only; a direction contributes when that pixel's summed
weight is > 0). A hole with no such neighbour stays 0.

Weights are meant to be positive (DAIN passes exp(-log_depth) + 1e-6). NaN or infinite flow lands
nowhere and never writes out of bounds.
"""

from __future__ import annotations

import torch

from dainctl.kernels import _dispatch


def depth_flow_projection(
    flow: torch.Tensor, weight: torch.Tensor, fill_holes: bool = True, impl: str = "auto"
) -> torch.Tensor:
    """Depth-aware flow projection (DAIN's DepthFlowProjection, inference form).

    Args:
        flow:       (B,2,H,W) flow from frame k, already scaled to time t (channel 0 = x, 1 = y), in pixels.
                    float32/float64 on CPU, float16/float32 on CUDA.
        weight:     (B,1,H,W) per-pixel splat weight (inverse depth), any float dtype; used in float32.
        fill_holes: fill pixels no source reached from their 4 axis neighbours (DAIN does at inference).
        impl:       "auto" | "compiled" | "ref" (see `dainctl.kernels`).

    Returns:
        (B,2,H,W) flow from time t back to frame k, dtype of `flow`, contiguous.
        Accumulation is float32 (float64 for float64 input); the compiled CUDA path adds with atomics,
        so the summation order, and the last bits of the result, may vary from run to run. The compiled
        CPU path sums each target's sources in raster order on any number of threads: its result is
        the same bit for bit on every run.
    """
    _dispatch.check_nchw("flow", flow, channels=2)
    _dispatch.check_nchw("weight", weight, channels=1)
    _dispatch.check_same_size("flow", flow, weight=weight)
    if _dispatch.use_compiled("depth_flow_projection", impl, flow, weight):
        return torch.ops.dainctl.depth_flow_projection(flow, weight, bool(fill_holes))
    return depth_flow_projection_ref(flow, weight, fill_holes)


def depth_flow_projection_ref(
    flow: torch.Tensor, weight: torch.Tensor, fill_holes: bool = True
) -> torch.Tensor:
    """Pure-PyTorch definition of `depth_flow_projection` (vectorised, differentiable, any device).

    Shapes and dtypes as in `depth_flow_projection`.
    """
    compute_dtype = _dispatch.acc_dtype(flow.dtype)
    flow_c = flow.to(compute_dtype)
    weight_c = weight.to(compute_dtype)[:, 0]
    batch, _, height, width = flow_c.shape
    ys, xs = _dispatch.pixel_grid(height, width, flow_c)
    flow_x, flow_y = flow_c[:, 0], flow_c[:, 1]

    target_x = xs + flow_x
    target_y = ys + flow_y
    # Written as positive range tests so that NaN lands nowhere.
    inside = (target_x >= 0) & (target_x <= width - 1) & (target_y >= 0) & (target_y <= height - 1)
    left = torch.floor(torch.where(inside, target_x, 0)).long()
    top = torch.floor(torch.where(inside, target_y, 0)).long()
    right = torch.clamp(left + 1, max=max(width - 1, 0))
    bottom = torch.clamp(top + 1, max=max(height - 1, 0))

    zero = torch.zeros((), dtype=compute_dtype, device=flow.device)
    # Channels: summed -w*fx, summed -w*fy, summed w. Sources outside add exact zeros.
    splat_values = torch.stack(
        (
            torch.where(inside, -weight_c * flow_x, zero),
            torch.where(inside, -weight_c * flow_y, zero),
            torch.where(inside, weight_c, zero),
        ),
        dim=1,
    ).reshape(batch, 3, height * width)
    sums = torch.zeros_like(splat_values)
    for row, col in ((top, left), (top, right), (bottom, left), (bottom, right)):
        index = (row * width + col).reshape(batch, 1, height * width).expand(batch, 3, height * width)
        sums = sums.scatter_add(2, index, splat_values)
    sums = sums.reshape(batch, 3, height, width)

    weight_sum = sums[:, 2:3]
    averaged = torch.where(weight_sum > 0, sums[:, :2] / torch.where(weight_sum > 0, weight_sum, 1), sums[:, :2])
    if fill_holes:
        averaged = _fill_holes_ref(averaged, weight_sum)
    return averaged.to(flow.dtype)


def _fill_holes_ref(averaged: torch.Tensor, weight_sum: torch.Tensor) -> torch.Tensor:
    """Fill pixels with weight_sum <= 0 from the nearest reached pixel in each axis direction.

    averaged: (B,2,H,W); weight_sum: (B,1,H,W). The scan in each direction stops at the first pixel
    whose weight_sum != 0 (as in DAIN); that pixel contributes when its weight_sum > 0. Neighbours are
    added in the order left, right, up, down, then divided by their count.
    """
    hole = weight_sum <= 0
    stops_scan = weight_sum != 0
    contributes = weight_sum > 0
    total = torch.zeros_like(averaged)
    found = torch.zeros_like(weight_sum)
    for dim in (3, 2):  # along a row (left, right), then along a column (up, down)
        for toward_start in (True, False):
            neighbour = _nearest_strictly_before_or_after(stops_scan, dim, toward_start)
            exists = neighbour >= 0
            safe = neighbour.clamp(min=0)
            usable = exists & torch.gather(contributes, dim, safe)
            values = torch.gather(averaged, dim, safe.expand_as(averaged))
            total = total + torch.where(usable, values, torch.zeros((), dtype=averaged.dtype, device=averaged.device))
            found = found + usable.to(found.dtype)
    filled = total / torch.where(found > 0, found, 1)
    return torch.where(hole & (found > 0), filled, averaged)


def _nearest_strictly_before_or_after(marked: torch.Tensor, dim: int, toward_start: bool) -> torch.Tensor:
    """For every position along `dim`, the index of the nearest marked position strictly before it
    (`toward_start`) or strictly after it, or -1 where there is none. marked: bool (B,1,H,W)."""
    length = marked.shape[dim]
    if length == 0:
        return torch.full(marked.shape, -1, dtype=torch.long, device=marked.device)
    shape = [1, 1, 1, 1]
    shape[dim] = length
    index = torch.arange(length, device=marked.device).view(shape).expand_as(marked)
    if toward_start:
        candidates = torch.where(marked, index, -1)
        nearest_at_or_before = torch.cummax(candidates, dim).values
        # Shift by one so a pixel never finds itself.
        pad = torch.full_like(nearest_at_or_before.narrow(dim, 0, 1), -1)
        return torch.cat((pad, nearest_at_or_before.narrow(dim, 0, length - 1)), dim)
    candidates = torch.where(marked, index, length)
    nearest_at_or_after = torch.flip(torch.cummin(torch.flip(candidates, (dim,)), dim).values, (dim,))
    pad = torch.full_like(nearest_at_or_after.narrow(dim, 0, 1), length)
    shifted = torch.cat((nearest_at_or_after.narrow(dim, 1, length - 1), pad), dim)
    return torch.where(shifted < length, shifted, -1)
