//! The discrete-event simulator: a virtual clock, a simulated executor that knows each job's
//! true run time, and an in-memory store fed by a trace — plugged into the shared driver loop.

use crate::driver::{self, Clock, Completion, DriverError, Executor, Observer, Store};
use crate::engine::{Command, Engine};
use crate::ids::{FastMap, JobId};
use crate::metrics::{ElasticWork, JobResult, SimResult};
use crate::model::{FinalState, JobSpec, JobTruth, PendingReason, PreemptMode, Slice};
use crate::sched::Policy;
use crate::sched::limits::Limits;
use crate::sched::placement::Placement;
use crate::time::{Dur, Time};
use crate::trace::SimJobs;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

/// A clock that jumps to the next deadline.
#[derive(Debug, Default)]
pub struct VirtualClock {
    now: Time,
}

impl VirtualClock {
    pub fn starting_at(t: Time) -> VirtualClock {
        VirtualClock { now: t }
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Time {
        self.now
    }
    fn wait_until(&mut self, deadline: Option<Time>) {
        if let Some(d) = deadline {
            self.now = self.now.max(d);
        }
    }
}

/// Runs jobs on virtual time: each ends after its true run time — stretched by the topology
/// penalty when it spans several leaf switches — or at its time limit (TIMEOUT) when one is
/// set and shorter.
#[derive(Debug, Default)]
pub struct SimExecutor {
    truth: FastMap<JobId, JobTruth>,
    /// Extra run time per additional leaf switch spanned, in thousandths of the run time.
    span_penalty_permille: u32,
    /// (end, entry id, job, state), earliest first; entries superseded by a preemption are
    /// skipped.
    ends: BinaryHeap<Reverse<(Time, u64, JobId, FinalState)>>,
    started: u64,
    live: FastMap<JobId, Segment>,
    /// Work left of suspended jobs, in their work units (milliseconds for a rigid job).
    remaining: FastMap<JobId, i64>,
    /// Elastic jobs' work ledgers. Checked by tests.
    work: FastMap<JobId, ElasticWork>,
    /// Elastic jobs and their requested size (the size their work is defined at).
    elastic: FastMap<JobId, u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum SimExecError {
    #[error("job {0} has no recorded run time")]
    UnknownJob(JobId),
}

impl SimExecutor {
    pub fn new(truth: FastMap<JobId, JobTruth>, span_penalty_permille: u32) -> SimExecutor {
        SimExecutor {
            truth,
            span_penalty_permille,
            ..SimExecutor::default()
        }
    }

    /// Declares a job elastic, with the CPU count its work is defined at (its requested size).
    pub fn set_elastic(&mut self, job: JobId, procs: u32) {
        self.elastic.insert(job, procs);
    }

    /// The work ledger of every elastic job that ran.
    pub fn elastic_work(&self) -> &FastMap<JobId, ElasticWork> {
        &self.work
    }

    /// The run time of a job of true run time `run` spanning `leaves` leaf switches.
    pub fn stretched(&self, run: Dur, leaves: u32) -> Dur {
        stretch(run, leaves, self.span_penalty_permille)
    }
}

/// `run × (1 + penalty × (leaves − 1))`, exact to the millisecond (rounded down).
pub fn stretch(run: Dur, leaves: u32, penalty_permille: u32) -> Dur {
    if leaves <= 1 || penalty_permille == 0 {
        return run;
    }
    let factor = 1000 + i128::from(penalty_permille) * i128::from(leaves - 1);
    Dur((i128::from(run.0) * factor / 1000) as i64)
}

/// A job on the simulated machine: its current segment and the heap entry that ends it.
/// Progress is counted in integer work units (see [`crate::model::elastic`]): a rigid job
/// runs at 1 unit per millisecond; an elastic one at `rate` units per millisecond on its
/// current CPUs.
#[derive(Clone, Copy, Debug)]
struct Segment {
    end: Time,
    /// The id of the valid heap entry (earlier ones for this job are stale).
    entry: u64,
    preempt: Option<PreemptMode>,
    /// When a pending preemption stops it.
    preempt_at: Time,
    /// Units left at `from`, and the rate since `from`.
    left: i64,
    rate: i64,
    from: Time,
    state: FinalState,
}

impl Segment {
    /// Units delivered by `at` (never more than what was left).
    fn done_by(&self, at: Time) -> i64 {
        self.left
            .min(self.rate.saturating_mul((at - self.from).0.max(0)))
    }
}

impl Executor for SimExecutor {
    type Error = SimExecError;

    fn apply(&mut self, now: Time, cmd: &Command) -> Result<(), SimExecError> {
        match *cmd {
            // Traces cancel nothing; a cancelled pending job needs nothing from the executor.
            Command::Cancel { .. } => {}
            Command::Start {
                job,
                time_limit,
                leaf_switches,
                cpus: procs,
                ..
            } => {
                let t = *self.truth.get(&job).ok_or(SimExecError::UnknownJob(job))?;
                // A suspended job resumes with its remaining work.
                let left = if self.remaining.is_empty() {
                    None
                } else {
                    self.remaining.remove(&job)
                };
                let elastic = if self.elastic.is_empty() {
                    None
                } else {
                    self.elastic.get(&job).copied()
                };
                let (scale, rate) = match elastic {
                    Some(p) => (t.speedup.scale(p), t.speedup.rate(p, procs)),
                    None => (1, 1),
                };
                let units = left.unwrap_or_else(|| {
                    self.stretched(t.runtime, leaf_switches)
                        .0
                        .saturating_mul(scale)
                });
                let (units, state) = match time_limit {
                    Some(l) if units > l.0.saturating_mul(scale) => {
                        (l.0.saturating_mul(scale), FinalState::Timeout)
                    }
                    _ => (units, FinalState::Completed),
                };
                if elastic.is_some() {
                    let w = self.work.entry(job).or_default();
                    if left.is_none() {
                        *w = ElasticWork {
                            total: units,
                            ..ElasticWork::default()
                        };
                    }
                }
                let end = now + Dur(crate::sched::ceil_div(units, rate));
                let entry = self.started;
                self.ends.push(Reverse((end, entry, job, state)));
                self.live.insert(
                    job,
                    Segment {
                        end,
                        entry,
                        preempt: None,
                        preempt_at: Time::ZERO,
                        left: units,
                        rate,
                        from: now,
                        state,
                    },
                );
                self.started += 1;
            }
            Command::Resize { job, cpus, .. } => {
                let (Some(seg), Some(&p), Some(t)) = (
                    self.live.get_mut(&job),
                    self.elastic.get(&job),
                    self.truth.get(&job),
                ) else {
                    return Err(SimExecError::UnknownJob(job));
                };
                let done = seg.done_by(now);
                seg.left -= done;
                seg.rate = t.speedup.rate(p, cpus);
                seg.from = now;
                seg.end = now + Dur(crate::sched::ceil_div(seg.left, seg.rate));
                // A pending preemption still stops it, unless it now ends first.
                if seg.preempt.is_none() || seg.end <= seg.preempt_at {
                    seg.preempt = None;
                    seg.entry = self.started;
                    self.ends
                        .push(Reverse((seg.end, self.started, job, seg.state)));
                    self.started += 1;
                }
                let w = self.work.entry(job).or_default();
                w.delivered += done;
                w.resizes += 1;
            }
            Command::Preempt { job, mode, at } => {
                if let Some(seg) = self.live.get_mut(&job) {
                    // A job that ends by itself before its grace time is over just completes.
                    if seg.end > at {
                        seg.entry = self.started;
                        seg.preempt = Some(mode);
                        seg.preempt_at = at;
                        self.ends
                            .push(Reverse((at, self.started, job, FinalState::Preempted)));
                        self.started += 1;
                    }
                }
            }
        }
        Ok(())
    }

    fn take_completions(&mut self, now: Time, out: &mut Vec<Completion>) {
        while let Some(&Reverse((at, entry, job, state))) = self.ends.peek() {
            if at > now {
                break;
            }
            self.ends.pop();
            let Some(seg) = self.live.remove(&job) else {
                continue;
            };
            if seg.entry != entry {
                // Superseded by a preemption: the job's valid entry is still queued.
                self.live.insert(job, seg);
                continue;
            }
            let done = seg.done_by(at);
            if let Some(w) = (!self.work.is_empty())
                .then(|| self.work.get_mut(&job))
                .flatten()
            {
                w.delivered += done;
                w.late |= state != FinalState::Preempted
                    && at > seg.from
                    && seg.rate.saturating_mul((at - seg.from).0 - 1) >= seg.left;
            }
            if state == FinalState::Preempted && seg.preempt == Some(PreemptMode::Suspend) {
                self.remaining.insert(job, seg.left - done);
            }
            out.push(Completion {
                job,
                at,
                state,
                preempted: if state == FinalState::Preempted {
                    seg.preempt
                } else {
                    None
                },
            });
        }
    }

    fn next_completion(&self) -> Option<Time> {
        self.ends.peek().map(|Reverse(e)| e.0)
    }
}

/// What happened to one job.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub start: Option<Time>,
    pub finish: Option<Time>,
    pub state: Option<FinalState>,
    pub alloc: Arc<[Slice]>,
    pub leaf_switches: u32,
    pub waited_for: PendingReason,
    pub preemptions: u32,
    /// Milliseconds run in all segments (a preempted job runs several).
    pub busy_ms: i64,
    /// CPU-milliseconds of work thrown away by requeues.
    pub lost_cpu_ms: i64,
    /// CPU-milliseconds held over all segments (CPUs × time, following resizes).
    pub cpu_ms: i64,
    pub resizes: u32,
    /// CPUs held now, since `seg_from`; CPU-milliseconds of the current run so far.
    cpus: u32,
    seg_from: Time,
    run_cpu_ms: i64,
}

/// An in-memory store: arrivals from a trace in queue order, outcomes by position.
#[derive(Debug)]
pub struct MemStore<'a> {
    jobs: &'a [(Arc<JobSpec>, JobTruth)],
    next: usize,
    index: FastMap<JobId, u32>,
    pub outcomes: Vec<Outcome>,
}

#[derive(Debug, thiserror::Error)]
pub enum MemStoreError {
    #[error("unknown job {0}")]
    UnknownJob(JobId),
}

impl<'a> MemStore<'a> {
    /// `jobs` must be in queue order.
    pub fn new(jobs: &'a [(Arc<JobSpec>, JobTruth)]) -> MemStore<'a> {
        let index = jobs
            .iter()
            .enumerate()
            .map(|(i, j)| (j.0.id, i as u32))
            .collect();
        let outcomes = vec![Outcome::default(); jobs.len()];
        MemStore {
            jobs,
            next: 0,
            index,
            outcomes,
        }
    }
    fn slot(&mut self, job: JobId) -> Result<&mut Outcome, MemStoreError> {
        let i = *self.index.get(&job).ok_or(MemStoreError::UnknownJob(job))?;
        Ok(&mut self.outcomes[i as usize])
    }
    pub fn jobs(&self) -> &[(Arc<JobSpec>, JobTruth)] {
        self.jobs
    }
    /// How many jobs have been handed to the engine so far.
    pub fn handed_over(&self) -> usize {
        self.next
    }
}

impl Store for MemStore<'_> {
    type Error = MemStoreError;

    fn take_arrivals(
        &mut self,
        now: Time,
        out: &mut Vec<Arc<JobSpec>>,
    ) -> Result<(), MemStoreError> {
        while let Some((j, _)) = self.jobs.get(self.next) {
            if j.submit > now {
                break;
            }
            out.push(Arc::clone(j));
            self.next += 1;
        }
        Ok(())
    }
    fn next_arrival(&self) -> Option<Time> {
        self.jobs.get(self.next).map(|j| j.0.submit)
    }
    fn exhausted(&self) -> bool {
        self.next >= self.jobs.len()
    }
    fn record_start(&mut self, now: Time, cmd: &Command) -> Result<(), MemStoreError> {
        let Command::Start {
            job,
            alloc,
            leaf_switches,
            waited_for,
            ..
        } = cmd
        else {
            return Ok(());
        };
        let slot = self.slot(*job)?;
        slot.start = Some(now);
        slot.cpus = alloc.iter().map(|s| s.cpus).sum();
        slot.seg_from = now;
        slot.run_cpu_ms = 0;
        slot.alloc = Arc::clone(alloc);
        slot.leaf_switches = *leaf_switches;
        slot.waited_for = *waited_for;
        Ok(())
    }
    fn record_end(&mut self, c: &Completion) -> Result<(), MemStoreError> {
        let i = *self
            .index
            .get(&c.job)
            .ok_or(MemStoreError::UnknownJob(c.job))? as usize;
        let s = &mut self.outcomes[i];
        let segment = s.start.map_or(0, |st| (c.at - st).0);
        s.busy_ms += segment;
        let tail = i64::from(s.cpus) * (c.at - s.seg_from).0;
        s.cpu_ms += tail;
        s.run_cpu_ms += tail;
        match c.preempted {
            Some(PreemptMode::Requeue) => {
                s.preemptions += 1;
                s.lost_cpu_ms += s.run_cpu_ms;
            }
            Some(PreemptMode::Suspend) => s.preemptions += 1,
            Some(PreemptMode::Cancel) | None => {
                s.preemptions += u32::from(c.preempted.is_some());
                s.finish = Some(c.at);
                s.state = Some(c.state);
            }
        }
        Ok(())
    }
    fn record_resize(&mut self, now: Time, cmd: &Command) -> Result<(), MemStoreError> {
        let Command::Resize { job, cpus, alloc } = cmd else {
            return Ok(());
        };
        let s = self.slot(*job)?;
        let seg = i64::from(s.cpus) * (now - s.seg_from).0;
        s.cpu_ms += seg;
        s.run_cpu_ms += seg;
        s.cpus = *cpus;
        s.seg_from = now;
        s.resizes += 1;
        s.alloc = Arc::clone(alloc);
        Ok(())
    }
}

/// How to run a simulation.
pub struct SimConfig<'a> {
    pub policy: Box<dyn Policy>,
    /// The canonical spec string, for messages.
    pub policy_name: &'a str,
    pub placement: Box<dyn Placement>,
    /// Run-time penalty per additional leaf switch spanned, in thousandths (0: none).
    pub span_penalty_permille: u32,
    /// Per-user and per-account limits (quotas).
    pub limits: Limits,
    /// The fair-share association tree (accounts file), if any.
    pub assoc: Option<crate::model::AssocConfig>,
}

impl<'a> SimConfig<'a> {
    /// A policy with best-fit placement and no topology penalty.
    pub fn new(policy: Box<dyn Policy>, policy_name: &'a str) -> SimConfig<'a> {
        SimConfig {
            policy,
            policy_name,
            placement: Box::new(crate::sched::placement::BestFit),
            span_penalty_permille: 0,
            limits: Limits::default(),
            assoc: None,
        }
    }
}

/// Simulates `jobs` under `cfg`. `observer` sees the engine after every step.
pub fn simulate(
    jobs: &SimJobs,
    cfg: SimConfig<'_>,
    observer: &mut dyn Observer,
) -> Result<SimResult, DriverError> {
    let policy_name = cfg.policy_name;
    let truth: FastMap<JobId, JobTruth> = jobs.jobs.iter().map(|(s, t)| (s.id, *t)).collect();
    let start = jobs.jobs.first().map_or(Time::ZERO, |j| j.0.submit);
    let mut engine = Engine::new(jobs.cluster.clone(), cfg.placement, cfg.policy, policy_name);
    engine.set_limits(cfg.limits);
    if let Some(a) = cfg.assoc {
        engine.set_associations(a);
    }
    let mut clock = VirtualClock::starting_at(start);
    let mut exec = SimExecutor::new(truth, cfg.span_penalty_permille);
    for (s, _) in &jobs.jobs {
        if s.elastic.is_some() {
            exec.set_elastic(s.id, s.cpus);
        }
    }
    let mut store = MemStore::new(&jobs.jobs);
    driver::run(&mut engine, &mut clock, &mut exec, &mut store, observer)?;
    let mut out = Vec::with_capacity(jobs.jobs.len());
    for ((spec, truth), o) in jobs.jobs.iter().zip(std::mem::take(&mut store.outcomes)) {
        // The driver only returns Ok once every job has ended.
        let (Some(start), Some(finish), Some(state)) = (o.start, o.finish, o.state) else {
            return Err(DriverError::Stalled {
                now: clock.now(),
                pending: engine.pending().len(),
                policy: policy_name.to_string(),
            });
        };
        out.push(JobResult {
            spec: Arc::clone(spec),
            runtime: truth.runtime,
            start,
            finish,
            state,
            alloc: o.alloc,
            leaf_switches: o.leaf_switches,
            pending_reason: o.waited_for,
            preemptions: o.preemptions,
            busy: Dur(o.busy_ms),
            lost_cpu_ms: o.lost_cpu_ms,
            cpu_ms: o.cpu_ms,
            resizes: o.resizes,
        });
    }
    out.sort_by_key(|j| j.spec.id);
    let mut elastic_work: Vec<(JobId, ElasticWork)> =
        exec.elastic_work().iter().map(|(j, w)| (*j, *w)).collect();
    elastic_work.sort_unstable_by_key(|w| w.0);
    Ok(SimResult {
        procs: jobs.procs(),
        jobs: out,
        passes: engine.passes(),
        elastic_work,
    })
}
