//! The typed client API of live mode: what `submit`, `queue`, `show`, `cancel`, `stats` and
//! `export-trace` do, as library calls that return data. The command line renders it.
//!
//! A [`Client`] goes through the daemon's socket when a daemon answers there (the fast path:
//! it opens no database, and the daemon checks who is asking), and otherwise works on the
//! database itself — for a personal home only: a shared scheduler's home
//! (`scheduler --multi-user`) is the daemon's alone, and without its daemon a client says
//! "the scheduler is not running". Either way the same [`service`](super::service) code
//! carries the request out.
//!
//! The submission rules live here: a submission's validation and defaults (name, shell or not,
//! partition, output patterns), array expansion, the size of the machine submissions are
//! checked against, which jobs `queue` lists by default. Validation messages name the
//! request's fields by their `submit` flags (`--cpus`, ...).

use super::protocol::{Request, Response};
use super::publish::PlanScope;
use super::remote;
use super::service::{Access, QosGrants, Service};
pub use super::service::{Capacity, Stats, workload_of};
use super::store::{Db, JobFilter, JobRow, NewJob, SlurmRecord, StoreError, by_name};
use super::syntax::parse_array;
use super::syntax::{JobRef, default_name};
use super::{Home, LiveError, output};
use crate::model::{JobState, parse_mem_mb};
use crate::time::parse_duration;
use crate::trace::Workload;
use serde::{Deserialize, Serialize};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// The client of one home: through its daemon, or on its database.
pub struct Client {
    home: Home,
    route: Route,
}

enum Route {
    /// Through the daemon's socket (a connection made and not used yet, if any).
    Daemon(Option<UnixStream>),
    /// On the database: no daemon answers (a personal home only).
    Direct(Db),
}

/// A personal scheduler's grants: its one user checks no QOS.
static NO_GRANTS: QosGrants = QosGrants::NONE;

/// How long a client keeps trying a daemon that went away mid-request (a restart) before it
/// gives up (a shared home) or works on the database (a personal one).
const RECONNECT: Duration = Duration::from_secs(5);

/// Who asks: a job's owner, a request's caller (it runs as that user when the daemon runs as
/// root).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    /// The user of this process.
    pub fn current() -> Owner {
        Owner::of(
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        )
    }
    /// The user `uid` with primary group `gid` (as the kernel reports a caller), named by the
    /// user database (the number when it has no entry).
    pub fn of(uid: u32, gid: u32) -> Owner {
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map_or_else(|| uid.to_string(), |u| u.name);
        Owner { user, uid, gid }
    }
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
    /// Whether this caller may see the details of, and cancel, a job: its owner and root.
    pub fn may_touch(&self, job: &JobRow) -> bool {
        self.is_root() || job.uid == self.uid
    }
}

/// A submission as a user writes it (`submit`'s flags): checked by [`Submission::validate`],
/// then stored by [`Client::submit`]. What a client sends the daemon, without its owner: the
/// daemon sets the owner from the socket's peer credentials.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
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
    /// sbatch's `--output` and `--error` file name patterns (see [`output`]).
    #[serde(default)]
    pub output: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    /// Who submits: never sent, the daemon knows it from the kernel.
    #[serde(skip)]
    pub owner: Owner,
    pub cwd: String,
    #[serde(with = "by_name::env")]
    pub env: super::store::Env,
    /// Identifies this submission, so that one sent again is stored once (set by
    /// [`Client::submit`]).
    #[serde(default)]
    pub token: Option<String>,
}

/// A submission that passed the checks that need no database.
#[derive(Clone, Debug)]
pub struct ValidSubmission {
    /// The job to store (its dependency and submit time are set by [`Client::submit`]).
    pub job: NewJob,
    /// The array's task ids and its limit of running tasks.
    pub array: Option<(Vec<i64>, Option<i64>)>,
    pub(super) dependency: Option<String>,
}

/// What a submission stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    /// The job's id, or the ids of the array's tasks (the first is the array's id).
    pub ids: Vec<i64>,
    /// What the submitter should know: e.g. a job larger than the machine, kept pending.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
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

pub(super) fn invalid(msg: String) -> SubmitError {
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
        for (flag, p) in [("--output", &self.output), ("--error", &self.error)] {
            if let Some(p) = p {
                output::check_pattern(flag, p).map_err(invalid)?;
            }
        }
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
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| default_name(&self.command, shell));
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
                stdout: self.output,
                stderr: self.error,
                token: self.token,
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

/// How a cancellation was carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CancelOutcome {
    NoSuchJob,
    /// A pending job, cancelled at once (no daemon runs).
    Cancelled,
    /// Asked of the daemon (or, for a running job without a daemon, of its runner).
    Cancelling,
    /// The job is over.
    AlreadyEnded(#[serde(with = "by_name::state")] JobState),
    /// Another user's job (Slurm's "Access/permission denied"): left alone.
    Denied,
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

/// The jobs `queue` lists: those in `states` (comma-separated names or `squeue`'s short
/// codes — `PD`, `R`, `CD`, ... — any case; `all` for every state), else all with `all`, else
/// the pending and running ones; only `user`'s when given.
pub fn queue_filter(
    states: Option<&str>,
    user: Option<String>,
    all: bool,
) -> Result<JobFilter, String> {
    let states = match states {
        Some(s) if s.split(',').any(|x| x.trim().eq_ignore_ascii_case("all")) => None,
        Some(s) => {
            let mut out = Vec::new();
            for st in s.split(',').map(|x| x.trim().to_ascii_uppercase()) {
                let named = JobState::from_name(&st)
                    .or_else(|| QUEUE_STATES.iter().copied().find(|q| q.short() == st));
                match named.filter(|s| QUEUE_STATES.contains(s)) {
                    Some(s) => out.push(s),
                    None => {
                        let names: Vec<&str> = QUEUE_STATES.iter().map(|s| s.name()).collect();
                        return Err(format!(
                            "unknown state '{st}' (expected {}, their short codes as squeue \
                             prints them, or all)",
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
    Ok(JobFilter {
        states,
        user,
        array: None,
    })
}

impl Client {
    /// The client of a home: through its daemon if one answers, else on its database
    /// (created if needed; a personal home only).
    pub fn open(home: &Home) -> Result<Client, LiveError> {
        if let Ok(s) = remote::connect(home) {
            return Ok(Client::through(home, s));
        }
        Ok(Client {
            route: Route::Direct(Client::direct(home)?),
            home: home.clone(),
        })
    }

    /// As [`open`](Client::open), but without a daemon only if the home has a database,
    /// creating nothing: what read-only commands use.
    pub fn open_existing(home: &Home) -> Result<Option<Client>, LiveError> {
        if let Ok(s) = remote::connect(home) {
            return Ok(Some(Client::through(home, s)));
        }
        may_work_directly(home)?;
        Ok(home.open_existing()?.map(|db| Client {
            route: Route::Direct(db),
            home: home.clone(),
        }))
    }

    fn through(home: &Home, s: UnixStream) -> Client {
        Client {
            home: home.clone(),
            route: Route::Daemon(Some(s)),
        }
    }

    /// The database, for a client that works without a daemon.
    fn direct(home: &Home) -> Result<Db, LiveError> {
        may_work_directly(home)?;
        home.open()
    }

    /// What the Slurm executor recorded about a job (its Slurm id, placement, Slurm's state),
    /// read from the database; `None` where it cannot be read (the Slurm executor runs only in
    /// a personal home, whose database its owner reads).
    pub fn slurm_record(&self, id: i64) -> Result<Option<SlurmRecord>, LiveError> {
        match Db::open_existing(&self.home.db()) {
            Ok(Some(db)) => Ok(db.slurm_record(id)?),
            _ => Ok(None),
        }
    }

    pub fn home(&self) -> &Home {
        &self.home
    }

    /// Whether requests go through the daemon.
    pub fn via_daemon(&self) -> bool {
        matches!(self.route, Route::Daemon(_))
    }

    /// Sends a request through the daemon; `Ok(None)` if this client works on the database.
    /// A daemon that went away mid-request (killed, restarting) is tried again; where it no
    /// longer listens, a personal home's client carries on with the database, a shared
    /// home's waits for it up to [`RECONNECT`]. Requests are idempotent (a submission by its
    /// token), so one sent twice is done once.
    fn ask(&mut self, req: &Request) -> Result<Option<Response>, LiveError> {
        let Route::Daemon(first) = &mut self.route else {
            return Ok(None);
        };
        let mut stream = first.take();
        let until = Instant::now() + RECONNECT;
        loop {
            let conn = match stream.take() {
                Some(s) => Ok(s),
                None => remote::connect(&self.home),
            };
            let gone = match conn {
                Ok(s) => match remote::exchange(s, req) {
                    Ok(r) => return Ok(Some(r)),
                    Err(e) => e,
                },
                Err(e) => {
                    if may_work_directly(&self.home).is_ok() {
                        self.route = Route::Direct(Client::direct(&self.home)?);
                        return Ok(None);
                    }
                    remote::Lost::Io(e)
                }
            };
            if Instant::now() >= until {
                return Err(match may_work_directly(&self.home) {
                    Err(e) => e,
                    Ok(()) => LiveError::Other(format!("the scheduler did not answer: {gone}")),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The service over this client's database (no daemon answers), acting as this process's
    /// user.
    fn service(&mut self) -> Result<(Service<'_>, Owner), LiveError> {
        let daemon = self.home.daemon_running();
        match &mut self.route {
            Route::Direct(db) => Ok((
                Service {
                    db,
                    home: &self.home,
                    access: Access::default(),
                    qos: &NO_GRANTS,
                    daemon,
                },
                Owner::current(),
            )),
            Route::Daemon(_) => Err(LiveError::Other("no database: the daemon serves".into())),
        }
    }

    /// Submits a job (or an array): checked and stored by the daemon, which wakes at once, or
    /// stored here when no daemon runs. A submission is acknowledged once committed; one sent
    /// again (its reply lost) is stored once, by its token.
    pub fn submit(&mut self, mut s: Submission) -> Result<Submitted, SubmitError> {
        s.token.get_or_insert_with(new_token);
        let req = Request::Submit(Box::new(s));
        match self.ask(&req)? {
            Some(Response::Submitted(x)) => return Ok(x),
            Some(Response::Failed(f)) => return Err(f.into()),
            Some(other) => return Err(unexpected(&other).into()),
            None => {}
        }
        let Request::Submit(s) = req else {
            unreachable!("the request built above")
        };
        let (mut svc, who) = self.service()?;
        let r = svc.submit(&who, *s);
        self.home.notify();
        r
    }

    /// The jobs a filter selects, by id (the details of other users' jobs withheld).
    pub fn queue(&mut self, filter: &JobFilter) -> Result<Vec<JobRow>, LiveError> {
        match self.ask(&Request::Queue(filter.clone()))? {
            Some(Response::Jobs(j)) => Ok(j),
            Some(other) => Err(failure(other)),
            None => {
                let (svc, who) = self.service()?;
                svc.queue(&who, filter)
            }
        }
    }

    /// One job (its details withheld unless it is the caller's).
    pub fn job(&mut self, id: i64) -> Result<Option<JobRow>, LiveError> {
        match self.ask(&Request::Show(id))? {
            Some(Response::Job(j)) => Ok(j.map(|b| *b)),
            Some(other) => Err(failure(other)),
            None => {
                let (svc, who) = self.service()?;
                svc.job(&who, id)
            }
        }
    }

    /// The jobs `r` names, each with its id as users see it (`J_T` for an array's task): `J_T`
    /// the task `T` of array `J`; `J` the whole array when `J` is an array's first task, else
    /// job `J`. Empty when nothing matches.
    pub fn resolve(&mut self, r: JobRef) -> Result<Vec<(i64, JobRef)>, LiveError> {
        let tasks = |c: &mut Client| -> Result<Vec<(i64, JobRef)>, LiveError> {
            let mut rows = c.queue(&JobFilter {
                array: Some(r.id),
                ..JobFilter::default()
            })?;
            rows.sort_by_key(|j| (j.array_task_id, j.id));
            Ok(rows
                .into_iter()
                .map(|j| {
                    let shown = JobRef {
                        id: r.id,
                        task: j.array_task_id,
                    };
                    (j.id, shown)
                })
                .collect())
        };
        match r.task {
            Some(t) => Ok(tasks(self)?
                .into_iter()
                .filter(|(_, shown)| shown.task == Some(t))
                .collect()),
            None => match self.job(r.id)? {
                None => Ok(Vec::new()),
                Some(j) if j.array_job_id == Some(r.id) => tasks(self),
                Some(j) => Ok(vec![(j.id, r)]),
            },
        }
    }

    /// Cancels jobs: the caller's own, any for root (others' are [`CancelOutcome::Denied`]).
    pub fn cancel(&mut self, ids: &[i64]) -> Result<Vec<(i64, CancelOutcome)>, LiveError> {
        match self.ask(&Request::Cancel(ids.to_vec()))? {
            Some(Response::Cancelled(c)) => Ok(c),
            Some(other) => Err(failure(other)),
            None => {
                let (svc, who) = self.service()?;
                let r = svc.cancel(&who, ids);
                self.home.notify();
                r
            }
        }
    }

    /// What the stored expected starts are worth now (the rows [`Client::queue`] and
    /// [`Client::job`] return have them applied already): whether a daemon runs and whose
    /// start its policy plans.
    pub fn expected_starts(&mut self) -> Result<ExpectedStarts, LiveError> {
        let s = self.stats()?;
        Ok(ExpectedStarts {
            daemon_running: s.daemon_running,
            scope: s.plan.as_deref().and_then(PlanScope::from_name),
        })
    }

    /// Capacity, usage, enforcement and job counts.
    pub fn stats(&mut self) -> Result<Stats, LiveError> {
        match self.ask(&Request::Stats)? {
            Some(Response::Stats(s)) => Ok(*s),
            Some(other) => Err(failure(other)),
            None => self.service()?.0.stats(),
        }
    }

    /// The jobs that ran and ended (the caller's; root: all), as a workload the simulator
    /// replays (submit time, run time, CPUs, time limit, user, priority, memory, GPUs, nice,
    /// QOS, elastic range).
    pub fn finished_workload(&mut self) -> Result<Workload, LiveError> {
        let rows = match self.ask(&Request::Finished)? {
            Some(Response::Jobs(j)) => j,
            Some(other) => return Err(failure(other)),
            None => {
                let (svc, who) = self.service()?;
                svc.finished(&who)?
            }
        };
        Ok(workload_of(&rows, self.home.db()))
    }
}

/// Whether a client may work on this home's database itself when no daemon answers: not a
/// shared scheduler's home, and not another user's.
fn may_work_directly(home: &Home) -> Result<(), LiveError> {
    use std::os::unix::fs::MetadataExt;
    if home.is_multi_user() {
        return Err(LiveError::NotRunning {
            socket: home.socket(),
        });
    }
    let me = nix::unistd::geteuid().as_raw();
    if let Ok(m) = std::fs::metadata(&home.dir)
        && m.uid() != me
        && me != 0
    {
        return Err(LiveError::Denied(format!(
            "{}: the home of uid {}, and no scheduler answers on {}: set MINI_SLURM_HOME to a home of your own",
            home.dir.display(),
            m.uid(),
            home.socket().display()
        )));
    }
    Ok(())
}

/// A submission's token: unique per submitting process and instant.
fn new_token() -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}-{}-{ns}",
        nix::unistd::getuid().as_raw(),
        std::process::id()
    )
}

fn unexpected(r: &Response) -> LiveError {
    LiveError::Other(format!("unexpected answer from the scheduler: {r:?}"))
}

/// The error of a response that is a failure, or an unexpected one.
fn failure(r: Response) -> LiveError {
    match r {
        Response::Failed(f) => f.into(),
        other => unexpected(&other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_name_skips_assignments() {
        let name = |cmd: &[&str]| {
            let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
            let shell = cmd.len() == 1;
            default_name(&cmd, shell)
        };
        assert_eq!(name(&["API_KEY=s3cr3t python x.py"]), "python");
        assert_eq!(name(&["A=1 B='two words' /usr/bin/env x"]), "env");
        assert_eq!(name(&["T=\"a b\" C=d\\ e ./run.sh --x=1"]), "run.sh");
        assert_eq!(name(&["K=v", "python", "x.py"]), "python");
        assert_eq!(name(&["/opt/bin/train", "--lr=1"]), "train");
        assert_eq!(name(&["echo a=b"]), "echo");
        assert_eq!(name(&["ONLY=assignments"]), "job");
        assert_eq!(name(&["x/"]), "x");
    }
}
