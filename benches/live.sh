#!/usr/bin/env bash
# Live-mode measurements (release build), with a 2-CPU scheduler running: submit latency,
# submit-to-start, and trivial jobs per second submitted one after another. Prints medians;
# see docs/performance.md. Usage:
#   bash benches/live.sh                 the release build of this checkout
#   bash benches/live.sh PATH/mini-slurm  another binary (e.g. an older build, for a baseline)
# Needs hyperfine (submit latency) and python3 (submit-to-start).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -ge 1 ]; then B="$(realpath "$1")"; else cargo build --release -q; B="$PWD/target/release/mini-slurm"; fi
export MINI_SLURM_HOME="$(mktemp -d)"
WORK="$(mktemp -d)"
trap 'kill $DAEMON 2>/dev/null || true; rm -rf "$MINI_SLURM_HOME" "$WORK"' EXIT
cd "$WORK"

"$B" scheduler --cpus 2 2>/dev/null & DAEMON=$!
sleep 0.5
idle() { until [ "$("$B" queue --noheader | wc -l)" -eq 0 ]; do sleep 0.05; done; }

echo "== submit latency: the whole 'mini-slurm submit' process, daemon running (hyperfine)"
if command -v hyperfine >/dev/null; then
  hyperfine -N --warmup 20 -r 300 --export-json "$WORK/submit.json" "$B submit --parsable true" >/dev/null 2>&1
  python3 - "$WORK/submit.json" <<'PY'
import json, statistics, sys
t = json.load(open(sys.argv[1]))["results"][0]["times"]
print("median %.2f ms, mean %.2f ms over %d runs" % (1e3 * statistics.median(t), 1e3 * statistics.mean(t), len(t)))
PY
fi
idle

echo "== submit-to-start on an idle machine: from starting 'submit' to the job's first instruction"
echo "   (the job is 'date +%s%N'; 100 jobs, 0.1 s apart; also the daemon's own record, start - submit)"
python3 - "$B" "$MINI_SLURM_HOME" <<'PY'
import os, sqlite3, statistics, subprocess, sys, time
b, home = sys.argv[1], sys.argv[2]
outer, ids = [], []
for i in range(100):
    t0 = time.time_ns()
    r = subprocess.run([b, "submit", "--parsable", "--", "date", "+%s%N"],
                       capture_output=True, text=True, check=True)
    ids.append(int(r.stdout))
    time.sleep(0.1)
    for _ in range(100):
        try:
            outer.append((int(open("%s/logs/job_%d.out" % (home, ids[-1])).read()) - t0) / 1e6)
            break
        except (OSError, ValueError):
            time.sleep(0.01)
rows = sqlite3.connect(home + "/jobs.db").execute(
    "SELECT start_ms - submit_ms FROM jobs WHERE id >= ? AND start_ms IS NOT NULL", (ids[0],)).fetchall()
print("median %.1f ms end to end (%d jobs); daemon's record: median %.1f ms"
      % (statistics.median(outer), len(outer), statistics.median(r[0] for r in rows)))
PY
idle

echo "== 1,000 'true' jobs submitted one after another while the 2-CPU scheduler runs them"
start=$(date +%s%N)
for i in $(seq 1000); do "$B" submit --parsable true >/dev/null; done
submitted=$(date +%s%N)
idle
end=$(date +%s%N)
echo "submitted in $(( (submitted - start) / 1000000 )) ms, all done in $(( (end - start) / 1000000 )) ms: $(( 1000 * 1000000000 / (end - start) )) jobs/s"
