"""PWC-Net optical flow (the original `flownets`, the PyTorch "PWC-DC" variant with max displacement 4).

Structure: a six-level feature pyramid shared by both frames; at each level from coarse (1/64) to fine
(1/4), frame 1's features are backward-warped by the upsampled coarser flow, correlated with frame 0's
features (81 displacements), and a densely connected decoder predicts the flow; a dilated context network
refines the finest flow.  The output is the flow 0->1 at 1/4 resolution in units of full-resolution
pixels / 20 (channel 0 = x along W, channel 1 = y along H).

Checkpoint compatibility fixes the module names (`conv1a`, `conv6_0`, `predict_flow6`, `dc_conv7`, ...)
and the registration order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dainctl.kernels import correlation

MAX_DISPLACEMENT = 4
CORRELATION_CHANNELS = (2 * MAX_DISPLACEMENT + 1) ** 2  # 81
PYRAMID_WIDTHS = (16, 32, 64, 96, 128, 196)  # levels 1..6
DENSE_GROWTH = (128, 128, 96, 64, 32)  # the five densely connected convs of every decoder
# The coarse flow is in (pixels / 20) at the coarse level's upsampled resolution; the warp at level l
# needs pixels at 1/2^l resolution: 20 / 2^l.
WARP_SCALE = {5: 0.625, 4: 1.25, 3: 2.5, 2: 5.0}
REFINE_DILATIONS = (1, 2, 4, 8, 16, 1)
REFINE_WIDTHS = (128, 128, 128, 96, 64, 32)


def conv_lrelu(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """3x3 conv (bias) -> LeakyReLU(0.1); keys `<name>.0.weight` / `.0.bias`."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=dilation, dilation=dilation, bias=True),
        nn.LeakyReLU(0.1, inplace=True),
    )


def predict_flow(in_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, 2, 3, padding=1, bias=True)


def upconv(in_channels: int, out_channels: int) -> nn.ConvTranspose2d:
    """x2 transposed conv (kernel 4, stride 2, padding 1)."""
    return nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=True)


def backward_warp(features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample `features` at (x + u, y + v), zeroing samples that touch the outside.

    Args:
        features: (B, C, H, W).
        flow: (B, 2, H, W) float32, in pixels of this resolution.
    Returns:
        (B, C, H, W) in `features.dtype`.

    The original used grid_sample's pre-1.3 default (align_corners=True) and a validity mask obtained by
    warping ones: any sample whose bilinear footprint leaves the image (mask < 0.9999) becomes 0.
    Coordinates are float32 whatever the feature dtype.
    """
    batch, _, height, width = features.shape
    flow = flow.float()
    xs = torch.arange(width, device=flow.device, dtype=torch.float32).view(1, 1, width).expand(batch, height, width)
    ys = torch.arange(height, device=flow.device, dtype=torch.float32).view(1, height, 1).expand(batch, height, width)
    sample_x = xs + flow[:, 0]
    sample_y = ys + flow[:, 1]
    grid = torch.stack(
        (2.0 * sample_x / max(width - 1, 1) - 1.0, 2.0 * sample_y / max(height - 1, 1) - 1.0), dim=-1
    )
    features32 = features.float()
    warped = F.grid_sample(features32, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    ones = torch.ones((batch, 1, height, width), device=flow.device, dtype=torch.float32)
    coverage = F.grid_sample(ones, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    valid = (coverage >= 0.9999).to(torch.float32)
    return (warped * valid).to(features.dtype)


class PWCNet(nn.Module):
    """Frame pair (B, 6, H, W) = cat(frame0, frame1) -> flow 0->1 (B, 2, H/4, W/4) in pixels / 20.

    H and W must be multiples of 64.  Runs in the parameters' dtype; warping and correlation run in
    float32 (pixel coordinates and the channel-mean reduction), see `backward_warp` and `_correlate`.
    """

    def __init__(self) -> None:
        super().__init__()
        in_channels = 3
        for level, width in enumerate(PYRAMID_WIDTHS, start=1):
            if level < 6:
                self.add_module(f"conv{level}a", conv_lrelu(in_channels, width, stride=2))
                self.add_module(f"conv{level}aa", conv_lrelu(width, width))
            else:  # level 6 registers its stride-2 conv as "aa" (original naming)
                self.add_module("conv6aa", conv_lrelu(in_channels, width, stride=2))
                self.add_module("conv6a", conv_lrelu(width, width))
            self.add_module(f"conv{level}b", conv_lrelu(width, width))
            in_channels = width

        for level in (6, 5, 4, 3, 2):
            channels = self._decoder_in_channels(level)
            for index, growth in enumerate(DENSE_GROWTH):
                self.add_module(f"conv{level}_{index}", conv_lrelu(channels, growth))
                channels += growth
            self.add_module(f"predict_flow{level}", predict_flow(channels))
            self.add_module(f"deconv{level}", upconv(2, 2))  # deconv2 exists in the checkpoint but is unused
            if level > 2:
                self.add_module(f"upfeat{level}", upconv(channels, 2))

        channels = self._decoder_in_channels(2) + sum(DENSE_GROWTH)
        for index, (width, dilation) in enumerate(zip(REFINE_WIDTHS, REFINE_DILATIONS), start=1):
            self.add_module(f"dc_conv{index}", conv_lrelu(channels, width, dilation=dilation))
            channels = width
        self.dc_conv7 = predict_flow(channels)
        self.op_impl = "auto"  # implementation of the correlation op ("auto" | "compiled" | "ref")

    @staticmethod
    def _decoder_in_channels(level: int) -> int:
        if level == 6:
            return CORRELATION_CHANNELS
        # [correlation, frame-0 features, upsampled flow, upsampled decoder features]
        return CORRELATION_CHANNELS + PYRAMID_WIDTHS[level - 1] + 2 + 2

    def pyramid(self, frame: torch.Tensor) -> list[torch.Tensor]:
        """One frame's feature pyramid, levels 1..6 (index 0 = level 1), for (B, 3, H, W) frames. It
        depends on the frame alone, so a video's frames need it once each (`decode` pairs them)."""
        features = []
        x = frame
        for level in range(1, 7):
            if level < 6:
                x = getattr(self, f"conv{level}b")(getattr(self, f"conv{level}aa")(getattr(self, f"conv{level}a")(x)))
            else:
                x = self.conv6b(self.conv6a(self.conv6aa(x)))
            features.append(x)
        return features

    def _dense_decoder(self, level: int, x: torch.Tensor) -> torch.Tensor:
        # Each conv's output is concatenated in front of its input (original order: new features first).
        for index in range(len(DENSE_GROWTH)):
            x = torch.cat((getattr(self, f"conv{level}_{index}")(x), x), dim=1)
        return x

    def _correlate(self, features0: torch.Tensor, features1: torch.Tensor) -> torch.Tensor:
        # The channel mean is a reduction: computed in float32, then back to the conv dtype.
        cost = correlation(
            features0.float().contiguous(),
            features1.float().contiguous(),
            max_displacement=MAX_DISPLACEMENT,
            impl=self.op_impl,
        )
        return F.leaky_relu(cost, 0.1).to(features0.dtype)

    def decode(self, pyramid0: list[torch.Tensor], pyramid1: list[torch.Tensor]) -> torch.Tensor:
        """The flow 0->1 (B, 2, H/4, W/4) in pixels / 20 from the two frames' pyramids."""
        x = self._dense_decoder(6, self._correlate(pyramid0[5], pyramid1[5]))
        flow = self.predict_flow6(x)
        up_flow = self.deconv6(flow)
        up_features = self.upfeat6(x)
        for level in (5, 4, 3, 2):
            warped1 = backward_warp(pyramid1[level - 1], up_flow.float() * WARP_SCALE[level])
            cost = self._correlate(pyramid0[level - 1], warped1)
            x = self._dense_decoder(level, torch.cat((cost, pyramid0[level - 1], up_flow, up_features), dim=1))
            flow = getattr(self, f"predict_flow{level}")(x)
            if level > 2:
                up_flow = getattr(self, f"deconv{level}")(flow)
                up_features = getattr(self, f"upfeat{level}")(x)

        x = self.dc_conv4(self.dc_conv3(self.dc_conv2(self.dc_conv1(x))))
        return flow + self.dc_conv7(self.dc_conv6(self.dc_conv5(x)))

    def forward(self, frame_pair: torch.Tensor) -> torch.Tensor:
        return self.decode(self.pyramid(frame_pair[:, :3]), self.pyramid(frame_pair[:, 3:]))
