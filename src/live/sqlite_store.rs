//! The daemon's side of the database: [`SqliteStore`], the `driver::Store` of live mode, and
//! [`DbLedger`], the process executor's [`Ledger`].
//!
//! The store hands pending jobs to the engine in submission order once their dependencies are
//! met, their array's `%limit` allows and they pass admission (the engine's own rules,
//! `sched::admission::can_ever_run` on the daemon's cluster and `exceeds_limits_alone`); a job
//! held back keeps its reason in the database and is looked at again on every pass. It records starts, ends and requeues, and relays cancellations.

use super::executor::{Ledger, RunnerReport, outcome};
use super::store::{Allocated, BadRow, Db, JobRow, Launch, Reason, ReasonCode};
use super::syntax::{DepKind, cpu_list, parse_dependency};
use super::{LiveError, failpoint};
use crate::driver::{Completion, Store};
use crate::engine::Command;
use crate::ids::{FastMap, JobId, Names};
use crate::model::{
    Cluster, ElasticRange, FinalState, JobSpec, JobState, PendingReason, PreemptMode,
};
use crate::sched::admission::{can_ever_run, exceeds_limits_alone};
use crate::sched::limits::Limits;
use crate::sched::placement::{BestFit, Placement};
use crate::time::{Dur, Time};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// An estimate for jobs without a time limit: effectively unbounded.
pub const UNLIMITED: Dur = Dur(i64::MAX / 4);

/// The placement of live mode, for the engine and for admission alike.
pub const PLACEMENT: BestFit = BestFit;

/// The SQLite store: hands over pending jobs whose dependencies are met, records starts and
/// ends, relays cancellations.
pub struct SqliteStore {
    db: Db,
    /// Jobs handed to the engine and not ended, with their array's id.
    handed: BTreeMap<i64, Option<i64>>,
    /// Pending jobs seen and held back (dependencies, array limits, impossible requests):
    /// looked at again on every call.
    held: BTreeSet<i64>,
    /// Highest job id seen: newer rows are new submissions.
    cursor: i64,
    /// Per job array: tasks handed over and not ended (for `%limit`).
    array_active: FastMap<i64, i64>,
    /// Cancellation requests relayed to the engine in this run (each once; all again after a
    /// restart, since the request stays recorded until the job's end is).
    relayed: BTreeSet<i64>,
    /// Writes the database refused, in order, to retry.
    deferred: VecDeque<Deferred>,
    faults: Faults,
    names: Names,
    shutdown: Arc<AtomicBool>,
    cluster: Cluster,
    limits: Limits,
    /// Elastic jobs fail at hand-over with this reason (an executor that cannot resize).
    no_elastic: Option<&'static str>,
}

/// Dependency status of a pending job.
enum DepStatus {
    Ready,
    Waiting,
    Never(String),
}

impl SqliteStore {
    /// A store over `db` for the engine's `cluster` and `limits`; `names` interns users and
    /// QOS names as the engine's associations do. The driver loop stops once `shutdown` is set.
    pub fn new(
        db: Db,
        cluster: Cluster,
        limits: Limits,
        names: Names,
        shutdown: Arc<AtomicBool>,
    ) -> SqliteStore {
        SqliteStore {
            db,
            handed: BTreeMap::new(),
            held: BTreeSet::new(),
            cursor: 0,
            array_active: FastMap::default(),
            relayed: BTreeSet::new(),
            deferred: VecDeque::new(),
            faults: Faults::default(),
            names,
            shutdown,
            cluster,
            limits,
            no_elastic: None,
        }
    }

    /// Elastic jobs fail at hand-over with reason `why` (the Slurm executor cannot resize).
    pub fn refuse_elastic(mut self, why: &'static str) -> SqliteStore {
        self.no_elastic = Some(why);
        self
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

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
            let ended = !other.state.is_active();
            let ok = other.state == JobState::Completed;
            match kind {
                DepKind::After => ready &= other.state != JobState::Pending,
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

    /// Why a pending job waits for other jobs (its dependencies, its array's `%limit`).
    fn wait_reason(&self, row: &JobRow) -> Option<Reason> {
        match self.dependency_status(row) {
            DepStatus::Ready => {}
            DepStatus::Waiting => return Some(Reason::pending(PendingReason::Dependency)),
            DepStatus::Never(why) => {
                return Some(Reason::with(PendingReason::DependencyNeverSatisfied, why));
            }
        }
        if let (Some(a), Some(limit)) = (row.array_job_id, row.array_limit)
            && self.array_active.get(&a).copied().unwrap_or(0) >= limit
        {
            return Some(Reason::pending(PendingReason::JobArrayTaskLimit));
        }
        None
    }

    /// Admission: why a job could never start as things are (the daemon's cluster cannot hold
    /// it, or it alone exceeds a limit), or `None`.
    fn refusal(&self, spec: &JobSpec) -> Option<Reason> {
        if let Err(why) = can_ever_run(&self.cluster, &PLACEMENT as &dyn Placement, spec) {
            return Some(Reason::with(PendingReason::ReqNodeNotAvail, why));
        }
        exceeds_limits_alone(&self.limits, spec)
            .map(|r| Reason::with(r, "the job alone exceeds it"))
    }

    /// Records a pending job's reason when it changed (best effort: a reason is only shown).
    fn set_reason(&self, row: &JobRow, reason: &Reason) {
        if *reason != row.reason {
            let _ = self.db.set_reason(row.id, reason);
        }
    }

    /// The engine's view of a stored job.
    pub fn spec_of(&mut self, row: &JobRow) -> JobSpec {
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
                (Some(min), Some(max)) => Some(ElasticRange { min, max }),
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

    /// Fails the jobs whose rows do not decode (each with its reason; nothing else is
    /// touched), so one damaged row never stops the daemon or reaches the engine.
    fn fail_bad_rows(&mut self, bad: &[BadRow], now: Time) {
        for b in bad {
            live_log!("mini-slurm: job {}: {}: failing it", b.id, b.why);
            if self.db.fail_bad_row(b, now.0).is_ok() {
                self.held.remove(&b.id);
            }
        }
    }

    /// A job the engine holds without this store handing it over (adopted after a restart).
    pub(super) fn handed_over(&mut self, row: &JobRow) {
        self.handed.insert(row.id, row.array_job_id);
        if let Some(a) = row.array_job_id {
            *self.array_active.entry(a).or_insert(0) += 1;
        }
    }
}

/// A write the database refused (busy past its timeout, disk full, an I/O error): kept in
/// order and retried before anything else, so the records catch up once the fault clears.
#[derive(Clone, Debug)]
enum Deferred {
    Start { id: i64, at: Time },
    End(Completion),
    Resize { id: i64 },
}

/// The store's transient faults: back-off between retries and what to tell the admin.
#[derive(Debug, Default)]
struct Faults {
    /// Consecutive failures (0: healthy).
    failures: u32,
    /// No database work before this instant (wall clock).
    retry_at: Option<std::time::Instant>,
    /// The first failure of the current fault, and its text.
    since: Option<(i64, String)>,
}

impl Faults {
    /// Whether the database may be tried now.
    fn may_try(&self) -> bool {
        self.retry_at.is_none_or(|t| std::time::Instant::now() >= t)
    }
    /// A failure: logged once per fault (and again when its text changes), then retried
    /// after 0.1 s, 0.2 s, ... up to 5 s.
    fn failed(&mut self, what: &str, e: &LiveError) {
        let text = e.to_string();
        if self.since.as_ref().is_none_or(|(_, t)| *t != text) {
            live_log!("mini-slurm: {what}: {text} (retrying until the database accepts it)");
            self.since = Some((super::now_ms(), text));
        }
        self.failures = self.failures.saturating_add(1);
        let ms = (100u64 << self.failures.min(6)).min(5_000);
        self.retry_at = Some(std::time::Instant::now() + std::time::Duration::from_millis(ms));
    }
    /// The database works again: the fault as one line for `stats`, if there was one.
    fn cleared(&mut self) -> Option<String> {
        self.failures = 0;
        self.retry_at = None;
        self.since.take().map(|(t, text)| {
            let secs = (super::now_ms() - t) as f64 / 1000.0;
            live_log!("mini-slurm: the database works again after {secs:.1} s");
            format!("{text} (from {t} ms for {secs:.1} s, recovered)")
        })
    }
}

impl SqliteStore {
    /// Applies one write; an error leaves it to be retried.
    fn write(&mut self, op: &Deferred) -> Result<(), LiveError> {
        match op {
            Deferred::Start { id, at } => self.db.record_start(*id, at.0)?,
            Deferred::Resize { id } => self.db.count_resize(*id)?,
            Deferred::End(c) => {
                let id = c.job.0 as i64;
                // Requeued by preemption: the job waits again (the engine still holds it) and
                // restarts from scratch; its runner has exited (that is how the end was learnt).
                if matches!(
                    c.preempted,
                    Some(PreemptMode::Requeue) | Some(PreemptMode::Suspend)
                ) {
                    self.db.record_requeue(id)?;
                    return Ok(());
                }
                let reason = match self.db.job(id)? {
                    // The executor recorded why: the runner could not start it (a failed setup),
                    // or the Slurm executor's submission failed or Slurm lost the job.
                    Some(r)
                        if r.runner_done
                            && matches!(
                                r.reason.code,
                                ReasonCode::NodeFail | ReasonCode::JobLaunchFailure
                            ) =>
                    {
                        r.reason
                    }
                    Some(r) if r.runner_done || c.state == FinalState::Cancelled => Reason::NONE,
                    _ => Reason::runner_lost(),
                };
                self.db.record_end(id, c.state, c.at.0, &reason)?;
            }
        }
        Ok(())
    }

    /// Writes what was deferred, in order; false while the database still refuses.
    fn flush(&mut self) -> bool {
        if self.deferred.is_empty() && self.faults.failures == 0 {
            return true;
        }
        if !self.faults.may_try() {
            return false;
        }
        while let Some(op) = self.deferred.front().cloned() {
            if let Err(e) = self.write(&op) {
                self.faults.failed("recording", &e);
                return false;
            }
            self.deferred.pop_front();
        }
        if let Some(fault) = self.faults.cleared() {
            let _ = self.db.set_daemon_meta(&super::store::DaemonMeta {
                last_fault: Some(fault),
                ..Default::default()
            });
        }
        true
    }

    /// Writes `op` now, or defers it behind earlier writes that still wait.
    fn record(&mut self, op: Deferred) {
        if self.flush() {
            match self.write(&op) {
                Ok(()) => return,
                Err(e) => self.faults.failed("recording", &e),
            }
        }
        self.deferred.push_back(op);
    }

    /// Writes the database has refused and that wait to be retried.
    pub fn deferred_writes(&self) -> usize {
        self.deferred.len()
    }

    /// The hand-over proper: new submissions and the jobs held back before, in id
    /// (submission) order.
    fn hand_over(&mut self, now: Time, out: &mut Vec<Arc<JobSpec>>) -> Result<(), LiveError> {
        let held: Vec<i64> = std::mem::take(&mut self.held).into_iter().collect();
        let (rows, bad) = match self.db.pending_arrivals(self.cursor, &held) {
            Ok(r) => r,
            Err(e) => {
                self.held.extend(held);
                return Err(e.into());
            }
        };
        self.fail_bad_rows(&bad, now);
        for row in rows {
            self.cursor = self.cursor.max(row.id);
            if self.handed.contains_key(&row.id) {
                continue;
            }
            if let Some(reason) = self.wait_reason(&row) {
                self.set_reason(&row, &reason);
                self.held.insert(row.id);
                continue;
            }
            if let (Some(why), Some(_)) = (self.no_elastic, row.min_cpus) {
                let id = row.id;
                self.fail_bad_rows(
                    &[BadRow {
                        id,
                        why: why.into(),
                    }],
                    now,
                );
                continue;
            }
            let spec = self.spec_of(&row);
            if let Some(reason) = self.refusal(&spec) {
                self.set_reason(&row, &reason);
                self.held.insert(row.id);
                continue;
            }
            self.set_reason(&row, &Reason::NONE);
            self.handed_over(&row);
            out.push(Arc::new(spec));
        }
        Ok(())
    }

    /// Relays the cancellations asked for (see [`Store::take_cancellations`]).
    fn relay_cancellations(&mut self, now: Time, out: &mut Vec<JobId>) -> Result<(), LiveError> {
        let (rows, bad) = self.db.cancel_requests()?;
        self.fail_bad_rows(&bad, now);
        for row in rows {
            if self.handed.contains_key(&row.id) {
                // Relayed once per run; the engine stops it and its end clears the request.
                if self.relayed.insert(row.id) {
                    out.push(JobId(row.id as u64));
                    failpoint::hit("cancel:relayed");
                }
            } else if row.state == JobState::Pending {
                self.db.cancel_pending(row.id, now.0)?;
                self.held.remove(&row.id);
            }
        }
        Ok(())
    }
}

/// Live mode's store never stops the daemon for a fault of the database: reads that fail
/// hand nothing over this time and are retried with back-off, writes that fail are kept in
/// order and retried before anything else (see `Deferred`).
impl Store for SqliteStore {
    type Error = LiveError;

    fn record_resize(&mut self, _now: Time, cmd: &Command) -> Result<(), LiveError> {
        // The executor had the CPU ids it chose recorded; the count of resizes is history.
        if let Command::Resize { job, .. } = cmd {
            self.record(Deferred::Resize { id: job.0 as i64 });
        }
        Ok(())
    }

    fn take_arrivals(&mut self, now: Time, out: &mut Vec<Arc<JobSpec>>) -> Result<(), LiveError> {
        if !self.flush() {
            return Ok(());
        }
        if let Err(e) = self.hand_over(now, out) {
            self.faults.failed("reading submissions", &e);
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

    fn record_start(&mut self, now: Time, cmd: &Command) -> Result<(), LiveError> {
        if let Command::Start { job, .. } = cmd {
            self.record(Deferred::Start {
                id: job.0 as i64,
                at: now,
            });
            failpoint::hit("start:recorded");
        }
        Ok(())
    }

    fn record_end(&mut self, c: &Completion) -> Result<(), LiveError> {
        let id = c.job.0 as i64;
        if c.preempted.is_none_or(|m| m == PreemptMode::Cancel) {
            self.relayed.remove(&id);
            if let Some(Some(a)) = self.handed.remove(&id)
                && let Some(n) = self.array_active.get_mut(&a)
            {
                *n -= 1;
            }
        }
        self.record(Deferred::End(*c));
        failpoint::hit("end:recorded");
        Ok(())
    }

    fn take_cancellations(&mut self, now: Time, out: &mut Vec<JobId>) -> Result<(), LiveError> {
        if self.faults.failures > 0 {
            return Ok(());
        }
        if let Err(e) = self.relay_cancellations(now, out) {
            self.faults.failed("reading cancellations", &e);
        }
        Ok(())
    }
}

/// The process executor's ledger, over the daemon's second connection to the database.
pub struct DbLedger(pub Db);

impl DbLedger {
    fn row(&self, job: JobId) -> Option<JobRow> {
        self.0.job(job.0 as i64).ok().flatten()
    }
}

/// What a row says its runner recorded.
pub fn runner_report(row: &JobRow) -> RunnerReport {
    RunnerReport {
        done: row.runner_done,
        oom: row.oom,
        timeout: row.timed_out,
        exit_code: row.exit_code,
        signal: row.signal,
    }
}

impl Ledger for DbLedger {
    fn launching(&mut self, job: JobId, launch: &Launch<'_>) -> Result<Allocated, LiveError> {
        Ok(self.0.record_launch(job.0 as i64, launch)?)
    }
    fn resized(&mut self, job: JobId, cpus: &[usize]) -> Result<Option<i32>, LiveError> {
        let n = cpus.len() as u32;
        Ok(self.0.record_resized(job.0 as i64, &cpu_list(cpus), n)?)
    }
    fn process_group(&self, job: JobId) -> Option<i32> {
        self.row(job).and_then(|r| r.job_pgid)
    }
    fn runner_report(&self, job: JobId) -> Option<RunnerReport> {
        self.row(job).map(|r| runner_report(&r))
    }
    fn preempting(&mut self, job: JobId, mode: PreemptMode) -> Result<(), LiveError> {
        Ok(self
            .0
            .record_preempting(job.0 as i64, Some(preempt_name(mode)))?)
    }
    fn cancel_requested(&self, job: JobId) -> bool {
        self.row(job).is_some_and(|r| r.cancel_requested > 0)
    }
    fn unmanaged_ended(&mut self, job: JobId, state: FinalState, reason: &Reason) {
        let id = job.0 as i64;
        if let Err(e) = self.0.record_end(id, state, super::now_ms(), reason) {
            live_log!("mini-slurm: job {job}: cannot record its end: {e}");
        }
    }
    fn job_cgroups(&self, job: JobId) -> Vec<std::path::PathBuf> {
        self.row(job)
            .map(|r| r.cgroups.iter().map(std::path::PathBuf::from).collect())
            .unwrap_or_default()
    }
    fn pin_failed(&mut self, job: JobId, error: &str) {
        let _ = self.0.record_pin_error(job.0 as i64, error);
    }
}

/// How a preemption is stored (`preempting`): Slurm's PreemptMode names, lowercase.
pub fn preempt_name(m: PreemptMode) -> &'static str {
    match m {
        PreemptMode::Requeue => "requeue",
        PreemptMode::Suspend => "suspend",
        PreemptMode::Cancel => "cancel",
    }
}

/// The final state and reason of a job recorded running whose runner is gone: a job whose
/// cancellation was asked for ended CANCELLED (the daemon may have died between stopping it
/// and recording why).
pub(super) fn final_of(row: &JobRow) -> (FinalState, Reason) {
    let asked = (row.cancel_requested > 0).then_some(FinalState::Cancelled);
    outcome(&runner_report(row), asked)
}
