//! The scheduling engine: plain state and a step function, with no IO.
//!
//! The engine owns the pending queue, the running jobs and the free processors. The driver
//! calls [`Engine::step`] once per decision round with the current time and the events of that
//! instant; the engine applies them (completions first, then submissions), runs exactly one pass
//! of its policy, validates the policy's decisions and returns the commands for the executor.
//! It reads no clock, does no IO, spawns nothing and draws no random numbers, so the same code
//! serves the simulator and the live daemon, and any sequence of steps can be replayed in a test.
//!
//! Queue order is arrival order: each submitted job gets the next sequence number, and the
//! driver hands submissions over in queue order (submit time, then position in the trace).
//! Policies that order differently (priority, fair-share) sort their own view.

use crate::ids::{FastMap, JobId};
use crate::model::{
    AssocConfig, Avail, Cluster, FinalState, JobSpec, PendingReason, PreemptMode, Request, Slice,
};
use crate::sched::limits::{LimitState, Limits, PassUsage};
use crate::sched::placement::Placement;
use crate::sched::usage::UsageLedger;
use crate::sched::{
    Decision, Decisions, PendingJob, Policy, RunningJob, View, admission, ceil_div,
};
use crate::time::{Dur, Time};
use std::sync::Arc;

/// A fact the engine learns about.
#[derive(Clone, Debug)]
pub enum Event {
    Submitted(Arc<JobSpec>),
    Ended {
        job: JobId,
        state: FinalState,
    },
    /// A user cancelled the job (pending or running).
    CancelRequested {
        job: JobId,
    },
}

/// What the executor must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Start {
        job: JobId,
        cpus: u32,
        /// End the job as TIMEOUT once it has run this long.
        time_limit: Option<Dur>,
        /// Where: per node, CPUs and GPUs (with their indices).
        alloc: Arc<[Slice]>,
        /// Leaf switches the allocation spans (0 without a topology).
        leaf_switches: u32,
        /// Why it waited before this start (`None` if it did not).
        waited_for: PendingReason,
    },
    /// Stop a job: a running one is killed (its completion follows, CANCELLED); a pending one
    /// has left the queue (`running` false) and is over.
    Cancel { job: JobId, running: bool },
    /// Preempt a running job at `at` (now + grace): its completion follows with state
    /// PREEMPTED; then the engine requeues it, queues its remaining work, or ends it.
    Preempt {
        job: JobId,
        mode: PreemptMode,
        at: Time,
    },
    /// Resize a running elastic job to `alloc` (`cpus` in all). Issued before the starts of
    /// the same pass, which may use the CPUs a shrink gave up.
    Resize {
        job: JobId,
        cpus: u32,
        alloc: Arc<[Slice]>,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EngineError {
    #[error("job {0} ended but is not running")]
    NotRunning(JobId),
    #[error("job {0} submitted twice")]
    Duplicate(JobId),
    #[error("job {job} can never run in partition {partition}: {why}")]
    CannotRun {
        job: JobId,
        partition: String,
        why: String,
    },
    #[error("job {0} asks for no processors")]
    NoProcessors(JobId),
    #[error("policy {policy} made an invalid decision: {why}")]
    InvalidDecision { policy: String, why: String },
    #[error("engine invariant violated: {0}")]
    Invariant(String),
}

/// The engine's state.
pub struct Engine {
    cluster: Cluster,
    placement: Box<dyn Placement>,
    total: u64,
    free: u64,
    avail: Vec<Avail>,
    gpu_free: Vec<u64>,
    pending: Vec<PendingJob>,
    running: Vec<RunningJob>,
    /// Decayed usage per user and account, kept when the policy asks for it (fair-share).
    usage: Option<UsageLedger>,
    limits: LimitState,
    pass_usage: PassUsage,
    /// The fair-share association tree, when one was configured.
    assoc: Option<Arc<AssocConfig>>,
    /// Reasons the jobs started in the current pass had waited for.
    started_reasons: Vec<PendingReason>,
    policy: Box<dyn Policy>,
    policy_name: String,
    next_seq: u64,
    next_start_seq: u64,
    wake: Option<Time>,
    /// Reservations of the last pass: (job, planned start).
    plan: Vec<(JobId, Time)>,
    decisions: Decisions,
    want_plan: bool,
    /// Some job asked for a leaf-switch limit (`--switches`): passes must also run when such
    /// a wait ends.
    leaf_limited: bool,
    submitted: Vec<Arc<JobSpec>>,
    /// Submission checks by job shape: (partition, request, time limit) → verdict.
    runnable: FastMap<(u32, Request, Option<Dur>), Result<(), String>>,
    started_mask: Vec<bool>,
    passes: u64,
    /// Elastic jobs pending or running (the elastic layer's fast path skips passes without).
    elastic_jobs: usize,
}

/// What a pass's resizes changed, to undo them if a later decision is refused.
struct ResizeUndo {
    avail: Vec<Avail>,
    free: u64,
    /// (index in `running`, the job before its resize).
    jobs: Vec<(usize, RunningJob)>,
}

impl Engine {
    pub fn new(
        cluster: Cluster,
        placement: Box<dyn Placement>,
        policy: Box<dyn Policy>,
        policy_name: &str,
    ) -> Engine {
        let avail = cluster.empty_avail();
        let gpu_free = cluster
            .nodes
            .iter()
            .map(|n| {
                if n.gpus >= 64 {
                    u64::MAX
                } else {
                    (1u64 << n.gpus) - 1
                }
            })
            .collect();
        let total = cluster.total_cpus();
        let usage = policy
            .usage_half_life()
            .map(|h| UsageLedger::with_billing(h, policy.usage_billing()));
        Engine {
            usage,
            limits: LimitState::default(),
            pass_usage: PassUsage::default(),
            assoc: None,
            started_reasons: Vec::new(),
            cluster,
            placement,
            total,
            free: total,
            avail,
            gpu_free,
            pending: Vec::new(),
            running: Vec::new(),
            policy,
            policy_name: policy_name.to_string(),
            next_seq: 0,
            next_start_seq: 0,
            wake: None,
            plan: Vec::new(),
            decisions: Decisions::default(),
            want_plan: false,
            leaf_limited: false,
            submitted: Vec::new(),
            runnable: FastMap::default(),
            started_mask: Vec::new(),
            passes: 0,
            elastic_jobs: 0,
        }
    }

    pub fn total_procs(&self) -> u64 {
        self.total
    }
    /// Free CPUs over all nodes.
    pub fn free_procs(&self) -> u64 {
        self.free
    }
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }
    /// Free resources per node.
    pub fn avail(&self) -> &[Avail] {
        &self.avail
    }
    pub fn placement(&self) -> &dyn Placement {
        self.placement.as_ref()
    }
    pub fn pending(&self) -> &[PendingJob] {
        &self.pending
    }
    pub fn running(&self) -> &[RunningJob] {
        &self.running
    }
    /// The fair-share association tree (accounts and users with shares).
    pub fn set_associations(&mut self, assoc: AssocConfig) {
        self.assoc = Some(Arc::new(assoc));
    }

    /// Per-user and per-account limits on running jobs (quotas).
    pub fn set_limits(&mut self, limits: Limits) {
        let mut st = LimitState::new(limits);
        for r in &self.running {
            st.start(&r.spec);
        }
        self.limits = st;
    }

    pub fn limits(&self) -> &LimitState {
        &self.limits
    }

    /// Ask policies to report their reservations in every pass, even where computing them
    /// changes no start (for showing expected start times; off in simulation).
    pub fn set_want_plan(&mut self, on: bool) {
        self.want_plan = on;
    }

    /// The reservations the policy reported in its last pass.
    pub fn plan(&self) -> &[(JobId, Time)] {
        &self.plan
    }
    /// A wake-up the policy asked for, if any.
    pub fn next_wake(&self) -> Option<Time> {
        self.wake
    }
    pub fn policy_name(&self) -> &str {
        &self.policy_name
    }
    pub fn passes(&self) -> u64 {
        self.passes
    }
    /// Nothing pending and nothing running.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.running.is_empty()
    }

    /// Applies the events of instant `now` (completions first, then submissions, each in the
    /// order given), runs one scheduling pass and appends the resulting commands to `out`.
    pub fn step(
        &mut self,
        now: Time,
        events: impl IntoIterator<Item = Event>,
        out: &mut Vec<Command>,
    ) -> Result<(), EngineError> {
        if self.wake.is_some_and(|w| w <= now) {
            self.wake = None;
        }
        let mut submitted = std::mem::take(&mut self.submitted);
        submitted.clear();
        for ev in events {
            match ev {
                Event::Ended { job, state } => {
                    let i = self
                        .running
                        .iter()
                        .position(|r| r.spec.id == job)
                        .ok_or(EngineError::NotRunning(job))?;
                    let r = self.running.swap_remove(i);
                    self.release(&r);
                    self.limits.end(&r.spec);
                    if let Some(u) = &mut self.usage {
                        u.charge_on(&r.spec, r.usage_cpus, r.usage_from, now);
                    }
                    let elastic = r.spec.elastic.is_some();
                    if state == FinalState::Preempted && self.requeue(r, now) {
                        continue;
                    }
                    self.elastic_jobs -= usize::from(elastic);
                }
                Event::Submitted(spec) => submitted.push(spec),
                Event::CancelRequested { job } => {
                    if let Some(i) = self.pending.iter().position(|p| p.spec.id == job) {
                        let p = self.pending.remove(i);
                        self.elastic_jobs -= usize::from(p.spec.elastic.is_some());
                        out.push(Command::Cancel {
                            job,
                            running: false,
                        });
                    } else if let Some(r) = self.running.iter_mut().find(|r| r.spec.id == job) {
                        r.stopping = true;
                        out.push(Command::Cancel { job, running: true });
                    }
                }
            }
        }
        for spec in submitted.drain(..) {
            self.submit(spec)?;
        }
        self.submitted = submitted;
        self.pass(now, out)
    }

    /// Takes back a job that was already running when the engine started (a live daemon
    /// restarting): its resources are held again as `alloc` says.
    pub fn adopt_running(
        &mut self,
        spec: Arc<JobSpec>,
        start: Time,
        alloc: Arc<[Slice]>,
    ) -> Result<(), EngineError> {
        if let Err(why) = self.check(&spec, &alloc) {
            return Err(EngineError::Invariant(format!(
                "cannot adopt job {}: {why}",
                spec.id
            )));
        }
        let mem = spec.mem_mb.unwrap_or(0);
        for s in alloc.iter() {
            let a = &mut self.avail[s.node as usize];
            a.cpus -= s.cpus;
            a.mem_mb -= mem;
            a.gpus -= s.gpus;
            self.gpu_free[s.node as usize] &= !s.gpu_mask;
        }
        let job = RunningJob::new(spec, start, self.next_start_seq, alloc);
        self.free -= u64::from(job.cpus);
        self.limits.start(&job.spec);
        self.elastic_jobs += usize::from(job.spec.elastic.is_some());
        self.running.push(job);
        self.next_start_seq += 1;
        Ok(())
    }

    /// A preempted job goes back to the queue (requeue: as it was; suspend: with the estimate
    /// of its remaining work), or ends (cancel: nothing to do). Whether it went back.
    fn requeue(&mut self, r: RunningJob, now: Time) -> bool {
        let spec = match r.preempting {
            Some(PreemptMode::Requeue) => r.spec,
            Some(PreemptMode::Suspend) => {
                // The estimated work left, at the requested size.
                let left = r.est_work_at(now);
                Arc::new(JobSpec {
                    estimate: Dur(ceil_div(left, i64::from(r.spec.cpus.max(1)))),
                    ..(*r.spec).clone()
                })
            }
            _ => return false,
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.push(PendingJob {
            spec,
            seq,
            reason: PendingReason::None,
        });
        true
    }

    fn submit(&mut self, spec: Arc<JobSpec>) -> Result<(), EngineError> {
        if spec.cpus == 0 {
            return Err(EngineError::NoProcessors(spec.id));
        }
        // Over a limit on its own (not just because of what runs now): it could never start.
        if let Some(r) = LimitState::new(self.limits.limits).blocked(&spec, &PassUsage::default()) {
            return Err(EngineError::CannotRun {
                job: spec.id,
                partition: String::new(),
                why: format!("it alone exceeds its limit ({r})"),
            });
        }
        if let Err(why) = self.can_ever_run(&spec) {
            return Err(EngineError::CannotRun {
                job: spec.id,
                partition: self
                    .cluster
                    .partitions
                    .get(spec.partition as usize)
                    .map_or_else(|| format!("#{}", spec.partition), |p| p.name.clone()),
                why,
            });
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.leaf_limited |= spec.switches.is_some();
        self.elastic_jobs += usize::from(spec.elastic.is_some());
        self.pending.push(PendingJob {
            spec,
            seq,
            reason: PendingReason::None,
        });
        Ok(())
    }

    /// Whether the job could run on its partition if the partition were empty; the reason if
    /// not. Jobs that fail this never start, so the engine refuses them at submission. Decided
    /// once per job shape.
    pub fn can_ever_run(&mut self, spec: &JobSpec) -> Result<(), String> {
        let key = (spec.partition, spec.request(), spec.requested_time);
        if let Some(r) = self.runnable.get(&key) {
            return r.clone();
        }
        let r = admission::can_ever_run(&self.cluster, self.placement.as_ref(), spec);
        self.runnable.insert(key, r.clone());
        r
    }

    fn invalid(&self, why: String) -> EngineError {
        EngineError::InvalidDecision {
            policy: self.policy_name.clone(),
            why,
        }
    }

    fn release(&mut self, r: &RunningJob) {
        let mem = r.spec.mem_mb.unwrap_or(0);
        for s in r.alloc.iter() {
            let a = &mut self.avail[s.node as usize];
            a.cpus += s.cpus;
            a.mem_mb += mem;
            a.gpus += s.gpus;
            self.gpu_free[s.node as usize] |= s.gpu_mask;
        }
        self.free += u64::from(r.cpus);
    }

    /// Checks one start against the current free resources; the reason if it does not fit.
    fn check(&self, spec: &JobSpec, slices: &[Slice]) -> Result<(), String> {
        let req = spec.request();
        let part = &self.cluster.partitions[spec.partition as usize];
        if slices.is_empty() {
            return Err(format!("job {} started on no node", spec.id));
        }
        if let Some(r) = self.limits.blocked(spec, &self.pass_usage) {
            return Err(format!("job {} would exceed a limit ({r})", spec.id));
        }
        let total: u64 = slices.iter().map(|s| u64::from(s.cpus)).sum();
        match spec.elastic {
            Some(e) if !(u64::from(e.min)..=u64::from(e.max)).contains(&total) => {
                return Err(format!(
                    "elastic job {} runs on {}-{} CPUs, the allocation gives {total}",
                    spec.id, e.min, e.max
                ));
            }
            None if total != u64::from(req.cpus) => {
                return Err(format!(
                    "job {} needs {} CPUs, the allocation gives {total}",
                    spec.id, req.cpus
                ));
            }
            _ => {}
        }
        if let Some(n) = req.nodes
            && slices.len() != n as usize
        {
            return Err(format!(
                "job {} needs {n} nodes, the allocation has {}",
                spec.id,
                slices.len()
            ));
        }
        for (i, s) in slices.iter().enumerate() {
            if slices[..i].iter().any(|t| t.node == s.node) {
                return Err(format!("job {} given node {} twice", spec.id, s.node));
            }
            if part.nodes.binary_search(&s.node).is_err() {
                return Err(format!(
                    "job {} placed on node {} outside partition {}",
                    spec.id, s.node, part.name
                ));
            }
            let a = &self.avail[s.node as usize];
            if s.cpus == 0
                || s.cpus > a.cpus
                || req.mem_mb > a.mem_mb
                || s.gpus != req.gpus
                || s.gpus > a.gpus
            {
                return Err(format!(
                    "job {} does not fit on node {}: asks {} CPUs, {} MB, {} GPUs; free {} CPUs, {} MB, {} GPUs",
                    spec.id,
                    self.cluster.nodes[s.node as usize].name,
                    s.cpus,
                    req.mem_mb,
                    s.gpus,
                    a.cpus,
                    a.mem_mb,
                    a.gpus
                ));
            }
        }
        Ok(())
    }

    /// Takes a checked allocation's resources, choosing the lowest free GPU indices; returns
    /// the allocation with its GPU masks.
    fn take(&mut self, spec: &JobSpec, slices: &[Slice]) -> Arc<[Slice]> {
        let mem = spec.mem_mb.unwrap_or(0);
        let mut out: Vec<Slice> = Vec::with_capacity(slices.len());
        for s in slices {
            self.free -= u64::from(s.cpus);
            let a = &mut self.avail[s.node as usize];
            a.cpus -= s.cpus;
            a.mem_mb -= mem;
            a.gpus -= s.gpus;
            let mut mask = 0u64;
            let mut free = self.gpu_free[s.node as usize];
            for _ in 0..s.gpus {
                let bit = free & free.wrapping_neg();
                mask |= bit;
                free &= !bit;
            }
            self.gpu_free[s.node as usize] = free;
            out.push(Slice {
                gpu_mask: mask,
                ..*s
            });
        }
        out.into()
    }

    /// Applies a pass's resize decisions as one batch: every resized job gives back its old
    /// allocation, then takes its new one. Refused as a whole (nothing changed) if a job is
    /// not running, not elastic, being preempted or resized twice, or a new allocation leaves
    /// its range or does not fit.
    fn apply_resizes(&mut self, now: Time, d: &Decisions) -> Result<ResizeUndo, EngineError> {
        let mut undo = ResizeUndo {
            avail: self.avail.clone(),
            free: self.free,
            jobs: Vec::new(),
        };
        let mut todo: Vec<(usize, &[Slice])> = Vec::new();
        for dec in &d.list {
            let Decision::Resize { job, from, len } = *dec else {
                continue;
            };
            let Some(i) = self.running.iter().position(|r| r.spec.id == job) else {
                return Err(self.invalid(format!("resize of job {job}, which is not running")));
            };
            let r = &self.running[i];
            let Some(range) = r.spec.elastic else {
                return Err(self.invalid(format!("resize of job {job}, which is not elastic")));
            };
            if r.preempting.is_some()
                || r.stopping
                || r.spec.gpus > 0
                || todo.iter().any(|t| t.0 == i)
            {
                return Err(self.invalid(format!(
                    "resize of job {job}: being preempted or cancelled, holding GPUs or resized twice"
                )));
            }
            let (from, len) = (from as usize, len as usize);
            let Some(slices) = d.slices.get(from..from + len) else {
                return Err(self.invalid(format!("job {job}: allocation out of range")));
            };
            let total: u32 = slices.iter().map(|s| s.cpus).sum();
            if slices.is_empty() || !range.contains(total) {
                return Err(self.invalid(format!(
                    "resize of job {job} to {total} CPUs, outside its range {}-{}",
                    range.min, range.max
                )));
            }
            todo.push((i, slices));
        }
        for &(i, _) in &todo {
            let r = self.running[i].clone();
            self.release(&r);
            undo.jobs.push((i, r));
        }
        for &(i, slices) in &todo {
            let spec = &self.running[i].spec;
            let part = &self.cluster.partitions[spec.partition as usize];
            let mem = spec.mem_mb.unwrap_or(0);
            let bad = slices.iter().enumerate().find_map(|(k, s)| {
                let a = &self.avail[s.node as usize];
                let ok = part.nodes.binary_search(&s.node).is_ok()
                    && !slices[..k].iter().any(|t| t.node == s.node)
                    && s.cpus > 0
                    && s.gpus == 0
                    && s.cpus <= a.cpus
                    && mem <= a.mem_mb;
                (!ok).then_some(s.node)
            });
            if let Some(node) = bad {
                let why = format!(
                    "resize of job {} does not fit on node {}",
                    spec.id, self.cluster.nodes[node as usize].name
                );
                self.avail = undo.avail;
                self.free = undo.free;
                return Err(self.invalid(why));
            }
            for s in slices {
                let a = &mut self.avail[s.node as usize];
                a.cpus -= s.cpus;
                a.mem_mb -= mem;
                self.free -= u64::from(s.cpus);
            }
        }
        for &(i, slices) in &todo {
            let alloc: Arc<[Slice]> = slices
                .iter()
                .map(|s| Slice::new(s.node, s.cpus, 0))
                .collect();
            self.running[i] = self.running[i].resized(now, alloc);
        }
        Ok(undo)
    }

    /// One scheduling pass: ask the policy, validate, turn starts into commands. A pass with
    /// an invalid decision changes nothing.
    fn pass(&mut self, now: Time, out: &mut Vec<Command>) -> Result<(), EngineError> {
        self.passes += 1;
        self.plan.clear();
        // Without waiting jobs a pass can only grow elastic jobs.
        if self.pending.is_empty() && self.elastic_jobs == 0 {
            return Ok(());
        }
        let mut decisions = std::mem::take(&mut self.decisions);
        decisions.clear();
        let view = View {
            now,
            cluster: &self.cluster,
            placement: self.placement.as_ref(),
            avail: &self.avail,
            free: self.free,
            pending: &self.pending,
            running: &self.running,
            want_plan: self.want_plan,
            usage: self.usage.as_ref(),
            limits: &self.limits,
            assoc: self.assoc.as_deref(),
            elastic_jobs: self.elastic_jobs,
        };
        self.policy.schedule(&view, &mut decisions);
        self.started_mask.clear();
        self.started_mask.resize(self.pending.len(), false);
        self.pass_usage.clear();
        self.started_reasons.clear();
        let first_running = self.running.len();
        let first_out = out.len();
        // Resizes first, as one batch: shrinks give up CPUs the starts below may use.
        let mut undo = None;
        if decisions
            .list
            .iter()
            .any(|d| matches!(d, Decision::Resize { .. }))
        {
            match self.apply_resizes(now, &decisions) {
                Ok(u) => undo = Some(u),
                Err(e) => {
                    self.decisions = decisions;
                    return Err(e);
                }
            }
        }
        let mut result = Ok(());
        for d in &decisions.list {
            match *d {
                Decision::Resize { .. } => {}
                Decision::Start {
                    pos,
                    job,
                    from,
                    len,
                } => {
                    let p = pos as usize;
                    let Some(pj) = self.pending.get(p) else {
                        result =
                            Err(self.invalid(format!("start of queue position {p} out of range")));
                        break;
                    };
                    if pj.spec.id != job {
                        result = Err(self.invalid(format!(
                            "start of job {job} at queue position {p}, which holds job {}",
                            pj.spec.id
                        )));
                        break;
                    }
                    if self.started_mask[p] {
                        result = Err(self.invalid(format!("job {job} started twice")));
                        break;
                    }
                    let (from, len) = (from as usize, len as usize);
                    let Some(slices) = decisions.slices.get(from..from + len) else {
                        result = Err(self.invalid(format!("job {job}: allocation out of range")));
                        break;
                    };
                    if let Err(why) = self.check(&pj.spec, slices) {
                        result = Err(self.invalid(why));
                        break;
                    }
                    let spec = Arc::clone(&pj.spec);
                    self.started_reasons.push(pj.reason);
                    if !self.limits.is_unlimited() {
                        self.pass_usage.take(&spec);
                    }
                    let alloc = self.take(&spec, slices);
                    self.started_mask[p] = true;
                    let seq = self.next_start_seq + (self.running.len() - first_running) as u64;
                    self.running.push(RunningJob::new(spec, now, seq, alloc));
                }
                Decision::Reserve { job, at, .. } => self.plan.push((job, at)),
                Decision::Preempt { job, mode, grace } => {
                    match self.running.iter_mut().find(|r| r.spec.id == job) {
                        Some(r) if r.preempting.is_none() => {
                            r.preempting = Some(mode);
                            out.push(Command::Preempt {
                                job,
                                mode,
                                at: now + grace,
                            });
                        }
                        _ => {
                            result = Err(self.invalid(format!(
                                "preemption of job {job}, which is not running or already preempted"
                            )));
                            break;
                        }
                    }
                }
                Decision::WakeAt(_) | Decision::Blocked { .. } => {}
            }
        }
        self.decisions = decisions;
        if let Err(e) = result {
            // Give back what this pass took.
            for r in self.running.split_off(first_running) {
                self.release(&r);
            }
            if let Some(u) = undo {
                self.avail = u.avail;
                self.free = u.free;
                for (i, r) in u.jobs {
                    self.running[i] = r;
                }
            }
            out.truncate(first_out);
            self.pass_usage.clear();
            self.plan.clear();
            return Err(e);
        }
        let mut wake: Option<Time> = self
            .decisions
            .list
            .iter()
            .filter_map(|d| match *d {
                Decision::WakeAt(t) if t > now => Some(t),
                _ => None,
            })
            .min();
        // A waiting job's `--switches` wait ends: its request relaxes, so a pass must run then.
        if self.leaf_limited {
            let ends = self
                .pending
                .iter()
                .enumerate()
                .filter(|(i, _)| !self.started_mask[*i])
                .filter_map(|(_, p)| p.spec.switches.map(|(_, w)| p.spec.submit + w))
                .filter(|&t| t > now)
                .min();
            wake = wake.into_iter().chain(ends).min();
        }
        if let Some(t) = wake {
            self.wake = Some(self.wake.map_or(t, |w| w.min(t)));
        }
        for r in &self.running[first_running..] {
            self.limits.start(&r.spec);
        }
        // Reasons of the jobs still waiting: a reservation means Resources; a limit its own.
        for d in &self.decisions.list {
            if let Decision::Reserve { pos, .. } | Decision::Blocked { pos, .. } = *d {
                let p = pos as usize;
                if p < self.pending.len() && !self.started_mask[p] {
                    self.pending[p].reason = PendingReason::Resources;
                }
            }
        }
        if !self.limits.is_unlimited() {
            let none = PassUsage::default();
            for (p, pj) in self.pending.iter_mut().enumerate() {
                if let (false, Some(r)) =
                    (self.started_mask[p], self.limits.blocked(&pj.spec, &none))
                {
                    pj.reason = r;
                }
            }
        }
        // Validated: resizes become commands ahead of this pass's preemptions (a job may be
        // shrunk, then preempted), then the starts, in decision order.
        if let Some(u) = undo {
            let mut resizes = Vec::with_capacity(u.jobs.len());
            for (i, old) in u.jobs {
                if let Some(usage) = &mut self.usage {
                    usage.charge_on(&old.spec, old.usage_cpus, old.usage_from, now);
                }
                let r = &self.running[i];
                resizes.push(Command::Resize {
                    job: r.spec.id,
                    cpus: r.cpus,
                    alloc: Arc::clone(&r.alloc),
                });
            }
            out.splice(first_out..first_out, resizes);
        }
        for (k, r) in self.running[first_running..].iter().enumerate() {
            let waited_for = if r.start > r.spec.submit {
                match self.started_reasons[k] {
                    PendingReason::None => PendingReason::Priority,
                    other => other,
                }
            } else {
                PendingReason::None
            };
            out.push(Command::Start {
                waited_for,
                job: r.spec.id,
                cpus: r.cpus,
                time_limit: r.spec.time_limit,
                leaf_switches: self.cluster.leaves_spanned(&r.alloc),
                alloc: Arc::clone(&r.alloc),
            });
        }
        let started = self.running.len() - first_running;
        self.next_start_seq += started as u64;
        if started > 0 {
            let mask = &self.started_mask;
            let mut i = 0;
            self.pending.retain(|_| {
                let keep = !mask[i];
                i += 1;
                keep
            });
        }
        Ok(())
    }

    /// Checks the engine's invariants; tests call it after every step.
    pub fn check_invariants(&self) -> Result<(), EngineError> {
        let bad = |s: String| Err(EngineError::Invariant(s));
        let mut used = vec![Avail::default(); self.cluster.nodes.len()];
        let mut gpus = vec![0u64; self.cluster.nodes.len()];
        let mut used_total = 0u64;
        for r in &self.running {
            used_total += u64::from(r.cpus);
            let cpus: u64 = r.alloc.iter().map(|s| u64::from(s.cpus)).sum();
            let in_range = match r.spec.elastic {
                Some(e) => e.contains(r.cpus),
                None => r.cpus == r.spec.cpus,
            };
            if cpus != u64::from(r.cpus) || !in_range {
                return bad(format!(
                    "job {} holds {cpus} CPUs (counted {}), asked {} (range {:?})",
                    r.spec.id, r.cpus, r.spec.cpus, r.spec.elastic
                ));
            }
            for s in r.alloc.iter() {
                let m = s.gpu_mask;
                let u = &mut used[s.node as usize];
                u.cpus += s.cpus;
                u.mem_mb += r.spec.mem_mb.unwrap_or(0);
                u.gpus += s.gpus;
                if m.count_ones() != s.gpus || gpus[s.node as usize] & m != 0 {
                    return bad(format!(
                        "GPU indices of job {} clash or miscount",
                        r.spec.id
                    ));
                }
                gpus[s.node as usize] |= m;
            }
        }
        for (i, n) in self.cluster.nodes.iter().enumerate() {
            let (a, u) = (&self.avail[i], &used[i]);
            if a.cpus + u.cpus != n.cpus
                || a.mem_mb + u.mem_mb != n.mem_mb
                || a.gpus + u.gpus != n.gpus
            {
                return bad(format!("node {} accounts do not add up", n.name));
            }
            if gpus[i] & self.gpu_free[i] != 0
                || (gpus[i] | self.gpu_free[i]).count_ones() != n.gpus
            {
                return bad(format!("node {} GPU masks inconsistent", n.name));
            }
        }
        if used_total + self.free != self.total {
            return bad(format!(
                "free {} + used {used_total} != total {}",
                self.free, self.total
            ));
        }
        if self.pending.windows(2).any(|w| w[0].seq >= w[1].seq) {
            return bad("pending queue out of queue order".into());
        }
        let mut ids: Vec<JobId> = self
            .pending
            .iter()
            .map(|p| p.spec.id)
            .chain(self.running.iter().map(|r| r.spec.id))
            .collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return bad(format!("job {} held twice", w[0]));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::placement::BestFit;

    fn spec(id: u64, procs: u32) -> JobSpec {
        JobSpec::new(JobId(id), Time::ZERO, procs, Dur(10))
    }

    fn engine(cpus: u32, policy: Box<dyn Policy>, name: &str) -> Engine {
        let cluster = Cluster::uniform(1, cpus, 0, 0).unwrap();
        Engine::new(cluster, Box::new(BestFit), policy, name)
    }

    /// Starts every pending job on node 0, fitting or not.
    struct Greedy;
    impl Policy for Greedy {
        fn schedule(&mut self, view: &View<'_>, out: &mut Decisions) {
            for (i, j) in view.pending.iter().enumerate() {
                let one = [Slice::new(0, j.spec.cpus, 0)];
                out.start(i as u32, j.spec.id, &one);
            }
        }
    }

    #[test]
    fn over_allocation_is_refused_and_changes_nothing() {
        let mut e = engine(4, Box::new(Greedy), "greedy");
        let mut out = Vec::new();
        let events = vec![
            Event::Submitted(spec(1, 3).into()),
            Event::Submitted(spec(2, 2).into()),
        ];
        let err = e.step(Time::ZERO, events, &mut out).unwrap_err();
        assert_eq!(
            err,
            EngineError::InvalidDecision {
                policy: "greedy".into(),
                why: "job 2 does not fit on node n0: asks 2 CPUs, 0 MB, 0 GPUs; free 1 CPUs, 0 MB, 0 GPUs".into()
            }
        );
        assert!(out.is_empty());
        assert_eq!(e.free_procs(), 4);
        assert_eq!(e.avail()[0].cpus, 4);
        assert_eq!(e.pending().len(), 2);
        assert!(e.running().is_empty());
        e.check_invariants().unwrap();
    }

    #[test]
    fn completions_release_before_submissions_join() {
        let (p, _) = crate::policy::build("fcfs").unwrap();
        let mut e = engine(4, p, "fcfs");
        let mut out = Vec::new();
        e.step(
            Time::ZERO,
            vec![Event::Submitted(spec(1, 4).into())],
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        out.clear();
        // The submission comes first in the list, the completion is still applied first.
        let events = vec![
            Event::Submitted(spec(2, 4).into()),
            Event::Ended {
                job: JobId(1),
                state: FinalState::Completed,
            },
        ];
        e.step(Time(10), events, &mut out).unwrap();
        assert_eq!(
            out,
            [Command::Start {
                job: JobId(2),
                cpus: 4,
                time_limit: None,
                alloc: vec![Slice::new(0, 4, 0)].into(),
                leaf_switches: 0,
                waited_for: PendingReason::Priority,
            }]
        );
        e.check_invariants().unwrap();
    }

    #[test]
    fn gpus_get_distinct_indices() {
        let cluster = Cluster::uniform(1, 8, 1000, 4).unwrap();
        let (p, _) = crate::policy::build("fcfs").unwrap();
        let mut e = Engine::new(cluster, Box::new(BestFit), p, "fcfs");
        let mut out = Vec::new();
        let gpu_job = |id, gpus| JobSpec {
            gpus,
            mem_mb: Some(100),
            ..spec(id, 1)
        };
        let events = vec![
            Event::Submitted(gpu_job(1, 1).into()),
            Event::Submitted(gpu_job(2, 2).into()),
            Event::Submitted(gpu_job(3, 2).into()),
        ];
        e.step(Time::ZERO, events, &mut out).unwrap();
        let masks: Vec<Vec<u64>> = out
            .iter()
            .map(|c| match c {
                Command::Start { alloc, .. } => alloc.iter().map(|s| s.gpu_mask).collect(),
                _ => Vec::new(),
            })
            .collect();
        // 1 takes GPU 0, 2 takes GPUs 1-2; 3 needs two but one is left: it waits.
        assert_eq!(masks, [vec![0b1], vec![0b110]]);
        assert_eq!(e.avail()[0].gpus, 1);
        assert_eq!(e.avail()[0].mem_mb, 800);
        e.step(
            Time(5),
            vec![Event::Ended {
                job: JobId(1),
                state: FinalState::Completed,
            }],
            &mut out,
        )
        .unwrap();
        match &out[2] {
            Command::Start { job, alloc, .. } => {
                assert_eq!(*job, JobId(3));
                assert_eq!(alloc[0].gpu_mask, 0b1001);
            }
            other => panic!("unexpected command {other:?}"),
        }
        e.check_invariants().unwrap();
    }

    /// Resizes the running job `job` to `cpus` CPUs on node 0 and starts nothing.
    struct ResizeTo(u64, u32);
    impl Policy for ResizeTo {
        fn schedule(&mut self, view: &View<'_>, out: &mut Decisions) {
            if view.running.iter().any(|r| r.spec.id.0 == self.0) {
                out.resize(JobId(self.0), &[Slice::new(0, self.1, 0)]);
            }
        }
    }

    #[test]
    fn bad_resizes_are_refused_and_change_nothing() {
        let elastic = |id, procs, min, max| JobSpec {
            elastic: Some(crate::model::ElasticRange { min, max }),
            ..spec(id, procs)
        };
        for (policy, why) in [
            (ResizeTo(1, 3), "resize of job 1, which is not elastic"),
            (
                ResizeTo(2, 5),
                "resize of job 2 to 5 CPUs, outside its range 1-4",
            ),
            (ResizeTo(2, 4), "resize of job 2 does not fit on node n0"),
        ] {
            let (fcfs, _) = crate::policy::build("fcfs[elastic=off]").unwrap();
            let mut e = engine(6, fcfs, "fcfs");
            let mut out = Vec::new();
            let events = vec![
                Event::Submitted(spec(1, 2).into()),
                Event::Submitted(elastic(2, 2, 1, 4).into()),
                Event::Submitted(spec(3, 1).into()),
            ];
            e.step(Time::ZERO, events, &mut out).unwrap();
            assert_eq!(e.free_procs(), 1);
            e.policy = Box::new(policy);
            let err = e.step(Time(5), vec![], &mut out).unwrap_err();
            assert_eq!(
                err,
                EngineError::InvalidDecision {
                    policy: "fcfs".into(),
                    why: why.into()
                }
            );
            assert_eq!(e.free_procs(), 1);
            assert_eq!(e.avail()[0].cpus, 1);
            assert!(
                e.running()
                    .iter()
                    .all(|r| r.cpus == r.spec.cpus && r.resizes == 0)
            );
            e.check_invariants().unwrap();
        }
        // A valid shrink frees CPUs at once and moves the expected end: 2 ran 5 ms of its
        // 20 CPU-ms estimate on 2 CPUs; 10 left on 1 CPU end at 15.
        let (fcfs, _) = crate::policy::build("fcfs[elastic=off]").unwrap();
        let mut e = engine(6, fcfs, "fcfs");
        let mut out = Vec::new();
        e.step(
            Time::ZERO,
            vec![Event::Submitted(elastic(2, 2, 1, 4).into())],
            &mut out,
        )
        .unwrap();
        e.policy = Box::new(ResizeTo(2, 1));
        out.clear();
        e.step(Time(5), vec![], &mut out).unwrap();
        assert_eq!(
            out,
            [Command::Resize {
                job: JobId(2),
                cpus: 1,
                alloc: vec![Slice::new(0, 1, 0)].into()
            }]
        );
        assert_eq!(e.free_procs(), 5);
        assert_eq!(e.running()[0].expected_end(Time(5)), Time(15));
        e.check_invariants().unwrap();
    }

    #[test]
    fn bad_events_are_errors() {
        let (p, _) = crate::policy::build("fcfs").unwrap();
        let mut e = engine(4, p, "fcfs");
        let mut out = Vec::new();
        let ended = Event::Ended {
            job: JobId(9),
            state: FinalState::Completed,
        };
        assert_eq!(
            e.step(Time::ZERO, vec![ended], &mut out),
            Err(EngineError::NotRunning(JobId(9)))
        );
        assert!(matches!(
            e.step(
                Time::ZERO,
                vec![Event::Submitted(spec(1, 5).into())],
                &mut out
            ),
            Err(EngineError::CannotRun { .. })
        ));
    }
}
