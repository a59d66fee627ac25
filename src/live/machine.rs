//! What this machine offers: CPUs, memory and GPUs (`nvidia-smi`), and how limits can be
//! enforced here.

use crate::model::cluster::ClusterError;
use crate::model::{Cluster, Node};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The machine as the daemon sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    pub cpus: u32,
    pub mem_mb: u64,
    /// GPU indices as `nvidia-smi` numbers them.
    pub gpus: Vec<String>,
}

/// Detects CPUs and memory (sysinfo) and NVIDIA GPUs (`nvidia-smi`, when present).
pub fn detect() -> Machine {
    let mem_mb = sysinfo::System::new().map_or(0, |mut sys| {
        sys.refresh_memory();
        sys.total_memory() / (1024 * 1024)
    });
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    Machine {
        cpus,
        mem_mb,
        gpus: detect_gpus(),
    }
}

/// This machine's name (`/proc/sys/kernel/hostname`, else `localhost`).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The cluster of live mode today: this machine as one node with `cpus` CPUs, `mem_mb` MB and
/// `gpus` GPUs, in the default partition.
pub fn local_cluster(cpus: u32, mem_mb: u64, gpus: u32) -> Result<Cluster, ClusterError> {
    let node = Node {
        name: hostname(),
        cpus,
        mem_mb,
        gpus,
    };
    Cluster::new(vec![node], Vec::new(), Vec::new())
}

/// GPU indices from `nvidia-smi --query-gpu=index --format=csv,noheader`; none when the tool
/// is missing or fails.
pub fn detect_gpus() -> Vec<String> {
    let out = Command::new("nvidia-smi")
        .args(["--query-gpu=index,name", "--format=csv,noheader"])
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split(',').next())
            .map(|i| i.trim().to_string())
            .filter(|i| !i.is_empty())
            .collect(),
        _ => Vec::new(),
    }
}

/// How memory limits are enforced on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemEnforcement {
    /// cgroup v2 with the memory controller delegated: `memory.max` per job, under `base`.
    CgroupV2 { base: PathBuf },
    /// cgroup v1's memory controller: `memory.limit_in_bytes` per job, under `base`.
    CgroupV1 { base: PathBuf },
    /// RLIMIT_AS as a backstop plus RSS polling of the job's process group.
    RlimitAndPolling { why: String },
}

impl MemEnforcement {
    pub fn describe(&self) -> String {
        match self {
            MemEnforcement::CgroupV2 { base } => format!(
                "cgroup v2 memory.max per job under {} (kernel OOM kill → OUT_OF_MEMORY)",
                base.display()
            ),
            MemEnforcement::CgroupV1 { base } => format!(
                "cgroup v1 memory.limit_in_bytes per job under {} (kernel OOM kill → OUT_OF_MEMORY)",
                base.display()
            ),
            MemEnforcement::RlimitAndPolling { why } => format!(
                "RSS polling of the job's process group every 100 ms (kill → OUT_OF_MEMORY) with RLIMIT_AS = 2 × limit + 512 MB as a backstop; no usable memory cgroup: {why}"
            ),
        }
    }
}

/// Our own cgroup path for `controller` ("" for the v2 hierarchy) from /proc/self/cgroup.
fn own_cgroup(controller: &str) -> Option<String> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    own.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        let hit = if controller.is_empty() {
            ctrls.is_empty()
        } else {
            ctrls.split(',').any(|c| c == controller)
        };
        hit.then(|| path.trim_start_matches('/').to_string())
    })
}

/// Whether a child cgroup can be created under `base` (tried, then removed).
fn can_create_under(base: &Path) -> Result<(), String> {
    let probe = base.join(format!("mini_slurm_probe_{}", std::process::id()));
    std::fs::create_dir(&probe)
        .map_err(|e| format!("cannot create cgroups in {}: {e}", base.display()))?;
    let _ = std::fs::remove_dir(&probe);
    Ok(())
}

/// How this process can limit a job's memory: a cgroup v2 or v1 memory controller it may
/// create cgroups in, else RLIMIT_AS and RSS polling.
/// `MINI_SLURM_NO_CGROUP=1` in the scheduler's environment forces the fallback.
pub fn mem_enforcement() -> MemEnforcement {
    if std::env::var_os("MINI_SLURM_NO_CGROUP").is_some_and(|v| v == "1") {
        return MemEnforcement::RlimitAndPolling {
            why: "disabled by MINI_SLURM_NO_CGROUP=1".into(),
        };
    }
    let root = Path::new("/sys/fs/cgroup");
    let mut why = Vec::new();
    // cgroup v2: the memory controller enabled for our cgroup's children.
    let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    if controllers.split_whitespace().any(|c| c == "memory") {
        let base = root.join(own_cgroup("").unwrap_or_default());
        let sub = std::fs::read_to_string(base.join("cgroup.subtree_control")).unwrap_or_default();
        if !sub.split_whitespace().any(|c| c == "memory") {
            why.push(format!(
                "cgroup v2 memory controller not delegated to {}",
                base.display()
            ));
        } else {
            match can_create_under(&base) {
                Ok(()) => return MemEnforcement::CgroupV2 { base },
                Err(e) => why.push(e),
            }
        }
    } else {
        why.push("no cgroup v2 memory controller".to_string());
    }
    // cgroup v1: a mounted memory hierarchy.
    let v1 = root.join("memory");
    if v1.join("memory.limit_in_bytes").exists() {
        let base = v1.join(own_cgroup("memory").unwrap_or_default());
        match can_create_under(&base) {
            Ok(()) => return MemEnforcement::CgroupV1 { base },
            Err(e) => why.push(e),
        }
    } else {
        why.push("no cgroup v1 memory hierarchy".to_string());
    }
    MemEnforcement::RlimitAndPolling {
        why: why.join("; "),
    }
}

/// A job's own memory cgroup.
#[derive(Debug)]
pub struct JobCgroup {
    pub dir: PathBuf,
    pub v2: bool,
}

impl JobCgroup {
    /// Creates `base/mini_slurm_job_<id>_<pid>` limited to `bytes`.
    pub fn create(e: &MemEnforcement, id: i64, bytes: u64) -> Option<JobCgroup> {
        let (base, v2) = match e {
            MemEnforcement::CgroupV2 { base } => (base, true),
            MemEnforcement::CgroupV1 { base } => (base, false),
            MemEnforcement::RlimitAndPolling { .. } => return None,
        };
        let dir = base.join(format!("mini_slurm_job_{id}_{}", std::process::id()));
        std::fs::create_dir(&dir).ok()?;
        let cg = JobCgroup { dir, v2 };
        let ok = if v2 {
            let _ = std::fs::write(cg.dir.join("memory.swap.max"), "0");
            std::fs::write(cg.dir.join("memory.max"), bytes.to_string()).is_ok()
        } else {
            let ok =
                std::fs::write(cg.dir.join("memory.limit_in_bytes"), bytes.to_string()).is_ok();
            // Swap counts too where the kernel accounts it.
            let _ = std::fs::write(
                cg.dir.join("memory.memsw.limit_in_bytes"),
                bytes.to_string(),
            );
            ok
        };
        if ok {
            Some(cg)
        } else {
            cg.remove();
            None
        }
    }

    /// The `cgroup.procs` file a process writes its pid to, to join.
    pub fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// Whether the kernel's OOM killer killed something in this cgroup.
    pub fn oom_killed(&self) -> bool {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        let text = std::fs::read_to_string(self.dir.join(file)).unwrap_or_default();
        let count = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        if count("oom_kill ") > 0 {
            return true;
        }
        // Older v1 kernels: no oom_kill counter; the limit was hit.
        !self.v2
            && std::fs::read_to_string(self.dir.join("memory.failcnt"))
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .is_some_and(|n| n > 0)
            && !text.contains("oom_kill ")
    }

    /// Removes the (empty) cgroup.
    pub fn remove(&self) {
        for _ in 0..20 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// The processes whose process group is `pgid` (from /proc): (pid, the fields of
/// /proc/PID/stat after the command name).
fn group_members(pgid: i32, mut each: impl FnMut(i32, &[&str])) {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name (which is in parentheses and may contain spaces).
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        // f[2] = pgrp
        if f.get(2).and_then(|p| p.parse::<i32>().ok()) == Some(pgid) {
            each(pid, &f);
        }
    }
}

/// Resident memory of the processes in group `pgid`, kB.
pub fn group_rss_kb(pgid: i32) -> u64 {
    let mut total = 0;
    // f[21] = rss in pages
    group_members(pgid, |_, f| {
        let pages: u64 = f.get(21).and_then(|r| r.parse().ok()).unwrap_or(0);
        total += pages * page_kb();
    });
    total
}

/// Pins every thread of every process in group `pgid` to `cpus`; returns how many threads
/// were pinned. (A running job's affinity changes when an elastic job is resized.) The group
/// is scanned again until a scan finds no thread not pinned before, so threads and processes
/// forked during a scan (with the old set) are caught; at most five scans.
pub fn set_group_affinity(pgid: i32, cpus: &[usize]) -> usize {
    let mut set = nix::sched::CpuSet::new();
    for &c in cpus {
        let _ = set.set(c);
    }
    let mut pinned: std::collections::BTreeSet<i32> = std::collections::BTreeSet::new();
    for _ in 0..5 {
        let before = pinned.len();
        group_members(pgid, |pid, _| {
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                return;
            };
            for t in tasks.flatten() {
                if let Some(tid) = t.file_name().to_str().and_then(|n| n.parse::<i32>().ok())
                    && !pinned.contains(&tid)
                    && nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(tid), &set).is_ok()
                {
                    pinned.insert(tid);
                }
            }
        });
        if pinned.len() == before {
            break;
        }
    }
    pinned.len()
}

fn page_kb() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4, |b| (b as u64) / 1024)
}

/// A process's start time in clock ticks since boot (field 22 of /proc/PID/stat), to tell a
/// process from a later one that reused its pid.
pub fn process_start(pid: i32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether process `pid` is alive and is the one that started at `start`.
pub fn same_process_alive(pid: i32, start: Option<i64>) -> bool {
    match process_start(pid) {
        Some(s) => start.is_none_or(|x| x == s) && !is_zombie(pid),
        None => false,
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
        .unwrap_or(false)
}
