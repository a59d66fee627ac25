//! The in-memory store of a simulation: it hands the trace's jobs to the engine in queue order
//! as their submit times come, and records what happened to each (start, end, allocation,
//! preemptions, resizes, CPU-time).

use crate::driver::{Completion, Store};
use crate::engine::Command;
use crate::ids::{FastMap, JobId};
use crate::model::{FinalState, JobSpec, JobTruth, PendingReason, PreemptMode, Slice};
use crate::time::Time;
use std::sync::Arc;

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
