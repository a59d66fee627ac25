//! [`SlurmExecutor`]: the `driver::Executor` that runs each started job as one Slurm batch job.
//!
//! A `Start` records the launch (CONFIGURING, next launch number) and runs `sbatch` at once;
//! the Slurm id goes into the job's row as soon as `sbatch` prints it. A submission that fails
//! is retried with back-off (1 s doubling to 60 s) while the job holds its resources in the
//! engine; before each retry the job's token is looked up in `squeue`, so a submission that
//! reached Slurm although `sbatch` failed or hung is adopted, not repeated. `sbatch` refusing
//! the job itself ("Batch job submission failed: ...") ends it FAILED (`JobLaunchFailure`).
//!
//! Every poll interval one `squeue` lists all the jobs it tracks; those squeue no longer knows
//! are asked of `sacct` in one call. A job found in neither is not assumed done: it is asked
//! again on every poll, and failed (`NodeFail`) only after `lost_after`. A state this build
//! does not know is logged once and asked again. A command that fails delays the next poll
//! (back-off up to 60 s) and is counted for `stats` (`Faults`).

use crate::driver::{Completion, Executor};
use crate::engine::Command;
use crate::ids::JobId;
use crate::live::clock::TimeBase;
use crate::live::failpoint;
use crate::live::slurm::cli::{Cli, SlurmError};
use crate::live::slurm::{Placed, submission, token};
use crate::live::sqlite_store::preempt_name;
use crate::live::store::{Db, Reason, StoreError};
use crate::live::{Home, LiveError};
use crate::model::{Cluster, FinalState, PreemptMode, Slice};
use crate::time::{Dur, Time};
use poll::Faults;
use std::collections::BTreeMap;

mod poll;

/// The longest wait between two tries of a Slurm command.
const MAX_WAIT: Dur = Dur(60_000);
/// The first wait after a failure.
const FIRST_WAIT: Dur = Dur(1_000);

/// A job submitted to Slurm, as the executor follows it.
#[derive(Clone, Debug)]
pub(super) struct Tracked {
    pub(super) slurm_id: u64,
    pub(super) launch: i64,
    /// The Slurm id could not be recorded yet (the database refused): retried every poll.
    pub(super) unrecorded: bool,
    /// Why mini-slurm is stopping it (a cancellation, a preemption).
    pub(super) stop: Option<FinalState>,
    pub(super) preempt: Option<PreemptMode>,
    /// A `scancel` that has not succeeded yet.
    pub(super) cancel_due: bool,
    /// Held by the engine (false: adopted after a restart beyond this daemon's cluster).
    pub(super) managed: bool,
    /// The state Slurm last reported (as printed), to record changes only.
    pub(super) last: Option<String>,
    /// Since when neither squeue nor sacct knows it.
    pub(super) missing_since: Option<Time>,
}

impl Tracked {
    pub(super) fn new(slurm_id: u64, launch: i64, managed: bool) -> Tracked {
        Tracked {
            slurm_id,
            launch,
            unrecorded: false,
            stop: None,
            preempt: None,
            cancel_due: false,
            managed,
            last: None,
            missing_since: None,
        }
    }
}

/// A start not submitted yet.
struct Submit {
    alloc: Vec<Slice>,
    limit: Option<Dur>,
    started: Time,
    /// The launch recorded for it (`None`: not yet).
    launch: Option<i64>,
    /// `sbatch` ran at least once for this launch: look the token up before running it again.
    tried: bool,
    at: Time,
    wait: Dur,
}

/// Runs the engine's jobs on Slurm (see the module header).
pub struct SlurmExecutor {
    home: Home,
    db: Db,
    pub(super) cli: Cli,
    cluster: Cluster,
    partition: String,
    pub(super) tag: String,
    pub(super) jobs: BTreeMap<JobId, Tracked>,
    submits: BTreeMap<JobId, Submit>,
    /// Jobs stopped before their submission succeeded: their completions, due now, and the
    /// reason to record with a refused one (written when the completion goes out, after the
    /// store has recorded the start).
    stopped: Vec<(Completion, Option<Reason>)>,
    time: TimeBase,
    poll_every: Dur,
    next_poll: Time,
    poll_wait: Dur,
    next_refresh: Time,
    lost_after: Dur,
    faults: Faults,
    /// Unknown states already logged (job, state).
    unknown_seen: std::collections::BTreeSet<(u64, String)>,
    /// The cluster as Slurm last showed it, in words (for `stats`).
    nodes_seen: String,
}

impl SlurmExecutor {
    /// An executor for `cluster` (read from Slurm) in `partition`; `db` is its own connection.
    pub fn new(
        home: Home,
        db: Db,
        cli: Cli,
        cluster: Cluster,
        partition: String,
        poll_every: Dur,
        lost_after: Dur,
    ) -> SlurmExecutor {
        let tag = crate::live::slurm::home_tag(&home);
        SlurmExecutor {
            home,
            db,
            cli,
            cluster,
            partition,
            tag,
            jobs: BTreeMap::new(),
            submits: BTreeMap::new(),
            stopped: Vec::new(),
            time: TimeBase::new(),
            poll_every,
            next_poll: Time(0),
            poll_wait: FIRST_WAIT,
            next_refresh: Time(0),
            lost_after,
            faults: Faults::default(),
            unknown_seen: Default::default(),
            nodes_seen: String::new(),
        }
    }

    /// The time base of deadlines: the daemon clock's (`WallClock::base`).
    pub fn with_time_base(mut self, time: TimeBase) -> Self {
        self.time = time;
        self
    }

    pub(super) fn db(&self) -> &Db {
        &self.db
    }

    /// Command failures so far and the cluster as last seen, in words (for `stats`).
    pub fn describe(&self) -> String {
        format!("{}; {}", self.nodes_seen, self.faults.describe())
    }

    /// Writes [`describe`](Self::describe) for `stats` when it changed (best effort).
    fn publish(&mut self) {
        if std::mem::take(&mut self.faults.changed) {
            let _ = self.db.set_slurm_status(&self.describe());
        }
    }

    /// Takes over a job found in Slurm after a restart.
    pub(super) fn adopt(&mut self, job: JobId, t: Tracked) {
        self.jobs.insert(job, t);
    }

    fn start(&mut self, now: Time, job: JobId, alloc: &[Slice], limit: Option<Dur>) {
        let s = Submit {
            alloc: alloc.to_vec(),
            limit,
            started: now,
            launch: None,
            tried: false,
            at: now,
            wait: FIRST_WAIT,
        };
        self.try_submit(now, job, s);
    }

    /// The allocation as recorded: `node:cpus:gpus:gpu_mask` per node.
    fn alloc_text(&self, alloc: &[Slice]) -> String {
        alloc
            .iter()
            .filter_map(|s| {
                let n = self.cluster.nodes.get(s.node as usize)?;
                Some(format!("{}:{}:{}:{}", n.name, s.cpus, s.gpus, s.gpu_mask))
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// One try: record the launch, look the token up if an earlier try may have reached
    /// Slurm, else run `sbatch`; on a transient failure keep the start to retry.
    fn try_submit(&mut self, now: Time, job: JobId, mut s: Submit) {
        match self.submit_once(job, &mut s) {
            Ok(Some(t)) => {
                self.jobs.insert(job, t);
                // Ask Slurm soon how it goes.
                self.next_poll = self.next_poll.min(now + self.poll_every);
            }
            Ok(None) => {}
            Err(Transient(why)) => {
                if s.wait == FIRST_WAIT {
                    live_log!("mini-slurm: job {job}: cannot submit it yet: {why} (retrying)");
                }
                s.at = now + s.wait;
                s.wait = Dur((s.wait.0 * 2).min(MAX_WAIT.0));
                self.submits.insert(job, s);
            }
        }
        self.publish();
    }

    /// `Ok(Some)`: submitted (or found submitted); `Ok(None)`: refused for good (the job's end
    /// is due); `Err`: try again later.
    fn submit_once(&mut self, job: JobId, s: &mut Submit) -> Result<Option<Tracked>, Transient> {
        let id = job.0 as i64;
        let launch = match s.launch {
            Some(l) => l,
            None => {
                let cpus = s.alloc.iter().map(|a| a.cpus).sum();
                let text = self.alloc_text(&s.alloc);
                let l = self
                    .db
                    .record_slurm_launch(id, &text, cpus, s.started.0)
                    .map_err(|e| Transient(e.to_string()))?;
                failpoint::hit("start:configured");
                s.launch = Some(l);
                l
            }
        };
        let name = token(&self.tag, id, launch);
        if s.tried {
            // The last sbatch may have reached Slurm although it failed or hung.
            match self.cli.squeue_names(std::slice::from_ref(&name)) {
                Ok(found) => {
                    if let Some(j) = found.iter().find(|j| j.name == name) {
                        return Ok(Some(self.submitted(job, launch, j.id)));
                    }
                }
                Err(e) => {
                    self.faults.failed(&e);
                    return Err(Transient(e.to_string()));
                }
            }
        }
        let row = match self.db.job_with_env(id) {
            Ok(Some(row)) => row,
            Ok(None) => return Ok(None),
            // A damaged row fails its job: it never runs with a guessed environment.
            Err(e @ StoreError::Decode { .. }) => {
                self.refused(job, s.started, Reason::bad_row(e.to_string()));
                return Ok(None);
            }
            Err(e) => return Err(Transient(e.to_string())),
        };
        let placed = Placed {
            cluster: &self.cluster,
            partition: &self.partition,
            alloc: &s.alloc,
            limit: s.limit,
            token: &name,
        };
        let sub = submission(&self.home, &row, &placed);
        s.tried = true;
        match self.cli.sbatch(&sub) {
            Ok(slurm_id) => {
                failpoint::hit("slurm:submitted");
                Ok(Some(self.submitted(job, launch, slurm_id)))
            }
            Err(SlurmError::Failed { stderr, .. })
                if stderr.contains("Batch job submission failed")
                    && !stderr.contains("contact")
                    && !stderr.contains("timed out") =>
            {
                live_log!("mini-slurm: job {job}: Slurm refused it: {stderr}");
                let why = Reason::bad_row(format!("sbatch: {stderr}"));
                self.refused(job, s.started, why);
                Ok(None)
            }
            Err(e) => {
                self.faults.failed(&e);
                Err(Transient(e.to_string()))
            }
        }
    }

    /// A job that cannot be submitted ends FAILED with `why` (recorded when its completion
    /// goes out).
    fn refused(&mut self, job: JobId, at: Time, why: Reason) {
        let c = Completion {
            job,
            at,
            state: FinalState::Failed,
            preempted: None,
        };
        self.stopped.push((c, Some(why)));
    }

    /// A submission Slurm accepted: its id recorded (or kept to record later).
    fn submitted(&mut self, job: JobId, launch: i64, slurm_id: u64) -> Tracked {
        let mut t = Tracked::new(slurm_id, launch, true);
        if let Err(e) = self.db.record_slurm_id(job.0 as i64, launch, slurm_id) {
            live_log!("mini-slurm: job {job}: cannot record its Slurm id {slurm_id} yet: {e}");
            t.unrecorded = true;
        }
        t
    }

    /// Stops a job: `scancel` (retried on every poll until it succeeds). A job not submitted
    /// yet just ends (a submission that may have reached Slurm is cancelled by its name).
    fn stop(&mut self, now: Time, job: JobId, why: FinalState, preempt: Option<PreemptMode>) {
        if let Some(s) = self.submits.remove(&job) {
            if let (true, Some(l)) = (s.tried, s.launch) {
                let _ = self.cli.scancel_name(&token(&self.tag, job.0 as i64, l));
            }
            let c = Completion {
                job,
                at: now,
                state: why,
                preempted: preempt,
            };
            self.stopped.push((c, None));
            return;
        }
        let Some(t) = self.jobs.get_mut(&job) else {
            return;
        };
        t.stop.get_or_insert(why);
        t.preempt = t.preempt.or(preempt);
        t.cancel_due = true;
        self.scancel_due();
    }

    /// Runs the `scancel`s not done yet.
    fn scancel_due(&mut self) {
        let due: Vec<(JobId, u64)> = self
            .jobs
            .iter()
            .filter(|(_, t)| t.cancel_due)
            .map(|(j, t)| (*j, t.slurm_id))
            .collect();
        for (job, sid) in due {
            match self.cli.scancel(sid) {
                Ok(()) => {
                    if let Some(t) = self.jobs.get_mut(&job) {
                        t.cancel_due = false;
                    }
                }
                Err(e) => self.faults.failed(&e),
            }
        }
    }

    /// The completions of jobs stopped before Slurm had them, with their reasons recorded.
    fn take_stopped(&mut self, out: &mut Vec<Completion>) {
        for (c, why) in std::mem::take(&mut self.stopped) {
            if let Some(why) = why {
                let id = c.job.0 as i64;
                let r = self
                    .db
                    .record_slurm_end(id, "", (None, None), Some(&why), c.at.0);
                if let Err(e) = r {
                    live_log!("mini-slurm: job {}: cannot record why: {e}", c.job);
                }
            }
            out.push(c);
        }
    }
}

/// A failure worth retrying, in words.
struct Transient(String);

impl Executor for SlurmExecutor {
    type Error = LiveError;

    fn apply(&mut self, now: Time, cmd: &Command) -> Result<(), LiveError> {
        match cmd {
            Command::Start {
                job,
                alloc,
                time_limit,
                ..
            } => self.start(now, *job, alloc, *time_limit),
            Command::Cancel { job, running: true } => {
                self.stop(now, *job, FinalState::Cancelled, None);
                failpoint::hit("cancel:signalled");
            }
            Command::Cancel { .. } => {}
            Command::Preempt { job, mode, .. } => {
                if let Err(e) = self
                    .db
                    .record_preempting(job.0 as i64, Some(preempt_name(*mode)))
                {
                    live_log!("mini-slurm: job {job}: cannot record its preemption: {e}");
                }
                failpoint::hit("requeue:marked");
                self.stop(now, *job, FinalState::Preempted, Some(*mode));
            }
            // Elastic jobs never reach the engine on this executor (the store fails them).
            Command::Resize { job, .. } => {
                live_log!("mini-slurm: job {job}: {}", crate::live::slurm::NO_ELASTIC);
            }
        }
        self.publish();
        Ok(())
    }

    fn take_completions(&mut self, now: Time, out: &mut Vec<Completion>) {
        self.take_stopped(out);
        let due: Vec<JobId> = self
            .submits
            .iter()
            .filter(|(_, s)| s.at <= now)
            .map(|(j, _)| *j)
            .collect();
        for job in due {
            if let Some(s) = self.submits.remove(&job) {
                self.try_submit(now, job, s);
            }
        }
        self.take_stopped(out);
        // Jobs the engine does not hold relay their cancellations themselves.
        let unmanaged: Vec<JobId> = self
            .jobs
            .iter()
            .filter(|(_, t)| !t.managed && t.stop.is_none())
            .map(|(j, _)| *j)
            .collect();
        for job in unmanaged {
            if let Ok(Some(r)) = self.db.job(job.0 as i64)
                && r.cancel_requested > 0
            {
                self.stop(now, job, FinalState::Cancelled, None);
            }
        }
        if now >= self.next_refresh {
            self.refresh(now);
        }
        if !self.jobs.is_empty() && now >= self.next_poll {
            self.poll(now, out);
        }
        self.publish();
    }

    fn next_completion(&self) -> Option<Time> {
        let now = self.time.now();
        let poll = (!self.jobs.is_empty()).then_some(self.next_poll);
        let stopped = (!self.stopped.is_empty()).then_some(now);
        self.submits
            .values()
            .map(|s| s.at)
            .chain(poll)
            .chain(stopped)
            .chain([self.next_refresh])
            .min()
    }
}
