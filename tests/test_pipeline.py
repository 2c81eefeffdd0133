"""Pipeline helpers: thread policy and pixel conversions."""

import numpy as np
import pytest
import torch

from dainctl.pipeline import configure_cpu_threads, to_rgb, to_tensor


@pytest.fixture
def restore_threads():
    import cv2

    before = torch.get_num_threads(), cv2.getNumThreads()
    yield
    torch.set_num_threads(before[0])
    cv2.setNumThreads(before[1])


@pytest.mark.parametrize("engine, cores, expected", [("flow", 2, 1), ("flow", 16, 15), ("flow", 1, 1), ("dain", 2, 2)])
def test_cpu_threads_leave_a_core_to_decode_and_encode(restore_threads, engine, cores, expected):
    import cv2

    assert configure_cpu_threads(engine, cpu_count=cores) == expected
    assert torch.get_num_threads() == expected
    assert cv2.getNumThreads() == expected


@pytest.mark.parametrize("dtype, peak", [(np.uint8, 255), (np.uint16, 65535)])
def test_pixel_round_trip_is_exact(dtype, peak):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, peak + 1, size=(5, 7, 3)).astype(dtype)
    tensor = to_tensor(rgb)
    assert tensor.shape == (3, 5, 7) and tensor.dtype == torch.float32
    assert float(tensor.max()) <= 1.0
    assert np.array_equal(to_rgb(tensor, dtype), rgb)
