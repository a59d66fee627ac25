//! Shared helpers.

use mini_slurm::driver::Observer;
use mini_slurm::engine::{Command, Engine};
use mini_slurm::ids::JobId;
use mini_slurm::metrics::SimResult;
use mini_slurm::model::Cluster;
use mini_slurm::model::EstimateMode;
use mini_slurm::policy;
use mini_slurm::sched::placement::BestFit;
use mini_slurm::sim::{SimConfig, simulate};
use mini_slurm::time::{Dur, Time};
use mini_slurm::trace::{PrepareOptions, SimJobs, TraceJob, Workload, swf};
use std::io::Cursor;
use std::path::Path;

pub fn read_swf(text: &str) -> Workload {
    swf::read(
        Box::new(Cursor::new(text.as_bytes().to_vec())),
        Path::new("test.swf"),
        false,
    )
    .expect("test trace parses")
}

/// The trace's jobs on one node of P processors (P from `procs`, else the trace's header).
pub fn prepare(w: &Workload, estimate: EstimateMode, procs: Option<u32>) -> SimJobs {
    let p = w.machine_procs(procs).expect("machine size");
    let cluster = Cluster::uniform(1, p, 0, 0).expect("cluster");
    w.prepare(
        &cluster,
        &BestFit,
        &PrepareOptions {
            estimate,
            kill_at_limit: false,
            switches: None,
            speedup: Default::default(),
        },
    )
}

/// Checks the engine's invariants after every step.
pub struct InvariantCheck;
impl Observer for InvariantCheck {
    fn after_step(&mut self, _now: Time, engine: &Engine, _c: &[Command]) {
        engine.check_invariants().expect("engine invariants hold");
    }
}

pub fn run(jobs: &SimJobs, spec: &str) -> SimResult {
    let (p, s) = policy::build(spec).expect("policy builds");
    let name = s.canonical();
    simulate(jobs, SimConfig::new(p, &name), &mut InvariantCheck).expect("simulation runs")
}

/// (job id, start second) for every job.
pub fn starts(r: &SimResult) -> Vec<(u64, i64)> {
    r.jobs
        .iter()
        .map(|j| (j.spec.id.0, j.start.millis() / 1000))
        .collect()
}

/// One SWF line: id, submit, run, procs, requested time.
pub fn swf_line(id: u64, submit: i64, run: i64, procs: i64, req: i64) -> String {
    format!("{id} {submit} -1 {run} {procs} -1 -1 {procs} {req} -1 1 1 1 -1 -1 -1 -1 -1\n")
}

/// A trace job with the fields the property tests vary (times in seconds; `req` ≤ 0: no
/// requested time); users 1–3 and groups 4–5 in turn, priority (i × 7) mod 3.
pub fn trace_job(i: usize, submit: i64, run: i64, procs: i64, req: i64) -> TraceJob {
    TraceJob {
        id: JobId(i as u64 + 1),
        submit: Time::from_secs(submit),
        runtime: Dur::from_secs(run),
        procs,
        requested: Some(Dur::from_secs(req)).filter(|d| d.0 > 0),
        priority: (i as i64 * 7) % 3,
        user: mini_slurm::ids::Sym(1 + (i as u32 % 3)),
        group: mini_slurm::ids::Sym(4 + (i as u32 % 2)),
        queue: Default::default(),
        partition: Default::default(),
        nodes: None,
        mem_mb: None,
        gpus: 0,
        qos: Default::default(),
        nice: 0,
        elastic: None,
        speedup: None,
        line: i as u64 + 1,
    }
}

/// Held by the CPU-heavy tests and by the one test that compares wall-clock times: on a 2-core
/// machine the timing test must not share the CPUs with property tests and big simulations.
pub fn heavy() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
