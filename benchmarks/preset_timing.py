"""Benchmark: encode time and size of x264 presets through dainctl's writer, to choose the default preset.

    .venv/bin/python benchmarks/preset_timing.py [VIDEO] [--frames N] [--crf 18] [--presets ultrafast,veryfast,...]

Decodes the first N frames of VIDEO (default ../shared/data/videos/cockatoo.mp4, else a generated 720p
clip) into memory, then encodes them once per preset with `open_output` and prints wall time, CPU time
(all threads), encode fps and file size. Nothing else runs in the timed section.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from dainctl.video import make_sample_clip, open_input, open_output

_DEFAULT_VIDEO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos" / "cockatoo.mp4"
_DEFAULT_PRESETS = "ultrafast,superfast,veryfast,faster,fast,medium"


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", type=Path, default=None)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--crf", type=int, default=18)
    parser.add_argument("--presets", default=_DEFAULT_PRESETS)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        video = args.video
        if video is None:
            video = _DEFAULT_VIDEO if _DEFAULT_VIDEO.exists() else None
        if video is None:
            video = make_sample_clip(Path(scratch) / "sample.mp4", 1280, 720, args.frames, Fraction(24), audio=False)
        wall, cpu = time.perf_counter(), _cpu_seconds()
        with open_input(video) as src:
            info = src.info
            frames = []
            for ts, rgb in src.frames():
                if len(frames) == args.frames:
                    break
                frames.append((ts, rgb))
        wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
        end = frames[-1][0] + 1 / info.rate
        print(f"{video}: {len(frames)} frames {info.width}x{info.height} {info.pix_fmt} at {info.rate} fps, "
              f"crf {args.crf}, yuv420p, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
        print(f"decode to RGB: {wall:.2f} s wall, {cpu:.2f} s CPU ({1000 * cpu / len(frames):.1f} ms CPU per frame)")
        print(f"{'preset':<10} {'wall s':>7} {'cpu s':>7} {'fps':>7} {'KiB':>8}")
        for preset in args.presets.split(","):
            out = Path(scratch) / f"{preset}.mp4"
            wall, cpu = time.perf_counter(), _cpu_seconds()
            dst = open_output(out, width=info.width, height=info.height, rate=info.rate, crf=args.crf, preset=preset)
            for ts, rgb in frames:
                dst.write(rgb, ts)
            dst.close(end)
            wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
            print(f"{preset:<10} {wall:7.2f} {cpu:7.2f} {len(frames) / wall:7.1f} {out.stat().st_size / 1024:8.0f}")


if __name__ == "__main__":
    main()
