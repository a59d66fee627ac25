//! What the daemon shows of its engine without ever lending it out: after every step the loop
//! publishes an immutable [`Snapshot`] (the queue, the running jobs, free resources, the
//! policy's plan and counters) behind an `Arc`, and readers — the plan writer below, the HTTP
//! server (`live::http`) — take the latest one when they like. Publishing costs the loop one
//! copy of its queue's pointers and a mutex held for a pointer swap; no reader can hold the
//! engine or delay a pass.
//!
//! Expected starts come from the policy's plan (`Engine::plan`, asked for with
//! `set_want_plan(true)`): `conservative` and `slurm` plan every waiting job, `easy` only the
//! queue head (EASY keeps one reservation), the others none ([`PlanScope`]). A reservation after the end of
//! a job without a time limit (whose estimate is unbounded) is no time at all: it is dropped,
//! and that job's start shows as unknown. The plan writer thread stores the plan in the
//! database (`expected_start_ms`) for `queue --start` and `show`, which run in other
//! processes: only the rows that changed, in one transaction, and only the latest plan when
//! several passes came in between, so the loop never waits on it.

use super::sqlite_store::UNLIMITED;
use super::store::Db;
use crate::driver::Observer;
use crate::engine::{Command, Engine};
use crate::ids::JobId;
use crate::model::{Avail, Cluster};
use crate::sched::{PendingJob, RunningJob};
use crate::time::Time;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Whose expected start a policy's plan gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanScope {
    /// Every waiting job it could place (`conservative`; `slurm`: those its last backfill
    /// cycle tested).
    Every,
    /// The queue head only (`easy`: one reservation).
    Head,
    /// Nobody (`fcfs`, `priority`, `multifactor`: no reservations).
    None,
}

impl PlanScope {
    /// The scope of a policy, by the name its spec starts with.
    pub fn of_policy(spec: &str) -> PlanScope {
        let name = spec.split('[').next().unwrap_or(spec).trim();
        match name {
            "conservative" | "slurm" => PlanScope::Every,
            "easy" => PlanScope::Head,
            _ => PlanScope::None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            PlanScope::Every => "every",
            PlanScope::Head => "head",
            PlanScope::None => "none",
        }
    }
    pub fn from_name(s: &str) -> Option<PlanScope> {
        [PlanScope::Every, PlanScope::Head, PlanScope::None]
            .into_iter()
            .find(|p| p.name() == s)
    }
    /// In words, for users: why a pending job may show no expected start.
    pub fn describe(self) -> &'static str {
        match self {
            PlanScope::Every => "the policy plans every waiting job",
            PlanScope::Head => "the policy (EASY) plans only the job at the head of the queue",
            PlanScope::None => "the policy makes no plan: expected starts are unknown",
        }
    }
}

/// Upper bounds (seconds) of the pass-duration histogram's buckets; the last bucket is +Inf.
pub const PASS_BUCKETS_S: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Counters since the daemon started.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters {
    /// Decision rounds (engine steps).
    pub passes: u64,
    pub started: u64,
    /// Jobs started while a job ahead of them in queue order kept waiting (backfilled, or
    /// ahead by priority: the definition of the simulator's reports).
    pub backfilled: u64,
    /// The last, longest and summed duration of a decision round (the engine's pass and the
    /// commands it issued applied: runners started, starts recorded), microseconds.
    pub pass_last_us: u64,
    pub pass_max_us: u64,
    pub pass_total_us: u64,
    /// Rounds per bucket of [`PASS_BUCKETS_S`] (not cumulative), then over the last bound.
    pub pass_buckets: [u64; PASS_BUCKETS_S.len() + 1],
}

impl Counters {
    fn record_pass(&mut self, d: Duration) {
        let us = d.as_micros().min(u128::from(u64::MAX)) as u64;
        self.passes += 1;
        self.pass_last_us = us;
        self.pass_max_us = self.pass_max_us.max(us);
        self.pass_total_us = self.pass_total_us.saturating_add(us);
        let s = d.as_secs_f64();
        let i = PASS_BUCKETS_S
            .iter()
            .position(|&b| s <= b)
            .unwrap_or(PASS_BUCKETS_S.len());
        self.pass_buckets[i] += 1;
    }
}

/// The engine as it stood after one step.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// The step's time (wall-clock epoch ms); `Time::ZERO` before the first step.
    pub at: Time,
    /// Jobs the engine holds waiting, in queue order (not those the store holds back).
    pub pending: Vec<PendingJob>,
    pub running: Vec<RunningJob>,
    /// Free resources per node.
    pub avail: Vec<Avail>,
    /// Expected starts of the last pass, by job id (times after an unbounded estimate left
    /// out).
    pub plan: Vec<(JobId, Time)>,
    pub counters: Counters,
}

/// One node's resources: what it has and what running jobs hold, as [CPUs, memory (MB),
/// GPUs], and how many jobs run on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeUse {
    pub name: String,
    pub total: [u64; 3],
    pub alloc: [u64; 3],
    pub jobs: usize,
}

impl Snapshot {
    /// A job's expected start, if the plan gives one.
    pub fn expected_start(&self, job: JobId) -> Option<Time> {
        self.plan.iter().find(|p| p.0 == job).map(|p| p.1)
    }

    /// Each node of `cluster` as this snapshot has it (all free before the first step).
    pub fn node_use(&self, cluster: &Cluster) -> Vec<NodeUse> {
        cluster
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let total = [u64::from(n.cpus), n.mem_mb, u64::from(n.gpus)];
                let free = self
                    .avail
                    .get(i)
                    .map_or(total, |a| [u64::from(a.cpus), a.mem_mb, u64::from(a.gpus)]);
                NodeUse {
                    name: n.name.clone(),
                    total,
                    alloc: [0, 1, 2].map(|k| total[k].saturating_sub(free[k])),
                    jobs: self
                        .running
                        .iter()
                        .filter(|r| r.alloc.iter().any(|s| s.node as usize == i))
                        .count(),
                }
            })
            .collect()
    }
}

/// What never changes while the daemon runs.
#[derive(Clone, Debug)]
pub struct Static {
    pub cluster: Cluster,
    /// The policy's canonical spec.
    pub policy: String,
    pub scope: PlanScope,
    /// GPU names (nvidia-smi indices) of the node's GPUs.
    pub gpus: Vec<String>,
}

struct Shared {
    latest: Mutex<(u64, Arc<Snapshot>)>,
    changed: Condvar,
    fixed: Static,
}

/// The published snapshots: cheap to clone and to share between threads.
#[derive(Clone)]
pub struct Published(Arc<Shared>);

impl Published {
    pub fn new(fixed: Static) -> Published {
        Published(Arc::new(Shared {
            latest: Mutex::new((0, Arc::new(Snapshot::default()))),
            changed: Condvar::new(),
            fixed,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, (u64, Arc<Snapshot>)> {
        // A panic while holding the lock cannot leave the pair half-written: keep going.
        self.0.latest.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The latest snapshot.
    pub fn latest(&self) -> Arc<Snapshot> {
        Arc::clone(&self.lock().1)
    }

    pub fn fixed(&self) -> &Static {
        &self.0.fixed
    }

    fn publish(&self, s: Arc<Snapshot>) {
        let mut g = self.lock();
        g.0 += 1;
        g.1 = s;
        drop(g);
        self.0.changed.notify_all();
    }

    /// Wakes the threads waiting in [`Published::wait_newer`] (to see a stop flag).
    pub fn nudge(&self) {
        self.0.changed.notify_all();
    }

    /// The latest snapshot and its generation, once newer than generation `seen` or after
    /// `timeout`, whichever comes first.
    pub fn wait_newer(&self, seen: u64, timeout: Duration) -> (u64, Arc<Snapshot>) {
        let g = self.lock();
        let (g, _) = self
            .0
            .changed
            .wait_timeout_while(g, timeout, |g| g.0 <= seen)
            .unwrap_or_else(|e| e.into_inner());
        (g.0, Arc::clone(&g.1))
    }
}

/// The daemon's observer: times each decision round, counts starts and backfills, and
/// publishes a snapshot after every step.
pub struct Publisher {
    out: Published,
    counters: Counters,
    prev: Arc<Snapshot>,
    step_began: Option<Instant>,
}

impl Publisher {
    pub fn new(out: Published) -> Publisher {
        Publisher {
            prev: out.latest(),
            out,
            counters: Counters::default(),
            step_began: None,
        }
    }

    /// Of the jobs started in this step, those a job ahead of them in queue order still waits
    /// behind. The state before the step is the last snapshot (nothing changes in between);
    /// jobs that arrived in this step joined the queue behind all of it, in id order (the
    /// store hands them over by id).
    fn backfilled(&self, engine: &Engine, commands: &[Command]) -> u64 {
        let after = engine.pending();
        let Some(first_waiting) = after.first().map(|p| p.seq) else {
            return 0;
        };
        let last_before = self.prev.pending.last().map(|p| p.seq);
        let behind = |job: JobId| match self.prev.pending.iter().find(|p| p.spec.id == job) {
            Some(p) => first_waiting < p.seq,
            None => after
                .iter()
                .any(|p| last_before.is_some_and(|l| p.seq <= l) || p.spec.id < job),
        };
        commands
            .iter()
            .filter(|c| matches!(c, Command::Start { job, .. } if behind(*job)))
            .count() as u64
    }
}

impl Observer for Publisher {
    fn before_step(&mut self, _now: Time) {
        self.step_began = Some(Instant::now());
    }

    fn after_step(&mut self, now: Time, engine: &Engine, commands: &[Command]) {
        if let Some(t) = self.step_began.take() {
            self.counters.record_pass(t.elapsed());
        }
        let starts = commands
            .iter()
            .filter(|c| matches!(c, Command::Start { .. }))
            .count() as u64;
        self.counters.started += starts;
        if starts > 0 {
            self.counters.backfilled += self.backfilled(engine, commands);
        }
        let unbounded = Time(UNLIMITED.0);
        let snap = Arc::new(Snapshot {
            at: now,
            pending: engine.pending().to_vec(),
            running: engine.running().to_vec(),
            avail: engine.avail().to_vec(),
            plan: engine
                .plan()
                .iter()
                .filter(|p| p.1 < unbounded)
                .copied()
                .collect(),
            counters: self.counters.clone(),
        });
        self.prev = Arc::clone(&snap);
        self.out.publish(snap);
    }
}

/// How often the plan writer looks again when nothing new was published (retries a write the
/// database refused, sees the stop flag).
const WRITER_TICK: Duration = Duration::from_millis(500);

/// Stores the published plans as expected starts until `stop` is set, then clears them (the
/// plan dies with the daemon). Runs on a thread of its own with its own connection.
pub fn write_plans(mut db: Db, published: Published, stop: Arc<AtomicBool>) {
    let mut written: BTreeMap<i64, i64> = BTreeMap::new();
    let mut seen = 0;
    let mut warned = false;
    while !stop.load(Ordering::SeqCst) {
        let (generation, snap) = published.wait_newer(seen, WRITER_TICK);
        seen = generation;
        let want: BTreeMap<i64, i64> = snap
            .plan
            .iter()
            .map(|&(job, at)| (job.0 as i64, at.0))
            .collect();
        let changes = plan_changes(&written, &want);
        if changes.is_empty() {
            continue;
        }
        match db.record_expected_starts(&changes) {
            Ok(()) => {
                written = want;
                warned = false;
            }
            Err(e) if !warned => {
                eprintln!("mini-slurm: recording expected starts: {e} (retrying)");
                warned = true;
            }
            Err(_) => {}
        }
    }
    let _ = db.clear_expected_starts();
}

/// The writes that take the stored plan from `old` to `new`: new or moved starts, and cleared
/// ones (jobs that left the plan), by job id.
pub fn plan_changes(old: &BTreeMap<i64, i64>, new: &BTreeMap<i64, i64>) -> Vec<(i64, Option<i64>)> {
    let mut out: Vec<(i64, Option<i64>)> = new
        .iter()
        .filter(|(id, at)| old.get(id) != Some(at))
        .map(|(&id, &at)| (id, Some(at)))
        .collect();
    out.extend(
        old.keys()
            .filter(|id| !new.contains_key(id))
            .map(|&id| (id, None)),
    );
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Event;
    use crate::model::JobSpec;
    use crate::sched::placement::BestFit;
    use crate::time::Dur;

    #[test]
    fn only_changed_rows_are_written() {
        let m = |v: &[(i64, i64)]| v.iter().copied().collect::<BTreeMap<_, _>>();
        let old = m(&[(1, 10), (2, 20), (3, 30)]);
        let new = m(&[(2, 20), (3, 35), (4, 40)]);
        assert_eq!(
            plan_changes(&old, &new),
            [(1, None), (3, Some(35)), (4, Some(40))]
        );
        assert!(plan_changes(&new, &new).is_empty());
    }

    /// Two 1-CPU jobs of 100 ms run on 2 CPUs; three more wait. What each registered policy
    /// plans matches the scope the daemon reports for it.
    #[test]
    fn plan_scopes_match_what_policies_plan() {
        for info in crate::policy::REGISTRY {
            let (policy, spec) = crate::policy::build(info.name).unwrap();
            let cluster = Cluster::uniform(1, 2, 0, 0).unwrap();
            let mut e = Engine::new(cluster, Box::new(BestFit), policy, &spec.canonical());
            e.set_want_plan(true);
            let events = (1..=5)
                .map(|i| Event::Submitted(JobSpec::new(JobId(i), Time::ZERO, 1, Dur(100)).into()));
            let mut out = Vec::new();
            e.step(Time::ZERO, events, &mut out).unwrap();
            let planned: Vec<(u64, i64)> = e.plan().iter().map(|p| (p.0.0, p.1.0)).collect();
            let expected: &[(u64, i64)] = match PlanScope::of_policy(&spec.canonical()) {
                // Slurm plans whole nodes from limits rounded up to whole minutes.
                PlanScope::Every if info.name == "slurm" => {
                    &[(3, 60_000), (4, 120_000), (5, 180_000)]
                }
                PlanScope::Every => &[(3, 100), (4, 100), (5, 200)],
                PlanScope::Head => &[(3, 100)],
                PlanScope::None => &[],
            };
            assert_eq!(planned, expected, "policy {}", info.name);
        }
    }

    /// 4 CPUs under EASY: a 3-CPU job runs; a 2-CPU job blocks; a short 1-CPU job behind it
    /// starts (backfilled). Jobs arriving together start in order: not backfilled.
    #[test]
    fn backfilled_starts_are_counted() {
        let (policy, spec) = crate::policy::build("easy").unwrap();
        let cluster = Cluster::uniform(1, 4, 0, 0).unwrap();
        let mut e = Engine::new(cluster, Box::new(BestFit), policy, &spec.canonical());
        let published = Published::new(Static {
            cluster: e.cluster().clone(),
            policy: spec.canonical(),
            scope: PlanScope::Head,
            gpus: Vec::new(),
        });
        let mut p = Publisher::new(published.clone());
        let job = |id, cpus, est| {
            Event::Submitted(JobSpec::new(JobId(id), Time::ZERO, cpus, Dur(est)).into())
        };
        let mut step = |at: i64, events: Vec<Event>| {
            let mut out = Vec::new();
            p.before_step(Time(at));
            e.step(Time(at), events, &mut out).unwrap();
            p.after_step(Time(at), &e, &out);
            published.latest().counters.clone()
        };
        let c = step(0, vec![job(1, 1, 100), job(2, 1, 100)]);
        assert_eq!(
            (c.started, c.backfilled),
            (2, 0),
            "arrived together, started in order"
        );
        let c = step(1, vec![job(3, 1, 100), job(4, 3, 100), job(5, 1, 10)]);
        assert_eq!(
            (c.started, c.backfilled),
            (4, 1),
            "job 5 starts behind the blocked job 4"
        );
        assert_eq!(published.latest().plan, [(JobId(4), Time(100))]);
        assert_eq!(c.passes, 2);
    }

    #[test]
    fn pass_durations_fill_their_buckets() {
        let mut c = Counters::default();
        c.record_pass(Duration::from_micros(50));
        c.record_pass(Duration::from_millis(3));
        c.record_pass(Duration::from_secs(9));
        assert_eq!(
            (c.passes, c.pass_last_us, c.pass_max_us),
            (3, 9_000_000, 9_000_000)
        );
        assert_eq!(c.pass_buckets[0], 1);
        assert_eq!(c.pass_buckets[5], 1, "3 ms ≤ 5 ms");
        assert_eq!(c.pass_buckets[PASS_BUCKETS_S.len()], 1, "over 5 s: +Inf");
    }
}
