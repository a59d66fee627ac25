#!/usr/bin/env bash
# Live-mode measurements (release build): submit latency, submit-to-start on an idle machine,
# and 1,000 trivial jobs through a 2-CPU scheduler. Prints medians; see docs/performance.md.
# Usage: bash benches/live.sh            (needs hyperfine for the submit latency)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
B="$PWD/target/release/mini-slurm"
export MINI_SLURM_HOME="$(mktemp -d)"
trap 'kill $DAEMON 2>/dev/null || true; rm -rf "$MINI_SLURM_HOME"' EXIT
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

"$B" scheduler --cpus 2 2>/dev/null & DAEMON=$!
sleep 0.5

echo "== submit latency (whole 'mini-slurm submit' process, daemon running)"
if command -v hyperfine >/dev/null; then
  hyperfine -N --warmup 5 -r 100 "$B submit --parsable true" 2>&1 | grep -E "Time|Range"
fi

echo "== submit-to-start on an idle machine (100 jobs, 0.1 s apart)"
for i in $(seq 100); do "$B" submit --parsable true >/dev/null; sleep 0.1; done
sleep 0.5
python3 - "$MINI_SLURM_HOME/jobs.db" <<'PY'
import sqlite3, statistics, sys
rows = sqlite3.connect(sys.argv[1]).execute(
    "SELECT start_ms - submit_ms FROM jobs WHERE state='COMPLETED' ORDER BY id DESC LIMIT 100").fetchall()
print("median submit-to-start: %.1f ms over %d jobs" % (statistics.median(r[0] for r in rows), len(rows)))
PY

echo "== 1,000 'true' jobs through the 2-CPU scheduler (queued first, then the daemon starts)"
kill $DAEMON; wait $DAEMON 2>/dev/null || true
for i in $(seq 1000); do "$B" submit --parsable true >/dev/null; done
start=$(date +%s%N)
"$B" scheduler --cpus 2 2>/dev/null & DAEMON=$!
until [ "$("$B" queue | wc -l)" -le 1 ]; do sleep 0.02; done
end=$(date +%s%N)
echo "1000 jobs done $(( (end - start) / 1000000 )) ms after the scheduler started"
