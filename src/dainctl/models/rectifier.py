"""The residual frame-synthesis net (the original `rectifyNet`, MultipleBasicBlock_4(437, 128)).

It sees the blended frame, both adaptively warped frames, both projected flows, both kernel maps and
both warped context tensors, and predicts a residual that is added to the blend by the caller.
"""

from __future__ import annotations

import torch
from torch import nn

from dainctl.models.blocks import ResidualBlock, conv_relu

# blend 3 + warped frames 3 + 3 + projected flows 2 + 2 + kernels 16 + 16 + warped context 196 + 196
RECTIFIER_IN_CHANNELS = 437
RECTIFIER_WIDTH = 128


class Rectifier(nn.Module):
    """Rectifier input (B, 437, H, W) -> residual (B, 3, H, W), same dtype."""

    def __init__(self, in_channels: int = RECTIFIER_IN_CHANNELS, width: int = RECTIFIER_WIDTH):
        super().__init__()
        self.block1 = conv_relu(in_channels, width, 7, bias=True)
        self.block2 = ResidualBlock(width)
        self.block3 = ResidualBlock(width)
        self.block4 = ResidualBlock(width)
        self.block5 = nn.Sequential(nn.Conv2d(width, 3, 3, padding=1, bias=True))

    def forward(self, rectifier_input: torch.Tensor) -> torch.Tensor:
        x = self.block1(rectifier_input)
        x = self.block4(self.block3(self.block2(x)))
        return self.block5(x)
