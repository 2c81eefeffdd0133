"""PWC-Net's correlation (cost volume) as DAIN uses it: kernel size 1, stride 1, zero padding.

For every displacement (dy, dx) in [-d, d]^2, output channel (dy + d)(2d + 1) + (dx + d) (dy-major) holds

    out[(dy,dx), y, x] = (1/C) sum_c a[c, y, x] * b[c, y + dy, x + dx],

with b taken as zero outside the image. The mean over channels (not the sum) matches DAIN's kernel.
PWC-Net applies LeakyReLU(0.1) afterwards; that is the caller's job.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dainctl.kernels import _dispatch


def correlation(
    a: torch.Tensor, b: torch.Tensor, max_displacement: int = 4, impl: str = "auto"
) -> torch.Tensor:
    """Cost volume between feature maps `a` and `b`.

    Args:
        a, b:             (B,C,H,W) features, same shape and dtype. float32/float64 on CPU,
                          float16/float32 on CUDA.
        max_displacement: d >= 0; the output has (2d+1)^2 channels (81 for DAIN's d = 4).
        impl:             "auto" | "compiled" | "ref".

    Returns:
        (B,(2d+1)^2,H,W), dtype of `a`, contiguous. Products and sums in float32 (float64 for float64).
    """
    _dispatch.check_nchw("a", a)
    _dispatch.check_nchw("b", b)
    if a.shape != b.shape or a.dtype != b.dtype:
        raise ValueError(f"a {tuple(a.shape)} {a.dtype} and b {tuple(b.shape)} {b.dtype} must match")
    if max_displacement < 0:
        raise ValueError(f"max_displacement must be >= 0, got {max_displacement}")
    if _dispatch.use_compiled("correlation", impl, a, b):
        return torch.ops.dainctl.correlation(a, b, int(max_displacement))
    return correlation_ref(a, b, max_displacement)


def correlation_ref(a: torch.Tensor, b: torch.Tensor, max_displacement: int = 4) -> torch.Tensor:
    """Pure-PyTorch definition of `correlation`: one shifted product per displacement.

    Shapes and dtypes as in `correlation`.
    """
    compute_dtype = _dispatch.acc_dtype(a.dtype)
    first = a.to(compute_dtype)
    second = b.to(compute_dtype)
    d = max_displacement
    height, width = first.shape[2:]
    padded = F.pad(second, (d, d, d, d))
    planes = []
    for dy in range(-d, d + 1):
        for dx in range(-d, d + 1):
            shifted = padded[:, :, d + dy : d + dy + height, d + dx : d + dx + width]
            planes.append((first * shifted).sum(dim=1) / first.shape[1])
    return torch.stack(planes, dim=1).to(a.dtype)
