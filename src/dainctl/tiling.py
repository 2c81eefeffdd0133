"""Frames of any size within a memory budget: overlapping tiles with feathered seams.

An engine's peak memory grows with the number of (padded) pixels it processes at once. DAIN needs about
7.6 KB per padded pixel in fp32 (ANATOMY.md section 6: ~17 GB at 1080p, ~65 GB at 4K), so large frames
are cut into overlapping tiles, each tile is interpolated on its own, and the tiles are blended back with
weights that ramp linearly across the overlaps (a cross-fade instead of a visible seam).

    budget (bytes) --memory model--> max pixels per call --plan_tiles--> TileGrid --TiledEngine--> frames

`TiledEngine(inner, max_pixels=..., overlap=...)` implements the `Engine` protocol. A frame that fits
goes to the inner engine untouched (bit-identical output). When the inner engine runs out of memory on a
pair, the same pair is retried with half the pixel budget, and the smaller budget is kept for the
following pairs, until a tile would be smaller than `min_tile`.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .errors import EngineError, UsageError
from .profiling import section

# Bytes of peak memory per (padded) pixel for one frame pair, by engine and precision.
#  * dain fp32: ANATOMY.md section 6 (a pure-PyTorch port under no_grad, measured on CPU).
#  * dain fp16: not measured yet (no GPU in the session that wrote this); the fp32 figure is used, which
#    only makes tiles smaller than needed. Replace it with a measured value.
#  * flow: measured with `python -m dainctl.tiling --measure flow` on the CPU (docs/benchmarks.md): peak
#    RSS growth of one pair is 159 MiB at 1280x720 (180 B/px; 142 B/px marginal from 360p to 1080p). It
#    also counts OpenCV's DIS buffers, which stay on the CPU when the engine runs on CUDA, so it
#    over-estimates the GPU share.
BYTES_PER_PIXEL: dict[tuple[str, bool], float] = {
    ("dain", False): 7.6e3,
    ("dain", True): 7.6e3,
    ("flow", False): 180.0,
    ("flow", True): 180.0,
}
# DAIN's PWC-Net run once on the whole padded frame (both directions, batch 2), fp32: peak RSS growth
# measured on the CPU with `python -m dainctl.tiling --measure dain-flow --sizes 256x384,512x768`
# (1053 and 1125 B/px, 1150 B/px marginal). Its activations are freed before the
# per-window work starts, so this peak and a window's peak do not add up.
DAIN_WHOLE_FRAME_FLOW_BYTES_PER_PIXEL = 1.2e3
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


def bytes_per_pixel(engine_name: str, fp16: bool) -> float:
    """The memory model: peak bytes per padded pixel for one pair under `engine_name`."""
    try:
        return BYTES_PER_PIXEL[(engine_name, bool(fp16))]
    except KeyError:
        raise EngineError(f"no memory model for engine {engine_name!r}") from None


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


def max_pixels_for(budget: int | None, engine_name: str, fp16: bool) -> int | None:
    """Largest padded pixel count per call that fits `budget` bytes (None: unlimited)."""
    if budget is None:
        return None
    return max(1, int(budget * SAFETY_FRACTION / bytes_per_pixel(engine_name, fp16)))


def identity_size(height: int, width: int) -> tuple[int, int]:
    return height, width


def padded_size_of(engine) -> Callable[[int, int], tuple[int, int]]:
    """The (height, width) an engine really processes for a frame, padding included.

    An engine may say so itself with `padded_size(height, width)`; DAIN otherwise pads with its
    `padding_policy` (the original demo's rule by default); other engines process the frame as is.
    """
    own = getattr(engine, "padded_size", None)
    if callable(own):
        return own
    if getattr(engine, "name", None) == "dain":
        from .models.padding import padding_for

        policy = getattr(engine, "padding_policy", "demo")

        def dain_size(height: int, width: int) -> tuple[int, int]:
            pad = padding_for(height, width, policy)
            return height + pad.top + pad.bottom, width + pad.left + pad.right

        return dain_size
    return identity_size


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


def _is_dain_engine(engine) -> bool:
    if getattr(engine, "name", None) != "dain":
        return False
    from .engines.dain import DainEngine

    return isinstance(engine, DainEngine)


def _dain_networks(engine) -> tuple:
    """(float32 network, reduced-precision network or None) of a DainEngine."""
    return engine.network, engine.reduced_network


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def is_out_of_memory(error: BaseException) -> bool:
    """True for a CUDA out-of-memory error or a failed host allocation inside torch."""
    if isinstance(error, getattr(torch.cuda, "OutOfMemoryError", ())):
        return True
    if isinstance(error, (RuntimeError, MemoryError)):
        text = str(error).lower()
        return isinstance(error, MemoryError) or "out of memory" in text or "can't allocate memory" in text
    return False


class TiledEngine:
    """An Engine that runs `inner` on overlapping tiles of at most `max_pixels` padded pixels.

    max_pixels: padded pixels per inner call (None: never tile, but still retry smaller on OOM from a
      full-frame budget). overlap: minimum overlap between neighbouring tiles, in pixels; also the width
      of the feathered cross-fade. min_tile: smallest tile side tried after out-of-memory errors.
    Frames are (3, H, W) float32 CPU tensors, as in `dainctl.engines.base.Engine`; the blend accumulates
    in float32 on the CPU, one (3, H, W) buffer per timestep plus one (1, H, W) weight sum.
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
        self.inner = inner
        self.name = getattr(inner, "name", "engine")
        self.max_pixels = max_pixels
        self.overlap = overlap
        self.min_tile = min_tile
        self.on_retry = on_retry
        self.padded_size = padded_size_of(inner)
        self.dain = _is_dain_engine(inner)
        self.retries = 0
        self.last_grid: TileGrid | None = None

    def __getattr__(self, attribute):
        # Engine-specific attributes (device, dtype, model, ...) are the inner engine's.
        if attribute == "inner":
            raise AttributeError(attribute)
        return getattr(self.inner, attribute)

    def plan(self, height: int, width: int) -> TileGrid:
        """The tiles for a height x width frame; for DAIN, windows of the padded frame (see `_dain_pair`)."""
        if not self.dain:
            return plan_tiles(
                height, width, self.max_pixels, overlap=self.overlap, min_tile=self.min_tile, padded_size=self.padded_size
            )
        padded_h, padded_w = self.padded_size(height, width)
        if self.max_pixels is None or padded_h * padded_w <= self.max_pixels:
            return TileGrid(height, width, height, width, 1, 1)
        whole_frame_flow = padded_h * padded_w * DAIN_WHOLE_FRAME_FLOW_BYTES_PER_PIXEL
        if whole_frame_flow > self.max_pixels * BYTES_PER_PIXEL[("dain", False)]:
            raise EngineError(
                f"{width}x{height} frames need about {format_bytes(whole_frame_flow)} for DAIN's flow on the whole "
                "frame, more than the memory budget; raise --max-memory"
            )
        # Windows of the padded frame: sides multiples of 64 (the sub-networks' strides), starts multiples
        # of 4 (the flows are at quarter resolution).
        def multiple_of_64(h: int, w: int) -> tuple[int, int]:
            return _round_up(h, 64), _round_up(w, 64)

        grid = plan_tiles(
            padded_h, padded_w, self.max_pixels, overlap=_round_up(self.overlap, 4),
            min_tile=max(64, self.min_tile), padded_size=multiple_of_64,
        )
        rows_h, cols_w = multiple_of_64(grid.tile_height, grid.tile_width)
        return TileGrid(padded_h, padded_w, min(rows_h, padded_h), min(cols_w, padded_w), grid.rows, grid.cols, align=4)

    def interpolate(self, frame0: torch.Tensor, frame1: torch.Tensor, timesteps: Sequence[float]) -> list[torch.Tensor]:
        """frame0, frame1: (3, H, W) float32 RGB in [0, 1] on the CPU -> one (3, H, W) float32 frame per t."""
        height, width = frame0.shape[-2:]
        while True:
            grid = self.plan(height, width)
            self.last_grid = grid
            try:
                return self._interpolate_grid(grid, frame0, frame1, timesteps)
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
                self._shrink_after(error, grid, height, width)

    def _pixels_per_call(self, grid: TileGrid) -> int:
        if self.dain and grid.count > 1:
            return grid.tile_height * grid.tile_width  # DAIN windows are already padded
        padded_h, padded_w = self.padded_size(grid.tile_height, grid.tile_width)
        return padded_h * padded_w

    def _shrink_after(self, error: BaseException, grid: TileGrid, height: int, width: int) -> None:
        """Halve the pixels per call (kept for the following pairs), or give up with one EngineError."""
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        previous = self.max_pixels
        smaller = self._pixels_per_call(grid) // 2  # strictly fewer pixels than the call that failed
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

    def _interpolate_grid(self, grid: TileGrid, frame0, frame1, timesteps) -> list[torch.Tensor]:
        if grid.count == 1:
            return self.inner.interpolate(frame0, frame1, timesteps)
        if self.dain:
            return self._dain_pair(grid, frame0, frame1, timesteps)
        sums = [torch.zeros(frame0.shape, dtype=torch.float32) for _ in timesteps]
        weight_sum = torch.zeros((1, grid.height, grid.width), dtype=torch.float32)
        for tile in grid.tiles():
            window = (slice(None), slice(tile.top, tile.bottom), slice(tile.left, tile.right))
            outputs = self.inner.interpolate(frame0[window].contiguous(), frame1[window].contiguous(), timesteps)
            weights = feather_weights(grid, tile, self.overlap)
            for total, output in zip(sums, outputs):
                total[window] += output.float() * weights
            weight_sum[window] += weights
        return [total.div_(weight_sum) for total in sums]

    def _dain_pair(self, grid: TileGrid, frame0, frame1, timesteps) -> list[torch.Tensor]:
        """DAIN in windows of the padded frame, with PWC-Net's flows computed once on the whole frame.

        PWC-Net's coarse levels see far beyond any window, so flows estimated per window differ from the
        whole frame's at every seam (tiled vs untiled ~22 dB on random weights); depth, context, kernels,
        projection, warps and the rectifier are local enough to run per window (>= 40 dB, see
        tests/test_tiling_dain.py). The flow network also needs only ~1.2 KB per pixel against ~7.6 KB for
        the whole network. Precision and the fp32 guard follow `DainEngine.run_pair`.
        """
        from .engines.dain import frame_is_broken
        from .models.padding import crop_padding, pad_frames, padding_for

        engine = self.inner
        height, width = frame0.shape[-2:]
        padding = padding_for(height, width, engine.padding_policy)
        with section("upload"):
            batch = torch.stack((frame0, frame1)).to(engine.device, torch.float32)
            padded0, padded1 = pad_frames(batch, padding).split(1, dim=0)
        timesteps = [float(t) for t in timesteps]
        fp32_model, reduced_model = _dain_networks(engine)
        models = [m for m in (reduced_model, fp32_model) if m is not None]
        whole_flows: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

        sums = [torch.zeros((3, grid.height, grid.width), dtype=torch.float32) for _ in timesteps]
        weight_sum = torch.zeros((1, grid.height, grid.width), dtype=torch.float32)
        for tile in grid.tiles():
            window = (Ellipsis, slice(tile.top, tile.bottom), slice(tile.left, tile.right))
            flow_window = (Ellipsis, slice(tile.top // 4, tile.bottom // 4), slice(tile.left // 4, tile.right // 4))
            frames: dict[int, torch.Tensor] = {}
            pending = list(range(len(timesteps)))
            for model in models:
                with torch.inference_mode(), engine.conv_flags():
                    if id(model) not in whole_flows:  # the fp32 one only if the guard needs it
                        whole_flows[id(model)] = model.pair_flows(padded0, padded1)
                    flows = tuple(flow[flow_window].contiguous() for flow in whole_flows[id(model)])
                    analysis = model.analyze_pair(padded0[window], padded1[window], flows=flows)
                    for index in pending:
                        frames[index] = model.synthesize(analysis, timesteps[index]).frame
                    del analysis
                if model is fp32_model:
                    break
                # The guard, per window: redo in float32 only the times whose frame is broken.
                pending = [i for i in pending if frame_is_broken(frames[i])]
                if not pending:
                    break
                engine.stats["fp32_recomputed"] += len(pending)
            with section("download"):
                weights = feather_weights(grid, tile, self.overlap)
                for index, total in enumerate(sums):
                    total[window] += frames[index][0].float().cpu() * weights
                weight_sum[window] += weights
        engine.stats["pairs"] += 1
        engine.stats["frames"] += len(timesteps)
        return [crop_padding(total.div_(weight_sum), padding).clamp_(0.0, 1.0).contiguous() for total in sums]


def wrap_for_memory(
    engine,
    engine_name: str,
    *,
    device: str,
    fp16: bool,
    max_memory: int | None = None,
    overlap: int = DEFAULT_OVERLAP,
    on_retry: Callable[[str], None] | None = None,
):
    """`engine` inside a TiledEngine sized for `max_memory` (or the device's free memory).

    Call it after the engine (and its weights) are loaded, so that they count against the budget.
    """
    budget = available_memory(device, max_memory)
    return TiledEngine(
        engine, max_pixels=max_pixels_for(budget, engine_name, fp16), overlap=overlap, on_retry=on_retry
    )


def _measure(engine_name: str, sizes: Sequence[tuple[int, int]]) -> None:  # pragma: no cover - a tool
    """Print the peak RSS growth per pixel of one pair on the CPU (one fresh process per size).

    engine_name "flow" measures `FlowEngine.interpolate`; "dain-flow" measures DAIN's PWC-Net alone on a
    (2, 6, H, W) batch, as run once on the whole frame by `TiledEngine` (H, W multiples of 64).
    """
    import json
    import subprocess
    import sys

    setup = {
        "flow": (
            "from dainctl.engines import create_engine\n"
            "engine = create_engine('flow', device='cpu')\n"
            "g = torch.Generator().manual_seed(0)\n"
            "f0 = torch.rand(3, h, w, generator=g); f1 = torch.roll(f0, 3, dims=2)\n"
            "engine.interpolate(f0[:, :64, :64].contiguous(), f1[:, :64, :64].contiguous(), [0.5])\n"
            "work = lambda: engine.interpolate(f0, f1, [0.5])\n"
        ),
        "dain-flow": (
            "from dainctl.models.dain import DAIN\n"
            "torch.set_grad_enabled(False)\n"
            "model = DAIN().eval()\n"
            "model.flownets(torch.rand(2, 6, 64, 64))\n"
            "pairs = torch.rand(2, 6, h, w)\n"
            "work = lambda: model.flownets(pairs)\n"
        ),
    }[engine_name]
    code = (
        "import resource, sys, json, torch\n"
        "h, w = int(sys.argv[1]), int(sys.argv[2])\n"
        + setup
        + "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "work()\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(json.dumps({'pixels': h * w, 'growth': (peak - base) * 1024}))\n"
    )
    results = []
    for height, width in sizes:
        out = subprocess.run([sys.executable, "-c", code, str(height), str(width)],
                             check=True, capture_output=True, text=True, env=dict(os.environ)).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
        growth = results[-1]["growth"]
        print(f"{engine_name} {height}x{width}: peak RSS growth {growth / 2**20:.1f} MiB ({growth / (height * width):.0f} B/px)")
    if len(results) > 1:
        (p0, g0), (p1, g1) = [(r["pixels"], r["growth"]) for r in (results[0], results[-1])]
        print(f"{engine_name}: {(g1 - g0) / (p1 - p0):.0f} bytes per pixel (slope between the smallest and largest size)")


if __name__ == "__main__":  # pragma: no cover
    import argparse

    parser = argparse.ArgumentParser(description="Measure an engine's peak memory per pixel on the CPU.")
    parser.add_argument("--measure", default="flow", choices=("flow", "dain-flow"))
    parser.add_argument("--sizes", default="360x640,720x1280,1080x1920", help="HEIGHTxWIDTH,...")
    arguments = parser.parse_args()
    _measure(arguments.measure, [tuple(int(v) for v in s.split("x")) for s in arguments.sizes.split(",")])
