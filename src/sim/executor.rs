//! The simulated executor: it knows each job's true run time (the hidden truth), starts jobs on
//! virtual time and reports their ends — stretched by the topology penalty, cut at the time
//! limit, moved by resizes, stopped by preemptions.

use crate::driver::{Completion, Executor};
use crate::engine::Command;
use crate::ids::{FastMap, JobId};
use crate::metrics::ElasticWork;
use crate::model::{FinalState, JobTruth, PreemptMode};
use crate::sim::store::JobTable;
use crate::time::{Dur, Time};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Runs jobs on virtual time: each ends after its true run time — stretched by the topology
/// penalty when it spans several leaf switches — or at its time limit (TIMEOUT) when one is
/// set and shorter.
#[derive(Debug)]
pub struct SimExecutor<'a> {
    /// The jobs with their truth.
    jobs: &'a JobTable<'a>,
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

impl<'a> SimExecutor<'a> {
    /// An executor for `jobs`.
    pub fn new(jobs: &'a JobTable<'a>, span_penalty_permille: u32) -> SimExecutor<'a> {
        SimExecutor {
            jobs,
            span_penalty_permille,
            ends: BinaryHeap::new(),
            started: 0,
            live: FastMap::default(),
            remaining: FastMap::default(),
            work: FastMap::default(),
            elastic: FastMap::default(),
        }
    }

    fn truth(&self, job: JobId) -> Option<JobTruth> {
        self.jobs.truth(job).map(|t| t.0)
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

impl Executor for SimExecutor<'_> {
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
                let (t, elastic) = self.jobs.truth(job).ok_or(SimExecError::UnknownJob(job))?;
                // An elastic job's work is defined at its requested size.
                if let Some(p) = elastic {
                    self.elastic.entry(job).or_insert(p);
                }
                // A suspended job resumes with its remaining work.
                let left = if self.remaining.is_empty() {
                    None
                } else {
                    self.remaining.remove(&job)
                };
                let elastic = elastic.and_then(|_| self.elastic.get(&job).copied());
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
                let t = self.truth(job);
                let (Some(seg), Some(&p), Some(t)) =
                    (self.live.get_mut(&job), self.elastic.get(&job), t)
                else {
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
