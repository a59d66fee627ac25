//! Job specification and truth.

use crate::ids::{JobId, Sym};
use crate::model::Request;
use crate::model::elastic::{ElasticRange, Speedup};
use crate::time::{Dur, Time};
use std::fmt;
use std::str::FromStr;

/// What a user submitted. This is everything the engine and the policies know about a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobSpec {
    pub id: JobId,
    pub submit: Time,
    /// CPUs the job needs in total, ≥ 1 (the SWF's "processors").
    pub cpus: u32,
    /// The run-time estimate the policy plans with (see [`EstimateMode`]); ≥ 0.
    pub estimate: Dur,
    /// The time limit the user requested, if any. Reported in outputs; enforced only when the
    /// run kills jobs at their limit.
    pub requested_time: Option<Dur>,
    /// Enforced limit: the executor ends the job (state TIMEOUT) once it has run this long.
    /// `None` in trace replay by default.
    pub time_limit: Option<Dur>,
    /// Larger runs earlier under priority ordering.
    pub priority: i64,
    pub user: Sym,
    /// The account charged (Slurm's `--account`; the SWF's group id).
    pub account: Sym,
    pub queue: Sym,
    /// Index of the job's partition in the cluster.
    pub partition: u32,
    /// Exact node count (Slurm's `-N`), if the user gave one.
    pub nodes: Option<u32>,
    /// Memory per node, MB.
    pub mem_mb: Option<u64>,
    /// GPUs per node.
    pub gpus: u32,
    /// Slurm's `--switches=COUNT@MAX_WAIT`: prefer an allocation spanning at most COUNT leaf
    /// switches, waiting up to MAX_WAIT after submission for one.
    pub switches: Option<(u32, Dur)>,
    /// Quality of service by name (empty: none). Its priority comes from the accounts file's
    /// `qos` lines and feeds the multifactor QOS factor.
    pub qos: Sym,
    /// Slurm's `--nice`: subtracted from the multifactor priority (negative raises it).
    pub nice: i32,
    /// Elastic (malleable) job: may run on any CPU count in this range and be resized while it
    /// runs (`cpus` is its requested, starting size). `None`: rigid.
    pub elastic: Option<ElasticRange>,
}

impl JobSpec {
    /// A job with the fields every simulation needs; the rest take their defaults (no
    /// requested time or limit, priority 0, unknown user, group, queue and partition).
    pub fn new(id: JobId, submit: Time, cpus: u32, estimate: Dur) -> JobSpec {
        JobSpec {
            id,
            submit,
            cpus,
            estimate,
            requested_time: None,
            time_limit: None,
            priority: 0,
            user: Sym::default(),
            account: Sym::default(),
            queue: Sym::default(),
            partition: 0,
            nodes: None,
            mem_mb: None,
            gpus: 0,
            qos: Sym::default(),
            nice: 0,
            switches: None,
            elastic: None,
        }
    }

    /// What the job needs from the cluster, whatever the time.
    pub fn request(&self) -> Request {
        Request {
            cpus: self.cpus,
            nodes: self.nodes,
            mem_mb: self.mem_mb.unwrap_or(0),
            gpus: self.gpus,
            max_leaves: None,
        }
    }

    /// What the job asks for at `now`: its request, limited to `--switches` leaves while it
    /// may still wait for such an allocation.
    pub fn request_at(&self, now: Time) -> Request {
        Request {
            max_leaves: self
                .switches
                .filter(|&(_, wait)| now < self.submit + wait)
                .map(|(count, _)| count),
            ..self.request()
        }
    }
}

/// What really happens to a job in simulation. Only the simulated executor reads this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobTruth {
    /// Actual run time (at the requested size for an elastic job), ≥ 0.
    pub runtime: Dur,
    /// How an elastic job's progress rate depends on its size (ignored for rigid jobs).
    pub speedup: Speedup,
}

impl JobTruth {
    /// A job that runs `runtime` (linear speedup if it is elastic).
    pub fn new(runtime: Dur) -> JobTruth {
        JobTruth {
            runtime,
            speedup: Speedup::Linear,
        }
    }
}

/// What happens to a preempted job (Slurm's `PreemptMode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PreemptMode {
    /// Back to the queue; restarts from scratch (the work done is lost).
    Requeue,
    /// Stopped and queued again; resumes with its remaining work.
    Suspend,
    /// Ended, state PREEMPTED.
    Cancel,
}

impl PreemptMode {
    pub fn parse(s: &str) -> Option<PreemptMode> {
        match s {
            "requeue" => Some(PreemptMode::Requeue),
            "suspend" => Some(PreemptMode::Suspend),
            "cancel" => Some(PreemptMode::Cancel),
            _ => None,
        }
    }
}

/// How the estimate a policy sees is derived from the trace (semantics §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EstimateMode {
    /// The requested time, or the run time when none was requested.
    #[default]
    Requested,
    /// max(requested, run time): never an under-estimate.
    Max,
    /// The run time itself: perfect estimates.
    Actual,
}

impl EstimateMode {
    pub const ALL: [EstimateMode; 3] = [
        EstimateMode::Requested,
        EstimateMode::Max,
        EstimateMode::Actual,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EstimateMode::Requested => "requested",
            EstimateMode::Max => "max",
            EstimateMode::Actual => "actual",
        }
    }

    /// The estimate for a job with this requested time (`None` or ≤ 0: not given) and run time.
    pub fn estimate(self, requested: Option<Dur>, runtime: Dur) -> Dur {
        let req = requested.filter(|r| r.0 > 0);
        match self {
            EstimateMode::Requested => req.unwrap_or(runtime),
            EstimateMode::Max => req.map_or(runtime, |r| r.max(runtime)),
            EstimateMode::Actual => runtime,
        }
    }
}

impl fmt::Display for EstimateMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EstimateMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "requested" => Ok(EstimateMode::Requested),
            "max" => Ok(EstimateMode::Max),
            "actual" => Ok(EstimateMode::Actual),
            _ => Err(format!(
                "unknown estimate mode '{s}' (expected requested, max or actual)"
            )),
        }
    }
}

/// Parses a memory size in Slurm's and the seeds' syntax into megabytes: a plain number is MB;
/// suffixes `K`, `M`, `G`, `T` (optionally followed by `B`, any case) scale by 1024.
pub fn parse_mem_mb(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let bad = || format!("invalid memory size '{s}': expected e.g. 512, 512M, 4GB or 1T");
    let upper = t.to_ascii_uppercase();
    let body = upper.strip_suffix('B').unwrap_or(&upper);
    let (num, kb_per_unit): (&str, u64) = match body.as_bytes().last() {
        Some(b'K') => (&body[..body.len() - 1], 1),
        Some(b'M') => (&body[..body.len() - 1], 1024),
        Some(b'G') => (&body[..body.len() - 1], 1024 * 1024),
        Some(b'T') => (&body[..body.len() - 1], 1024 * 1024 * 1024),
        _ => (body, 1024),
    };
    let v: f64 = num.trim().parse().map_err(|_| bad())?;
    if !v.is_finite() || !(0.0..=1.0e15).contains(&v) {
        return Err(bad());
    }
    let kb = (v * kb_per_unit as f64).round() as u64;
    Ok(kb.div_ceil(1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_mem_mb("4GB"), Ok(4096));
        assert_eq!(parse_mem_mb("1024MB"), Ok(1024));
        assert_eq!(parse_mem_mb("2g"), Ok(2048));
        assert_eq!(parse_mem_mb("512m"), Ok(512));
        assert_eq!(parse_mem_mb("300"), Ok(300));
        assert_eq!(parse_mem_mb("1.5G"), Ok(1536));
        assert_eq!(parse_mem_mb("1T"), Ok(1024 * 1024));
        assert_eq!(parse_mem_mb("1536K"), Ok(2));
        assert!(parse_mem_mb("lots").is_err());
        assert!(parse_mem_mb("-1G").is_err());
    }

    #[test]
    fn estimate_modes_follow_the_contract() {
        let r = Some(Dur(100));
        assert_eq!(EstimateMode::Requested.estimate(r, Dur(150)), Dur(100));
        assert_eq!(EstimateMode::Max.estimate(r, Dur(150)), Dur(150));
        assert_eq!(EstimateMode::Max.estimate(r, Dur(50)), Dur(100));
        assert_eq!(EstimateMode::Actual.estimate(r, Dur(50)), Dur(50));
        // no requested time (SWF -1, or 0): fall back to the run time
        assert_eq!(EstimateMode::Requested.estimate(None, Dur(7)), Dur(7));
        assert_eq!(
            EstimateMode::Requested.estimate(Some(Dur(0)), Dur(7)),
            Dur(7)
        );
    }
}
