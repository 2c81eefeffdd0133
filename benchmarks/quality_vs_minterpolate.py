"""Quality of `dainctl interpolate` against FFmpeg minterpolate on real clips, with their motion made larger.

Every --step-th frame of each clip (of its --frames frames from frame --start on; step 2: the even
ones) is written losslessly (FFV1, the decoded YUV frames themselves) as a clip at 1/step of the rate;
both tools raise that clip's rate step times (minterpolate with issue 2's settings to the original
rate, dainctl `--factor STEP` with the options given after `--`, default none: `--profile auto`),
losslessly too; the frames they make in between are compared with the frames that were left out (PSNR
on 8-bit RGB). Dropping frames multiplies each pair's motion by the step: these are the large-motion
cases (step 2 doubles it; 3 and 4 are harder still, and other --start values give other scenes).

Usage:
    python benchmarks/quality_vs_minterpolate.py [CLIP ...] [--frames 80] [--step 2] [--start 0]
        [--json OUT] [-- DAINCTL OPTIONS]

Default clips: every video in ../shared/data/videos. Frames whose left-out original lies across a
scene cut (dainctl's detector on the original clip) are reported apart from the rest: both tools hold or
blend there, and neither can be right. So are left-out originals that repeat a neighbour (PSNR of at
least REPEAT_DB against the frame before or after it: a clip of 24 fps material in 30 fps repeats every
fifth frame), where the motion is not spread evenly over the pair and the right answer is the copy, not
a frame half-way.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "videos"
MINTERPOLATE = "minterpolate=fps={fps}:mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1"
REPEAT_DB = 40.0  # a left-out original at least this close to a neighbour is a repeat of it


def decode(path: Path, limit: int | None = None, start: int = 0) -> tuple[list, Fraction]:
    """`limit` video frames of `path` (PyAV frames) from frame `start` on, and the stream's average rate."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = Fraction(stream.average_rate) if stream.average_rate else Fraction(25)
        frames = []
        for index, frame in enumerate(container.decode(stream)):
            if index < start:
                continue
            frames.append(frame)
            if limit is not None and len(frames) >= limit:
                break
    return frames, rate


def rgb(frames) -> list[np.ndarray]:
    return [frame.to_ndarray(format="rgb24") for frame in frames]


def write_reduced_rate(frames, rate: Fraction, step: int, path: Path) -> None:
    """frames[0], frames[step], ... as an FFV1 clip at rate / step, their YUV planes unchanged."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=rate / step)
        stream.width, stream.height = frames[0].width, frames[0].height
        stream.pix_fmt = frames[0].format.name
        for index, frame in enumerate(frames[::step]):
            frame.pts, frame.time_base = index, Fraction(1) / (rate / step)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def cut_positions(clip: Path, start: int, count: int) -> set[int]:
    """Indices i (0 <= i < count, counted from frame `start`) with a scene cut between frames i-1 and i
    (dainctl's detector on the original clip)."""
    from dainctl.analysis import analyze

    timeline = analyze(clip, folder_rate=Fraction(25))
    return {cut.index - start for cut in timeline.cuts if 0 < cut.index - start < count}


def left_out_frames(count: int, step: int, cuts: set[int]) -> tuple[list[int], set[int]]:
    """Of `count` frames of which every `step`-th one is kept (0, step, 2 step, ...), the indices of those
    left out, and the set of them that lie across a scene cut: a cut (between frames c-1 and c, as
    `cut_positions` gives them) falls between the two kept frames around the left-out one."""
    left_out = [i for i in range(count) if i % step]
    across = {i for i in left_out if any(i // step * step < c <= (i // step + 1) * step for c in cuts)}
    return left_out, across


def _mean(values: list[float]) -> float | None:
    """The mean to 3 decimals, None for no values (no frames of that kind among those compared)."""
    return round(float(np.mean(values)), 3) if values else None


def run(command: list[str]) -> tuple[float, str]:
    """Seconds the command took, and its standard output."""
    start = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return time.perf_counter() - start, done.stdout


def measure(clip: Path, frames_wanted: int, dainctl_args: list[str], work: Path, step: int = 2,
            start: int = 0) -> dict:
    frames, rate = decode(clip, frames_wanted, start)
    count = (len(frames) - 1) // step * step + 1  # the reduced clip ends on a kept frame
    if count < step + 1:
        raise SystemExit(f"{clip}: {len(frames)} frames from frame {start} on, fewer than a step of {step} needs")
    frames = frames[:count]
    truth = rgb(frames)
    reduced = work / f"{clip.stem}.reduced.mkv"
    write_reduced_rate(frames, rate, step, reduced)
    left_out, across = left_out_frames(count, step, cut_positions(clip, start, count))
    results = {"clip": clip.name, "size": f"{frames[0].width}x{frames[0].height}", "rate": str(rate),
               "step": step, "start": start, "left_out": len(left_out)}
    repeats = {i for i in left_out if i not in across
               and max(psnr(truth[i], truth[i - 1]), psnr(truth[i], truth[i + 1])) >= REPEAT_DB}
    outputs = {
        "minterpolate": (work / f"{clip.stem}.mi.mkv",
                         ["ffmpeg", "-v", "error", "-y", "-i", str(reduced), "-vf",
                          MINTERPOLATE.format(fps=f"{rate.numerator}/{rate.denominator}"), "-c:v", "ffv1",
                          str(work / f"{clip.stem}.mi.mkv")]),
        "dainctl": (work / f"{clip.stem}.dn.mkv",
                    [sys.executable, "-m", "dainctl", "interpolate", str(reduced), str(work / f"{clip.stem}.dn.mkv"),
                     "--factor", str(step), "--codec", "ffv1", "--overwrite", "--quiet", "--json", *dainctl_args]),
    }
    runs = {}
    for tool, (path, command) in outputs.items():
        seconds, output = run(command)
        runs[tool] = (seconds, output, rgb(decode(path)[0]))
    # Only the left-out frames both tools made are compared (minterpolate can stop a few frames short).
    common = min(len(made) for _, _, made in runs.values())
    results["compared_to"] = common
    for tool, (seconds, output, made) in runs.items():
        scores = {i: psnr(made[i], truth[i]) for i in left_out if i < common}
        kept = [v for i, v in scores.items() if i not in across and i not in repeats]
        results[tool] = {"seconds": round(seconds, 2), "frames": len(made),
                         "psnr": _mean(kept),
                         "worst": round(float(min(kept)), 3) if kept else None,
                         "across_cuts": _mean([scores[i] for i in across if i in scores]),
                         "repeats": _mean([scores[i] for i in repeats if i in scores]),
                         "per_frame": {i: round(float(v), 3) for i, v in scores.items()}}
        if tool == "dainctl":
            results[tool]["profile"] = json.loads(output).get("profile")
    results["gain_db"] = (round(results["dainctl"]["psnr"] - results["minterpolate"]["psnr"], 3)
                          if results["dainctl"]["psnr"] is not None else None)
    # How many left-out frames were set apart (each tool's entry holds their mean PSNR under the same names).
    results["frames_across_cuts"], results["frames_repeated"] = len(across), len(repeats)
    results["repeats_gain_db"] = (round(results["dainctl"]["repeats"] - results["minterpolate"]["repeats"], 3)
                                  if results["dainctl"]["repeats"] is not None else None)
    return results


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="*", type=Path)
    parser.add_argument("--frames", type=int, default=80, help="original frames used from each clip")
    parser.add_argument("--step", type=int, default=2, help="keep every STEP-th frame; the tools make the rest")
    parser.add_argument("--start", type=int, default=0, help="first original frame used")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.step < 2 or args.start < 0:
        parser.error("--step must be at least 2 and --start at least 0")
    if shutil.which("ffmpeg") is None:
        sys.exit("ffmpeg is needed (minterpolate)")
    clips = args.clips or sorted(p for p in DATA.iterdir() if p.suffix in (".mp4", ".mkv", ".mov", ".webm"))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for clip in clips:
            row = measure(clip, args.frames, extra, Path(folder), args.step, args.start)
            rows.append(row)
            mi, dn = row["minterpolate"], row["dainctl"]
            print(f"{row['clip']:28s} {row['size']:>9s} {row['left_out']:4d} frames  minterpolate {mi['psnr']:6.2f} dB "
                  f"(worst {mi['worst']:6.2f}, {mi['seconds']:5.1f} s)  dainctl {dn['psnr']:6.2f} dB "
                  f"(worst {dn['worst']:6.2f}, {dn['seconds']:5.1f} s, {dn['profile']})  gain {row['gain_db']:+.2f} dB"
                  + (f"  ({row['frames_repeated']} repeated originals apart: gain {row['repeats_gain_db']:+.2f} dB there)"
                     if row["repeats_gain_db"] is not None else ""), flush=True)
    gains = [row["gain_db"] for row in rows if row["gain_db"] is not None]
    print(f"mean gain {np.mean(gains):+.2f} dB over {len(gains)} clips; smallest {min(gains):+.2f} dB")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
