//! The typed client API of live mode: what `submit`, `queue`, `show`, `cancel`, `stats` and
//! `export-trace` do, as library calls that return data. The command line renders it; a web
//! server or a socket daemon could call the same functions.
//!
//! The business rules live here: a submission's validation and defaults (name, shell or not,
//! partition), array expansion, dependency checks, the size of the machine submissions are
//! checked against (the daemon's last configuration, else this machine's), which jobs `queue`
//! lists by default, how a cancellation is carried out with or without a daemon. A client only
//! touches the database and wakes the daemon; it never schedules.
//!
//! Validation messages name the request's fields by their `submit` flags (`--cpus`, ...).

use super::machine;
use super::publish::PlanScope;
use super::store::{
    ContainStats, DaemonMeta, Db, JobCounts, JobFilter, JobRow, NewJob, StoreError,
};
use super::syntax::{parse_array, parse_dependency};
use super::{Home, LiveError, now_ms};
use crate::ids::{JobId, Names};
use crate::model::{ElasticRange, JobState, parse_mem_mb};
use crate::time::{Dur, Time, parse_duration};
use crate::trace::{TraceJob, Workload};

/// An open connection to a home's database.
pub struct Client {
    home: Home,
    db: Db,
}

/// Who submits a job (it runs as that user when the daemon runs as root).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    /// The user of this process.
    pub fn current() -> Owner {
        let uid = nix::unistd::getuid();
        let user = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map_or_else(|| uid.to_string(), |u| u.name);
        Owner {
            user,
            uid: uid.as_raw(),
            gid: nix::unistd::getgid().as_raw(),
        }
    }
}

/// A submission as a user writes it (`submit`'s flags): checked by [`Submission::validate`],
/// then stored by [`Client::submit`].
#[derive(Clone, Debug, Default)]
pub struct Submission {
    /// Several words run as given; one word with spaces or shell characters runs under
    /// `/bin/sh -c`.
    pub command: Vec<String>,
    pub cpus: u32,
    /// Memory limit, e.g. `4GB`.
    pub mem: Option<String>,
    pub priority: i64,
    pub nice: i32,
    pub qos: String,
    /// Time limit in Slurm's syntax (minutes, `MM:SS`, `HH:MM:SS`, `D-HH:MM:SS`).
    pub time: Option<String>,
    pub gpus: u32,
    /// `afterok:12:13,afterany:7`.
    pub dependency: Option<String>,
    /// `0-15`, `1,3,5-7`, `0-99%4`, `0-10:2`.
    pub array: Option<String>,
    pub partition: Option<String>,
    pub name: Option<String>,
    pub elastic: bool,
    pub min_cpus: Option<u32>,
    pub max_cpus: Option<u32>,
    pub resize_signal: Option<i32>,
    pub owner: Owner,
    pub cwd: String,
    pub env: super::store::Env,
}

/// A submission that passed the checks that need no database.
#[derive(Clone, Debug)]
pub struct ValidSubmission {
    /// The job to store (its dependency and submit time are set by [`Client::submit`]).
    pub job: NewJob,
    /// The array's task ids and its limit of running tasks.
    pub array: Option<(Vec<i64>, Option<i64>)>,
    dependency: Option<String>,
}

/// What a submission stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submitted {
    /// The job's id, or the ids of the array's tasks (the first is the array's id).
    pub ids: Vec<i64>,
}

/// Why a submission was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// Malformed, or more than the machine has: nothing was stored.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Live(#[from] LiveError),
}

impl From<StoreError> for SubmitError {
    fn from(e: StoreError) -> SubmitError {
        SubmitError::Live(e.into())
    }
}

fn invalid(msg: String) -> SubmitError {
    SubmitError::Invalid(msg)
}

/// Characters that make a one-word command a shell command line.
const SHELL_CHARS: &str = "|&;<>()$`\\\"'*?[]#~=%{}";

impl Submission {
    /// Checks what can be checked without the database, and applies the defaults.
    pub fn validate(self) -> Result<ValidSubmission, SubmitError> {
        if self.cpus == 0 {
            return Err(invalid("--cpus: must be at least 1".into()));
        }
        if self.nice < 0 && self.owner.uid != 0 {
            return Err(invalid(format!(
                "--nice: only root may give a negative adjustment (as in Slurm), found {}",
                self.nice
            )));
        }
        let mem_mb = match &self.mem {
            None => 0,
            Some(m) => parse_mem_mb(m).map_err(|e| invalid(format!("--mem: {e}")))?,
        };
        let time_limit_ms = match &self.time {
            None => None,
            Some(t) => {
                let d = parse_duration(t, 60_000).map_err(|e| invalid(format!("--time: {e}")))?;
                if d.0 <= 0 {
                    return Err(invalid("--time: must be positive".into()));
                }
                Some(d.0)
            }
        };
        let elastic = self.elastic_range()?;
        let partition = self.partition.clone().unwrap_or_else(|| "all".into());
        if partition != "all" {
            return Err(invalid(format!(
                "--partition: unknown partition '{partition}' (this machine has: all)"
            )));
        }
        let array = match &self.array {
            None => None,
            Some(s) => Some(parse_array(s).map_err(|e| invalid(format!("--array: {e}")))?),
        };
        let Some(first) = self.command.first() else {
            return Err(invalid("no command given".into()));
        };
        let shell = self.command.len() == 1
            && first
                .chars()
                .any(|c| c.is_whitespace() || SHELL_CHARS.contains(c));
        let name = self.name.clone().unwrap_or_else(|| {
            let word = first.split_whitespace().next().unwrap_or("job");
            word.rsplit('/').next().unwrap_or(word).to_string()
        });
        Ok(ValidSubmission {
            job: NewJob {
                name,
                user: self.owner.user,
                uid: self.owner.uid,
                gid: self.owner.gid,
                argv: self.command,
                shell,
                cwd: self.cwd,
                env: self.env,
                cpus: self.cpus,
                mem_mb,
                gpus: self.gpus,
                priority: self.priority,
                nice: self.nice,
                qos: self.qos,
                time_limit_ms,
                partition,
                dependency: String::new(),
                submit_ms: 0,
                elastic,
                resize_signal: self.resize_signal,
            },
            array,
            dependency: self.dependency,
        })
    }

    /// The elastic range (`--min-cpus` ≤ `--cpus` ≤ `--max-cpus`), for an elastic job.
    fn elastic_range(&self) -> Result<Option<(u32, u32)>, SubmitError> {
        if !(self.elastic || self.min_cpus.is_some() || self.max_cpus.is_some()) {
            if self.resize_signal.is_some() {
                return Err(invalid(
                    "--resize-signal: only an elastic job is resized (add --elastic)".into(),
                ));
            }
            return Ok(None);
        }
        let lo = self.min_cpus.unwrap_or(self.cpus);
        let hi = self.max_cpus.unwrap_or(self.cpus);
        if !(lo >= 1 && lo <= self.cpus && self.cpus <= hi) {
            return Err(invalid(format!(
                "--min-cpus {lo} ≤ --cpus {} ≤ --max-cpus {hi} does not hold",
                self.cpus
            )));
        }
        if self.gpus > 0 {
            return Err(invalid(
                "--gpus: an elastic job cannot hold GPUs (its CPUs are resized, GPUs are not)"
                    .into(),
            ));
        }
        Ok(Some((lo, hi)))
    }
}

/// The machine submissions are checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    pub cpus: u32,
    pub mem_mb: u64,
    pub gpus: u32,
}

impl Capacity {
    /// The daemon's last configuration, else what this machine has.
    fn of(meta: &DaemonMeta) -> Capacity {
        let detected = || machine::detect();
        let (cpus, mem_mb, gpus) = match (meta.cpus, meta.mem_mb, &meta.gpus) {
            (Some(c), Some(m), Some(g)) => (c, m, g.len() as u32),
            _ => {
                let m = detected();
                (
                    meta.cpus.unwrap_or(m.cpus),
                    meta.mem_mb.unwrap_or(m.mem_mb),
                    meta.gpus.as_ref().unwrap_or(&m.gpus).len() as u32,
                )
            }
        };
        Capacity { cpus, mem_mb, gpus }
    }

    /// Whether a job of this size could ever run here: the message names the flag if not.
    fn check(&self, job: &NewJob) -> Result<(), SubmitError> {
        let Capacity { cpus, mem_mb, gpus } = *self;
        if job.cpus > cpus {
            return Err(invalid(format!(
                "--cpus {}: the machine has {cpus} CPUs",
                job.cpus
            )));
        }
        if let Some((_, hi)) = job.elastic
            && hi > cpus
        {
            return Err(invalid(format!(
                "--max-cpus {hi}: the machine has {cpus} CPUs"
            )));
        }
        if job.mem_mb > mem_mb && mem_mb > 0 {
            return Err(invalid(format!(
                "--mem {} MB: the machine has {mem_mb} MB",
                job.mem_mb
            )));
        }
        if job.gpus > gpus {
            return Err(invalid(format!(
                "--gpus {}: the machine has {gpus} GPUs",
                job.gpus
            )));
        }
        Ok(())
    }
}

/// How a cancellation was carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    NoSuchJob,
    /// A pending job, cancelled at once (no daemon runs).
    Cancelled,
    /// Asked of the daemon (or, for a running job without a daemon, of its runner).
    Cancelling,
    /// The job is over.
    AlreadyEnded(JobState),
}

/// Capacity, usage and job counts, for `stats`.
#[derive(Clone, Debug)]
pub struct Stats {
    pub daemon_running: bool,
    /// The policy the daemon last ran.
    pub policy: Option<String>,
    pub capacity: Capacity,
    /// How memory limits are enforced, in words.
    pub enforcement: String,
    /// Containment, CPU ids and pinning failures.
    pub contain: ContainStats,
    pub counts: JobCounts,
    /// The last fault of the database the daemon recovered from.
    pub last_fault: Option<String>,
    /// Where the running daemon serves its dashboard, metrics and API (`scheduler --http`).
    pub http: Option<String>,
}

impl Stats {
    /// What `stats` says of a home without a database (no job was ever submitted there).
    pub fn without_database() -> Stats {
        Stats {
            daemon_running: false,
            policy: None,
            capacity: Capacity::of(&DaemonMeta::default()),
            enforcement: machine::mem_enforcement().describe(),
            contain: ContainStats::default(),
            counts: JobCounts::default(),
            last_fault: None,
            http: None,
        }
    }

    /// Mean wait and run time of finished jobs, in seconds.
    pub fn means_s(&self) -> Option<(f64, f64)> {
        let c = &self.counts;
        (c.finished > 0).then(|| {
            let n = c.finished as f64;
            (c.wait_ms as f64 / n / 1000.0, c.run_ms as f64 / n / 1000.0)
        })
    }
}

/// What a stored expected start is worth now: only a running daemon's plan holds, and the
/// policy decides whose start it plans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpectedStarts {
    pub daemon_running: bool,
    /// Whose start the daemon's policy plans (`None`: no daemon recorded it).
    pub scope: Option<PlanScope>,
}

impl ExpectedStarts {
    /// A job's expected start (epoch ms): a pending job's, while a daemon runs.
    pub fn of(&self, r: &JobRow) -> Option<i64> {
        r.expected_start_ms
            .filter(|_| self.daemon_running && r.state == JobState::Pending)
    }
    /// Clears the expected starts that do not hold (no daemon runs, the job is not pending).
    pub fn apply(&self, rows: &mut [JobRow]) {
        for r in rows {
            r.expected_start_ms = self.of(r);
        }
    }
}

/// The states `queue --status` accepts, in the order its message lists them.
pub const QUEUE_STATES: [JobState; 8] = [
    JobState::Pending,
    JobState::Running,
    JobState::Completed,
    JobState::Failed,
    JobState::Cancelled,
    JobState::Timeout,
    JobState::OutOfMemory,
    JobState::Preempted,
];

/// The jobs `queue` lists: those in `states` (comma-separated names, any case), else all with
/// `all`, else the pending and running ones; only `user`'s when given.
pub fn queue_filter(
    states: Option<&str>,
    user: Option<String>,
    all: bool,
) -> Result<JobFilter, String> {
    let states = match states {
        Some(s) => {
            let mut out = Vec::new();
            for st in s.split(',').map(|x| x.trim().to_ascii_uppercase()) {
                match JobState::from_name(&st).filter(|s| QUEUE_STATES.contains(s)) {
                    Some(s) => out.push(s),
                    None => {
                        let names: Vec<&str> = QUEUE_STATES.iter().map(|s| s.name()).collect();
                        return Err(format!(
                            "unknown state '{st}' (expected {})",
                            names.join(", ")
                        ));
                    }
                }
            }
            Some(out)
        }
        None if !all => Some(vec![JobState::Pending, JobState::Running]),
        None => None,
    };
    Ok(JobFilter { states, user })
}

impl Client {
    /// Opens a home's database, creating the directory tree and the database if needed.
    pub fn open(home: &Home) -> Result<Client, LiveError> {
        Ok(Client {
            db: home.open()?,
            home: home.clone(),
        })
    }

    /// Opens a home's database if it has one, creating nothing: what read-only commands use.
    pub fn open_existing(home: &Home) -> Result<Option<Client>, LiveError> {
        Ok(home.open_existing()?.map(|db| Client {
            db,
            home: home.clone(),
        }))
    }

    pub fn home(&self) -> &Home {
        &self.home
    }

    /// The machine submissions are checked against.
    pub fn capacity(&self) -> Result<Capacity, LiveError> {
        Ok(Capacity::of(&self.db.daemon_meta()?))
    }

    /// Stores a validated submission (after the checks against the machine and the jobs it
    /// depends on) and wakes the daemon.
    pub fn submit(&mut self, s: &ValidSubmission) -> Result<Submitted, SubmitError> {
        self.capacity()?.check(&s.job)?;
        let mut job = s.job.clone();
        if let Some(d) = &s.dependency {
            let deps = parse_dependency(d).map_err(|e| invalid(format!("--dependency: {e}")))?;
            for (_, id) in &deps {
                if !self.db.exists(*id)? {
                    return Err(invalid(format!("--dependency: job {id} does not exist")));
                }
            }
            job.dependency = d.clone();
        }
        job.submit_ms = now_ms();
        let array = s.array.as_ref().map(|(t, l)| (t.as_slice(), *l));
        let ids = self.db.insert_jobs(&job, array)?;
        self.home.notify();
        Ok(Submitted { ids })
    }

    /// The jobs a filter selects, by id.
    pub fn queue(&self, filter: &JobFilter) -> Result<Vec<JobRow>, LiveError> {
        Ok(self.db.jobs(filter)?)
    }

    /// One job.
    pub fn job(&self, id: i64) -> Result<Option<JobRow>, LiveError> {
        Ok(self.db.job(id)?)
    }

    /// What the stored expected starts are worth now.
    pub fn expected_starts(&self) -> Result<ExpectedStarts, LiveError> {
        let meta = self.db.daemon_meta()?;
        Ok(ExpectedStarts {
            daemon_running: self.home.daemon_running(),
            scope: meta.plan.as_deref().and_then(PlanScope::from_name),
        })
    }

    /// Cancels jobs: a pending job at once when no daemon runs, otherwise through the daemon;
    /// a running job without a daemon through its runner (which records how it ended).
    pub fn cancel(&self, ids: &[i64]) -> Result<Vec<(i64, CancelOutcome)>, LiveError> {
        let daemon = self.home.daemon_running();
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            let Some(r) = self.db.job(id)? else {
                out.push((id, CancelOutcome::NoSuchJob));
                continue;
            };
            let outcome = match r.state {
                JobState::Pending if !daemon => {
                    self.db.cancel_pending_now(id, now_ms())?;
                    CancelOutcome::Cancelled
                }
                JobState::Pending | JobState::Configuring | JobState::Running => {
                    self.db.request_cancel(id)?;
                    // Without a daemon, the runner is told directly — only if the recorded pid
                    // is still that runner (same start time), never a process that reused it.
                    if r.state.is_started()
                        && !daemon
                        && let Some(pid) = r.runner_pid
                        && r.runner_start.is_some()
                        && machine::same_process_alive(pid, r.runner_start)
                    {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGTERM,
                        );
                    }
                    CancelOutcome::Cancelling
                }
                other => CancelOutcome::AlreadyEnded(other),
            };
            out.push((id, outcome));
        }
        self.home.notify();
        Ok(out)
    }

    /// Capacity, usage, enforcement and job counts.
    pub fn stats(&self) -> Result<Stats, LiveError> {
        let meta = self.db.daemon_meta()?;
        let daemon_running = self.home.daemon_running();
        Ok(Stats {
            daemon_running,
            http: meta
                .http
                .clone()
                .filter(|h| daemon_running && !h.is_empty()),
            capacity: Capacity::of(&meta),
            enforcement: meta
                .enforcement
                .clone()
                .unwrap_or_else(|| machine::mem_enforcement().describe()),
            last_fault: meta.last_fault.clone(),
            policy: meta.policy,
            contain: self.db.contain_stats()?,
            counts: self.db.job_counts()?,
        })
    }

    /// The jobs that ran and ended, as a workload the simulator replays (submit time, run
    /// time, CPUs, time limit, user, priority, memory, GPUs, nice, QOS, elastic range).
    pub fn finished_workload(&self) -> Result<Workload, LiveError> {
        let mut names = Names::default();
        let none = names.intern("");
        let jobs = self
            .db
            .finished_jobs()?
            .iter()
            .enumerate()
            .map(|(i, r)| TraceJob {
                id: JobId(r.id as u64),
                submit: Time(r.submit_ms),
                runtime: Dur((r.end_ms.unwrap_or(0) - r.start_ms.unwrap_or(0)).max(0)),
                procs: i64::from(r.cpus),
                requested: r.time_limit_ms.map(Dur),
                priority: r.priority,
                user: names.intern(&r.user),
                group: none,
                queue: none,
                partition: none,
                nodes: None,
                mem_mb: (r.mem_mb > 0).then_some(r.mem_mb),
                gpus: r.gpus,
                qos: names.intern(&r.qos),
                nice: r.nice,
                elastic: match (r.min_cpus, r.max_cpus) {
                    (Some(min), Some(max)) => Some(ElasticRange { min, max }),
                    _ => None,
                },
                speedup: None,
                line: i as u64 + 2,
            })
            .collect();
        Ok(Workload {
            source: self.home.db(),
            jobs,
            names,
            ..Workload::default()
        })
    }
}
