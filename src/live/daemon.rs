//! The live daemon: `run(config)` plugs a wall clock, a process executor and the SQLite store
//! into the same engine and driver loop as the simulator.

use super::db::{Db, JobRow};
use super::machine::same_process_alive;
use super::{DepKind, Home, LiveError, now_ms, parse_dependency};
use crate::driver::{self, Clock, Completion, Executor, Observer, Store};
use crate::engine::{Command, Engine};
use crate::ids::{FastMap, JobId, Names};
use crate::model::{Cluster, FinalState, JobSpec, Node, PreemptMode, Slice};
use crate::policy::{self};
use crate::sched::placement::{BestFit, Placement};
use crate::time::{Dur, Time};
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use rusqlite::params;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An estimate for jobs without a time limit: effectively unbounded.
pub const UNLIMITED: Dur = Dur(i64::MAX / 4);

/// How the daemon runs.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    pub home: Home,
    pub cpus: u32,
    pub mem_mb: u64,
    /// GPU names (nvidia-smi indices) the daemon hands out; job GPU i is `gpus[i]`.
    pub gpus: Vec<String>,
    pub policy: String,
    /// Grace between SIGTERM and SIGKILL for time limits and cancellations.
    pub kill_wait: Duration,
    /// The `mini-slurm` binary, whose `job-runner` supervises each job.
    pub runner: PathBuf,
    /// Upper bound on how long the daemon sleeps without looking at the database.
    pub max_sleep: Duration,
    /// Per-user and per-account quotas on running jobs.
    pub limits: crate::sched::limits::Limits,
    /// An accounts file (fair-share tree, QOS levels): its path and text.
    pub accounts: Option<(PathBuf, String)>,
}

/// Runs the daemon until `shutdown` is set. Jobs still running then go on under their runners.
pub fn run(cfg: &DaemonConfig, shutdown: Arc<AtomicBool>) -> Result<(), LiveError> {
    let home = &cfg.home;
    let db = home.open()?;
    let lock_path = home.lock();
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock_path)
        .map_err(|e| LiveError::io(&lock_path, e))?;
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|_| {
            LiveError::Other(format!(
                "a scheduler already runs for {} (lock {})",
                home.dir.display(),
                lock_path.display()
            ))
        })?;
    let (tx, rx) = channel::<()>();
    let sock_path = home.socket();
    let _ = std::fs::remove_file(&sock_path);
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path)
        .map_err(|e| LiveError::io(&sock_path, e))?;
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while sock.recv(&mut buf).is_ok() {
                if tx.send(()).is_err() {
                    break;
                }
            }
        });
    }
    let cluster = Cluster::new(
        vec![Node {
            name: hostname(),
            cpus: cfg.cpus,
            mem_mb: cfg.mem_mb,
            gpus: cfg.gpus.len() as u32,
        }],
        Vec::new(),
        Vec::new(),
    )
    .map_err(|e| LiveError::Other(e.to_string()))?;
    let (policy, spec) =
        policy::build(&cfg.policy).map_err(|e| LiveError::Other(format!("--policy: {e}")))?;
    let mut engine = Engine::new(
        cluster.clone(),
        Box::new(BestFit),
        policy,
        &spec.canonical(),
    );
    engine.set_want_plan(true);
    engine.set_limits(cfg.limits);
    let mut names = Names::default();
    if let Some((path, text)) = &cfg.accounts {
        let assoc = crate::config::accounts::parse(text, path, &mut names)
            .map_err(|e| LiveError::Other(e.to_string()))?;
        engine.set_associations(assoc);
    }
    for (k, v) in [
        ("cpus", cfg.cpus.to_string()),
        ("mem_mb", cfg.mem_mb.to_string()),
        ("gpus", cfg.gpus.join(",")),
        ("policy", spec.canonical()),
        ("pid", std::process::id().to_string()),
        ("started_ms", now_ms().to_string()),
        ("enforcement", super::machine::mem_enforcement().describe()),
    ] {
        db.set_meta(k, &v)
            .map_err(|e| LiveError::db(&home.db(), e))?;
    }
    let mut exec = ProcessExecutor {
        home: home.clone(),
        db: home.open()?,
        runner: cfg.runner.clone(),
        running: BTreeMap::new(),
        cpu_free: vec![true; cfg.cpus as usize],
        gpu_names: cfg.gpus.clone(),
        finished: Arc::new(Mutex::new(Vec::new())),
        wake: tx.clone(),
        kill_wait: Dur(cfg.kill_wait.as_millis() as i64),
    };
    let mut store = SqliteStore {
        db,
        home: home.clone(),
        handed: FastMap::default(),
        held: std::collections::BTreeSet::new(),
        cursor: 0,
        array_active: FastMap::default(),
        names,
        shutdown: Arc::clone(&shutdown),
        cluster,
        limits: cfg.limits,
    };
    recover(&mut store, &mut exec, &mut engine)?;
    let mut clock = WallClock {
        rx,
        max_sleep: cfg.max_sleep,
        shutdown: Arc::clone(&shutdown),
    };
    let result = driver::run(
        &mut engine,
        &mut clock,
        &mut exec,
        &mut store,
        &mut NoopObserver,
    );
    let _ = std::fs::remove_file(&sock_path);
    result.map_err(|e| LiveError::Other(format!("scheduler stopped: {e}")))
}

struct NoopObserver;
impl Observer for NoopObserver {}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// A clock on the wall: waits for a deadline, a client's datagram or a job's end.
pub struct WallClock {
    rx: Receiver<()>,
    max_sleep: Duration,
    shutdown: Arc<AtomicBool>,
}

impl Clock for WallClock {
    fn now(&self) -> Time {
        Time(now_ms())
    }
    fn wait_until(&mut self, deadline: Option<Time>) {
        if self.shutdown.load(Ordering::SeqCst) {
            return;
        }
        let mut wait = self.max_sleep;
        if let Some(d) = deadline {
            let ms = (d.0 - now_ms()).max(0) as u64;
            wait = wait.min(Duration::from_millis(ms));
        }
        if self.rx.recv_timeout(wait).is_ok() {
            while self.rx.try_recv().is_ok() {}
        }
    }
}

struct Proc {
    runner_pid: i32,
    runner_start: Option<i64>,
    /// When the time limit expires.
    deadline: Option<Time>,
    /// When to SIGKILL the job's group after SIGTERM.
    kill_at: Option<Time>,
    /// Why the daemon is stopping it (TIMEOUT, CANCELLED).
    reason: Option<FinalState>,
    cpus: Vec<usize>,
    /// Not our child (re-adopted after a restart): polled instead of waited for.
    adopted: bool,
    /// Preempted by the policy, and how.
    preempt: Option<crate::model::PreemptMode>,
    /// An elastic job: its allocation file is kept current; the signal it asked for on resizes.
    elastic: bool,
    resize_signal: Option<i32>,
    /// Resizes so far (the allocation file's `generation`).
    generation: u32,
}

/// Writes an elastic job's allocation file through a temporary name, so a job never reads a
/// half-written one.
fn write_alloc_file(path: &std::path::Path, job: JobId, cpus: &[usize], generation: u32) {
    let tmp = path.with_extension("alloc.tmp");
    let text = format!(
        "# mini-slurm: the CPUs job {job} holds now; rewritten on every resize\ncpus={}\ncpu_list={}\ngeneration={generation}\n",
        cpus.len(),
        cpu_list(cpus)
    );
    if std::fs::write(&tmp, text).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}

/// Runs each job under a `job-runner` and learns of its end from a reaper thread.
pub struct ProcessExecutor {
    home: Home,
    db: Db,
    runner: PathBuf,
    running: BTreeMap<JobId, Proc>,
    cpu_free: Vec<bool>,
    gpu_names: Vec<String>,
    finished: Arc<Mutex<Vec<JobId>>>,
    wake: Sender<()>,
    kill_wait: Dur,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("job {job}: cannot start its runner: {source}")]
    Spawn {
        job: JobId,
        #[source]
        source: std::io::Error,
    },
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
}

impl ProcessExecutor {
    fn take_cpus(&mut self, n: u32) -> Vec<usize> {
        let mut got = Vec::with_capacity(n as usize);
        for (i, f) in self.cpu_free.iter_mut().enumerate() {
            if got.len() == n as usize {
                break;
            }
            if *f {
                *f = false;
                got.push(i);
            }
        }
        got
    }

    fn spawn(
        &mut self,
        now: Time,
        job: JobId,
        alloc: &[Slice],
        limit: Option<Dur>,
    ) -> Result<(), ExecError> {
        let cpus_n: u32 = alloc.iter().map(|s| s.cpus).sum();
        let cpus = self.take_cpus(cpus_n);
        let gpus: Vec<String> = alloc
            .iter()
            .flat_map(|s| (0..64).filter(move |b| s.gpu_mask & (1u64 << b) != 0))
            .map(|b| {
                self.gpu_names
                    .get(b as usize)
                    .cloned()
                    .unwrap_or_else(|| b.to_string())
            })
            .collect();
        let id = job.0 as i64;
        let (elastic, resize_signal): (bool, Option<i32>) = self.db.conn.query_row(
            "UPDATE jobs SET cpu_list = ?1, gpu_list = ?2, alloc_cpus = ?3, job_pgid = NULL
             WHERE id = ?4 RETURNING min_cpus IS NOT NULL, resize_signal",
            params![cpu_list(&cpus), gpus.join(","), cpus_n, id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if elastic {
            write_alloc_file(&self.home.alloc_file(id), job, &cpus, 0);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.home.daemon_log())
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null());
        let child = std::process::Command::new(&self.runner)
            .args(["job-runner", "--job", &id.to_string()])
            .env("MINI_SLURM_HOME", &self.home.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|source| ExecError::Spawn { job, source })?;
        let pid = child.id() as i32;
        drop(child);
        let start = super::machine::process_start(pid);
        self.db.execute(
            "UPDATE jobs SET runner_pid = ?1, runner_start = ?2 WHERE id = ?3",
            params![pid, start, id],
        )?;
        let (finished, wake) = (Arc::clone(&self.finished), self.wake.clone());
        std::thread::spawn(move || {
            while let Err(nix::errno::Errno::EINTR) = waitpid(Pid::from_raw(pid), None) {}
            if let Ok(mut f) = finished.lock() {
                f.push(job);
            }
            let _ = wake.send(());
        });
        self.running.insert(
            job,
            Proc {
                runner_pid: pid,
                runner_start: start,
                deadline: limit.map(|l| now + l),
                kill_at: None,
                reason: None,
                cpus,
                adopted: false,
                preempt: None,
                elastic,
                resize_signal,
                generation: 0,
            },
        );
        Ok(())
    }

    /// Resizes a running elastic job to `n` CPUs: a shrink gives back its highest CPU ids, a
    /// growth takes the lowest free ones. The database learns the new CPU list first, then
    /// every thread of the job is pinned to it, the allocation file is rewritten and the
    /// job's signal (if it asked for one) is sent to its main process.
    fn resize(&mut self, job: JobId, n: u32) -> Result<(), ExecError> {
        let Some(have) = self.running.get(&job).map(|p| p.cpus.len()) else {
            return Ok(());
        };
        let n = n as usize;
        let more = if n > have {
            self.take_cpus((n - have) as u32)
        } else {
            Vec::new()
        };
        let Some(p) = self.running.get_mut(&job) else {
            return Ok(());
        };
        for c in p.cpus.drain(n.min(have)..) {
            if let Some(f) = self.cpu_free.get_mut(c) {
                *f = true;
            }
        }
        p.cpus.extend(more);
        p.cpus.sort_unstable();
        p.generation += 1;
        let id = job.0 as i64;
        let pgid: Option<i32> = self.db.conn.query_row(
            "UPDATE jobs SET cpu_list = ?1, alloc_cpus = ?2 WHERE id = ?3 RETURNING job_pgid",
            params![cpu_list(&p.cpus), p.cpus.len() as u32, id],
            |r| r.get(0),
        )?;
        // Before the runner recorded the group, the runner applies the new list itself. A job
        // being stopped (time limit, cancellation) keeps its bookkeeping but is not disturbed.
        let pgid = pgid.filter(|&g| g > 0 && p.reason.is_none());
        if let Some(g) = pgid {
            super::machine::set_group_affinity(g, &p.cpus);
        }
        if p.elastic {
            write_alloc_file(&self.home.alloc_file(id), job, &p.cpus, p.generation);
        }
        if let (Some(sig), Some(g)) = (p.resize_signal, pgid)
            && let Ok(sig) = Signal::try_from(sig)
        {
            let _ = kill(Pid::from_raw(g), sig);
        }
        Ok(())
    }

    /// Takes over a job whose runner survived a daemon restart.
    fn adopt(&mut self, row: &JobRow) {
        let cpus = super::runner::parse_cpu_list(&row.cpu_list);
        for &c in &cpus {
            if let Some(f) = self.cpu_free.get_mut(c) {
                *f = false;
            }
        }
        let start = Time(row.start_ms.unwrap_or_else(now_ms));
        self.running.insert(
            JobId(row.id as u64),
            Proc {
                runner_pid: row.runner_pid.unwrap_or(0),
                runner_start: row.runner_start,
                deadline: row.time_limit_ms.map(|l| start + Dur(l)),
                kill_at: None,
                reason: None,
                cpus,
                adopted: true,
                preempt: None,
                elastic: row.min_cpus.is_some(),
                resize_signal: row.resize_signal,
                generation: row.resizes.max(0) as u32,
            },
        );
    }

    /// SIGTERM to the runner (forwarded to the job's group), SIGKILL to the group later.
    fn stop(&mut self, now: Time, job: JobId, reason: FinalState) {
        let kill_wait = self.kill_wait;
        if let Some(p) = self.running.get_mut(&job) {
            if p.reason.is_none() {
                p.reason = Some(reason);
            }
            let _ = kill(Pid::from_raw(p.runner_pid), Signal::SIGTERM);
            p.kill_at = Some(now + kill_wait);
        }
    }
}

fn cpu_list(cpus: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        while i + 1 < cpus.len() && cpus[i + 1] == cpus[i] + 1 {
            i += 1;
        }
        out.push(if start == cpus[i] {
            start.to_string()
        } else {
            format!("{start}-{}", cpus[i])
        });
        i += 1;
    }
    out.join(",")
}

/// The final state of a job whose runner has ended, from what the runner recorded.
fn outcome(row: &JobRow, reason: Option<FinalState>) -> (FinalState, &'static str) {
    if !row.runner_done {
        return (
            FinalState::Failed,
            "NodeFail: the job's runner ended without recording it",
        );
    }
    if let Some(r) = reason {
        return (r, "None");
    }
    if row.oom {
        return (FinalState::OutOfMemory, "None");
    }
    if row.signal.unwrap_or(0) != 0 || row.exit_code.unwrap_or(0) != 0 {
        return (FinalState::Failed, "NonZeroExitCode");
    }
    (FinalState::Completed, "None")
}

impl Executor for ProcessExecutor {
    type Error = ExecError;

    fn apply(&mut self, now: Time, cmd: &Command) -> Result<(), ExecError> {
        match cmd {
            Command::Start {
                job,
                alloc,
                time_limit,
                ..
            } => self.spawn(now, *job, alloc, *time_limit),
            Command::Cancel { job, running: true } => {
                self.stop(now, *job, FinalState::Cancelled);
                Ok(())
            }
            Command::Cancel { .. } => Ok(()),
            Command::Resize { job, cpus, .. } => self.resize(*job, *cpus),
            Command::Preempt { job, mode, .. } => {
                if let Some(p) = self.running.get_mut(job) {
                    p.preempt = Some(*mode);
                }
                self.stop(now, *job, FinalState::Preempted);
                Ok(())
            }
        }
    }

    fn take_completions(&mut self, now: Time, out: &mut Vec<Completion>) {
        // Time limits, and SIGKILL after the grace period.
        let due: Vec<JobId> = self
            .running
            .iter()
            .filter(|(_, p)| p.reason.is_none() && p.deadline.is_some_and(|d| d <= now))
            .map(|(j, _)| *j)
            .collect();
        for j in due {
            self.stop(now, j, FinalState::Timeout);
        }
        for (job, p) in self.running.iter_mut() {
            if p.kill_at.is_some_and(|k| k <= now) {
                p.kill_at = None;
                if let Ok(Some(row)) = self.db.job(job.0 as i64)
                    && let Some(pg) = row.job_pgid.filter(|&g| g > 0)
                {
                    let _ = killpg(Pid::from_raw(pg), Signal::SIGKILL);
                }
            }
        }
        let mut ended: Vec<JobId> = match self.finished.lock() {
            Ok(mut f) => std::mem::take(&mut *f),
            Err(_) => Vec::new(),
        };
        for (job, p) in &self.running {
            if p.adopted && !same_process_alive(p.runner_pid, p.runner_start) {
                ended.push(*job);
            }
        }
        ended.sort_unstable();
        ended.dedup();
        for job in ended {
            let Some(p) = self.running.remove(&job) else {
                continue;
            };
            for c in &p.cpus {
                if let Some(f) = self.cpu_free.get_mut(*c) {
                    *f = true;
                }
            }
            let state = match self.db.job(job.0 as i64) {
                Ok(Some(row)) => outcome(&row, p.reason).0,
                _ => FinalState::Failed,
            };
            out.push(Completion {
                job,
                at: now,
                state,
                preempted: p.preempt,
            });
        }
    }

    fn next_completion(&self) -> Option<Time> {
        let now = Time(now_ms());
        self.running
            .values()
            .flat_map(|p| {
                [
                    p.deadline.filter(|_| p.reason.is_none()),
                    p.kill_at,
                    p.adopted.then_some(now + Dur(500)),
                ]
            })
            .flatten()
            .min()
    }
}

/// The SQLite store: hands over pending jobs whose dependencies are met, records starts and
/// ends, relays cancellations.
pub struct SqliteStore {
    db: Db,
    home: Home,
    /// Jobs handed to the engine and not ended.
    handed: FastMap<i64, ()>,
    /// Pending jobs seen and held back (dependencies, array limits, impossible requests):
    /// looked at again on every call.
    held: std::collections::BTreeSet<i64>,
    /// Highest job id seen: newer rows are new submissions.
    cursor: i64,
    /// Per job array: tasks handed over and not ended (for `%limit`).
    array_active: FastMap<i64, i64>,
    names: Names,
    shutdown: Arc<AtomicBool>,
    cluster: Cluster,
    limits: crate::sched::limits::Limits,
}

/// Dependency status of a pending job.
enum DepStatus {
    Ready,
    Waiting,
    Never(String),
}

impl SqliteStore {
    fn dependency_status(&self, row: &JobRow) -> DepStatus {
        if row.dependency.is_empty() {
            return DepStatus::Ready;
        }
        let Ok(deps) = parse_dependency(&row.dependency) else {
            return DepStatus::Never(format!("bad dependency '{}'", row.dependency));
        };
        let mut ready = true;
        for (kind, id) in deps {
            let Ok(Some(other)) = self.db.job(id) else {
                return DepStatus::Never(format!("job {id} does not exist"));
            };
            let ended = !matches!(other.state.as_str(), "PENDING" | "RUNNING");
            let ok = other.state == "COMPLETED";
            match kind {
                DepKind::After => ready &= other.state != "PENDING",
                DepKind::AfterAny => ready &= ended,
                DepKind::AfterOk => {
                    if ended && !ok {
                        return DepStatus::Never(format!("job {id} ended {}", other.state));
                    }
                    ready &= ok;
                }
                DepKind::AfterNotOk => {
                    if ok {
                        return DepStatus::Never(format!("job {id} COMPLETED"));
                    }
                    ready &= ended;
                }
            }
        }
        if ready {
            DepStatus::Ready
        } else {
            DepStatus::Waiting
        }
    }

    fn set_reason(&self, id: i64, reason: &str, old: &str) {
        if reason != old {
            let _ = self.db.execute(
                "UPDATE jobs SET reason = ?1 WHERE id = ?2",
                params![reason, id],
            );
        }
    }

    fn spec_of(&mut self, row: &JobRow) -> JobSpec {
        let limit = row.time_limit_ms.map(Dur);
        JobSpec {
            requested_time: limit,
            time_limit: limit,
            priority: row.priority,
            nice: row.nice,
            qos: self.names.intern(&row.qos),
            user: self.names.intern(&row.user),
            mem_mb: (row.mem_mb > 0).then_some(row.mem_mb),
            gpus: row.gpus,
            elastic: match (row.min_cpus, row.max_cpus) {
                (Some(min), Some(max)) => Some(crate::model::ElasticRange { min, max }),
                _ => None,
            },
            ..JobSpec::new(
                JobId(row.id as u64),
                Time(row.submit_ms),
                row.cpus,
                limit.unwrap_or(UNLIMITED),
            )
        }
    }
}

impl Store for SqliteStore {
    type Error = rusqlite::Error;

    fn record_resize(&mut self, _now: Time, cmd: &Command) -> rusqlite::Result<()> {
        // The executor recorded the CPU ids it chose; the count of resizes is history.
        if let Command::Resize { job, .. } = cmd {
            self.db.execute(
                "UPDATE jobs SET resizes = resizes + 1 WHERE id = ?1",
                params![job.0 as i64],
            )?;
        }
        Ok(())
    }

    fn take_arrivals(&mut self, _now: Time, out: &mut Vec<Arc<JobSpec>>) -> rusqlite::Result<()> {
        // New submissions, and the jobs held back before, in id (submission) order.
        let held: Vec<String> = self.held.iter().map(i64::to_string).collect();
        let rows = self.db.jobs_where(&format!(
            "state = 'PENDING' AND cancel_requested = 0 AND (id > {} OR id IN ({}))",
            self.cursor,
            held.join(",")
        ))?;
        self.held.clear();
        for row in rows {
            self.cursor = self.cursor.max(row.id);
            if self.handed.contains_key(&row.id) {
                continue;
            }
            self.held.insert(row.id);
            match self.dependency_status(&row) {
                DepStatus::Ready => {}
                DepStatus::Waiting => {
                    self.set_reason(row.id, "Dependency", &row.reason);
                    continue;
                }
                DepStatus::Never(why) => {
                    self.set_reason(
                        row.id,
                        &format!("DependencyNeverSatisfied ({why})"),
                        &row.reason,
                    );
                    continue;
                }
            }
            if let (Some(a), Some(limit)) = (row.array_job_id, row.array_limit)
                && self.array_active.get(&a).copied().unwrap_or(0) >= limit
            {
                self.set_reason(row.id, "JobArrayTaskLimit", &row.reason);
                continue;
            }
            let spec = self.spec_of(&row);
            if let Err(why) = crate::sched::admission::can_ever_run(
                &self.cluster,
                &BestFit as &dyn Placement,
                &spec,
            ) {
                self.set_reason(row.id, &format!("ReqNodeNotAvail ({why})"), &row.reason);
                continue;
            }
            let alone = crate::sched::limits::LimitState::new(self.limits)
                .blocked(&spec, &Default::default());
            if let Some(r) = alone {
                self.set_reason(
                    row.id,
                    &format!("{r} (the job alone exceeds it)"),
                    &row.reason,
                );
                continue;
            }
            self.set_reason(row.id, "None", &row.reason);
            self.held.remove(&row.id);
            self.handed.insert(row.id, ());
            if let Some(a) = row.array_job_id {
                *self.array_active.entry(a).or_insert(0) += 1;
            }
            out.push(Arc::new(spec));
        }
        Ok(())
    }

    fn next_arrival(&self) -> Option<Time> {
        None
    }

    fn exhausted(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    fn shutdown_requested(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    fn record_start(&mut self, now: Time, cmd: &Command) -> rusqlite::Result<()> {
        if let Command::Start { job, .. } = cmd {
            self.db.execute(
                // Only what the runner does not write: a quick job's runner may already have
                // recorded its end (the runner starts before this runs).
                "UPDATE jobs SET state = 'RUNNING', start_ms = ?1, reason = 'None' WHERE id = ?2",
                params![now.0, job.0 as i64],
            )?;
        }
        Ok(())
    }

    fn record_end(&mut self, c: &Completion) -> rusqlite::Result<()> {
        let id = c.job.0 as i64;
        // Requeued by preemption: the job waits again (the engine still holds it) and restarts
        // from scratch. Its runner has exited (that is how the end was learnt), so what it
        // recorded can be cleared here, before the next runner starts; the last start stays.
        if matches!(
            c.preempted,
            Some(PreemptMode::Requeue) | Some(PreemptMode::Suspend)
        ) {
            self.db.execute(
                "UPDATE jobs SET state = 'PENDING', end_ms = NULL, reason = 'Requeued',
                    restarts = restarts + 1, runner_done = 0, exit_code = NULL, signal = NULL,
                    job_pgid = NULL WHERE id = ?1",
                params![id],
            )?;
            return Ok(());
        }
        let row = self.db.job(id)?;
        let reason = row
            .as_ref()
            .filter(|r| r.runner_done || c.state == FinalState::Cancelled)
            .map_or(
                "NodeFail: the job's runner ended without recording it",
                |_| "None",
            );
        self.db.execute(
            "UPDATE jobs SET state = ?1, end_ms = COALESCE(end_ms, ?2), reason = ?3 WHERE id = ?4",
            params![c.state.name(), c.at.0, reason, id],
        )?;
        self.handed.remove(&id);
        if let Some(a) = row.and_then(|r| r.array_job_id)
            && let Some(n) = self.array_active.get_mut(&a)
        {
            *n -= 1;
        }
        Ok(())
    }

    fn take_cancellations(&mut self, now: Time, out: &mut Vec<JobId>) -> rusqlite::Result<()> {
        let rows = self
            .db
            .jobs_where("cancel_requested = 1 AND state IN ('PENDING', 'RUNNING')")?;
        for row in rows {
            self.db.execute(
                "UPDATE jobs SET cancel_requested = 2 WHERE id = ?1",
                [row.id],
            )?;
            if self.handed.contains_key(&row.id) {
                out.push(JobId(row.id as u64));
            } else if row.state == "PENDING" {
                self.db.execute(
                    "UPDATE jobs SET state = 'CANCELLED', end_ms = ?1, reason = 'None' WHERE id = ?2",
                    params![now.0, row.id],
                )?;
            }
        }
        Ok(())
    }
}

/// After a restart: jobs recorded RUNNING either ended meanwhile (their runner recorded it),
/// still run (adopt them), or were lost (FAILED, reason NodeFail).
fn recover(
    store: &mut SqliteStore,
    exec: &mut ProcessExecutor,
    engine: &mut Engine,
) -> Result<(), LiveError> {
    let dbp = store.home.db();
    let rows = store
        .db
        .jobs_where("state = 'RUNNING'")
        .map_err(|e| LiveError::db(&dbp, e))?;
    for row in rows {
        let alive = row
            .runner_pid
            .is_some_and(|p| same_process_alive(p, row.runner_start));
        if !row.runner_done && alive {
            let spec = Arc::new(store.spec_of(&row));
            let mask = row
                .gpu_list
                .split(',')
                .filter_map(|g| exec.gpu_names.iter().position(|n| n == g))
                .fold(0u64, |m, b| m | (1 << b));
            let alloc: Arc<[Slice]> = vec![Slice {
                gpu_mask: mask,
                ..Slice::new(0, row.alloc_cpus.unwrap_or(row.cpus), row.gpus)
            }]
            .into();
            let start = Time(row.start_ms.unwrap_or_else(now_ms));
            engine
                .adopt_running(spec, start, alloc)
                .map_err(|e| LiveError::Other(e.to_string()))?;
            exec.adopt(&row);
            store.handed.insert(row.id, ());
            if let Some(a) = row.array_job_id {
                *store.array_active.entry(a).or_insert(0) += 1;
            }
        } else {
            let (state, reason) = outcome(&row, None);
            store
                .db
                .execute(
                    "UPDATE jobs SET state = ?1, end_ms = COALESCE(end_ms, ?2), reason = ?3 WHERE id = ?4",
                    params![state.name(), now_ms(), reason, row.id],
                )
                .map_err(|e| LiveError::db(&dbp, e))?;
        }
    }
    Ok(())
}
