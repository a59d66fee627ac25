//! What this machine offers: CPUs, memory and GPUs (`nvidia-smi`), and how limits can be
//! enforced here.

use std::path::Path;
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
    /// cgroup v2 with the memory controller delegated: `memory.max` per job.
    CgroupV2,
    /// RLIMIT_AS as a backstop plus RSS polling of the job's process group.
    RlimitAndPolling { why: String },
}

impl MemEnforcement {
    pub fn describe(&self) -> String {
        match self {
            MemEnforcement::CgroupV2 => "cgroup v2 memory controller available".into(),
            MemEnforcement::RlimitAndPolling { why } => format!(
                "RSS polling of the job's process group every 100 ms (kill → OUT_OF_MEMORY) with RLIMIT_AS = 2 × limit + 512 MB as a backstop; cgroup v2 not used: {why}"
            ),
        }
    }
}

/// Whether this process could give jobs their own cgroup with a memory limit.
pub fn mem_enforcement() -> MemEnforcement {
    let root = Path::new("/sys/fs/cgroup");
    let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    if !controllers.split_whitespace().any(|c| c == "memory") {
        return MemEnforcement::RlimitAndPolling {
            why: if controllers.is_empty() {
                "no cgroup v2 hierarchy at /sys/fs/cgroup".into()
            } else {
                format!(
                    "the memory controller is not enabled (controllers: {})",
                    controllers.trim()
                )
            },
        };
    }
    // The controller exists; it must also be delegated to our own cgroup.
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let rel = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("/")
        .trim_start_matches('/')
        .to_string();
    let dir = root.join(rel);
    let sub = std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
    if sub.split_whitespace().any(|c| c == "memory") {
        MemEnforcement::CgroupV2
    } else {
        MemEnforcement::RlimitAndPolling {
            why: format!(
                "the memory controller is not delegated to {} (cgroup.subtree_control)",
                dir.display()
            ),
        }
    }
}

/// Pids whose process group is `pgid` (from /proc), with their resident memory in kB.
pub fn group_rss_kb(pgid: i32) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut total = 0;
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
        // f[2] = pgrp, f[21] = rss in pages
        if f.get(2).and_then(|p| p.parse::<i32>().ok()) == Some(pgid) {
            let pages: u64 = f.get(21).and_then(|r| r.parse().ok()).unwrap_or(0);
            total += pages * page_kb();
        }
    }
    total
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
