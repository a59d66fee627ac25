//! The discrete-event simulator: a virtual clock, a simulated executor that knows each job's
//! true run time, and an in-memory store fed by a trace — plugged into the shared driver loop.
//!
//! [`simulate`] runs one policy over prepared jobs. Above it, as library calls with no
//! command-line types: [`setup`] (a plain [`Setup`], read and checked once into a [`Prepared`]
//! workload that runs under any policy), [`options`] (the workload options as flags, for the
//! command line and experiment files), [`output`] (a run's `jobs.csv` and `summary.json`,
//! written atomically), [`compare`] (several policies in parallel threads, and their report)
//! and [`experiment`] (an experiment file's grid of runs, its `results.csv` and report).

pub mod compare;
mod error;
pub mod executor;
pub mod experiment;
pub mod options;
pub mod output;
pub mod parallel;
pub mod setup;
pub mod store;
pub mod stream;

pub use error::SimError;
pub use executor::{SimExecError, SimExecutor, stretch};
pub use experiment::{Experiment, ExperimentError};
pub use setup::{Notice, Prepared, Run, Setup};
pub use store::{FinishedJobs, JobFeed, JobIndex, JobTable, MemStore, MemStoreError};

use crate::driver::{self, Clock, DriverError, Observer};
use crate::engine::Engine;
use crate::ids::JobId;
use crate::metrics::{ElasticWork, SimResult};
use crate::sched::Policy;
use crate::sched::limits::Limits;
use crate::sched::placement::Placement;
use crate::time::Time;
use crate::trace::SimJobs;

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

/// How to run a simulation.
pub struct SimConfig<'a> {
    pub policy: Box<dyn Policy>,
    /// The canonical spec string, for messages.
    pub policy_name: &'a str,
    pub placement: Box<dyn Placement>,
    /// Run-time penalty per additional leaf switch spanned, in thousandths (0: none).
    pub span_penalty_permille: u32,
    /// Per-user and per-account limits (quotas).
    pub limits: Limits,
    /// The fair-share association tree (accounts file), if any.
    pub assoc: Option<crate::model::AssocConfig>,
}

impl<'a> SimConfig<'a> {
    /// A policy with best-fit placement and no topology penalty.
    pub fn new(policy: Box<dyn Policy>, policy_name: &'a str) -> SimConfig<'a> {
        SimConfig {
            policy,
            policy_name,
            placement: Box::new(crate::sched::placement::BestFit),
            span_penalty_permille: 0,
            limits: Limits::default(),
            assoc: None,
        }
    }
}

/// Simulates `jobs` under `cfg`. `observer` sees the engine after every step.
pub fn simulate(
    jobs: &SimJobs,
    cfg: SimConfig<'_>,
    observer: &mut dyn Observer,
) -> Result<SimResult, DriverError> {
    simulate_table(&jobs.cluster, &JobTable::whole(&jobs.jobs), cfg, observer)
}

/// Simulates the jobs of `table` on `cluster` under `cfg`. `observer` sees the engine after
/// every step.
pub fn simulate_table(
    cluster: &crate::model::Cluster,
    table: &JobTable<'_>,
    cfg: SimConfig<'_>,
    observer: &mut dyn Observer,
) -> Result<SimResult, DriverError> {
    simulate_table_with(cluster, table, cfg, observer, None)
}

/// [`simulate_table`], handing `finished` the records of finished jobs, a block at a time in
/// queue order, while the simulation runs ([`MemStore::with_finished`]).
pub fn simulate_table_with(
    cluster: &crate::model::Cluster,
    table: &JobTable<'_>,
    cfg: SimConfig<'_>,
    observer: &mut dyn Observer,
    finished: Option<&mut dyn FinishedJobs>,
) -> Result<SimResult, DriverError> {
    let policy_name = cfg.policy_name;
    let start = table.first_submit().unwrap_or(Time::ZERO);
    let mut engine = Engine::new(cluster.clone(), cfg.placement, cfg.policy, policy_name);
    engine.set_limits(cfg.limits);
    if let Some(a) = cfg.assoc {
        engine.set_associations(a);
    }
    let mut clock = VirtualClock::starting_at(start);
    let mut exec = SimExecutor::new(table, cfg.span_penalty_permille);
    let mut store = MemStore::new(table);
    if let Some(f) = finished {
        store = store.with_finished(f);
    }
    driver::run(&mut engine, &mut clock, &mut exec, &mut store, observer)?;
    if let Some(e) = table.failed() {
        return Err(DriverError::Store(Box::new(MemStoreError::Feed(e))));
    }
    // The driver only returns Ok once every job has ended.
    let Some(mut out) = store.into_results() else {
        return Err(DriverError::Stalled {
            now: clock.now(),
            pending: engine.pending().len(),
            policy: policy_name.to_string(),
        });
    };
    // Ids are unique (traces refuse duplicates): no need for a stable sort.
    out.sort_unstable_by_key(|j| j.spec.id);
    let mut elastic_work: Vec<(JobId, ElasticWork)> =
        exec.elastic_work().iter().map(|(j, w)| (*j, *w)).collect();
    elastic_work.sort_unstable_by_key(|w| w.0);
    Ok(SimResult {
        procs: cluster.total_cpus(),
        jobs: out,
        passes: engine.passes(),
        elastic_work,
    })
}
