"""DAIN in windows within a memory budget vs the whole frame, on the fake checkpoint (CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from dain_fixtures import converted_fake_weights  # noqa: F401  (a pytest fixture)
from dainctl.tiling import TiledEngine

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def middlebury_pair(name: str, size: tuple[int, int]):
    from dainctl.quality import load_rgb

    folder = SHARED / "data" / "middlebury" / name
    if not folder.is_dir():
        pytest.skip(f"{folder} is not available")
    return [F.interpolate(load_rgb(folder / f)[None], size=size, mode="area")[0].contiguous()
            for f in ("frame10.png", "frame11.png")]


@pytest.mark.slow
def test_dain_tiled_matches_untiled(converted_fake_weights):  # noqa: F811
    """Tiled vs untiled >= 40 dB for DAIN with the fake checkpoint, in windows of the padded frame."""
    from dainctl.engines.dain import DainEngine
    from dainctl.quality import psnr

    engine = DainEngine(converted_fake_weights, device="cpu")
    frame0, frame1 = middlebury_pair("Grove3", (100, 200))  # padded by the demo rule to 128x256
    untiled = engine.interpolate(frame0, frame1, [0.5])[0]

    tiled = TiledEngine(engine, max_pixels=128 * 192, overlap=64, min_tile=64)
    out = tiled.interpolate(frame0, frame1, [0.5])[0]
    grid = tiled.last_grid
    assert (grid.height, grid.width) == (128, 256)  # planned on the padded frame
    assert grid.count == 2 and grid.tile_height * grid.tile_width <= 128 * 192
    assert grid.tile_width % 64 == 0 and all(tile.left % 4 == 0 for tile in grid.tiles())
    assert out.shape == untiled.shape == (3, 100, 200) and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    value = psnr(out, untiled)
    print(f"dain (fake checkpoint), Grove3 200x100, {grid.rows}x{grid.cols} windows of {grid.tile_height}x{grid.tile_width}: "
          f"tiled vs untiled {value:.2f} dB")
    assert value >= 40.0
    assert engine.stats["pairs"] == 2  # the tiled pair counts once
