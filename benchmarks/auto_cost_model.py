"""Measure the reference cost model of `--profile auto` (REFERENCE_* in src/dainctl/engines/flow.py).

    python benchmarks/auto_cost_model.py [VIDEO] [--profiles high,balanced,fast]

Decodes 4 consecutive frames of VIDEO (default ../shared/data/videos/car-turn.mp4), resizes them to
640x360, 640x480, 1280x720 and 1920x1080, and times `FlowEngine.interpolate` (t = 0.5) of each profile
on the 3 pairs at each size (median; one warm-up pair first), with torch and OpenCV on one thread as
the CLI runs on 2 cores. Prints the seconds per pair, the warp cost per frame megapixel fitted on the
fast profile (its work size is capped, so its cost grows with the frame only through the warps), and
each profile's flow cost per work megapixel at each size, as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from dainctl.engines.flow import PROFILE_SETTINGS, FlowEngine, work_scale

DEFAULT_VIDEO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos" / "car-turn.mp4"
SIZES = ((640, 360), (640, 480), (1280, 720), (1920, 1080))


def frames_of(video: Path, count: int = 4) -> list[np.ndarray]:
    import av

    with av.open(str(video)) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                return frames
    raise SystemExit(f"{video}: fewer than {count} frames")


def tensor(rgb: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    resized = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if size[0] <= rgb.shape[1] else cv2.INTER_CUBIC)
    return torch.from_numpy(resized).permute(2, 0, 1).float().div_(255.0)


def seconds_per_pair(profile: str, frames: list[torch.Tensor]) -> float:
    engine = FlowEngine(profile=profile)
    engine.interpolate(frames[0], frames[1], [0.5])  # warm-up
    times = []
    for frame0, frame1 in zip(frames, frames[1:]):
        start = time.perf_counter()
        engine.interpolate(frame0, frame1, [0.5])
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", nargs="?", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--profiles", default=",".join(PROFILE_SETTINGS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    rgb = frames_of(args.video)
    measured = {}
    for width, height in SIZES:
        frames = [tensor(frame, (width, height)) for frame in rgb]
        for profile in args.profiles.split(","):
            measured[profile, width, height] = seconds_per_pair(profile, frames)
            print(json.dumps({"profile": profile, "size": f"{width}x{height}",
                              "s_per_pair": round(measured[profile, width, height], 4)}), flush=True)
    if "fast" not in args.profiles.split(","):
        return
    # fast: the same work size at 640x360 and 1920x1080, so the difference is the warps'.
    small, large = (640 * 360) / 1e6, (1920 * 1080) / 1e6
    warp = (measured["fast", 1920, 1080] - measured["fast", 640, 360]) / (large - small)
    print(json.dumps({"warp_s_per_frame_mpx": round(warp, 4)}))
    for (profile, width, height), seconds in measured.items():
        settings = PROFILE_SETTINGS[profile]
        passes = 2 if settings.mirror_average else 1
        work = width * height / 1e6 * work_scale(height, width, settings) ** 2
        flow = (seconds / passes - warp * width * height / 1e6) / work
        print(json.dumps({"profile": profile, "size": f"{width}x{height}", "flow_s_per_work_mpx": round(flow, 3)}))


if __name__ == "__main__":
    main()
