"""The bookkeeping of benchmarks/quality_vs_minterpolate.py: which frames the tools must make, and which
of them are set apart because a scene cut lies between the kept frames around them."""

from __future__ import annotations

import pytest

from benchmark_scripts import load_benchmark


@pytest.mark.parametrize("step", [2, 3, 4])
def test_left_out_frames_are_all_but_the_kept_ones(step):
    count = 4 * step + 1
    left_out, across = load_benchmark("quality_vs_minterpolate").left_out_frames(count, step, set())
    assert left_out == [i for i in range(count) if i % step != 0]
    assert len(left_out) == 4 * (step - 1)
    assert across == set()


@pytest.mark.parametrize("step, offset", [(step, offset) for step in (2, 3, 4) for offset in range(1, step + 1)])
def test_a_cut_sets_apart_every_left_out_frame_between_its_kept_neighbours(step, offset):
    # A cut before frame c lies in the gap between kept frames k*step and (k+1)*step that holds c.
    count = 5 * step + 1
    cut = step + offset  # in the second gap, at each place from its first frame to its end
    left_out, across = load_benchmark("quality_vs_minterpolate").left_out_frames(count, step, {cut})
    assert across == set(range(step + 1, 2 * step))
    assert across <= set(left_out)
