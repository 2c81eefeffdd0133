"""The weight-free interpolation engine (the default): optical flow, DAIN-style projection, occlusion-aware blend.

Per pair of frames (computed once, shared by every t):
  1. Dense optical flow in both directions with OpenCV's DIS, on a work copy of the frames (full size for
     small frames; long side capped for big ones). In the "high" profile DIS also runs on each colour
     channel, and every pixel keeps the candidate flow whose match in the other frame is most
     photo-consistent over a small window (colour edges that the grey image flattens get their own
     flow); the "fast" profile uses the grey flow alone, at a coarser finest pyramid level.
     The balanced profile runs DIS to the work image's own pixels forward only: its backward flow is,
     per pixel, the more photo-consistent of the forward flow projected onto frame 1 and DIS stopped one
     pyramid level above (`FlowSettings.backward_finest_scale`).
  2. A forward-backward consistency check per direction gives each source pixel a splat weight for the
     projection. It stands in for DAIN's inverse depth: when two source pixels land on one target, the
     one whose motion the opposite flow confirms wins, and pixels that are about to be covered lose.

Per timestep t:
  3. `depth_flow_projection` of t*F01 and (1-t)*F10 to time t, with hole filling: flows from t back to
     each frame (DAIN's DepthFlowProjection, in src/dainctl/kernels/projection.py). Where both frames
     see a pixel, the two projections estimate one motion; they are averaged so both warps land on the
     same point.
  4. Backward warps of both full-size frames along the projected flows (upsampled from the work size),
     read bicubically (`kernels.bicubic_warp`, Catmull-Rom): a bilinear read blurs every fractional
     displacement, and that blur cost 0.6-0.8 dB on Middlebury (docs/benchmarks.md, 2026-12-04).
  5. A blend weighted by (1-t, t) and by each frame's visibility at time t: a target pixel that no source
     pixel of frame k reached (a projection hole) is content frame k does not show, so frame k
     contributes little there.

Precision: flows, splat weights, projection and blend weights are float32; on CUDA with fp16 the frames
are stored and warped in half precision and blended in float32.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from dainctl import kernels
from dainctl.engines.base import EngineBase, Frame, PairJob, Window
from dainctl.errors import EngineError
from dainctl.precision import PrecisionPolicy
from dainctl.profiling import section

PROFILES = ("auto", "high", "balanced", "fast")
# The photo-consistency scale of `FlowEngine._derived_backward`'s projection weights (mean absolute RGB
# difference, in [0, 1]): 0.02, 0.05 and 0.15 measured within 0.02 dB of each other (docs/benchmarks.md,
# 2026-12-06).
DERIVED_PHOTO_SCALE = 0.02


@dataclass(frozen=True)
class FlowSettings:
    """DIS settings of one profile (see OpenCV's DISOpticalFlow)."""

    finest_scale: int  # finest pyramid level DIS refines to; 0 = the work image itself
    patch_stride: int
    gradient_descent_iterations: int
    refine_iterations: int  # variational refinement iterations per level
    colour_candidates: bool  # also run DIS per colour channel and keep the most photo-consistent flow
    # More candidates from the same images seen differently: DIS is neither mirror- nor shift-invariant
    # (its patch grid and coarse-to-fine pyramid), so the flows of mirrored frames, and of frames moved
    # by one pixel, are independent estimates that are often right where the direct ones fail.
    mirrored_candidates: bool = False
    shifted_candidates: bool = False
    # Average the frame with the one made from the mirrored pair (mirrored back): errors of the two are
    # partly independent, so the mean is closer to the truth.
    mirror_average: bool = False
    # Work size: the long side is capped at this many pixels for flow, consistency and projection (the
    # warps and blend always run at full size); None = the frame's own size.
    max_side: int | None = None
    min_side: int | None = None  # smaller frames are upscaled (bicubic) to this long side for the flow
    scale: float = 1.0  # work size / frame size below the cap (1 = the frame's own size)
    patch_size: int = 8
    variational_alpha: float | None = None  # None = OpenCV's default smoothness weight (20)
    # The backward flow (frame 1 -> frame 0) of a profile without candidates. None: DIS with these
    # settings, as the forward one. A level N: two candidates, kept per pixel by photo-consistency
    # (`_most_consistent`): the forward flow projected onto frame 1 (`_derived_backward`) and DIS stopped
    # at finest level N (the finest levels are most of DIS's time: 384x216, stride 3, level 0 15.0 ms,
    # level 1 3.3 ms on one core).
    backward_finest_scale: int | None = None


# "high" (2026-12-04, with the bicubic warp; docs/benchmarks.md): grey and colour candidates and their
# mirrored twins (16 DIS calls per pair, finest level 0, stride 2, 40 iterations, no variational
# refinement) at balanced's work size, 0.6 of the frame: 35.70 / 34.54 dB (Middlebury / UCF101) with
# grey_preference 0.9, 0.83-0.98 s per 640x480 pair on 2 cores; 0.59-0.60 s with the bicubic read
# vectorised across pixels and OpenCV's box means (the same dB; docs/benchmarks.md, ninth session). Its
# predecessor (full size, refinement, the shifted candidates and the mirror average: 48 DIS calls, 15 s
# per 640x480 pair) measured 35.02 / 34.48 with the bilinear warp; with the bicubic one the shifted
# candidates and the mirror average still add about 0.05 dB on UCF101 for twice to three times the
# time. Every profile warps its frames bicubically (the figures here are with the bicubic read unless
# they say otherwise).
# "balanced" came out of the frontier search of issue 11 (docs/benchmarks.md, 2026-12-01): the grey flow
# alone at 0.6 of the frame size, refined down to that work size's own pixels (finest level 0) and
# without variational refinement, which measured better there than with it: 34.57 / 34.26 dB (34.59 /
# 34.23 with the work images' exact area average, 2026-12-04; 35.41 / 34.33 with the bicubic warp, the
# same day). Its long side is capped at 384 (0.6 of 640: no Middlebury or UCF101 frame is capped) so
# that big frames stay cheap. Its backward flow (2026-12-06) is the better per pixel of DIS stopped at
# level 1 and the forward flow projected onto frame 1: one DIS call at level 0 per pair instead of two
# (15.0 + 3.3 ms instead of 2 x 15.0 at 384x216 on one core, 2.5 ms to derive and choose), 35.37 / 34.38
# dB (35.41 / 34.33 with two), large motion within 0.02 dB (docs/benchmarks.md, 2026-12-06).
# "fast" measured 34.28 / 33.43 dB (Middlebury / UCF101) at native size and 33.83 / 33.43 dB with the
# work size cap (long side 320, which halves Middlebury; 33.84 / 33.43 with the exact area average;
# 34.47 / 33.54 with the bicubic warp), for a flow many times cheaper.
PROFILE_SETTINGS = {
    "high": FlowSettings(finest_scale=0, patch_stride=2, gradient_descent_iterations=40, refine_iterations=0,
                         colour_candidates=True, mirrored_candidates=True, scale=0.6),
    "balanced": FlowSettings(finest_scale=0, patch_stride=3, gradient_descent_iterations=25, refine_iterations=0,
                             colour_candidates=False, scale=0.6, max_side=384, backward_finest_scale=1),
    "fast": FlowSettings(finest_scale=1, patch_stride=3, gradient_descent_iterations=25, refine_iterations=5,
                         colour_candidates=False, max_side=320),
}


# ------------------------------------------------------------------------------- auto: chosen by time
# The profiles auto chooses among, best quality first; the last one is the floor (and the one the
# calibration pair runs in).
AUTO_ORDER = ("high", "balanced", "fast")
# Cost model, measured on the reference machine (docs/benchmarks.md, 2026-12-01: 2-core AMD EPYC, one
# OpenCV/torch thread as the CLI runs there, `python benchmarks/auto_cost_model.py`): engine seconds per
# pair = flow seconds per work megapixel x the work size + warp seconds per frame megapixel x the frame
# size x the timesteps (projection, warps and blend); twice that with the mirror average. "high" (its
# DIS calls on the 2-thread pool) from 7.4-8.7 s per work megapixel measured beside balanced's 0.62 and
# fast's 0.29-0.31 on a machine of about the reference's speed (2026-12-04). The calibration on the
# first pair scales the model to the machine it runs on.
REFERENCE_FLOW_S_PER_MPX = {"high": 8.5, "balanced": 0.7, "fast": 0.32}
# 0.10 with the bilinear read (2026-12-01); the bicubic one adds two warps of 11-12 ms at 1280x720 on
# one thread to a render that fitted 0.052 s per megapixel (2026-12-04): 0.05 more in the reference's units.
# Its loop vectorised across pixels (ninth session) took the fitted warp cost from 0.074-0.103 (median
# 0.093) to 0.063-0.076 (median 0.067) on one machine, three alternating runs of the script: 0.72x.
REFERENCE_WARP_S_PER_MPX = 0.11
# auto's budget: engine seconds per new frame and frame megapixel. FFmpeg minterpolate (issue 2's
# settings) took 0.52-0.55 s per new frame and megapixel end to end on the idle reference machine at
# 640x360, 1280x720 and 1920x1080 (docs/benchmarks.md, 2026-12-01); auto spends at most 0.45 s in the
# engine. Decoding and encoding overlap the engine; the run's fixed costs do not: the process's start-up
# and the analysis pass (measured by the pipeline, `expect_run`) and the calibration pair's runs. They
# are spread over the run's new frames and taken off the budget of each, so a clip of a few seconds
# affords less per frame than a long one (at 640x360 on a 2-s clip, those costs of about 2-3 s are
# half the budget).
AUTO_BUDGET_S_PER_MPX = 0.45
# That is minterpolate's time per new frame at 2x. With more new frames per pair its time per new frame
# falls (part of its work is per pair of input frames), and so does auto's budget per new frame:
# minterpolate's time per pair, in units of its time at 2x, is MINTERPOLATE_PAIR_SHARE + (1 -
# MINTERPOLATE_PAIR_SHARE) x the new frames per pair. Measured (docs/benchmarks.md, 2026-12-06, 2-core
# AMD EPYC, 50-frame car-turn clips, x264 crf 18): FFmpeg 5.1.9 at 640x360 4.75 / 7.40 / 9.87 / 20.23 s at
# 2x / 3x / 4x / 8x (share 0.46), at 1280x720 18.28 / 41.18 s at 2x / 4x (0.37); FFmpeg 9.0.2 0.21 and
# 0.16. Without it auto ran the high profile on a 21-frame 720p clip at 4x: 20.6 s against
# minterpolate's 14.9 s.
MINTERPOLATE_PAIR_SHARE = 0.4


def minterpolate_frame_share(frames_per_pair: float) -> float:
    """minterpolate's time per new frame at `frames_per_pair` new frames per pair over its time at one."""
    frames = max(1.0, float(frames_per_pair))
    return MINTERPOLATE_PAIR_SHARE / frames + (1.0 - MINTERPOLATE_PAIR_SHARE)


def work_scale(height: int, width: int, settings: FlowSettings, max_flow_side: int | None = None) -> float:
    """Work size / frame size (<= 1): the long side capped at `max_flow_side` when given, else at the
    settings' `max_side`."""
    cap = max_flow_side if max_flow_side is not None else settings.max_side
    long_side = max(height, width)
    if settings.min_side is not None and long_side < settings.min_side and max_flow_side is None:
        return settings.min_side / long_side
    return min(1.0, settings.scale) if cap is None else min(1.0, settings.scale, cap / long_side)


def reference_seconds(height: int, width: int, timesteps: float, settings: FlowSettings,
                      max_flow_side: int | None = None) -> float:
    """Predicted engine seconds for one pair on the reference machine (the cost model above)."""
    profile = next(name for name, known in PROFILE_SETTINGS.items() if known is settings)
    frame_mpx = height * width / 1e6
    work_mpx = frame_mpx * work_scale(height, width, settings, max_flow_side) ** 2
    seconds = REFERENCE_FLOW_S_PER_MPX[profile] * work_mpx + REFERENCE_WARP_S_PER_MPX * frame_mpx * timesteps
    return seconds * (2 if settings.mirror_average else 1)


@dataclass(frozen=True)
class AutoChoice:
    """auto's decision for one frame size: the profile, its predicted engine seconds per new frame on this
    machine, and the budget it had to fit."""

    profile: str
    height: int
    width: int
    predicted_s_per_frame: float
    budget_s_per_frame: float
    speed_factor: float
    overhead_s_per_frame: float = 0.0
    frames_per_pair: float = 1.0

    @property
    def reason(self) -> str:
        fits = self.predicted_s_per_frame <= self.budget_s_per_frame
        better = AUTO_ORDER[: AUTO_ORDER.index(self.profile)]
        why = (f"the best profile predicted within the budget" if fits
               else "the cheapest profile; none is predicted within the budget")
        if better and fits:
            why += f" ({', '.join(better)} would not fit)"
        overhead = (f" after {self.overhead_s_per_frame:.3f} s per frame of start-up and calibration"
                    if self.overhead_s_per_frame > 0 else "")
        per_pair = (f" ({self.frames_per_pair:.3g} new frames per pair: minterpolate's time per new frame is "
                    f"{minterpolate_frame_share(self.frames_per_pair):.2f} of its time at 2x)"
                    if self.frames_per_pair > 1 else "")
        return (f"{why}: predicted {self.predicted_s_per_frame:.3f} s per new {self.width}x{self.height} frame, "
                f"budget {self.budget_s_per_frame:.3f} s{per_pair}{overhead}; this machine ran the calibration "
                f"pair at {self.speed_factor:.2f}x the reference machine's time")

    def as_dict(self) -> dict:
        return {"profile": self.profile, "width": self.width, "height": self.height,
                "predicted_s_per_frame": round(self.predicted_s_per_frame, 4),
                "budget_s_per_frame": round(self.budget_s_per_frame, 4),
                "overhead_s_per_frame": round(self.overhead_s_per_frame, 4),
                "speed_factor": round(self.speed_factor, 3), "frames_per_pair": round(self.frames_per_pair, 3),
                "reason": self.reason}


def choose_profile(height: int, width: int, timesteps: float, speed_factor: float, budget_s_per_mpx: float,
                   max_flow_side: int | None = None, overhead_s_per_frame: float = 0.0) -> AutoChoice:
    """The best profile of AUTO_ORDER whose predicted engine time per new frame (the reference cost
    model x `speed_factor`) fits `budget_s_per_mpx` x the frame's megapixels x
    `minterpolate_frame_share(timesteps)`, less `overhead_s_per_frame` (the run's fixed costs over its
    new frames); the last one otherwise."""
    budget = budget_s_per_mpx * height * width / 1e6 * minterpolate_frame_share(timesteps) - overhead_s_per_frame
    for profile in AUTO_ORDER:
        predicted = speed_factor * reference_seconds(height, width, timesteps, PROFILE_SETTINGS[profile],
                                                     max_flow_side) / max(1, timesteps)
        if predicted <= budget or profile == AUTO_ORDER[-1]:
            return AutoChoice(profile, height, width, predicted, budget, speed_factor, overhead_s_per_frame,
                              max(1.0, float(timesteps)))
    raise AssertionError("unreachable")


# Peak bytes per pixel of one pair: peak RSS growth of one pair measured on the CPU with
# `python benchmarks/memory_per_pixel.py flow` (docs/benchmarks.md): 159 MiB at 1280x720 (180 B/px;
# 142 B/px marginal from 360p to 1080p). It also counts OpenCV's DIS buffers, which stay on the CPU
# when the engine runs on CUDA, so it over-estimates the GPU share.
BYTES_PER_PIXEL = 180.0


@dataclass
class FlowMotion:
    """One pair's motion at the work size: flows F01, F10 (1,2,h,w) float32 in work pixels, splat
    weights (1,1,h,w), the settings they were made with, and the mirrored pair's motion (mirror average)."""

    settings: FlowSettings
    flow01: torch.Tensor
    flow10: torch.Tensor
    weight0: torch.Tensor
    weight1: torch.Tensor
    mirrored: "FlowMotion | None" = None


class FlowEngine(EngineBase):
    """Weight-free interpolation engine; implements the seam of `dainctl.engines.base`.

    load: the frame on the device (in the storage dtype) and, on first use, its work-size images for DIS
    (uint8 RGB and grey, on the CPU), cached per work size. motion: DIS flows in both directions and the
    splat weights, per pair. render: projection, warps and blend per t, for the whole frame or a window.

    Options (keyword-only):
      device: "cpu" or "cuda" (projection, warps and blend run there; DIS runs on the CPU).
      fp16: store and warp the frames in half precision on CUDA (ignored on the CPU).
      profile: "high", "fast", or "auto" (high up to `high_max_pixels` pixels per frame, fast above).
      high_max_pixels: frame area up to which "auto" picks the high profile.
      max_flow_side: in the fast profile, frames whose longer side exceeds this are downscaled for flow,
        consistency and projection; the projected flows are upsampled and the warps and blend run at
        full size. (The high profile always works at full size.)
      consistency_scale: forward-backward error (pixels) at which a source pixel's splat weight halves.
      occlusion_strength: how far a projection hole lowers that frame's share of the blend (0 = plain
        (1-t, t) blend, 1 = the frame is dropped there).
      hole_radius: holes are softened over a (2r+1)^2 box so the blend has no hard seams.
      candidate_radius: window radius of the photo-consistency cost that picks among candidate flows.
      grey_preference: factor (<= 1) on the grey flow's cost; other candidates must beat it clearly
        (for balanced's backward flow: on the projected forward flow's cost).
      flow_workers: threads for a pair's independent DIS calls (its two directions, and the high
        profile's candidates; default: one per core; the results do not depend on it).
    """

    name = "flow"

    def __init__(
        self,
        *,
        device: str = "cpu",
        fp16: bool = False,
        profile: str = "auto",
        budget_s_per_mpx: float | None = None,
        speed_factor: float | None = None,
        max_flow_side: int | None = None,
        consistency_scale: float = 1.0,
        occlusion_strength: float = 0.9,
        hole_radius: int = 1,
        candidate_radius: int = 5,
        grey_preference: float = 0.9,
        flow_workers: int | None = None,
    ):
        if profile not in PROFILES:
            raise EngineError(f"unknown flow profile {profile!r} (choose from {', '.join(PROFILES)})")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise EngineError("device cuda requested but CUDA is not available")
        if max_flow_side is not None and max_flow_side < 16:
            raise EngineError(f"max_flow_side must be at least 16, got {max_flow_side}")
        self.device = torch.device(device)
        self.dtype = torch.float16 if (fp16 and self.device.type == "cuda") else torch.float32
        self.policy = PrecisionPolicy("fp16" if self.dtype == torch.float16 else "fp32", self.device.type)
        self.profile = profile
        self.budget_s_per_mpx = AUTO_BUDGET_S_PER_MPX if budget_s_per_mpx is None else budget_s_per_mpx
        self.speed_factor = speed_factor
        self._choices: dict[tuple[int, int], AutoChoice] = {}
        # expect_run's count of new frames, new frames per pair and fixed seconds (with the calibration's
        # once it ran)
        self._expected_frames: int | None = None
        self._frames_per_pair: float | None = None
        self._fixed_seconds = 0.0
        self.stats: dict = {"pairs": 0, "profile": None, "auto": None}
        self.max_flow_side = max_flow_side
        self.consistency_scale = consistency_scale
        self.occlusion_strength = occlusion_strength
        self.hole_radius = hole_radius
        self.candidate_radius = candidate_radius
        self.grey_preference = grey_preference
        self.flow_workers = flow_workers
        self._pool: ThreadPoolExecutor | None = None
        self._pool_size = 0
        # DIS calls started by `prepare`, by (id(frame0), id(frame1), settings): (frame0, frame1, futures)
        self._prepared: dict[tuple, tuple] = {}

    # ----------------------------------------------------------------------------------------- pair
    def profile_for(self, height: int, width: int, timesteps: int = 1) -> str:
        """The profile that runs for frames of this size: the one asked for, or auto's choice (which
        needs the speed factor: given, or measured on the first pair by `interpolate`)."""
        if self.profile != "auto":
            return self.profile
        if self.speed_factor is None:
            raise EngineError("profile auto chooses after its calibration on the first pair")
        return self.auto_choice(height, width, timesteps).profile

    def expect_run(self, new_frames: int, pairs: int, fixed_seconds: float) -> None:
        """auto's budget is the run's: the fixed costs are spread over its new frames (a short clip cannot
        afford what a long one can; see AUTO_BUDGET_S_PER_MPX), and the pairs share their flows over the
        run's mean new frames per pair."""
        self._expected_frames = max(1, int(new_frames))
        self._frames_per_pair = max(1.0, new_frames / pairs) if pairs > 0 else None
        self._fixed_seconds = max(0.0, float(fixed_seconds))
        self._choices.clear()

    def auto_choice(self, height: int, width: int, timesteps: int = 1) -> "AutoChoice":
        """auto's profile for frames of this size: chosen once per size, for the run's mean new frames per
        pair when expect_run told them, else for the first pair's `timesteps`. So every pair of a run
        gets the same profile, also where pairs make different numbers of frames (24 to 60 fps: 2 or 3;
        uneven timestamps: 1 or 2), and the quality does not alternate from pair to pair."""
        key = (height, width)
        if key not in self._choices:
            per_pair = self._frames_per_pair if self._frames_per_pair is not None else timesteps
            overhead = 0.0 if self._expected_frames is None else self._fixed_seconds / self._expected_frames
            self._choices[key] = choose_profile(height, width, per_pair, self.speed_factor, self.budget_s_per_mpx,
                                                self.max_flow_side, overhead)
        return self._choices[key]

    def settings_for(self, height: int, width: int) -> FlowSettings:
        """The DIS settings used for frames of this size."""
        return PROFILE_SETTINGS[self.profile_for(height, width)]

    def work_scale(self, height: int, width: int, settings: FlowSettings | None = None) -> float:
        """Work size / frame size (<= 1): the long side capped at the settings' `max_side`, or at
        `max_flow_side` when the engine was given one."""
        return work_scale(height, width, settings or self.settings_for(height, width), self.max_flow_side)

    @staticmethod
    def _dis(settings: FlowSettings) -> cv2.DISOpticalFlow:
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        dis.setFinestScale(settings.finest_scale)
        dis.setPatchSize(settings.patch_size)
        if settings.variational_alpha is not None:
            dis.setVariationalRefinementAlpha(settings.variational_alpha)
        dis.setPatchStride(settings.patch_stride)
        dis.setGradientDescentIterations(settings.gradient_descent_iterations)
        dis.setVariationalRefinementIterations(settings.refine_iterations)
        return dis

    @staticmethod
    def _work_rgb(frame: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
        """(3,H,W) float RGB in [0,1] -> (h,w,3) uint8 at `size` = (w, h), area-averaged when smaller
        (each work pixel the exact mean of the frame area it covers: OpenCV's INTER_AREA, on a CPU copy),
        bicubic when larger."""
        if size[0] > frame.shape[2]:
            frame = F.interpolate(frame.float().unsqueeze(0), size=(size[1], size[0]), mode="bicubic",
                                  align_corners=False)[0]
        elif (frame.shape[2], frame.shape[1]) != size:
            # Downscale first (one read of the full frame), then convert only the small copy. OpenCV,
            # plane by plane: 1280x720 to 384x216 in 1.0 ms against torch's area pooling's 3.6-4.0 ms
            # (which also averages whole pixels, not areas, at ratios that are not integers).
            frame = _resize_planes(frame.detach().cpu(), size, cv2.INTER_AREA)
        return frame.permute(1, 2, 0).mul(255.0).add_(0.5).clamp_(0.0, 255.0).to(torch.uint8).cpu().numpy()

    def _work_images(self, frame: Frame, size: tuple[int, int], cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The frame's (RGB, grey) uint8 work images at `size` = (w, h): made once per frame and size."""
        work = frame.whole.setdefault("work", {}) if cache else {}
        if size not in work:
            rgb = self._work_rgb(frame.image[0], size)
            work[size] = (rgb, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        return work[size]

    def _work_pair(self, frame0: Frame, frame1: Frame, settings: FlowSettings, cache: bool = True):
        """Both frames' (RGB, grey) work images for `settings`."""
        scale = self.work_scale(frame0.height, frame0.width, settings)
        size = (max(1, round(frame0.width * scale)), max(1, round(frame0.height * scale)))
        return [self._work_images(f, size, cache) for f in (frame0, frame1)]

    def _dis_calls(self, settings: FlowSettings, images) -> list:
        """The pair's independent DIS calls [(function, image0, image1), ...] for `settings`, from its work
        images [(rgb0, grey0), (rgb1, grey1)]: the two directions of the grey flow, or, with the
        candidates, each candidate's pair of directions (the grey candidate first)."""
        (rgb0, grey0), (rgb1, grey1) = images

        def way(dis_settings: FlowSettings):
            def one_way(image0: np.ndarray, image1: np.ndarray) -> torch.Tensor:
                dis = self._dis(dis_settings)  # one per call: the calls may run on several threads at once
                return torch.from_numpy(dis.calc(image0, image1, None)).permute(2, 0, 1).unsqueeze(0).contiguous()

            return one_way

        one_way = way(settings)
        if not settings.colour_candidates:
            if settings.backward_finest_scale is None:
                return [(one_way, grey0, grey1), (one_way, grey1, grey0)]
            coarse = replace(settings, finest_scale=settings.backward_finest_scale, backward_finest_scale=None)
            return [(one_way, grey0, grey1), (way(coarse), grey1, grey0)]

        def flow_pair(image0: np.ndarray, image1: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
            return one_way(image0, image1), one_way(image1, image0)

        def mirrored_flow_pair(image0: np.ndarray, image1: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
            def unmirror(flow: torch.Tensor) -> torch.Tensor:
                flow = flow.flip(-1)
                flow[:, 0].neg_()  # a mirrored motion to the right is a motion to the left
                return flow.contiguous()

            forward, backward = flow_pair(np.ascontiguousarray(image0[:, ::-1]), np.ascontiguousarray(image1[:, ::-1]))
            return unmirror(forward), unmirror(backward)

        def shifted_flow_pair(image0: np.ndarray, image1: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
            # Both images moved down-right by one pixel (wrapping one row and column), flows moved back.
            forward, backward = flow_pair(np.roll(image0, (1, 1), (0, 1)), np.roll(image1, (1, 1), (0, 1)))
            return (torch.roll(forward, (-1, -1), (-2, -1)).contiguous(),
                    torch.roll(backward, (-1, -1), (-2, -1)).contiguous())

        images = [(grey0, grey1)] + [
            (np.ascontiguousarray(rgb0[:, :, c]), np.ascontiguousarray(rgb1[:, :, c])) for c in range(3)
        ]
        calls = [(flow_pair, a, b) for a, b in images]
        if settings.mirrored_candidates:
            calls += [(mirrored_flow_pair, a, b) for a, b in images]
        if settings.shifted_candidates:
            calls += [(shifted_flow_pair, a, b) for a, b in images]
        return calls

    def pair_flows(
        self, frame0: torch.Tensor | Frame, frame1: torch.Tensor | Frame, settings: FlowSettings | None = None,
        *, cache: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Flows F01 and F10 at the work size, each (1,2,h,w) float32 in work pixels, and the two work
        frames as (2,3,h,w) float32 RGB in [0,1] (on the CPU). Frames: loaded ones, or (3,H,W) tensors.
        DIS calls that `prepare` started for this pair and settings are waited for, not made again."""
        frame0, frame1 = (f if isinstance(f, Frame) else self.load(f) for f in (frame0, frame1))
        settings = settings or self.settings_for(frame0.height, frame0.width)
        images = self._work_pair(frame0, frame1, settings, cache)
        (rgb0, _), (rgb1, _) = images
        work = torch.from_numpy(np.stack([rgb0, rgb1])).permute(0, 3, 1, 2).float().div_(255.0)
        started = self._prepared.pop((id(frame0), id(frame1), settings), None) if cache else None
        if started is not None and started[0] is frame0 and started[1] is frame1:
            results = self._results(started[2])
        else:
            results = self._results(self._start(self._dis_calls(settings, images)))
        if not settings.colour_candidates:
            flow01, flow10 = results
            if settings.backward_finest_scale is not None:  # the derived candidate first: preferred
                flow10 = self._most_consistent([self._derived_backward(flow01, work), flow10], work[1:2], work[0:1])
        else:  # in order: the grey candidate first
            flow01 = self._most_consistent([f for f, _ in results], work[0:1], work[1:2])
            flow10 = self._most_consistent([b for _, b in results], work[1:2], work[0:1])
        return flow01, flow10, work

    def prepare(self, jobs) -> bool:
        """Start the DIS calls of these pairs on the pool and return at once (True when any started):
        the pipeline hands over the next pair before it renders the current one, so that one pair's
        flow runs on the other core while the one before it is projected, warped and blended. Nothing
        starts before auto's calibration, or without a second worker."""
        if (self.profile == "auto" and self.speed_factor is None) or self._workers(2) <= 1:
            return False
        if len(self._prepared) > 4:  # started for pairs that never came (an error in between)
            self._prepared.clear()
        for job in jobs:
            settings = PROFILE_SETTINGS[self.profile_for(job.frame0.height, job.frame0.width, len(job.timesteps))]
            calls = self._dis_calls(settings, self._work_pair(job.frame0, job.frame1, settings))
            self._prepared[(id(job.frame0), id(job.frame1), settings)] = (job.frame0, job.frame1, self._start(calls))
        return bool(jobs)

    def _workers(self, calls: int) -> int:
        return min(calls, self.flow_workers or os.cpu_count() or 1)

    def _start(self, calls: list) -> list:
        """The independent DIS calls [(function, image0, image1), ...] started on `flow_workers` threads
        (OpenCV releases the GIL in DIS), each call single-threaded inside and keeping one core busy:
        the high profile's candidates, and in the other profiles a pair's two directions. Those two on
        two threads, beside a niced encoder on the second core: balanced at 640x360 2.99-3.06 s ->
        2.13-2.31 s for the 49 pairs of a 2-s clip (docs/benchmarks.md, 2026-12-04). With one worker
        they run here, now. Returns futures, or the results."""
        workers = self._workers(len(calls))
        if workers <= 1:
            return [function(a, b) for function, a, b in calls]
        if self._pool is None or self._pool_size < workers:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dainctl-dis")
            self._pool_size = workers
        return [self._pool.submit(function, a, b) for function, a, b in calls]

    @staticmethod
    def _results(started: list) -> list:
        """The results of `_start`'s calls, in order."""
        futures = [item for item in started if isinstance(item, Future)]
        try:
            return [item.result() if isinstance(item, Future) else item for item in started]
        except BaseException:  # Ctrl-C or an error: drop the calls not started yet
            for future in futures:
                future.cancel()
            raise

    def _most_consistent(
        self, candidates: list[torch.Tensor], image_a: torch.Tensor, image_b: torch.Tensor
    ) -> torch.Tensor:
        """Per pixel of frame a, the candidate flow a->b (each (1,2,h,w)) whose match in b differs least
        from a, in mean absolute RGB over a (2r+1)^2 window; the first (grey) candidate's cost is
        scaled by `grey_preference`. Returns (1,2,h,w) float32."""
        radius = self.candidate_radius
        best_flow = best_cost = None
        for index, flow in enumerate(candidates):
            cost = _box_mean(_match_error(image_a, image_b, flow), radius)
            if index == 0:
                best_flow, best_cost = flow, cost * self.grey_preference
                continue
            # A running minimum (ties keep the earlier candidate, as argmin does): torch's argmin over
            # a stack of the costs took 6.0 ms for two 384x216 maps on one core, this 0.1 ms.
            better = cost < best_cost
            best_flow = torch.where(better, flow, best_flow)
            best_cost = torch.where(better, cost, best_cost)
        return best_flow

    @staticmethod
    def _derived_backward(flow01: torch.Tensor, work: torch.Tensor) -> torch.Tensor:
        """The backward flow F10 (1,2,h,w) made from the forward one: F01 projected onto frame 1
        (`depth_flow_projection` at t = 1, holes filled), each source pixel of frame 0 weighted by how
        well its match in frame 1 agrees with it, 1 / (1 + (e / DERIVED_PHOTO_SCALE)^2) for the mean
        absolute RGB difference e in [0, 1]: where two sources land on one pixel, the one that truly
        moved there wins. work: the pair's (2,3,h,w) RGB work frames."""
        error = _match_error(work[0:1], work[1:2], flow01)
        weight = 1.0 / (1.0 + (error / DERIVED_PHOTO_SCALE).square()) + 1e-6
        return kernels.depth_flow_projection(flow01, weight, fill_holes=True)

    def _splat_weight(self, flow_ab: torch.Tensor, flow_ba: torch.Tensor) -> torch.Tensor:
        """Splat weight in (0, 1] per source pixel of frame a, (1,1,h,w) float32: 1 / (1 + (e/s)^2) for
        the forward-backward error e = |F_ab(x) + F_ba(x + F_ab(x))| in pixels."""
        returned = kernels.backward_warp(flow_ba, flow_ab)
        error_sq = (flow_ab + returned).square().sum(1, keepdim=True)
        return 1.0 / (1.0 + error_sq / self.consistency_scale**2) + 1e-6

    def _project(self, flow: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected flow (1,2,h,w) with holes filled, and the softened hole mask (1,1,h,w) in [0,1]."""
        unfilled = kernels.depth_flow_projection(flow, weight, fill_holes=False)
        filled = kernels.depth_flow_projection(flow, weight, fill_holes=True)
        # Without filling, a pixel no source reached holds exactly (0, 0); a reached pixel holds a
        # weighted mean of real flows, exactly zero only for exactly static content, which never
        # leaves holes around it anyway.
        hole = (unfilled == 0).all(1, keepdim=True).float()
        if self.hole_radius > 0:
            hole = _box_mean(hole, self.hole_radius)
        return filled, hole

    @staticmethod
    def _resize_bilinear(maps: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """(1,C,h,w) float32 -> (1,C,H,W) contiguous, bilinear with half-pixel centres (align_corners=False)."""
        if maps.device.type != "cpu":
            return F.interpolate(maps, size=(height, width), mode="bilinear", align_corners=False)
        # OpenCV's resize is the same interpolation and several times faster than torch's on the CPU.
        return _resize_planes(maps[0], (width, height), cv2.INTER_LINEAR).unsqueeze(0)

    # ------------------------------------------------------------------------------------- the seam
    def bytes_per_pixel(self) -> float:
        return BYTES_PER_PIXEL

    def load(self, image: torch.Tensor) -> Frame:
        """(3,H,W) float32 RGB in [0,1] -> the frame on the device in the storage dtype."""
        if image.dim() != 3 or image.shape[0] != 3:
            raise EngineError(f"frames must be (3,H,W), got {tuple(image.shape)}")
        with section("upload"):
            stored = image.to(self.device, self.dtype).unsqueeze(0)
        return Frame(stored, whole={})

    def _mirror(self, frame: Frame) -> Frame:
        """The mirrored frame (for the mirror average), made once per frame."""
        if "mirror" not in frame.whole:
            frame.whole["mirror"] = Frame(frame.image.flip(-1), whole={})
        return frame.whole["mirror"]

    def motion(self, jobs) -> list[FlowMotion]:
        motions = []
        for job in jobs:
            height, width = job.frame0.height, job.frame0.width
            if job.frame1.image.shape != job.frame0.image.shape:
                raise EngineError(f"frames must both be (3,H,W) of one size, got {tuple(job.frame0.image.shape[1:])} "
                                  f"and {tuple(job.frame1.image.shape[1:])}")
            if self.profile == "auto" and self.speed_factor is None:
                self.speed_factor = self._calibrate(job.frame0, job.frame1, job.timesteps)
            profile = self.profile_for(height, width, len(job.timesteps))
            self.stats["pairs"] += 1
            self.stats["profile"] = profile
            if self.profile == "auto":
                self.stats["auto"] = self.auto_choice(height, width, len(job.timesteps)).as_dict()
            motions.append(self._motion_with(PROFILE_SETTINGS[profile], job.frame0, job.frame1))
        return motions

    def _motion_with(self, settings: FlowSettings, frame0: Frame, frame1: Frame, cache: bool = True) -> FlowMotion:
        with section("flow"):
            flow01, flow10, _work_frames = self.pair_flows(frame0, frame1, settings, cache=cache)
        with section("upload"):
            flow01, flow10 = flow01.to(self.device), flow10.to(self.device)
        with section("projection_warping"):
            weight0 = self._splat_weight(flow01, flow10)
            weight1 = self._splat_weight(flow10, flow01)
        mirrored = None
        if settings.mirror_average:
            mirrored = self._motion_with(replace(settings, mirror_average=False), self._mirror(frame0),
                                         self._mirror(frame1), cache)
        return FlowMotion(settings, flow01, flow10, weight0, weight1, mirrored)

    def render(self, jobs, motions, window: Window | None = None) -> list[list[torch.Tensor]]:
        """Per pair, one frame per t: (3,H,W) float32 in [0,1] on the device for window=None, else that
        window of the frame (3,h,w), unclamped."""
        results = []
        for job, motion in zip(jobs, motions):
            outputs = self._render_pair(job.frame0, job.frame1, motion, job.timesteps, window)
            if motion.mirrored is not None:
                width = job.frame0.width
                flipped = None if window is None else Window(window.top, window.bottom, width - window.right,
                                                             width - window.left)
                others = self._render_pair(self._mirror(job.frame0), self._mirror(job.frame1), motion.mirrored,
                                           job.timesteps, flipped)
                with section("projection_warping"):
                    outputs = [(direct + other.flip(-1)).mul_(0.5) for direct, other in zip(outputs, others)]
            results.append(outputs)
        return results

    def _render_pair(self, frame0: Frame, frame1: Frame, motion: FlowMotion, timesteps, window) -> list[torch.Tensor]:
        height, width = frame0.height, frame0.width
        work_height, work_width = motion.flow01.shape[2:]
        full_size = (work_height, work_width) != (height, width)
        # Flows are in work pixels; one factor per axis takes them to frame pixels.
        to_frame_pixels = torch.tensor([width / work_width, height / work_height], device=self.device)
        outputs = []
        for t in timesteps:
            t = float(t)
            if not 0.0 < t < 1.0:
                raise EngineError(f"timestep must lie strictly between 0 and 1, got {t}")
            with section("projection_warping"):
                frame_t = self._frame_at(t, motion.flow01, motion.flow10, motion.weight0, motion.weight1,
                                         (frame0.image, frame1.image), to_frame_pixels, full_size, window)
            outputs.append(frame_t.clamp_(0.0, 1.0) if window is None else frame_t)
        return outputs

    def _calibrate(self, frame0: Frame, frame1: Frame, timesteps) -> float:
        """This machine's speed against the reference one: the first pair in the cheapest profile at its
        first timestep, timed twice (the first run also pays one-time set-up costs; the faster run
        counts), over the cost model's prediction for it. The calibration frames are discarded, and
        nothing it computes is cached; auto's choice makes the real ones."""
        height, width = frame0.height, frame0.width
        settings = PROFILE_SETTINGS[AUTO_ORDER[-1]]
        job = PairJob(frame0, frame1, tuple(timesteps[:1]))
        seconds = []
        for _ in range(2):
            start = time.perf_counter()
            motion = self._motion_with(settings, frame0, frame1, cache=False)
            self.render([job], [motion])
            seconds.append(time.perf_counter() - start)
        predicted = reference_seconds(height, width, 1, settings, self.max_flow_side)
        self.stats["calibration_seconds"] = round(min(seconds), 4)
        self._fixed_seconds += sum(seconds)  # discarded work: a fixed cost of the run
        return max(min(seconds) / predicted, 1e-3)

    def _frame_at(self, t, flow01, flow10, weight0, weight1, frames, to_frame_pixels, full_size,
                  window: Window | None = None) -> torch.Tensor:
        """The (3,H,W) frame at time t on the engine's device, unclamped (steps 3-5 of the module doc);
        only `window` of it when given (the warps then read only the part of each frame they need)."""
        height, width = frames[0].shape[-2:]
        work_height, work_width = flow01.shape[2:]
        flow_t0, hole0 = self._project(t * flow01, weight0)
        flow_t1, hole1 = self._project((1.0 - t) * flow10, weight1)
        # Where both frames see the pixel, the two projections estimate one motion through it:
        # average them (t-scaled) so that both warps land on the same scene point.
        seen_by_both = (1.0 - hole0) * (1.0 - hole1)
        mean_t0 = 0.5 * (flow_t0 - (t / (1.0 - t)) * flow_t1)
        flow_t0 = flow_t0 + seen_by_both * (mean_t0 - flow_t0)
        flow_t1 = flow_t1 + seen_by_both * (-((1.0 - t) / t) * mean_t0 - flow_t1)

        # Share of frame 0 in the blend, from (1-t, t) and the visibilities.
        visible0 = (1.0 - t) * (1.0 - self.occlusion_strength * hole0)
        visible1 = t * (1.0 - self.occlusion_strength * hole1)
        share0 = visible0 / (visible0 + visible1).clamp_min(1e-6)

        flows_t = torch.cat([flow_t0, flow_t1])
        if full_size:
            # Resizing is linear, so the flows are scaled to frame pixels before it, at the work size.
            flows_t = flows_t * to_frame_pixels.view(1, 2, 1, 1)
            stacked = torch.cat([flows_t.reshape(1, 4, work_height, work_width), share0], 1)
            stacked = self._resize_bilinear(stacked, height, width)  # (1,5,H,W)
            flows_t = stacked[0, :4].view(2, 2, height, width)
            share0 = stacked[:, 4:5]
        if window is not None:
            flows_t, share0 = window.of(flows_t), window.of(share0)
        flows_t = flows_t.to(self.dtype)
        # Warped one at a time: no stacked copy of the two full-size frames is needed.
        warped0 = _warp(frames[0], flows_t[0:1], window).float()
        warped1 = _warp(frames[1], flows_t[1:2], window).float()
        return warped1[0].lerp_(warped0[0], share0[0])  # in place: no third full-size frame


def _resize_planes(planes: torch.Tensor, size: tuple[int, int], interpolation: int) -> torch.Tensor:
    """(C,h,w) CPU tensor -> contiguous (C,H,W) float32 at `size` = (W, H), OpenCV's `interpolation`
    plane by plane, each written straight into the result (no transpose)."""
    source = planes.float().contiguous().numpy()
    resized = torch.empty((source.shape[0], size[1], size[0]), dtype=torch.float32)
    for channel in range(source.shape[0]):
        cv2.resize(source[channel], size, dst=resized[channel].numpy(), interpolation=interpolation)
    return resized


def _match_error(image_a: torch.Tensor, image_b: torch.Tensor, flow_ab: torch.Tensor) -> torch.Tensor:
    """Per pixel of frame a, the mean absolute RGB difference from its match in frame b along `flow_ab`
    (1,2,h,w): (1,1,h,w). images: (1,3,h,w)."""
    return (kernels.backward_warp(image_b, flow_ab) - image_a).abs().mean(1, keepdim=True)


def _box_mean(maps: torch.Tensor, radius: int) -> torch.Tensor:
    """(1,1,h,w) float32 -> the mean over each pixel's (2r+1)^2 box, of the pixels inside the map only
    (avg_pool2d with count_include_pad=False). On the CPU, OpenCV's running box sum over the counts of
    the box inside the map: 384x288 one thread, r = 5 (the candidates' cost) 6.8 -> 0.23 ms, r = 1
    (the holes) 0.97 -> 0.18 ms, the same means to 4e-7 (docs/benchmarks.md, 2026-12-04)."""
    size = 2 * radius + 1
    if maps.device.type != "cpu":
        return F.avg_pool2d(maps, size, stride=1, padding=radius, count_include_pad=False)
    height, width = maps.shape[-2:]
    sums = cv2.boxFilter(maps[0, 0].float().contiguous().numpy(), -1, (size, size), normalize=False,
                         borderType=cv2.BORDER_CONSTANT)
    rows, cols = np.arange(height), np.arange(width)
    row_counts = np.minimum(rows + radius, height - 1) - np.maximum(rows - radius, 0) + 1
    col_counts = np.minimum(cols + radius, width - 1) - np.maximum(cols - radius, 0) + 1
    sums /= np.outer(row_counts, col_counts).astype(np.float32)
    return torch.from_numpy(sums).view(1, 1, height, width)


def _warp(frame: torch.Tensor, flow: torch.Tensor, window: Window | None) -> torch.Tensor:
    """`kernels.bicubic_warp` of `frame` (1,C,H,W) by `flow` (1,2,h,w), the flow of `window` (or of the
    whole frame). For a window only a box of `frame` is read: the window plus every pixel its samples'
    4x4 taps can touch (one column and row before the sample point, two after). Samples and taps are
    clamped to the frame's border, so the box's edges are the frame's wherever a tap reaches past them,
    and the window's result is that of warping the whole frame."""
    if window is None:
        return kernels.bicubic_warp(frame, flow)
    height, width = frame.shape[-2:]
    rows = torch.arange(window.top, window.bottom, device=flow.device, dtype=torch.float32).view(-1, 1)
    cols = torch.arange(window.left, window.right, device=flow.device, dtype=torch.float32).view(1, -1)
    flow32 = torch.nan_to_num(flow.float(), nan=0.0)  # NaN samples the pixel itself; +-Inf clamps
    xs = (cols + flow32[0, 0]).clamp_(0, width - 1)
    ys = (rows + flow32[0, 1]).clamp_(0, height - 1)
    left = min(window.left, max(0, int(xs.min().floor()) - 1))
    right = max(window.right, min(width, int(xs.max().floor()) + 3))
    top = min(window.top, max(0, int(ys.min().floor()) - 1))
    bottom = max(window.bottom, min(height, int(ys.max().floor()) + 3))
    box = frame[..., top:bottom, left:right].contiguous()
    inside = Window(window.top - top, window.bottom - top, window.left - left, window.right - left)
    box_flow = flow.new_zeros((1, 2, bottom - top, right - left))
    box_flow[..., inside.top : inside.bottom, inside.left : inside.right] = flow
    return inside.of(kernels.bicubic_warp(box, box_flow))
