//! What goes in and out of the engine: the facts it learns ([`Event`]), the commands it
//! issues to the executor ([`Command`]) and its errors ([`EngineError`]).

use crate::ids::JobId;
use crate::model::{FinalState, JobSpec, PendingReason, PreemptMode, Slice};
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
