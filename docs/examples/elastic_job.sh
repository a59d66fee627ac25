#!/bin/sh
# An elastic job for mini-slurm live mode: it works in small steps and, between steps, adapts
# to the CPUs it holds now. Submit it with, e.g.:
#
#   mini-slurm submit --elastic --cpus 2 --min-cpus 1 --max-cpus 8 --resize-signal USR1 \
#       -- sh docs/examples/elastic_job.sh 200
#
# The contract (docs/elastic.md): $MINI_SLURM_ALLOC_FILE always holds the current allocation
# (`cpus=N`, `cpu_list=IDS`, `generation=G`, rewritten atomically on every resize); the job's
# CPU affinity already follows it; the optional signal only says "look again". A job that does
# not read the file still runs correctly: the kernel keeps it on its CPUs.

steps=${1:-100}
alloc=${MINI_SLURM_ALLOC_FILE:?not run by mini-slurm as an elastic job}
seen=-1
trap 'echo "step $i: resize signal"' USR1

cpus_now() { sed -n 's/^cpus=//p' "$alloc"; }
generation() { sed -n 's/^generation=//p' "$alloc"; }

i=0
while [ "$i" -lt "$steps" ]; do
    g=$(generation)
    if [ "$g" != "$seen" ]; then
        seen=$g
        n=$(cpus_now)
        echo "step $i: now $n CPUs ($(sed -n 's/^cpu_list=//p' "$alloc")), generation $g"
    fi
    # One step of work on $n workers (here: $n busy loops of ~0.1 s each).
    w=0
    while [ "$w" -lt "$n" ]; do
        ( end=$(($(date +%s%N) + 100000000)); while [ "$(date +%s%N)" -lt "$end" ]; do :; done ) &
        w=$((w + 1))
    done
    wait
    i=$((i + 1))
done
echo "done after $steps steps"
