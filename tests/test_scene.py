"""Scene-cut and duplicate detection: real clips from ../shared, synthetic clips encoded through PyAV,
and the pure dedup planning helper."""

from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from dainctl.errors import UsageError
from dainctl.plan import PlanSpec, plan_all
from dainctl.scene import (
    DEFAULT_DEDUP_THRESHOLD,
    DEFAULT_SCENE_THRESHOLD,
    DuplicateDropper,
    SceneDetector,
    SceneTimeline,
    classify_scores,
    compare_frames,
    frames_to_keep,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
VIDEOS = SHARED / "data" / "videos"

# Found by looking at the frames on both sides of every high-scoring pair (index of the first frame of
# the new shot, 0-based in decode order).
BIKES_CUTS = [30, 76, 137, 187, 242]


def shared_video(name: str) -> Path:
    path = VIDEOS / name
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return path


def decoded_rgb(path: Path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="rgb24")


def classify_clip(path: Path, **thresholds) -> list[tuple[str, float, float]]:
    """(kind, scene score, max change) for every frame after the first; also checks that the detector's
    own record of cuts and duplicates agrees with what it answered."""
    detector = SceneDetector(**thresholds)
    steps = []
    for index, rgb in enumerate(decoded_rgb(path)):
        kind = detector.classify(rgb)
        if index == 0:
            assert kind == "motion"
            continue
        scores = detector.last_scores
        steps.append((kind, scores.scene if scores else 0.0, scores.max_change if scores else 0.0))
    assert [(cut.index, cut.score) for cut in detector.cuts] == [
        (i + 1, score) for i, (kind, score, _) in enumerate(steps) if kind == "cut"
    ]
    assert detector.duplicates == sum(1 for kind, _, _ in steps if kind == "dup")
    return steps


def textured_scene(seed: int, height: int, width: int, layout_seed: int | None = None) -> np.ndarray:
    """A picture like a shot (uint8, H x W x 3, 16 px larger than asked, for panning windows): a
    gradient between two colours of the seed's palette, a few shapes and some fine texture. Different
    seeds give different palettes and layouts, as two shots do; `layout_seed` places the same palette's
    shapes differently (another angle on the same place)."""
    rng = np.random.default_rng(seed)
    full_h, full_w = height + 16, width + 16
    base_hue = rng.uniform(0, 180)
    palette = []
    for _ in range(6):
        hue = (base_hue + rng.uniform(-25, 25)) % 180
        hsv = np.uint8([[[hue, rng.uniform(60, 255), rng.uniform(40, 255)]]])
        palette.append(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32))
    if layout_seed is not None:
        rng = np.random.default_rng(layout_seed)
    ramp = np.linspace(0.0, 1.0, full_h, dtype=np.float32)[:, None, None]
    picture = (1 - ramp) * palette[0] + ramp * palette[1]
    picture = np.repeat(picture, full_w, axis=1)
    for colour in palette[2:]:
        centre = (int(rng.integers(0, full_w)), int(rng.integers(0, full_h)))
        axes = (int(rng.integers(full_w // 10, full_w // 3)), int(rng.integers(full_h // 10, full_h // 3)))
        cv2.ellipse(picture, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour.tolist(), -1)
    grain = cv2.resize(rng.normal(0, 12, size=(full_h // 4, full_w // 4, 3)).astype(np.float32), (full_w, full_h))
    return np.clip(picture + grain, 0, 255).astype(np.uint8)


def window(texture: np.ndarray, dx: int, dy: int, height: int, width: int) -> np.ndarray:
    return np.ascontiguousarray(texture[dy : dy + height, dx : dx + width])


def encode_clip(path: Path, frames: list[np.ndarray], rate: int = 24, crf: int = 23) -> Path:
    """Write RGB frames as H.264 yuv420p through PyAV (lossy, so repeats carry real encode noise)."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


# --- real clips -------------------------------------------------------------------------------------


def test_bikes_cuts_are_found_exactly():
    steps = classify_clip(shared_video("bikes.mp4"))
    cuts = [index + 1 for index, (kind, _, _) in enumerate(steps) if kind == "cut"]
    assert cuts == BIKES_CUTS
    assert "dup" not in {kind for kind, _, _ in steps}
    # Not a near miss: every cut clears the default threshold by a margin, every other step stays well
    # below it.
    cut_scores = [steps[i - 1][1] for i in BIKES_CUTS]
    other_scores = [score for i, (_, score, _) in enumerate(steps) if i + 1 not in BIKES_CUTS]
    assert min(cut_scores) > 1.25 * DEFAULT_SCENE_THRESHOLD
    assert max(other_scores) < 0.75 * DEFAULT_SCENE_THRESHOLD


# Repeated frames seen by eye: car-turn.mp4 ends on a repeat of its previous frame.
@pytest.mark.parametrize(
    "name, repeats", [("cockatoo.mp4", []), ("car-turn.mp4", [80]), ("carphone_pristine.mp4", [])]
)
def test_clips_without_cuts_have_none(name, repeats):
    steps = classify_clip(shared_video(name))
    assert [i + 1 for i, (kind, _, _) in enumerate(steps) if kind == "cut"] == []
    assert [i + 1 for i, (kind, _, _) in enumerate(steps) if kind == "dup"] == repeats


def test_pancake_has_no_cut_and_its_repeats_are_found():
    # flipping_a_pancake.mkv is a 25 -> 30 fps conversion: frame 5k+1 repeats frame 5k (62 repeats).
    steps = classify_clip(shared_video("flipping_a_pancake.mkv"))
    assert "cut" not in {kind for kind, _, _ in steps}
    dups = [i + 1 for i, (kind, _, _) in enumerate(steps) if kind == "dup"]
    assert all(index % 5 == 1 for index in dups), dups
    # more than half of them, despite up to 19 levels of encode noise on some
    assert len(dups) > 31


def test_turning_detection_off():
    steps = classify_clip(shared_video("bikes.mp4"), scene_threshold=None, dedup_threshold=None)
    assert {kind for kind, _, _ in steps} == {"motion"}


# --- synthetic clips through PyAV -------------------------------------------------------------------


def test_animation_on_twos_is_found_as_duplicates(tmp_path):
    height, width = 144, 240
    texture = textured_scene(1, height, width)
    drawings = [window(texture, dx=k, dy=k // 2, height=height, width=width) for k in range(0, 16, 2)]
    frames = [drawing for drawing in drawings for _ in range(2)]  # each drawing held for two frames
    # crf 18 (dainctl's default quality). On smaller or noisier encodes (160x96, or crf 23) some repeats
    # carry 12-20 levels of encode noise and are missed at the default threshold: the threshold is
    # chosen so that real motion is never taken for a repeat, not to catch every noisy one.
    path = encode_clip(tmp_path / "twos.mp4", frames, crf=18)
    kinds = [kind for kind, _, _ in classify_clip(path)]
    expected = ["dup" if (i + 1) % 2 == 1 else "motion" for i in range(len(frames) - 1)]
    assert kinds == expected


def test_cut_between_two_shots_with_fast_motion(tmp_path):
    height, width = 96, 160
    first, second = textured_scene(2, height, width), textured_scene(3, height, width)
    # 12 px per frame at 160 px is fast motion (a pan across the frame in half a second at 24 fps).
    shot_a = [window(first, dx=min(12 * k, 16), dy=0, height=height, width=width) for k in range(3)]
    pan = textured_scene(4, height, 12 * 8 + width)
    shot_b = [np.ascontiguousarray(pan[:height, 12 * k : 12 * k + width]) for k in range(8)]
    frames = shot_a + [window(second, 0, 0, height, width)] + shot_b
    path = encode_clip(tmp_path / "cut.mp4", frames)
    kinds = [kind for kind, _, _ in classify_clip(path)]
    assert [i + 1 for i, kind in enumerate(kinds) if kind == "cut"] == [3, 4]
    # shot_b's 12 px pan is motion, not a sequence of cuts
    assert kinds[4:] == ["motion"] * (len(frames) - 5)


@pytest.mark.parametrize("seed", range(5, 10))
def test_brightness_change_is_not_a_cut(seed):
    # an exposure drop by 40% moves half of the colour histogram or more, but not the structure
    texture = textured_scene(seed, 120, 200)
    darker = (texture.astype(np.float32) * 0.6).astype(np.uint8)
    scores = compare_frames(texture, darker)
    assert scores.colour > DEFAULT_SCENE_THRESHOLD
    assert classify_scores(scores, DEFAULT_SCENE_THRESHOLD, DEFAULT_DEDUP_THRESHOLD) == "motion"


@pytest.mark.parametrize("case", range(10))
def test_cut_to_another_layout_with_the_same_palette(case):
    # colours change little (colour distance 0.08-0.3 here), the structure a lot: still a cut
    a = textured_scene(12 + case, 120, 200, layout_seed=200 + 2 * case)
    b = textured_scene(12 + case, 120, 200, layout_seed=201 + 2 * case)
    scores = compare_frames(a, b)
    assert classify_scores(scores, DEFAULT_SCENE_THRESHOLD, DEFAULT_DEDUP_THRESHOLD) == "cut"


def test_identical_and_unrelated_frames_score_at_the_ends():
    a, b = textured_scene(6, 90, 160), textured_scene(7, 90, 160)
    same = compare_frames(a, a.copy())
    assert same.scene == 0.0 and same.max_change == 0.0
    other = compare_frames(a, b)
    assert other.scene > 1.5 * DEFAULT_SCENE_THRESHOLD
    assert compare_frames(b, a).scene == pytest.approx(other.scene)


def test_high_bit_depth_frames_score_like_8_bit():
    a, b = textured_scene(8, 90, 160), textured_scene(8, 90, 160)[:, ::-1].copy()
    eight = compare_frames(a, b)
    sixteen = compare_frames(a.astype(np.uint16) * 257, b.astype(np.uint16) * 257)
    assert sixteen.scene == pytest.approx(eight.scene, abs=1e-6)


def test_a_run_of_duplicates_is_compared_with_its_first_frame():
    # A fade of 2 levels per frame: each step alone is a "dup", but after 4 steps the picture is 8 levels
    # away from the one on screen, so the run must end there instead of swallowing the whole fade.
    base = textured_scene(9, 90, 160) // 2 + 40
    detector = SceneDetector(dedup_threshold=7.0)
    kinds = [detector.classify(base + 2 * k) for k in range(9)]
    assert kinds == ["motion", "dup", "dup", "dup", "motion", "dup", "dup", "dup", "motion"]


@pytest.mark.parametrize(
    "thresholds, option",
    [({"scene_threshold": 0.0}, "--scene-threshold"), ({"scene_threshold": 1.5}, "--scene-threshold"),
     ({"dedup_threshold": -1.0}, "--dedup-threshold")],
)
def test_bad_thresholds_are_refused_with_one_line(thresholds, option):
    with pytest.raises(UsageError) as caught:
        SceneDetector(**thresholds)
    assert caught.value.message.startswith(option) and "\n" not in caught.value.message


# --- dedup planning ---------------------------------------------------------------------------------


def test_twos_keep_one_frame_per_drawing():
    kinds = ["motion", "dup", "motion", "dup", "motion", "dup"]
    assert frames_to_keep(kinds) == [True, False, True, False, True, False]


def test_long_still_run_keeps_its_last_repeat():
    kinds = ["motion"] + ["dup"] * 5 + ["motion", "dup", "dup", "motion"]
    keep = frames_to_keep(kinds, max_repeats=3)
    # the 5-repeat run is a still shot: frame 5 (its last repeat) stays; the 2-repeat run is bridged
    assert keep == [True, False, False, False, False, True, True, False, False, True]


def test_first_frame_is_kept_even_if_called_a_duplicate():
    assert frames_to_keep(["dup", "dup", "motion"]) == [True, False, True]


def test_streaming_dropper_matches_batch_and_counts_drops():
    rng = random.Random(7)
    for _ in range(200):
        kinds = [rng.choice(["motion", "dup", "dup", "cut"]) for _ in range(rng.randint(1, 30))]
        max_repeats = rng.randint(1, 4)
        dropper: DuplicateDropper[int] = DuplicateDropper(max_repeats)
        kept: list[int] = []
        for index, kind in enumerate(kinds):
            kept.extend(dropper.push(index, kind))
        kept.extend(dropper.finish())
        keep = frames_to_keep(kinds, max_repeats)
        assert kept == [i for i, k in enumerate(keep) if k]
        assert dropper.dropped == len(kinds) - len(kept)
        assert kept == sorted(kept) and kept[0] == 0
        # every non-duplicate frame survives
        assert all(keep[i] for i, kind in enumerate(kinds) if kind != "dup")


def test_dedup_timeline_keeps_the_duration_and_interpolates_across_repeats():
    # 24 fps animation on twos, doubled to 48 fps: with the repeats dropped from the timeline the plan
    # has the same frames and duration, and the times of the dropped repeats are interpolated.
    rate = Fraction(24)
    kinds = ["motion", "dup"] * 6
    timestamps = [Fraction(i) / rate for i in range(len(kinds))]
    end = len(kinds) / rate
    keep = frames_to_keep(kinds)
    kept_ts = [ts for ts, k in zip(timestamps, keep) if k]
    spec = PlanSpec.for_factor(rate, 2)
    full = plan_all(spec, timestamps, end)
    deduped = plan_all(spec, kept_ts, end)
    assert len(deduped) == len(full) == 24
    assert [f.ts for f in deduped] == [f.ts for f in full]
    # between two kept drawings (2/24 s apart) the 48 fps samples fall at t = 0, 1/4, 1/2, 3/4
    assert [f.t for f in deduped[:4]] == [0, Fraction(1, 4), Fraction(1, 2), Fraction(3, 4)]
    # inside the kept span, only kept drawings are copied: no output frame shows a dropped repeat as is
    assert [f.ts for f in deduped if f.is_copy and f.ts <= kept_ts[-1]] == kept_ts


def test_4k_frames_take_the_sampled_path_and_classify_alike():
    height, width = 2160, 3840
    shot = textured_scene(10, height, width)
    other = textured_scene(11, height, width)
    detector = SceneDetector()
    kinds = [
        detector.classify(window(shot, 0, 0, height, width)),
        detector.classify(window(shot, 0, 0, height, width)),
        detector.classify(window(shot, 12, 6, height, width)),
        detector.classify(window(other, 0, 0, height, width)),
    ]
    assert kinds == ["motion", "dup", "motion", "cut"]


def _twos_then_cut(height=96, width=160):
    """Shot A animated on twos (3 drawings, 6 frames), then a cut to shot B moving every frame (3)."""
    shot_a, shot_b = textured_scene(20, height, width), textured_scene(21, height, width)
    drawings = [window(shot_a, 4 * k, 0, height, width) for k in range(3)]
    frames = [d for d in drawings for _ in range(2)]
    frames += [window(shot_b, 0, 3 * k, height, width) for k in range(3)]
    return [(Fraction(i, 24), rgb) for i, rgb in enumerate(frames)]


@pytest.mark.parametrize("dedup", [False, True])
def test_scene_timeline_keeps_real_timestamps_and_flags_the_cut(dedup):
    timeline: SceneTimeline[np.ndarray] = SceneTimeline(dedup=dedup)
    out = []
    for ts, rgb in _twos_then_cut():
        out.extend(timeline.push(ts, rgb))
    out.extend(timeline.finish())
    expected_ts = [0, 2, 4, 6, 7, 8] if dedup else list(range(9))
    assert [item.ts * 24 for item in out] == expected_ts
    assert [item.ts * 24 for item in out if item.cut_before] == [6]
    assert timeline.dropped == (3 if dedup else 0)
    assert [(cut.index, cut.ts) for cut in timeline.cuts] == [(6, Fraction(6, 24))]
    assert timeline.cuts[0].score >= DEFAULT_SCENE_THRESHOLD
