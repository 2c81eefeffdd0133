"""Frames of any size within a memory budget: overlapping tiles with feathered seams.

An engine's peak memory grows with the number of canvas pixels it renders at once (DAIN: about 7.6 KB
per padded pixel in fp32, ~17 GB at 1080p), so large frames are rendered in overlapping windows of the
canvas and blended back with weights that ramp linearly across the overlaps (a cross-fade instead of a
visible seam).

    budget (bytes) --engine's memory model--> max pixels per render --plan_tiles--> TileGrid
        --TiledEngine--> frames

`TiledEngine(inner, max_pixels=..., overlap=...)` wraps any engine through the seam of
`dainctl.engines.base` alone: `load` and `motion` run on the whole frame (the engine declares what they
cost per pixel), `render` runs per window, and per-frame work inside the render (DAIN's depth and
context) is computed per window too; it is cached across pairs only when the frame is one window. A
frame that fits goes to the inner engine untouched (bit-identical output). When the inner engine runs
out of memory on a pair, the same pair is retried with half the pixel budget, and the smaller budget is
kept for the following pairs, until a tile would be smaller than `min_tile`.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .engines.base import EngineBase, Frame, PairJob, Window, as_engine
from .errors import EngineError, UsageError

# Kept free on top of the model's estimate: allocator fragmentation, cuDNN workspaces, the tile copies.
SAFETY_FRACTION = 0.85
DEFAULT_OVERLAP = 64
DEFAULT_MIN_TILE = 128

_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_MEMORY_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_memory(text: str) -> int:
    """`16G`, `16GB`, `16GiB`, `512M`, `1.5g` or a plain byte count -> bytes (powers of 1024)."""
    match = _MEMORY_RE.match(str(text))
    if not match:
        raise UsageError(f"invalid memory size {text!r}: use a number with an optional unit, e.g. 16G or 512M")
    value = float(match.group(1)) * _MEMORY_UNITS[match.group(2).lower()]
    if value < 1:
        raise UsageError(f"invalid memory size {text!r}: it must be positive")
    return int(value)


def format_bytes(value: float | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover


def available_memory(device: str, max_memory: int | None = None) -> int | None:
    """Bytes the engine may still use on `device` for activations, or None for "no limit known".

    CUDA: the free memory reported by the driver, capped by `max_memory` minus what this process has
    already allocated (the model weights count against the user's budget). CPU: `max_memory` if given,
    else the kernel's MemAvailable, because running out of host memory kills the process instead of
    raising an error that could be retried.
    """
    if str(device).startswith("cuda"):
        free, _total = torch.cuda.mem_get_info()
        budget = free
        if max_memory is not None:
            budget = min(budget, max_memory - torch.cuda.memory_allocated())
        return max(0, int(budget))
    if max_memory is not None:
        return max_memory
    return _host_available()


def _host_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def max_pixels_for(budget: int | None, bytes_per_pixel: float) -> int | None:
    """Largest canvas pixel count per render that fits `budget` bytes (None: unlimited)."""
    if budget is None or bytes_per_pixel <= 0:
        return None
    return max(1, int(budget * SAFETY_FRACTION / bytes_per_pixel))


def identity_size(height: int, width: int) -> tuple[int, int]:
    return height, width


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@dataclass(frozen=True)
class Tile:
    """A rectangle of the frame: rows [top, bottom), columns [left, right)."""

    top: int
    bottom: int
    left: int
    right: int


@dataclass(frozen=True)
class TileGrid:
    """Overlapping tiles covering a height x width frame: `rows` x `cols` tiles of tile_height x tile_width."""

    height: int
    width: int
    tile_height: int
    tile_width: int
    rows: int
    cols: int
    align: int = 1  # tile starts are multiples of this (DAIN: 4, its flows are at quarter resolution)

    @property
    def count(self) -> int:
        return self.rows * self.cols

    def tiles(self) -> list[Tile]:
        tops = _starts(self.height, self.tile_height, self.rows, self.align)
        lefts = _starts(self.width, self.tile_width, self.cols, self.align)
        return [Tile(top, top + self.tile_height, left, left + self.tile_width) for top in tops for left in lefts]


def _starts(size: int, tile: int, count: int, align: int = 1) -> list[int]:
    """Evenly spread tile starts: the first at 0, the last flush with the end (if that is aligned)."""
    if count == 1:
        return [0]
    return [align * round(i * (size - tile) / (count - 1) / align) for i in range(count)]


def _tile_side(size: int, count: int, overlap: int) -> int:
    return min(size, -(-(size + (count - 1) * overlap) // count))


def _grow_to_padding(side: int, size: int, other: int, padded: Callable[[int, int], tuple[int, int]], axis: int) -> int:
    """Enlarge a tile side while the padded size stays the same: more overlap at no extra cost."""
    def padded_side(value: int) -> int:
        return padded(value, other)[0] if axis == 0 else padded(other, value)[1]

    target = padded_side(side)
    while side < size and padded_side(side + 1) == target:
        side += 1
    return side


def plan_tiles(
    height: int,
    width: int,
    max_pixels: int | None,
    *,
    overlap: int = DEFAULT_OVERLAP,
    min_tile: int = DEFAULT_MIN_TILE,
    padded_size: Callable[[int, int], tuple[int, int]] = identity_size,
) -> TileGrid:
    """The grid with the fewest tiles whose padded tile size is at most `max_pixels` pixels.

    Neighbouring tiles overlap by at least `overlap` pixels (a tile as large as the frame needs none).
    Raises EngineError when even tiles of `min_tile` pixels a side would not fit.
    """
    if max_pixels is None:
        return TileGrid(height, width, height, width, 1, 1)
    best: TileGrid | None = None
    best_key = None
    max_rows = max(1, math.ceil(height / max(1, min(min_tile, height) - overlap)))
    max_cols = max(1, math.ceil(width / max(1, min(min_tile, width) - overlap)))
    for rows in range(1, max_rows + 1):
        tile_height = _tile_side(height, rows, overlap)
        if tile_height < min(min_tile, height) or (rows > 1 and tile_height <= overlap):
            break
        for cols in range(1, max_cols + 1):
            tile_width = _tile_side(width, cols, overlap)
            if tile_width < min(min_tile, width) or (cols > 1 and tile_width <= overlap):
                break
            padded_h, padded_w = padded_size(tile_height, tile_width)
            if padded_h * padded_w > max_pixels:
                continue
            # Fewest calls first, then the squarest tiles (least border per pixel).
            key = (rows * cols, abs(math.log(tile_height / tile_width)))
            if best_key is None or key < best_key:
                best_key = key
                best = TileGrid(height, width, tile_height, tile_width, rows, cols)
            break  # more columns only make more tiles
    if best is None:
        raise EngineError(
            f"the memory budget allows {max_pixels} pixels per step, too few for {height}x{width} frames "
            f"in tiles of at least {min_tile} px with {overlap} px overlap; raise --max-memory"
        )
    tile_height = _grow_to_padding(best.tile_height, height, best.tile_width, padded_size, 0) if best.rows > 1 else best.tile_height
    tile_width = _grow_to_padding(best.tile_width, width, tile_height, padded_size, 1) if best.cols > 1 else best.tile_width
    return TileGrid(height, width, tile_height, tile_width, best.rows, best.cols)


def feather_weights(grid: TileGrid, tile: Tile, overlap: int) -> torch.Tensor:
    """Blend weight of each pixel of `tile`, (1, h, w) float32 in (0, 1].

    1 inside; on each side that borders another tile the weight ramps linearly down over the `overlap`
    pixels nearest that side, so two neighbours cross-fade where they overlap. Sides on the frame's own
    border keep weight 1 (nothing to fade into). Never zero, so every pixel has a defined blend.
    """
    def ramp(length: int, start: int, end: int, size: int) -> torch.Tensor:
        weights = torch.ones(length, dtype=torch.float32)
        fade = min(overlap, length // 2)
        if fade > 0:
            steps = (torch.arange(fade, dtype=torch.float32) + 1.0) / (fade + 1.0)
            if start > 0:
                weights[:fade] = torch.minimum(weights[:fade], steps)
            if end < size:
                weights[-fade:] = torch.minimum(weights[-fade:], steps.flip(0))
        return weights

    rows = ramp(tile.bottom - tile.top, tile.top, tile.bottom, grid.height)
    cols = ramp(tile.right - tile.left, tile.left, tile.right, grid.width)
    return (rows[:, None] * cols[None, :]).unsqueeze(0)


def is_out_of_memory(error: BaseException) -> bool:
    """True for a CUDA out-of-memory error or a failed host allocation inside torch."""
    if isinstance(error, getattr(torch.cuda, "OutOfMemoryError", ())):
        return True
    if isinstance(error, (RuntimeError, MemoryError)):
        text = str(error).lower()
        return isinstance(error, MemoryError) or "out of memory" in text or "can't allocate memory" in text
    return False


class TiledEngine(EngineBase):
    """The seam of `inner`, rendering windows of at most `max_pixels` canvas pixels.

    max_pixels: canvas pixels per render (None: never tile, but still retry smaller on OOM from a
      full-frame budget). overlap: minimum overlap between neighbouring windows, in pixels; also the
      width of the feathered cross-fade. min_tile: smallest window side tried after out-of-memory errors.
    The blend accumulates in float32 on the engine's device, one (3, H, W) canvas per timestep plus one
    (1, H, W) weight sum.
    """

    def __init__(
        self,
        inner,
        *,
        max_pixels: int | None,
        overlap: int = DEFAULT_OVERLAP,
        min_tile: int = DEFAULT_MIN_TILE,
        on_retry: Callable[[str], None] | None = None,
    ):
        if overlap < 0:
            raise UsageError(f"tile overlap must be >= 0, got {overlap}")
        if max_pixels is not None and max_pixels < 1:
            raise UsageError(f"max_pixels must be positive, got {max_pixels}")
        self.inner = as_engine(inner)
        self.name = self.inner.name
        self.max_pixels = max_pixels
        self.overlap = overlap
        self.min_tile = min_tile
        self.on_retry = on_retry
        self.retries = 0
        self.last_grid: TileGrid | None = None

    # What the wrapper declares is the inner engine's.
    @property
    def device(self) -> torch.device:
        return self.inner.device

    @property
    def compute_device(self) -> torch.device:
        return self.inner.compute_device

    @property
    def policy(self):
        return self.inner.policy

    @property
    def stats(self) -> dict:
        return self.inner.stats

    @property
    def window_align(self) -> int:
        return self.inner.window_align

    @property
    def window_multiple(self) -> int:
        return self.inner.window_multiple

    def canvas_size(self, height: int, width: int) -> tuple[int, int]:
        return self.inner.canvas_size(height, width)

    def expect_run(self, new_frames: int, pairs: int, fixed_seconds: float) -> None:
        expect = getattr(self.inner, "expect_run", None)
        if expect is not None:
            expect(new_frames, pairs, fixed_seconds)

    def bytes_per_pixel(self) -> float:
        return self.inner.bytes_per_pixel()

    def whole_frame_bytes_per_pixel(self) -> float:
        return self.inner.whole_frame_bytes_per_pixel()

    def finish(self, canvas: torch.Tensor, height: int, width: int) -> torch.Tensor:
        return self.inner.finish(canvas, height, width)

    def pairs_per_forward(self, height: int, width: int) -> int:
        """The inner engine's, limited by the budget: one pair per render once frames are tiled."""
        inner = self.inner.pairs_per_forward(height, width)
        if self.max_pixels is None:
            return inner
        canvas_h, canvas_w = self.canvas_size(height, width)
        return max(1, min(inner, self.max_pixels // (canvas_h * canvas_w)))

    # ------------------------------------------------------------------------------------- plan
    def plan(self, height: int, width: int) -> TileGrid:
        """The windows of the canvas for a height x width frame: sides multiples of the engine's
        `window_multiple` (or the canvas's own), starts multiples of its `window_align`."""
        canvas_h, canvas_w = self.canvas_size(height, width)
        if self.max_pixels is None or canvas_h * canvas_w <= self.max_pixels:
            return TileGrid(canvas_h, canvas_w, canvas_h, canvas_w, 1, 1)
        whole = canvas_h * canvas_w * self.whole_frame_bytes_per_pixel()
        if whole > self.max_pixels * self.bytes_per_pixel():
            raise EngineError(
                f"{width}x{height} frames need about {format_bytes(whole)} for the {self.name} engine's work on the "
                "whole frame, more than the memory budget; raise --max-memory"
            )
        multiple, align = self.window_multiple, self.window_align

        def rounded(h: int, w: int) -> tuple[int, int]:
            return min(_round_up(h, multiple), canvas_h), min(_round_up(w, multiple), canvas_w)

        grid = plan_tiles(
            canvas_h, canvas_w, self.max_pixels, overlap=_round_up(self.overlap, align),
            min_tile=max(multiple, self.min_tile), padded_size=rounded,
        )
        tile_h, tile_w = rounded(grid.tile_height, grid.tile_width)
        return TileGrid(canvas_h, canvas_w, tile_h, tile_w, grid.rows, grid.cols, align=align)

    def _shrink_after(self, error: BaseException, grid: TileGrid, height: int, width: int) -> None:
        """Halve the pixels per call (kept for the following pairs), or give up with one EngineError."""
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        previous = self.max_pixels
        smaller = grid.tile_height * grid.tile_width // 2  # strictly fewer pixels than the call that failed
        self.max_pixels = smaller
        try:
            self.plan(height, width)
        except EngineError:
            self.max_pixels = previous
            raise EngineError(
                f"out of memory even with {grid.tile_height}x{grid.tile_width} tiles ({type(error).__name__}); "
                "use --fp16, a larger --max-memory on a larger GPU, or smaller frames"
            ) from error
        self.retries += 1
        message = (
            f"out of memory with {grid.rows}x{grid.cols} tiles of {grid.tile_height}x{grid.tile_width}; "
            f"retrying the same pair with tiles of at most {smaller} pixels"
        )
        if self.on_retry is not None:
            self.on_retry(message)
        else:
            warnings.warn(message, RuntimeWarning, stacklevel=3)

    # ------------------------------------------------------------------------------------- seam
    def load(self, image: torch.Tensor) -> Frame:
        frame = self.inner.load(image)
        frame.cache_local = self.plan(*image.shape[-2:]).count == 1
        return frame

    def prepare(self, jobs: Sequence[PairJob]) -> bool:
        prepare = getattr(self.inner, "prepare", None)  # optional for seam objects outside EngineBase
        return bool(prepare(jobs)) if prepare is not None else False

    def motion(self, jobs: Sequence[PairJob]) -> list:
        return self.inner.motion(jobs)

    def render(self, jobs: Sequence[PairJob], motions: Sequence, window: Window | None = None) -> list[list[torch.Tensor]]:
        if window is not None:
            return self.inner.render(jobs, motions, window)
        height, width = jobs[0].frame0.size
        while True:
            grid = self.plan(height, width)
            self.last_grid = grid
            try:
                if grid.count == 1:
                    return self.inner.render(jobs, motions, None)
                return self._render_tiles(grid, jobs, motions, height, width)
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
                for job in jobs:  # in windows from now on: nothing cached for the whole canvas is reused
                    for frame in (job.frame0, job.frame1):
                        frame.cache_local = False
                        frame.local.clear()
                self._shrink_after(error, grid, height, width)

    def _render_tiles(self, grid: TileGrid, jobs, motions, height: int, width: int) -> list[list[torch.Tensor]]:
        device = self.device
        sums = [[torch.zeros((3, grid.height, grid.width), dtype=torch.float32, device=device) for _ in job.timesteps]
                for job in jobs]
        weight_sum = torch.zeros((1, grid.height, grid.width), dtype=torch.float32, device=device)
        for tile in grid.tiles():
            window = Window(tile.top, tile.bottom, tile.left, tile.right)
            outputs = self.inner.render(jobs, motions, window)
            weights = feather_weights(grid, tile, self.overlap).to(device)
            for job_sums, job_outputs in zip(sums, outputs):
                for total, output in zip(job_sums, job_outputs):
                    window.of(total).add_(output.float() * weights)
            window.of(weight_sum).add_(weights)
        return [[self.finish(total.div_(weight_sum), height, width) for total in job_sums] for job_sums in sums]


def wrap_for_memory(
    engine,
    *,
    device: str,
    max_memory: int | None = None,
    overlap: int = DEFAULT_OVERLAP,
    on_retry: Callable[[str], None] | None = None,
):
    """`engine` inside a TiledEngine sized for `max_memory` (or the device's free memory) with the
    engine's own memory model.

    Call it after the engine (and its weights) are loaded, so that they count against the budget.
    """
    engine = as_engine(engine)
    budget = available_memory(device, max_memory)
    return TiledEngine(
        engine, max_pixels=max_pixels_for(budget, engine.bytes_per_pixel()), overlap=overlap, on_retry=on_retry
    )
