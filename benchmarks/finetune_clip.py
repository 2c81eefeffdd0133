"""Fine-tuning on a real clip within a CPU time budget, then the tuned file through interpolate (issue 14).

    python benchmarks/finetune_clip.py [--clip ../shared/data/videos/car-turn.mp4] [--weights W]
        [--steps 80] [--crop 128] [--batch 2] [--val-every 20] [--val-items 8] [--lr 1e-4] [--out DIR]

Runs `dainctl finetune CLIP --weights W --out DIR/tuned.safetensors ... --json` (W defaults to the fake
checkpoint of ../shared, made and converted to float32 in DIR), prints the validation PSNR of the
starting and of the tuned weights on the clip's held-out triplets and the wall time, then cuts the
clip's first 5 frames into a folder and runs `dainctl interpolate FOLDER OUT.mkv --engine dain --weights
DIR/tuned.safetensors` on them. One JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def fake_weights(folder: Path) -> Path:
    best = folder / "fake.pth"
    converted = folder / "fake32.safetensors"
    if not converted.exists():
        subprocess.run([sys.executable, str(SHARED / "dain" / "make_fake_checkpoint.py"),
                        str(SHARED / "dain" / "best_pth_manifest.json"), str(best), "--seed", "0"], check=True,
                       capture_output=True)
        subprocess.run([sys.executable, "-m", "dainctl", "convert", str(best), str(converted), "--dtype", "fp32",
                        "--quiet"], check=True)
    return converted


def first_frames(clip: Path, folder: Path, count: int) -> Path:
    import av
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    with av.open(str(clip)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index >= count:
                break
            cv2.imwrite(str(folder / f"f{index:03d}.png"), cv2.cvtColor(frame.to_ndarray(format="rgb24"), cv2.COLOR_RGB2BGR))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=SHARED / "data" / "videos" / "car-turn.mp4")
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--val-every", type=int, default=20)
    parser.add_argument("--val-items", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="dainctl-finetune-"))
    out.mkdir(parents=True, exist_ok=True)
    weights = args.weights or fake_weights(out)
    tuned = out / "tuned.safetensors"
    command = [sys.executable, "-m", "dainctl", "finetune", str(args.clip), "--weights", str(weights), "--out", str(tuned),
               "--steps", str(args.steps), "--crop", str(args.crop), "--batch", str(args.batch), "--val-every",
               str(args.val_every), "--val-items", str(args.val_items), "--lr", str(args.lr), "--json", "--overwrite"]
    began = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if result.returncode != 0:
        raise SystemExit(f"finetune failed ({result.returncode}): {result.stderr}")
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    summary = lines[-1]
    for record in lines[:-1]:
        if "val_psnr" in record:
            print(f"step {record['step']}: loss {record['loss']:.4f}, validation PSNR {record['val_psnr']:.2f} dB", flush=True)
    frames = first_frames(args.clip, out / "first5", 5)
    interpolated = out / "first5.2x.mkv"
    began_interp = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "dainctl", "interpolate", str(frames), str(interpolated), "--engine", "dain",
                          "--weights", str(tuned), "--codec", "ffv1", "--overwrite", "--json", "--quiet"],
                         capture_output=True, text=True)
    report = {
        "clip": str(args.clip), "steps": summary["steps"], "crop": args.crop, "batch": args.batch, "lr": args.lr,
        "finetune_wall_seconds": round(wall, 1), "start_val_psnr": round(summary["start_val_psnr"], 3),
        "tuned_val_psnr": round(summary["final_val_psnr"], 3), "clips": summary["clips"],
        "interpolate_exit_code": run.returncode,
        "interpolate_output_frames": json.loads(run.stdout)["output_frames"] if run.returncode == 0 else None,
        "interpolate_seconds": round(time.perf_counter() - began_interp, 1), "out": str(out),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
