//! What a simulation produced: one record per job ([`JobResult`], sorted by id in a
//! [`SimResult`]), and the work ledger of elastic jobs ([`ElasticWork`]). The simulator fills
//! them in; metrics, reports and tests read them.

use crate::ids::JobId;
use crate::model::{FinalState, JobSpec, PendingReason, Slice};
use crate::time::{Dur, Time};
use std::sync::Arc;

/// The work ledger of one elastic job's (last) run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ElasticWork {
    /// Work units the run must deliver (run time × D, or the time limit's worth).
    pub total: i64,
    /// Units delivered over its segments, computed from their lengths and rates.
    pub delivered: i64,
    /// The run ended at least a millisecond later than its work required.
    pub late: bool,
    pub resizes: u32,
}

/// One simulated job, as reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobResult {
    pub spec: Arc<JobSpec>,
    /// The trace's run time (before any topology penalty or time limit).
    pub runtime: Dur,
    pub start: Time,
    pub finish: Time,
    pub state: FinalState,
    pub alloc: Arc<[Slice]>,
    pub leaf_switches: u32,
    /// Why it waited (Slurm's reason at its last pass before starting), `None` if it did not.
    pub pending_reason: PendingReason,
    /// Times it was preempted (requeued or suspended and started again, or cancelled).
    pub preemptions: u32,
    /// Time it ran in all its segments (finish − start for a job never preempted).
    pub busy: Dur,
    /// CPU-milliseconds of work lost to requeues.
    pub lost_cpu_ms: i64,
    /// CPU-milliseconds held over all segments (busy × procs for a rigid job).
    pub cpu_ms: i64,
    /// Times an elastic job was resized while running.
    pub resizes: u32,
}

impl JobResult {
    pub fn wait(&self) -> Dur {
        self.start - self.spec.submit
    }
    pub fn execution(&self) -> Dur {
        self.finish - self.start
    }
    pub fn turnaround(&self) -> Dur {
        self.finish - self.spec.submit
    }
    /// CPUs held on average while it ran (its size for a rigid job).
    pub fn mean_cpus(&self) -> f64 {
        if self.busy.0 > 0 {
            self.cpu_ms as f64 / self.busy.0 as f64
        } else {
            f64::from(self.spec.cpus)
        }
    }
}

/// The result of a simulation, jobs sorted by id.
#[derive(Clone, Debug)]
pub struct SimResult {
    /// CPUs in the cluster (P).
    pub procs: u64,
    pub jobs: Vec<JobResult>,
    pub passes: u64,
    /// The work ledger of every elastic job, by id.
    pub elastic_work: Vec<(JobId, ElasticWork)>,
}
