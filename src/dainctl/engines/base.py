"""The one seam between the pipeline and every interpolation engine.

    frame (3,H,W) float32 on engine.device
      --engine.load-->    Frame     per input frame, once: whatever depends on one frame and must see
                                    all of it (DAIN: PWC-Net's feature pyramid; the weight-free engine:
                                    its work-size images)
    [PairJob(frame0, frame1, timesteps), ...]   up to engine.max_pairs at once
      --engine.motion-->  [Motion]  per pair, on the whole frame, batched (DAIN: PWC-Net's flows; the
                                    weight-free engine: DIS flows and splat weights)
      --engine.render-->  [[frame per t] per pair]   the rest, for the whole canvas or one window of it
                                    (DAIN: depth and context per frame, cached in the Frame while its
                                    pairs need it; kernels per pair; projection, warps and the rectifier
                                    per t, batched over pairs and times)

The canvas is what the engine really processes (`canvas_size`: DAIN pads to multiples of 64, the
weight-free engine works on the frame itself). `render(..., window=None)` returns finished frames:
(3,H,W) float32 in [0, 1] on the engine's device. `render(..., window=tile)` returns that window of the
canvas, unclamped, for `dainctl.tiling.TiledEngine` to blend, which then calls `finish`. Windows start
at multiples of `window_align` and have sides that are multiples of `window_multiple` (or reach the
canvas's end).

An engine declares its `device`, its `policy` (`dainctl.precision.PrecisionPolicy`), `max_pairs`, and
its memory model (`bytes_per_pixel`: peak bytes per canvas pixel of one pair's render;
`whole_frame_bytes_per_pixel`: the peak of `load` + `motion`, which always see the whole frame).

`EngineBase.interpolate(frame0, frame1, timesteps)` runs one pair through the seam from CPU float32
frames to CPU float32 frames, for tests, the quality benchmark and simple callers. `as_engine` gives an
object with only such an `interpolate` (a test double, say) the seam.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import torch

from ..errors import UsageError
from ..precision import PrecisionPolicy
from ..profiling import section


@dataclass(frozen=True)
class Window:
    """A rectangle of the canvas: rows [top, bottom), columns [left, right)."""

    top: int
    bottom: int
    left: int
    right: int

    @property
    def key(self) -> tuple[int, int, int, int]:
        return (self.top, self.bottom, self.left, self.right)

    def of(self, tensor: torch.Tensor, scale: int = 1) -> torch.Tensor:
        """This window of a (..., H, W) tensor whose resolution is 1/scale of the canvas's."""
        return tensor[..., self.top // scale : self.bottom // scale, self.left // scale : self.right // scale]


@dataclass
class Frame:
    """One input frame on the engine's device, with the engine's per-frame work.

    image: (1, 3, h, w) RGB in [0, 1] as the engine keeps it (DAIN: padded to its canvas; the weight-free
    engine: in its storage dtype). size: the input frame's (height, width); None: the image's.
    whole: the engine's whole-frame work. local: per-window work cached while the frame's pairs need it
    (key: `Window.key`, or None for the whole canvas, with the policy's name) when `cache_local` is set.
    """

    image: torch.Tensor
    size: tuple[int, int] | None = None
    whole: Any = None
    local: dict = field(default_factory=dict)
    cache_local: bool = True

    def __post_init__(self) -> None:
        if self.size is None:
            self.size = (int(self.image.shape[-2]), int(self.image.shape[-1]))

    @property
    def height(self) -> int:
        return self.size[0]

    @property
    def width(self) -> int:
        return self.size[1]


@dataclass
class PairJob:
    """Two neighbouring frames and the times in (0, 1) wanted between them."""

    frame0: Frame
    frame1: Frame
    timesteps: tuple[float, ...]


class Engine(Protocol):
    name: str
    device: torch.device
    policy: PrecisionPolicy
    max_pairs: int
    window_align: int
    window_multiple: int
    stats: dict

    def canvas_size(self, height: int, width: int) -> tuple[int, int]: ...

    def bytes_per_pixel(self) -> float: ...

    def whole_frame_bytes_per_pixel(self) -> float: ...

    def load(self, image: torch.Tensor) -> Frame: ...

    def prepare(self, jobs: Sequence[PairJob]) -> bool: ...

    def motion(self, jobs: Sequence[PairJob]) -> list: ...

    def render(self, jobs: Sequence[PairJob], motions: Sequence, window: Window | None = None) -> list[list[torch.Tensor]]: ...

    def finish(self, canvas: torch.Tensor, height: int, width: int) -> torch.Tensor: ...

    def expect_run(self, new_frames: int, pairs: int, fixed_seconds: float) -> None: ...


def check_timesteps(timesteps: Sequence[float]) -> tuple[float, ...]:
    timesteps = tuple(float(t) for t in timesteps)
    if any(not 0.0 < t < 1.0 for t in timesteps):
        raise UsageError(f"interpolation times must lie strictly between 0 and 1, got {list(timesteps)}")
    return timesteps


class EngineBase:
    """Defaults of the seam, and `interpolate` for one pair of CPU frames."""

    name = "engine"
    max_pairs = 1
    window_align = 1
    window_multiple = 1

    def canvas_size(self, height: int, width: int) -> tuple[int, int]:
        return height, width

    def finish(self, canvas: torch.Tensor, height: int, width: int) -> torch.Tensor:
        return canvas[..., :height, :width].clamp(0.0, 1.0)

    def whole_frame_bytes_per_pixel(self) -> float:
        return 0.0

    def pairs_per_forward(self, height: int, width: int) -> int:
        return self.max_pairs

    def prepare(self, jobs: Sequence[PairJob]) -> bool:
        """Told by the pipeline of the pairs it will ask `motion` for next, before it renders the pairs
        before them: an engine may start their motion in the background and return True, and the
        pipeline then holds them back by one pair so that the two overlap. The default starts nothing."""
        return False

    def expect_run(self, new_frames: int, pairs: int, fixed_seconds: float) -> None:
        """Told by the pipeline before the first pair: the run will compute `new_frames` frames from
        `pairs` pairs, and `fixed_seconds` went to work outside the engine that it cannot overlap (the
        process's start-up, the analysis pass). An engine that chooses its settings by time counts them;
        the default ignores it."""

    @property
    def compute_device(self) -> torch.device:
        """Where the engine's work runs (the pipeline nices decoding and encoding when it is the CPU)."""
        return self.device

    def interpolate_jobs(self, jobs: Sequence[PairJob], window: Window | None = None) -> list[list[torch.Tensor]]:
        return self.render(jobs, self.motion(jobs), window)

    def interpolate(self, frame0: torch.Tensor, frame1: torch.Tensor, timesteps: Sequence[float]) -> list[torch.Tensor]:
        """Frames (3, H, W) float32 RGB in [0, 1] on the CPU -> one such frame per t in (0, 1)."""
        check_pair(frame0, frame1)
        timesteps = check_timesteps(timesteps)
        if not timesteps:
            return []
        with section("upload"):
            images = [frame.to(self.device, torch.float32) for frame in (frame0, frame1)]
        frames = [self.load(image) for image in images]
        (outputs,) = self.interpolate_jobs([PairJob(frames[0], frames[1], timesteps)])
        with section("download"):
            return [frame.float().cpu().contiguous() for frame in outputs]


def check_pair(frame0: torch.Tensor, frame1: torch.Tensor) -> None:
    from ..errors import InputError

    for name, frame in (("frame0", frame0), ("frame1", frame1)):
        if frame.dim() != 3 or frame.shape[0] != 3:
            raise InputError(f"frames must be RGB shaped (3, H, W); {name} is {tuple(frame.shape)}")
    if frame0.shape != frame1.shape:
        raise InputError(f"frames differ in size: {tuple(frame0.shape)} vs {tuple(frame1.shape)}")


class PairwiseEngine(EngineBase):
    """The seam around an object that only has `interpolate(frame0, frame1, timesteps)` on CPU frames
    (no per-frame work to share; a window is interpolated on its own). Its frames stay on the CPU; the
    object may compute elsewhere (its `device`)."""

    def __init__(self, inner):
        self.inner = inner
        self.name = getattr(inner, "name", "engine")
        self.device = torch.device("cpu")
        self._compute_device = torch.device(getattr(inner, "device", "cpu"))
        self.policy = PrecisionPolicy("fp32", self.device.type)
        self.stats = getattr(inner, "stats", {})

    @property
    def compute_device(self) -> torch.device:
        return self._compute_device

    def bytes_per_pixel(self) -> float:
        return float(getattr(self.inner, "bytes_per_pixel", 0.0) or 0.0)

    def load(self, image: torch.Tensor) -> Frame:
        return Frame(image.reshape(1, *image.shape[-3:]))

    def motion(self, jobs):
        return [None] * len(jobs)

    def render(self, jobs, motions, window=None):
        results = []
        for job in jobs:
            frame0, frame1 = job.frame0.image[0], job.frame1.image[0]
            if window is not None:
                frame0, frame1 = window.of(frame0).contiguous(), window.of(frame1).contiguous()
            outputs = self.inner.interpolate(frame0.cpu(), frame1.cpu(), list(job.timesteps))
            results.append([output.to(self.device) for output in outputs])
        return results

    def interpolate(self, frame0, frame1, timesteps):
        return self.inner.interpolate(frame0, frame1, timesteps)


def as_engine(engine) -> Engine:
    """`engine` itself when it implements the seam, else the seam around its `interpolate`."""
    if hasattr(engine, "load") and hasattr(engine, "render"):
        return engine
    return PairwiseEngine(engine)
