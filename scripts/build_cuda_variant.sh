#!/usr/bin/env bash
# Build the real CUDA variant of the dainctl ops against a CUDA build of torch, on a machine with a CUDA
# toolkit but no GPU, then load it and check every op's dispatch table (scripts/check_cuda_dispatch.py:
# CPU, CUDA and Meta kernels, and Autograd for ops that declare a backward). Fails (non-zero) on any
# compile, link, load or registration error. Where the CUDA torch cannot be installed (registry
# unreachable, pip fails) or no CUDA toolkit is found, prints one SKIPPED notice and exits 0.
#
# Usage: bash scripts/build_cuda_variant.sh
# Environment:
#   DAINCTL_CUDA_ENV         the CUDA-torch virtual environment, created on first use and reused
#                            (default: ${XDG_CACHE_HOME:-~/.cache}/dainctl/cuda-torch-env; outside the repo)
#   DAINCTL_CUDA_TORCH_SPEC  what pip installs there (default torch==2.14.1: a CUDA 13 build that is kept
#                            on this CI machine's disk, so it installs without downloading torch)
#   PYTHON                   the interpreter that creates the environment (default python3)
#   CUDA_HOME                the toolkit folder whose include/ holds cuda_runtime_api.h (default: found
#                            from nvcc, /usr/local/cuda, /usr/local/cuda-*)
#   TORCH_CUDA_ARCH_LIST     architectures built (default "8.0;9.0": A100 and H100/H200)
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
ENV_DIR=${DAINCTL_CUDA_ENV:-${XDG_CACHE_HOME:-$HOME/.cache}/dainctl/cuda-torch-env}
SPEC=${DAINCTL_CUDA_TORCH_SPEC:-torch==2.14.1}
PYTHON=${PYTHON:-python3}
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-8.0;9.0}

elapsed() { echo $(( $(date +%s) - started )); }
skip() { echo "build_cuda_variant: SKIPPED (not a failure): $* ($(elapsed) s)"; exit 0; }
fail() { echo "build_cuda_variant: FAILED: $* ($(elapsed) s)" >&2; exit 1; }

found=0
cuda_home=$(bash scripts/find_cuda_home.sh 2>/dev/null) || found=$?
case $found in
    0) export CUDA_HOME=$cuda_home ;;
    1) skip "no CUDA toolkit found (no nvcc with include/cuda_runtime_api.h; set CUDA_HOME)" ;;
    *) fail "CUDA_HOME=$CUDA_HOME is not a CUDA toolkit folder (no include/cuda_runtime_api.h and bin/nvcc)" ;;
esac
export PATH="$CUDA_HOME/bin:$PATH"

# The environment: reused while its stamp (the spec it was made for) matches and torch imports.
stamp="$ENV_DIR/.dainctl-torch-spec"
env_python="$ENV_DIR/bin/python"
mkdir -p "$(dirname "$ENV_DIR")"
exec 9>"$ENV_DIR.lock"
command -v flock >/dev/null 2>&1 && flock 9  # two CI runs at once: the second waits for the first's install
if [ "$(cat "$stamp" 2>/dev/null)" = "$SPEC ninja numpy" ] && "$env_python" -c "import torch" 2>/dev/null; then
    echo "build_cuda_variant: reusing $ENV_DIR ($SPEC)"
else
    echo "build_cuda_variant: installing $SPEC, ninja and numpy into $ENV_DIR (first use) ..."
    rm -f "$stamp"
    install_log="$ENV_DIR.install.log"
    if ! { [ -x "$env_python" ] || "$PYTHON" -m venv "$ENV_DIR"; } >"$install_log" 2>&1 ||
       ! "$env_python" -m pip install -q "$SPEC" ninja numpy >>"$install_log" 2>&1; then
        skip "could not install $SPEC into $ENV_DIR (registry unreachable or pip failed; see $install_log)"
    fi
    echo "$SPEC ninja numpy" >"$stamp"
fi
exec 9>&-
torch_cuda=$("$env_python" -c "import torch; print(torch.version.cuda or '')" 2>/dev/null) ||
    fail "torch does not import in $ENV_DIR"
[ -n "$torch_cuda" ] || fail "$SPEC in $ENV_DIR is a torch built without CUDA (set DAINCTL_CUDA_TORCH_SPEC)"
echo "build_cuda_variant: torch $("$env_python" -c "import torch; print(torch.__version__)") (CUDA $torch_cuda)," \
     "toolkit $CUDA_HOME, TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST"

# Build into a fresh cache (the user's own cache is left alone), load, check the dispatch tables.
cache=$(mktemp -d "${TMPDIR:-/tmp}/dainctl-cuda-build.XXXXXX")
trap 'rm -rf "$cache"' EXIT
if ! DAINCTL_CACHE_DIR="$cache" DAINCTL_FORCE_CUDA_BUILD=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" \
        "$env_python" scripts/check_cuda_dispatch.py --require cuda; then
    fail "the CUDA variant did not build, load or register (details above)"
fi
echo "build_cuda_variant: ok in $(elapsed) s"
