"""Tiles within a memory budget: planning, feathered blending, out-of-memory retries, tiled vs untiled."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from dainctl.errors import EngineError, UsageError
from dainctl.tiling import (
    TiledEngine,
    TileGrid,
    feather_weights,
    is_out_of_memory,
    max_pixels_for,
    parse_memory,
    plan_tiles,
    wrap_for_memory,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


class PointwiseEngine:
    """Each output pixel depends only on the same input pixel: tiling must not change the result at all."""

    name = "pointwise"

    def __init__(self):
        self.calls: list[tuple[int, int]] = []

    def interpolate(self, frame0, frame1, timesteps):
        self.calls.append(tuple(frame0.shape[-2:]))
        return [((1 - t) * frame0 + t * frame1).sqrt() for t in timesteps]


class OomAbove(PointwiseEngine):
    """Raises CUDA's out-of-memory error for calls with more than `limit` pixels."""

    def __init__(self, limit: int, error=None):
        super().__init__()
        self.limit = limit
        self.error = error or torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def interpolate(self, frame0, frame1, timesteps):
        if frame0.shape[-2] * frame0.shape[-1] > self.limit:
            self.calls.append(("oom",) + tuple(frame0.shape[-2:]))
            raise self.error
        return super().interpolate(frame0, frame1, timesteps)


def random_pair(height=90, width=130, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(3, height, width, generator=generator), torch.rand(3, height, width, generator=generator)


@pytest.mark.parametrize(
    "text, expected",
    [("16G", 16 * 1024**3), ("16GiB", 16 * 1024**3), ("512m", 512 * 1024**2), ("1.5G", int(1.5 * 1024**3)), ("4096", 4096)],
)
def test_parse_memory_units(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("text", ["", "G", "-1G", "16X", "0", "ten"])
def test_parse_memory_rejects_bad_values(text):
    with pytest.raises(UsageError):
        parse_memory(text)


def test_a_frame_that_fits_is_one_tile():
    grid = plan_tiles(720, 1280, 720 * 1280)
    assert (grid.rows, grid.cols, grid.tile_height, grid.tile_width) == (1, 1, 720, 1280)
    assert plan_tiles(720, 1280, None).count == 1


@pytest.mark.parametrize("height, width, max_pixels, overlap", [(720, 1280, 300_000, 64), (1080, 1920, 500_000, 32), (97, 203, 3000, 8), (2160, 3840, 2_000_000, 128)])
def test_tiles_cover_the_frame_with_the_overlap_and_fit_the_budget(height, width, max_pixels, overlap):
    grid = plan_tiles(height, width, max_pixels, overlap=overlap, min_tile=16)
    assert grid.count > 1
    assert grid.tile_height * grid.tile_width <= max_pixels
    covered = torch.zeros(height, width, dtype=torch.int32)
    tiles = grid.tiles()
    assert len(tiles) == grid.count
    for tile in tiles:
        assert 0 <= tile.top < tile.bottom <= height and 0 <= tile.left < tile.right <= width
        covered[tile.top : tile.bottom, tile.left : tile.right] += 1
    assert int(covered.min()) >= 1
    tops = sorted({t.top for t in tiles})
    lefts = sorted({t.left for t in tiles})
    assert all(b - a <= grid.tile_height - overlap for a, b in zip(tops, tops[1:]))
    assert all(b - a <= grid.tile_width - overlap for a, b in zip(lefts, lefts[1:]))


def test_plan_respects_dain_padding_and_uses_its_slack():
    from dainctl.models.padding import padding_for

    def padded(height, width):
        pad = padding_for(height, width, "demo")
        return height + pad.top + pad.bottom, width + pad.left + pad.right

    assert padded(720, 1280) == (768, 1344)  # the original demo's rule: 720p is processed as 1344x768
    budget = 768 * 768
    grid = plan_tiles(720, 1280, budget, overlap=64, padded_size=padded)
    padded_h, padded_w = padded(grid.tile_height, grid.tile_width)
    assert padded_h * padded_w <= budget
    # Growing a tile up to its padded size costs nothing, so tiles end just below a multiple of 128.
    assert grid.tile_width % 128 == 127 or grid.tile_width == 1280


def test_an_impossible_budget_is_one_clear_error():
    with pytest.raises(EngineError, match="--max-memory"):
        plan_tiles(1080, 1920, 100, overlap=64, min_tile=128)


def test_feather_weights_fade_only_towards_neighbours():
    grid = TileGrid(100, 200, 100, 120, 1, 2)
    left, right = grid.tiles()
    w_left = feather_weights(grid, left, 16)[0]
    w_right = feather_weights(grid, right, 16)[0]
    assert w_left.shape == (100, 120) and w_left.dtype == torch.float32
    assert float(w_left.min()) > 0
    assert torch.all(w_left[:, :104] == 1) and torch.all(w_left[:, -1] < 0.1)  # fades into the right tile
    assert torch.all(w_right[:, 16:] == 1) and torch.all(w_right[:, 0] < 0.1)  # and the right tile fades in
    assert torch.all(w_left[:, 104:].diff(dim=1) < 0)


def test_tiled_output_equals_untiled_for_a_pixelwise_engine():
    frame0, frame1 = random_pair()
    inner = PointwiseEngine()
    expected = inner.interpolate(frame0, frame1, [0.25, 0.5])
    tiled = TiledEngine(inner, max_pixels=60 * 60, overlap=8, min_tile=16)
    outputs = tiled.interpolate(frame0, frame1, [0.25, 0.5])
    assert tiled.last_grid.count > 1
    assert all(h * w <= 60 * 60 for h, w in inner.calls[2:])
    for got, want in zip(outputs, expected):
        assert got.shape == want.shape and got.dtype == torch.float32
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)


def test_a_frame_that_fits_goes_to_the_inner_engine_untouched():
    frame0, frame1 = random_pair(40, 50)
    inner = PointwiseEngine()
    tiled = TiledEngine(inner, max_pixels=40 * 50, overlap=8)
    out = tiled.interpolate(frame0, frame1, [0.5])
    assert inner.calls == [(40, 50)]
    assert torch.equal(out[0], PointwiseEngine().interpolate(frame0, frame1, [0.5])[0])


@pytest.mark.parametrize("error", [None, RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB")])
def test_out_of_memory_retries_the_same_pair_with_smaller_tiles(error):
    frame0, frame1 = random_pair(120, 160)
    inner = OomAbove(limit=70 * 90, error=error)
    messages = []
    tiled = TiledEngine(inner, max_pixels=None, overlap=8, min_tile=16, on_retry=messages.append)
    out = tiled.interpolate(frame0, frame1, [0.5])
    torch.testing.assert_close(out[0], PointwiseEngine().interpolate(frame0, frame1, [0.5])[0], atol=1e-6, rtol=1e-6)
    assert tiled.retries >= 1 and len(messages) == tiled.retries
    assert inner.calls[0] == ("oom", 120, 160)
    # The smaller budget is kept: the next pair does not run out of memory again.
    calls_before = len(inner.calls)
    tiled.interpolate(frame1, frame0, [0.5])
    assert not any(call[0] == "oom" for call in inner.calls[calls_before:])


def test_out_of_memory_below_the_smallest_tile_is_one_engine_error():
    frame0, frame1 = random_pair(120, 160)
    tiled = TiledEngine(OomAbove(limit=10), max_pixels=None, overlap=8, min_tile=32, on_retry=lambda m: None)
    with pytest.raises(EngineError, match="out of memory"):
        tiled.interpolate(frame0, frame1, [0.5])


def test_other_errors_are_not_retried():
    frame0, frame1 = random_pair(120, 160)
    inner = OomAbove(limit=10, error=ValueError("bad frame"))
    tiled = TiledEngine(inner, max_pixels=None, on_retry=lambda m: None)
    with pytest.raises(ValueError, match="bad frame"):
        tiled.interpolate(frame0, frame1, [0.5])
    assert tiled.retries == 0 and len(inner.calls) == 1
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("x")) and not is_out_of_memory(ValueError("out of memory"))


def test_budget_on_the_cpu_comes_from_max_memory():
    from dainctl.engines.flow import FlowEngine

    engine = FlowEngine()
    wrapped = wrap_for_memory(engine, device="cpu", max_memory=64 * 1024**2)
    assert wrapped.max_pixels == max_pixels_for(64 * 1024**2, engine.bytes_per_pixel())
    assert 100_000 < wrapped.max_pixels < 1_000_000  # the engine's own model: ~180 bytes per pixel
    assert wrapped.inner is engine and wrapped.device == engine.device and wrapped.stats is engine.stats
    # An engine without a memory model is never tiled for a budget (but still retried on OOM).
    assert wrap_for_memory(PointwiseEngine(), device="cpu", max_memory=1024).max_pixels is None


def _psnr(a, b):
    from dainctl.quality import psnr

    return psnr(a, b)


def _middlebury_pairs(names, scale):
    from dainctl.quality import load_rgb

    root = SHARED / "data" / "middlebury"
    if not root.is_dir():
        pytest.skip(f"{root} is not available")
    for name in names:
        frames = [load_rgb(root / name / f) for f in ("frame10.png", "frame11.png")]
        yield name, [F.interpolate(f[None], scale_factor=scale, mode="area")[0].contiguous() for f in frames]


def test_flow_engine_tiled_matches_untiled_on_real_frames():
    """Tiled vs untiled >= 40 dB for the weight-free engine, tiles of about a quarter of the frame."""
    from dainctl.engines.flow import FlowEngine

    engine = FlowEngine()
    for name, (frame0, frame1) in _middlebury_pairs(["Grove3", "MiniCooper", "Urban3"], 0.5):
        untiled = engine.interpolate(frame0, frame1, [0.5])[0]
        height, width = frame0.shape[-2:]
        tiled = TiledEngine(engine, max_pixels=(height * width) // 3, overlap=32, min_tile=32)
        out = tiled.interpolate(frame0, frame1, [0.5])[0]
        assert tiled.last_grid.count >= 4, name
        value = _psnr(out, untiled)
        print(f"flow engine, {name} {width}x{height}, {tiled.last_grid.rows}x{tiled.last_grid.cols} tiles: "
              f"tiled vs untiled {value:.2f} dB")
        assert value >= 40.0, name


def test_flow_engine_tiled_matches_untiled_on_the_sample_scene():
    from dainctl.engines.flow import FlowEngine
    from dainctl.pipeline import to_tensor
    from dainctl.video import render_sample_frame

    engine = FlowEngine()
    frame0 = to_tensor(render_sample_frame(256, 160, 3.0))
    frame1 = to_tensor(render_sample_frame(256, 160, 4.0))
    untiled = engine.interpolate(frame0, frame1, [0.5])[0]
    tiled = TiledEngine(engine, max_pixels=130 * 150, overlap=32, min_tile=32)
    out = tiled.interpolate(frame0, frame1, [0.5])[0]
    assert tiled.last_grid.count >= 2
    value = _psnr(out, untiled)
    print(f"flow engine, sample scene 256x160, {tiled.last_grid.rows}x{tiled.last_grid.cols} tiles: tiled vs untiled {value:.2f} dB")
    assert value >= 40.0
