"""The DAIN engine (`--engine dain`): the original network, loaded from a converted file or `best.pth`.

Through the seam of `dainctl.engines.base`:
  * load: pad the frame as the original demo does (or the "compact" policy) and build PWC-Net's feature
    pyramid, once per input frame;
  * motion: PWC-Net's decoders in both directions, for a batch of pairs in one forward;
  * render: depth and context per frame (cached in the Frame, so once per input frame), kernels per
    pair, then projection, warps and rectifier for every (pair, t) in batches of `max_pairs`; crop and
    clip each frame to [0, 1].

Precision (`dainctl.precision`): the policy's autocast region around every forward; float32 weights.
The guard is here, once: under a reduced-precision policy a frame with NaN/Inf or values far outside
[0, 1] is recomputed under the float32 policy, and counted in `stats["fp32_recomputed"]`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import torch

from dainctl.engines.base import EngineBase, Frame, PairJob, Window, check_pair, check_timesteps
from dainctl.errors import EngineError, UsageError
from dainctl.models.dain import DAIN, FrameFeatures, PairAnalysis, Synthesis
from dainctl.models.padding import PADDING_POLICIES, Padding, crop_padding, pad_frames, padding_for
from dainctl.models.weights import load_dain_weights, load_into_model
from dainctl.precision import FLOAT32_SUBNETWORKS, PrecisionPolicy  # noqa: F401  (re-exported)
from dainctl.profiling import section

# A correct frame is in [0, 1] before clipping up to the rectifier's overshoot (the fake oracle weights
# reach 1.45); beyond this margin the reduced-precision result is treated as broken.
GUARD_LOW, GUARD_HIGH = -1.0, 2.0
# Peak bytes per padded pixel of one pair's render, float32: about 7.6 KB (measured for a pure-PyTorch
# port of the network under no_grad on the CPU: ~17 GB at 1080p, ~65 GB at 4K). Reduced precision is
# not measured yet (no GPU so far); the float32 figure only makes tiles smaller than needed.
RENDER_BYTES_PER_PIXEL = 7.6e3
# PWC-Net on the whole padded frame (pyramid and both decoders), float32: peak RSS growth measured on
# the CPU with `python benchmarks/memory_per_pixel.py dain-flow --sizes 256x384,512x768` (1053 and 1125
# B/px, 1150 B/px marginal). Its activations are freed before the render starts.
WHOLE_FRAME_BYTES_PER_PIXEL = 1.2e3
# Pairs per forward on CUDA unless told otherwise (and unless the memory budget allows fewer).
DEFAULT_CUDA_PAIRS = 4


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


class DainEngine(EngineBase):
    """DAIN interpolation; implements the seam of `dainctl.engines.base`.

    Args:
        weights: a file written by `dainctl convert`, or the original `best.pth` (converted in memory;
            `weights_converted_in_memory` is then True and the caller should suggest converting once).
        device: "cpu" or "cuda".
        fp16: half precision on CUDA; float32 elsewhere (the factory warns when it was asked for there).
        padding: "demo" (the original's 128 rule, default) or "compact" (next multiple of 64).
        op_impl: implementation of the custom ops, "auto" | "compiled" | "ref".
        precision: "fp32", "fp16" or "bf16" instead of what `fp16` gives (tests run the reduced policy on
            the CPU with "bf16").
        max_pairs: (pair, t) items per forward; default 1 on the CPU, 4 on CUDA.
    Attributes:
        network: the DAIN on the device, float32 weights.
        policy, precision: the `PrecisionPolicy` and its name.
        stats: counters {"pairs", "frames", "fp32_recomputed", "frames_loaded" (PWC-Net pyramids),
            "frame_features" (depth and context forwards per frame)}, and "precision" and
            "weights_converted_in_memory".
    """

    name = "dain"
    window_align = 4  # the flows are at quarter resolution
    window_multiple = 64  # the sub-networks' strides

    def __init__(
        self,
        weights: str | os.PathLike,
        device: str = "cpu",
        fp16: bool = False,
        *,
        padding: str = "demo",
        op_impl: str = "auto",
        precision: str | None = None,
        max_pairs: int | None = None,
    ):
        if padding not in PADDING_POLICIES:
            raise UsageError(f"unknown DAIN padding policy {padding!r}: use {' or '.join(PADDING_POLICIES)}")
        if device not in ("cpu", "cuda"):
            raise UsageError(f"DAIN runs on cpu or cuda, not {device!r}")
        if device == "cuda" and not torch.cuda.is_available():
            raise EngineError("--device cuda was asked for, but no CUDA GPU is available to PyTorch")
        if max_pairs is not None and max_pairs < 1:
            raise UsageError(f"pairs per forward must be at least 1, got {max_pairs}")
        self.device = torch.device(device)
        self.padding_policy = padding
        self.policy = (PrecisionPolicy(precision, self.device.type) if precision is not None
                       else PrecisionPolicy.choose(self.device, fp16))
        self.max_pairs = max_pairs or (DEFAULT_CUDA_PAIRS if self.device.type == "cuda" else 1)

        loaded = load_dain_weights(weights)
        self.weights_path = loaded.path
        self.weights_converted_in_memory = loaded.converted_in_memory
        self.weights_metadata = loaded.metadata

        model = DAIN()
        load_into_model(model, loaded.state_dict)  # copies (and casts) into the float32 parameters
        del loaded
        model.op_impl = op_impl
        self.network = self.policy.prepare(model.eval().to(self.device))
        self.stats = {"pairs": 0, "frames": 0, "fp32_recomputed": 0, "frames_loaded": 0, "frame_features": 0,
                      "precision": self.policy.name, "weights_converted_in_memory": self.weights_converted_in_memory}

    @property
    def precision(self) -> str:
        return self.policy.name

    # ------------------------------------------------------------------------------------- the seam
    def padding(self, height: int, width: int) -> Padding:
        return padding_for(height, width, self.padding_policy)

    def canvas_size(self, height: int, width: int) -> tuple[int, int]:
        pad = self.padding(height, width)
        return height + pad.top + pad.bottom, width + pad.left + pad.right

    def bytes_per_pixel(self) -> float:
        return RENDER_BYTES_PER_PIXEL

    def whole_frame_bytes_per_pixel(self) -> float:
        return WHOLE_FRAME_BYTES_PER_PIXEL

    def finish(self, canvas: torch.Tensor, height: int, width: int) -> torch.Tensor:
        return crop_padding(canvas, self.padding(height, width)).clamp(0.0, 1.0)

    def load(self, image: torch.Tensor) -> Frame:
        """(3, H, W) float32 RGB on the device -> the padded frame and its PWC-Net pyramid."""
        image = image.reshape(1, *image.shape[-3:]).to(self.device, torch.float32)
        height, width = image.shape[-2:]
        padded = pad_frames(image, self.padding(height, width))
        with torch.inference_mode(), self.policy.compute():
            pyramid = self.network.flow_pyramid(padded)  # float32 under every policy
        self.stats["frames_loaded"] += 1
        return Frame(padded, size=(int(height), int(width)), whole={"pyramid": pyramid})

    def motion(self, jobs: Sequence[PairJob]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """PWC-Net's flows (flow01, flow10) per pair, (1, 2, H/4, W/4) each, all pairs in one forward."""
        if not jobs:
            return []
        levels = len(jobs[0].frame0.whole["pyramid"])
        with torch.inference_mode(), self.policy.compute():
            pyramid0 = [torch.cat([job.frame0.whole["pyramid"][level] for job in jobs]) for level in range(levels)]
            pyramid1 = [torch.cat([job.frame1.whole["pyramid"][level] for job in jobs]) for level in range(levels)]
            flow01, flow10 = self.network.pair_flows_from(pyramid0, pyramid1)
        self.stats["pairs"] += len(jobs)  # here, once per pair, however many windows render it
        self.stats["frames"] += sum(len(job.timesteps) for job in jobs)
        return list(zip(flow01.split(1), flow10.split(1)))

    def render(self, jobs: Sequence[PairJob], motions: Sequence, window: Window | None = None) -> list[list[torch.Tensor]]:
        """Every requested frame of every pair: finished (3, H, W) frames for window=None, else the
        window of the padded canvas, unclamped, (3, h, w)."""
        syntheses = self._guarded(jobs, motions, window)
        results = []
        for job, frames in zip(jobs, syntheses):
            if window is None:
                height, width = job.frame0.size
                results.append([self.finish(s.frame, height, width)[0] for s in frames])
            else:
                results.append([s.frame[0] for s in frames])
        return results

    # ------------------------------------------------------------------------------------ internals
    def _guarded(self, jobs, motions, window) -> list[list[Synthesis]]:
        """The syntheses of every (pair, t) under the policy, broken ones redone under float32."""
        with torch.inference_mode():
            items = [(j, t) for j, job in enumerate(jobs) for t in job.timesteps]
            done = self._synthesize(jobs, motions, window, self.policy, items)
            if self.policy.reduced:
                broken = [i for i, s in enumerate(done) if frame_is_broken(self._visible(s.frame, jobs[items[i][0]], window))]
                if broken:
                    redone = self._synthesize(jobs, motions, window, self.policy.full(), [items[i] for i in broken])
                    for index, synthesis in zip(broken, redone):
                        done[index] = synthesis
                    self.stats["fp32_recomputed"] += len(broken)
        grouped: list[list[Synthesis]] = [[] for _ in jobs]
        for (j, _t), synthesis in zip(items, done):
            grouped[j].append(synthesis)
        return grouped

    def _visible(self, frame: torch.Tensor, job: PairJob, window) -> torch.Tensor:
        if window is not None:
            return frame
        height, width = job.frame0.size
        return crop_padding(frame, self.padding(height, width))

    def _features(self, frames: list[Frame], window, policy: PrecisionPolicy) -> list[FrameFeatures]:
        """Depth and context of each frame (of its window), computed once per frame and policy while
        the frame is cached; the missing ones in one forward."""
        key = (window.key if window is not None else None, policy.name)
        missing = []
        for frame in frames:
            if key not in frame.local and all(frame is not other for other in missing):
                missing.append(frame)
        computed = {}
        if missing:
            images = torch.cat([window.of(f.image) if window is not None else f.image for f in missing])
            for frame, features in zip(missing, self.network.frame_features(images).split(1)):
                computed[id(frame)] = features
                if frame.cache_local:
                    frame.local[key] = features
            self.stats["frame_features"] += len(missing)
        return [frame.local[key] if key in frame.local else computed[id(frame)] for frame in frames]

    def analysis(self, jobs: Sequence[PairJob], motions: Sequence, window, policy: PrecisionPolicy) -> PairAnalysis:
        """The network's per-pair analysis of every job (batch = jobs), for the whole canvas or a window."""
        def part(frame: Frame) -> torch.Tensor:
            return window.of(frame.image) if window is not None else frame.image

        features = self._features([f for job in jobs for f in (job.frame0, job.frame1)], window, policy)
        frame0 = torch.cat([part(job.frame0) for job in jobs])
        frame1 = torch.cat([part(job.frame1) for job in jobs])
        flow01 = torch.cat([window.of(m[0], 4) if window is not None else m[0] for m in motions])
        flow10 = torch.cat([window.of(m[1], 4) if window is not None else m[1] for m in motions])
        kernels0, kernels1 = self.network.pair_kernels(frame0, frame1)
        return PairAnalysis.of(
            frame0, frame1, flow01.contiguous(), flow10.contiguous(),
            FrameFeatures.cat(features[0::2]), FrameFeatures.cat(features[1::2]), kernels0, kernels1,
        )

    def _synthesize(self, jobs, motions, window, policy: PrecisionPolicy, items) -> list[Synthesis]:
        """One synthesis per (job index, t) item, in batches of `max_pairs` items (one in a window)."""
        used = sorted({j for j, _t in items})
        with policy.compute():
            analysis = self.analysis([jobs[j] for j in used], [motions[j] for j in used], window, policy)
            position = {j: i for i, j in enumerate(used)}
            results: list[Synthesis] = []
            # Windows exist because memory is short: one (pair, t) per forward there.
            per_forward = self.max_pairs if window is None else 1
            for start in range(0, len(items), per_forward):
                chunk = items[start : start + per_forward]
                if len(chunk) == 1 and len(used) == 1:
                    results.append(self.network.synthesize(analysis, chunk[0][1]))
                    continue
                batch = analysis.select([position[j] for j, _t in chunk])
                times = torch.tensor([t for _j, t in chunk], dtype=torch.float32)
                synthesis = self.network.synthesize(batch, times)
                results.extend(_unbatch(synthesis, len(chunk)))
        return results

    # ------------------------------------------------------------------------------ one pair, debug
    def run_pair(self, frame0: torch.Tensor, frame1: torch.Tensor, timesteps: Sequence[float]) -> PairRun:
        """Like `interpolate`, also returning padding and the network's intermediates."""
        check_pair(frame0, frame1)
        timesteps = check_timesteps(timesteps)
        with section("upload"):
            frames = [self.load(frame.to(self.device, torch.float32)) for frame in (frame0, frame1)]
        jobs = [PairJob(frames[0], frames[1], timesteps)]
        motions = self.motion(jobs)
        (syntheses,) = self._guarded(jobs, motions, None)
        with torch.inference_mode(), self.policy.compute():
            analysis = self.analysis(jobs, motions, None, self.policy)
        height, width = frame0.shape[-2:]
        with section("download"):
            out = [self.finish(s.frame, height, width)[0].float().cpu().contiguous() for s in syntheses]
        return PairRun(padding=self.padding(height, width), analysis=analysis, syntheses=syntheses, frames=out)


def _unbatch(synthesis: Synthesis, count: int) -> list[Synthesis]:
    fields = ("flow_t0", "flow_t1", "warped0", "warped1", "blend", "frame")
    parts = [getattr(synthesis, name).split(1) for name in fields]
    times = synthesis.t.tolist() if isinstance(synthesis.t, torch.Tensor) else [synthesis.t] * count
    return [Synthesis(times[i], *(part[i] for part in parts)) for i in range(count)]
