"""Peak host memory per pixel of one pair, on the CPU: the engines' memory models come from here.

    python benchmarks/memory_per_pixel.py flow [--sizes 360x640,720x1280,1080x1920]
    python benchmarks/memory_per_pixel.py dain-flow [--sizes 256x384,512x768]

`flow` measures the weight-free engine's `interpolate` on one pair; `dain-flow` measures DAIN's
whole-frame stage (PWC-Net on a (2, 6, H, W) batch, as `TiledEngine` runs it on the whole frame; H, W
multiples of 64). Each size runs in a fresh process; the peak RSS growth of the work is printed per size,
and the slope between the smallest and largest size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Sequence

SETUP = {
    "flow": (
        "from dainctl.engines import create_engine\n"
        "engine = create_engine('flow', device='cpu')\n"
        "g = torch.Generator().manual_seed(0)\n"
        "f0 = torch.rand(3, h, w, generator=g); f1 = torch.roll(f0, 3, dims=2)\n"
        "engine.interpolate(f0[:, :64, :64].contiguous(), f1[:, :64, :64].contiguous(), [0.5])\n"
        "work = lambda: engine.interpolate(f0, f1, [0.5])\n"
    ),
    "dain-flow": (
        "from dainctl.models.dain import DAIN\n"
        "torch.set_grad_enabled(False)\n"
        "model = DAIN().eval()\n"
        "model.flownets(torch.rand(2, 6, 64, 64))\n"
        "pairs = torch.rand(2, 6, h, w)\n"
        "work = lambda: model.flownets(pairs)\n"
    ),
}


def measure(engine_name: str, sizes: Sequence[tuple[int, int]]) -> list[dict]:
    code = (
        "import resource, sys, json, torch\n"
        "h, w = int(sys.argv[1]), int(sys.argv[2])\n"
        + SETUP[engine_name]
        + "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "work()\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(json.dumps({'pixels': h * w, 'growth': (peak - base) * 1024}))\n"
    )
    results = []
    for height, width in sizes:
        out = subprocess.run([sys.executable, "-c", code, str(height), str(width)],
                             check=True, capture_output=True, text=True, env=dict(os.environ)).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
        growth = results[-1]["growth"]
        print(f"{engine_name} {height}x{width}: peak RSS growth {growth / 2**20:.1f} MiB ({growth / (height * width):.0f} B/px)")
    if len(results) > 1:
        (p0, g0), (p1, g1) = [(r["pixels"], r["growth"]) for r in (results[0], results[-1])]
        print(f"{engine_name}: {(g1 - g0) / (p1 - p0):.0f} bytes per pixel (slope between the smallest and largest size)")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("engine", choices=sorted(SETUP))
    parser.add_argument("--sizes", default=None, help="HEIGHTxWIDTH,...")
    args = parser.parse_args()
    default = "360x640,720x1280,1080x1920" if args.engine == "flow" else "256x384,512x768"
    measure(args.engine, [tuple(int(v) for v in s.split("x")) for s in (args.sizes or default).split(",")])


if __name__ == "__main__":
    main()
