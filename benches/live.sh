#!/usr/bin/env bash
# Live-mode measurements (release build), with a 2-CPU scheduler running: submit latency,
# submit-to-start, and trivial jobs per second submitted one after another. Prints medians;
# results and targets in docs/performance.md; last, the rate at which this shell starts the
# binary doing nothing (the ceiling of any submission loop). Usage:
#   bash benches/live.sh [--multi-user] [--rounds N] [PATH/mini-slurm]
#     --multi-user   a shared scheduler (`scheduler --multi-user`; needs root), clients through
#                    its socket as root; default: a personal scheduler (clients also use the socket)
#     --rounds N     repeat the throughput step N times and print the median (default 3)
#     PATH           another binary (e.g. an older build, for a baseline); default: this checkout's
#   POLICY=SPEC      the scheduler's policy (default easy[order=priority], which starts a job the
#                    moment it fits: the numbers measure mini-slurm, not a policy's cycle; the
#                    daemon's own default, slurm, starts jobs at Slurm's whole-second cycles)
# Needs hyperfine (apt-get install hyperfine) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
MULTI=() ROUNDS=3 B=""
while [ $# -gt 0 ]; do
  case "$1" in
    --multi-user) MULTI=(--multi-user); shift ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    *) B="$(realpath "$1")"; shift ;;
  esac
done
if [ -z "$B" ]; then cargo build --release -q --bin mini-slurm; B="$PWD/target/release/mini-slurm"; fi
export MINI_SLURM_HOME="$(mktemp -d)"
WORK="$(mktemp -d)"
trap 'kill $DAEMON 2>/dev/null || true; wait 2>/dev/null; rm -rf "$MINI_SLURM_HOME" "$WORK"' EXIT
cd "$WORK"

"$B" scheduler --cpus 2 --policy "${POLICY:-easy[order=priority]}" "${MULTI[@]}" 2>/dev/null & DAEMON=$!
until [ -S "$MINI_SLURM_HOME/daemon.sock" ]; do sleep 0.05; done
idle() { until [ "$("$B" queue --noheader | wc -l)" -eq 0 ]; do sleep 0.05; done; }
# Where job N's stdout goes: the home's logs for a personal scheduler, slurm-N.out in the
# submit directory for a shared one.
if [ ${#MULTI[@]} -gt 0 ]; then OUT="$WORK/slurm-%d.out"; else OUT="$MINI_SLURM_HOME/logs/job_%d.out"; fi
echo "binary: $B (${MULTI[*]:-personal scheduler}), $(nproc) CPUs, load: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== submit latency: the whole 'mini-slurm submit' process, daemon running (hyperfine, 300 runs)"
hyperfine -N --warmup 20 -r 300 --export-json "$WORK/submit.json" "$B submit --parsable true" >/dev/null 2>&1
python3 - "$WORK/submit.json" <<'PY'
import json, statistics, sys
r = json.load(open(sys.argv[1]))["results"][0]
t = r["times"]
print("median %.2f ms (min %.2f, mean %.2f); CPU per submit: user %.2f ms, system %.2f ms"
      % (1e3 * statistics.median(t), 1e3 * min(t), 1e3 * statistics.mean(t), 1e3 * r["user"], 1e3 * r["system"]))
PY
idle

echo "== submit-to-start on an idle machine: from starting 'submit' to the job's first instruction"
echo "   (the job is 'date +%s%N', its clock read once it runs; 100 jobs, 0.1 s apart)"
python3 - "$B" "$OUT" <<'PY'
import statistics, subprocess, sys, time
b, out = sys.argv[1], sys.argv[2]
ends, acks = [], []
for i in range(100):
    t0 = time.time_ns()
    r = subprocess.run([b, "submit", "--parsable", "--", "date", "+%s%N"],
                       capture_output=True, text=True, check=True)
    acks.append((time.time_ns() - t0) / 1e6)
    job = int(r.stdout)
    time.sleep(0.1)
    for _ in range(100):
        try:
            ends.append((int(open(out % job).read()) - t0) / 1e6)
            break
        except (OSError, ValueError):
            time.sleep(0.01)
print("median %.1f ms end to end (%d jobs; min %.1f); the submit's acknowledgement: median %.1f ms"
      % (statistics.median(ends), len(ends), min(ends), statistics.median(acks)))
PY
idle

echo "== 1,000 'true' jobs submitted one after another while the 2-CPU scheduler runs them ($ROUNDS rounds)"
rates=()
for round in $(seq "$ROUNDS"); do
  start=$(date +%s%N)
  for i in $(seq 1000); do "$B" submit --parsable true >/dev/null; done
  submitted=$(date +%s%N)
  idle
  end=$(date +%s%N)
  rate=$(( 1000 * 1000000000 / (end - start) ))
  rates+=("$rate")
  echo "round $round: submitted in $(( (submitted - start) / 1000000 )) ms, all done in $(( (end - start) / 1000000 )) ms: $rate jobs/s"
done
echo "median $(printf '%s\n' "${rates[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') jobs/s"
# The loop's own ceiling: how fast this shell starts the binary when it does nothing (no
# request, no job). No submission loop can beat it; compare the rate above with it.
start=$(date +%s%N)
for i in $(seq 1000); do "$B" --version >/dev/null; done
end=$(date +%s%N)
echo "== the loop's ceiling: 1,000 '$(basename "$B") --version' one after another: $(( 1000 * 1000000000 / (end - start) )) per s"
