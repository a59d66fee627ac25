#!/usr/bin/env bash
# Checks that a speed change kept the simulator's outputs byte-identical (issue 17): runs two
# binaries on the bundled traces and the speed workloads (benches/workloads.sh) under fcfs,
# easy, conservative and multifactor, and compares jobs.csv and summary.json (all but its
# wall_time_s line) with cmp.
# Usage: BASE=PATH/TO/OLD/mini-slurm bash benches/same-outputs.sh [WORKLOAD...]
#   NEW=PATH       the binary under test (default: target/release/mini-slurm, built first)
#   POLICIES="..." the policies (default: fcfs easy conservative multifactor)
#   LIMIT=S        seconds a run may take before it is skipped as too slow (default 300)
#   WORKLOAD...    trace files (default: traces/*.gz and target/speed/*.swf.gz)
# Prints one line per run (same / DIFFERENT / skipped); exits 1 if any output differs.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${BASE:?set BASE to the binary to compare against (e.g. the release build of main)}"
if [ -z "${NEW:-}" ]; then
  cargo build --release -q
  NEW="$PWD/target/release/mini-slurm"
fi
POLICIES="${POLICIES:-fcfs easy conservative multifactor}"
LIMIT="${LIMIT:-300}"
if [ "$#" -eq 0 ]; then
  bash benches/workloads.sh >/dev/null
  set -- traces/*.gz target/speed/*.swf.gz
fi
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT
bad=0
for w in "$@"; do
  for p in $POLICIES; do
    rm -rf "$T/a" "$T/b"
    if ! timeout "$LIMIT" "$BASE" sim --trace "$w" --policy "$p" -q --out "$T/a" >/dev/null 2>&1 ||
      ! timeout "$LIMIT" "$NEW" sim --trace "$w" --policy "$p" -q --out "$T/b" >/dev/null 2>&1; then
      echo "skipped    $p $w (failed or over ${LIMIT} s)"
      continue
    fi
    # summary.json records the run's own wall time: the one line allowed to differ.
    grep -v '"wall_time_s"' "$T/a/summary.json" >"$T/a.json"
    grep -v '"wall_time_s"' "$T/b/summary.json" >"$T/b.json"
    if cmp -s "$T/a/jobs.csv" "$T/b/jobs.csv" && cmp -s "$T/a.json" "$T/b.json"; then
      echo "same       $p $w"
    else
      echo "DIFFERENT  $p $w"
      bad=1
    fi
  done
done
exit "$bad"
