"""Quality metrics for frame interpolation: PSNR, SSIM and evaluation on folders of triplets.

A triplet is three frames of a real sequence: the engine sees the outer two and its middle frame is
compared with the real middle one. Two folder layouts are recognised:

* Middlebury: ``<seq>/frame10.png``, ``<seq>/frame10i11.png`` (ground truth), ``<seq>/frame11.png``
* UCF101 style: ``<n>/frame0.png``, ``<n>/frame1.png`` (ground truth), ``<n>/frame2.png``

A video is checked against itself (`video_self_check`): every other frame is dropped, re-created from
its two neighbours and compared with the real one.

The generated frame is rounded to 8 bits before it is scored, as it would be when written to a PNG or a
video, so these numbers match what the command line produces.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

from dainctl.errors import InputError
from dainctl.framestore import to_tensor

# (first frame, ground-truth middle, last frame) file names for each known layout.
TRIPLET_LAYOUTS: tuple[tuple[str, str, str], ...] = (
    ("frame10.png", "frame10i11.png", "frame11.png"),
    ("frame0.png", "frame1.png", "frame2.png"),
)

QUALITY_SCHEMA = "dainctl.benchmark.quality/1"  # the JSON of `dainctl benchmark quality`


@dataclass(frozen=True)
class Triplet:
    """Paths of one evaluation triplet; `name` is its folder relative to the searched root."""

    name: str
    first: Path
    middle: Path
    last: Path


@dataclass(frozen=True)
class TripletScore:
    """Scores of the generated middle frame of one triplet (PSNR in dB, SSIM in [-1, 1])."""

    name: str
    psnr: float
    ssim: float
    height: int
    width: int


@dataclass
class QualityReport:
    """Per-triplet scores in discovery order and their means."""

    items: list[TripletScore] = field(default_factory=list)

    @property
    def mean_psnr(self) -> float:
        return float(np.mean([s.psnr for s in self.items])) if self.items else float("nan")

    @property
    def mean_ssim(self) -> float:
        return float(np.mean([s.ssim for s in self.items])) if self.items else float("nan")


ProgressCallback = Callable[[int, int, TripletScore], None]
"""Called after each triplet with (number done, total, that triplet's score)."""


def _natural_key(text: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def psnr(prediction: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB over all elements.

    prediction, target: tensors of the same shape (any), values in [0, data_range]. The mean squared
    error is reduced in float64; identical inputs give +inf.
    """
    if prediction.shape != target.shape:
        raise ValueError(f"psnr: shapes differ, {tuple(prediction.shape)} vs {tuple(target.shape)}")
    mse = torch.mean((prediction.double() - target.double()) ** 2).item()
    if mse == 0.0:
        return float("inf")
    return 10.0 * float(np.log10(data_range**2 / mse))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Normalised 1-D Gaussian, float64, shape (size,)."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    window = torch.exp(-(coords**2) / (2.0 * sigma**2))
    return window / window.sum()


def ssim(prediction: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> float:
    """Structural similarity (Wang et al. 2004), mean over pixels and channels.

    prediction, target: (C, H, W) tensors, values in [0, data_range], H and W >= 11. Statistics use an
    11x11 Gaussian window (sigma 1.5) over each channel separately, valid positions only (no padding),
    K1 = 0.01, K2 = 0.03; computed in float64.
    """
    if prediction.shape != target.shape or prediction.dim() != 3:
        raise ValueError(f"ssim: expects two (C,H,W) tensors of one shape, got {tuple(prediction.shape)} "
                         f"and {tuple(target.shape)}")
    window_1d = _gaussian_window()
    if min(prediction.shape[1:]) < window_1d.numel():
        raise ValueError("ssim: frames must be at least 11x11")
    channels = prediction.shape[0]
    x = prediction.double().unsqueeze(0)
    y = target.double().unsqueeze(0)
    # Separable Gaussian filter, one group per channel.
    kernel_h = window_1d.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    kernel_v = window_1d.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)

    def blur(image: torch.Tensor) -> torch.Tensor:
        image = torch.nn.functional.conv2d(image, kernel_h, groups=channels)
        return torch.nn.functional.conv2d(image, kernel_v, groups=channels)

    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov_xy = blur(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean().item())


def load_rgb(path: Path) -> torch.Tensor:
    """Read an image file as a (3, H, W) float32 RGB tensor in [0, 1]; raises InputError if unreadable."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"cannot read image: {path}")
    return to_tensor(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))


def quantize_8bit(frame: torch.Tensor) -> torch.Tensor:
    """Round a [0, 1] float frame to the 256 levels an 8-bit file stores; same shape, float32."""
    return torch.round(frame.float().clamp(0.0, 1.0) * 255.0) / 255.0


def _triplet_in(directory: Path, name: str) -> Triplet | None:
    for first, middle, last in TRIPLET_LAYOUTS:
        paths = [directory / first, directory / middle, directory / last]
        if all(p.is_file() for p in paths):
            return Triplet(name, *paths)
    return None


def find_triplets(folder: str | os.PathLike) -> list[Triplet]:
    """All triplets in `folder` or below it (any depth), in natural order of their relative folder names.

    Raises InputError if `folder` is not a directory or holds no triplet in a known layout.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"not a folder of triplets: {root}")
    triplets: list[Triplet] = []
    for directory, subdirs, _files in os.walk(root):
        subdirs.sort(key=_natural_key)
        here = Path(directory)
        name = here.relative_to(root).as_posix()
        found = _triplet_in(here, here.name if name == "." else name)
        if found is not None:
            triplets.append(found)
    if not triplets:
        layouts = "; ".join(", ".join(layout) for layout in TRIPLET_LAYOUTS)
        raise InputError(f"no triplets found under {root} (expected folders with {layouts})")
    triplets.sort(key=lambda triplet: _natural_key(triplet.name))
    return triplets


def evaluate_triplets(
    engine,
    folder: str | os.PathLike,
    progress: ProgressCallback | None = None,
) -> QualityReport:
    """Interpolate the middle frame of every triplet under `folder` and score it against the real one.

    engine: any object with the Engine interface (`interpolate(frame0, frame1, [0.5])`).
    progress: optional callback, called after each triplet as progress(done, total, score).
    Returns a QualityReport (per-triplet TripletScore items, mean_psnr, mean_ssim). Raises InputError for
    a missing folder, no triplets, unreadable images or frames of different sizes within a triplet.
    """
    triplets = find_triplets(folder)
    report = QualityReport()
    for index, triplet in enumerate(triplets):
        first, middle, last = (load_rgb(p) for p in (triplet.first, triplet.middle, triplet.last))
        if not (first.shape == middle.shape == last.shape):
            raise InputError(f"frames of triplet {triplet.name} differ in size")
        generated = engine.interpolate(first, last, [0.5])[0]
        generated = quantize_8bit(generated)
        score = TripletScore(
            name=triplet.name,
            psnr=psnr(generated, middle),
            ssim=ssim(generated, middle),
            height=int(middle.shape[1]),
            width=int(middle.shape[2]),
        )
        report.items.append(score)
        if progress is not None:
            progress(index + 1, len(triplets), score)
    return report


# --------------------------------------------------------------------------------------------------
# quality on a video: drop every other frame, re-create it, compare


def video_self_check(
    engine,
    path: Path,
    *,
    max_items: int | None = None,
    progress: Callable[[int, int | None, dict], None] | None = None,
) -> dict:
    """Interpolate frame 2k+1 from frames 2k and 2k+2 and score it against the real frame 2k+1.

    Streams the video (three decoded frames at most are held). Returns {"items": [{"name", "frame",
    "psnr", "ssim"}], "mean_psnr", "mean_ssim", "identical"}; PSNR is None for an exact match (infinite),
    such items are counted in "identical" and left out of the PSNR mean.
    """
    from dainctl.video import open_input

    source = open_input(path)
    items: list[dict] = []
    total = None
    if source.info.frame_count:
        total = max(0, (source.info.frame_count - 1) // 2)
        if max_items is not None:
            total = min(total, max_items)
    try:
        window = []
        index = -1
        for _, rgb in source.frames():
            index += 1
            window.append(rgb)
            if len(window) < 3:
                continue
            first, middle, last = window
            generated = quantize_8bit(engine.interpolate(to_tensor(first), to_tensor(last), [0.5])[0])
            truth = to_tensor(middle)
            value = psnr(generated, truth)
            item = {
                "name": f"frame {index - 1}",
                "frame": index - 1,
                "psnr": None if math.isinf(value) else round(value, 4),
                "ssim": round(ssim(generated, truth), 6),
            }
            items.append(item)
            if progress is not None:
                progress(len(items), total, item)
            window = [last]
            if max_items is not None and len(items) >= max_items:
                break
    finally:
        source.close()
    if not items:
        raise InputError(f"{path} has fewer than three frames: nothing to re-create")
    finite = [item["psnr"] for item in items if item["psnr"] is not None]
    return {
        "items": items,
        "mean_psnr": round(sum(finite) / len(finite), 4) if finite else None,
        "mean_ssim": round(sum(item["ssim"] for item in items) / len(items), 6),
        "identical": len(items) - len(finite),
    }
