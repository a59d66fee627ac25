//! The in-memory store of a simulation: it hands the trace's jobs to the engine in queue order
//! as their submit times come, and records what happened to each (start, end, allocation,
//! preemptions, resizes, CPU-time) straight into the job's [`JobResult`], so that a
//! simulation's outcome is built in place (one record per job, not two).
//!
//! The jobs are in a [`JobTable`], shared with the executor: a workload prepared whole, or one
//! that grows as a [`JobFeed`] delivers jobs while the trace is still being read.

use crate::driver::{Completion, Store};
use crate::engine::Command;
use crate::ids::{FastMap, JobId};
use crate::metrics::JobResult;
use crate::model::{FinalState, JobSpec, JobTruth, PendingReason, PreemptMode, Slice};
use crate::time::{Dur, Time};
use std::cell::RefCell;
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

    /// Adds the job `id` at position `at`, the index's `at`-th job (ids are unique): the table
    /// grows while the ids stay compact, and becomes a map when they do not.
    pub fn push(&mut self, id: JobId, at: usize) {
        if let JobIndex::Dense { min, pos } = self {
            if pos.is_empty() {
                *min = id.0;
            }
            let span = id.0.checked_sub(*min).filter(|&k| k < 4 * at as u64 + 1024);
            if let Some(k) = span {
                let k = k as usize;
                if pos.len() <= k {
                    pos.resize(k + 1, u32::MAX);
                }
                pos[k] = at as u32;
                return;
            }
            let map = pos
                .iter()
                .enumerate()
                .filter(|p| *p.1 != u32::MAX)
                .map(|(k, &p)| (JobId(*min + k as u64), p))
                .collect();
            *self = JobIndex::Sparse(map);
        }
        if let JobIndex::Sparse(m) = self {
            m.insert(id, at as u32);
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

/// Simulated jobs with their truth, in queue order.
pub type JobBatch = Vec<(Arc<JobSpec>, JobTruth)>;

/// Jobs in queue order, delivered a batch at a time while a simulation runs.
pub trait JobFeed {
    /// The next jobs (in queue order, after every job delivered before), or `None` at the end;
    /// `Err` when the feed stopped and the simulation must be given up.
    fn next_jobs(&mut self) -> Result<Option<JobBatch>, String>;
}

impl std::fmt::Debug for JobTable<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobTable")
            .field("jobs", &self.len())
            .field("feeding", &self.feeding())
            .finish()
    }
}

/// The jobs of a simulation, found by position (the store) and by id (the executor): a
/// workload prepared whole, or one that grows from a [`JobFeed`].
pub struct JobTable<'a> {
    /// The whole workload, when it was prepared whole (else empty).
    fixed: &'a [(Arc<JobSpec>, JobTruth)],
    grown: RefCell<Grown>,
}

struct Grown {
    /// The jobs delivered so far, when fed.
    jobs: Vec<(Arc<JobSpec>, JobTruth)>,
    index: JobIndex,
    feed: Option<Box<dyn JobFeed>>,
    /// Why the feed stopped, if it did.
    failed: Option<String>,
}

impl<'a> JobTable<'a> {
    /// A workload prepared whole, in queue order.
    pub fn whole(jobs: &'a [(Arc<JobSpec>, JobTruth)]) -> JobTable<'a> {
        JobTable {
            fixed: jobs,
            grown: RefCell::new(Grown {
                jobs: Vec::new(),
                index: JobIndex::new(jobs),
                feed: None,
                failed: None,
            }),
        }
    }

    /// Jobs that `feed` delivers while the simulation runs; its first batch is taken now.
    pub fn fed(feed: Box<dyn JobFeed>) -> JobTable<'a> {
        let table = JobTable {
            fixed: &[],
            grown: RefCell::new(Grown {
                jobs: Vec::new(),
                index: JobIndex::Dense {
                    min: 0,
                    pos: Vec::new(),
                },
                feed: Some(feed),
                failed: None,
            }),
        };
        table.pull();
        table
    }

    /// Takes the feed's next batch; false when there is none (the feed ended or stopped).
    fn pull(&self) -> bool {
        let g = &mut *self.grown.borrow_mut();
        let Some(feed) = g.feed.as_mut() else {
            return false;
        };
        match feed.next_jobs() {
            Ok(Some(batch)) => {
                let base = g.jobs.len();
                for (k, (s, _)) in batch.iter().enumerate() {
                    g.index.push(s.id, base + k);
                }
                g.jobs.extend(batch);
                true
            }
            Ok(None) => {
                g.feed = None;
                false
            }
            Err(e) => {
                g.failed = Some(e);
                g.feed = None;
                false
            }
        }
    }

    /// The job at `pos` and its true run time, if known.
    fn job_at(&self, pos: usize) -> Option<(Arc<JobSpec>, Dur)> {
        let known = |j: &(Arc<JobSpec>, JobTruth)| (Arc::clone(&j.0), j.1.runtime);
        match self.fixed.get(pos) {
            Some(j) => Some(known(j)),
            None => self.grown.borrow().jobs.get(pos).map(known),
        }
    }

    /// The submit time of the job at `pos`, if it is known now (never waits for the feed).
    fn submit_at(&self, pos: usize) -> Option<Time> {
        match self.fixed.get(pos) {
            Some(j) => Some(j.0.submit),
            None => self.grown.borrow().jobs.get(pos).map(|j| j.0.submit),
        }
    }

    /// Whether more jobs may come beyond those known now.
    fn feeding(&self) -> bool {
        self.grown.borrow().feed.is_some()
    }

    /// Jobs known now.
    pub fn len(&self) -> usize {
        self.fixed.len().max(self.grown.borrow().jobs.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Why the feed stopped, if it did.
    pub fn failed(&self) -> Option<String> {
        self.grown.borrow().failed.clone()
    }

    /// The position of job `job`.
    pub fn position(&self, job: JobId) -> Option<usize> {
        self.grown.borrow().index.get(job)
    }

    /// The truth of job `job`, and its requested size if it is elastic.
    pub fn truth(&self, job: JobId) -> Option<(JobTruth, Option<u32>)> {
        let g = self.grown.borrow();
        let i = g.index.get(job)?;
        let (s, t) = match self.fixed.get(i) {
            Some(j) => j,
            None => g.jobs.get(i)?,
        };
        Some((*t, s.elastic.map(|_| s.cpus)))
    }

    /// The submit time of the first job.
    pub fn first_submit(&self) -> Option<Time> {
        self.submit_at(0)
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

/// Takes the records of finished jobs while a simulation still runs, a block at a time and in
/// queue order ([`MemStore::with_finished`]): `jobs.csv` is then written beside the simulation
/// instead of after it.
pub trait FinishedJobs {
    /// Jobs per block (at least one).
    fn block_len(&self) -> usize;
    /// Takes the next block: every job in it has ended and its record will not change. False
    /// when it cannot take it now; it is offered again at a later job's end.
    fn offer(&mut self, jobs: &[JobResult]) -> bool;
}

/// Blocks of finished jobs handed over, in queue order.
struct Handing<'a> {
    to: &'a mut dyn FinishedJobs,
    len: usize,
    /// Jobs ended, per block.
    ended: Vec<u32>,
    /// Blocks handed over.
    done: usize,
}

/// An in-memory store: arrivals from a trace in queue order, outcomes by position.
pub struct MemStore<'a> {
    jobs: &'a JobTable<'a>,
    next: usize,
    /// Every arrived job's record, filled in as it runs.
    results: Vec<JobResult>,
    flags: Vec<u8>,
    /// The jobs holding CPUs, by position.
    holding: FastMap<u32, Holding>,
    /// The empty allocation of a job that has not started.
    none: Arc<[Slice]>,
    finished: Option<Handing<'a>>,
}

#[derive(Debug, thiserror::Error)]
pub enum MemStoreError {
    #[error("unknown job {0}")]
    UnknownJob(JobId),
    #[error("the jobs stopped coming: {0}")]
    Feed(String),
}

impl<'a> MemStore<'a> {
    /// A store handing over `jobs` (in queue order).
    pub fn new(jobs: &'a JobTable<'a>) -> MemStore<'a> {
        let n = jobs.fixed.len();
        MemStore {
            jobs,
            next: 0,
            results: Vec::with_capacity(n),
            flags: Vec::with_capacity(n),
            holding: FastMap::default(),
            none: Arc::from(Vec::new()),
            finished: None,
        }
    }

    /// Hands `to` every block of jobs (of its length, by position) once they have all ended,
    /// in order; a last, shorter block is not handed over.
    pub fn with_finished(mut self, to: &'a mut dyn FinishedJobs) -> MemStore<'a> {
        let len = to.block_len().max(1);
        self.finished = Some(Handing {
            to,
            len,
            ended: Vec::new(),
            done: 0,
        });
        self
    }

    /// Counts the job at `i` as ended and hands over the blocks now finished.
    fn hand_over(&mut self, i: usize) {
        let Some(h) = self.finished.as_mut() else {
            return;
        };
        let b = i / h.len;
        if h.ended.len() <= b {
            h.ended.resize(b + 1, 0);
        }
        h.ended[b] += 1;
        while h.ended.get(h.done).is_some_and(|&n| n as usize == h.len) {
            let from = h.done * h.len;
            if !h.to.offer(&self.results[from..from + h.len]) {
                break;
            }
            h.done += 1;
        }
    }
    fn slot(&self, job: JobId) -> Result<usize, MemStoreError> {
        self.jobs
            .position(job)
            .filter(|&i| i < self.results.len())
            .ok_or(MemStoreError::UnknownJob(job))
    }
    /// How many jobs have been handed to the engine so far.
    pub fn handed_over(&self) -> usize {
        self.next
    }
    /// Every job's record in queue order, or `None` if some job never started or never ended
    /// (or jobs are still to come).
    pub fn into_results(self) -> Option<Vec<JobResult>> {
        (!self.jobs.feeding()
            && self.next == self.jobs.len()
            && self.flags.iter().all(|&f| f == STARTED | ENDED))
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
        loop {
            // The next job, taking the feed's next batch when every known job was handed over.
            let Some(submit) = self.jobs.submit_at(self.next) else {
                if self.jobs.pull() {
                    continue;
                }
                break;
            };
            if submit > now {
                break;
            }
            let Some((spec, runtime)) = self.jobs.job_at(self.next) else {
                break;
            };
            self.results.push(JobResult {
                spec: Arc::clone(&spec),
                runtime,
                start: Time::ZERO,
                finish: Time::ZERO,
                state: FinalState::Completed,
                alloc: Arc::clone(&self.none),
                leaf_switches: 0,
                pending_reason: PendingReason::None,
                preemptions: 0,
                busy: Dur::ZERO,
                lost_cpu_ms: 0,
                cpu_ms: 0,
                resizes: 0,
            });
            self.flags.push(0);
            out.push(spec);
            self.next += 1;
        }
        match self.jobs.failed() {
            Some(e) => Err(MemStoreError::Feed(e)),
            None => Ok(()),
        }
    }
    fn next_arrival(&self) -> Option<Time> {
        self.jobs.submit_at(self.next)
    }
    fn exhausted(&self) -> bool {
        self.next >= self.jobs.len() && !self.jobs.feeding()
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
        let mut ended = false;
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
                ended = true;
            }
        }
        self.holding.remove(&(i as u32));
        if ended {
            self.hand_over(i);
        }
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

    /// An index grown a job at a time finds what one built whole finds, and turns into a map
    /// when the ids stop being compact.
    #[test]
    fn a_grown_index_finds_the_same_jobs() {
        for ids in [
            vec![5u64, 6, 7, 9, 12],
            vec![3, 4, 1_000_000_000, 12, 400_000],
        ] {
            let mut index = JobIndex::Dense {
                min: 0,
                pos: Vec::new(),
            };
            for (i, &id) in ids.iter().enumerate() {
                index.push(JobId(id), i);
            }
            let whole = JobIndex::new(&jobs(&ids));
            assert_eq!(
                matches!(index, JobIndex::Dense { .. }),
                matches!(whole, JobIndex::Dense { .. }),
                "{ids:?}"
            );
            for id in ids.iter().copied().chain([0, 2, 8, 13, u64::MAX]) {
                assert_eq!(index.get(JobId(id)), whole.get(JobId(id)), "{ids:?}: {id}");
            }
        }
    }

    /// A feed of batches, then its end or a failure.
    struct Batches(Vec<Result<JobBatch, String>>);
    impl JobFeed for Batches {
        fn next_jobs(&mut self) -> Result<Option<JobBatch>, String> {
            if self.0.is_empty() {
                return Ok(None);
            }
            self.0.remove(0).map(Some)
        }
    }

    /// A fed store hands over the same arrivals as a whole one, batch boundaries or not, and
    /// reports a feed that stops.
    #[test]
    fn a_fed_table_hands_over_what_a_whole_one_does() {
        let mut w = jobs(&[1, 2, 3, 4, 5]);
        for (k, (s, _)) in w.iter_mut().enumerate() {
            Arc::make_mut(s).submit = Time(10 * (k as i64 / 2));
        }
        let arrivals = |table: &JobTable<'_>| {
            let mut store = MemStore::new(table);
            let mut got = Vec::new();
            for now in [0, 5, 10, 20, 30] {
                let mut out = Vec::new();
                let r = store.take_arrivals(Time(now), &mut out);
                got.push((out.iter().map(|s| s.id.0).collect::<Vec<_>>(), r.is_ok()));
                got.push((
                    store
                        .next_arrival()
                        .map(|t| vec![t.0 as u64])
                        .unwrap_or_default(),
                    store.exhausted(),
                ));
            }
            got
        };
        let want = arrivals(&JobTable::whole(&w));
        assert_eq!(want[0], (vec![1, 2], true));
        for cut in [vec![1, 4], vec![3], vec![5], vec![2, 3, 4]] {
            let mut batches = Vec::new();
            let mut from = 0;
            for c in cut.iter().copied().chain([5]) {
                batches.push(Ok(w[from..c].to_vec()));
                from = c;
            }
            let fed = JobTable::fed(Box::new(Batches(batches)));
            assert_eq!(arrivals(&fed), want, "{cut:?}");
            assert_eq!(fed.truth(JobId(4)).map(|t| t.0.runtime), Some(Dur(1)));
        }
        let fed = JobTable::fed(Box::new(Batches(vec![
            Ok(w[..3].to_vec()),
            Err("stopped".to_string()),
        ])));
        let mut store = MemStore::new(&fed);
        let mut out = Vec::new();
        store.take_arrivals(Time(0), &mut out).unwrap();
        assert!(store.take_arrivals(Time(10), &mut out).is_err());
        assert_eq!(fed.failed().as_deref(), Some("stopped"));
    }

    /// Starts `job` at `at` on one CPU of node 0.
    fn start(store: &mut MemStore<'_>, job: u64, at: i64, waited_for: PendingReason) {
        let start = Command::Start {
            job: JobId(job),
            alloc: Arc::from([Slice::new(0, 1, 0)]),
            leaf_switches: 1,
            waited_for,
            cpus: 1,
            time_limit: None,
        };
        store.record_start(Time(at), &start).unwrap();
    }

    /// Takes blocks of `len` jobs, refusing while `refuse` says so; records the ids of each.
    struct Blocks {
        len: usize,
        refuse: std::rc::Rc<std::cell::Cell<bool>>,
        got: Vec<Vec<u64>>,
    }
    impl FinishedJobs for Blocks {
        fn block_len(&self) -> usize {
            self.len
        }
        fn offer(&mut self, jobs: &[JobResult]) -> bool {
            if self.refuse.get() {
                return false;
            }
            assert!(
                jobs.iter().all(|j| j.finish > Time::ZERO),
                "a block not finished"
            );
            self.got.push(jobs.iter().map(|j| j.spec.id.0).collect());
            true
        }
    }

    /// Blocks are handed over in order once every job in them has ended (a job requeued has
    /// not), one refused is offered again at a later end, and a last shorter block is kept.
    #[test]
    fn finished_blocks_are_handed_over_in_order() {
        let w = jobs(&[1, 2, 3, 4, 5, 6, 7]);
        let table = JobTable::whole(&w);
        let mut blocks = Blocks {
            len: 2,
            refuse: Default::default(),
            got: Vec::new(),
        };
        let start_all = |store: &mut MemStore<'_>| {
            store.take_arrivals(Time::ZERO, &mut Vec::new()).unwrap();
            for job in 1..=7 {
                start(store, job, 1, PendingReason::None);
            }
        };
        let mut store = MemStore::new(&table).with_finished(&mut blocks);
        start_all(&mut store);
        let end = |job, preempted| Completion {
            job: JobId(job),
            at: Time(10 + job as i64),
            state: FinalState::Completed,
            preempted,
        };
        let got = |s: &MemStore<'_>| {
            let h = s.finished.as_ref().unwrap();
            h.done
        };
        // Block [3, 4] ends before [1, 2]: nothing until 1 and 2 have ended.
        store.record_end(&end(3, None)).unwrap();
        store.record_end(&end(4, None)).unwrap();
        store.record_end(&end(1, None)).unwrap();
        store
            .record_end(&end(2, Some(PreemptMode::Requeue)))
            .unwrap();
        assert_eq!(got(&store), 0, "job 2 was requeued, not ended");
        store.record_end(&end(2, None)).unwrap();
        assert_eq!(got(&store), 2);
        store.record_end(&end(5, None)).unwrap();
        store.record_end(&end(7, None)).unwrap();
        store.record_end(&end(6, None)).unwrap();
        assert_eq!(got(&store), 3, "the last block, [7], is shorter: kept");
        drop(store);
        assert_eq!(blocks.got, vec![vec![1, 2], vec![3, 4], vec![5, 6]]);

        // Refused blocks wait for a later end, then go in order.
        let refuse = std::rc::Rc::new(std::cell::Cell::new(true));
        let mut blocks = Blocks {
            len: 2,
            refuse: std::rc::Rc::clone(&refuse),
            got: Vec::new(),
        };
        let mut store = MemStore::new(&table).with_finished(&mut blocks);
        start_all(&mut store);
        for job in 1..=4 {
            store.record_end(&end(job, None)).unwrap();
        }
        assert_eq!(got(&store), 0, "refused");
        refuse.set(false);
        store.record_end(&end(6, None)).unwrap();
        assert_eq!(got(&store), 2, "offered again at the next end");
        store.record_end(&end(5, None)).unwrap();
        assert_eq!(got(&store), 3);
        drop(store);
        assert_eq!(blocks.got, vec![vec![1, 2], vec![3, 4], vec![5, 6]]);
    }

    /// Results only once every job has started and ended.
    #[test]
    fn results_need_every_job_ended() {
        let w = jobs(&[1, 2]);
        let table = JobTable::whole(&w);
        let mut store = MemStore::new(&table);
        store.take_arrivals(Time::ZERO, &mut Vec::new()).unwrap();
        for (job, at) in [(1, 10), (2, 20)] {
            start(&mut store, job, at, PendingReason::Resources);
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
        let mut two = MemStore::new(&table);
        two.take_arrivals(Time::ZERO, &mut Vec::new()).unwrap();
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
