//! Job states and pending reasons, with Slurm's names: one source for the engine, the
//! simulator's outputs, the live store, the CLI and JSON.
//!
//! [`JobState`] is where a job is in its life (`squeue`'s and `sacct`'s `State`);
//! [`FinalState`] is the subset a job can end in, which is what executors report and what
//! `jobs.csv` records. [`PendingReason`] is why a job waits (`squeue`'s `REASON`), and, once a
//! job has started, why it had waited (`jobs.csv`'s `pending_reason`).

use std::fmt;

/// Declares a fieldless enum with its Slurm name per variant, `name()`, `from_name()`,
/// `ALL` and `Display`.
macro_rules! named_enum {
    ($(#[$m:meta])* $vis:vis enum $name:ident { $($(#[$vm:meta])* $var:ident => $text:literal,)+ }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        $vis enum $name { $($(#[$vm])* $var,)+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$var,)+];
            /// Slurm's name.
            pub fn name(self) -> &'static str {
                match self { $($name::$var => $text,)+ }
            }
            /// The value with Slurm's name `s` (exact, upper/lower case as Slurm writes it).
            pub fn from_name(s: &str) -> Option<$name> {
                match s { $($text => Some($name::$var),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

named_enum! {
    /// How a job ended.
    pub enum FinalState {
        Completed => "COMPLETED",
        Failed => "FAILED",
        Timeout => "TIMEOUT",
        Cancelled => "CANCELLED",
        Preempted => "PREEMPTED",
        /// Killed for exceeding its memory limit (live mode).
        OutOfMemory => "OUT_OF_MEMORY",
        /// Its node or supervisor failed (live mode: the runner died without a result).
        NodeFail => "NODE_FAIL",
    }
}

named_enum! {
    /// Where a job is in its life.
    pub enum JobState {
        Pending => "PENDING",
        /// Started by the engine, its supervisor being launched (live mode; Slurm's
        /// CONFIGURING: resources allocated, not yet in use). Written before the launch, so
        /// a crash in between is found and resolved on restart.
        Configuring => "CONFIGURING",
        Running => "RUNNING",
        Completed => "COMPLETED",
        Failed => "FAILED",
        Timeout => "TIMEOUT",
        Cancelled => "CANCELLED",
        Preempted => "PREEMPTED",
        OutOfMemory => "OUT_OF_MEMORY",
        NodeFail => "NODE_FAIL",
    }
}

impl JobState {
    /// Pending, configuring or running: not over yet.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            JobState::Pending | JobState::Configuring | JobState::Running
        )
    }
    /// Holding resources: configuring or running.
    pub fn is_started(self) -> bool {
        matches!(self, JobState::Configuring | JobState::Running)
    }
    /// Slurm's short code (`squeue`'s `ST` column).
    pub fn short(self) -> &'static str {
        match self {
            JobState::Pending => "PD",
            JobState::Configuring => "CF",
            JobState::Running => "R",
            JobState::Completed => "CD",
            JobState::Failed => "F",
            JobState::Timeout => "TO",
            JobState::Cancelled => "CA",
            JobState::Preempted => "PR",
            JobState::OutOfMemory => "OOM",
            JobState::NodeFail => "NF",
        }
    }
    /// The final state, for a job that is over.
    pub fn final_state(self) -> Option<FinalState> {
        Some(match self {
            JobState::Pending | JobState::Configuring | JobState::Running => return None,
            JobState::Completed => FinalState::Completed,
            JobState::Failed => FinalState::Failed,
            JobState::Timeout => FinalState::Timeout,
            JobState::Cancelled => FinalState::Cancelled,
            JobState::Preempted => FinalState::Preempted,
            JobState::OutOfMemory => FinalState::OutOfMemory,
            JobState::NodeFail => FinalState::NodeFail,
        })
    }
}

impl From<FinalState> for JobState {
    fn from(s: FinalState) -> JobState {
        match s {
            FinalState::Completed => JobState::Completed,
            FinalState::Failed => JobState::Failed,
            FinalState::Timeout => JobState::Timeout,
            FinalState::Cancelled => JobState::Cancelled,
            FinalState::Preempted => JobState::Preempted,
            FinalState::OutOfMemory => JobState::OutOfMemory,
            FinalState::NodeFail => JobState::NodeFail,
        }
    }
}

named_enum! {
    /// Why a job waits (Slurm's reason codes).
    #[derive(Default)]
    pub enum PendingReason {
        /// Not waiting (or not yet considered by a pass).
        #[default]
        None => "None",
        /// Jobs ahead of it in the queue go first.
        Priority => "Priority",
        /// It is next in line but its resources are not free.
        Resources => "Resources",
        /// Waiting for the jobs it depends on.
        Dependency => "Dependency",
        /// A job it depends on ended in a way that can never satisfy the dependency.
        DependencyNeverSatisfied => "DependencyNeverSatisfied",
        /// Its array's `%N` limit of running tasks is reached.
        JobArrayTaskLimit => "JobArrayTaskLimit",
        /// It was preempted and put back in the queue.
        Requeued => "Requeued",
        /// No node of its partition can hold it now (e.g. the machine shrank).
        ReqNodeNotAvail => "ReqNodeNotAvail",
        /// Its user's running jobs are at the user's job-count limit.
        AssocMaxJobsLimit => "AssocMaxJobsLimit",
        /// Its account's running jobs are at the account's job-count limit.
        AssocGrpJobsLimit => "AssocGrpJobsLimit",
        /// A CPU quota of its user or account is reached.
        AssocGrpCpuLimit => "AssocGrpCpuLimit",
        /// A memory quota of its user or account is reached.
        AssocGrpMemLimit => "AssocGrpMemLimit",
        /// A GPU quota of its user or account is reached.
        AssocGrpGRES => "AssocGrpGRES",
    }
}

impl PendingReason {
    /// A quota (user or account limit) holds the job back.
    pub fn is_limit(self) -> bool {
        matches!(
            self,
            PendingReason::AssocMaxJobsLimit
                | PendingReason::AssocGrpJobsLimit
                | PendingReason::AssocGrpCpuLimit
                | PendingReason::AssocGrpMemLimit
                | PendingReason::AssocGrpGRES
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in JobState::ALL {
            assert_eq!(JobState::from_name(s.name()), Some(*s));
        }
        for s in FinalState::ALL {
            assert_eq!(FinalState::from_name(s.name()), Some(*s));
            assert_eq!(JobState::from(*s).final_state(), Some(*s));
            assert_eq!(JobState::from(*s).name(), s.name());
        }
        for r in PendingReason::ALL {
            assert_eq!(PendingReason::from_name(r.name()), Some(*r));
        }
        assert_eq!(JobState::from_name("running"), None);
        assert!(JobState::Pending.is_active() && !JobState::Timeout.is_active());
    }
}
