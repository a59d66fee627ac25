//! What this machine offers: CPUs (the daemon's own affinity mask), memory (physical, capped
//! by a memory limit on the daemon's own cgroup) and GPUs (`nvidia-smi`), where its cgroup
//! hierarchies are mounted, and how memory limits can be enforced here.

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

/// Detects CPUs (those this process may use), memory (physical, or less where this process's
/// cgroup has a memory limit) and NVIDIA GPUs (`nvidia-smi`, when present).
pub fn detect() -> Machine {
    let physical = sysinfo::System::new().map_or(0, |mut sys| {
        sys.refresh_memory();
        sys.total_memory() / (1024 * 1024)
    });
    let mem_mb = match cgroup_mem_limit_mb() {
        Some(l) if physical == 0 || l < physical => l,
        _ => physical,
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    Machine {
        cpus,
        mem_mb,
        gpus: detect_gpus(),
    }
}

/// The CPU ids this process may run on (its affinity mask, `sched_getaffinity`), ascending:
/// what the daemon hands out. Where the mask cannot be read, `0..available_parallelism`.
pub fn cpu_ids() -> Vec<usize> {
    use nix::sched::{CpuSet, sched_getaffinity};
    let ids: Vec<usize> = sched_getaffinity(nix::unistd::Pid::from_raw(0))
        .map(|set| {
            (0..CpuSet::count())
                .filter(|&i| set.is_set(i).unwrap_or(false))
                .collect()
        })
        .unwrap_or_default();
    if ids.is_empty() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        return (0..n).collect();
    }
    ids
}

/// Where the cgroup hierarchies are mounted (`/proc/self/mounts`) and this process's place
/// in each (`/proc/self/cgroup`).
#[derive(Clone, Debug, Default)]
pub struct Cgroups {
    /// The cgroup v2 (unified) mount point: `/sys/fs/cgroup` on a pure v2 machine,
    /// `/sys/fs/cgroup/unified` on a hybrid one.
    pub v2_mount: Option<PathBuf>,
    /// Each cgroup v1 mount point and its controllers.
    pub v1_mounts: Vec<(PathBuf, Vec<String>)>,
    /// `/proc/self/cgroup`.
    own: String,
}

/// What [`settle`] found: the cgroups and memory enforcement of a process whose place does not
/// change (the runner spawner, whose forked runners inherit them instead of each reading
/// `/proc` and probing cgroup directories again).
static SETTLED: std::sync::OnceLock<(Cgroups, MemEnforcement)> = std::sync::OnceLock::new();

/// Reads this process's cgroups and memory enforcement once, for [`Cgroups::current`] and
/// [`mem_enforcement`] to answer from then on (in this process and the children it forks).
pub fn settle() {
    let _ = SETTLED.set((Cgroups::read(), mem_enforcement()));
}

impl Cgroups {
    /// This process's cgroups: as [`settle`] found them, else [`Cgroups::read`].
    pub fn current() -> Cgroups {
        match SETTLED.get() {
            Some((c, _)) => c.clone(),
            None => Cgroups::read(),
        }
    }

    /// This process's cgroups as the kernel reports them.
    pub fn read() -> Cgroups {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        Cgroups::parse(&mounts, &own, Path::new("/"))
    }

    /// From the texts of `/proc/self/mounts` and `/proc/self/cgroup`, mount points taken
    /// under `root` (a test's fake tree; `/` for real).
    pub fn parse(mounts: &str, own: &str, root: &Path) -> Cgroups {
        let mut c = Cgroups {
            own: own.to_string(),
            ..Cgroups::default()
        };
        for l in mounts.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (Some(point), Some(fstype)) = (f.get(1), f.get(2)) else {
                continue;
            };
            let point = root.join(point.trim_start_matches('/'));
            match *fstype {
                "cgroup2" => c.v2_mount = Some(point),
                "cgroup" => {
                    let opts = f.get(3).copied().unwrap_or("");
                    let ctrls = opts.split(',').map(str::to_string).collect();
                    c.v1_mounts.push((point, ctrls));
                }
                _ => {}
            }
        }
        c
    }

    /// Our own cgroup path for `controller` ("" for the v2 hierarchy), without the leading `/`.
    fn own_path(&self, controller: &str) -> Option<String> {
        self.own.lines().find_map(|l| {
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

    /// Our own cgroup directory in a hierarchy mounted at `mount`. Where the mount shows only
    /// our subtree (a container without a cgroup namespace), the mount point itself.
    fn dir(&self, mount: &Path, controller: &str) -> PathBuf {
        let own = self.own_path(controller).unwrap_or_default();
        let dir = mount.join(&own);
        if !own.is_empty() && dir.is_dir() {
            dir
        } else {
            mount.to_path_buf()
        }
    }

    /// Our own cgroup v2 directory, where v2 is mounted.
    pub fn v2_dir(&self) -> Option<PathBuf> {
        self.v2_mount.as_ref().map(|m| self.dir(m, ""))
    }

    /// Our own cgroup directory in the v1 hierarchy of `controller`, where one is mounted.
    pub fn v1_dir(&self, controller: &str) -> Option<PathBuf> {
        let (mount, _) = self.v1_mount(controller)?;
        Some(self.dir(mount, controller))
    }

    fn v1_mount(&self, controller: &str) -> Option<&(PathBuf, Vec<String>)> {
        self.v1_mounts
            .iter()
            .find(|(_, c)| c.iter().any(|c| c == controller))
    }

    /// The memory limit on our cgroup, bytes: the smallest `memory.max` (v2) or
    /// `memory.limit_in_bytes` (v1) from our cgroup up to its hierarchy's root.
    pub fn mem_limit_bytes(&self) -> Option<u64> {
        let mut limits = Vec::new();
        if let (Some(m), Some(d)) = (&self.v2_mount, self.v2_dir()) {
            limits.extend(limit_up(m, &d, "memory.max"));
        }
        if let (Some((m, _)), Some(d)) = (self.v1_mount("memory"), self.v1_dir("memory")) {
            limits.extend(limit_up(m, &d, "memory.limit_in_bytes"));
        }
        limits.into_iter().min()
    }
}

/// The smallest limit in `file` from `dir` up to `mount`; "max" and v1's "unlimited" (close
/// to 2^63) are none.
fn limit_up(mount: &Path, dir: &Path, file: &str) -> Option<u64> {
    let mut best: Option<u64> = None;
    let mut d = Some(dir);
    while let Some(cur) = d {
        if let Ok(text) = std::fs::read_to_string(cur.join(file))
            && let Ok(v) = text.trim().parse::<u64>()
            && v < (1 << 62)
        {
            best = Some(best.map_or(v, |b| b.min(v)));
        }
        if cur == mount {
            break;
        }
        d = cur.parent().filter(|p| p.starts_with(mount));
    }
    best
}

/// The memory limit on this process's cgroup, MB (see [`Cgroups::mem_limit_bytes`]).
pub fn cgroup_mem_limit_mb() -> Option<u64> {
    Cgroups::read().mem_limit_bytes().map(|b| b >> 20)
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
    /// The proportional set size (PSS) of the job's processes, polled.
    PssPolling { why: String },
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
            MemEnforcement::PssPolling { why } => format!(
                "PSS polling (/proc/PID/smaps_rollup, summed over all the job's processes) every 100 ms (kill → OUT_OF_MEMORY); no usable memory cgroup: {why}"
            ),
        }
    }
}

/// Whether a child cgroup can be created under `base` (tried, then removed), and whether it
/// has `cgroup.kill` (cgroup v2 on Linux ≥ 5.14).
pub(super) fn can_create_under(base: &Path) -> Result<bool, String> {
    let probe = base.join(format!("mini_slurm_probe_{}", std::process::id()));
    std::fs::create_dir(&probe)
        .map_err(|e| format!("cannot create cgroups in {}: {e}", base.display()))?;
    let kill = probe.join("cgroup.kill").exists();
    let _ = std::fs::remove_dir(&probe);
    Ok(kill)
}

/// Whether cgroups are disabled (`MINI_SLURM_NO_CGROUP=1` in the scheduler's environment).
pub fn cgroups_disabled() -> bool {
    std::env::var_os("MINI_SLURM_NO_CGROUP").is_some_and(|v| v == "1")
}

/// How this process can limit a job's memory: a cgroup v2 or v1 memory controller it may
/// create cgroups in, else PSS polling. `MINI_SLURM_NO_CGROUP=1` forces the fallback.
pub fn mem_enforcement() -> MemEnforcement {
    if let Some((_, m)) = SETTLED.get() {
        return m.clone();
    }
    if cgroups_disabled() {
        return MemEnforcement::PssPolling {
            why: "disabled by MINI_SLURM_NO_CGROUP=1".into(),
        };
    }
    let cg = Cgroups::read();
    let mut why = Vec::new();
    // cgroup v2: the memory controller enabled for our cgroup's children.
    match cg.v2_dir() {
        Some(base) => {
            let sub =
                std::fs::read_to_string(base.join("cgroup.subtree_control")).unwrap_or_default();
            if !sub.split_whitespace().any(|c| c == "memory") {
                why.push(format!(
                    "cgroup v2 memory controller not enabled for the children of {}",
                    base.display()
                ));
            } else {
                match can_create_under(&base) {
                    Ok(_) => return MemEnforcement::CgroupV2 { base },
                    Err(e) => why.push(e),
                }
            }
        }
        None => why.push("no cgroup v2 hierarchy".to_string()),
    }
    // cgroup v1: a mounted memory hierarchy.
    match cg.v1_dir("memory") {
        Some(base) => match can_create_under(&base) {
            Ok(_) => return MemEnforcement::CgroupV1 { base },
            Err(e) => why.push(e),
        },
        None => why.push("no cgroup v1 memory hierarchy".to_string()),
    }
    MemEnforcement::PssPolling {
        why: why.join("; "),
    }
}

/// The name of the cgroups job `id`'s runner (pid `runner`) makes for it, in every hierarchy.
pub fn cgroup_name(id: i64, runner: u32) -> String {
    format!("{CGROUP_PREFIX}{id}_{runner}")
}

/// How the names of job cgroups start: the daemon empties and removes only cgroups named so.
pub const CGROUP_PREFIX: &str = "mini_slurm_job_";

/// A job's own memory cgroup.
#[derive(Debug)]
pub struct JobCgroup {
    pub dir: PathBuf,
    pub v2: bool,
}

impl JobCgroup {
    /// Creates `base/`[`cgroup_name`] limited to `bytes`.
    pub fn create(e: &MemEnforcement, id: i64, bytes: u64) -> Option<JobCgroup> {
        let (base, v2) = match e {
            MemEnforcement::CgroupV2 { base } => (base, true),
            MemEnforcement::CgroupV1 { base } => (base, false),
            MemEnforcement::PssPolling { .. } => return None,
        };
        let dir = base.join(cgroup_name(id, std::process::id()));
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
        remove_cgroup(&self.dir);
    }
}

/// Removes an (empty) cgroup directory, retrying for up to 200 ms while its last processes
/// exit; true once it is gone.
pub fn remove_cgroup(dir: &Path) -> bool {
    for _ in 0..20 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
    false
}

/// Every process (from /proc): its pid and the fields of /proc/PID/stat after the command
/// name (`f[0]` state, `f[1]` ppid, `f[2]` pgrp, ...).
pub(super) fn each_process(mut each: impl FnMut(i32, &[&str])) {
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
        let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        each(pid, &f);
    }
}

/// The processes whose process group is `pgid`, as [`each_process`] gives them.
fn group_members(pgid: i32, mut each: impl FnMut(i32, &[&str])) {
    each_process(|pid, f| {
        if f.get(2).and_then(|p| p.parse::<i32>().ok()) == Some(pgid) {
            each(pid, f);
        }
    });
}

/// The CPU set of CPU ids.
pub fn cpu_set(cpus: &[usize]) -> nix::sched::CpuSet {
    let mut set = nix::sched::CpuSet::new();
    for &c in cpus {
        let _ = set.set(c);
    }
    set
}

/// Pins every thread of every process in group `pgid` to `cpus`; returns how many threads
/// were pinned, or why one could not be (a thread that exited meanwhile is no failure). (A
/// running job's affinity changes when an elastic job is resized.) The group is scanned again
/// until a scan finds no thread not pinned before, so threads and processes forked during a
/// scan (with the old set) are caught; at most five scans.
pub fn set_group_affinity(pgid: i32, cpus: &[usize]) -> Result<usize, String> {
    let set = cpu_set(cpus);
    let mut pinned: std::collections::BTreeSet<i32> = std::collections::BTreeSet::new();
    let mut error = None;
    for _ in 0..5 {
        let before = pinned.len();
        group_members(pgid, |pid, _| {
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                return;
            };
            for t in tasks.flatten() {
                let Some(tid) = t.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                    continue;
                };
                if pinned.contains(&tid) {
                    continue;
                }
                match nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(tid), &set) {
                    Ok(()) => {
                        pinned.insert(tid);
                    }
                    Err(nix::errno::Errno::ESRCH) => {}
                    Err(e) => error = Some(format!("thread {tid} of process {pid}: {e}")),
                }
            }
        });
        if pinned.len() == before {
            break;
        }
    }
    match error {
        Some(e) => Err(format!(
            "cannot pin to CPUs {}: {e}",
            super::syntax::cpu_list(cpus)
        )),
        None => Ok(pinned.len()),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_mounts_own_dirs_and_memory_limits() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let mounts = "tmpfs /sys/fs/cgroup tmpfs rw 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
";
        let own = "8:pids:/
4:memory:/box/me
0::/
";
        let mem = r.join("sys/fs/cgroup/memory");
        std::fs::create_dir_all(mem.join("box/me")).unwrap();
        std::fs::create_dir_all(r.join("sys/fs/cgroup/unified")).unwrap();
        let write = |p: PathBuf, v: &str| std::fs::write(p, v).unwrap();
        write(mem.join("memory.limit_in_bytes"), "9223372036854771712\n");
        write(mem.join("box/memory.limit_in_bytes"), "2147483648\n");
        write(
            mem.join("box/me/memory.limit_in_bytes"),
            "9223372036854771712\n",
        );
        let cg = Cgroups::parse(mounts, own, r);
        assert_eq!(cg.v2_mount, Some(r.join("sys/fs/cgroup/unified")));
        assert_eq!(cg.v2_dir(), Some(r.join("sys/fs/cgroup/unified")));
        assert_eq!(cg.v1_dir("memory"), Some(mem.join("box/me")));
        assert_eq!(cg.v1_dir("pids"), Some(r.join("sys/fs/cgroup/pids")));
        assert_eq!(cg.v1_dir("freezer"), None);
        // The parent's limit holds for us.
        assert_eq!(cg.mem_limit_bytes(), Some(2 << 30));
        // A v2 memory.max below it wins; "max" is no limit.
        write(r.join("sys/fs/cgroup/unified/memory.max"), "max\n");
        assert_eq!(cg.mem_limit_bytes(), Some(2 << 30));
        write(r.join("sys/fs/cgroup/unified/memory.max"), "1073741824\n");
        assert_eq!(cg.mem_limit_bytes(), Some(1 << 30));
        // A mount that shows only our subtree: our directory is the mount point.
        let cg = Cgroups::parse(mounts, "4:memory:/elsewhere\n0::/\n", r);
        assert_eq!(cg.v1_dir("memory"), Some(mem.clone()));
    }

    #[test]
    fn cpu_ids_are_this_process_mask() {
        let ids = cpu_ids();
        assert!(
            !ids.is_empty() && ids.windows(2).all(|w| w[0] < w[1]),
            "{ids:?}"
        );
        let allowed = std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                l.strip_prefix("Cpus_allowed_list:")
                    .map(|v| v.trim().to_string())
            });
        if let Some(list) = allowed {
            assert_eq!(super::super::syntax::cpu_list(&ids), list);
        }
    }
}
