"""Small layer builders shared by the DAIN sub-networks.

Each builder returns a plain `nn.Sequential` or `nn.Module` whose child names reproduce the original
checkpoint's state_dict keys, so the composed model loads `best.pth` strictly.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_relu(in_channels: int, out_channels: int, kernel_size: int = 3, *, bias: bool = True) -> nn.Sequential:
    """`Conv2d(k, stride 1, same padding) -> ReLU`; keys `<name>.0.weight` / `<name>.0.bias`."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias),
        nn.ReLU(inplace=True),
    )


class ResidualBlock(nn.Module):
    """`relu(conv2(relu(conv1(x))) + x)` with bias-free 3x3 convs (no BatchNorm).

    Used by the context net (dilation 4 and 8 in `conv1`) and by the rectifier (dilation 1).
    Input and output: (B, C, H, W), same dtype.
    """

    def __init__(self, channels: int, dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.conv1(x))
        out = self.conv2(out)
        return torch.relu(out + x)
