"""DAIN model pieces that need no weights: the padding rule and the sub-networks' shapes."""

from __future__ import annotations

import pytest
import torch

from dainctl.models.padding import Padding, crop_padding, pad_frames, padding_for


@pytest.mark.parametrize(
    "width, height, expected_lrtb",
    [  # the table of ANATOMY.md section 4 (original demo_MiddleBury.py rule)
        (448, 256, (32, 32, 32, 32)),
        (640, 480, (32, 32, 16, 16)),
        (1280, 720, (32, 32, 24, 24)),
        (1920, 1080, (32, 32, 36, 36)),
        (3840, 2160, (32, 32, 8, 8)),
        (224, 160, (16, 16, 48, 48)),
        (129, 127, (63, 64, 0, 1)),  # odd remainders: the extra pixel goes right / bottom
    ],
)
def test_demo_padding_rule(width, height, expected_lrtb) -> None:
    padding = padding_for(height, width, "demo")
    assert padding.as_lrtb() == expected_lrtb
    assert (width + padding.left + padding.right) % 64 == 0 and (height + padding.top + padding.bottom) % 64 == 0


@pytest.mark.parametrize("size", [1, 63, 64, 65, 100, 128, 720, 1080])
def test_compact_padding_is_the_next_multiple_of_64(size) -> None:
    padding = padding_for(size, size + 7, "compact")
    assert (size + padding.top + padding.bottom) == -(-size // 64) * 64
    assert (size + 7 + padding.left + padding.right) == -(-(size + 7) // 64) * 64
    assert 0 <= padding.right - padding.left <= 1 and 0 <= padding.bottom - padding.top <= 1


def test_unknown_policy() -> None:
    with pytest.raises(ValueError, match="compact"):
        padding_for(10, 10, "tiles")


def test_pad_replicates_borders_and_crop_inverts_it() -> None:
    frames = torch.rand(2, 3, 5, 7)
    padding = Padding(left=2, right=3, top=1, bottom=4)
    padded = pad_frames(frames, padding)
    assert padded.shape == (2, 3, 10, 12)
    assert torch.equal(padded[..., 0, 0], frames[..., 0, 0])  # corner replicated
    assert torch.equal(padded[..., 1:6, 11], frames[..., :, 6])  # right border replicated
    assert torch.equal(crop_padding(padded, padding), frames)


def test_subnetwork_shapes_and_channel_counts() -> None:
    from dainctl.models.context import ContextNet
    from dainctl.models.kernelnet import KernelHead, KernelTrunk
    from dainctl.models.megadepth import MegaDepth
    from dainctl.models.rectifier import Rectifier

    torch.manual_seed(0)
    frames = torch.rand(1, 6, 64, 64)
    with torch.inference_mode():
        assert ContextNet()(frames[:, :3]).shape == (1, 195, 64, 64)
        assert MegaDepth().eval()(frames[:, :3]).shape == (1, 1, 64, 64)
        trunk = KernelTrunk()(frames)
        assert trunk.shape == (1, 16, 64, 64) and KernelHead()(trunk).shape == (1, 16, 64, 64)
        assert Rectifier()(torch.rand(1, 437, 16, 16)).shape == (1, 3, 16, 16)


def test_kernel_trunk_skips_reach_full_resolution() -> None:
    """The additive skips make the trunk output depend on every input pixel's local neighbourhood:
    a change at one pixel must move the output there (without skips it would only move through the
    1/32 bottleneck, smeared over a 32-pixel block)."""
    from dainctl.models.kernelnet import KernelTrunk

    torch.manual_seed(0)
    trunk = KernelTrunk()
    frames = torch.rand(1, 6, 64, 64)
    changed = frames.clone()
    changed[0, :, 10, 10] += 1.0
    with torch.inference_mode():
        diff = (trunk(changed) - trunk(frames)).abs().sum(dim=1)[0]
    assert diff[10, 10] > 10 * diff[40:, 40:].max()


def test_analyze_pair_uses_given_flows_instead_of_pwcnet() -> None:
    """The tiled engine passes windows of the whole frame's flows: the analysis must take them as they
    are (and then not depend on PWC-Net), equal the normal analysis when they are PWC-Net's own, and
    refuse flows of the wrong shape."""
    from dainctl.models.dain import DAIN

    torch.manual_seed(0)
    model = DAIN().eval()
    frame0, frame1 = torch.rand(1, 3, 64, 128), torch.rand(1, 3, 64, 128)
    with torch.inference_mode():
        flow01, flow10 = model.pair_flows(frame0, frame1)
        assert flow01.shape == flow10.shape == (1, 2, 16, 32) and flow01.dtype == torch.float32
        normal = model.analyze_pair(frame0, frame1)
        given = model.analyze_pair(frame0, frame1, flows=(flow01, flow10))
        torch.testing.assert_close(given.flow01, normal.flow01, rtol=0, atol=0)
        torch.testing.assert_close(given.kernels0, normal.kernels0, rtol=0, atol=0)
        other = (torch.full_like(flow01, 0.25), torch.full_like(flow10, -0.5))
        model.flownets = None  # PWC-Net must not be called when flows are given
        replaced = model.analyze_pair(frame0, frame1, flows=other)
        assert torch.equal(replaced.flow01, other[0]) and torch.equal(replaced.flow10, other[1])
        with pytest.raises(ValueError, match="given flows must be shaped"):
            model.analyze_pair(frame0, frame1, flows=(flow01[..., :8], flow10))
