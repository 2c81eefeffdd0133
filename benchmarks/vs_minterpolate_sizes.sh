#!/usr/bin/env bash
# Issue 11's side-by-side: the default (`--profile auto`) against FFmpeg minterpolate at 640x360,
# 1280x720 and 1920x1080, in one run. The clips are the first FRAMES (default 50) frames of SOURCE
# (default ../shared/data/videos/car-turn.mp4, 25 fps, 640x360) scaled with bicubic filtering and
# encoded with libx264 crf 16; both tools double the rate. SIZES overrides the list of sizes.
#     bash benchmarks/vs_minterpolate_sizes.sh [WORKDIR]
#     SOURCE=../shared/data/videos/bikes.mp4 FRAMES=250 SIZES=1280x720 bash benchmarks/vs_minterpolate_sizes.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-$here/../.venv/bin/python}"
work="${1:-$(mktemp -d)}"
source_video="${SOURCE:-$here/../../shared/data/videos/car-turn.mp4}"
frames="${FRAMES:-50}"
name="$(basename "$source_video" .mp4)-$frames"
mkdir -p "$work"
ffmpeg -version | head -1  # minterpolate's speed differs a lot between FFmpeg versions (docs/benchmarks.md)
uptime
for size in ${SIZES:-640x360 1280x720 1920x1080}; do
  clip="$work/$name-$size.mp4"
  [ -f "$clip" ] || ffmpeg -v error -y -i "$source_video" -frames:v "$frames" -vf "scale=${size/x/:}:flags=bicubic" \
      -an -c:v libx264 -crf 16 -preset fast "$clip"
  echo "== $size"
  "$python" "$here/vs_minterpolate.py" "$clip"
  "$python" -m dainctl interpolate "$clip" "$work/auto-$name-$size.mp4" --overwrite --quiet --json \
    | "$python" -c "import json, sys; d = json.load(sys.stdin); print('dainctl profile', d['profile'], '-', d['profile_reason'])"
  uptime
done
