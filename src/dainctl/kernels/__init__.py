"""DAIN's custom ops, compiled on first use, each with a pure-PyTorch twin.

Public ops (each takes `impl="auto" | "compiled" | "ref"`):

- `depth_flow_projection(flow, weight, fill_holes=True)`: (B,2,H,W), (B,1,H,W) -> (B,2,H,W)
- `filter_interpolation(input, flow, filters)`: (B,C,H,W), (B,2,H,W), (B,16,H,W) -> (B,C,H,W)
- `correlation(a, b, max_displacement=4)`: (B,C,H,W) x 2 -> (B,(2d+1)^2,H,W)
- `backward_warp(input, flow)`: (B,C,H,W), (B,2,H,W) -> (B,C,H,W)
- `bicubic_warp(input, flow)`: the same warp read bicubically (forward only; grad runs the twin)

`impl="auto"` runs the compiled op (C++/OpenMP on CPU for float32/float64, CUDA for float16/float32)
when it builds, otherwise the `*_ref` twin after one warning; `"compiled"` raises `EngineError` when
it cannot build; `"ref"` always runs the twin. `DAINCTL_KERNELS=ref` in the environment makes `auto`
mean `ref`. The `*_ref` functions are the definitions the compiled code is tested against; they are
also differentiable, and `auto` uses them whenever an input requires grad.
"""

from dainctl.kernels.adaptive_warp import filter_interpolation, filter_interpolation_ref
from dainctl.kernels.warp import backward_warp, backward_warp_ref, bicubic_warp, bicubic_warp_ref
from dainctl.kernels.cost_volume import correlation, correlation_ref
from dainctl.kernels.projection import depth_flow_projection, depth_flow_projection_ref

__all__ = [
    "backward_warp",
    "backward_warp_ref",
    "bicubic_warp",
    "bicubic_warp_ref",
    "correlation",
    "correlation_ref",
    "depth_flow_projection",
    "depth_flow_projection_ref",
    "filter_interpolation",
    "filter_interpolation_ref",
]
