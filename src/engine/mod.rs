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

use crate::ids::JobId;
use crate::model::{FinalState, JobSpec};
use crate::policy::{Decision, Policy, View};
use crate::time::{Dur, Time};

/// A job waiting in the queue.
#[derive(Clone, Debug)]
pub struct PendingJob {
    pub spec: JobSpec,
    /// Position in queue order (arrival order); strictly increasing along the queue.
    pub seq: u64,
}

/// A job holding processors.
#[derive(Clone, Debug)]
pub struct RunningJob {
    pub spec: JobSpec,
    pub start: Time,
    /// Order in which jobs were started (ties in expected end are broken by it).
    pub start_seq: u64,
}

impl RunningJob {
    /// When the policy should expect this job to end: start + estimate, or `now` once the job
    /// has overrun its estimate (semantics §3).
    pub fn expected_end(&self, now: Time) -> Time {
        (self.start + self.spec.estimate).max(now)
    }
    pub fn procs(&self) -> u32 {
        self.spec.procs
    }
}

/// A fact the engine learns about.
#[derive(Clone, Debug)]
pub enum Event {
    Submitted(JobSpec),
    Ended { job: JobId, state: FinalState },
}

/// What the executor must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Start {
        job: JobId,
        procs: u32,
        /// End the job as TIMEOUT once it has run this long.
        time_limit: Option<Dur>,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EngineError {
    #[error("job {0} ended but is not running")]
    NotRunning(JobId),
    #[error("job {0} submitted twice")]
    Duplicate(JobId),
    #[error("job {job} needs {procs} processors but the machine has {total}")]
    TooLarge { job: JobId, procs: u32, total: u32 },
    #[error("job {0} asks for no processors")]
    NoProcessors(JobId),
    #[error("policy {policy} made an invalid decision: {why}")]
    InvalidDecision { policy: String, why: String },
    #[error("engine invariant violated: {0}")]
    Invariant(String),
}

/// The engine's state.
pub struct Engine {
    total: u32,
    free: u32,
    pending: Vec<PendingJob>,
    running: Vec<RunningJob>,
    policy: Box<dyn Policy>,
    policy_name: String,
    next_seq: u64,
    next_start_seq: u64,
    wake: Option<Time>,
    /// Reservations of the last pass: (job, planned start).
    plan: Vec<(JobId, Time)>,
    decisions: Vec<Decision>,
    started_mask: Vec<bool>,
    starts: Vec<usize>,
    passes: u64,
}

impl Engine {
    pub fn new(total_procs: u32, policy: Box<dyn Policy>, policy_name: &str) -> Engine {
        Engine {
            total: total_procs,
            free: total_procs,
            pending: Vec::new(),
            running: Vec::new(),
            policy,
            policy_name: policy_name.to_string(),
            next_seq: 0,
            next_start_seq: 0,
            wake: None,
            plan: Vec::new(),
            decisions: Vec::new(),
            started_mask: Vec::new(),
            starts: Vec::new(),
            passes: 0,
        }
    }

    pub fn total_procs(&self) -> u32 {
        self.total
    }
    pub fn free_procs(&self) -> u32 {
        self.free
    }
    pub fn pending(&self) -> &[PendingJob] {
        &self.pending
    }
    pub fn running(&self) -> &[RunningJob] {
        &self.running
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
        events: Vec<Event>,
        out: &mut Vec<Command>,
    ) -> Result<(), EngineError> {
        if self.wake.is_some_and(|w| w <= now) {
            self.wake = None;
        }
        let mut submitted = Vec::new();
        for ev in events {
            match ev {
                Event::Ended { job, .. } => {
                    let i = self
                        .running
                        .iter()
                        .position(|r| r.spec.id == job)
                        .ok_or(EngineError::NotRunning(job))?;
                    let r = self.running.swap_remove(i);
                    self.free += r.spec.procs;
                }
                Event::Submitted(spec) => submitted.push(spec),
            }
        }
        for spec in submitted {
            self.submit(spec)?;
        }
        self.pass(now, out)
    }

    fn submit(&mut self, spec: JobSpec) -> Result<(), EngineError> {
        if spec.procs == 0 {
            return Err(EngineError::NoProcessors(spec.id));
        }
        if spec.procs > self.total {
            return Err(EngineError::TooLarge {
                job: spec.id,
                procs: spec.procs,
                total: self.total,
            });
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.push(PendingJob { spec, seq });
        Ok(())
    }

    fn invalid(&self, why: String) -> EngineError {
        EngineError::InvalidDecision {
            policy: self.policy_name.clone(),
            why,
        }
    }

    /// One scheduling pass: ask the policy, validate, turn starts into commands.
    fn pass(&mut self, now: Time, out: &mut Vec<Command>) -> Result<(), EngineError> {
        self.passes += 1;
        self.plan.clear();
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut decisions = std::mem::take(&mut self.decisions);
        decisions.clear();
        let view = View {
            now,
            total: self.total,
            free: self.free,
            pending: &self.pending,
            running: &self.running,
        };
        self.policy.schedule(&view, &mut decisions);
        self.started_mask.clear();
        self.started_mask.resize(self.pending.len(), false);
        let mut free = self.free;
        self.starts.clear();
        let mut result = Ok(());
        for d in &decisions {
            match *d {
                Decision::Start { pos, job } => {
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
                    if pj.spec.procs > free {
                        result = Err(self.invalid(format!(
                            "job {job} needs {} processors, {free} are free",
                            pj.spec.procs
                        )));
                        break;
                    }
                    free -= pj.spec.procs;
                    self.started_mask[p] = true;
                    self.starts.push(p);
                }
                Decision::Reserve { job, at, .. } => self.plan.push((job, at)),
                Decision::WakeAt(t) => {
                    if t > now {
                        self.wake = Some(self.wake.map_or(t, |w| w.min(t)));
                    }
                }
            }
        }
        self.decisions = decisions;
        if let Err(e) = result {
            self.plan.clear();
            return Err(e);
        }
        // Validated: apply the starts in decision order.
        for &p in &self.starts {
            let spec = &self.pending[p].spec;
            out.push(Command::Start {
                job: spec.id,
                procs: spec.procs,
                time_limit: spec.time_limit,
            });
            self.running.push(RunningJob {
                spec: spec.clone(),
                start: now,
                start_seq: self.next_start_seq,
            });
            self.next_start_seq += 1;
        }
        self.free = free;
        if !self.starts.is_empty() {
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
        let used: u64 = self.running.iter().map(|r| u64::from(r.spec.procs)).sum();
        if used + u64::from(self.free) != u64::from(self.total) {
            return bad(format!(
                "free {} + used {used} != total {}",
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

    fn spec(id: u64, procs: u32) -> JobSpec {
        JobSpec::new(JobId(id), Time::ZERO, procs, Dur(10))
    }

    /// Starts every pending job, fitting or not.
    struct Greedy;
    impl Policy for Greedy {
        fn schedule(&mut self, view: &View<'_>, out: &mut Vec<Decision>) {
            for (i, j) in view.pending.iter().enumerate() {
                out.push(Decision::Start {
                    pos: i as u32,
                    job: j.spec.id,
                });
            }
        }
    }

    #[test]
    fn over_allocation_is_refused_and_changes_nothing() {
        let mut e = Engine::new(4, Box::new(Greedy), "greedy");
        let mut out = Vec::new();
        let events = vec![Event::Submitted(spec(1, 3)), Event::Submitted(spec(2, 2))];
        let err = e.step(Time::ZERO, events, &mut out).unwrap_err();
        assert_eq!(
            err,
            EngineError::InvalidDecision {
                policy: "greedy".into(),
                why: "job 2 needs 2 processors, 1 are free".into()
            }
        );
        assert!(out.is_empty());
        assert_eq!(e.free_procs(), 4);
        assert_eq!(e.pending().len(), 2);
        assert!(e.running().is_empty());
        e.check_invariants().unwrap();
    }

    #[test]
    fn completions_release_before_submissions_join() {
        let (p, _) = crate::policy::build("fcfs").unwrap();
        let mut e = Engine::new(4, p, "fcfs");
        let mut out = Vec::new();
        e.step(Time::ZERO, vec![Event::Submitted(spec(1, 4))], &mut out)
            .unwrap();
        assert_eq!(out.len(), 1);
        out.clear();
        // The submission comes first in the list, the completion is still applied first.
        let events = vec![
            Event::Submitted(spec(2, 4)),
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
                procs: 4,
                time_limit: None
            }]
        );
        e.check_invariants().unwrap();
    }

    #[test]
    fn bad_events_are_errors() {
        let (p, _) = crate::policy::build("fcfs").unwrap();
        let mut e = Engine::new(4, p, "fcfs");
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
            e.step(Time::ZERO, vec![Event::Submitted(spec(1, 5))], &mut out),
            Err(EngineError::TooLarge { .. })
        ));
    }
}
