"""Scene cuts and duplicate frames between consecutive video frames.

Streaming: `SceneDetector.classify(rgb)` is fed every decoded frame in order and answers what the step
from the previous frame is: `"cut"` (a new shot starts here: never blend across it), `"dup"` (the same
picture again, up to encode noise) or `"motion"` (anything else, including the first frame). The detector
keeps only a small signature of the reference frame (thumbnails of at most 128 pixels across and a
128-bin colour histogram), never the frame itself.

In the decode stage, `SceneTimeline` wraps the detector and the `--dedup` dropper:

    timeline = SceneTimeline(scene_threshold=0.3, dedup=True)
    for ts, rgb in source.frames():
        for item in timeline.push(ts, rgb):     # item.ts, item.frame, item.cut_before
            ...                                  # FramePlanner.push(item.ts); never blend across cut_before
    timeline.finish(); timeline.cuts; timeline.dropped

The scene score (0..1, compared with `--scene-threshold`) combines two distances that fail in different
ways, as a weighted geometric mean colour^(1/3) * structure^(2/3): a cut must change the picture's
structure and at least some of its colours. A flash or an exposure jump changes only the colours; fast
motion mostly the structure; a cut to another angle of the same place mostly the structure (hence its
larger weight).

- colour distance: the total-variation distance between the two frames' HSV colour histograms
  (8 hue x 4 saturation x 4 value bins on a 64-pixel-wide thumbnail): the share of the picture whose
  colour would have to change to turn one histogram into the other. Insensitive to motion.
- structure distance: the mean absolute difference of the two 32-pixel-wide luma thumbnails, each
  normalised to zero mean and unit contrast, where every pixel may match anywhere within +-3 thumbnail
  pixels (about +-10% of the width) of the other frame: motion up to that size costs almost nothing,
  brightness and contrast changes (fades, exposure) cost nothing. Divided by `STRUCTURE_SCALE` and
  clipped to 1, so 1 means "as different as two unrelated shots".

Measured on the five real clips tests/test_scene.py reads: the five cuts of bikes.mp4 score 0.38-0.94,
while the largest score of any other pair in those five clips is 0.21 (a fast, blurred close-up in
cockatoo.mp4; 0.19 in bikes.mp4). The default threshold 0.3 sits between the two.

Duplicates are judged by the largest change of any pixel of the 128-pixel-wide luma thumbnail, in 8-bit
levels (0-255): encode noise on a repeated picture stays within a few levels after the area averaging,
while anything that moves changes some thumbnail pixel by much more. The default (8 levels) finds 39 of
the 62 repeated frames of flipping_a_pancake.mkv (a 25 -> 30 fps conversion that repeats every fifth
frame; the others carry more encode noise, up to 19 levels) and the repeated last frame of car-turn.mp4
(6.4), and nothing else in the five clips: the smallest change of a moving frame there is 11 levels.
(Full-size frames, as measured when the thresholds were chosen. Runs now analyse 256-pixel-wide
thumbnails, `dainctl.analysis`, each YUV plane area-averaged before the conversion to RGB: on the same
five clips they find the same 39 repeats of flipping_a_pancake.mkv, the same repeat of car-turn.mp4, the
same five cuts of bikes.mp4 (scores 0.39-0.95) and nothing in cockatoo.mp4 and carphone_pristine.mp4.)
A run of duplicates is compared with its first frame (the one on screen), so a slow fade cannot creep
through as a chain of "dups".
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Generic, Iterable, Literal, TypeVar

import cv2
import numpy as np

from .errors import UsageError

FrameKind = Literal["cut", "dup", "motion"]

DEFAULT_SCENE_THRESHOLD = 0.3
DEFAULT_DEDUP_THRESHOLD = 8.0
# Longest run of repeats bridged by interpolation: animation on twos, threes and fours. A longer run is
# a static shot: its last repeat is kept too, so the shot stays still and the motion after it starts on
# time instead of being smeared over the whole static stretch.
DEFAULT_MAX_REPEATS = 3

STRUCTURE_SCALE = 0.2
_STRUCTURE_WEIGHT = 2 / 3

_DUP_WIDTH = 128
_SAMPLED_WIDTH_ABOVE = 1920
_SAMPLED_WIDTH = 1280
_COLOUR_WIDTH = 64
_STRUCTURE_WIDTH = 32
_STRUCTURE_SEARCH = 3
_MIN_THUMB_HEIGHT = 8
# Added to the luma standard deviation before normalising, so that noise on a flat frame is not
# amplified into "structure".
_CONTRAST_FLOOR = 4.0
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_HUE_BINS, _SAT_BINS, _VAL_BINS = 8, 4, 4


@dataclass(frozen=True)
class FrameSignature:
    """What the detector keeps of a frame.

    dup_luma: float32 (h, 128) luma thumbnail, 0-255 scale.
    structure: float32 (h', 32) luma thumbnail normalised to zero mean, unit contrast.
    colour_hist: float32 (128,) HSV histogram summing to 1.
    """

    dup_luma: np.ndarray
    structure: np.ndarray
    colour_hist: np.ndarray


@dataclass(frozen=True)
class PairScores:
    """How two frames differ.

    scene: 0..1, colour^(1/3) * structure^(2/3) (compared with the scene threshold).
    colour: 0..1, histogram total-variation distance.
    structure: 0..1, motion-tolerant normalised luma difference / STRUCTURE_SCALE, clipped.
    max_change: largest luma change of a 128-wide thumbnail pixel, 8-bit levels (the dedup measure).
    """

    scene: float
    colour: float
    structure: float
    max_change: float


def _as_uint8_rgb(rgb: np.ndarray) -> np.ndarray:
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"expected an (H, W, 3) RGB frame, got shape {rgb.shape}")
    rgb = rgb[:, :, :3]
    if rgb.dtype == np.uint8:
        return np.ascontiguousarray(rgb)
    if rgb.dtype == np.uint16:
        # High-bit-depth frames: the signature only needs 8 bits.
        return (rgb >> 8).astype(np.uint8)
    if np.issubdtype(rgb.dtype, np.floating):
        return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
    raise ValueError(f"unsupported frame dtype {rgb.dtype}")


def _thumbnail(image: np.ndarray, width: int) -> np.ndarray:
    height = max(_MIN_THUMB_HEIGHT, round(image.shape[0] * width / image.shape[1]))
    interpolation = cv2.INTER_AREA if image.shape[1] >= width else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def _colour_histogram(rgb_thumb: np.ndarray) -> np.ndarray:
    hsv = cv2.cvtColor(rgb_thumb, cv2.COLOR_RGB2HSV).reshape(-1, 3).astype(np.int32)
    # OpenCV's 8-bit hue runs over 0..179.
    hue = hsv[:, 0] * _HUE_BINS // 180
    sat = hsv[:, 1] * _SAT_BINS // 256
    val = hsv[:, 2] * _VAL_BINS // 256
    bins = (hue * _SAT_BINS + sat) * _VAL_BINS + val
    counts = np.bincount(bins, minlength=_HUE_BINS * _SAT_BINS * _VAL_BINS).astype(np.float32)
    return counts / counts.sum()


def frame_signature(rgb: np.ndarray) -> FrameSignature:
    """The signature of one frame: rgb is (H, W, 3) uint8, uint16 using the full 16-bit range (as PyAV's
    rgb48le gives it) or float in [0, 1]."""
    rgb8 = _as_uint8_rgb(rgb)
    if rgb8.shape[1] > _SAMPLED_WIDTH_ABOVE:
        # Area-averaging a 4K frame down to 128 pixels takes ~50 ms; picking every n-th pixel first (to
        # 1280 wide) cuts that to ~10 ms and still averages 100 samples per thumbnail pixel.
        height = max(1, round(rgb8.shape[0] * _SAMPLED_WIDTH / rgb8.shape[1]))
        rgb8 = cv2.resize(rgb8, (_SAMPLED_WIDTH, height), interpolation=cv2.INTER_NEAREST)
    thumb = _thumbnail(rgb8, _DUP_WIDTH)
    dup_luma = thumb.astype(np.float32) @ _LUMA_WEIGHTS
    colour_thumb = _thumbnail(thumb, _COLOUR_WIDTH)
    structure_luma = _thumbnail(dup_luma, _STRUCTURE_WIDTH)
    structure = (structure_luma - structure_luma.mean()) / (structure_luma.std() + _CONTRAST_FLOOR)
    return FrameSignature(dup_luma, structure.astype(np.float32), _colour_histogram(colour_thumb))


def _matched_difference(reference: np.ndarray, target: np.ndarray, radius: int) -> float:
    """Mean over the target's inner pixels of the smallest |target - reference| within +-radius."""
    height, width = reference.shape
    radius = min(radius, (height - 1) // 2, (width - 1) // 2)
    inner = target[radius : height - radius, radius : width - radius]
    best = np.full(inner.shape, np.inf, dtype=np.float32)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            shifted = reference[radius + dy : height - radius + dy, radius + dx : width - radius + dx]
            np.minimum(best, np.abs(inner - shifted), out=best)
    return float(best.mean())


def compare_signatures(previous: FrameSignature, current: FrameSignature) -> PairScores:
    """Scores for the step from `previous` to `current` (symmetric)."""
    if previous.dup_luma.shape != current.dup_luma.shape or previous.structure.shape != current.structure.shape:
        # A change of aspect ratio cannot happen inside one shot.
        return PairScores(scene=1.0, colour=1.0, structure=1.0, max_change=255.0)
    colour = 0.5 * float(np.abs(previous.colour_hist - current.colour_hist).sum())
    colour = min(1.0, colour)
    matched = 0.5 * (
        _matched_difference(previous.structure, current.structure, _STRUCTURE_SEARCH)
        + _matched_difference(current.structure, previous.structure, _STRUCTURE_SEARCH)
    )
    structure = min(1.0, matched / STRUCTURE_SCALE)
    max_change = float(np.abs(previous.dup_luma - current.dup_luma).max())
    scene = colour ** (1 - _STRUCTURE_WEIGHT) * structure**_STRUCTURE_WEIGHT
    return PairScores(scene=scene, colour=colour, structure=structure, max_change=max_change)


def compare_frames(rgb0: np.ndarray, rgb1: np.ndarray) -> PairScores:
    """Scores for two frames (pure function; see the module docstring for what each number means)."""
    return compare_signatures(frame_signature(rgb0), frame_signature(rgb1))


def classify_scores(
    scores: PairScores, scene_threshold: float | None, dedup_threshold: float | None
) -> FrameKind:
    """`"dup"` if max_change <= dedup_threshold, else `"cut"` if scene >= scene_threshold, else
    `"motion"`. A threshold of None turns that detection off."""
    if dedup_threshold is not None and scores.max_change <= dedup_threshold:
        return "dup"
    if scene_threshold is not None and scores.scene >= scene_threshold:
        return "cut"
    return "motion"


@dataclass(frozen=True)
class SceneCut:
    """A cut: `index` is the decode-order number of the first frame of the new shot, `score` its scene
    score, `ts` its input timestamp in seconds when known (for the summary and --json)."""

    index: int
    score: float
    ts: Fraction | None = None


class SceneDetector:
    """Feed every decoded frame in order; each call says what the step from the previous frame is.

    scene_threshold: scene score (0..1) at or above which a step is a cut; None turns cut detection off.
    dedup_threshold: largest thumbnail luma change (8-bit levels) at or below which a frame is a
        duplicate; None turns duplicate detection off.
    After a run, `cuts` lists the cuts found and `duplicates` counts the frames classified "dup".
    """

    def __init__(
        self,
        scene_threshold: float | None = DEFAULT_SCENE_THRESHOLD,
        dedup_threshold: float | None = DEFAULT_DEDUP_THRESHOLD,
    ):
        if scene_threshold is not None and not 0.0 < scene_threshold <= 1.0:
            raise UsageError(
                f"--scene-threshold must be above 0 and at most 1 (default {DEFAULT_SCENE_THRESHOLD}), "
                f"got {scene_threshold}"
            )
        if dedup_threshold is not None and not 0.0 <= dedup_threshold < 255.0:
            raise UsageError(
                f"--dedup-threshold must be from 0 to 254 levels (default {DEFAULT_DEDUP_THRESHOLD:g}), "
                f"got {dedup_threshold}"
            )
        self.scene_threshold = scene_threshold
        self.dedup_threshold = dedup_threshold
        self._reference: FrameSignature | None = None
        self.last_scores: PairScores | None = None
        self.frames_seen = 0
        self.cuts: list[SceneCut] = []
        self.duplicates = 0

    def classify(self, rgb: np.ndarray) -> FrameKind:
        """Classify the step to this frame; the first frame is `"motion"`."""
        if self.scene_threshold is None and self.dedup_threshold is None:
            self.frames_seen += 1
            return "motion"
        signature = frame_signature(rgb)
        self.frames_seen += 1
        if self._reference is None:
            self._reference = signature
            self.last_scores = None
            return "motion"
        self.last_scores = compare_signatures(self._reference, signature)
        kind = classify_scores(self.last_scores, self.scene_threshold, self.dedup_threshold)
        if kind == "dup":
            # A duplicate keeps the run's first frame as the reference: drift cannot accumulate.
            self.duplicates += 1
        else:
            self._reference = signature
        if kind == "cut":
            self.cuts.append(SceneCut(self.frames_seen - 1, self.last_scores.scene))
        return kind


T = TypeVar("T")


def frames_to_keep(kinds: Iterable[FrameKind], max_repeats: int = DEFAULT_MAX_REPEATS) -> list[bool]:
    """For `--dedup`: which input frames stay on the timeline, given each frame's kind in order.

    A run of duplicates after a frame is dropped, so that interpolation between the frame before the run
    and the frame after it covers the run's time (the duration is unchanged, since timestamps are kept).
    A run longer than `max_repeats` is a still shot, not animation: its last repeat is kept as well, so the
    picture stays still until that moment and the change after it happens at its real time. The first
    frame is always kept; a run at the very end is dropped (the last kept frame is held until the end).
    """
    dropper: DuplicateDropper[int] = DuplicateDropper(max_repeats)
    kept: list[int] = []
    count = 0
    for index, kind in enumerate(kinds):
        kept.extend(dropper.push(index, kind))
        count += 1
    kept.extend(dropper.finish())
    keep = [False] * count
    for index in kept:
        keep[index] = True
    return keep


class DuplicateDropper(Generic[T]):
    """Streaming form of `frames_to_keep`: push each frame (any payload) with its kind, get back the
    frames to pass on, in order. Holds at most one frame (the latest repeat of a run, in case the run
    turns out to be longer than `max_repeats`)."""

    def __init__(self, max_repeats: int = DEFAULT_MAX_REPEATS):
        if max_repeats < 1:
            raise UsageError(f"the longest run of repeats to bridge must be at least 1, got {max_repeats}")
        self.max_repeats = max_repeats
        self._repeats = 0
        self._held: T | None = None
        self._has_held = False
        self._started = False
        self.dropped = 0

    def push(self, frame: T, kind: FrameKind) -> list[T]:
        if not self._started:
            # The first frame has no predecessor to repeat.
            self._started = True
            return [frame]
        if kind == "dup":
            if self._has_held:
                self.dropped += 1
            self._held, self._has_held = frame, True
            self._repeats += 1
            return []
        out: list[T] = []
        if self._has_held:
            if self._repeats > self.max_repeats:
                out.append(self._held)  # type: ignore[arg-type]
            else:
                self.dropped += 1
        self._held, self._has_held, self._repeats = None, False, 0
        out.append(frame)
        return out

    def finish(self) -> list[T]:
        """End of input: a trailing run is dropped (the previous kept frame is held to the end)."""
        if self._has_held:
            self.dropped += 1
        self._held, self._has_held, self._repeats = None, False, 0
        return []


@dataclass(frozen=True)
class TimelineFrame(Generic[T]):
    """A frame that stays on the input timeline: its real timestamp, its payload (the RGB frame) and
    whether a cut separates it from the previous frame on the timeline (then never blend the two)."""

    ts: Fraction
    frame: T
    cut_before: bool


class SceneTimeline(Generic[T]):
    """Scene detection and (optionally) duplicate dropping in one streaming step, for the decode stage.

    Push every decoded frame with its timestamp; pass the returned frames on (to `FramePlanner.push` and
    the engine) in order. Frames are delayed by at most one (the latest repeat of a run, see
    `DuplicateDropper`). With `dedup=False` every frame comes out at once.
    """

    def __init__(
        self,
        scene_threshold: float | None = DEFAULT_SCENE_THRESHOLD,
        dedup: bool = False,
        dedup_threshold: float = DEFAULT_DEDUP_THRESHOLD,
        max_repeats: int = DEFAULT_MAX_REPEATS,
    ):
        self.detector = SceneDetector(scene_threshold, dedup_threshold if dedup else None)
        self._dropper: DuplicateDropper[TimelineFrame[T]] | None = DuplicateDropper(max_repeats) if dedup else None
        self.cuts: list[SceneCut] = []

    @property
    def dropped(self) -> int:
        """Input frames left off the timeline as duplicates so far."""
        return self._dropper.dropped if self._dropper is not None else 0

    def push(self, ts: Fraction, frame: T, rgb: np.ndarray | None = None) -> list[TimelineFrame[T]]:
        """Add the next decoded frame; `rgb` is what the detector looks at (default: `frame` itself)."""
        kind = self.detector.classify(frame if rgb is None else rgb)  # type: ignore[arg-type]
        if kind == "cut":
            self.cuts.append(replace(self.detector.cuts[-1], ts=ts))
        item = TimelineFrame(ts, frame, cut_before=kind == "cut")
        if self._dropper is None:
            return [item]
        return self._dropper.push(item, kind)

    def finish(self) -> list[TimelineFrame[T]]:
        """End of input: frames still held (none today: a trailing run of repeats is dropped)."""
        return self._dropper.finish() if self._dropper is not None else []


def _report_clip(argv: list[str] | None = None) -> int:
    """`python -m dainctl.scene VIDEO [--scene-threshold X] [--dedup-threshold Y]`: print every cut and
    duplicate found, with decode-order index, time and scores (a diagnostic for choosing thresholds)."""
    import argparse
    from fractions import Fraction

    import av

    parser = argparse.ArgumentParser(prog="python -m dainctl.scene", description=_report_clip.__doc__)
    parser.add_argument("video")
    parser.add_argument("--scene-threshold", type=float, default=DEFAULT_SCENE_THRESHOLD)
    parser.add_argument("--dedup-threshold", type=float, default=DEFAULT_DEDUP_THRESHOLD)
    args = parser.parse_args(argv)
    detector = SceneDetector(args.scene_threshold, args.dedup_threshold)
    highest_other = 0.0
    with av.open(args.video) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        first_pts = None
        for index, frame in enumerate(container.decode(stream)):
            first_pts = frame.pts if first_pts is None else first_pts
            seconds = float((frame.pts - first_pts) * Fraction(stream.time_base)) if frame.pts is not None else 0.0
            kind = detector.classify(frame.to_ndarray(format="rgb24"))
            scores = detector.last_scores
            if kind in ("cut", "dup") and scores is not None:
                print(
                    f"{kind:4s} frame {index:6d}  t={seconds:9.3f} s  scene={scores.scene:.3f} "
                    f"(colour {scores.colour:.3f}, structure {scores.structure:.3f})  "
                    f"max_change={scores.max_change:.2f}"
                )
            elif scores is not None:
                highest_other = max(highest_other, scores.scene)
    print(
        f"{detector.frames_seen} frames: {len(detector.cuts)} cuts, {detector.duplicates} duplicates; "
        f"highest scene score of the other steps {highest_other:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(_report_clip())
