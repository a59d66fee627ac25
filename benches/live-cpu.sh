#!/usr/bin/env bash
# Where a trivial live job's CPU goes, by process role (release build): a 2-CPU personal
# scheduler runs N `true` jobs submitted one after another while `perf record -a` samples every
# CPU (cpu-clock, 4 kHz); samples are split into daemon, runner spawner, runners (their pids
# from the database), clients, the job itself and the shell loop, in ms of CPU per job, with
# each role's top kernel entry points. Results in docs/performance.md ("Live mode").
# Usage: bash benches/live-cpu.sh [PATH/mini-slurm]     (N=200 by default; needs perf, python3)
set -euo pipefail
cd "$(dirname "$0")/.."
B="${1:-}"; N="${N:-200}"
if [ -z "$B" ]; then cargo build --release -q --bin mini-slurm; B="$PWD/target/release/mini-slurm"; fi
export MINI_SLURM_HOME="$(mktemp -d)"
DATA="$(mktemp -d)"
trap 'rm -rf "$MINI_SLURM_HOME" "$DATA"' EXIT
# A copy under a name of its own: other mini-slurm processes on the machine are not counted.
echo "binary: $(realpath "$B")"
cp "$B" "$DATA/msbench"; B="$DATA/msbench"
"$B" scheduler --cpus 2 --policy 'easy[order=priority]' 2>/dev/null & DP=$!
until [ -S "$MINI_SLURM_HOME/daemon.sock" ]; do sleep 0.05; done; sleep 0.5
echo "$(nproc) CPUs, load: $(cut -d' ' -f1-3 /proc/loadavg)"
perf record -q -F 4000 -e cpu-clock -a -g -o "$DATA/perf.data" -- \
  bash -c "for i in \$(seq $N); do '$B' submit --parsable true >/dev/null; done; sleep 1" 2>/dev/null
SP="$(pgrep -f -- "$B job-runner --spawner" | head -1 || true)"
"$B" stop >/dev/null 2>&1 || true; wait "$DP" || true
perf script -i "$DATA/perf.data" -F comm,pid,ip,sym 2>/dev/null >"$DATA/samples.txt"
python3 - "$DP" "${SP:-none}" "$N" "$MINI_SLURM_HOME/jobs.db" "$(basename "$B" | cut -c1-15)" "$DATA/samples.txt" <<'PY'
import collections, re, sqlite3, sys
dp, sp, n, db, comm_b, samples = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
runners = {str(r[0]) for r in sqlite3.connect(db).execute("SELECT runner_pid FROM jobs") if r[0]}
roles, top = collections.Counter(), collections.defaultdict(collections.Counter)
for s in open(samples).read().split("\n\n"):
    lines = [l.strip() for l in s.strip().split("\n") if l.strip()]
    if not lines:
        continue
    comm, pid = lines[0].split()[:2]
    if pid == dp: role = "daemon"
    elif pid == sp: role = "runner spawner"
    elif pid in runners: role = "runners"
    elif comm == comm_b: role = "clients"
    elif comm == "true": role = "the job (true)"
    elif comm == "bash": role = "the shell loop"
    else: continue
    roles[role] += 1
    entry = "user space"
    for fr in lines[1:]:
        m = re.search(r"(__x64_sys_\w+|__do_sys_\w+|asm_exc_page_fault|do_exit)", fr)
        if m:
            entry = m.group(1).replace("__x64_sys_", "").replace("__do_sys_", "").replace("asm_exc_", "")
            break
    top[role][entry] += 1
total = 0.0
for role, v in roles.most_common():
    ms = v / 4000 / n * 1000
    total += ms
    print("%-16s %5.2f ms/job  (%s)" % (role, ms, ", ".join("%s %d%%" % (k, 100 * c / v) for k, c in top[role].most_common(4))))
print("%-16s %5.2f ms/job" % ("all", total))
PY
