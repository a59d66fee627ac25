//! The scheduling interface: everything a policy sees and returns, and nothing else.
//!
//! [`Policy::schedule`] gets a read-only [`View`] of one instant — the cluster, free resources
//! per node, the pending jobs ([`PendingJob`]) in queue order, the running jobs
//! ([`RunningJob`]) with their *estimated* ends (never their true run times), the usage and
//! limit ledgers — and appends [`Decisions`]. The engine validates them and turns them into
//! commands. Placement strategies ([`placement`]) and admission ([`admission`]: can a job ever
//! run on its partition?) live here too, because policies, the engine, trace preparation and
//! the live store all use them.
//!
//! This module is the leaf both `engine` and `policy` depend on; it names neither (the
//! boundary test in `tests/it/boundaries.rs` checks it), so policies stay pure deciders.

pub mod admission;
pub mod limits;
pub mod placement;
pub mod usage;

use crate::ids::JobId;
use crate::model::{Avail, Cluster, JobSpec, PendingReason, PreemptMode, Slice};
use crate::time::{Dur, Time};
use limits::LimitState;
use placement::Placement;
use std::sync::Arc;
use usage::UsageLedger;

/// A job waiting in the queue.
#[derive(Clone, Debug)]
pub struct PendingJob {
    /// Shared with the running job it becomes: moving a queue entry moves a pointer.
    pub spec: Arc<JobSpec>,
    /// Position in queue order (arrival order); strictly increasing along the queue.
    pub seq: u64,
    /// Why it waited at the last pass (Slurm's vocabulary): `Priority`, `Resources`, or a
    /// limit such as `AssocGrpCpuLimit`.
    pub reason: PendingReason,
}

/// A job holding processors.
#[derive(Clone, Debug)]
pub struct RunningJob {
    pub spec: Arc<JobSpec>,
    pub start: Time,
    /// Order in which jobs were started (ties in expected end are broken by it).
    pub start_seq: u64,
    /// Where it runs, with the GPU indices it holds.
    pub alloc: Arc<[Slice]>,
    /// Being preempted (stops at the end of its grace time), and how.
    pub preempting: Option<PreemptMode>,
    /// CPUs it holds now: `spec.procs` for a rigid job; anywhere in its range for an elastic
    /// one.
    pub cpus: u32,
    /// Estimated work left at `seg_start`, in CPU-milliseconds (estimate × requested CPUs at
    /// the start; policies assume linear speedup — they never see the true model).
    pub est_work: i64,
    /// Start of the current segment (the start, or the last resize).
    pub seg_start: Time,
    /// Expected end from the estimate: start + estimate for a rigid job; for an elastic one,
    /// the last resize + its estimated work left / its CPUs.
    pub end_est: Time,
    /// Resizes so far.
    pub resizes: u32,
    /// Fair-share usage is charged up to here (the start, or the last resize), on
    /// `usage_cpus` CPUs since. Kept apart from `seg_start` and `cpus`, which the elastic
    /// layer changes in the view it shows a policy.
    pub usage_from: Time,
    pub usage_cpus: u32,
    /// A cancellation was asked for: it is ending, and is not resized any more.
    pub stopping: bool,
}

impl RunningJob {
    /// A job starting at `now` on `alloc`.
    pub fn new(spec: Arc<JobSpec>, now: Time, start_seq: u64, alloc: Arc<[Slice]>) -> RunningJob {
        let cpus: u32 = alloc.iter().map(|s| s.cpus).sum();
        let est_work = spec.estimate.0.saturating_mul(i64::from(spec.cpus));
        let end_est = if cpus == spec.cpus {
            now + spec.estimate
        } else {
            RunningJob::end_after(now, est_work, cpus)
        };
        RunningJob {
            spec,
            start: now,
            start_seq,
            alloc,
            preempting: None,
            cpus,
            est_work,
            seg_start: now,
            end_est,
            resizes: 0,
            usage_from: now,
            usage_cpus: cpus,
            stopping: false,
        }
    }

    /// When the policy should expect this job to end: start + estimate (for an elastic job,
    /// as its resizes moved it), or `now` once the job has overrun its estimate (semantics §3).
    pub fn expected_end(&self, now: Time) -> Time {
        self.end_est.max(now)
    }
    /// Estimated work left at `now`, CPU-milliseconds.
    pub fn est_work_at(&self, now: Time) -> i64 {
        let done = i64::from(self.cpus).saturating_mul((now - self.seg_start).0.max(0));
        self.est_work.saturating_sub(done).max(0)
    }
    /// When a job with `work` CPU-milliseconds left on `cpus` CPUs is expected to end.
    pub fn end_after(now: Time, work: i64, cpus: u32) -> Time {
        now + Dur(ceil_div(work.max(0), i64::from(cpus.max(1))))
    }
    /// When the job may next be resized, at most once per `every`.
    pub fn resizable_at(&self, every: Dur) -> Time {
        self.seg_start + every
    }
    /// The job as it would stand after a resize to `alloc` at `now`.
    pub fn resized(&self, now: Time, alloc: Arc<[Slice]>) -> RunningJob {
        let cpus: u32 = alloc.iter().map(|s| s.cpus).sum();
        let est_work = self.est_work_at(now);
        RunningJob {
            cpus,
            est_work,
            seg_start: now,
            end_est: RunningJob::end_after(now, est_work, cpus),
            resizes: self.resizes + 1,
            usage_from: now,
            usage_cpus: cpus,
            stopping: self.stopping,
            alloc,
            spec: Arc::clone(&self.spec),
            start: self.start,
            start_seq: self.start_seq,
            preempting: self.preempting,
        }
    }
}

/// ⌈a / b⌉ for a ≥ 0, b > 0 (no overflow, whatever a).
pub fn ceil_div(a: i64, b: i64) -> i64 {
    a / b + i64::from(a % b != 0)
}

/// What a policy sees in one scheduling pass.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub now: Time,
    pub cluster: &'a Cluster,
    /// The placement strategy in force: policies place jobs with it, now and in plans.
    pub placement: &'a dyn Placement,
    /// Free resources per node.
    pub avail: &'a [Avail],
    /// Free CPUs over all nodes.
    pub free: u64,
    /// The pending jobs in queue order (submit time, then arrival).
    pub pending: &'a [PendingJob],
    pub running: &'a [RunningJob],
    /// Report reservations even where computing them changes no start (live mode shows them;
    /// a simulation skips the work).
    pub want_plan: bool,
    /// Decayed usage per user and account, when the policy asked for it
    /// ([`Policy::usage_half_life`]).
    pub usage: Option<&'a UsageLedger>,
    /// Per-user and per-account limits and what running jobs hold against them.
    pub limits: &'a LimitState,
    /// The configured fair-share association tree, if any.
    pub assoc: Option<&'a crate::model::AssocConfig>,
    /// Elastic jobs pending or running (0: the elastic layer has nothing to do).
    pub elastic_jobs: usize,
}

impl View<'_> {
    /// The candidate nodes of a pending job (its partition's nodes).
    pub fn nodes_of(&self, job: &PendingJob) -> &[u32] {
        self.nodes_of_spec(&job.spec)
    }
    /// The nodes of a job's partition.
    pub fn nodes_of_spec(&self, spec: &crate::model::JobSpec) -> &[u32] {
        &self.cluster.partitions[spec.partition as usize].nodes
    }
}

/// A policy's decision. `pos` is the job's index in [`View::pending`]; `job` must match it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Start the job now on `Decisions::slices[from..from + len]`.
    Start {
        pos: u32,
        job: JobId,
        from: u32,
        len: u32,
    },
    /// The job is planned to start at `at` (informational: shown to users and checked by tests).
    Reserve { pos: u32, job: JobId, at: Time },
    /// Run a pass at `at` even if nothing else happens then.
    WakeAt(Time),
    /// The job waits for resources (it is next in line but does not fit): its pending reason
    /// becomes `Resources`. Informational, like `Reserve`.
    Blocked { pos: u32, job: JobId },
    /// Preempt a running job after `grace`.
    Preempt {
        job: JobId,
        mode: crate::model::PreemptMode,
        grace: crate::time::Dur,
    },
    /// Resize a running elastic job to `Decisions::slices[from..from + len]` (its whole new
    /// allocation). The engine applies a pass's resizes before its starts.
    Resize { job: JobId, from: u32, len: u32 },
}

/// The decisions of one pass, with the allocations of the started jobs.
#[derive(Clone, Debug, Default)]
pub struct Decisions {
    pub list: Vec<Decision>,
    pub slices: Vec<Slice>,
}

impl Decisions {
    pub fn clear(&mut self) {
        self.list.clear();
        self.slices.clear();
    }
    /// Start the job at queue position `pos` on `alloc`.
    pub fn start(&mut self, pos: u32, job: JobId, alloc: &[Slice]) {
        let from = self.slices.len() as u32;
        self.slices.extend_from_slice(alloc);
        self.list.push(Decision::Start {
            pos,
            job,
            from,
            len: alloc.len() as u32,
        });
    }
    pub fn reserve(&mut self, pos: u32, job: JobId, at: Time) {
        self.list.push(Decision::Reserve { pos, job, at });
    }
    pub fn preempt(
        &mut self,
        job: JobId,
        mode: crate::model::PreemptMode,
        grace: crate::time::Dur,
    ) {
        self.list.push(Decision::Preempt { job, mode, grace });
    }
    /// Resize running elastic job `job` to `alloc`.
    pub fn resize(&mut self, job: JobId, alloc: &[Slice]) {
        let from = self.slices.len() as u32;
        self.slices.extend_from_slice(alloc);
        self.list.push(Decision::Resize {
            job,
            from,
            len: alloc.len() as u32,
        });
    }
    pub fn blocked(&mut self, pos: u32, job: JobId) {
        self.list.push(Decision::Blocked { pos, job });
    }
    /// The started jobs' (position, job).
    pub fn started(&self) -> impl Iterator<Item = (u32, JobId)> + '_ {
        self.list.iter().filter_map(|d| match *d {
            Decision::Start { pos, job, .. } => Some((pos, job)),
            _ => None,
        })
    }
}

/// A scheduling policy.
pub trait Policy: Send {
    /// Decides one pass. Decisions are appended to `out` (which arrives empty).
    fn schedule(&mut self, view: &View<'_>, out: &mut Decisions);
    /// A policy that orders by fair-share asks the engine to account usage, decayed with this
    /// half-life.
    fn usage_half_life(&self) -> Option<crate::time::Dur> {
        None
    }
    /// The billing weights usage is charged with (CPU-seconds by default).
    fn usage_billing(&self) -> crate::sched::usage::Billing {
        crate::sched::usage::Billing::default()
    }
}
