"""The cost of planning first and of segments, through the CLI, side by side in one run (issue 15).

    python benchmarks/segments_overhead.py [--base e19cde8] [--input ../shared/data/videos/cockatoo.mp4]
        [--runs 3] [--profile fast] [--segment-seconds 2] [--configs base,one,segmented]

Three commands, alternating, `--runs` times each after one warm-up of each:
  base       `dainctl interpolate IN OUT --profile P --json --quiet` from a worktree of the base commit
             (before the analysis pass: one streaming pass), PYTHONPATH at its src/;
  one        the same command from this tree (the analysis pass, then one segment: the input is shorter
             than the default --segment-seconds);
  segmented  this tree with `--segment-seconds S` (segments in the job folder, joined by stream copy).
Wall time of each whole command (`/usr/bin/time`-like, process start to exit). Prints one JSON line per
run, then the medians, one/base and segmented/one, and this tree's analysis-pass share of its run (from
its --json `stage_seconds.analysis` over `elapsed_seconds`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_once(src: Path, clip: Path, out: Path, profile: str, extra: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, "-m", "dainctl", "interpolate", str(clip), str(out), "--profile", profile, "--json",
               "--quiet", "--overwrite", *extra]
    began = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - began
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)}: exit {proc.returncode}\n{proc.stderr}")
    payload = json.loads(proc.stdout)
    stages = payload.get("stage_seconds", {})
    return {"wall_seconds": round(wall, 3), "elapsed_seconds": payload["elapsed_seconds"],
            "analysis_seconds": stages.get("analysis"), "segments": (payload.get("segments") or {}).get("count"),
            "output_frames": payload["output_frames"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="e19cde8")
    parser.add_argument("--input", type=Path, default=ROOT.parent / "shared" / "data" / "videos" / "cockatoo.mp4")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", default="fast")
    parser.add_argument("--segment-seconds", default="2")
    parser.add_argument("--configs", default="base,one,segmented", help="which of the three to run")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dainctl-segments-"))
    base_tree = work / "base"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base_tree), args.base], check=True,
                   capture_output=True)
    try:
        configs = {
            "base": (base_tree / "src", []),
            "one": (ROOT / "src", []),
            "segmented": (ROOT / "src", ["--segment-seconds", args.segment_seconds]),
        }
        configs = {name: value for name, value in configs.items() if name in args.configs.split(",")}
        for name, (src, extra) in configs.items():  # warm-up: file caches, kernel builds
            run_once(src, args.input, work / f"{name}.mp4", args.profile, extra)
        results: dict[str, list[dict]] = {name: [] for name in configs}
        for index in range(args.runs):
            for name, (src, extra) in configs.items():
                row = run_once(src, args.input, work / f"{name}.mp4", args.profile, extra)
                results[name].append(row)
                print(json.dumps({"config": name, "run": index, **row}), flush=True)
        medians = {name: statistics.median(r["wall_seconds"] for r in rows) for name, rows in results.items()}

        def ratio(a: str, b: str):
            return round(medians[a] / medians[b], 4) if a in medians and b in medians else None

        ours = results.get("one") or results.get("segmented") or []
        share = statistics.median(r["analysis_seconds"] / r["elapsed_seconds"] for r in ours) if ours else None
        print(json.dumps({"medians_wall_seconds": medians, "one_over_base": ratio("one", "base"),
                          "segmented_over_one": ratio("segmented", "one"),
                          "analysis_share_of_run": round(share, 4) if share is not None else None,
                          "segments": results["segmented"][0]["segments"] if "segmented" in results else None,
                          "input": str(args.input), "profile": args.profile}))
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base_tree)], capture_output=True)


if __name__ == "__main__":
    main()
