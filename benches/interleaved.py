#!/usr/bin/env python3
"""Whole-process timings of two or more mini-slurm binaries on one `sim` run, interleaved.

On a shared machine, back-to-back hyperfine runs of one binary and then the other measure the
load's swings as much as the binaries; alternating them (ABBA order, after a warm-up of each)
exposes both to the same load. Prints the median wall time and the median CPU time (user +
system, from wait4) of each binary, and the load average at the end.

Usage: python3 benches/interleaved.py ROUNDS NAME=BINARY [NAME=BINARY...] -- SIM-ARGS...
  e.g. python3 benches/interleaved.py 11 main=/tmp/main-mini-slurm branch=target/release/mini-slurm \\
         -- --trace target/speed/deep-122k.swf.gz --policy easy
Each run is `BINARY sim SIM-ARGS -q --out DIR` (a temporary DIR per binary).
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time


def run(binary, args, out):
    start = time.perf_counter()
    p = subprocess.Popen([binary, "sim", *args, "-q", "--out", out],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    if status != 0:
        sys.exit(f"{binary} sim {' '.join(args)} failed (status {status})")
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def main():
    if "--" not in sys.argv or len(sys.argv) < 4:
        sys.exit(__doc__)
    cut = sys.argv.index("--")
    rounds = int(sys.argv[1])
    bins = [a.split("=", 1) for a in sys.argv[2:cut]]
    args = sys.argv[cut + 1:]
    times = {name: ([], []) for name, _ in bins}
    with tempfile.TemporaryDirectory() as tmp:
        outs = {name: os.path.join(tmp, name) for name, _ in bins}
        for name, binary in bins:
            run(binary, args, outs[name])
        for r in range(rounds):
            for name, binary in bins if r % 2 == 0 else bins[::-1]:
                wall, cpu = run(binary, args, outs[name])
                times[name][0].append(wall)
                times[name][1].append(cpu)
    cells = [f"{name} {statistics.median(w):.3f} s wall, {statistics.median(c):.3f} s CPU"
             for name, (w, c) in times.items()]
    load = open("/proc/loadavg").read().split()[0]
    print(f"{' '.join(args)}: " + " | ".join(cells) + f" | load {load}")


if __name__ == "__main__":
    main()
