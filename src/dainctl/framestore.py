"""Decoded frames to the engine's device and generated frames back, each crossing once, as integers.

The pipeline keeps the frames it still needs keyed by input index (`FrameStore`): each decoded frame is
uploaded once as uint8 (4x fewer bytes than float32; pinned host memory and a non-blocking copy on
CUDA), converted to float32 on the device, and handed to the engine's `load` for its per-frame work;
it is released when its second pair is done. Generated frames are converted to uint8 on the device and
copied back on a stream of their own (CUDA), so the next batch computes while they travel; the encoder
thread waits for each copy (`HostFrame.numpy`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from .engines.base import Frame
from .profiling import section


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 or uint16 (H,W,3) RGB -> float32 (3,H,W) in [0,1] (divided by 255 or 65535), contiguous.

    Contiguous planes, made once per frame: the ops read (C,H,W) planes and would otherwise copy a
    channels-interleaved frame on every call (two copies per new frame in the weight-free engine, 2 ms
    each at 1280x720)."""
    return _to_float(_host_tensor(rgb), rgb.dtype)


def to_rgb(frame: torch.Tensor, dtype=np.uint8) -> np.ndarray:
    """float32 (3,H,W) in [0,1] -> uint8 (or uint16 with dtype=np.uint16) (H,W,3) RGB, rounded half to even."""
    return _quantize(frame, dtype).cpu().numpy().astype(dtype, copy=False)


def _host_tensor(rgb: np.ndarray) -> torch.Tensor:
    if rgb.dtype == np.uint16:
        # torch has no uint16 arithmetic on every build: widen in NumPy, exact in float32 (< 2**24).
        return torch.from_numpy(rgb.astype(np.float32))
    if rgb.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 or uint16 RGB, got {rgb.dtype}")
    return torch.from_numpy(rgb)


def _to_float(pixels: torch.Tensor, dtype) -> torch.Tensor:
    """(H,W,3) integer pixels (or float32 holding uint16 values) -> contiguous (3,H,W) float32 in [0,1]."""
    scale = 65535.0 if np.dtype(dtype) == np.uint16 else 255.0
    if pixels.device.type == "cpu" and pixels.dtype == torch.uint8:
        # OpenCV separates the planes several times faster than a strided copy (1280x720, one thread:
        # 0.7-1.1 ms against 1.4-1.5 ms for the whole conversion).
        planes = torch.empty((3, *pixels.shape[:2]), dtype=torch.float32)
        for channel, plane in enumerate(cv2.split(pixels.numpy())):
            planes[channel].copy_(torch.from_numpy(plane))
        return planes.div_(scale)
    # The planes are separated on the narrow integer pixels, then widened (cheaper than the other order).
    return pixels.permute(2, 0, 1).contiguous().to(torch.float32).div_(scale)


def _quantize(frame: torch.Tensor, dtype) -> torch.Tensor:
    """(3,H,W) float -> (H,W,3) rounded integers on the frame's device: uint8, or float32 holding the
    uint16 values (torch has no uint16 arithmetic on every build). Out-of-range values saturate."""
    if np.dtype(dtype) == np.uint16:
        return frame.detach().float().clamp(0, 1).mul(65535.0).round_().permute(1, 2, 0).contiguous()
    if frame.device.type == "cpu" and frame.shape[-1] * frame.shape[-2] > 4:
        # OpenCV scales each plane by 255, rounds half to even and saturates in one pass (the same
        # integers as the torch expression below: tests/test_pipeline.py), then interleaves the planes
        # about 20x faster than a strided copy: 1280x720 on one thread 1.8-3.0 ms -> 0.3-0.4 ms, on the
        # pipeline's busiest thread (5.3-6.2 ms before the interleaving by OpenCV). (A plane of one pixel
        # would be taken for the scalar: OpenCV's multiply then returns four.)
        planes = frame.detach().float().contiguous().numpy()
        return torch.from_numpy(cv2.merge([cv2.multiply(plane, 255.0, dtype=cv2.CV_8U) for plane in planes]))
    # Rounded, then clamped: the same integers as clamping first, one pass and one copy fewer.
    planes = frame.detach().mul(255.0).round_().clamp_(0, 255).to(torch.uint8)
    return planes.permute(1, 2, 0).contiguous()


@dataclass
class HostFrame:
    """A generated frame on its way to the host; `numpy()` waits for the copy."""

    pixels: torch.Tensor
    dtype: np.dtype
    done: "torch.cuda.Event | None" = None

    def numpy(self) -> np.ndarray:
        if self.done is not None:
            self.done.synchronize()
        return self.pixels.numpy().astype(self.dtype, copy=False)


class FrameStore:
    """The frames the pipeline still needs, on the engine's device (see the module docstring)."""

    def __init__(self, engine):
        self.engine = engine
        self.device = torch.device(engine.device)
        self.cuda = self.device.type == "cuda"
        self._frames: dict[int, Frame] = {}
        self._stream = torch.cuda.Stream(self.device) if self.cuda else None
        self.uploads = 0

    def get(self, index: int, rgb: np.ndarray) -> Frame:
        """Input frame `index` loaded by the engine: uploaded and processed on first use only."""
        frame = self._frames.get(index)
        if frame is None:
            with section("upload"):
                host = _host_tensor(rgb)
                if self.cuda:
                    host = host.pin_memory()
                image = _to_float(host.to(self.device, non_blocking=self.cuda), rgb.dtype)
            frame = self._frames[index] = self.engine.load(image)
            self.uploads += 1
        return frame

    def release_before(self, index: int) -> None:
        """Frames before input `index` are needed no more."""
        for key in [key for key in self._frames if key < index]:
            del self._frames[key]

    def __len__(self) -> int:
        return len(self._frames)

    def download(self, frames: list[torch.Tensor], dtype) -> list[HostFrame]:
        """Generated (3,H,W) frames on the device -> host frames, copied on the download stream."""
        with section("download"):
            quantized = [_quantize(frame, dtype) for frame in frames]
            if not self.cuda:
                return [HostFrame(q.cpu(), np.dtype(dtype)) for q in quantized]
            self._stream.wait_stream(torch.cuda.current_stream(self.device))
            results = []
            with torch.cuda.stream(self._stream):
                for q in quantized:
                    host = torch.empty(q.shape, dtype=q.dtype, pin_memory=True)
                    host.copy_(q, non_blocking=True)
                    q.record_stream(self._stream)
                    done = torch.cuda.Event()
                    done.record(self._stream)
                    results.append(HostFrame(host, np.dtype(dtype), done))
            return results
