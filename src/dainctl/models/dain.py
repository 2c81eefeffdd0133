"""DAIN (Depth-Aware video frame INterpolation, Bao et al., CVPR 2019), composed from its sub-networks.

Per frame pair, computed once (`DAIN.analyze_pair`):
  * PWC-Net flow in both directions, depth (MegaDepth log-depth), context features and the 4x4 kernels.
Per requested time t (`DAIN.synthesize`):
  * flows scaled to t and upsampled x4, depth-aware flow projection (hole filling on), adaptive warping of
    both frames and both context tensors, the blend `(1-t)*warped0 + t*warped1`, and the rectifier's
    residual added to the blend.

Attribute names (`initScaleNets_filter`, `ctxNet`, `flownets`, ...) are the original's, because they are
the checkpoint's key prefixes; the properties below give them domain names.

Precision policy (the model runs its convolutions in the dtype of its parameters, fp32 or a reduced
dtype; everything listed here is float32 whatever that dtype is):
  * PWC warping coordinates and the correlation's channel mean (see `pwcnet.py`);
  * the flow scaling, x4 upsampling and projection (pixel coordinates and splat accumulators);
  * the log-depth and its exponent `1e-6 + 1/exp(d)` (exp of a reduced-precision value loses the
    depth ordering the projection relies on);
  * the kernels, context tensors and the adaptive warps (the ops' arithmetic is float32);
  * the blend and the residual addition.
The rectifier input is cast to the conv dtype for the 437-channel convs, the most expensive stage.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dainctl.kernels import depth_flow_projection, filter_interpolation
from dainctl.profiling import section
from dainctl.models.context import ContextNet
from dainctl.models.kernelnet import KernelHead, KernelTrunk
from dainctl.models.megadepth import MegaDepth
from dainctl.models.pwcnet import PWCNet
from dainctl.models.rectifier import Rectifier

FLOW_SCALE = 20.0  # PWC-Net predicts flow / 20
FLOW_UPSAMPLE = 4  # PWC-Net predicts at 1/4 resolution
DEPTH_WEIGHT_EPS = 1e-6
SIZE_MULTIPLE = 64  # padded frames must be multiples of this (PWC-Net's six stride-2 levels)


@dataclass
class PairAnalysis:
    """What DAIN computes once per frame pair. Frames are padded; B is the batch of pairs.

    frame0, frame1: (B, 3, H, W) float32, RGB in [0, 1].
    flow01, flow10: (B, 2, H/4, W/4) float32, raw PWC-Net output (pixels / 20), 0->1 and 1->0.
    log_depth0, log_depth1: (B, 1, H, W) float32, MegaDepth log-depth.
    projection_weight0, projection_weight1: (B, 1, H, W) float32, `1e-6 + 1/exp(log_depth)`.
    context0, context1: (B, 196, H, W) float32, [frame RGB, 3x64 features, log-depth].
    kernels0, kernels1: (B, 16, H, W) float32, raw 4x4 kernels (channel 4*row + col).
    """

    frame0: torch.Tensor
    frame1: torch.Tensor
    flow01: torch.Tensor
    flow10: torch.Tensor
    log_depth0: torch.Tensor
    log_depth1: torch.Tensor
    projection_weight0: torch.Tensor
    projection_weight1: torch.Tensor
    context0: torch.Tensor
    context1: torch.Tensor
    kernels0: torch.Tensor
    kernels1: torch.Tensor


@dataclass
class Synthesis:
    """One intermediate frame at time t, all (B, C, H, W) float32 at padded resolution.

    flow_t0, flow_t1: projected flows from t to frame 0 / frame 1 (C = 2, pixels).
    warped0, warped1: adaptively warped frames 0 and 1 (C = 3; the original's ref0 / ref2).
    blend: `(1-t)*warped0 + t*warped1` (C = 3).
    frame: `blend + rectifier residual`, unclipped (C = 3).
    """

    t: float
    flow_t0: torch.Tensor
    flow_t1: torch.Tensor
    warped0: torch.Tensor
    warped1: torch.Tensor
    blend: torch.Tensor
    frame: torch.Tensor


def scale_flow_to_time(raw_flow: torch.Tensor, t: float) -> torch.Tensor:
    """Raw PWC flow (B, 2, H/4, W/4) -> full-resolution flow in pixels times t, (B, 2, H, W) float32.

    Same operation order as the original (`20 * flow`, then `* t`, then bilinear x4 with
    align_corners=False): the order moves results by an ulp, which can flip a projection pixel.
    """
    scaled = (FLOW_SCALE * raw_flow.float()) * t
    return F.interpolate(scaled, scale_factor=FLOW_UPSAMPLE, mode="bilinear", align_corners=False)


def _check_padded(frame0: torch.Tensor, frame1: torch.Tensor) -> None:
    height, width = frame0.shape[-2:]
    if frame0.shape != frame1.shape or height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
        raise ValueError(
            f"DAIN needs two equally sized frames padded to multiples of {SIZE_MULTIPLE}, "
            f"got {tuple(frame0.shape)} and {tuple(frame1.shape)}"
        )


class DAIN(nn.Module):
    """The DAIN network; `forward(frame0, frame1, timesteps)` returns one unclipped frame per t.

    Inputs are padded frames (B, 3, H, W) float32 RGB in [0, 1] with H, W multiples of 64; see
    `dainctl.models.padding` for the original's padding rule.
    """

    def __init__(self) -> None:
        super().__init__()
        # Registration order = the checkpoint's key order.
        self.initScaleNets_filter = KernelTrunk()
        self.initScaleNets_filter1 = KernelHead()
        self.initScaleNets_filter2 = KernelHead()
        self.ctxNet = ContextNet()
        self.rectifyNet = Rectifier()
        self.flownets = PWCNet()
        self.depthNet = MegaDepth()
        self._op_impl = "auto"

    @property
    def op_impl(self) -> str:
        """Implementation of the custom ops (dainctl.kernels): "auto" | "compiled" | "ref"."""
        return self._op_impl

    @op_impl.setter
    def op_impl(self, impl: str) -> None:
        self._op_impl = impl
        self.flownets.op_impl = impl

    # Domain names for the checkpoint-named children.
    @property
    def kernel_trunk(self) -> KernelTrunk:
        return self.initScaleNets_filter

    @property
    def kernel_heads(self) -> tuple[KernelHead, KernelHead]:
        return self.initScaleNets_filter1, self.initScaleNets_filter2

    @property
    def context_net(self) -> ContextNet:
        return self.ctxNet

    @property
    def rectifier(self) -> Rectifier:
        return self.rectifyNet

    @property
    def flow_net(self) -> PWCNet:
        return self.flownets

    @property
    def depth_net(self) -> MegaDepth:
        return self.depthNet

    @staticmethod
    def _conv_input(x: torch.Tensor, subnetwork: nn.Module) -> torch.Tensor:
        """`x` in the dtype (and, on CUDA, the memory format) of `subnetwork`'s weights.

        Each sub-network may run in its own dtype (the engine's reduced-precision policy keeps some
        of them in float32).
        """
        weight = next(subnetwork.parameters())
        x = x.to(weight.dtype)
        if x.is_cuda and weight.dim() == 4 and weight.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def pair_flows(self, frame0: torch.Tensor, frame1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """PWC-Net's raw flows (flow01, flow10), each (B, 2, H/4, W/4) float32, for padded frames
        (B, 3, H, W): both directions, (I0, I1) and (I1, I0), in one batch."""
        _check_padded(frame0, frame1)
        frame0 = frame0.float()
        frame1 = frame1.float()
        with section("flow"):
            pairs = torch.cat((torch.cat((frame0, frame1), dim=1), torch.cat((frame1, frame0), dim=1)), dim=0)
            flows = self.flownets(self._conv_input(pairs, self.flownets)).float()
        flow01, flow10 = flows.split(frame0.shape[0], dim=0)
        return flow01, flow10

    def analyze_pair(
        self,
        frame0: torch.Tensor,
        frame1: torch.Tensor,
        flows: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> PairAnalysis:
        """Flows, depth, context and kernels for padded frames (B, 3, H, W) float32.

        flows: (flow01, flow10) as `pair_flows` returns them, each (B, 2, H/4, W/4), to use instead of
        running PWC-Net (the tiled engine passes windows of the whole frame's flows).
        """
        _check_padded(frame0, frame1)
        frame0 = frame0.float()
        frame1 = frame1.float()
        batch = frame0.shape[0]
        both = torch.cat((frame0, frame1), dim=0)

        if flows is None:
            flow01, flow10 = self.pair_flows(frame0, frame1)
        else:
            flow01, flow10 = (flow.float() for flow in flows)
            expected = (batch, 2, frame0.shape[-2] // FLOW_UPSAMPLE, frame0.shape[-1] // FLOW_UPSAMPLE)
            if tuple(flow01.shape) != expected or tuple(flow10.shape) != expected:
                raise ValueError(
                    f"given flows must be shaped {expected}, got {tuple(flow01.shape)} and {tuple(flow10.shape)}"
                )

        with section("depth"):
            log_depth0, log_depth1 = self.depthNet(self._conv_input(both, self.depthNet)).float().split(batch, dim=0)
            projection_weight0 = DEPTH_WEIGHT_EPS + 1.0 / torch.exp(log_depth0)
            projection_weight1 = DEPTH_WEIGHT_EPS + 1.0 / torch.exp(log_depth1)

        with section("context"):
            features0, features1 = self.ctxNet(self._conv_input(both, self.ctxNet)).float().split(batch, dim=0)
            # ContextNet's first 3 channels are its input frame; take the float32 frame itself so that
            # the warped frames keep full precision when the convs run in a reduced dtype. The context
            # carries the raw log-depth (not its inverse) as a 196th channel.
            context0 = torch.cat((frame0, features0[:, 3:], log_depth0), dim=1)
            context1 = torch.cat((frame1, features1[:, 3:], log_depth1), dim=1)

        with section("kernels"):
            trunk = self.initScaleNets_filter(
                self._conv_input(torch.cat((frame0, frame1), dim=1), self.initScaleNets_filter)
            )
            kernels0 = self.initScaleNets_filter1(self._conv_input(trunk, self.initScaleNets_filter1)).float()
            kernels1 = self.initScaleNets_filter2(self._conv_input(trunk, self.initScaleNets_filter2)).float()

        return PairAnalysis(
            frame0=frame0,
            frame1=frame1,
            flow01=flow01,
            flow10=flow10,
            log_depth0=log_depth0,
            log_depth1=log_depth1,
            projection_weight0=projection_weight0.contiguous(),
            projection_weight1=projection_weight1.contiguous(),
            context0=context0.contiguous(),
            context1=context1.contiguous(),
            kernels0=kernels0.contiguous(),
            kernels1=kernels1.contiguous(),
        )

    def synthesize(self, pair: PairAnalysis, t: float) -> Synthesis:
        """The frame at time t in (0, 1) from a pair analysis; see `Synthesis` for the outputs."""
        t = float(t)
        with section("projection_warping"):
            flow0t = scale_flow_to_time(pair.flow01, t).contiguous()
            flow1t = scale_flow_to_time(pair.flow10, 1.0 - t).contiguous()
            flow_t0 = depth_flow_projection(flow0t, pair.projection_weight0, fill_holes=True, impl=self.op_impl)
            flow_t1 = depth_flow_projection(flow1t, pair.projection_weight1, fill_holes=True, impl=self.op_impl)

            # The context's first three channels are the frame itself and the warp treats channels
            # independently, so one warp of the context also yields the warped frame.
            warped_context0 = filter_interpolation(pair.context0, flow_t0, pair.kernels0, impl=self.op_impl)
            warped_context1 = filter_interpolation(pair.context1, flow_t1, pair.kernels1, impl=self.op_impl)
            warped0 = warped_context0[:, :3]
            warped1 = warped_context1[:, :3]
            blend = warped0 * (1.0 - t) + warped1 * t  # at t = 0.5 this equals the original's ref0/2 + ref2/2

        with section("synthesis"):
            rectifier_input = torch.cat(
                (blend, warped0, warped1, flow_t0, flow_t1, pair.kernels0, pair.kernels1, warped_context0,
                 warped_context1),
                dim=1,
            )
            residual = self.rectifyNet(self._conv_input(rectifier_input, self.rectifyNet)).float()
        return Synthesis(
            t=t,
            flow_t0=flow_t0,
            flow_t1=flow_t1,
            warped0=warped0,
            warped1=warped1,
            blend=blend,
            frame=residual + blend,
        )

    def forward(self, frame0: torch.Tensor, frame1: torch.Tensor, timesteps: list[float]) -> list[torch.Tensor]:
        """Padded frames (B, 3, H, W) float32 -> one unclipped (B, 3, H, W) float32 frame per t."""
        pair = self.analyze_pair(frame0, frame1)
        return [self.synthesize(pair, t).frame for t in timesteps]
