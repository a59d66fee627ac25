#!/usr/bin/env python3
"""A fake Slurm for the Slurm executor's tests: sbatch, squeue, sacct, scancel and scontrol
in one script (the first argument names the command), keeping its jobs in STATE_DIR/jobs.json.

A job's life is written in its batch script as `SEQ=STATE[:CODE[:SIG]],...`: each squeue
poll by id moves it one step (the last step sticks); `LINGER=N` lists a finished job in
squeue for N polls (default 1000; 0: never), after which only sacct knows it. STATE_DIR/control.json
steers faults: {"fail": {"sbatch": 2}} fails the next 2 calls, {"hang": {"squeue": 1}} hangs
one call, {"accept_then_fail": 1} makes sbatch take the job and still fail, {"refuse": "msg"}
makes sbatch refuse every job, {"sacct": "off"} disables accounting (and the jobcomp file),
{"down": ["n2"]} shows node n2 DOWN*.
Every call is appended to STATE_DIR/calls.log.
"""
import fcntl
import json
import os
import re
import sys
import time

STATE = os.environ.get("FAKE_SLURM_DIR") or sys.argv[1]
CMD = sys.argv[2]
ARGS = sys.argv[3:]


def load(name, default):
    try:
        with open(os.path.join(STATE, name)) as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return default


def save(name, value):
    path = os.path.join(STATE, name)
    with open(path + ".tmp", "w") as f:
        json.dump(value, f)
    os.replace(path + ".tmp", path)


def fault(control, cmd):
    """Applies the faults steered for `cmd`; returns True when the call must fail."""
    hang = control.get("hang", {})
    if hang.get(cmd, 0) > 0:
        hang[cmd] -= 1
        save("control.json", control)
        time.sleep(30)
    fail = control.get("fail", {})
    if fail.get(cmd, 0) > 0:
        fail[cmd] -= 1
        save("control.json", control)
        print(f"{cmd}: error: Unable to contact slurm controller (connect failure)", file=sys.stderr)
        return True
    return False


def opt(name):
    for a in ARGS:
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    if name in ARGS:
        i = ARGS.index(name)
        return ARGS[i + 1] if i + 1 < len(ARGS) else None
    return None


def step(job):
    seq = job["seq"]
    return seq[min(job["tick"], len(seq) - 1)]


def status_of(job):
    s = step(job)
    parts = s.split(":")
    state = parts[0]
    code = int(parts[1]) if len(parts) > 1 else 0
    sig = int(parts[2]) if len(parts) > 2 else 0
    return state, code, sig


FINAL = {"COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "OUT_OF_MEMORY", "NODE_FAIL",
         "BOOT_FAIL", "PREEMPTED", "DEADLINE"}


def main():
    lock = open(os.path.join(STATE, "lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    with open(os.path.join(STATE, "calls.log"), "a") as log:
        log.write(CMD + " " + " ".join(ARGS) + "\n")
    control = load("control.json", {})
    jobs = load("jobs.json", {})
    if fault(control, CMD):
        return 1
    if CMD == "sbatch":
        script = sys.stdin.read()
        if control.get("refuse"):
            print("sbatch: error: Batch job submission failed: " + control["refuse"], file=sys.stderr)
            return 1
        m = re.search(r"SEQ=([A-Z_?,:0-9]+)", script)
        seq = m.group(1).split(",") if m else ["RUNNING", "COMPLETED"]
        m = re.search(r"LINGER=(\d+)", script)
        linger = int(m.group(1)) if m else 1000
        jid = str(1000 + len(jobs))
        jobs[jid] = {"name": opt("--job-name"), "args": ARGS, "script": script, "seq": seq,
                     "tick": 0, "linger": linger, "gone": False}
        save("jobs.json", jobs)
        if control.get("accept_then_fail", 0) > 0:
            control["accept_then_fail"] -= 1
            save("control.json", control)
            print("sbatch: error: Socket timed out on send/recv operation", file=sys.stderr)
            return 1
        print(jid)
        return 0
    if CMD == "squeue":
        ids = opt("-j")
        names = opt("--name")
        if ids is not None:
            wanted = [j for j in ids.split(",") if j in jobs and not jobs[j]["gone"]]
            if not wanted:
                print("slurm_load_jobs error: Invalid job id specified", file=sys.stderr)
                return 1
            for j in wanted:
                job = jobs[j]
                state, code, sig = status_of(job)
                if state in FINAL:
                    if job["linger"] <= 0:
                        job["gone"] = True
                        continue
                    job["linger"] -= 1
                print(f"{j}|{state}|{'Resources' if state == 'PENDING' else 'None'}|{code * 256 + sig}|n1|{job['name']}|")
                job["tick"] += 1
            save("jobs.json", jobs)
        elif names is not None:
            for j, job in jobs.items():
                if job["name"] in names.split(",") and not job["gone"]:
                    state, code, sig = status_of(job)
                    print(f"{j}|{state}|None|{code * 256 + sig}|n1|{job['name']}|")
        return 0
    if CMD == "sacct":
        if control.get("sacct") == "off":
            if "-c" in ARGS:
                print("sacct: error: no job completion file", file=sys.stderr)
            else:
                print("Slurm accounting storage is disabled", file=sys.stderr)
            return 1
        ids = opt("-j")
        names = opt("--name")
        for j, job in jobs.items():
            if (ids and j in ids.split(",")) or (names and job["name"] in names.split(",")):
                state, code, sig = status_of(job)
                print(f"{j}|{state}|{code}:{sig}|{job['name']}")
        return 0
    if CMD == "scancel":
        names = opt("--name")
        for j, job in jobs.items():
            if (names and job["name"] == names) or j in ARGS:
                if status_of(job)[0] not in FINAL:
                    job["seq"] = ["CANCELLED:0:15"]
                    job["tick"] = 0
        save("jobs.json", jobs)
        return 0
    if CMD == "scontrol":
        if ARGS[:2] == ["show", "node"]:
            for n in ("n1", "n2"):
                state = "DOWN*" if n in control.get("down", []) else "IDLE"
                print(f"NodeName={n} Arch=x86_64 CPUAlloc=0 CPUEfctv=4 CPUTot=4 Gres=(null) "
                      f"OS=Linux 6.1 #1 SMP RealMemory=8000 AllocMem=0 State={state} Partitions=batch")
            print("NodeName=x1 CPUTot=2 RealMemory=100 State=IDLE Partitions=other")
        elif ARGS[:2] == ["show", "partition"]:
            print("PartitionName=batch Default=YES MaxTime=UNLIMITED Nodes=n[1-2]")
            print("PartitionName=other Default=NO MaxTime=1:00:00 Nodes=x1")
        return 0
    print(f"fake slurm: unknown command {CMD}", file=sys.stderr)
    return 2


sys.exit(main())
