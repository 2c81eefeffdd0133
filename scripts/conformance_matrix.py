"""Run the conformance matrix (input variants x operations) through the CLI and print pass counts.

    .venv/bin/python scripts/conformance_matrix.py [--variants a,b] [--operations x2,fps60] [--json FILE]
        [--extra "--segment-seconds 0.25"]   (every run cut into segments of a quarter second and joined)

Each input variant of `tests/conformance_clips.py` is generated in a temporary folder; every operation runs
through `dainctl.cli.main` in this process (`--profile fast --quiet --json`); a run passes when it exits 0,
its own timing check passed, and an independent reading of the output with PyAV agrees with the documented
rules (`conformance_problems`). The same matrix runs in `tests/test_conformance.py`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

from conformance_clips import OPERATIONS, VARIANTS, conformance_problems, make_clip, output_extension  # noqa: E402

from dainctl.cli import main  # noqa: E402


def run_one(spec, source: Path, operation: str, folder: Path, extra: list[str] = ()) -> tuple[bool, str]:
    out = folder / f"{spec.name}.{operation}{output_extension(spec, operation)}"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main([*OPERATIONS[operation][:1], str(source), str(out), *OPERATIONS[operation][1:],
                     "--profile", "fast", "--quiet", "--json", "--overwrite", *extra])
    if code != 0:
        return False, f"exit {code}: {stderr.getvalue().strip().splitlines()[-1] if stderr.getvalue().strip() else ''}"
    problems = conformance_problems(spec, source, out, operation)
    return (not problems), "; ".join(problems)


def print_sync_offsets(operations) -> None:
    """Beep onset minus flash, in ms, for each sync clip of tests/test_conformance.py: the input's, then
    for each operation the output's minus the input's times the slow-motion factor."""
    from fractions import Fraction

    from test_conformance import SYNC_CLIPS
    from conformance_clips import flash_and_beep_times

    from conformance_clips import ALL_OPERATIONS

    ops = [op for op in operations if not op.startswith("x2-") and op != "slowmo-drop"] + ["slowmo4-stretch"]
    print("\nA/V sync: (beep onset - flash) in the output minus the input's times the slow-motion factor, ms")
    print(f"{'clip':12s} {'input':>8s} " + " ".join(f"{op:>15s}" for op in ops))
    with tempfile.TemporaryDirectory(prefix="dainctl-sync-") as tmp:
        for name, spec in SYNC_CLIPS.items():
            source = make_clip(spec, Path(tmp) / f"{name}{spec.ext}")
            flash, beep, _ = flash_and_beep_times(source)
            cells = []
            for op in ops:
                out = Path(tmp) / f"{name}.{op}.mp4"
                args = ALL_OPERATIONS[op]
                with contextlib.redirect_stderr(io.StringIO()):
                    main([*args[:1], str(source), str(out), *args[1:], "--profile", "fast", "--quiet"])
                f2, b2, _ = flash_and_beep_times(out)
                stretch = int(args[2]) if args[0] == "slowmo" else 1
                cells.append(1000 * float((b2 - f2) - (beep - flash) * stretch))
            print(f"{name:12s} {1000 * float(beep - flash):8.1f} " + " ".join(f"{c:15.1f}" for c in cells))


def main_() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="")
    parser.add_argument("--operations", default="")
    parser.add_argument("--json", dest="json_path", default=None)
    parser.add_argument("--sync", action="store_true", help="also measure flash/beep offsets of the sync clips")
    parser.add_argument("--extra", default="", help="more dainctl options for every run, e.g. '--segment-seconds 0.25'")
    args = parser.parse_args()
    variants = [v for v in VARIANTS if not args.variants or v.name in args.variants.split(",")]
    operations = [o for o in OPERATIONS if not args.operations or o in args.operations.split(",")]
    results: dict[str, dict[str, str]] = {}
    passed = total = 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dainctl-conformance-") as tmp:
        folder = Path(tmp)
        for spec in variants:
            source = make_clip(spec, folder / f"{spec.name}{spec.ext}")
            results[spec.name] = {}
            for operation in operations:
                ok, why = run_one(spec, source, operation, folder, args.extra.split())
                results[spec.name][operation] = "pass" if ok else why
                passed += ok
                total += 1
                print(f"{spec.name:24s} {operation:15s} {'pass' if ok else 'FAIL ' + why}", flush=True)
    width = max(len(v.name) for v in variants)
    print()
    print(" " * width + " | " + " | ".join(operations) + " | passed")
    for spec in variants:
        row = results[spec.name]
        cells = ["ok".center(len(op)) if row[op] == "pass" else "FAIL".center(len(op)) for op in operations]
        print(f"{spec.name:{width}s} | " + " | ".join(cells) + f" | {sum(r == 'pass' for r in row.values())}/{len(row)}")
    print(f"\n{passed} passed, {total - passed} failed ({time.perf_counter() - started:.0f} s)")
    if args.sync:
        print_sync_offsets(operations)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(results, indent=2))
    return 0 if passed == total else 1


if __name__ == "__main__":
    sys.exit(main_())
