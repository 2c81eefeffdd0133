"""DAIN through the CLI, this tree against an older commit, side by side in one run (issue 13).

    python benchmarks/seam_speed.py [--base fd7c9a1] [--size 320x240] [--frames 12] [--runs 3]

Both trees run the same command on the same clip and the same random well-scaled weights (CPU, fp32,
2x): `dainctl interpolate CLIP OUT --engine dain --weights W --json --quiet`. The base commit is checked
out with `git worktree` into a temporary folder and run with PYTHONPATH pointing at its `src/` (the
venv's own dainctl is this tree). After one warm-up run each (the kernels' JIT build, file caches), the
two alternate `--runs` times; the JSON's `elapsed_seconds / output_frames` is the time per output frame
(start-up and weight loading excluded). Prints one JSON line per run and a summary line with the medians
and their ratio (this tree over the base).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_once(src: Path, clip: Path, weights: Path, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, "-m", "dainctl", "interpolate", str(clip), str(out), "--engine", "dain", "--weights",
               str(weights), "--json", "--quiet", "--overwrite"]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=str(out.parent))
    if proc.returncode != 0:
        raise SystemExit(f"{src}: exit {proc.returncode}\n{proc.stderr}")
    payload = json.loads(proc.stdout)
    return {"elapsed_seconds": payload["elapsed_seconds"], "output_frames": payload["output_frames"],
            "s_per_output_frame": payload["elapsed_seconds"] / payload["output_frames"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="fd7c9a1")
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    from dainctl.benchmark import write_random_dain_weights
    from dainctl.video import make_sample_clip

    with tempfile.TemporaryDirectory(prefix="dainctl-seam-") as tmp:
        tmp = Path(tmp)
        base = tmp / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.base], check=True,
                       capture_output=True)
        try:
            clip = tmp / "clip.mp4"
            make_sample_clip(clip, width=width, height=height, frames=args.frames, rate=Fraction(24), audio=False)
            weights = write_random_dain_weights(tmp / "dain_random.safetensors")
            trees = {"base": base / "src", "this": ROOT / "src"}
            times: dict[str, list[float]] = {name: [] for name in trees}
            for name, src in trees.items():  # warm-up
                run_once(src, clip, weights, tmp / f"warm_{name}.mp4")
            for index in range(args.runs):
                for name, src in trees.items():
                    result = run_once(src, clip, weights, tmp / f"out_{name}.mp4")
                    times[name].append(result["s_per_output_frame"])
                    print(json.dumps({"tree": name, "run": index, **result}), flush=True)
            medians = {name: statistics.median(values) for name, values in times.items()}
            print(json.dumps({"summary": True, "base": args.base, "size": args.size, "frames": args.frames,
                              "median_s_per_output_frame": medians,
                              "this_over_base": medians["this"] / medians["base"]}))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], capture_output=True)


if __name__ == "__main__":
    main()
