//! Containment: every process a job starts ends with the job — at its completion, a
//! cancellation, its time limit, or the death of its supervisor.
//!
//! Three mechanisms, strongest first; docs/live.md says which applies on which machine:
//!
//! 1. **A cgroup of the job's own** ([`Containment`], detected per machine): cgroup v2 where a
//!    child of the daemon's own v2 cgroup can be created (pure v2 at `/sys/fs/cgroup`, or the
//!    hybrid's `/sys/fs/cgroup/unified`), emptied with `cgroup.kill` (Linux ≥ 5.14); else a
//!    writable v1 hierarchy (`pids`, `memory`, `freezer`), emptied by sending SIGKILL to every
//!    pid in `cgroup.procs` until it is empty. A process cannot leave a cgroup unless it may
//!    write another cgroup's `cgroup.procs` (root can). The runner creates the cgroup before
//!    the job, records its path in the job's row (so the daemon can empty it when the runner
//!    is dead) and the job joins it between fork and exec.
//! 2. **The runner is a child subreaper** (`PR_SET_CHILD_SUBREAPER`), always: a process of
//!    the job that daemonizes (double fork, `setsid`, `nohup ... &`) is re-parented to the
//!    runner instead of init, so the runner's descendants are exactly the job's processes. At
//!    the job's end the runner kills and reaps them until it has no child left.
//! 3. **When the runner itself died** (SIGKILL, the OOM killer) its descendants go to init.
//!    The daemon, before it gives the job's CPUs to another job, empties the job's recorded
//!    cgroups, kills the job's process group and — best effort — every process whose
//!    environment (`/proc/PID/environ`, as it was at exec) holds this job's
//!    `MINI_SLURM_JOB_ID` and `MINI_SLURM_HOME` ([`kill_remains`]). Without a cgroup, a process
//!    that both left the job's process group and replaced its environment escapes.

use super::machine::{
    self, CGROUP_PREFIX, Cgroups, JobCgroup, can_create_under, cgroup_name, each_process,
    remove_cgroup, same_process_alive,
};
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long killing what is left of a job may take before it is given up (a fork bomb in a
/// v1 cgroup, a process stuck in uninterruptible sleep).
const PATIENCE: Duration = Duration::from_secs(5);

/// How the processes of a job are tracked and killed on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Containment {
    /// A cgroup v2 per job under `base`; `kill`: emptied with `cgroup.kill`, else by
    /// signalling `cgroup.procs` until empty.
    CgroupV2 { base: PathBuf, kill: bool },
    /// A cgroup v1 per job under `base`, emptied by signalling `cgroup.procs` until empty.
    CgroupV1 { base: PathBuf },
    /// No cgroup can be made: the runner's descendants (it is a child subreaper), and the
    /// environment sweep when the runner died.
    Subreaper { why: String },
}

impl Containment {
    pub fn describe(&self) -> String {
        const REAPER: &str = "the job's runner is a child subreaper that kills and reaps every descendant when the job ends";
        match self {
            Containment::CgroupV2 { base, kill } => format!(
                "a cgroup v2 per job under {} emptied with {} (also when the runner dies); {REAPER}",
                base.display(),
                if *kill {
                    "cgroup.kill"
                } else {
                    "SIGKILL to cgroup.procs until empty"
                }
            ),
            Containment::CgroupV1 { base } => format!(
                "a cgroup v1 per job under {} emptied with SIGKILL to cgroup.procs until empty (also when the runner dies); {REAPER}",
                base.display()
            ),
            Containment::Subreaper { why } => format!(
                "{REAPER}; if the runner dies, the job's process group and the processes whose environment holds its MINI_SLURM_JOB_ID and MINI_SLURM_HOME are killed (best effort); no usable cgroup: {why}"
            ),
        }
    }
}

/// Where a job's tracking cgroup may go, in order of preference: our own cgroup v2, then our
/// own cgroup in the v1 `pids`, `memory` and `freezer` hierarchies (`true`: v2).
fn tracking_bases(cg: &Cgroups) -> Vec<(PathBuf, bool)> {
    let mut out: Vec<(PathBuf, bool)> = cg.v2_dir().map(|d| (d, true)).into_iter().collect();
    for ctrl in ["pids", "memory", "freezer"] {
        out.extend(cg.v1_dir(ctrl).map(|d| (d, false)));
    }
    out
}

/// How this process can contain a job: a cgroup v2 it may create children of, else a
/// writable cgroup v1 hierarchy, else the subreaper alone. `MINI_SLURM_NO_CGROUP=1` forces the
/// last.
pub fn containment() -> Containment {
    if machine::cgroups_disabled() {
        return Containment::Subreaper {
            why: "disabled by MINI_SLURM_NO_CGROUP=1".into(),
        };
    }
    let bases = tracking_bases(&Cgroups::read());
    let mut why = Vec::new();
    for (base, v2) in &bases {
        match can_create_under(base) {
            Ok(kill) if *v2 => {
                return Containment::CgroupV2 {
                    base: base.clone(),
                    kill,
                };
            }
            Ok(_) => return Containment::CgroupV1 { base: base.clone() },
            Err(e) => why.push(e),
        }
    }
    if bases.is_empty() {
        why.push("no cgroup v2, nor v1 pids, memory or freezer hierarchy".to_string());
    }
    Containment::Subreaper {
        why: why.join("; "),
    }
}

/// A cgroup the job joins between fork and exec.
#[derive(Clone, Debug)]
pub struct Join {
    pub dir: PathBuf,
    /// The job must not run outside it (its memory limit); a tracking cgroup the job could not
    /// join leaves the subreaper to contain it.
    pub required: bool,
}

/// One job's containment, as its runner holds it: the runner's pid (the root of the job's
/// process tree), the job's tracking cgroup and its memory cgroup (which may be the same).
#[derive(Debug)]
pub struct JobContainer {
    runner: i32,
    tracking: Option<PathBuf>,
    memory: Option<JobCgroup>,
}

impl JobContainer {
    /// Makes the runner a child subreaper and creates the job's cgroups: a tracking cgroup
    /// where [`containment`] allows one, and a memory cgroup limited to `mem_bytes` (when
    /// non-zero) where [`machine::mem_enforcement`] allows one.
    pub fn create(job: i64, mem_bytes: u64) -> JobContainer {
        let _ = nix::sys::prctl::set_child_subreaper(true);
        let runner = std::process::id();
        let memory = (mem_bytes > 0)
            .then(|| JobCgroup::create(&machine::mem_enforcement(), job, mem_bytes))
            .flatten();
        // The first base where the cgroup can be made ([`containment`] without its probe).
        let bases = match machine::cgroups_disabled() {
            true => Vec::new(),
            false => tracking_bases(&Cgroups::current()),
        };
        let tracking = bases.into_iter().find_map(|(base, _)| {
            let dir = base.join(cgroup_name(job, runner));
            let made =
                memory.as_ref().is_some_and(|m| m.dir == dir) || std::fs::create_dir(&dir).is_ok();
            made.then_some(dir)
        });
        JobContainer {
            runner: runner as i32,
            tracking,
            memory,
        }
    }

    /// The cgroups the job joins, each once.
    pub fn joins(&self) -> Vec<Join> {
        let mut out: Vec<Join> = Vec::new();
        if let Some(m) = &self.memory {
            out.push(Join {
                dir: m.dir.clone(),
                required: true,
            });
        }
        if let Some(t) = &self.tracking
            && out.iter().all(|j| j.dir != *t)
        {
            out.push(Join {
                dir: t.clone(),
                required: false,
            });
        }
        out
    }

    /// Whether a cgroup limits the job's memory.
    pub fn has_memory_cgroup(&self) -> bool {
        self.memory.is_some()
    }

    /// The job's processes now: the members of its cgroups and the runner's descendants.
    pub fn pids(&self) -> BTreeSet<i32> {
        let mut set: BTreeSet<i32> = self
            .joins()
            .iter()
            .flat_map(|j| cgroup_procs(&j.dir))
            .collect();
        set.extend(descendants(self.runner));
        set.remove(&self.runner);
        set
    }

    /// Sends `sig` to every process of the job, its process group `pgid` first.
    pub fn signal(&self, pgid: i32, sig: Signal) {
        if pgid > 0 {
            let _ = killpg(Pid::from_raw(pgid), sig);
        }
        for p in self.pids() {
            let _ = kill(Pid::from_raw(p), sig);
        }
    }

    /// The proportional set size of the job's processes, kB: pages shared between them (a
    /// forked worker's copy-on-write memory) count once in the sum, not once per process.
    pub fn pss_kb(&self) -> u64 {
        self.pids().into_iter().map(pss_kb).sum()
    }

    /// Kills everything left of the job and reaps it, once its main process has ended: the
    /// process group, the cgroups until they are empty, the runner's descendants until the
    /// runner has no child left (at most `PATIENCE`).
    pub fn kill_all(&self, pgid: i32) {
        if pgid > 0 {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
        let until = Instant::now() + PATIENCE;
        for j in self.joins() {
            empty_cgroup(&j.dir, until, true);
        }
        loop {
            reap_children();
            let left = descendants(self.runner);
            if left.is_empty() || Instant::now() >= until {
                break;
            }
            for p in left {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        reap_children();
    }

    /// Whether the kernel's OOM killer killed something in the job's memory cgroup.
    pub fn oom_killed(&self) -> bool {
        self.memory.as_ref().is_some_and(JobCgroup::oom_killed)
    }

    /// Removes the job's (empty) cgroups.
    pub fn remove(&self) {
        for j in self.joins() {
            remove_cgroup(&j.dir);
        }
    }
}

/// The pids in a cgroup (`cgroup.procs`; none if it cannot be read).
fn cgroup_procs(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Kills every process in cgroup `dir` (`cgroup.kill` where it exists, SIGKILL to
/// `cgroup.procs` until empty either way) until it is empty or `until`; `reap`: the caller is
/// the processes' subreaper and reaps them. Returns the pids it signalled.
fn empty_cgroup(dir: &Path, until: Instant, reap: bool) -> Vec<i32> {
    let kill_file = dir.join("cgroup.kill");
    if kill_file.exists() {
        let _ = std::fs::write(&kill_file, "1");
    }
    let mut signalled = Vec::new();
    loop {
        let procs = cgroup_procs(dir);
        if procs.is_empty() || Instant::now() >= until {
            break;
        }
        for p in procs {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            signalled.push(p);
        }
        if reap {
            reap_children();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    signalled
}

/// Reaps every child that has ended (without blocking).
fn reap_children() {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

/// The descendants of process `root` (zombies included), in no useful order: from the
/// `children` files of each process's threads (`/proc/PID/task/TID/children`), where the
/// kernel has them, else from a scan of every process's parent. Processes forked or re-parented
/// during the walk may be missed; callers that must find everything walk again.
pub fn descendants(root: i32) -> Vec<i32> {
    if !Path::new(&format!("/proc/{root}/task/{root}/children")).exists() {
        return descendants_by_scan(root);
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let text = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for c in text
                .split_whitespace()
                .filter_map(|c| c.parse::<i32>().ok())
            {
                if c != root && !out.contains(&c) {
                    out.push(c);
                    todo.push(c);
                }
            }
        }
    }
    out
}

/// [`descendants`] from a scan of every process's parent.
fn descendants_by_scan(root: i32) -> Vec<i32> {
    let mut children: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    each_process(|pid, f| {
        if let Some(ppid) = f.get(1).and_then(|p| p.parse::<i32>().ok()) {
            children.entry(ppid).or_default().push(pid);
        }
    });
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for &c in children.get(&p).map_or(&[][..], Vec::as_slice) {
            if c != root && !out.contains(&c) {
                out.push(c);
                todo.push(c);
            }
        }
    }
    out
}

/// A process's proportional set size, kB (`Pss:` of /proc/PID/smaps_rollup, or summed over
/// /proc/PID/smaps before Linux 4.14); 0 for a process that is gone.
pub fn pss_kb(pid: i32) -> u64 {
    let sum = |text: String| -> u64 {
        text.lines()
            .filter_map(|l| l.strip_prefix("Pss:"))
            .filter_map(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .sum()
    };
    match std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
        Ok(t) => sum(t),
        Err(_) => std::fs::read_to_string(format!("/proc/{pid}/smaps")).map_or(0, sum),
    }
}

/// The processes (other than this one) whose environment holds `MINI_SLURM_JOB_ID=<job>`
/// and `MINI_SLURM_HOME=<home>`, as the runner set them for the job.
pub fn marked_processes(home: &Path, job: i64) -> Vec<i32> {
    let id = format!("MINI_SLURM_JOB_ID={job}");
    let mut home_var = b"MINI_SLURM_HOME=".to_vec();
    home_var.extend_from_slice(home.as_os_str().as_bytes());
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    each_process(|pid, _| {
        if pid == me {
            return;
        }
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            return;
        };
        let (mut has_id, mut has_home) = (false, false);
        for v in env.split(|&b| b == 0) {
            has_id |= v == id.as_bytes();
            has_home |= v == home_var.as_slice();
        }
        if has_id && has_home {
            out.push(pid);
        }
    });
    out
}

/// What is left of job `job` whose runner has died: empties and removes its recorded
/// cgroups (only directories named as the runner names them), kills its process group
/// `pgid` if a process there still carries the job's marker, and every process carrying the
/// marker ([`marked_processes`]); waits (at most `PATIENCE`) until they are gone. Returns
/// how many processes it signalled.
pub fn kill_remains(home: &Path, job: i64, pgid: Option<i32>, cgroups: &[PathBuf]) -> usize {
    let until = Instant::now() + PATIENCE;
    let ours = |d: &&PathBuf| {
        d.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(&format!("{CGROUP_PREFIX}{job}_")))
    };
    let mut signalled: BTreeSet<i32> = BTreeSet::new();
    for d in cgroups.iter().filter(ours) {
        signalled.extend(empty_cgroup(d, until, false));
    }
    let marked = marked_processes(home, job);
    if let Some(g) = pgid.filter(|&g| g > 0) {
        let mut members = Vec::new();
        each_process(|pid, f| {
            if f.get(2).and_then(|p| p.parse::<i32>().ok()) == Some(g) {
                members.push(pid);
            }
        });
        if members.iter().any(|m| marked.contains(m)) {
            let _ = killpg(Pid::from_raw(g), Signal::SIGKILL);
            signalled.extend(members);
        }
    }
    for &p in &marked {
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        signalled.insert(p);
    }
    while Instant::now() < until && signalled.iter().any(|&p| same_process_alive(p, None)) {
        std::thread::sleep(Duration::from_millis(5));
    }
    for d in cgroups.iter().filter(ours) {
        remove_cgroup(d);
    }
    signalled.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_each_mechanism() {
        let v2 = Containment::CgroupV2 {
            base: "/sys/fs/cgroup/unified".into(),
            kill: true,
        };
        assert!(v2.describe().contains("cgroup.kill"), "{}", v2.describe());
        let r = Containment::Subreaper { why: "x".into() };
        assert!(r.describe().contains("subreaper") && r.describe().ends_with("x"));
    }

    #[test]
    fn finds_descendants_pss_and_markers() {
        let home = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .env("MINI_SLURM_JOB_ID", "424242")
            .env("MINI_SLURM_HOME", home.path())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let t = Instant::now();
        let mut d = Vec::new();
        while d.len() < 2 && t.elapsed() < Duration::from_secs(5) {
            d = descendants(std::process::id() as i32);
            d.retain(|&p| p == pid || descendants(pid).contains(&p));
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(d.len(), 2, "the shell and its sleep: {d:?}");
        let mut scanned = descendants_by_scan(std::process::id() as i32);
        scanned.retain(|p| d.contains(p));
        scanned.sort_unstable();
        assert!(pss_kb(pid) > 0);
        let mut marked = marked_processes(home.path(), 424242);
        marked.sort_unstable();
        d.sort_unstable();
        assert_eq!(marked, d);
        assert_eq!(scanned, d);
        assert!(marked_processes(home.path(), 42424).is_empty());
        let n = kill_remains(home.path(), 424242, None, &[]);
        assert_eq!(n, 2);
        let _ = child.wait();
        assert!(marked_processes(home.path(), 424242).is_empty());
    }
}
