#!/usr/bin/env bash
# Whole-process speed of the simulator (issue 17; results in docs/performance.md): hyperfine
# medians, mean CPU time (user + system) and peak RSS (GNU time's max RSS) of
# `mini-slurm sim ... --out DIR` for every target,
# and the scaling runs behind the charts (time and peak memory against the number of jobs).
# Usage: bash benches/speed.sh [targets|scaling|all|compare]     (default: all)
#   compare      BASE=PATH: every target with BASE and BIN run alternately (benches/interleaved.py;
#                ROUNDS=N rounds, default 11), fairer than two `targets` runs on a loaded machine
#   RUNS=N       hyperfine runs per target (default 10; 3 for the scaling runs, SCALING_RUNS)
#   BIN=PATH     the binary to measure (default: target/release/mini-slurm, built first)
# The workloads come from benches/workloads.sh (target/speed/). Outputs: a table on stdout;
# target/speed/scaling/POLICY-JOBS.json (one per run: policy, jobs, seconds, cpu_seconds,
# peak_rss_mb) and the charts docs/perf-scaling-{time,cpu,memory}.svg, drawn by `mini-slurm
# plot` from those files.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
if [ -z "${BIN:-}" ]; then
  cargo build --release -q
  BIN="$PWD/target/release/mini-slurm"
fi
D=target/speed
bash benches/workloads.sh "$D" >/dev/null
RUNS="${RUNS:-10}"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
KTH=traces/KTH-SP2-1996-2.1-cln.swf.gz

# times RUNS ARGS...: "MEDIAN CPU" for `mini-slurm sim ARGS --out DIR -q`, in seconds: the
# hyperfine median of the wall time and the mean CPU time (user + system), which a loaded
# machine inflates less than the wall time.
times() {
  local runs="$1"
  shift
  hyperfine -N --warmup 1 -r "$runs" --export-json "$OUT/h.json" \
    "$BIN sim $* -q --out $OUT/run" >/dev/null 2>&1
  python3 -c 'import json,sys; r = json.load(open(sys.argv[1]))["results"][0]
print("%.3f %.3f" % (r["median"], r["user"] + r["system"]))' "$OUT/h.json"
}
# rss_mb ARGS...: peak RSS of one run, MB.
rss_mb() {
  /usr/bin/time -f %M "$BIN" sim "$@" -q --out "$OUT/run" 2>&1 >/dev/null | tail -1 |
    awk '{printf "%.0f", $1 / 1024}'
}
row() {
  local name="$1"
  shift
  local t
  read -r -a t <<<"$(times "$RUNS" "$@")"
  printf "%-30s %8s s %8s s %6s MB\n" "$name" "${t[0]}" "${t[1]}" "$(rss_mb "$@")"
}

if [ "$what" = targets ] || [ "$what" = all ]; then
  echo "load: $(cut -d' ' -f1-3 /proc/loadavg)   binary: $BIN"
  printf "%-30s %10s %10s %9s\n" "run (sim ... --out DIR)" "median" "CPU" "peak RSS"
  row "deep-122k easy" --trace "$D/deep-122k.swf.gz" --policy easy
  row "deep-122k conservative" --trace "$D/deep-122k.swf.gz" --policy conservative
  row "KTH SP2 easy" --trace "$KTH" --policy easy
  row "KTH SP2 multifactor" --trace "$KTH" --policy multifactor
  row "hpc-250k easy" --trace "$D/hpc-250000.swf.gz" --policy easy
  row "hpc-1M easy" --trace "$D/hpc-1000000.swf.gz" --policy easy
fi

if [ "$what" = compare ]; then
  : "${BASE:?set BASE to the binary to compare with (e.g. the release build of main)}"
  r="${ROUNDS:-11}"
  for args in "--trace $D/deep-122k.swf.gz --policy easy" "--trace $D/deep-122k.swf.gz --policy conservative" \
    "--trace $KTH --policy easy" "--trace $KTH --policy multifactor" "--trace $D/hpc-250000.swf.gz --policy easy" \
    "--trace $D/hpc-1000000.swf.gz --policy easy"; do
    # shellcheck disable=SC2086
    python3 benches/interleaved.py "$r" "base=$BASE" "bin=$BIN" -- $args
  done
fi

if [ "$what" = scaling ] || [ "$what" = all ]; then
  mkdir -p "$D/scaling"
  for n in 10000 25000 100000 250000 1000000; do
    for p in fcfs easy conservative multifactor; do
      read -r -a t <<<"$(times "${SCALING_RUNS:-3}" --trace "$D/hpc-$n.swf.gz" --policy "$p")"
      m="$(rss_mb --trace "$D/hpc-$n.swf.gz" --policy "$p")"
      printf '{"policy": "%s", "jobs": %d, "seconds": %s, "cpu_seconds": %s, "peak_rss_mb": %s}\n' \
        "$p" "$n" "${t[0]}" "${t[1]}" "$m" |
        tee "$D/scaling/$p-$n.json"
    done
  done
  "$BIN" plot --x jobs --y seconds --by policy --title "Whole-process time against jobs (hpc model, 1,024 CPUs)" \
    --x-label "jobs" --y-label "median seconds" --out docs/perf-scaling-time.svg "$D"/scaling/*.json >/dev/null
  "$BIN" plot --x jobs --y cpu_seconds --by policy --title "CPU time against jobs (hpc model, 1,024 CPUs)" \
    --x-label "jobs" --y-label "CPU seconds (user + system)" --out docs/perf-scaling-cpu.svg "$D"/scaling/*.json >/dev/null
  "$BIN" plot --x jobs --y peak_rss_mb --by policy --title "Peak memory against jobs (hpc model, 1,024 CPUs)" \
    --x-label "jobs" --y-label "peak RSS (MB)" --out docs/perf-scaling-memory.svg "$D"/scaling/*.json >/dev/null
fi
