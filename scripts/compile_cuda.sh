#!/usr/bin/env bash
# Compile-only check of the CUDA kernels (no GPU needed): nvcc -c on the torch-free kernels for a few
# architectures, then, when torch's headers are importable, a syntax check of the CUDA torch glue.
# Usage: bash scripts/compile_cuda.sh   (env: NVCC, PYTHON, DAINCTL_CUDA_ARCHS="75 80 90")
set -euo pipefail
cd "$(dirname "$0")/.."

NVCC=${NVCC:-nvcc}
PYTHON=${PYTHON:-.venv/bin/python}
ARCHS=${DAINCTL_CUDA_ARCHS:-"75 80 90"}
CSRC=src/dainctl/kernels/csrc
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

if ! command -v "$NVCC" >/dev/null 2>&1; then
    echo "compile_cuda: $NVCC not found; nothing to check" >&2
    exit 0
fi

gencode=()
for arch in $ARCHS; do gencode+=(-gencode "arch=compute_${arch},code=sm_${arch}"); done
# The same half-precision restrictions torch's extension builds use: no implicit half<->float.
torch_defines=(-D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__ -D__CUDA_NO_HALF2_OPERATORS__
               -D__CUDA_NO_BFLOAT16_CONVERSIONS__ --expt-relaxed-constexpr)
echo "compile_cuda: nvcc -c $CSRC/cuda/kernels.cu (sm_${ARCHS// /, sm_})"
"$NVCC" -c -std=c++17 -O3 "${gencode[@]}" "${torch_defines[@]}" -Xcompiler -Wall,-Wextra --Werror all-warnings \
    -I "$CSRC/include" "$CSRC/cuda/kernels.cu" -o "$WORK/kernels.o"

# The glue needs torch's C++ headers and the CUDA runtime headers. A CPU build of torch ships the
# c10/cuda headers but not the one CMake generates, so an empty stand-in is supplied for it.
if [ -x "$PYTHON" ] && torch_includes=$("$PYTHON" -c \
        "import torch.utils.cpp_extension as c; print(' '.join(c.include_paths()))" 2>/dev/null); then
    cuda_root=${CUDA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v "$NVCC")")")")}
    [ -f "$cuda_root/include/cuda_runtime_api.h" ] || cuda_root=/usr/local/cuda
    mkdir -p "$WORK/stub/c10/cuda/impl"
    echo '#pragma once' > "$WORK/stub/c10/cuda/impl/cuda_cmake_macros.h"
    includes=()
    for dir in $torch_includes "$WORK/stub" "$cuda_root/include"; do includes+=(-isystem "$dir"); done
    echo "compile_cuda: syntax check of $CSRC/torch/ops_cuda.cpp"
    "${CXX:-c++}" -std=c++17 -fsyntax-only -Wall -Wextra -Werror "${includes[@]}" -I "$CSRC/include" \
        "$CSRC/torch/ops_cuda.cpp"
fi
echo "compile_cuda: ok"
