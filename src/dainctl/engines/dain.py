"""The DAIN engine (`--engine dain`): the original network, loaded from a converted file or `best.pth`.

Per pair: pad as the original demo does (or the "compact" policy), run the network once for flows,
depth, context and kernels, then synthesize every requested t; crop and clip each frame to [0, 1].

Precision:
  * CPU: float32 always.
  * CUDA, fp32: float32 with TF32 convolutions switched off (TF32 is only ~1e-3 accurate and would
    break parity with the original).
  * CUDA, fp16: the convolution stacks run in float16, channels-last (tensor-core layout), except
    PWC-Net (see FLOAT32_SUBNETWORKS); what else stays float32 is listed in `dainctl.models.dain`
    (coordinates, projection accumulators, the depth exponent, reductions, the ops, the blend).  A
    float32 copy of the network is kept as a guard: a frame with NaN/Inf or values far outside [0, 1]
    is recomputed in float32, and counted in `stats["fp32_recomputed"]`.
"""

from __future__ import annotations

import contextlib
import copy
import os
from dataclasses import dataclass
from typing import Sequence

import torch

from dainctl.errors import EngineError, InputError, UsageError
from dainctl.models.dain import DAIN, PairAnalysis, Synthesis
from dainctl.models.padding import PADDING_POLICIES, Padding, crop_padding, pad_frames, padding_for
from dainctl.models.weights import load_dain_weights, load_into_model
from dainctl.profiling import section

# Sub-networks that stay float32 under the reduced-precision policy.  PWC-Net: its flow errors are
# amplified by the projection's floor()/hole decisions and by the warps; emulating float16 storage on
# the mb_dogdance oracle case (CPU, fake weights) gave 31.6 dB against the float32 output with PWC-Net
# in float16 and 48.9 dB with PWC-Net in float32 and every other stack in float16.  PWC-Net works at
# 1/4 resolution and below, so keeping it float32 costs little next to the full-resolution stacks.
FLOAT32_SUBNETWORKS = ("flownets",)

# A correct frame is in [0, 1] before clipping up to the rectifier's overshoot (the fake oracle weights
# reach 1.45); beyond this margin the reduced-precision result is treated as broken.
GUARD_LOW, GUARD_HIGH = -1.0, 2.0


@dataclass
class PairRun:
    """One pair through the engine, with the network's intermediates (for tests and benchmarks).

    padding: the padding applied; analysis / syntheses: padded-resolution tensors on the device;
    frames: the returned frames, (3, H, W) float32 in [0, 1] on the CPU, one per t.
    """

    padding: Padding
    analysis: PairAnalysis
    syntheses: list[Synthesis]
    frames: list[torch.Tensor]


def frame_is_broken(frame: torch.Tensor) -> bool:
    """True for a frame with NaN/Inf or values far outside [0, 1] (before clipping)."""
    if not bool(torch.isfinite(frame).all()):
        return True
    return bool(frame.min() < GUARD_LOW) or bool(frame.max() > GUARD_HIGH)


class DainEngine:
    """DAIN interpolation; implements `dainctl.engines.base.Engine`.

    Args:
        weights: a file written by `dainctl convert`, or the original `best.pth` (converted in memory;
            `weights_converted_in_memory` is then True and the caller should suggest converting once).
        device: "cpu" or "cuda".
        fp16: half precision on CUDA; ignored on the CPU (float32 there).
        padding: "demo" (the original's 128 rule, default) or "compact" (next multiple of 64).
        op_impl: implementation of the custom ops, "auto" | "compiled" | "ref".
        reduced_dtype: the reduced-precision dtype to use instead of float16 (tests run the fp16 policy
            on the CPU with torch.bfloat16); None means float16 when fp16 is set on CUDA.
    Attributes:
        network: the float32 DAIN on the device (the guard's fallback; the only one in fp32 mode).
        reduced_network: the reduced-precision copy, or None.
        precision: "fp32", "fp16" or "bf16", what the convolutions run in.
        stats: {"pairs", "frames", "fp32_recomputed"} counters.
    """

    name = "dain"

    def __init__(
        self,
        weights: str | os.PathLike,
        device: str = "cpu",
        fp16: bool = False,
        *,
        padding: str = "demo",
        op_impl: str = "auto",
        reduced_dtype: torch.dtype | None = None,
    ):
        if padding not in PADDING_POLICIES:
            raise UsageError(f"unknown DAIN padding policy {padding!r}: use {' or '.join(PADDING_POLICIES)}")
        if device not in ("cpu", "cuda"):
            raise UsageError(f"DAIN runs on cpu or cuda, not {device!r}")
        if device == "cuda" and not torch.cuda.is_available():
            raise EngineError("--device cuda was asked for, but no CUDA GPU is available to PyTorch")
        self.device = torch.device(device)
        self.padding_policy = padding

        loaded = load_dain_weights(weights)
        self.weights_path = loaded.path
        self.weights_converted_in_memory = loaded.converted_in_memory
        self.weights_metadata = loaded.metadata

        model = DAIN()
        load_into_model(model, loaded.state_dict)  # copies (and casts) into the float32 parameters
        del loaded
        model.op_impl = op_impl
        self.network = model.eval().to(self.device)

        if reduced_dtype is None and fp16 and self.device.type == "cuda":
            reduced_dtype = torch.float16
        self.reduced_network: DAIN | None = None
        self.precision = "fp32"
        if reduced_dtype is not None:
            reduced = copy.deepcopy(self.network).to(reduced_dtype)
            for name in FLOAT32_SUBNETWORKS:
                getattr(reduced, name).float()
            if self.device.type == "cuda":
                reduced = reduced.to(memory_format=torch.channels_last)
            self.reduced_network = reduced
            self.precision = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(reduced_dtype, str(reduced_dtype))
        self.stats = {"pairs": 0, "frames": 0, "fp32_recomputed": 0}

    def conv_flags(self):
        """cuDNN settings for a forward of either network: TF32 off, also in fp16 mode, where PWC-Net
        still runs float32 convolutions (TF32 rounds their inputs to 10 mantissa bits, like float16)."""
        if self.device.type == "cuda":
            return torch.backends.cudnn.flags(enabled=True, benchmark=True, deterministic=False, allow_tf32=False)
        return contextlib.nullcontext()

    def _run_model(
        self, model: DAIN, frame0: torch.Tensor, frame1: torch.Tensor, timesteps: Sequence[float]
    ) -> tuple[PairAnalysis, list[Synthesis]]:
        with torch.inference_mode(), self.conv_flags():
            analysis = model.analyze_pair(frame0, frame1)
            syntheses = [model.synthesize(analysis, t) for t in timesteps]
        return analysis, syntheses

    def run_pair(self, frame0: torch.Tensor, frame1: torch.Tensor, timesteps: Sequence[float]) -> PairRun:
        """Like `interpolate`, also returning padding and the network's intermediates."""
        for name, frame in (("frame0", frame0), ("frame1", frame1)):
            if frame.dim() != 3 or frame.shape[0] != 3:
                raise InputError(f"DAIN needs RGB frames shaped (3, H, W); {name} is {tuple(frame.shape)}")
        if frame0.shape != frame1.shape:
            raise InputError(f"frames differ in size: {tuple(frame0.shape)} vs {tuple(frame1.shape)}")
        timesteps = [float(t) for t in timesteps]
        if any(not 0.0 < t < 1.0 for t in timesteps):
            raise UsageError(f"interpolation times must lie strictly between 0 and 1, got {timesteps}")

        height, width = frame0.shape[-2:]
        padding = padding_for(height, width, self.padding_policy)
        with section("upload"):
            batch = torch.stack((frame0, frame1)).to(self.device, torch.float32)
            padded0, padded1 = pad_frames(batch, padding).split(1, dim=0)

        model = self.reduced_network or self.network
        analysis, syntheses = self._run_model(model, padded0, padded1, timesteps)
        if model is not self.network:
            broken = [i for i, s in enumerate(syntheses) if frame_is_broken(crop_padding(s.frame, padding))]
            if broken:
                # The guard: redo the pair in float32, only for the broken times.
                _, recomputed = self._run_model(
                    self.network, padded0, padded1, [timesteps[i] for i in broken]
                )
                for index, synthesis in zip(broken, recomputed):
                    syntheses[index] = synthesis
                self.stats["fp32_recomputed"] += len(broken)

        with section("download"):
            frames = [crop_padding(s.frame, padding)[0].clamp(0.0, 1.0).float().cpu().contiguous() for s in syntheses]
        self.stats["pairs"] += 1
        self.stats["frames"] += len(frames)
        return PairRun(padding=padding, analysis=analysis, syntheses=syntheses, frames=frames)

    def interpolate(
        self, frame0: torch.Tensor, frame1: torch.Tensor, timesteps: Sequence[float]
    ) -> list[torch.Tensor]:
        """Frames (3, H, W) float32 RGB in [0, 1] on the CPU -> one such frame per t in (0, 1)."""
        if not timesteps:
            return []
        return self.run_pair(frame0, frame1, timesteps).frames
