"""Context feature extractor (the original `ctxNet`, S2DF_3dense).

A 7x7 conv followed by two dilated residual blocks; the output concatenates the input frame with the
three 64-channel feature maps, 3 + 3*64 = 195 channels at full resolution.
"""

from __future__ import annotations

import torch
from torch import nn

from dainctl.models.blocks import ResidualBlock, conv_relu

CONTEXT_CHANNELS = 3 + 3 * 64


class ContextNet(nn.Module):
    """Frame (B, 3, H, W) -> context features (B, 195, H, W), same dtype.

    Channel order: [frame RGB (3), block1 (64), block2 (64), block3 (64)].
    """

    def __init__(self) -> None:
        super().__init__()
        self.block1 = conv_relu(3, 64, 7, bias=False)
        self.block2 = ResidualBlock(64, dilation=4)
        self.block3 = ResidualBlock(64, dilation=8)

    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        features1 = self.block1(frame)
        features2 = self.block2(features1)
        features3 = self.block3(features2)
        return torch.cat([frame, features1, features2, features3], dim=1)
