"""The kernel-estimation U-Net (the original `initScaleNets_filter`, `..._filter1`, `..._filter2`).

The trunk is a flat list of layers, exactly as the original builds it (its state_dict indices are the
list positions), with additive skip connections: the tensor entering every max-pool is stacked and added
back right after the matching upsample.  Two small heads turn the trunk's 16 channels into one raw 4x4
kernel per pixel for each frame; there is no activation or normalisation on the kernels.
"""

from __future__ import annotations

import torch
from torch import nn

KERNEL_TAPS = 16  # 4x4 adaptive-warp kernel, channel index 4*row + col
_ENCODER_WIDTHS = (16, 32, 64, 128, 256, 512)
_DECODER_WIDTHS = (512, 256, 128, 64, 32, 16)


def _upsample2x() -> nn.Upsample:
    # The original used nn.Upsample(bilinear) under PyTorch >= 0.4, i.e. align_corners=False.
    return nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)


class KernelTrunk(nn.ModuleList):
    """Frames concatenated (B, 6, H, W) -> features (B, 16, H, W); H and W must be multiples of 32."""

    def __init__(self, in_channels: int = 6) -> None:
        layers: list[nn.Module] = []
        channels = in_channels
        # encoder: conv+relu, then (conv+relu, maxpool) five times; indices 0..16
        layers += [nn.Conv2d(channels, _ENCODER_WIDTHS[0], 3, padding=1), nn.ReLU(inplace=True)]
        channels = _ENCODER_WIDTHS[0]
        for width in _ENCODER_WIDTHS[1:]:
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2)]
            channels = width
        # bottleneck at 1/32: indices 17, 18
        layers += [nn.Conv2d(channels, _DECODER_WIDTHS[0], 3, padding=1), nn.ReLU(inplace=True)]
        channels = _DECODER_WIDTHS[0]
        # decoder: (upsample, conv+relu) five times; indices 19..33
        for width in _DECODER_WIDTHS[1:]:
            layers += [_upsample2x(), nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
            channels = width
        super().__init__(layers)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        x = frames
        for layer in self:
            if isinstance(layer, nn.MaxPool2d):
                skips.append(x)
            x = layer(x)
            if isinstance(layer, nn.Upsample):
                x = x + skips.pop()
        return x


class KernelHead(nn.Sequential):
    """Trunk features (B, 16, H, W) -> raw 4x4 kernels (B, 16, H, W), same dtype."""

    def __init__(self, channels: int = 16) -> None:
        super().__init__(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, KERNEL_TAPS, 3, padding=1),
        )
