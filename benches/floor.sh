#!/usr/bin/env bash
# The floor under live mode's speed targets on this machine: what starting a process costs,
# before any scheduling. Measures, with hyperfine (-N, no shell; 500 runs, medians) and in a
# shell loop of 1,000 (the shape of benches/live.sh's throughput step):
#   /bin/true, task-spooler's client (`tsp -V`, if installed), a Rust "hello world" linked
#   dynamically (as mini-slurm is) and statically, `mini-slurm --version` and
#   `mini-slurm submit --parsable true` against a running 2-CPU personal scheduler.
# Results and what they mean in docs/performance.md ("Live mode → the floor").
# Usage: bash benches/floor.sh [PATH/mini-slurm [OTHER/mini-slurm ...]]
#   OTHER: other builds whose `--version` is measured beside (e.g. one linked statically:
#   RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --target x86_64-unknown-linux-gnu)
#   needs hyperfine, python3, rustc
set -euo pipefail
cd "$(dirname "$0")/.."
B="${1:-}"; shift || true
OTHERS=("$@")
if [ -z "$B" ]; then cargo build --release -q --bin mini-slurm; B="$PWD/target/release/mini-slurm"; fi
B="$(realpath "$B")"
WORK="$(mktemp -d)"
export MINI_SLURM_HOME="$WORK/home"
trap 'kill $DAEMON 2>/dev/null || true; wait 2>/dev/null; rm -rf "$WORK"' EXIT
echo 'fn main() { println!("hello"); }' >"$WORK/hello.rs"
rustc -O "$WORK/hello.rs" -o "$WORK/hello-dynamic"
rustc -O -C target-feature=+crt-static "$WORK/hello.rs" -o "$WORK/hello-static"
"$B" scheduler --cpus 2 --policy 'easy[order=priority]' 2>/dev/null & DAEMON=$!
until [ -S "$MINI_SLURM_HOME/daemon.sock" ]; do sleep 0.05; done
echo "binary: $B; $(nproc) CPUs, load: $(cut -d' ' -f1-3 /proc/loadavg)"

CMDS=(/bin/true)
command -v tsp >/dev/null && CMDS+=("tsp -V")
CMDS+=("$WORK/hello-dynamic" "$WORK/hello-static" "$B --version")
for o in "${OTHERS[@]}"; do CMDS+=("$(realpath "$o") --version"); done
CMDS+=("$B submit --parsable true")
hyperfine -N --warmup 20 -r 500 --export-json "$WORK/floor.json" "${CMDS[@]}" >/dev/null 2>&1
python3 - "$WORK/floor.json" "$WORK/" "$B" <<'PY'
import json, statistics, sys
print("%-38s %9s %9s %9s" % ("process (hyperfine -N, 500 runs)", "median", "min", "CPU"))
for r in json.load(open(sys.argv[1]))["results"]:
    t = r["times"]
    name = r["command"].replace(sys.argv[2], "").replace(sys.argv[3], "mini-slurm")
    print("%-38s %7.2f ms %6.2f ms %6.2f ms" % (name[-38:], 1e3 * statistics.median(t),
          1e3 * min(t), 1e3 * (r["user"] + r["system"])))
PY
echo "the same, 1,000 times in a shell loop (per second):"
for c in "${CMDS[@]}"; do
  start=$(date +%s%N)
  for i in $(seq 1000); do $c >/dev/null; done
  end=$(date +%s%N)
  name="${c//"$WORK/"/}"
  printf '  %-36s %6.0f per s\n' "${name//"$B"/mini-slurm}" "$(python3 -c "print(1e12 / ($end - $start))")"
done
