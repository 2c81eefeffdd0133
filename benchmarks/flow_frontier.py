"""Quality and cost of weight-free engine variants on the shared triplets (issue 11's frontier search).

    python benchmarks/flow_frontier.py NAME [NAME ...]      # variants by name (see VARIANTS), or `all`
    python benchmarks/flow_frontier.py --no-time NAME ...   # the PSNR means only
    python benchmarks/flow_frontier.py --pair Urban2 NAME ... # seconds per pair on one Middlebury pair only

For each variant: mean PSNR on ../shared/data/middlebury and ../shared/data/ucf101 (as `dainctl
benchmark quality` scores it), and the engine's seconds per pair: the median over the first 4
Middlebury 640x480 pairs and the first 4 UCF101 320x240 pairs (one run each, after the quality pass), with OpenCV and torch on one thread as the CLI
runs on 2 cores (the DIS pool of candidate profiles uses one thread per core). One JSON line per variant.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import torch

from dainctl.engines.flow import PROFILE_SETTINGS, FlowEngine, FlowSettings
from dainctl.quality import evaluate_triplets, find_triplets, load_rgb

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FAST = PROFILE_SETTINGS["fast"]
# The variants below built on HIGH were measured with the high profile as it was until 2026-12-04 (full
# size, refinement, shifted candidates, mirror average) and the engine's grey_preference then, 0.8.
HIGH = FlowSettings(finest_scale=0, patch_stride=2, gradient_descent_iterations=40, refine_iterations=5,
                    colour_candidates=True, mirrored_candidates=True, shifted_candidates=True, mirror_average=True)
OLD_PREFERENCE = {"grey_preference": 0.8}

FULL = replace(FAST, max_side=None)
COLOUR = replace(FULL, colour_candidates=True)
FS0 = replace(FULL, finest_scale=0)
VARIANTS: dict[str, tuple[FlowSettings, dict]] = {
    "fast": (FAST, {}),
    "high": (PROFILE_SETTINGS["high"], {}),  # the profile as it is now
    "high-until-2026-12-04": (HIGH, OLD_PREFERENCE),
    # the fast profile's work size cap and finest level
    "fast-cap480": (replace(FAST, max_side=480), {}),
    "fast-full": (FULL, {}),
    "fast-cap320-fs0": (replace(FAST, finest_scale=0), {}),
    "fast-full-fs0": (replace(FULL, finest_scale=0), {}),
    # DIS parameters at full size
    "full-stride2": (replace(FULL, patch_stride=2), {}),
    "full-stride4": (replace(FULL, patch_stride=4), {}),
    "full-gd12": (replace(FULL, gradient_descent_iterations=12), {}),
    "full-gd40": (replace(FULL, gradient_descent_iterations=40), {}),
    "full-refine0": (replace(FULL, refine_iterations=0), {}),
    "full-refine10": (replace(FULL, refine_iterations=10), {}),
    "full-patch12": (replace(FULL, patch_size=12), {}),
    "full-patch6": (replace(FULL, patch_size=6), {}),
    "full-alpha10": (replace(FULL, variational_alpha=10.0), {}),
    "full-alpha40": (replace(FULL, variational_alpha=40.0), {}),
    # candidates and averaging with the fast DIS parameters at full size
    "full-mirroravg": (replace(FULL, mirror_average=True), {}),
    "full-colour": (COLOUR, OLD_PREFERENCE),
    # the fast DIS parameters at full size and finest level 0
    "fs0-colour": (replace(FS0, colour_candidates=True), OLD_PREFERENCE),
    "fs0-mirroravg": (replace(FS0, mirror_average=True), {}),
    "fs0-upscale480": (replace(FS0, min_side=480), {}),
    "fs0-upscale640": (replace(FS0, min_side=640), {}),
    "fs0-patch12": (replace(FS0, patch_size=12), {}),
    "fs0-stride4": (replace(FS0, patch_stride=4), {}),
    "fs0-gd12": (replace(FS0, gradient_descent_iterations=12), {}),
    "fs0-refine0": (replace(FS0, refine_iterations=0), {}),
    "fs0-colour-mirrored": (replace(FS0, colour_candidates=True, mirrored_candidates=True), OLD_PREFERENCE),
    # cheaper work sizes and levels around the fast profile
    "cap320-fs0-refine0": (replace(FAST, finest_scale=0, refine_iterations=0), {}),
    "cap256-fs0": (replace(FAST, finest_scale=0, max_side=256), {}),
    "cap400-fs1": (replace(FAST, max_side=400), {}),
    "cap400-fs0": (replace(FAST, finest_scale=0, max_side=400), {}),
    "cap320-fs0-stride4": (replace(FAST, finest_scale=0, patch_stride=4), {}),
    "cap320-fs0-mirroravg": (replace(FAST, finest_scale=0, mirror_average=True), {}),
    "cap320-fs0-upscale480": (replace(FAST, finest_scale=0, min_side=480), {}),
    # without variational refinement (cheaper, and better at finest level 0)
    "fs0-refine0-gd12": (replace(FS0, refine_iterations=0, gradient_descent_iterations=12), {}),
    "fs0-refine0-stride4": (replace(FS0, refine_iterations=0, patch_stride=4), {}),
    "fs0-refine0-stride2": (replace(FS0, refine_iterations=0, patch_stride=2), {}),
    "cap480-fs0-refine0": (replace(FAST, finest_scale=0, refine_iterations=0, max_side=480), {}),
    "cap400-fs0-refine0": (replace(FAST, finest_scale=0, refine_iterations=0, max_side=400), {}),
    "cap320-fs0-refine0-gd12": (replace(FAST, finest_scale=0, refine_iterations=0, gradient_descent_iterations=12), {}),
    "cap320-fs0-refine0-stride4": (replace(FAST, finest_scale=0, refine_iterations=0, patch_stride=4), {}),
    "fs0-refine0-mirroravg": (replace(FS0, refine_iterations=0, mirror_average=True), {}),
    "fs0-refine0-colour": (replace(FS0, refine_iterations=0, colour_candidates=True), OLD_PREFERENCE),
    # a work size relative to the frame
    "scale0.75-fs0-refine0": (replace(FS0, refine_iterations=0, scale=0.75), {}),
    "scale0.625-fs0-refine0": (replace(FS0, refine_iterations=0, scale=0.625), {}),
    "scale0.5-fs0-refine0": (replace(FS0, refine_iterations=0, scale=0.5), {}),
    "scale0.75-fs0": (replace(FS0, scale=0.75), {}),
    "scale0.6-fs0-refine0": (replace(FS0, refine_iterations=0, scale=0.6), {}),
    "scale0.65-fs0-refine0": (replace(FS0, refine_iterations=0, scale=0.65), {}),
    "scale0.7-fs0-refine0": (replace(FS0, refine_iterations=0, scale=0.7), {}),
    "scale0.625-fs0": (replace(FS0, scale=0.625), {}),
    "scale0.625-fs0-refine0-mirroravg": (replace(FS0, refine_iterations=0, scale=0.625, mirror_average=True), {}),
    "scale0.625-fs0-refine0-colour": (replace(FS0, refine_iterations=0, scale=0.625, colour_candidates=True), OLD_PREFERENCE),
    # the high profile's candidates on the cheaper flow
    "high-scale0.6-refine0": (replace(HIGH, scale=0.6, refine_iterations=0), OLD_PREFERENCE),
    "high-scale0.6-refine0-fastdis": (replace(HIGH, scale=0.6, refine_iterations=0, patch_stride=3,
                                              gradient_descent_iterations=25), OLD_PREFERENCE),
    "scale0.6-colour-mirrored-avg": (replace(FS0, refine_iterations=0, scale=0.6, colour_candidates=True,
                                             mirrored_candidates=True, mirror_average=True), OLD_PREFERENCE),
    # 2026-12-04, with the bicubic warp: the high profile's DIS on fewer candidates (the last one of
    # these with grey_preference 0.9 is the high profile since)
    "high-scale0.6-refine0-noavg": (replace(HIGH, scale=0.6, refine_iterations=0, mirror_average=False), OLD_PREFERENCE),
    "high-scale0.6-refine0-noavg-noshift": (replace(HIGH, scale=0.6, refine_iterations=0, mirror_average=False,
                                                    shifted_candidates=False), OLD_PREFERENCE),
    "high-scale0.6-refine0-noshift": (replace(HIGH, scale=0.6, refine_iterations=0, shifted_candidates=False), OLD_PREFERENCE),
    "high-scale0.5-refine0-noavg": (replace(HIGH, scale=0.5, refine_iterations=0, mirror_average=False), OLD_PREFERENCE),
    "high-noavg-noshift-pref0.9": (replace(HIGH, scale=0.6, refine_iterations=0, mirror_average=False,
                                           shifted_candidates=False), {"grey_preference": 0.9}),  # = "high" now
    "high-noavg-noshift-pref1": (replace(HIGH, scale=0.6, refine_iterations=0, mirror_average=False,
                                         shifted_candidates=False), {"grey_preference": 1.0}),
    "high-noavg-noshift-radius3": (replace(HIGH, scale=0.6, refine_iterations=0, mirror_average=False,
                                           shifted_candidates=False), {"candidate_radius": 3, **OLD_PREFERENCE}),
    "high-noavg-noshift-radius8": (replace(HIGH, scale=0.6, refine_iterations=0, mirror_average=False,
                                           shifted_candidates=False), {"candidate_radius": 8, **OLD_PREFERENCE}),
    "high-noavg-noshift-scale0.65": (replace(HIGH, scale=0.65, refine_iterations=0, mirror_average=False,
                                             shifted_candidates=False), OLD_PREFERENCE),
    # 2026-12-04, ninth session (the vectorised bicubic read): the fast profile without its variational
    # refinement, at its cap and larger ones
    "fast-refine0": (replace(FAST, refine_iterations=0), {}),
    "fast-refine0-cap400": (replace(FAST, refine_iterations=0, max_side=400), {}),
    "fast-refine0-cap480": (replace(FAST, refine_iterations=0, max_side=480), {}),
    "fast-cap400": (replace(FAST, max_side=400), {}),
    # and the high profile with the shifted candidates back (24 DIS calls per pair)
    "high-shifted": (replace(PROFILE_SETTINGS["high"], shifted_candidates=True), {}),
    # small frames (UCF101's 320x240) not shrunk below a long side of 384 for the flow (upscaled):
    # at 0.6 of the frame the high and balanced profiles see UCF101 at 192x144
    "high-min384": (replace(PROFILE_SETTINGS["high"], min_side=384), {}),
    "balanced-min384": (replace(PROFILE_SETTINGS["balanced"], min_side=384), {}),
    # the high profile with fewer gradient-descent iterations per patch (40 now)
    "high-gd30": (replace(PROFILE_SETTINGS["high"], gradient_descent_iterations=30), {}),
    "high-gd20": (replace(PROFILE_SETTINGS["high"], gradient_descent_iterations=20), {}),
    # the balanced profile as it is now (2026-12-06: the backward flow from the forward one projected,
    # or DIS stopped at level 1, per pixel), and as it was (DIS at level 0 both ways)
    "balanced": (PROFILE_SETTINGS["balanced"], {}),
    "balanced-two-dis": (replace(PROFILE_SETTINGS["balanced"], backward_finest_scale=None), {}),
    # the same backward candidates in the fast profile: DIS backward stopped one level above the
    # forward's (2) or at it (1: only the projected candidate added)
    "fast-derived2": (replace(FAST, backward_finest_scale=2), {}),
    "fast-derived1": (replace(FAST, backward_finest_scale=1), {}),
    # engine options on the fast DIS flow at full size
    "full-consistency2": (FULL, {"consistency_scale": 2.0}),
    "full-consistency0.5": (FULL, {"consistency_scale": 0.5}),
    "full-occlusion0.6": (FULL, {"occlusion_strength": 0.6}),
}


TIMED = True


def engine_for(name: str, settings: FlowSettings, options: dict) -> FlowEngine:
    """An engine running `settings` as a profile of its own (registered under the variant's name)."""
    PROFILE_SETTINGS.setdefault(f"variant:{name}", settings)
    engine = FlowEngine(profile="fast", **options)
    engine.profile = f"variant:{name}"
    return engine


def seconds_per_pair(engine: FlowEngine, folder: Path, width: int) -> float | None:
    pairs = [(load_rgb(t.first), load_rgb(t.last)) for t in find_triplets(folder)]
    pairs = [pair for pair in pairs if pair[0].shape[2] == width][:4]
    times = []
    for frame0, frame1 in pairs:
        start = time.perf_counter()
        engine.interpolate(frame0, frame1, [0.5])
        times.append(time.perf_counter() - start)
    return round(statistics.median(times), 4) if times else None


def measure(name: str) -> dict:
    settings, options = VARIANTS[name]
    engine = engine_for(name, settings, options)
    row = {"variant": name}
    for dataset in ("middlebury", "ucf101"):
        row[dataset] = round(evaluate_triplets(engine, DATA / dataset).mean_psnr, 3)
    if TIMED:
        row["s_per_pair_640x480"] = seconds_per_pair(engine, DATA / "middlebury", 640)
        row["s_per_pair_320x240"] = seconds_per_pair(engine, DATA / "ucf101", 320)
    return row


def time_pair(sequence: str, names: list[str]) -> None:
    """Median of 3 timed `interpolate` calls (t = 0.5, after one warm-up) on one Middlebury pair."""
    frame0 = load_rgb(DATA / "middlebury" / sequence / "frame10.png")
    frame1 = load_rgb(DATA / "middlebury" / sequence / "frame11.png")
    for name in names:
        settings, options = VARIANTS[name]
        engine = engine_for(name, settings, options)
        engine.interpolate(frame0, frame1, [0.5])
        times = []
        for _ in range(3):
            start = time.perf_counter()
            engine.interpolate(frame0, frame1, [0.5])
            times.append(time.perf_counter() - start)
        print(json.dumps({"variant": name, "size": f"{frame0.shape[2]}x{frame0.shape[1]}",
                          "s_per_pair": round(statistics.median(times), 4),
                          "runs": [round(t, 3) for t in times]}), flush=True)


def main(names: list[str]) -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    if names[:1] == ["--pair"]:
        time_pair(names[1], names[2:])
        return
    global TIMED
    if "--no-time" in names:
        names.remove("--no-time")
        TIMED = False
    for name in (list(VARIANTS) if names == ["all"] else names):
        print(json.dumps(measure(name)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
