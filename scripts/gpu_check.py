"""The Python steps of scripts/gpu_check.sh; each writes one JSON fragment that `report` gathers.

    gpu_check.py prepare [--shared ../shared] [--dest .gpu_check]   (here, once: what travels to the GPU)
    gpu_check.py env --out F.json
    gpu_check.py build --out F.json          the op library built and loaded, its dispatch table checked
    gpu_check.py kernels --out F.json        each op per call at 1920x1080, fp32 and fp16, GB/s
    gpu_check.py psnr --out F.json           DAIN fp16 vs fp32 (and vs the original DAIN) on the oracle inputs
    gpu_check.py finetune --out F.json       training steps, fp16 + GradScaler vs fp32: peak memory, time per
                                             step at batch 4 of 256x256 crops, the largest batch within 16 GiB
    gpu_check.py tests --junit X.xml --out F.json
    gpu_check.py report --work DIR --out gpu_report.json   (prints the short summary)

`GPU_CHECK_DRY=1` (the CPU machine): the same steps on the CPU at small sizes, fp16 parts skipped with a
reason, so the plumbing is tested without a GPU (tests/test_gpu_check.py). The op timing is
benchmarks/bench_kernels.py's, the dispatch check scripts/check_cuda_dispatch.py's, PSNR is
dainctl.quality's and the engines are dainctl's own: nothing here measures in a way of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = "dainctl.gpu_check/1"
DATA_DIR = ROOT / ".gpu_check"  # ignored; made by `prepare`, carried to the GPU machine
ORACLE_INPUTS = "oracle_inputs.safetensors"
RECIPE = ("make_fake_checkpoint.py", "best_pth_manifest.json")
ORACLE_CASES = ("mb_dogdance", "slowmo_venus")
DRY_CROP = 32  # dry run: DAIN on a 32x32 crop of the first case (about 5 s on 2 cores)


def dry() -> bool:
    return os.environ.get("GPU_CHECK_DRY", "") not in ("", "0")


def device() -> str:
    return "cpu" if dry() else "cuda"


def write(path: str, payload: dict) -> None:
    Path(path).write_text(json.dumps(payload, indent=2, default=str))


# --------------------------------------------------------------------------------------------------
# prepare (on the machine with ../shared)


def prepare(shared: Path, dest: Path) -> None:
    """Copy what the PSNR step needs into `dest`: the oracle cases' inputs and final frames (not their
    intermediates) in one small file, and the fake-checkpoint recipe that regenerates their weights."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    dest.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    metadata: dict[str, str] = {}
    for case in ORACLE_CASES:
        with safe_open(str(shared / "dain" / "oracle" / case / "case.safetensors"), "pt") as reader:
            meta = reader.metadata()
            for name in reader.keys():
                if name in ("frame0", "frame1", "timesteps") or (name.startswith("out_t") and "padded" not in name):
                    tensors[f"{case}/{name}"] = reader.get_tensor(name).contiguous()
        metadata[f"{case}/checkpoint_seed"] = meta["checkpoint_seed"]
    save_file(tensors, str(dest / ORACLE_INPUTS), metadata=metadata)
    for name in RECIPE:
        shutil.copyfile(shared / "dain" / name, dest / name)
    size = sum(p.stat().st_size for p in dest.iterdir())
    print(f"gpu_check prepare: {dest} holds {len(tensors)} tensors of {len(ORACLE_CASES)} cases and the "
          f"fake-checkpoint recipe ({size / 1e6:.1f} MB)")


# --------------------------------------------------------------------------------------------------
# steps


def step_env() -> dict:
    import torch

    info = {"dry_run": dry(), "python": platform.python_version(), "executable": sys.executable,
            "platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(), "gpu": None}
    try:
        import av

        info["pyav"] = av.__version__
        info["pyav_from"] = str(Path(av.__file__).parent)
    except ImportError as error:
        info["pyav"] = None
        info["pyav_error"] = str(error)
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        info["gpu"] = {"name": properties.name, "capability": list(torch.cuda.get_device_capability(0)),
                       "memory_bytes": int(properties.total_memory),
                       "multiprocessors": properties.multi_processor_count}
    from torch.utils import cpp_extension

    info["cuda_home"] = cpp_extension.CUDA_HOME
    info["nvcc"] = shutil.which("nvcc")
    info["torch_cuda_arch_list"] = os.environ.get("TORCH_CUDA_ARCH_LIST")
    if shutil.which("nvidia-smi"):
        result = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                                 "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        info["nvidia_smi"] = result.stdout.strip() or result.stderr.strip()
    try:
        import pytest_timeout  # noqa: F401

        info["pytest_timeout"] = True
    except ImportError:
        info["pytest_timeout"] = False
    print(json.dumps(info, indent=2))
    return info


def step_build() -> dict:
    sys.path.insert(0, str(ROOT / "scripts"))
    import check_cuda_dispatch as dispatch

    report = dispatch.check(require_cuda=not dry())
    if report["ops"]:
        print(dispatch.format_table(report))
    if not report["ok"]:
        raise StepError(report["error"], report)
    return report


def step_kernels(repeats: int) -> dict:
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_kernels

    if dry():
        # The CPU-side part: the same cases and timer, at an eighth of the size, fp32 compiled only.
        width, height, dtypes, context = 240, 136, (torch.float32,), False
        note = "dry run: CPU, 240x136, float32 compiled only (the compiled fp16 ops are CUDA-only)"
    else:
        width, height, dtypes, context = 1920, 1080, (torch.float32, torch.float16), True
        note = None
    rows = bench_kernels.bench_device(device(), dtypes, height, width, repeats, context, reference=not dry())
    peak = None
    if not dry():
        peak = _copy_bandwidth()
        print(f"device-to-device copy: {peak:.0f} GB/s (read + write)")
    return {"device": device(), "width": width, "height": height, "repeats": repeats, "note": note,
            "copy_GBps": peak, "rows": rows}


def _copy_bandwidth() -> float:
    """The device's copy bandwidth (bytes read + written per second), the ceiling for the ops' GB/s."""
    import torch

    source = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    target = torch.empty_like(source)
    target.copy_(source)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(10):
        target.copy_(source)
    end.record()
    torch.cuda.synchronize()
    return 2 * 10 * source.numel() / (start.elapsed_time(end) / 1000) / 1e9


def fake_oracle_weights(data: Path, folder: Path, seed: int) -> Path:
    """The oracle's seed-N fake checkpoint, regenerated from the carried recipe and converted by dainctl."""
    from dainctl.convert import convert_checkpoint

    pth = folder / f"dain_fake_seed{seed}.pth"
    out = folder / f"dain_fake_seed{seed}_fp32.safetensors"
    if not out.exists():
        subprocess.run([sys.executable, str(data / RECIPE[0]), str(data / RECIPE[1]), str(pth), "--seed", str(seed)],
                       check=True, capture_output=True)
        convert_checkpoint(pth, out, "fp32")
        pth.unlink()
    return out


def step_psnr(data: Path, work: Path) -> dict:
    import torch
    from safetensors import safe_open

    from dainctl.engines import create_engine
    from dainctl.quality import psnr, quantize_8bit

    inputs = data / ORACLE_INPUTS
    if not inputs.is_file():
        raise StepSkipped(f"{inputs} is absent: run `python scripts/gpu_check.py prepare` where ../shared is, "
                          "and carry .gpu_check")
    with safe_open(str(inputs), "pt") as reader:
        tensors = {name: reader.get_tensor(name) for name in reader.keys()}
        metadata = reader.metadata()
    cases = []
    engines: dict = {}
    started = time.perf_counter()
    for case in ORACLE_CASES[:1] if dry() else ORACLE_CASES:
        seed = int(metadata[f"{case}/checkpoint_seed"])
        weights = fake_oracle_weights(data, work, seed)
        frame0, frame1 = tensors[f"{case}/frame0"][0], tensors[f"{case}/frame1"][0]
        timesteps = [round(t, 6) for t in tensors[f"{case}/timesteps"].tolist()]
        if dry():
            frame0, frame1 = frame0[:, :DRY_CROP, :DRY_CROP], frame1[:, :DRY_CROP, :DRY_CROP]
            timesteps = timesteps[:1]
        outputs = {}
        for precision in ("fp32",) if dry() else ("fp32", "fp16"):
            key = (seed, precision)
            if key not in engines:
                engines[key] = create_engine("dain", device=device(), fp16=precision == "fp16", weights=weights)
            outputs[precision] = engines[key].interpolate(frame0, frame1, timesteps)
        for index, t in enumerate(timesteps):
            out32 = outputs["fp32"][index]
            row = {"case": case, "t": t, "height": int(frame0.shape[1]), "width": int(frame0.shape[2]),
                   "psnr_fp16_vs_fp32": None, "psnr_fp16_vs_fp32_8bit": None, "max_abs_fp16_vs_fp32": None,
                   "psnr_fp32_vs_oracle": None, "psnr_fp16_vs_oracle": None,
                   "finite": all(bool(torch.isfinite(o[index]).all()) for o in outputs.values()),
                   "fp32_range": [round(float(out32.min()), 4), round(float(out32.max()), 4)]}
            if "fp16" in outputs:
                out16 = outputs["fp16"][index].float()
                row["psnr_fp16_vs_fp32"] = _finite(psnr(out16.clamp(0, 1), out32.clamp(0, 1)))
                row["psnr_fp16_vs_fp32_8bit"] = _finite(psnr(quantize_8bit(out16), quantize_8bit(out32)))
                row["max_abs_fp16_vs_fp32"] = round(float((out16 - out32).abs().max()), 6)
            oracle_name = f"{case}/out_t{int(round(t * 100)):03d}"
            if not dry() and oracle_name in tensors:  # the original DAIN's float output (CPU, fp32)
                oracle = tensors[oracle_name][0].float()
                row["psnr_fp32_vs_oracle"] = _finite(psnr(out32.clamp(0, 1), oracle.clamp(0, 1)))
                if "fp16" in outputs:
                    row["psnr_fp16_vs_oracle"] = _finite(psnr(outputs["fp16"][index].float().clamp(0, 1),
                                                              oracle.clamp(0, 1)))
            cases.append(row)
            print(json.dumps(row))
    note = (f"dry run: fp32 on the CPU on a {DRY_CROP}x{DRY_CROP} crop of {ORACLE_CASES[0]}, one t; fp16 and the "
            "oracle comparison need CUDA and the full frames") if dry() else None
    return {"device": device(), "weights": "the oracle's fake checkpoint (seed from the case), converted fp32",
            "note": note, "seconds": round(time.perf_counter() - started, 2), "cases": cases}


FINETUNE_BUDGET_BYTES = 16 << 30
FINETUNE_SEARCH = (8, 12, 16, 24, 32, 48, 64)


def _training_batch(batch: int, crop: int, dev: str, seed: int = 0):
    """A synthetic triplet batch: smooth random textures moving 2 px per frame (the step's cost does not
    depend on the content; finite, image-like values keep the loss scaler's behaviour typical)."""
    import torch
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, crop // 8 + 2, crop // 8 + 2, generator=generator)
    texture = F.interpolate(coarse, size=(crop + 8, crop + 8), mode="bicubic", align_corners=False).clamp(0, 1).to(dev)
    return tuple(texture[..., 4:4 + crop, shift:shift + crop].contiguous() for shift in (0, 2, 4))


def _timed_steps(learner, batch: int, crop: int, steps: int, warmup: int) -> dict:
    import torch

    frames = _training_batch(batch, crop, device())
    cuda = device() == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    times, losses = [], []
    for index in range(warmup + steps):
        began = time.perf_counter()
        losses.append(learner.step([frames]))
        if cuda:
            torch.cuda.synchronize()
        if index >= warmup:
            times.append(time.perf_counter() - began)
    times.sort()
    return {"batch": batch, "crop": crop, "seconds_per_step": round(times[len(times) // 2], 4),
            "peak_bytes": int(torch.cuda.max_memory_allocated()) if cuda else None,
            "losses": [round(v, 5) for v in losses], "loss_scale": learner.loss_scale,
            "skipped_steps": learner.counters.skipped_steps}


def step_finetune(data: Path, work: Path) -> dict:
    """Issue 14's GPU figures: fp16 autocast + GradScaler against fp32, batch 4 of 256x256 crops (the
    default sub-networks learn), then the largest batch whose peak allocation stays within 16 GiB."""
    import torch

    from dainctl.finetune.trainer import FinetuneSettings, Learner
    from dainctl.precision import PrecisionPolicy

    if not (data / RECIPE[0]).is_file():
        raise StepSkipped(f"{data / RECIPE[0]} is absent: run `python scripts/gpu_check.py prepare` and carry .gpu_check")
    weights = fake_oracle_weights(data, work, 0)
    crop, batch = (64, 1) if dry() else (256, 4)
    started = time.perf_counter()
    rows = {}
    for precision in ("fp32",) if dry() else ("fp32", "fp16"):
        settings = FinetuneSettings(clips=(), weights=weights, output=work / "unused", crop=crop, batch=batch,
                                    precision=precision, device=device(), lr=1e-4)
        learner = Learner(settings, PrecisionPolicy(precision, device()))
        row = _timed_steps(learner, batch, crop, steps=1 if dry() else 5, warmup=1 if dry() else 2)
        largest = None
        if not dry():
            largest = batch if row["peak_bytes"] <= FINETUNE_BUDGET_BYTES else None
            for size in FINETUNE_SEARCH:
                if time.perf_counter() - started > 100:
                    row["search_stopped"] = "time"
                    break
                try:
                    probe = _timed_steps(learner, size, crop, steps=1, warmup=0)
                except torch.OutOfMemoryError:
                    break
                if probe["peak_bytes"] > FINETUNE_BUDGET_BYTES:
                    break
                largest = size
        row["largest_batch_within_16GiB"] = largest
        rows[precision] = row
        print(json.dumps({precision: row}))
        del learner
        if device() == "cuda":
            torch.cuda.empty_cache()
    ratios = None
    if "fp16" in rows:
        ratios = {"peak_memory_fp16_over_fp32": round(rows["fp16"]["peak_bytes"] / rows["fp32"]["peak_bytes"], 3),
                  "time_fp16_over_fp32": round(rows["fp16"]["seconds_per_step"] / rows["fp32"]["seconds_per_step"], 3)}
    return {"device": device(), "rows": rows, "ratios": ratios, "seconds": round(time.perf_counter() - started, 1),
            "note": "dry run: one fp32 step at batch 1 of 64x64 on the CPU" if dry() else None}


def _finite(value: float) -> float | None:
    return None if value == float("inf") else round(value, 4)


def step_tests(junit: Path) -> dict:
    """Counts and failures from pytest's JUnit XML (absent when pytest was killed by its time budget)."""
    if not junit.is_file():
        raise StepError(f"{junit} was not written (pytest killed by its time budget, or it did not start)")
    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    failures = []
    slowest = []
    for suite in suites:
        for key in counts:
            counts[key] += int(suite.get(key, 0))
        for case in suite.iter("testcase"):
            name = f"{case.get('classname')}::{case.get('name')}"
            if case.find("skipped") is None:
                slowest.append((float(case.get("time", 0)), name))
            for kind in ("failure", "error"):
                for item in case.findall(kind):
                    failures.append({"test": name, "kind": kind, "message": (item.get("message") or "")[:500]})
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    slowest.sort(reverse=True)
    return {**counts, "failed_tests": failures[:50], "slowest": [{"test": n, "seconds": round(s, 2)} for s, n in slowest[:5]]}


# --------------------------------------------------------------------------------------------------
# report


def report(work: Path, out: Path, started: float) -> dict:
    steps = []
    steps_file = work / "steps.jsonl"
    if steps_file.is_file():
        steps = [json.loads(line) for line in steps_file.read_text().splitlines() if line.strip()]
    payload: dict = {
        "schema": SCHEMA,
        "dry_run": dry(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": os.environ.get("GPU_CHECK_COMMAND", "OUT=... bash scripts/gpu_check.sh"),
        "commit": _git_commit(),
        "wall_seconds": round(time.time() - started, 1),
        "steps": steps,
    }
    for step in steps:
        fragment = work / f"{step['name']}.json"
        if not fragment.is_file():
            continue
        try:
            payload[step["name"]] = data = json.loads(fragment.read_text() or "null")
        except json.JSONDecodeError as error:
            step["reason"] = step.get("reason") or f"its JSON did not parse: {error}"
            continue
        if isinstance(data, dict) and not step.get("reason"):  # why a Python step skipped or failed
            step["reason"] = data.get("step_skipped") or (data.get("error") if step["status"] != "ok" else None)
    write(str(out), payload)
    print_summary(payload)
    return payload


def _git_commit() -> str | None:
    if os.environ.get("GPU_CHECK_COMMIT"):
        return os.environ["GPU_CHECK_COMMIT"]
    try:
        result = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None


def print_summary(payload: dict) -> None:
    print(f"\ngpu_check summary ({'DRY RUN, ' if payload['dry_run'] else ''}{payload['wall_seconds']} s):")
    for step in payload["steps"]:
        line = f"  {step['name']:22s} {step['status']:8s} {step['seconds']:6.1f} s"
        extra = step.get("reason") or _headline(step["name"], payload.get(step["name"]))
        print(line + (f"  {extra}" if extra else ""))


def _headline(name: str, fragment) -> str | None:
    """One short fact per step for the summary."""
    if not isinstance(fragment, dict):
        return None
    if name == "env":
        gpu = fragment.get("gpu") or {}
        return f"torch {fragment.get('torch')}, {gpu.get('name', 'no GPU')}, PyAV {fragment.get('pyav')}"
    if name == "build":
        return f"{len(fragment.get('ops', {}))} ops, load {fragment.get('load_seconds')} s, archs {fragment.get('cuda_archs')}"
    if name == "tests":
        return f"{fragment.get('passed')} passed, {fragment.get('failures')} failed, {fragment.get('errors')} errors, {fragment.get('skipped')} skipped"
    if name == "kernels":
        rows = fragment.get("rows", [])
        return ", ".join(f"{r['op'].split()[0]} {r['dtype'][6:]} {r['compiled_s'] * 1e3:.2f} ms" for r in rows[:3]) + (" ..." if len(rows) > 3 else "")
    if name == "psnr":
        cases = fragment.get("cases", [])
        values = [c["psnr_fp16_vs_fp32"] for c in cases if c.get("psnr_fp16_vs_fp32") is not None]
        oracle = [c["psnr_fp32_vs_oracle"] for c in cases if c.get("psnr_fp32_vs_oracle") is not None]
        text = f"fp16 vs fp32 min {min(values):.2f} dB" if values else f"{len(cases)} outputs, no fp16"
        if oracle:
            text += f", fp32 vs original DAIN min {min(oracle):.2f} dB"
        if any(c.get("finite") is False for c in cases):
            text += ", NON-FINITE OUTPUT"
        return text
    if name == "finetune":
        ratios = fragment.get("ratios") or {}
        rows = fragment.get("rows", {})
        if not ratios:
            return f"{len(rows)} precision(s), no fp16"
        largest = ", ".join(f"{k} {v.get('largest_batch_within_16GiB')}" for k, v in rows.items())
        return (f"fp16/fp32 peak memory {ratios['peak_memory_fp16_over_fp32']}, time {ratios['time_fp16_over_fp32']}; "
                f"largest batch in 16 GiB: {largest}")
    if name.startswith("bench_"):
        results = fragment.get("results", [])
        return "; ".join(f"{r['engine']} {r['precision']} {r['width']}x{r['height']}: {r['output_fps']} fps" for r in results)
    return None


class StepError(Exception):
    def __init__(self, message: str, fragment: dict | None = None):
        super().__init__(message)
        self.fragment = fragment


class StepSkipped(Exception):
    pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    p.add_argument("--dest", type=Path, default=DATA_DIR)
    for name in ("env", "build", "kernels", "psnr", "finetune", "tests"):
        p = sub.add_parser(name)
        p.add_argument("--out", required=True)
        if name == "kernels":
            p.add_argument("--repeats", type=int, default=20)
        if name in ("psnr", "finetune"):
            p.add_argument("--data", type=Path, default=DATA_DIR)
            p.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")))
        if name == "tests":
            p.add_argument("--junit", type=Path, required=True)
    p = sub.add_parser("report")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--started", type=float, default=time.time())
    args = parser.parse_args()

    if args.command == "prepare":
        prepare(args.shared, args.dest)
        return 0
    if args.command == "report":
        report(args.work, args.out, args.started)
        return 0
    # A step: its fragment is written whatever happens, so the report says why a step failed.
    try:
        if args.command == "env":
            fragment = step_env()
        elif args.command == "build":
            fragment = step_build()
        elif args.command == "kernels":
            fragment = step_kernels(args.repeats)
        elif args.command == "psnr":
            fragment = step_psnr(args.data, args.work)
        elif args.command == "finetune":
            fragment = step_finetune(args.data, args.work)
        else:
            fragment = step_tests(args.junit)
    except StepSkipped as skipped:
        write(args.out, {"step_skipped": str(skipped)})
        print(f"gpu_check {args.command}: skipped: {skipped}")
        return 77  # scripts/gpu_check.sh: skipped
    except StepError as error:
        write(args.out, {**(error.fragment or {}), "error": str(error)})
        print(f"gpu_check {args.command}: FAILED: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - the step failed; the report records why
        traceback.print_exc()
        write(args.out, {"error": f"{type(error).__name__}: {error}"})
        print(f"gpu_check {args.command}: FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    write(args.out, fragment)
    return 0


if __name__ == "__main__":
    sys.exit(main())
