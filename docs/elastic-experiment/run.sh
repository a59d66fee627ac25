#!/bin/sh
# Regenerates docs/elastic-experiment/*.svg and prints the numbers of docs/elastic-experiment.md.
# FCFS is in the tables but not in the slowdown and turnaround charts: its values are ten to a
# hundred times larger and would flatten the other lines.
# Usage: sh docs/elastic-experiment/run.sh [RUNS_DIR]   (from the repository root, after
# `cargo build --release`; about 10 s)
set -e
bin=${MINI_SLURM:-target/release/mini-slurm}
runs=${1:-target/elastic-experiment}
trace=traces/KTH-SP2-1996-2.1-cln.swf.gz
out=docs/elastic-experiment
for speedup in linear amdahl:0.05; do
  for f in 0 0.25 0.5 0.75 1; do
    for p in fcfs easy conservative; do
      $bin sim --trace "$trace" --policy "$p" --elastic-fraction "$f" --elastic-range 0.5,2 \
        --seed 1 --speedup "$speedup" --no-timing -q --out "$runs/$speedup/$p-$f" 2>/dev/null
    done
  done
  tag=$(echo "$speedup" | cut -d: -f1)
  $bin plot --x elastic_fraction --y mean_bounded_slowdown --by policy \
    --title "KTH SP2: mean bounded slowdown ($speedup speedup)" \
    --x-label "fraction of jobs elastic" --y-label "mean bounded slowdown (τ = 10 s)" \
    --out "$out/bsld-$tag.svg" "$runs/$speedup"/easy-*/summary.json \
    "$runs/$speedup"/conservative-*/summary.json
  $bin plot --x elastic_fraction --y utilization --by policy \
    --title "KTH SP2: utilization ($speedup speedup)" \
    --x-label "fraction of jobs elastic" --y-label "utilization (CPU-time / capacity)" \
    --out "$out/utilization-$tag.svg" "$runs/$speedup"/*/summary.json
  $bin plot --x elastic_fraction --y turnaround_s.mean --by policy \
    --title "KTH SP2: mean turnaround ($speedup speedup)" \
    --x-label "fraction of jobs elastic" --y-label "mean turnaround (s)" \
    --out "$out/turnaround-$tag.svg" "$runs/$speedup"/easy-*/summary.json \
    "$runs/$speedup"/conservative-*/summary.json
done
