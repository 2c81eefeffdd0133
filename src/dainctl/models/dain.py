"""DAIN (Depth-Aware video frame INterpolation, Bao et al., CVPR 2019), composed from its sub-networks.

Per frame, once (whatever frame pair it belongs to):
  * PWC-Net's feature pyramid (`flow_pyramid`), MegaDepth's log-depth and the context features
    (`frame_features`).
Per frame pair (`pair_flows_from`, `pair_kernels`; `analyze_pair` composes everything):
  * PWC-Net's decoders in both directions, and the 4x4 kernels.
Per requested time t (`synthesize`, batched over pairs and times):
  * flows scaled to t and upsampled x4, depth-aware flow projection (hole filling on), adaptive warping of
    both frames and both context tensors, the blend `(1-t)*warped0 + t*warped1`, and the rectifier's
    residual added to the blend.

Attribute names (`initScaleNets_filter` the kernel trunk, `initScaleNets_filter1/2` its two heads, `ctxNet`
the context net, `rectifyNet`, `flownets` PWC-Net, `depthNet` MegaDepth) are the original's, because
they are the checkpoint's key prefixes.

Precision: the model holds only maths. The convolution stacks run in whatever autocast region the
caller opens (`dainctl.precision.PrecisionPolicy.compute`); what must stay float32 is marked here with
`float32_region` and explicit casts (the policy module lists it): PWC-Net whole, the flow scaling and
upsampling, the projection, the depth exponent, the warps and the blend. Every output is float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dainctl.kernels import depth_flow_projection, filter_interpolation
from dainctl.precision import conv_input, float32_region
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
class FrameFeatures:
    """What DAIN computes once per (padded) frame besides PWC-Net's pyramid; B frames.

    log_depth: (B, 1, H, W) float32, MegaDepth log-depth.
    projection_weight: (B, 1, H, W) float32, `1e-6 + 1/exp(log_depth)`.
    context: (B, 196, H, W) float32, [frame RGB, 3x64 features, log-depth].
    """

    log_depth: torch.Tensor
    projection_weight: torch.Tensor
    context: torch.Tensor

    def split(self, size: int) -> list["FrameFeatures"]:
        parts = zip(*(tensor.split(size, dim=0) for tensor in (self.log_depth, self.projection_weight, self.context)))
        return [FrameFeatures(*part) for part in parts]

    @staticmethod
    def cat(items: list["FrameFeatures"]) -> "FrameFeatures":
        if len(items) == 1:
            return items[0]
        return FrameFeatures(*(torch.cat(tensors, dim=0) for tensors in
                               zip(*((i.log_depth, i.projection_weight, i.context) for i in items))))


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

    @staticmethod
    def of(frame0, frame1, flow01, flow10, features0: FrameFeatures, features1: FrameFeatures, kernels0,
           kernels1) -> "PairAnalysis":
        return PairAnalysis(
            frame0=frame0, frame1=frame1, flow01=flow01, flow10=flow10,
            log_depth0=features0.log_depth, log_depth1=features1.log_depth,
            projection_weight0=features0.projection_weight, projection_weight1=features1.projection_weight,
            context0=features0.context, context1=features1.context, kernels0=kernels0, kernels1=kernels1,
        )

    def select(self, index: torch.Tensor | list[int]) -> "PairAnalysis":
        """The analysis of the batch items `index` (repeats allowed: one item per (pair, t))."""
        index = torch.as_tensor(index, device=self.frame0.device)
        return PairAnalysis(**{name: getattr(self, name).index_select(0, index) for name in self.__dataclass_fields__})


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


def scale_flow_to_time(raw_flow: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
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

    def flow_pyramid(self, frame: torch.Tensor) -> list[torch.Tensor]:
        """PWC-Net's feature pyramid of padded frames (B, 3, H, W), float32 (PWC-Net runs float32)."""
        _check_padded(frame, frame)
        with section("flow"), float32_region(frame.device.type):
            return self.flownets.pyramid(frame.float())

    def pair_flows_from(
        self, pyramid0: list[torch.Tensor], pyramid1: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """PWC-Net's raw flows (flow01, flow10), each (B, 2, H/4, W/4) float32, from the two frames'
        pyramids: both directions, (I0, I1) and (I1, I0), decoded in one batch."""
        batch = pyramid0[0].shape[0]
        with section("flow"), float32_region(pyramid0[0].device.type):
            first = [torch.cat((a, b), dim=0) for a, b in zip(pyramid0, pyramid1)]
            second = [torch.cat((b, a), dim=0) for a, b in zip(pyramid0, pyramid1)]
            flows = self.flownets.decode(first, second).float()
        flow01, flow10 = flows.split(batch, dim=0)
        return flow01, flow10

    def pair_flows(self, frame0: torch.Tensor, frame1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """PWC-Net's raw flows (flow01, flow10) for padded frames (B, 3, H, W)."""
        _check_padded(frame0, frame1)
        pyramids = self.flow_pyramid(torch.cat((frame0, frame1), dim=0))
        batch = frame0.shape[0]
        return self.pair_flows_from([p[:batch] for p in pyramids], [p[batch:] for p in pyramids])

    def frame_features(self, frame: torch.Tensor) -> FrameFeatures:
        """Depth, projection weight and context of padded frames (B, 3, H, W), all float32."""
        _check_padded(frame, frame)
        frame = frame.float()
        with section("depth"):
            log_depth = self.depthNet(conv_input(frame)).float()
            with float32_region(frame.device.type):
                projection_weight = DEPTH_WEIGHT_EPS + 1.0 / torch.exp(log_depth)
        with section("context"):
            features = self.ctxNet(conv_input(frame)).float()
            # ContextNet's first 3 channels are its input frame; take the float32 frame itself so that
            # the warped frames keep full precision when the convs run in a reduced dtype. The context
            # carries the raw log-depth (not its inverse) as a 196th channel.
            context = torch.cat((frame, features[:, 3:], log_depth), dim=1)
        return FrameFeatures(log_depth, projection_weight.contiguous(), context.contiguous())

    def pair_kernels(self, frame0: torch.Tensor, frame1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The 4x4 kernels (kernels0, kernels1), each (B, 16, H, W) float32, of padded frames."""
        with section("kernels"):
            trunk = self.initScaleNets_filter(conv_input(torch.cat((frame0.float(), frame1.float()), dim=1)))
            kernels0 = self.initScaleNets_filter1(trunk).float()
            kernels1 = self.initScaleNets_filter2(trunk).float()
        return kernels0.contiguous(), kernels1.contiguous()

    def analyze_pair(
        self,
        frame0: torch.Tensor,
        frame1: torch.Tensor,
        flows: tuple[torch.Tensor, torch.Tensor] | None = None,
        features: tuple[FrameFeatures, FrameFeatures] | None = None,
    ) -> PairAnalysis:
        """Flows, depth, context and kernels for padded frames (B, 3, H, W) float32.

        flows: (flow01, flow10) as `pair_flows` returns them, each (B, 2, H/4, W/4), to use instead of
        running PWC-Net (the tiled engine passes windows of the whole frame's flows). features: the two
        frames' `frame_features`, when already computed.
        """
        _check_padded(frame0, frame1)
        frame0 = frame0.float()
        frame1 = frame1.float()
        batch = frame0.shape[0]
        if flows is None:
            flow01, flow10 = self.pair_flows(frame0, frame1)
        else:
            flow01, flow10 = (flow.float() for flow in flows)
            expected = (batch, 2, frame0.shape[-2] // FLOW_UPSAMPLE, frame0.shape[-1] // FLOW_UPSAMPLE)
            if tuple(flow01.shape) != expected or tuple(flow10.shape) != expected:
                raise ValueError(
                    f"given flows must be shaped {expected}, got {tuple(flow01.shape)} and {tuple(flow10.shape)}"
                )
        if features is None:
            both = self.frame_features(torch.cat((frame0, frame1), dim=0))
            features = both.split(batch)
        kernels0, kernels1 = self.pair_kernels(frame0, frame1)
        return PairAnalysis.of(frame0, frame1, flow01, flow10, features[0], features[1], kernels0, kernels1)

    def synthesize(self, pair: PairAnalysis, t: float | torch.Tensor) -> Synthesis:
        """The frame at time t in (0, 1) from a pair analysis; see `Synthesis` for the outputs.

        t: one time for the whole batch, or a (B,) tensor with one time per batch item.
        """
        if isinstance(t, torch.Tensor):
            t_map = t.to(pair.flow01.device, torch.float32).view(-1, 1, 1, 1)
        else:
            t_map = float(t)
        device_type = pair.flow01.device.type
        with section("projection_warping"), float32_region(device_type):
            flow0t = scale_flow_to_time(pair.flow01, t_map).contiguous()
            flow1t = scale_flow_to_time(pair.flow10, 1.0 - t_map).contiguous()
            flow_t0 = depth_flow_projection(flow0t, pair.projection_weight0, fill_holes=True, impl=self.op_impl)
            flow_t1 = depth_flow_projection(flow1t, pair.projection_weight1, fill_holes=True, impl=self.op_impl)

            # The context's first three channels are the frame itself and the warp treats channels
            # independently, so one warp of the context also yields the warped frame.
            warped_context0 = filter_interpolation(pair.context0, flow_t0, pair.kernels0, impl=self.op_impl)
            warped_context1 = filter_interpolation(pair.context1, flow_t1, pair.kernels1, impl=self.op_impl)
            warped0 = warped_context0[:, :3]
            warped1 = warped_context1[:, :3]
            blend = warped0 * (1.0 - t_map) + warped1 * t_map  # at t = 0.5: the original's ref0/2 + ref2/2

        with section("synthesis"):
            rectifier_input = torch.cat(
                (blend, warped0, warped1, flow_t0, flow_t1, pair.kernels0, pair.kernels1, warped_context0,
                 warped_context1),
                dim=1,
            )
            residual = self.rectifyNet(conv_input(rectifier_input)).float()
        return Synthesis(
            t=t if isinstance(t, torch.Tensor) else float(t),
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
