#!/usr/bin/env bash
# The reference the live-mode targets come from (issue 14): task-spooler (Debian's `tsp`) with
# 2 slots, measured as benches/live.sh measures mini-slurm — submit latency (hyperfine, 300
# runs, `tsp true` while its server runs the jobs) and 1,000 `true` jobs submitted one after
# another until all are done. Needs tsp and hyperfine (apt-get install task-spooler hyperfine).
set -euo pipefail
command -v tsp >/dev/null || { echo "tsp (task-spooler) is not installed" >&2; exit 2; }
export TS_SOCKET="$(mktemp -u /tmp/tsp-bench.XXXXXX)" TMPDIR="$(mktemp -d)"
trap 'tsp -K >/dev/null 2>&1 || true; rm -rf "$TMPDIR" "$TS_SOCKET"' EXIT
tsp -S 2 >/dev/null
echo "tsp $(tsp -V 2>&1 | head -1), $(nproc) CPUs, load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== submit latency: the whole 'tsp true' process (hyperfine, 300 runs)"
hyperfine -N --warmup 20 -r 300 "tsp true" 2>/dev/null | grep -E "Time|Range"
tsp -w >/dev/null 2>&1 || true; tsp -C
echo "== 1,000 'true' jobs submitted one after another while tsp runs them"
start=$(date +%s%N)
for i in $(seq 1000); do tsp true >/dev/null; done
submitted=$(date +%s%N)
tsp -w >/dev/null 2>&1 || true
until [ -z "$(tsp | awk 'NR>1 && $2 != "finished"')" ]; do sleep 0.01; done
end=$(date +%s%N)
echo "submitted in $(( (submitted - start) / 1000000 )) ms, all done in $(( (end - start) / 1000000 )) ms: $(( 1000 * 1000000000 / (end - start) )) jobs/s"
