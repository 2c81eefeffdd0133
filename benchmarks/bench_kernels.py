"""Time the compiled dainctl kernels against their pure-PyTorch references.

CPU (always): compiled vs reference at 1280x720, batch 1, float32, for the depth-aware projection,
filter interpolation (3-channel frames; add --context for DAIN's 196-channel context), backward warp
and, at quarter resolution, the correlation. CUDA (when a GPU is visible): time per call at 1920x1080
in float32 and float16, with the bandwidth achieved against the bytes each op must read and write.

With --backward: forward + backward (the gradient of every input) at 256x256, float32, on the CPU:
the compiled ops (their compiled backward, `dainctl.kernels._autograd`) against autograd through the
references. With --parts: the gather ops' forward and backward ops alone, at several shapes.

Usage:
    .venv/bin/python benchmarks/bench_kernels.py [--repeats N] [--context] [--backward | --parts] [--json OUT.json]

Times are medians over N calls after one warm-up call (which also builds the library if needed).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from dainctl.kernels import _build, backward_warp, bicubic_warp, correlation, depth_flow_projection, filter_interpolation


@dataclass
class Case:
    """One op on one set of inputs: its name, the call per impl, and the bytes it must move."""

    name: str
    run: Callable[[str], torch.Tensor]
    min_bytes: int


def smooth_flow(height: int, width: int, scale: float, generator: torch.Generator) -> torch.Tensor:
    """(1,2,H,W) smooth motion of about `scale` pixels, like real flows (i.i.d. per-pixel noise would turn
    every read into a cache miss, which no real video does): coarse noise upsampled 16x."""
    coarse = torch.randn((1, 2, height // 16 + 1, width // 16 + 1), generator=generator) * scale
    return F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)


def make_cases(device: str, dtype: torch.dtype, height: int, width: int, context: bool,
               requires_grad: bool = False) -> list[Case]:
    generator = torch.Generator().manual_seed(0)

    def rand(*shape, scale=1.0, offset=0.0):
        return (torch.rand(shape, generator=generator) * scale + offset).to(device, dtype).requires_grad_(requires_grad)

    def randn(*shape, scale=1.0):
        return (torch.randn(shape, generator=generator) * scale).to(device, dtype).requires_grad_(requires_grad)

    item = torch.finfo(dtype).bits // 8
    pixels = height * width
    flow = smooth_flow(height, width, 8.0, generator).to(device, dtype)
    flow.requires_grad_(requires_grad)
    weight = rand(1, 1, height, width, scale=2.0, offset=1e-3)
    frame = rand(1, 3, height, width)
    filters = rand(1, 16, height, width, scale=0.125)
    cases = [
        Case(
            "depth_flow_projection",
            lambda impl: depth_flow_projection(flow, weight, True, impl=impl),
            (2 + 1 + 2) * pixels * item,
        ),
        Case(
            "filter_interpolation C=3",
            lambda impl: filter_interpolation(frame, flow, filters, impl=impl),
            (3 + 2 + 16 + 3) * pixels * item,
        ),
        Case("backward_warp C=3", lambda impl: backward_warp(frame, flow, impl=impl), (3 + 2 + 3) * pixels * item),
    ]
    if not requires_grad:  # forward only (its backward is its twin's)
        cases.append(Case("bicubic_warp C=3", lambda impl: bicubic_warp(frame, flow, impl=impl),
                          (3 + 2 + 3) * pixels * item))
    if context:
        features = rand(1, 196, height, width)
        cases.append(
            Case(
                "filter_interpolation C=196",
                lambda impl: filter_interpolation(features, flow, filters, impl=impl),
                (196 + 2 + 16 + 196) * pixels * item,
            )
        )
    # PWC-Net's finest correlation: 32 channels at a quarter of the resolution.
    quarter_h, quarter_w = height // 4, width // 4
    feat_a = randn(1, 32, quarter_h, quarter_w)
    feat_b = randn(1, 32, quarter_h, quarter_w)
    cases.append(
        Case(
            f"correlation C=32 {quarter_w}x{quarter_h}",
            lambda impl: correlation(feat_a, feat_b, 4, impl=impl),
            (2 * 32 + 81) * quarter_h * quarter_w * item,
        )
    )
    return cases


def median_seconds(call: Callable[[], torch.Tensor], repeats: int, device: str) -> tuple[float, float]:
    """Median wall-clock seconds per call and, on CPU, median process CPU seconds (all threads)."""
    call()  # warm-up (and the build, the first time)
    wall, cpu = [], []
    for _ in range(repeats):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            call()
            end.record()
            torch.cuda.synchronize()
            wall.append(start.elapsed_time(end) / 1000)
            cpu.append(math.nan)
        else:
            begin, begin_cpu = time.perf_counter(), time.process_time()
            call()
            wall.append(time.perf_counter() - begin)
            cpu.append(time.process_time() - begin_cpu)
    return statistics.median(wall), statistics.median(cpu)


def paired_median_seconds(calls: tuple[Callable[[], object], ...], repeats: int) -> list[float]:
    """Median wall-clock seconds per call of each of `calls` (CPU), run in turn within every repeat, so
    that a machine slowed for a while by its neighbours slows them all alike."""
    for call in calls:
        call()  # warm-up (and the build, the first time)
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(repeats):
        for call, spent in zip(calls, times):
            begin = time.perf_counter()
            call()
            spent.append(time.perf_counter() - begin)
    return [statistics.median(spent) for spent in times]


def bench_cpu(repeats: int, context: bool) -> list[dict]:
    rows = []
    print(f"CPU, 1280x720, float32, {torch.get_num_threads()} threads, median of {repeats}")
    print("(wall-clock ms, and CPU ms summed over threads: the latter is less sensitive to a busy machine)")
    header = ("op", "ref wall", "compiled", "speed-up", "ref cpu", "compiled", "ratio")
    print(f"{header[0]:34s} " + " ".join(f"{name:>9s}" for name in header[1:]))
    for case in make_cases("cpu", torch.float32, 720, 1280, context):
        reference, reference_cpu = median_seconds(lambda: case.run("ref"), repeats, "cpu")
        compiled, compiled_cpu = median_seconds(lambda: case.run("compiled"), repeats, "cpu")
        print(
            f"{case.name:34s} {reference * 1e3:9.1f} {compiled * 1e3:9.1f} {reference / compiled:8.1f}x "
            f"{reference_cpu * 1e3:9.1f} {compiled_cpu * 1e3:9.1f} {reference_cpu / compiled_cpu:6.1f}x"
        )
        rows.append(
            {"device": "cpu", "op": case.name, "reference_s": reference, "compiled_s": compiled,
             "reference_cpu_s": reference_cpu, "compiled_cpu_s": compiled_cpu}
        )
    return rows


def bench_backward(repeats: int) -> list[dict]:
    """Forward + backward at 256x256 float32 on the CPU, compiled against autograd through the twins."""
    rows = []
    print(f"CPU, 256x256, float32, forward + backward, {torch.get_num_threads()} threads, median of {repeats}"
          " (the reference and the compiled op in turn)")
    print(f"{'op':34s} {'ref ms':>9s} {'compiled':>9s} {'speed-up':>9s}")
    for case in make_cases("cpu", torch.float32, 256, 256, False, requires_grad=True):
        grad = torch.ones_like(case.run("ref"))

        def step(impl: str, case=case, grad=grad) -> None:
            case.run(impl).backward(grad)

        reference, compiled = paired_median_seconds((lambda: step("ref"), lambda: step("compiled")), repeats)
        print(f"{case.name:34s} {reference * 1e3:9.1f} {compiled * 1e3:9.1f} {reference / compiled:8.1f}x")
        rows.append({"device": "cpu", "op": case.name, "backward": True, "reference_s": reference,
                     "compiled_s": compiled})
    return rows


# (channels, height, width, flow scale): the benchmark's 3-channel frames, a 720p frame, PWC-Net's
# features and DAIN's 196-channel context at a coarse and a finer level.
PART_SHAPES = ((3, 256, 256, 8.0), (3, 720, 1280, 8.0), (32, 128, 128, 4.0), (64, 64, 64, 2.0), (196, 16, 16, 1.0),
               (196, 128, 128, 4.0))


def bench_parts(repeats: int) -> list[dict]:
    """The compiled CPU ops called directly (`torch.ops.dainctl.*`: no autograd, no reference), forward
    and backward of the gather ops, at the shapes of PART_SHAPES (float32, smooth random flow): where a
    kernel change's time goes, without the autograd glue of --backward."""
    ops = torch.ops.dainctl
    rows = []
    print(f"CPU, float32, the ops alone, {torch.get_num_threads()} threads, median ms of {repeats}")
    print(f"{'shape':>18s} {'warp':>8s} {'warp bwd':>9s} {'filter':>8s} {'filter bwd':>11s}")
    for channels, height, width, scale in PART_SHAPES:
        generator = torch.Generator().manual_seed(0)
        flow = smooth_flow(height, width, scale, generator)
        image = torch.rand((1, channels, height, width), generator=generator)
        grad = torch.rand_like(image)
        filters = torch.rand((1, 16, height, width), generator=generator) * 0.125
        calls = {
            "warp": lambda: ops.backward_warp(image, flow),
            "warp_backward": lambda: ops.backward_warp_backward(grad, image, flow),
            "filter": lambda: ops.filter_interpolation(image, flow, filters),
            "filter_backward": lambda: ops.filter_interpolation_backward(grad, image, flow, filters),
        }
        times = {name: median_seconds(call, repeats, "cpu")[0] for name, call in calls.items()}
        shape = f"C={channels} {width}x{height}"
        print(f"{shape:>18s} " + " ".join(f"{times[name] * 1e3:{w}.3f}" for name, w in zip(calls, (8, 9, 8, 11))))
        rows.append({"device": "cpu", "shape": [channels, height, width], "parts_s": times})
    return rows


def bench_cuda(repeats: int, context: bool) -> list[dict]:
    return bench_device("cuda", (torch.float32, torch.float16), 1080, 1920, repeats, context)


def bench_device(device: str, dtypes, height: int, width: int, repeats: int, context: bool,
                 reference: bool = True) -> list[dict]:
    """Time per call of each compiled op (and, with `reference`, its reference) at `width`x`height`, with
    the bandwidth achieved against the bytes the op must move. `scripts/gpu_check.py` calls this too."""
    rows = []
    where = f"CUDA ({torch.cuda.get_device_name()})" if device == "cuda" else "CPU"
    print(f"\n{where}, {width}x{height}, median of {repeats}")
    print(f"{'op':34s} {'dtype':>8s} {'compiled ms':>12s} {'GB/s':>8s} {'reference ms':>13s}")
    for dtype in dtypes:
        for case in make_cases(device, dtype, height, width, context):
            compiled, _ = median_seconds(lambda: case.run("compiled"), repeats, device)
            ref = median_seconds(lambda: case.run("ref"), repeats, device)[0] if reference else math.nan
            bandwidth = case.min_bytes / compiled / 1e9
            print(
                f"{case.name:34s} {str(dtype)[6:]:>8s} {compiled * 1e3:12.3f} {bandwidth:8.0f} "
                f"{ref * 1e3:13.3f}"
            )
            rows.append(
                {"device": device, "dtype": str(dtype), "op": case.name, "compiled_s": compiled,
                 "reference_s": None if math.isnan(ref) else ref, "min_bytes": case.min_bytes,
                 "achieved_GBps": bandwidth}
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--context", action="store_true", help="also time the 196-channel filter interpolation")
    parser.add_argument("--no-cpu", action="store_true", help="skip the CPU comparison")
    parser.add_argument("--threads", type=int, help="torch and OpenMP CPU threads (default: torch's)")
    parser.add_argument("--backward", action="store_true", help="forward + backward at 256x256 on the CPU instead")
    parser.add_argument("--parts", action="store_true",
                        help="the CPU ops alone (no autograd), forward and backward, at several shapes, instead")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"library: {_build.load_library(need_cuda=torch.cuda.is_available())}")
    if args.parts:
        rows = bench_parts(args.repeats)
    elif args.backward:
        rows = bench_backward(args.repeats)
    else:
        rows = [] if args.no_cpu else bench_cpu(args.repeats, args.context)
    if torch.cuda.is_available() and not (args.backward or args.parts):
        rows += bench_cuda(args.repeats * 4, args.context)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"torch": torch.__version__, "results": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
