"""The weight-free interpolation engine (the default): optical flow, DAIN-style projection, occlusion-aware blend.

Per pair of frames (computed once, shared by every t):
  1. Dense optical flow in both directions with OpenCV's DIS (optionally with variational refinement),
     on grey frames, at a reduced resolution for large frames.
  2. A forward-backward consistency check per direction. It gives each source pixel a splat weight for
     the projection (it stands in for DAIN's inverse depth: when two source pixels land on one target,
     the one whose motion is confirmed by the opposite flow wins; pixels about to be covered lose).

Per timestep t:
  3. `depth_flow_projection` of t*F01 and (1-t)*F10 to time t, with hole filling: flows from t back to
     each frame (ANATOMY.md section 2.1).
  4. Backward warps of both frames along the projected flows.
  5. A blend weighted by (1-t, t) and by each frame's visibility at time t: a target pixel that no
     source pixel of frame k reached (a projection hole) is content uncovered in frame k, so frame k
     contributes little there.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from dainctl import kernels
from dainctl.errors import EngineError

_DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


class FlowEngine:
    """Weight-free interpolation engine; implements `dainctl.engines.base.Engine`.

    Options (keyword-only):
      device: "cpu" or "cuda" (projection, warps and blend run there; the flow runs on the CPU).
      fp16: store the warped frames in half precision on CUDA (flows and accumulators stay float32).
      preset: DIS preset, "ultrafast" | "fast" | "medium".
      finest_scale: finest pyramid level DIS refines to (0 = full resolution of the flow image);
        None keeps the preset's value.
      refine_iterations: variational refinement iterations per pyramid level (0 = off).
      max_flow_side: frames whose longer side exceeds this are downscaled for flow, consistency
        and projection; the projected flows are upsampled and the warps and blend run at full size.
      consistency_scale: forward-backward error (pixels) at which a source pixel's splat weight halves.
      occlusion_strength: how far a projection hole lowers that frame's share of the blend (0 = plain
        (1-t, t) blend, 1 = the frame is dropped where the other one is visible).
    """

    name = "flow"

    def __init__(
        self,
        *,
        device: str = "cpu",
        fp16: bool = False,
        preset: str = "medium",
        finest_scale: int | None = None,
        refine_iterations: int = 5,
        max_flow_side: int = 1024,
        consistency_scale: float = 1.0,
        occlusion_strength: float = 0.9,
        hole_blur: int = 1,
    ):
        if preset not in _DIS_PRESETS:
            raise EngineError(f"unknown flow preset {preset!r} (choose from {', '.join(_DIS_PRESETS)})")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise EngineError("device cuda requested but CUDA is not available")
        self.device = torch.device(device)
        self.dtype = torch.float16 if (fp16 and self.device.type == "cuda") else torch.float32
        self.preset = preset
        self.finest_scale = finest_scale
        self.refine_iterations = refine_iterations
        self.max_flow_side = max_flow_side
        self.consistency_scale = consistency_scale
        self.occlusion_strength = occlusion_strength
        self.hole_blur = hole_blur

    def _dis(self) -> "cv2.DISOpticalFlow":
        dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[self.preset])
        if self.finest_scale is not None:
            dis.setFinestScale(self.finest_scale)
        dis.setVariationalRefinementIterations(self.refine_iterations)
        return dis

    def _grey(self, frame: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
        """(3,H,W) float RGB -> (h,w) uint8 luma at `size` = (w, h)."""
        rgb = (frame.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if (grey.shape[1], grey.shape[0]) != size:
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        return grey

    def pair_flows(self, frame0: torch.Tensor, frame1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Flows F01 and F10 at the work resolution, each (1,2,h,w) float32, and the work/full scale."""
        height, width = frame0.shape[1:]
        scale = min(1.0, self.max_flow_side / max(height, width))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        grey0, grey1 = self._grey(frame0, size), self._grey(frame1, size)
        dis = self._dis()
        flow01 = dis.calc(grey0, grey1, None)
        flow10 = dis.calc(grey1, grey0, None)
        to_tensor = lambda f: torch.from_numpy(f).permute(2, 0, 1).unsqueeze(0).contiguous()
        return to_tensor(flow01), to_tensor(flow10), scale

    def _splat_weight(self, flow_ab: torch.Tensor, flow_ba: torch.Tensor) -> torch.Tensor:
        """Splat weight in (0, 1] per source pixel of frame a from forward-backward consistency, (1,1,h,w)."""
        returned = kernels.backward_warp(flow_ba, flow_ab)
        error_sq = (flow_ab + returned).square().sum(1, keepdim=True)
        return 1.0 / (1.0 + error_sq / (self.consistency_scale**2)) + 1e-6

    def interpolate(
        self, frame0: torch.Tensor, frame1: torch.Tensor, timesteps: Sequence[float]
    ) -> list[torch.Tensor]:
        """frame0, frame1: (3,H,W) float32 RGB in [0,1] on the CPU -> one (3,H,W) float32 frame per t."""
        height, width = frame0.shape[1:]
        flow01, flow10, scale = self.pair_flows(frame0, frame1)
        flow01, flow10 = flow01.to(self.device), flow10.to(self.device)
        weight0 = self._splat_weight(flow01, flow10)
        weight1 = self._splat_weight(flow10, flow01)
        images = torch.stack([frame0, frame1]).to(self.device, self.dtype)
        outputs = []
        for t in timesteps:
            t = float(t)
            proj_t0, hole0 = self._project(t * flow01, weight0)
            proj_t1, hole1 = self._project((1.0 - t) * flow10, weight1)
            flows_t = torch.cat([proj_t0, proj_t1])
            holes = torch.cat([hole0, hole1])
            if scale != 1.0:
                flows_t = F.interpolate(flows_t, size=(height, width), mode="bilinear", align_corners=False)
                flows_t = flows_t / scale
                holes = F.interpolate(holes, size=(height, width), mode="bilinear", align_corners=False)
            warped = kernels.backward_warp(images, flows_t.to(self.dtype)).float()
            visibility = 1.0 - self.occlusion_strength * holes
            blend = torch.tensor([1.0 - t, t], device=self.device).view(2, 1, 1, 1) * visibility
            frame_t = (warped * blend).sum(0) / blend.sum(0).clamp_min(1e-6)
            outputs.append(frame_t.clamp_(0.0, 1.0).cpu())
        return outputs

    def _project(self, flow: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected flow (1,2,h,w) with holes filled, and the hole mask (1,1,h,w) float32 in [0,1]."""
        projected = kernels.depth_flow_projection(flow, weight, fill_holes=False)
        filled = kernels.depth_flow_projection(flow, weight, fill_holes=True)
        # The unfilled projection is exactly zero where no source pixel landed.
        hole = (projected == 0).all(1, keepdim=True).float()
        if self.hole_blur > 0:
            k = 2 * self.hole_blur + 1
            hole = F.avg_pool2d(hole, k, stride=1, padding=self.hole_blur, count_include_pad=False)
        return filled, hole
