"""Load the dainctl op library and check that every op has the dispatch kernels it must have.

Every op defined in csrc/torch/*.cpp (`m.def("name(...")`) must be registered with torch and list a CPU, a
Meta (the fake kernel, `_fake.py`) and, with `--require cuda`, a CUDA kernel in
`torch._C._dispatch_dump("dainctl::<op>")`. An op that declares a backward, by a C++
`TORCH_LIBRARY_IMPL(dainctl, Autograd, m)` impl or a Python `register_autograd("dainctl::<op>", ...)`
under src/dainctl/kernels, must list an Autograd kernel too. Prints the table it checked and exits
non-zero (one line naming the first problem, plus the build log's tail) on any build, load or
registration error.

Usage (src/ on PYTHONPATH):
    python scripts/check_cuda_dispatch.py [--require cuda] [--json OUT.json]

`scripts/build_cuda_variant.sh` runs it with `DAINCTL_FORCE_CUDA_BUILD=1`, `--require cuda`, against a
CUDA build of torch on a machine without a GPU; `scripts/gpu_check.py` uses `check()` on the GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

KERNELS_DIR = Path(__file__).resolve().parents[1] / "src" / "dainctl" / "kernels"
CSRC_TORCH = KERNELS_DIR / "csrc" / "torch"
NAMESPACE = "dainctl"
BASE_KEYS = ("CPU", "Meta")

_DEF = re.compile(r'\bm\.def\(\s*"(\w+)\s*\(')
_IMPL_BLOCK = re.compile(r"TORCH_LIBRARY_IMPL\(\s*" + NAMESPACE + r"\s*,\s*(\w+)\s*,\s*\w+\s*\)\s*\{(.*?)\n\}", re.S)
_IMPL = re.compile(r'\bm\.impl\(\s*"(\w+)"')
_PY_AUTOGRAD = re.compile(r'register_autograd\(\s*["\']' + NAMESPACE + r'::(\w+)["\']')
_DUMP_KEY = re.compile(r"^([A-Z]\w*(?:\[alias\])?): (registered|fallthrough)")


def defined_ops(csrc_torch: Path = CSRC_TORCH) -> list[str]:
    """Names of the ops the C++ sources define (`m.def`), in source order."""
    names: list[str] = []
    for path in sorted(csrc_torch.glob("*.cpp")):
        for name in _DEF.findall(path.read_text()):
            if name not in names:
                names.append(name)
    return names


def autograd_ops(csrc_torch: Path = CSRC_TORCH, python_dir: Path = KERNELS_DIR) -> set[str]:
    """Ops that declare a backward: an Autograd impl in C++, or register_autograd in Python."""
    names: set[str] = set()
    for path in csrc_torch.glob("*.cpp"):
        for key, body in _IMPL_BLOCK.findall(path.read_text()):
            if key.startswith("Autograd"):
                names.update(_IMPL.findall(body))
    for path in python_dir.glob("*.py"):
        names.update(_PY_AUTOGRAD.findall(path.read_text()))
    return names


def dump_keys(dump: str) -> list[str]:
    """Dispatch keys with a kernel in one `_dispatch_dump` text ("Autograd[alias]" -> "Autograd")."""
    keys = []
    for line in dump.splitlines():
        match = _DUMP_KEY.match(line.strip())
        if match and match.group(2) == "registered":
            keys.append(match.group(1).removesuffix("[alias]"))
    return keys


def required_keys(op: str, require_cuda: bool, with_autograd: set[str]) -> list[str]:
    keys = list(BASE_KEYS)
    if require_cuda:
        keys.insert(1, "CUDA")
    if op in with_autograd:
        keys.append("Autograd")
    return keys


def check(require_cuda: bool) -> dict:
    """Load the library (building it if needed) and check every op; returns the report dict.

    `ok` is False, with `error` set, on a build or load error, an op defined in the sources but not
    registered (or registered but not defined), or a missing kernel.
    """
    import torch

    from dainctl.errors import EngineError
    from dainctl.kernels import _build

    report: dict = {"torch": torch.__version__, "cuda": torch.version.cuda, "require_cuda": require_cuda,
                    "library": None, "load_seconds": None, "ops": {}, "ok": False, "error": None}
    started = time.perf_counter()
    try:
        report["library"] = str(_build.load_library(need_cuda=require_cuda))
    except EngineError as error:
        report["error"] = error.message
        report["build_log_tail"] = _log_tail(error.message)
        return report
    report["load_seconds"] = round(time.perf_counter() - started, 2)

    expected = defined_ops()
    registered = sorted(n.split("::", 1)[1] for n in torch._C._dispatch_get_all_op_names()
                        if n.startswith(f"{NAMESPACE}::"))
    with_autograd = autograd_ops()
    problems = []
    if not expected:
        problems.append(f"no m.def(...) found under {CSRC_TORCH}")
    for name in sorted(set(expected) - set(registered)):
        problems.append(f"{NAMESPACE}::{name} is defined in the sources but not registered")
    for name in sorted(set(registered) - set(expected)):
        problems.append(f"{NAMESPACE}::{name} is registered but not defined in {CSRC_TORCH}")
    for name in expected:
        dump = torch._C._dispatch_dump(f"{NAMESPACE}::{name}") if name in registered else ""
        present = dump_keys(dump)
        needed = required_keys(name, require_cuda, with_autograd)
        missing = [key for key in needed if key not in present]
        report["ops"][name] = {"kernels": present, "required": needed, "missing": missing}
        if missing and name in registered:
            problems.append(f"{NAMESPACE}::{name} has no {', '.join(missing)} kernel")
    if require_cuda:
        report["cuda_archs"] = built_archs(Path(report["library"]).parent / "build.ninja")
        for arch in requested_archs(os.environ.get("TORCH_CUDA_ARCH_LIST", "")):
            if report["cuda_archs"] is not None and arch not in report["cuda_archs"]:
                problems.append(f"the library was not built for {arch} (built: {', '.join(report['cuda_archs']) or 'none'})")
    report["ok"] = not problems
    report["error"] = "; ".join(problems) or None
    return report


def requested_archs(arch_list: str) -> list[str]:
    """TORCH_CUDA_ARCH_LIST ("8.0;9.0+PTX", spaces or semicolons) -> ["sm_80", "sm_90"]; [] for "" or "native"."""
    archs = []
    for item in re.split(r"[;\s]+", arch_list.strip()):
        item = item.removesuffix("+PTX")
        if re.fullmatch(r"\d+\.\d+a?", item):
            archs.append("sm_" + item.replace(".", ""))
    return archs


def built_archs(build_ninja: Path) -> list[str] | None:
    """The sm_XX targets in the build's nvcc flags (torch's build.ninja beside the library), or None."""
    try:
        text = build_ninja.read_text()
    except OSError:
        return None
    archs = []
    for arch in re.findall(r"code=(sm_\w+)", text):
        if arch not in archs:
            archs.append(arch)
    return archs


def _log_tail(message: str, lines: int = 40) -> str | None:
    match = re.search(r"\(see (.+\.log)\)", message)
    if not match:
        return None
    try:
        text = Path(match.group(1)).read_text(errors="replace")
    except OSError:
        return None
    return "\n".join(text.splitlines()[-lines:])


def format_table(report: dict) -> str:
    """The dispatch table: one row per op, one column per key found or required."""
    ops = report["ops"]
    columns: list[str] = []
    for entry in ops.values():
        for key in entry["required"] + entry["kernels"]:
            if key not in columns:
                columns.append(key)
    width = max([len(NAMESPACE) + 2 + len(name) for name in ops] + [2])
    lines = [f"{'op':{width}s}  " + "  ".join(f"{key:>8s}" for key in columns)]
    for name, entry in ops.items():
        cells = []
        for key in columns:
            mark = "yes" if key in entry["kernels"] else ("MISSING" if key in entry["required"] else "-")
            cells.append(f"{mark:>8s}")
        lines.append(f"{NAMESPACE + '::' + name:{width}s}  " + "  ".join(cells))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--require", choices=["cuda"], action="append", default=[],
                        help="also require a CUDA kernel for every op")
    parser.add_argument("--json", help="write the report to this JSON file")
    args = parser.parse_args()
    report = check(require_cuda="cuda" in args.require)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    if report["library"]:
        print(f"check_cuda_dispatch: torch {report['torch']} (CUDA {report['cuda']}), library {report['library']} "
              f"(built or loaded in {report['load_seconds']} s)")
    if report["ops"]:
        print(format_table(report))
    if not report["ok"]:
        if report.get("build_log_tail"):
            print(report["build_log_tail"], file=sys.stderr)
        print(f"check_cuda_dispatch: FAILED: {report['error']}", file=sys.stderr)
        return 1
    if report.get("cuda_archs"):
        print(f"check_cuda_dispatch: CUDA code built for {', '.join(report['cuda_archs'])}")
    print(f"check_cuda_dispatch: ok: {len(report['ops'])} ops, each with {', '.join(sorted(set(k for e in report['ops'].values() for k in e['required'])))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
