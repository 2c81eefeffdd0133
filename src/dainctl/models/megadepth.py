"""The MegaDepth "HourGlass" depth network (the original `depthNet`).

A Torch7 model converted to PyTorch: a 7x7 stem, then four nested hourglass levels made of Inception
blocks, then a 3x3 conv to one channel of log-depth at full resolution.  The nesting of containers below
mirrors the original exactly, because the state_dict keys are the container paths (for example
`depthNet.3.0.0.3.0.0.3.0.1.3.0.0.0.1.3.weight`).

Torch7 idioms and their PyTorch form here:
  ConcatTable (apply every branch to the same input, return the list)  -> `Parallel`
  CAddTable (sum the list)                                              -> `SumBranches`
  an Inception block (concatenate the branches along channels)         -> `Inception`
Max-pooling is used for the two outer levels and average-pooling for the two inner ones; upsampling is
nearest-neighbour x2.  Every BatchNorm is affine-free except the stem's.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

BN_EPS = 1e-5


class Parallel(nn.ModuleList):
    """Apply every branch to the same input; returns the list of outputs."""

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [branch(x) for branch in self]


class SumBranches(nn.Module):
    """Sum a list of equally shaped tensors (the hourglass skip + upsampled path)."""

    def forward(self, branches: list[torch.Tensor]) -> torch.Tensor:
        total = branches[0]
        for branch in branches[1:]:
            total = total + branch
        return total


class Inception(nn.ModuleList):
    """Four conv branches concatenated along channels.

    Branch 0 is `1x1 conv -> BN -> ReLU`; branches 1-3 are `1x1 conv -> BN -> ReLU -> kxk conv -> BN -> ReLU`.
    Input (B, in_channels, H, W) -> (B, out_1x1 + sum(out), H, W).
    """

    def __init__(self, in_channels: int, out_1x1: int, branches: Sequence[tuple[int, int, int]]):
        """`branches` holds (kernel_size, bottleneck_channels, out_channels) for branches 1-3."""
        modules = [
            nn.Sequential(
                nn.Conv2d(in_channels, out_1x1, 1),
                nn.BatchNorm2d(out_1x1, eps=BN_EPS, affine=False),
                nn.ReLU(inplace=True),
            )
        ]
        for kernel_size, bottleneck, out_channels in branches:
            modules.append(
                nn.Sequential(
                    nn.Conv2d(in_channels, bottleneck, 1),
                    nn.BatchNorm2d(bottleneck, eps=BN_EPS, affine=False),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(bottleneck, out_channels, kernel_size, padding=kernel_size // 2),
                    nn.BatchNorm2d(out_channels, eps=BN_EPS, affine=False),
                    nn.ReLU(inplace=True),
                )
            )
        super().__init__(modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self], dim=1)


# The Inception variants of the original, named by input width, output width and kernel sizes.
def _inc128_k357() -> Inception:  # 128 -> 128
    return Inception(128, 32, [(3, 32, 32), (5, 32, 32), (7, 32, 32)])


def _inc128_k3_7_11() -> Inception:  # 128 -> 128, wide bottlenecks
    return Inception(128, 32, [(3, 64, 32), (7, 64, 32), (11, 64, 32)])


def _inc128_k357_wide() -> Inception:  # 128 -> 128, wide bottlenecks
    return Inception(128, 32, [(3, 64, 32), (5, 64, 32), (7, 64, 32)])


def _inc128_to256() -> Inception:
    return Inception(128, 64, [(3, 32, 64), (5, 32, 64), (7, 32, 64)])


def _inc256_k357() -> Inception:  # 256 -> 256 ("A")
    return Inception(256, 64, [(3, 32, 64), (5, 32, 64), (7, 32, 64)])


def _inc256_k3_7_11() -> Inception:  # 256 -> 256 ("B", wide bottlenecks)
    return Inception(256, 64, [(3, 64, 64), (7, 64, 64), (11, 64, 64)])


def _inc256_to128() -> Inception:
    return Inception(256, 32, [(3, 32, 32), (5, 32, 32), (7, 32, 32)])


def _inc128_to64() -> Inception:
    return Inception(128, 16, [(3, 32, 16), (7, 32, 16), (11, 32, 16)])


def _inc128_to64_wide() -> Inception:
    return Inception(128, 16, [(3, 64, 16), (7, 64, 16), (11, 64, 16)])


def _up2x() -> nn.Module:
    return nn.UpsamplingNearest2d(scale_factor=2)


def _hourglass_level(first: nn.Sequential, second: nn.Sequential) -> nn.Sequential:
    """Sequential(Parallel(first, second), SumBranches()): keys `.0.0.*`, `.0.1.*`."""
    return nn.Sequential(Parallel([first, second]), SumBranches())


def _level_eighth() -> nn.Sequential:  # 256 ch at 1/8
    skip = nn.Sequential(_inc256_k357(), _inc256_k357())
    down = nn.Sequential(nn.AvgPool2d(2, 2), _inc256_k357(), _inc256_k357(), _inc256_k357(), _up2x())
    return _hourglass_level(skip, down)


def _level_quarter() -> nn.Sequential:  # 256 ch at 1/4
    skip = nn.Sequential(_inc256_k357(), _inc256_k3_7_11())
    down = nn.Sequential(
        nn.AvgPool2d(2, 2), _inc256_k357(), _inc256_k357(), _level_eighth(), _inc256_k357(), _inc256_k3_7_11(), _up2x()
    )
    return _hourglass_level(skip, down)


def _level_half() -> nn.Sequential:  # 128 ch at 1/2
    down = nn.Sequential(
        nn.MaxPool2d(2, 2), _inc128_k357(), _inc128_to256(), _level_quarter(), _inc256_k357(), _inc256_to128(), _up2x()
    )
    skip = nn.Sequential(_inc128_k357(), _inc128_k3_7_11())
    return _hourglass_level(down, skip)


def _level_full() -> nn.Sequential:  # 128 ch in, 64 ch out, full resolution
    down = nn.Sequential(
        nn.MaxPool2d(2, 2), _inc128_k357(), _inc128_k357(), _level_half(), _inc128_k357_wide(), _inc128_to64(), _up2x()
    )
    skip = nn.Sequential(_inc128_to64_wide())
    return _hourglass_level(down, skip)


class MegaDepth(nn.Sequential):
    """Frames (B, 3, H, W) RGB in [0, 1] -> log-depth (B, 1, H, W), same dtype; H, W multiples of 16.

    No input normalisation (the original feeds raw [0, 1] RGB).
    """

    def __init__(self) -> None:
        super().__init__(
            nn.Conv2d(3, 128, 7, padding=3),
            nn.BatchNorm2d(128, eps=BN_EPS),
            nn.ReLU(inplace=True),
            _level_full(),
            nn.Conv2d(64, 1, 3, padding=1),
        )
