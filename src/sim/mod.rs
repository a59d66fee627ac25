//! The discrete-event simulator: a virtual clock, a simulated executor that knows each job's
//! true run time, and an in-memory store fed by a trace — plugged into the shared driver loop.

use crate::driver::{self, Clock, Completion, DriverError, Executor, Observer, Store};
use crate::engine::{Command, Engine};
use crate::ids::JobId;
use crate::model::{FinalState, JobSpec, JobTruth};
use crate::policy::Policy;
use crate::time::{Dur, Time};
use crate::trace::SimJobs;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

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

/// Runs jobs on virtual time: each ends after its true run time, or at its time limit (TIMEOUT)
/// when one is set and shorter.
#[derive(Debug, Default)]
pub struct SimExecutor {
    truth: HashMap<JobId, JobTruth>,
    /// (end, start order, job, state), earliest first.
    ends: BinaryHeap<Reverse<(Time, u64, JobId, FinalState)>>,
    started: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SimExecError {
    #[error("job {0} has no recorded run time")]
    UnknownJob(JobId),
}

impl SimExecutor {
    pub fn new(truth: HashMap<JobId, JobTruth>) -> SimExecutor {
        SimExecutor {
            truth,
            ..SimExecutor::default()
        }
    }
}

impl Executor for SimExecutor {
    type Error = SimExecError;

    fn apply(&mut self, now: Time, cmd: &Command) -> Result<(), SimExecError> {
        match *cmd {
            Command::Start {
                job, time_limit, ..
            } => {
                let t = self.truth.get(&job).ok_or(SimExecError::UnknownJob(job))?;
                let (run, state) = match time_limit {
                    Some(l) if t.runtime > l => (l, FinalState::Timeout),
                    _ => (t.runtime, FinalState::Completed),
                };
                self.ends
                    .push(Reverse((now + run, self.started, job, state)));
                self.started += 1;
            }
        }
        Ok(())
    }

    fn take_completions(&mut self, now: Time, out: &mut Vec<Completion>) {
        while let Some(&Reverse((at, _, job, state))) = self.ends.peek() {
            if at > now {
                break;
            }
            self.ends.pop();
            out.push(Completion { job, at, state });
        }
    }

    fn next_completion(&self) -> Option<Time> {
        self.ends.peek().map(|Reverse(e)| e.0)
    }
}

/// What happened to one job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub start: Option<Time>,
    pub finish: Option<Time>,
    pub state: Option<FinalState>,
}

/// An in-memory store: arrivals from a trace in queue order, outcomes by position.
#[derive(Debug)]
pub struct MemStore {
    jobs: Vec<JobSpec>,
    next: usize,
    index: HashMap<JobId, u32>,
    pub outcomes: Vec<Outcome>,
}

#[derive(Debug, thiserror::Error)]
pub enum MemStoreError {
    #[error("unknown job {0}")]
    UnknownJob(JobId),
}

impl MemStore {
    /// `jobs` must be in queue order.
    pub fn new(jobs: Vec<JobSpec>) -> MemStore {
        let index = jobs
            .iter()
            .enumerate()
            .map(|(i, j)| (j.id, i as u32))
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
    pub fn jobs(&self) -> &[JobSpec] {
        &self.jobs
    }
    /// How many jobs have been handed to the engine so far.
    pub fn handed_over(&self) -> usize {
        self.next
    }
}

impl Store for MemStore {
    type Error = MemStoreError;

    fn take_arrivals(&mut self, now: Time, out: &mut Vec<JobSpec>) -> Result<(), MemStoreError> {
        while let Some(j) = self.jobs.get(self.next) {
            if j.submit > now {
                break;
            }
            out.push(j.clone());
            self.next += 1;
        }
        Ok(())
    }
    fn next_arrival(&self) -> Option<Time> {
        self.jobs.get(self.next).map(|j| j.submit)
    }
    fn exhausted(&self) -> bool {
        self.next >= self.jobs.len()
    }
    fn record_start(&mut self, now: Time, job: JobId, _procs: u32) -> Result<(), MemStoreError> {
        self.slot(job)?.start = Some(now);
        Ok(())
    }
    fn record_end(&mut self, c: &Completion) -> Result<(), MemStoreError> {
        let s = self.slot(c.job)?;
        s.finish = Some(c.at);
        s.state = Some(c.state);
        Ok(())
    }
}

/// One simulated job, as reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobResult {
    pub spec: JobSpec,
    pub runtime: Dur,
    pub start: Time,
    pub finish: Time,
    pub state: FinalState,
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
}

/// The result of a simulation, jobs sorted by id.
#[derive(Clone, Debug)]
pub struct SimResult {
    pub procs: u32,
    pub jobs: Vec<JobResult>,
    pub passes: u64,
}

/// Simulates `jobs` under `policy`. `observer` sees the engine after every step.
pub fn simulate(
    jobs: &SimJobs,
    policy: Box<dyn Policy>,
    policy_name: &str,
    observer: &mut dyn Observer,
) -> Result<SimResult, DriverError> {
    let truth: HashMap<JobId, JobTruth> = jobs.jobs.iter().map(|(s, t)| (s.id, *t)).collect();
    let specs: Vec<JobSpec> = jobs.jobs.iter().map(|(s, _)| s.clone()).collect();
    let start = specs.first().map_or(Time::ZERO, |j| j.submit);
    let mut engine = Engine::new(jobs.procs, policy, policy_name);
    let mut clock = VirtualClock::starting_at(start);
    let mut exec = SimExecutor::new(truth);
    let mut store = MemStore::new(specs);
    driver::run(&mut engine, &mut clock, &mut exec, &mut store, observer)?;
    let mut out = Vec::with_capacity(jobs.jobs.len());
    for ((spec, truth), o) in jobs.jobs.iter().zip(&store.outcomes) {
        // The driver only returns Ok once every job has ended.
        let (Some(start), Some(finish), Some(state)) = (o.start, o.finish, o.state) else {
            return Err(DriverError::Stalled {
                now: clock.now(),
                pending: engine.pending().len(),
                policy: policy_name.to_string(),
            });
        };
        out.push(JobResult {
            spec: spec.clone(),
            runtime: truth.runtime,
            start,
            finish,
            state,
        });
    }
    out.sort_by_key(|j| j.spec.id);
    Ok(SimResult {
        procs: jobs.procs,
        jobs: out,
        passes: engine.passes(),
    })
}
