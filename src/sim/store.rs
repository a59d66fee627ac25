//! The in-memory store of a simulation: it hands the trace's jobs to the engine in queue order
//! as their submit times come, and records what happened to each (start, end, allocation,
//! preemptions, resizes, CPU-time) straight into the job's [`JobResult`], so that a
//! simulation's outcome is built in place (one record per job, not two).

use crate::driver::{Completion, Store};
use crate::engine::Command;
use crate::ids::{FastMap, JobId};
use crate::metrics::JobResult;
use crate::model::{FinalState, JobSpec, JobTruth, PendingReason, PreemptMode, Slice};
use crate::time::{Dur, Time};
use std::sync::Arc;

/// Job id → position in the workload: a table by id when the ids are compact (traces mostly
/// number their jobs 1..N), else a hash map.
#[derive(Debug)]
pub enum JobIndex {
    /// `pos[id − min]`, `u32::MAX` where no job has that id.
    Dense {
        min: u64,
        pos: Vec<u32>,
    },
    Sparse(FastMap<JobId, u32>),
}

impl JobIndex {
    pub fn new(jobs: &[(Arc<JobSpec>, JobTruth)]) -> JobIndex {
        let ids = || jobs.iter().map(|j| j.0.id.0);
        let (Some(min), Some(max)) = (ids().min(), ids().max()) else {
            return JobIndex::Dense {
                min: 0,
                pos: Vec::new(),
            };
        };
        let span = max - min;
        if span < 4 * jobs.len() as u64 + 1024 {
            let mut pos = vec![u32::MAX; span as usize + 1];
            for (i, id) in ids().enumerate() {
                pos[(id - min) as usize] = i as u32;
            }
            JobIndex::Dense { min, pos }
        } else {
            JobIndex::Sparse(
                ids()
                    .enumerate()
                    .map(|(i, id)| (JobId(id), i as u32))
                    .collect(),
            )
        }
    }

    pub fn get(&self, job: JobId) -> Option<usize> {
        match self {
            JobIndex::Dense { min, pos } => job
                .0
                .checked_sub(*min)
                .and_then(|k| pos.get(usize::try_from(k).ok()?))
                .filter(|&&p| p != u32::MAX)
                .map(|&p| p as usize),
            JobIndex::Sparse(m) => m.get(&job).map(|&p| p as usize),
        }
    }
}

/// A job that holds CPUs now: how many since when, and the CPU-milliseconds of its current
/// run so far (lost if it is requeued).
#[derive(Clone, Copy, Debug)]
struct Holding {
    cpus: u32,
    since: Time,
    run_cpu_ms: i64,
}

/// Per job: started (at least once), ended.
const STARTED: u8 = 1;
const ENDED: u8 = 2;

/// An in-memory store: arrivals from a trace in queue order, outcomes by position.
#[derive(Debug)]
pub struct MemStore<'a> {
    jobs: &'a [(Arc<JobSpec>, JobTruth)],
    next: usize,
    index: &'a JobIndex,
    /// Every job's record, filled in as it runs.
    results: Vec<JobResult>,
    flags: Vec<u8>,
    /// The jobs holding CPUs, by position.
    holding: FastMap<u32, Holding>,
}

#[derive(Debug, thiserror::Error)]
pub enum MemStoreError {
    #[error("unknown job {0}")]
    UnknownJob(JobId),
}

impl<'a> MemStore<'a> {
    /// `jobs` must be in queue order; `index` finds them by id.
    pub fn new(jobs: &'a [(Arc<JobSpec>, JobTruth)], index: &'a JobIndex) -> MemStore<'a> {
        let none: Arc<[Slice]> = Arc::from(Vec::new());
        let results = jobs
            .iter()
            .map(|(spec, truth)| JobResult {
                spec: Arc::clone(spec),
                runtime: truth.runtime,
                start: Time::ZERO,
                finish: Time::ZERO,
                state: FinalState::Completed,
                alloc: Arc::clone(&none),
                leaf_switches: 0,
                pending_reason: PendingReason::None,
                preemptions: 0,
                busy: Dur::ZERO,
                lost_cpu_ms: 0,
                cpu_ms: 0,
                resizes: 0,
            })
            .collect();
        MemStore {
            jobs,
            next: 0,
            index,
            results,
            flags: vec![0; jobs.len()],
            holding: FastMap::default(),
        }
    }
    fn slot(&self, job: JobId) -> Result<usize, MemStoreError> {
        self.index.get(job).ok_or(MemStoreError::UnknownJob(job))
    }
    pub fn jobs(&self) -> &[(Arc<JobSpec>, JobTruth)] {
        self.jobs
    }
    /// How many jobs have been handed to the engine so far.
    pub fn handed_over(&self) -> usize {
        self.next
    }
    /// Every job's record in queue order, or `None` if some job never started or never ended.
    pub fn into_results(self) -> Option<Vec<JobResult>> {
        self.flags
            .iter()
            .all(|&f| f == STARTED | ENDED)
            .then_some(self.results)
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
        let i = self.slot(*job)?;
        let r = &mut self.results[i];
        r.start = now;
        r.alloc = Arc::clone(alloc);
        r.leaf_switches = *leaf_switches;
        r.pending_reason = *waited_for;
        self.flags[i] |= STARTED;
        self.holding.insert(
            i as u32,
            Holding {
                cpus: alloc.iter().map(|s| s.cpus).sum(),
                since: now,
                run_cpu_ms: 0,
            },
        );
        Ok(())
    }
    fn record_end(&mut self, c: &Completion) -> Result<(), MemStoreError> {
        let i = self.slot(c.job)?;
        let r = &mut self.results[i];
        if self.flags[i] & STARTED != 0 {
            r.busy = r.busy + (c.at - r.start);
        }
        if let Some(h) = self.holding.get_mut(&(i as u32)) {
            let tail = i64::from(h.cpus) * (c.at - h.since).0;
            r.cpu_ms += tail;
            h.run_cpu_ms += tail;
            h.since = c.at;
        }
        match c.preempted {
            Some(PreemptMode::Requeue) => {
                r.preemptions += 1;
                r.lost_cpu_ms += self.holding.get(&(i as u32)).map_or(0, |h| h.run_cpu_ms);
            }
            Some(PreemptMode::Suspend) => r.preemptions += 1,
            Some(PreemptMode::Cancel) | None => {
                r.preemptions += u32::from(c.preempted.is_some());
                r.finish = c.at;
                r.state = c.state;
                self.flags[i] |= ENDED;
            }
        }
        self.holding.remove(&(i as u32));
        Ok(())
    }
    fn record_resize(&mut self, now: Time, cmd: &Command) -> Result<(), MemStoreError> {
        let Command::Resize { job, cpus, alloc } = cmd else {
            return Ok(());
        };
        let i = self.slot(*job)?;
        let r = &mut self.results[i];
        if let Some(h) = self.holding.get_mut(&(i as u32)) {
            let seg = i64::from(h.cpus) * (now - h.since).0;
            r.cpu_ms += seg;
            h.run_cpu_ms += seg;
            h.cpus = *cpus;
            h.since = now;
        }
        r.resizes += 1;
        r.alloc = Arc::clone(alloc);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::JobTruth;
    use crate::time::Dur;

    fn jobs(ids: &[u64]) -> Vec<(Arc<JobSpec>, JobTruth)> {
        ids.iter()
            .map(|&id| {
                let spec = JobSpec::new(JobId(id), Time::ZERO, 1, Dur(1));
                (Arc::new(spec), JobTruth::new(Dur(1)))
            })
            .collect()
    }

    /// Both forms find every job at its position and nothing else.
    #[test]
    fn the_index_finds_jobs_by_id_dense_or_sparse() {
        for (ids, dense) in [
            (vec![7, 5, 9, 6], true),
            (vec![3, 1_000_000_000, 12, 400_000], false),
        ] {
            let w = jobs(&ids);
            let index = JobIndex::new(&w);
            assert_eq!(matches!(index, JobIndex::Dense { .. }), dense, "{ids:?}");
            for (i, &id) in ids.iter().enumerate() {
                assert_eq!(index.get(JobId(id)), Some(i), "{ids:?}: {id}");
            }
            for id in [0, 4, 8, 10, 13, u64::MAX] {
                assert_eq!(index.get(JobId(id)), None, "{ids:?}: {id}");
            }
        }
        assert_eq!(JobIndex::new(&[]).get(JobId(1)), None);
    }

    /// Results only once every job has started and ended.
    #[test]
    fn results_need_every_job_ended() {
        let w = jobs(&[1, 2]);
        let index = JobIndex::new(&w);
        let mut store = MemStore::new(&w, &index);
        let alloc: Arc<[Slice]> = Arc::from([Slice::new(0, 1, 0)]);
        for (job, at) in [(1, 10), (2, 20)] {
            let start = Command::Start {
                job: JobId(job),
                alloc: Arc::clone(&alloc),
                leaf_switches: 1,
                waited_for: PendingReason::Resources,
                cpus: 1,
                time_limit: None,
            };
            store.record_start(Time(at), &start).unwrap();
        }
        let end = |job, at| Completion {
            job: JobId(job),
            at: Time(at),
            state: FinalState::Completed,
            preempted: None,
        };
        store.record_end(&end(1, 15)).unwrap();
        assert!(matches!(
            store.record_end(&end(3, 15)),
            Err(MemStoreError::UnknownJob(JobId(3)))
        ));
        let mut two = MemStore::new(&w, &index);
        two.record_end(&end(1, 15)).unwrap();
        assert!(
            two.into_results().is_none(),
            "job 1 never started, job 2 never ended"
        );
        store.record_end(&end(2, 50)).unwrap();
        let r = store.into_results().unwrap();
        assert_eq!(
            (r[0].start, r[0].finish, r[0].cpu_ms),
            (Time(10), Time(15), 5)
        );
        assert_eq!((r[1].busy, r[1].cpu_ms), (Dur(30), 30));
        assert_eq!(r[1].pending_reason, PendingReason::Resources);
    }
}
