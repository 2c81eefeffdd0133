#!/usr/bin/env bash
# One prepared check of dainctl on a CUDA GPU machine (planned for one H200 with python3 3.12, torch 2.11
# CUDA 13, nvcc and pytest, but no PyAV and no network), as a single command that ends by itself within
# 500 s:
#   install_pyav      the PyAV wheel carried in .whl/ into /tmp/site (pip --no-index --target)
#   env               python, torch, GPU, driver, PyAV
#   build             the CUDA variant of the op library JIT-built and loaded, every op's dispatch table
#   pytest_cuda       pytest -m cuda (no -x; per-test timeout), then `tests`: the JUnit summary
#   kernels           each op per call at 1920x1080, fp32 and fp16, GB/s against the bytes it must move
#   psnr              DAIN fp16 vs fp32 (and vs the original DAIN) on the oracle cases' inputs
#   finetune          training steps (issue 14): fp16 + GradScaler vs fp32 at batch 4 of 256x256 crops, peak
#                     memory and time per step, and the largest batch within 16 GiB in each
#   bench_*           dainctl benchmark: DAIN 1280x720 fp16,fp32; DAIN 1920x1080 fp16 with 1, 2 and 4 pairs per
#                     forward (--batch-pairs) and 3840x2160 fp16, both with --max-memory 16G; the
#                     weight-free engine at 1920x1080
# Each step has its own time budget (timeout), a failed step does not stop the run, and everything goes
# to $OUT/gpu_report.json (python scripts/gpu_report.py renders it as markdown) and $OUT/gpu_check.log;
# a short summary is printed last. Exit status: 0 when no step failed or timed out.
#
# Usage (on the GPU machine, from the repository root, with .whl/ and .gpu_check/ carried):
#   OUT=/tmp/out bash scripts/gpu_check.sh
# Here, on the CPU machine: GPU_CHECK_DRY=1 OUT=/tmp/out bash scripts/gpu_check.sh (every step runs its
# CPU-side part at small sizes, or is skipped with a reason; tests/test_gpu_check.py runs it).
# Environment: OUT (required), PYTHON (default python3; .venv/bin/python in a dry run), GPU_CHECK_TOTAL_S
# (default 455: the steps' deadline; the report follows, within 30 s), GPU_CHECK_COMMIT
# (recorded in the report where the copy has no .git), GPU_CHECK_DRY.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
: "${OUT:?set OUT to the folder for gpu_report.json and gpu_check.log}"
mkdir -p "$OUT"
DRY=${GPU_CHECK_DRY:-0}
[ "$DRY" = 0 ] && DRY=
if [ -n "$DRY" ] && [ -x .venv/bin/python ]; then PY=${PYTHON:-.venv/bin/python}; else PY=${PYTHON:-python3}; fi
TOTAL=${GPU_CHECK_TOTAL_S:-455}
STARTED=$(date +%s)
DEADLINE=$((STARTED + TOTAL))
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
SITE=/tmp/site
[ -n "$DRY" ] && SITE=$WORK/site  # the dry run installs the wheel too, but keeps using the venv's PyAV

export PYTHONUNBUFFERED=1
# On the GPU, a fresh build of the op library, timed in `build` and reused by the later steps; a dry run
# uses the CPU library already built in the user's cache, if any.
[ -z "$DRY" ] && export DAINCTL_CACHE_DIR=$WORK/cache
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "$DRY" ]; then
    export PYTHONPATH="$SITE:$PYTHONPATH"
    if cuda_home=$(bash scripts/find_cuda_home.sh 2>/dev/null); then export CUDA_HOME=$cuda_home; fi
fi

record() {  # record NAME STATUS RC SECONDS BUDGET [REASON]
    local reason=${6:-}
    reason=${reason//\\/\/}
    reason=${reason//\"/\'}
    printf '{"name": "%s", "status": "%s", "rc": %s, "seconds": %s, "budget_s": %s, "reason": %s}\n' \
        "$1" "$2" "$3" "$4" "$5" "$([ -n "$reason" ] && echo "\"$reason\"" || echo null)" >>"$WORK/steps.jsonl"
}

skip() {  # skip NAME REASON
    echo "=== gpu_check: $1: skipped: $2"
    record "$1" skipped null 0 0 "$2"
}

step() {  # step NAME BUDGET_S COMMAND...: COMMAND under its own time budget; never stops the run
    local name=$1 budget=$2 left t0 rc status
    shift 2
    left=$((DEADLINE - $(date +%s)))
    if ((left < 10)); then
        skip "$name" "no time left before the run's ${TOTAL} s deadline"
        return 0
    fi
    ((budget > left)) && budget=$left
    echo "=== gpu_check: $name (budget ${budget} s): $*"
    t0=$(date +%s.%N)
    rc=0
    timeout -k 10 "$budget" "$@" || rc=$?
    case $rc in
        0) status=ok ;;
        77) status=skipped ;;  # the step said why it skipped (gpu_check.py, install_pyav)
        124 | 137) status=timeout ;;
        *) status=failed ;;
    esac
    local seconds
    seconds=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    echo "=== gpu_check: $name: $status (rc $rc, $seconds s)"
    record "$name" "$status" "$rc" "$seconds" "$budget" "$([ $status = timeout ] && echo "over its ${budget} s budget")"
}

install_pyav() {
    local wheels=(.whl/av-*.whl)
    if [ ! -f "${wheels[0]}" ]; then
        if "$PY" -c "import av" 2>/dev/null; then
            echo "no .whl/av-*.whl, and PyAV is already importable"
            # The report takes a skipped step's reason from its JSON fragment.
            echo '{"step_skipped": "no .whl/av-*.whl, and PyAV is already importable"}' >"$WORK/install_pyav.json"
            return 77
        fi
        echo "no .whl/av-*.whl: fetch it here as README.md's 'GPU check' section says, and carry .whl" >&2
        return 1
    fi
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "${wheels[@]}"
    PYTHONPATH=$SITE "$PY" -c "import av; print('PyAV', av.__version__, 'from', av.__file__)"
}

pytest_cuda() {
    # Per test: a hung test dumps its stack into the log after 60 s (faulthandler, built in), and where the
    # pytest-timeout plugin is loaded it is also failed after 90 s; the step's budget bounds the whole run.
    local opts=(-o faulthandler_timeout=60)
    if "$PY" -m pytest --help 2>/dev/null | grep -q -- '--timeout='; then opts+=(--timeout=90); fi
    local rc=0
    "$PY" -m pytest -m cuda -q -rfE -p no:cacheprovider --continue-on-collection-errors "${opts[@]}" \
        --junitxml "$WORK/pytest.xml" tests || rc=$?
    [ -f "$WORK/pytest.xml" ] && cp "$WORK/pytest.xml" "$OUT/pytest_cuda.xml"
    return $rc
}

benchmark() {  # benchmark NAME ARGS...: dainctl benchmark --json into $WORK/NAME.json (its error line there on failure)
    local name=$1 rc=0
    shift
    "$PY" -m dainctl benchmark "$@" --json >"$WORK/$name.json" 2> >(tee "$WORK/$name.err" >&2) || rc=$?
    if ((rc != 0)); then
        sleep 0.2  # let tee finish writing the error line
        "$PY" -c 'import json, sys; print(json.dumps({"error": sys.argv[1]}))' \
            "$(grep -v '^\s*$' "$WORK/$name.err" | tail -n 1)" >"$WORK/$name.json"
    fi
    return $rc
}

run_steps() {
    export -f install_pyav pytest_cuda benchmark
    export PY SITE WORK OUT
    step install_pyav 40 bash -c install_pyav
    step env 30 "$PY" scripts/gpu_check.py env --out "$WORK/env.json"
    step build 150 "$PY" scripts/gpu_check.py build --out "$WORK/build.json"
    step pytest_cuda 150 bash -c pytest_cuda
    step tests 15 "$PY" scripts/gpu_check.py tests --junit "$WORK/pytest.xml" --out "$WORK/tests.json"
    step kernels 60 "$PY" scripts/gpu_check.py kernels --repeats "$([ -n "$DRY" ] && echo 3 || echo 20)" \
        --out "$WORK/kernels.json"
    step psnr 60 "$PY" scripts/gpu_check.py psnr --work "$WORK" --out "$WORK/psnr.json"
    step finetune 130 "$PY" scripts/gpu_check.py finetune --work "$WORK" --out "$WORK/finetune.json"
    if [ -z "$DRY" ]; then
        step bench_dain_720p 90 bash -c 'benchmark bench_dain_720p --gpu --engine dain --size 1280x720 --precision fp16,fp32 --frames 16'
        for pairs in 1 2 4; do  # issue 13: output fps at 1080p with 1, 2 and 4 pairs per forward
            step bench_dain_1080p_pairs$pairs 45 bash -c "benchmark bench_dain_1080p_pairs$pairs --gpu --engine dain --size 1920x1080 --precision fp16 --max-memory 16G --frames 10 --batch-pairs $pairs --no-alone --no-breakdown"
        done
        step bench_flow_1080p 45 bash -c 'benchmark bench_flow_1080p --gpu --engine flow --size 1920x1080 --frames 16'
        step bench_dain_4k 90 bash -c 'benchmark bench_dain_4k --gpu --engine dain --size 3840x2160 --precision fp16 --max-memory 16G --frames 6 --no-alone'
    else
        # The CPU-side part: the same command on the CPU, small, fp32 (fp16 needs --gpu).
        step bench_dain_720p 60 bash -c 'benchmark bench_dain_720p --engine dain --size 32x32 --precision fp32 --frames 2 --no-alone --no-breakdown'
        for pairs in 1 2 4; do
            skip bench_dain_1080p_pairs$pairs "dry run: DAIN at 1920x1080 with --max-memory 16G needs the GPU (bench_dain_720p ran the command on the CPU)"
        done
        step bench_flow_1080p 30 bash -c 'benchmark bench_flow_1080p --engine flow --size 64x48 --frames 3 --no-alone'
        skip bench_dain_4k "dry run: DAIN at 3840x2160 with --max-memory 16G needs the GPU"
    fi
    # The report has its own budget, outside the steps' deadline; it prints the summary last.
    timeout -k 5 30 "$PY" scripts/gpu_check.py report --work "$WORK" --out "$OUT/gpu_report.json" --started "$STARTED" ||
        echo "gpu_check: FAILED: the report was not written (rc $?)"
}

run_steps 2>&1 | tee "$OUT/gpu_check.log"
if grep -q '"status": "\(failed\|timeout\)"' "$WORK/steps.jsonl" || [ ! -f "$OUT/gpu_report.json" ]; then
    exit 1
fi
