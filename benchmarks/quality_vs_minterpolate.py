"""Quality of `dainctl interpolate` against FFmpeg minterpolate on real clips, with twice their motion.

Each clip's even frames (the first --frames of it) are written losslessly (FFV1, the decoded YUV frames
themselves) as a clip at half the rate; both tools double that clip's rate (minterpolate with issue 2's
settings, dainctl with the options given after `--`, default none: `--profile auto`), losslessly too; the
frames they make in between are compared with the odd frames that were left out (PSNR on 8-bit RGB).
Dropping every other frame doubles each pair's motion: these are the large-motion cases.

Usage:
    python benchmarks/quality_vs_minterpolate.py [CLIP ...] [--frames 80] [--json OUT] [-- DAINCTL OPTIONS]

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


def decode(path: Path, limit: int | None = None) -> tuple[list, Fraction]:
    """The first `limit` video frames of `path` (PyAV frames) and the stream's average rate."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = Fraction(stream.average_rate) if stream.average_rate else Fraction(25)
        frames = []
        for frame in container.decode(stream):
            frames.append(frame)
            if limit is not None and len(frames) >= limit:
                break
    return frames, rate


def rgb(frames) -> list[np.ndarray]:
    return [frame.to_ndarray(format="rgb24") for frame in frames]


def write_half_rate(frames, rate: Fraction, path: Path) -> None:
    """frames[0], frames[2], ... as an FFV1 clip at rate / 2, their YUV planes unchanged."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=rate / 2)
        stream.width, stream.height = frames[0].width, frames[0].height
        stream.pix_fmt = frames[0].format.name
        for index, frame in enumerate(frames[::2]):
            frame.pts, frame.time_base = index, Fraction(1) / (rate / 2)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def cut_positions(clip: Path, count: int) -> set[int]:
    """Original frame indices i (< count) with a scene cut between frames i-1 and i (dainctl's detector)."""
    from dainctl.analysis import analyze

    timeline = analyze(clip, folder_rate=Fraction(25))
    return {cut.index for cut in timeline.cuts if cut.index < count}


def run(command: list[str]) -> tuple[float, str]:
    """Seconds the command took, and its standard output."""
    start = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return time.perf_counter() - start, done.stdout


def measure(clip: Path, frames_wanted: int, dainctl_args: list[str], work: Path) -> dict:
    frames, rate = decode(clip, frames_wanted)
    count = len(frames) - (1 - len(frames) % 2)  # odd: the half-rate clip ends on an original frame
    frames = frames[:count]
    truth = rgb(frames)
    half = work / f"{clip.stem}.half.mkv"
    write_half_rate(frames, rate, half)
    results = {"clip": clip.name, "size": f"{frames[0].width}x{frames[0].height}", "rate": str(rate),
               "left_out": count // 2}
    cuts = cut_positions(clip, count)
    # A left-out frame i lies across a cut when a cut falls between i-1 and i+1.
    across = {i for i in range(1, count, 2) if i in cuts or (i + 1) in cuts}
    repeats = {i for i in range(1, count, 2) if i not in across
               and max(psnr(truth[i], truth[i - 1]), psnr(truth[i], truth[i + 1])) >= REPEAT_DB}
    outputs = {
        "minterpolate": (work / f"{clip.stem}.mi.mkv",
                         ["ffmpeg", "-v", "error", "-y", "-i", str(half), "-vf",
                          MINTERPOLATE.format(fps=f"{rate.numerator}/{rate.denominator}"), "-c:v", "ffv1",
                          str(work / f"{clip.stem}.mi.mkv")]),
        "dainctl": (work / f"{clip.stem}.dn.mkv",
                    [sys.executable, "-m", "dainctl", "interpolate", str(half), str(work / f"{clip.stem}.dn.mkv"),
                     "--codec", "ffv1", "--overwrite", "--quiet", "--json", *dainctl_args]),
    }
    runs = {}
    for tool, (path, command) in outputs.items():
        seconds, output = run(command)
        runs[tool] = (seconds, output, rgb(decode(path)[0]))
    # Only the left-out frames both tools made are compared (minterpolate can stop a few frames short).
    common = min(len(made) for _, _, made in runs.values())
    results["compared_to"] = common
    for tool, (seconds, output, made) in runs.items():
        scores = {i: psnr(made[i], truth[i]) for i in range(1, count, 2) if i < common}
        kept = [v for i, v in scores.items() if i not in across and i not in repeats]
        results[tool] = {"seconds": round(seconds, 2), "frames": len(made),
                         "psnr": round(float(np.mean(kept)), 3) if kept else None,
                         "worst": round(float(min(kept)), 3) if kept else None,
                         "across_cuts": round(float(np.mean([scores[i] for i in across if i in scores])), 3)
                         if across else None,
                         "repeats": round(float(np.mean([scores[i] for i in repeats if i in scores])), 3)
                         if repeats else None,
                         "per_frame": {i: round(float(v), 3) for i, v in scores.items()}}
        if tool == "dainctl":
            results[tool]["profile"] = json.loads(output).get("profile")
    results["gain_db"] = (round(results["dainctl"]["psnr"] - results["minterpolate"]["psnr"], 3)
                          if results["dainctl"]["psnr"] is not None else None)
    # How many left-out frames were set apart (each tool's entry holds their mean PSNR under the same names).
    results["frames_across_cuts"], results["frames_repeated"] = len(across), len(repeats)
    results["repeats_gain_db"] = (round(results["dainctl"]["repeats"] - results["minterpolate"]["repeats"], 3)
                                  if repeats else None)
    return results


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="*", type=Path)
    parser.add_argument("--frames", type=int, default=80, help="original frames used from each clip")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if shutil.which("ffmpeg") is None:
        sys.exit("ffmpeg is needed (minterpolate)")
    clips = args.clips or sorted(p for p in DATA.iterdir() if p.suffix in (".mp4", ".mkv", ".mov", ".webm"))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for clip in clips:
            row = measure(clip, args.frames, extra, Path(folder))
            rows.append(row)
            mi, dn = row["minterpolate"], row["dainctl"]
            print(f"{row['clip']:28s} {row['size']:>9s} {row['left_out']:4d} frames  minterpolate {mi['psnr']:6.2f} dB "
                  f"(worst {mi['worst']:6.2f}, {mi['seconds']:5.1f} s)  dainctl {dn['psnr']:6.2f} dB "
                  f"(worst {dn['worst']:6.2f}, {dn['seconds']:5.1f} s, {dn['profile']})  gain {row['gain_db']:+.2f} dB"
                  + (f"  ({row['frames_repeated']} repeated originals apart: gain {row['repeats_gain_db']:+.2f} dB there)"
                     if row["frames_repeated"] else ""), flush=True)
    gains = [row["gain_db"] for row in rows if row["gain_db"] is not None]
    print(f"mean gain {np.mean(gains):+.2f} dB over {len(gains)} clips; smallest {min(gains):+.2f} dB")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
