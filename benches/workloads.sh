#!/usr/bin/env bash
# The workloads of the simulator speed benchmarks (docs/performance.md, issue 17), made with
# mini-slurm's own `trace gen` and `trace convert`. Deterministic: the same files every time.
# Usage: bash benches/workloads.sh [DIR]      (default DIR: target/speed; needs a release build)
#
# deep-122k.swf.gz  122,000 jobs on 1,024 CPUs, power-of-two sizes 32-1,024, deep queue:
#                   `trace gen --model hpc --procs 32` (sizes 1-32), each size rounded up to a
#                   power of two and multiplied by 32 (awk), then `trace convert --procs 1024
#                   --target-load 0.66`: mean wait 21,632 s (6.0 h) under EASY
# hpc-N.swf.gz      `trace gen --model hpc --jobs N --procs 1024 --load 0.8 --seed 7`, for N in
#                   10k, 25k, 100k, 250k, 1M (the issue's 1M-job synthetic trace and its scaling)
set -euo pipefail
cd "$(dirname "$0")/.."
B="$PWD/target/release/mini-slurm"
D="${1:-target/speed}"
mkdir -p "$D"
if [ ! -e "$D/deep-122k.swf.gz" ]; then
  "$B" trace gen --model hpc --jobs 122000 --procs 32 --load 0.9 --seed 7 -o "$D/gen32.swf" >/dev/null
  awk '/^;/ { if ($2 == "MaxProcs:") $3 = 1024; print; next }
       { p = 1; while (p < $5) p *= 2; $5 = 32 * p; $8 = 32 * p; print }' "$D/gen32.swf" >"$D/gen1024.swf"
  "$B" trace convert "$D/gen1024.swf" "$D/deep-122k.swf.gz" --procs 1024 --target-load 0.66 >/dev/null
  rm "$D/gen32.swf" "$D/gen1024.swf"
fi
for n in 10000 25000 100000 250000 1000000; do
  f="$D/hpc-$n.swf.gz"
  [ -e "$f" ] || "$B" trace gen --model hpc --jobs "$n" --procs 1024 --load 0.8 --seed 7 -o "$f" >/dev/null
done
ls -l "$D"
