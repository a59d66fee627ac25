#!/bin/sh
# The researcher's loop on a Slurm cluster (docs/slurm.md): run a workload live on Slurm
# through mini-slurm under a policy, export what happened, and replay it in the simulator under
# several policies. Needs a Slurm whose default partition has 4 CPUs (the local one of
# ../shared/slurm/ or .ci/run) and a built mini-slurm on PATH.
#
#   sh docs/examples/slurm-loop.sh [POLICY]        # default: easy
set -eu
policy=${1:-easy}
export MINI_SLURM_HOME=$(mktemp -d)
mini-slurm scheduler --executor slurm --policy "$policy" --poll-interval 0.2 2>"$MINI_SLURM_HOME/daemon.err" &
daemon=$!
until mini-slurm stats | grep -q 'Executor: Slurm'; do sleep 0.2; done
# 12 jobs as (CPUs, seconds), submitted at once; 1-minute limits.
for job in "4 6" "1 2" "2 3" "1 5" "3 2" "1 1" "2 4" "4 2" "1 3" "2 2" "1 6" "3 1"; do
    set -- $job
    mini-slurm submit --parsable --cpus "$1" --time 1 -- sleep "$2" >/dev/null
done
while [ "$(mini-slurm queue | wc -l)" -gt 1 ]; do sleep 1; done
kill "$daemon"
wait "$daemon" || true
mini-slurm export-trace --out "$MINI_SLURM_HOME/live.csv"
mini-slurm queue --status COMPLETED --json |
    python3 -c 'import json,sys; j=json.load(sys.stdin); w=[(x["start_ms"]-x["submit_ms"])/1000 for x in j]; n=len(w); print(f"live on Slurm ({n} jobs): mean wait {sum(w)/n:.2f} s, max {max(w):.2f} s")'
for p in fcfs easy conservative; do
    mini-slurm sim --trace "$MINI_SLURM_HOME/live.csv" --procs 4 --policy "$p" --estimate requested \
        --no-timing --out "$MINI_SLURM_HOME/sim-$p" >/dev/null 2>&1
    python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); w=s["wait_s"]["mean"]; m=s["makespan_s"]; print(f"simulated {sys.argv[2]:<12}: mean wait {w:.2f} s, makespan {m:.1f} s")' \
        "$MINI_SLURM_HOME/sim-$p/summary.json" "$p"
done
echo "home: $MINI_SLURM_HOME"
