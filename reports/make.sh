#!/bin/sh
# Regenerates every report in reports/ (about a minute on 2 cores, release build):
#   cargo build --release && sh reports/make.sh
set -e
B=${MINI_SLURM:-target/release/mini-slurm}
core="fcfs,easy,conservative,easy[order=multifactor]"
# The bundled traces under the core policies (multifactor = Slurm's fair-share priority).
$B compare -q --trace traces/KTH-SP2-1996-2.1-cln.swf.gz --policies "$core" --out reports/kth
$B compare -q --trace traces/NASA-iPSC-1993-3.1-cln.swf.gz --policies "$core" --out reports/nasa
$B compare -q --trace traces/lublin_256.swf.gz --policies "$core" --out reports/lublin
# Elastic jobs (#6): half of KTH's jobs elastic, each policy with and without the elastic layer.
$B compare -q --trace traces/KTH-SP2-1996-2.1-cln.swf.gz --elastic-fraction 0.5 --seed 1 \
  --policies "easy[elastic=off],easy,conservative[elastic=off],conservative" \
  --title "KTH SP2, half of the jobs elastic: rigid vs elastic scheduling" --out reports/kth-elastic
# Topology (#3): KTH on 100 nodes under a switch tree, tree placement, 5 % penalty per extra leaf.
$B compare -q --trace traces/KTH-SP2-1996-2.1-cln.swf.gz --nodes 100 --cpus-per-node 1 \
  --topology docs/examples/kth-tree.topology.conf --topology-penalty 0.05 \
  --policies "easy,conservative,easy[order=multifactor]" \
  --title "KTH SP2 on a switch tree (tree placement)" --out reports/kth-tree
# Preemption and QOS (#5) on the generated ML workload with GPUs.
$B compare -q --trace traces/synthetic-ml-2k.csv.gz --nodes 8 --cpus-per-node 64 --gpus-per-node 8 \
  --mem-per-node 1TB --policies "fcfs,easy,easy[order=multifactor],conservative" \
  --title "Generated ML workload (GPU jobs, sweeps) on 8 nodes" --out reports/ml
# An experiment: load sweep with input shaking over three seeds.
$B experiment docs/examples/load-sweep.toml --out reports/load-sweep -q
