"""The one interface every interpolation engine implements."""

from __future__ import annotations

from typing import Protocol, Sequence

import torch


class Engine(Protocol):
    """An interpolation engine.

    `interpolate(frame0, frame1, timesteps)` takes two frames as float32 tensors of shape (3, H, W),
    RGB in [0, 1], on the CPU, and a list of timesteps t in (0, 1); it returns one frame per t, same
    shape, float32 in [0, 1], on the CPU. The engine moves data to its own device and precision.
    Everything that depends only on the pair (flows, depth, kernels) is computed once per call.
    """

    name: str

    def interpolate(
        self, frame0: torch.Tensor, frame1: torch.Tensor, timesteps: Sequence[float]
    ) -> list[torch.Tensor]: ...
