"""Training triplets (I0, I_mid, I1) from the user's clips, read with the same reader as `interpolate`.

    clips = [read_clip(path, crop=256) for path in paths]      # decode once, choose triplets
    sampler = TripletSampler(clips, crop=256, seed=0)
    frame0, middle, frame1 = sampler.batch(4)                   # random crops, flips, time reversal
    validation = validation_items(clips, crop=256, limit=16)    # fixed centre crops, held-out frames

Which triplets a clip gives (every step judged with `dainctl.scene`, as `interpolate` judges it):
  * a triplet with a scene cut between two of its frames is excluded (`cut`);
  * one where a frame repeats its predecessor (the dedup rule: no thumbnail pixel changes by more than
    `dedup_threshold` levels) is a near-duplicate (`duplicate`): there is nothing to interpolate;
  * one whose outer frames are duplicates of each other by the same rule is static (`static`);
  * the last 10% of the clip's time (at least its last three frames) is held out for validation: a
    triplet lies wholly before the split (training) or wholly after it (validation); the few that
    straddle it are dropped (`boundary`), so no held-out frame is ever trained on.
Long clips are subsampled (every n-th middle frame) so that the frames kept stay within
`MAX_CLIP_BYTES`; the summary says how many triplets each clip gave and why the others were excluded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from dainctl.errors import InputError, UsageError
from dainctl.framestore import to_tensor
from dainctl.scene import (
    DEFAULT_DEDUP_THRESHOLD,
    DEFAULT_SCENE_THRESHOLD,
    classify_scores,
    compare_signatures,
    frame_signature,
)
from dainctl.video.reader import open_input

HOLDOUT = 0.1  # share of each clip's time held out for validation, at its end
MAX_CLIP_BYTES = 2 << 30  # decoded frames kept per clip
EXCLUSION_REASONS = ("cut", "duplicate", "static", "boundary")


@dataclass
class ClipTriplets:
    """One clip's usable triplets.

    frames: index -> (H, W, 3) uint8 or uint16 RGB, only the frames some triplet uses.
    train, validation: (i0, i_mid, i1) decode-order indices into `frames`.
    excluded: reason -> number of candidate triplets left out (see the module docstring).
    decoded: frames decoded; stride: every `stride`-th middle frame was considered.
    """

    path: Path
    width: int
    height: int
    frames: dict[int, np.ndarray]
    train: list[tuple[int, int, int]]
    validation: list[tuple[int, int, int]]
    excluded: dict[str, int] = field(default_factory=dict)
    decoded: int = 0
    stride: int = 1

    def summary(self) -> dict:
        return {"clip": str(self.path), "frames": self.decoded, "train_triplets": len(self.train),
                "validation_triplets": len(self.validation), "excluded": dict(self.excluded),
                "stride": self.stride}


def check_crop(crop: int, width: int, height: int, path: Path) -> None:
    if crop > width or crop > height:
        raise UsageError(f"--crop {crop} is larger than the {width}x{height} frames of {path}; use a crop of at most {min(width, height)}")


def read_clip(
    path: str | Path,
    *,
    crop: int,
    scene_threshold: float | None = DEFAULT_SCENE_THRESHOLD,
    dedup_threshold: float = DEFAULT_DEDUP_THRESHOLD,
    holdout: float = HOLDOUT,
    max_bytes: int = MAX_CLIP_BYTES,
) -> ClipTriplets:
    """Decode one video or image folder and choose its triplets. Raises `InputError` for a clip with
    fewer than three frames and `UsageError` for a crop larger than its frames."""
    path = Path(path)
    with open_input(path) as source:
        info = source.info
        check_crop(crop, info.width, info.height, path)
        frame_bytes = info.width * info.height * 3 * (2 if info.bit_depth > 8 else 1)
        estimated = info.frame_count or 0
        # Consecutive triplets share frames: with stride s >= 3 each kept triplet costs 3 frames.
        stride = 1
        if estimated * frame_bytes > max_bytes:
            stride = max(1, math.ceil(3 * estimated * frame_bytes / max_bytes))
        window: list[tuple[int, Fraction, np.ndarray, object]] = []
        candidates: list[tuple[tuple[int, int, int], Fraction, Fraction]] = []
        frames: dict[int, np.ndarray] = {}
        excluded = {reason: 0 for reason in EXCLUSION_REASONS}
        kinds: list[str] = []  # kind of the step into frame i (from frame i-1)
        decoded = 0
        last_ts = Fraction(0)
        for index, (ts, rgb) in enumerate(source.frames()):
            decoded += 1
            last_ts = ts
            signature = frame_signature(rgb)
            if window:
                scores = compare_signatures(window[-1][3], signature)
                kinds.append(classify_scores(scores, scene_threshold, dedup_threshold))
            else:
                kinds.append("motion")
            window = (window + [(index, ts, rgb, signature)])[-3:]
            if len(window) < 3 or (index - 1) % stride:
                continue
            (i0, ts0, rgb0, sig0), (i1, _, rgb1, _), (i2, _, rgb2, sig2) = window
            steps = (kinds[i1], kinds[i2])
            if "cut" in steps:
                excluded["cut"] += 1
            elif "dup" in steps:
                excluded["duplicate"] += 1
            elif compare_signatures(sig0, sig2).max_change <= dedup_threshold:
                excluded["static"] += 1
            else:
                for i, image in ((i0, rgb0), (i1, rgb1), (i2, rgb2)):
                    frames.setdefault(i, image)
                candidates.append(((i0, i1, i2), ts0, ts))
        end = source.end_ts if source.end_ts is not None else last_ts
    if decoded < 3:
        raise InputError(f"{path} has {decoded} frame{'s' if decoded != 1 else ''}; fine-tuning needs at least 3 (one triplet)")
    # The held-out part: the last `holdout` of the time, and at least the last three frames.
    split = min(end * Fraction(1 - holdout).limit_denominator(1000), _ts_of_third_last(candidates, last_ts))
    train, validation = [], []
    for triplet, first_ts, last in candidates:
        if last < split:
            train.append(triplet)
        elif first_ts >= split:
            validation.append(triplet)
        else:
            excluded["boundary"] += 1
    used = {i for triplet in train + validation for i in triplet}
    frames = {i: image for i, image in frames.items() if i in used}
    return ClipTriplets(path, info.width, info.height, frames, train, validation, excluded, decoded, stride)


def _ts_of_third_last(candidates, last_ts: Fraction) -> Fraction:
    """The split that leaves at least the last candidate triplet wholly held out."""
    if not candidates:
        return last_ts
    return candidates[-1][1]


def check_clips(clips: list[ClipTriplets]) -> None:
    """Raise `InputError` when the clips give no training or no validation triplet."""
    if not any(clip.train for clip in clips):
        details = "; ".join(f"{clip.path.name}: {clip.decoded} frames, excluded {_excluded_text(clip)}" for clip in clips)
        raise InputError(f"no usable training triplets in the clips ({details}); give longer clips with motion")
    if not any(clip.validation for clip in clips):
        raise InputError("no held-out validation triplets in the clips; give longer clips with motion at their ends")


def _excluded_text(clip: ClipTriplets) -> str:
    parts = [f"{count} {reason}" for reason, count in clip.excluded.items() if count]
    return ", ".join(parts) if parts else "none"


def describe_clip(clip: ClipTriplets) -> str:
    sampled = f", every {clip.stride}th frame considered" if clip.stride > 1 else ""
    return (f"{clip.path}: {clip.decoded} frames -> {len(clip.train)} training and {len(clip.validation)} "
            f"validation triplets (excluded: {_excluded_text(clip)}{sampled})")


def _stack(images: list[np.ndarray]) -> torch.Tensor:
    return torch.stack([to_tensor(np.ascontiguousarray(image)) for image in images])


class TripletSampler:
    """Random training batches: a triplet drawn uniformly from all clips' training triplets, a random
    `crop` x `crop` window, a horizontal and a vertical flip and a time reversal, each with
    probability 1/2. The random state is a NumPy generator (`state` / `set_state` for checkpoints)."""

    def __init__(self, clips: list[ClipTriplets], crop: int, seed: int = 0):
        self.crop = crop
        self.items = [(clip, triplet) for clip in clips for triplet in clip.train]
        self.rng = np.random.default_rng(seed)

    @property
    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(frame0, middle, frame1), each (size, 3, crop, crop) float32 in [0, 1]."""
        firsts, middles, lasts = [], [], []
        for _ in range(size):
            clip, triplet = self.items[int(self.rng.integers(len(self.items)))]
            y = int(self.rng.integers(clip.height - self.crop + 1))
            x = int(self.rng.integers(clip.width - self.crop + 1))
            flip_x, flip_y, reverse = (bool(v) for v in self.rng.integers(2, size=3))
            images = [clip.frames[i][y : y + self.crop, x : x + self.crop] for i in triplet]
            if flip_x:
                images = [image[:, ::-1] for image in images]
            if flip_y:
                images = [image[::-1] for image in images]
            if reverse:
                images.reverse()
            firsts.append(images[0])
            middles.append(images[1])
            lasts.append(images[2])
        return _stack(firsts), _stack(middles), _stack(lasts)


def validation_items(clips: list[ClipTriplets], crop: int, limit: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Up to `limit` held-out triplets (spread evenly over each clip's held-out part, the clips
    taking turns), each as (frame0, middle, frame1) centre crops (1, 3, crop, crop): the same
    every time, so that validation PSNRs of different steps and runs compare."""
    per_clip = [clip.validation for clip in clips]
    total = sum(len(items) for items in per_clip)
    chosen: list[tuple[ClipTriplets, tuple[int, int, int]]] = []
    for clip in clips:
        share = max(1, round(limit * len(clip.validation) / total)) if clip.validation else 0
        picks = np.linspace(0, len(clip.validation) - 1, num=min(share, len(clip.validation))).round().astype(int)
        chosen.extend((clip, clip.validation[i]) for i in sorted(set(picks.tolist())))
    chosen = chosen[:limit]
    items = []
    for clip, triplet in chosen:
        y = (clip.height - crop) // 2
        x = (clip.width - crop) // 2
        images = [clip.frames[i][y : y + crop, x : x + crop] for i in triplet]
        items.append(tuple(_stack([image]) for image in images))
    return items
