"""Frame padding policies for DAIN and the matching crop.

The network needs sizes that are multiples of 64 (PWC-Net's six stride-2 levels; the kernel U-Net needs
32 and MegaDepth 16).  The original demo pads every dimension to the next multiple of 128, centred, with
replicate borders, and adds 32 px per side when the size is already a multiple of 128; that policy is the
default because the network's output depends on the padding.  The "compact" policy pads only to the
next multiple of 64: less work (e.g. 192x256 instead of 256x256 for 160x224 frames), but NOT the
original's output: on the oracle cases with the fake weights it measured only 19-21 dB PSNR against the
original frames (the coarse PWC-Net levels and the hourglass see the whole padded frame), so it is an
opt-in speed/memory trade, never the default.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

PADDING_POLICIES = ("demo", "compact")


@dataclass(frozen=True)
class Padding:
    """Replicate padding in pixels: left, right, top, bottom (the ReplicationPad2d order)."""

    left: int
    right: int
    top: int
    bottom: int

    def as_lrtb(self) -> tuple[int, int, int, int]:
        return (self.left, self.right, self.top, self.bottom)


def _demo_pad_1d(size: int) -> tuple[int, int]:
    if size % 128 != 0:
        padded = (size // 128 + 1) * 128
        low = int((padded - size) / 2)
        return low, padded - size - low
    return 32, 32  # the demo adds 64 even when the size is already aligned


def _compact_pad_1d(size: int, multiple: int = 64) -> tuple[int, int]:
    padded = -(-size // multiple) * multiple
    low = (padded - size) // 2
    return low, padded - size - low


def padding_for(height: int, width: int, policy: str = "demo") -> Padding:
    """Padding for a (height, width) frame under `policy` ("demo" or "compact")."""
    if policy == "demo":
        pad_1d = _demo_pad_1d
    elif policy == "compact":
        pad_1d = _compact_pad_1d
    else:
        raise ValueError(f"unknown padding policy {policy!r}; expected one of {', '.join(PADDING_POLICIES)}")
    left, right = pad_1d(width)
    top, bottom = pad_1d(height)
    return Padding(left, right, top, bottom)


def pad_frames(frames: torch.Tensor, padding: Padding) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H + top + bottom, W + left + right), replicate borders."""
    return F.pad(frames, padding.as_lrtb(), mode="replicate")


def crop_padding(padded: torch.Tensor, padding: Padding) -> torch.Tensor:
    """Inverse of `pad_frames`: (..., Hp, Wp) -> (..., Hp - top - bottom, Wp - left - right)."""
    height = padded.shape[-2] - padding.top - padding.bottom
    width = padded.shape[-1] - padding.left - padding.right
    return padded[..., padding.top : padding.top + height, padding.left : padding.left + width]
