"""Render a gpu_report.json (from scripts/gpu_check.sh) as the markdown GPU tables of docs/benchmarks.md.

Usage:
    python scripts/gpu_report.py OUT/gpu_report.json [-o tables.md]

Standard library only, so it runs anywhere. A step that failed, timed out or was skipped appears in the
steps table with its reason, and its section says so instead of a table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SCHEMA = "dainctl.gpu_check/1"
BENCH_STEPS = ("bench_dain_720p", "bench_dain_1080p_pairs1", "bench_dain_1080p_pairs2", "bench_dain_1080p_pairs4",
               "bench_dain_4k", "bench_flow_1080p")


def table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join("-" if cell is None else str(cell) for cell in row) + " |")
    return lines


def num(value, digits: int = 2) -> str | None:
    if value is None:
        return None
    return f"{value:.{digits}f}"


def gib(value) -> str | None:
    return None if value is None else f"{value / 2**30:.2f} GiB"


def render(report: dict) -> str:
    if report.get("schema") != SCHEMA:
        raise ValueError(f"not a gpu_check report (schema {report.get('schema')!r}, expected {SCHEMA!r})")
    steps = {step["name"]: step for step in report.get("steps", [])}
    out: list[str] = []
    env = report.get("env") or {}
    gpu = env.get("gpu") or {}
    title = "GPU check" + (" (DRY RUN on the CPU: plumbing only, no GPU numbers)" if report.get("dry_run") else "")
    out += [f"### {title}, {report.get('date')}", ""]
    out.append(f"Command: `{report.get('command')}` at commit {report.get('commit') or 'unknown'}, "
               f"{report.get('wall_seconds')} s in all.")
    out.append(f"Machine: {gpu.get('name', 'no GPU')}"
               + (f" ({gib(gpu.get('memory_bytes'))}, {gpu.get('multiprocessors')} SMs, capability "
                  f"{'.'.join(map(str, gpu.get('capability', [])))})" if gpu else "")
               + (f", driver/clocks `{env.get('nvidia_smi')}`" if env.get("nvidia_smi") else "")
               + f"; Python {env.get('python')}, torch {env.get('torch')} (CUDA {env.get('torch_cuda')}), "
               f"PyAV {env.get('pyav')}, {env.get('cpu_count')} CPUs.")
    out.append("")

    out += ["#### Steps", ""]
    out += table(["step", "status", "seconds", "budget s", "note"],
                 [[s["name"], s["status"], s["seconds"], s["budget_s"], s.get("reason")] for s in report.get("steps", [])])
    out.append("")

    out += _section("Op library and dispatch", steps.get("build"), report.get("build"), _build)
    out += _section("CUDA tests (`pytest -m cuda`)", steps.get("tests"), report.get("tests"), _tests)
    out += _section("Ops per call", steps.get("kernels"), report.get("kernels"), _kernels)
    out += _section("DAIN fp16 vs fp32 on the oracle inputs", steps.get("psnr"), report.get("psnr"), _psnr)
    out += _section("Fine-tuning steps, fp16 + GradScaler vs fp32", steps.get("finetune"), report.get("finetune"), _finetune)
    bench = {name: report.get(name) for name in BENCH_STEPS}
    out += ["#### `dainctl benchmark`", ""]
    out += _benchmarks(bench, steps)
    return "\n".join(out).rstrip() + "\n"


def _section(title: str, step: dict | None, fragment, body) -> list[str]:
    lines = [f"#### {title}", ""]
    if step is None:
        return lines + ["Not run.", ""]
    if not isinstance(fragment, dict) or (step["status"] != "ok" and not _has_content(fragment)):
        return lines + [f"{step['status']}: {step.get('reason') or 'no result'}", ""]
    lines += body(fragment)
    if step["status"] != "ok":
        lines.append(f"(step {step['status']}: {step.get('reason')})")
    return lines + [""]


def _has_content(fragment: dict) -> bool:
    return any(fragment.get(key) for key in ("ops", "rows", "cases", "tests"))


def _build(fragment: dict) -> list[str]:
    ops = fragment.get("ops") or {}
    keys: list[str] = []
    for entry in ops.values():
        for key in entry.get("required", []) + entry.get("kernels", []):
            if key not in keys:
                keys.append(key)
    rows = [[f"`dainctl::{name}`"] + [("yes" if k in e["kernels"] else "**MISSING**" if k in e["required"] else "-")
                                      for k in keys] for name, e in ops.items()]
    lines = [f"Library built and loaded in {fragment.get('load_seconds')} s"
             + (f", CUDA code for {', '.join(fragment['cuda_archs'])}" if fragment.get("cuda_archs") else "")
             + (f"; error: {fragment['error']}" if fragment.get("error") else "") + ".", ""]
    return lines + table(["op", *keys], rows)


def _tests(fragment: dict) -> list[str]:
    lines = [f"{fragment.get('passed')} passed, {fragment.get('failures')} failed, {fragment.get('errors')} errors, "
             f"{fragment.get('skipped')} skipped (of {fragment.get('tests')})."]
    failed = fragment.get("failed_tests") or []
    if failed:
        lines += [""] + table(["failed test", "kind", "message"],
                              [[f"`{f['test']}`", f["kind"], f["message"].replace("|", "\\|").replace("\n", " ")[:200]]
                               for f in failed[:20]])
    return lines


def _kernels(fragment: dict) -> list[str]:
    copy = fragment.get("copy_GBps")
    lines = [f"{fragment.get('device')}, {fragment.get('width')}x{fragment.get('height')}, batch 1, median of "
             f"{fragment.get('repeats')} calls"
             + (f"; device-to-device copy {copy:.0f} GB/s (the ceiling)" if copy else "")
             + (f". {fragment['note']}" if fragment.get("note") else "") + ".", ""]
    rows = []
    for row in fragment.get("rows", []):
        reference = row.get("reference_s")
        rows.append([row["op"], row["dtype"].removeprefix("torch."), num(row["compiled_s"] * 1e3, 3),
                     f"{row['min_bytes'] / 1e6:.1f}", num(row["achieved_GBps"], 0 if row["achieved_GBps"] >= 10 else 2),
                     f"{100 * row['achieved_GBps'] / copy:.0f}%" if copy else None,
                     num(reference * 1e3, 3) if reference else None,
                     f"{reference / row['compiled_s']:.1f}x" if reference else None])
    return lines + table(["op", "dtype", "compiled ms", "MB moved (min)", "GB/s", "of copy", "reference ms", "speed-up"],
                         rows)


def _psnr(fragment: dict) -> list[str]:
    lines = [f"{fragment.get('device')}; weights: {fragment.get('weights')}"
             + (f". {fragment['note']}" if fragment.get("note") else "") + ".", ""]
    rows = [[c["case"], c["t"], f"{c['width']}x{c['height']}", num(c.get("psnr_fp16_vs_fp32")),
             num(c.get("psnr_fp16_vs_fp32_8bit")), num(c.get("max_abs_fp16_vs_fp32"), 4),
             num(c.get("psnr_fp32_vs_oracle")), num(c.get("psnr_fp16_vs_oracle")),
             {True: "yes", False: "**NO**"}.get(c.get("finite"))] for c in fragment.get("cases", [])]
    return lines + table(["case", "t", "size", "fp16 vs fp32 dB", "8-bit dB", "max abs diff", "fp32 vs original dB",
                          "fp16 vs original dB", "finite"], rows)


def _finetune(fragment: dict) -> list[str]:
    lines = [f"{fragment.get('device')}; the fake checkpoint, kernel/context/rectifier learning, synthetic moving textures"
             + (f". {fragment['note']}" if fragment.get("note") else "") + ".", ""]
    rows = [[precision, row["batch"], f"{row['crop']}x{row['crop']}", num(row["seconds_per_step"], 4), gib(row.get("peak_bytes")),
             row.get("largest_batch_within_16GiB"), row.get("loss_scale"), row.get("skipped_steps")]
            for precision, row in (fragment.get("rows") or {}).items()]
    lines += table(["precision", "batch", "crop", "s / step", "peak memory", "largest batch in 16 GiB", "loss scale",
                    "skipped steps"], rows)
    ratios = fragment.get("ratios")
    if ratios:
        lines += ["", f"fp16 over fp32: peak memory {ratios['peak_memory_fp16_over_fp32']}x (target <= 0.55), "
                      f"time per step {ratios['time_fp16_over_fp32']}x (target <= 0.6)."]
    return lines


def _benchmarks(bench: dict, steps: dict) -> list[str]:
    rows, ratios, notes = [], [], []
    for name, payload in bench.items():
        step = steps.get(name)
        if step is None:
            continue
        results = payload.get("results", []) if isinstance(payload, dict) else []
        if not results:
            notes.append(f"- {name}: {step['status']}: {step.get('reason') or 'no result'}")
            continue
        for r in results:
            tiles = r.get("tiles")
            breakdown = r.get("breakdown") or {}
            rows.append([name, r["engine"], r["precision"], r["device"], f"{r['width']}x{r['height']}",
                         r["input_frames"], gib(r.get("max_memory_bytes")),
                         f"{tiles['rows']}x{tiles['cols']}" if tiles else "1x1", num(r.get("output_fps")),
                         num(breakdown.get("engine_ms_per_pair"), 1), gib(r.get("peak_gpu_bytes")),
                         gib(r.get("peak_rss_bytes"))])
        for ratio in payload.get("ratios", []):
            ratios.append([ratio["engine"], f"{ratio['width']}x{ratio['height']}", num(ratio["fps_fp16_over_fp32"]),
                           num(ratio["peak_gpu_fp16_over_fp32"])])
    lines = []
    if rows:
        lines += table(["step", "engine", "precision", "device", "size", "frames", "max memory", "tiles", "output fps",
                        "engine ms/pair", "peak GPU memory", "peak RSS"], rows) + [""]
    if ratios:
        lines += table(["engine", "size", "fps fp16/fp32", "peak GPU memory fp16/fp32"], ratios) + [""]
    return lines + notes + ([""] if notes else [])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("-o", "--output", type=Path, help="write the markdown here (default: stdout)")
    args = parser.parse_args()
    try:
        text = render(json.loads(args.report.read_text()))
    except (OSError, ValueError) as error:
        print(f"gpu_report: {args.report}: {error}", file=sys.stderr)
        return 1
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
