"""The benchmark's per-stage timers on DAIN (`profiling.section` in the model and engine), on the fake
checkpoint (CPU), plain and tiled."""

from __future__ import annotations

import pytest
import torch

from dain_fixtures import converted_fake_weights  # noqa: F401  (a pytest fixture)

DAIN_STAGES = {"upload", "flow", "depth", "context", "kernels", "projection_warping", "synthesis", "download"}


def _pair():
    generator = torch.Generator().manual_seed(0)
    frame0 = torch.rand(3, 64, 64, generator=generator)
    return frame0, torch.roll(frame0, 2, dims=2)


@pytest.mark.slow
def test_every_dain_stage_is_timed(converted_fake_weights):  # noqa: F811
    from dainctl.engines.dain import DainEngine
    from dainctl.profiling import recording

    engine = DainEngine(converted_fake_weights, device="cpu", padding="compact")
    frame0, frame1 = _pair()
    with recording() as recorder:
        engine.interpolate(frame0, frame1, [0.25, 0.5])
    assert set(recorder.seconds) == DAIN_STAGES
    assert all(value > 0 for value in recorder.seconds.values())
    # Outside `recording` the sections record nothing (a second run leaves the recorder unchanged).
    before = dict(recorder.seconds)
    engine.interpolate(frame0, frame1, [0.5])
    assert recorder.seconds == before


@pytest.mark.slow
def test_tiled_dain_reports_the_same_stages(converted_fake_weights):  # noqa: F811
    from dainctl.engines.dain import DainEngine
    from dainctl.profiling import recording
    from dainctl.tiling import TiledEngine

    engine = TiledEngine(DainEngine(converted_fake_weights, device="cpu", padding="compact"),
                         max_pixels=64 * 128, overlap=64, min_tile=64)
    frame0, frame1 = (torch.cat((frame, frame, frame), dim=2) for frame in _pair())  # 64x192
    with recording() as recorder:
        engine.interpolate(frame0, frame1, [0.5])
    assert engine.last_grid.count > 1
    assert set(recorder.seconds) == DAIN_STAGES
