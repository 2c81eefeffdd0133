#!/usr/bin/env bash
# Print the CUDA toolkit folder whose include/ holds cuda_runtime_api.h and whose bin/ holds nvcc
# ($CUDA_HOME when set, else the prefix of the nvcc on the PATH, /usr/local/cuda, /usr/local/cuda-* newest
# first). Exit 1, printing nothing, when there is none; exit 2 when a CUDA_HOME that is set does not
# qualify. torch's own guess from the nvcc on the PATH can be a prefix without the headers, which fails
# with "cuda_runtime_api.h: No such file or directory".
# Usage: CUDA_HOME=$(bash scripts/find_cuda_home.sh)
set -euo pipefail
qualifies() { [ -f "$1/include/cuda_runtime_api.h" ] && [ -x "$1/bin/nvcc" ]; }
if [ -n "${CUDA_HOME:-}" ]; then
    if qualifies "$CUDA_HOME"; then echo "$CUDA_HOME"; exit 0; fi
    echo "CUDA_HOME=$CUDA_HOME has no include/cuda_runtime_api.h and bin/nvcc" >&2
    exit 2
fi
candidates=()
if nvcc=$(command -v nvcc 2>/dev/null); then
    candidates+=("$(dirname "$(dirname "$(readlink -f "$nvcc")")")")
fi
candidates+=(/usr/local/cuda)
while IFS= read -r dir; do candidates+=("$dir"); done < <(ls -d /usr/local/cuda-* 2>/dev/null | sort -rV)
for dir in "${candidates[@]}"; do
    if qualifies "$dir"; then
        echo "$dir"
        exit 0
    fi
done
exit 1
