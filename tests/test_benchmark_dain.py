"""The benchmark's timers on DAIN's parts (forward hooks), on the fake checkpoint (CPU)."""

from __future__ import annotations

import pytest
import torch

from dain_fixtures import converted_fake_weights  # noqa: F401  (a pytest fixture)


@pytest.mark.slow
def test_dain_parts_are_timed_and_the_hooks_removed(converted_fake_weights):  # noqa: F811
    from dainctl.benchmark import timed_engine_parts
    from dainctl.engines.dain import DainEngine

    engine = DainEngine(converted_fake_weights, device="cpu", padding="compact")
    generator = torch.Generator().manual_seed(0)
    frame0 = torch.rand(3, 64, 64, generator=generator)
    frame1 = torch.roll(frame0, 2, dims=2)
    networks = [value for value in vars(engine).values() if isinstance(value, torch.nn.Module)]
    assert networks
    with timed_engine_parts(engine, sync=False) as timer:
        engine.interpolate(frame0, frame1, [0.5])
    assert set(timer.seconds) == {"flow", "depth", "context", "kernels", "synthesis"}
    assert all(value > 0 for value in timer.seconds.values())
    for network in networks:
        for module in network.modules():
            assert not module._forward_hooks and not module._forward_pre_hooks
