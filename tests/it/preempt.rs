//! Preemption by priority: hand-checked schedules for every mode, and a property test that
//! preempted work is accounted exactly.

use crate::util::{InvariantCheck, prepare, run};
use mini_slurm::ids::JobId;
use mini_slurm::metrics::JobResult;
use mini_slurm::model::{EstimateMode, FinalState};
use mini_slurm::sim::{SimConfig, simulate};
use mini_slurm::trace::csv;
use proptest::prelude::*;
use std::io::Cursor;
use std::path::Path;

fn jobs(rows: &str) -> mini_slurm::trace::SimJobs {
    let text = format!("id,submit,runtime,cpus,priority\n{rows}");
    let w = csv::read(
        Box::new(Cursor::new(text.into_bytes())),
        Path::new("p.csv"),
        false,
    )
    .unwrap();
    prepare(&w, EstimateMode::Requested, Some(4))
}

fn job(r: &[JobResult], id: u64) -> &JobResult {
    r.iter().find(|j| j.spec.id == JobId(id)).unwrap()
}

/// P = 4. A low-priority job L fills the machine from 0 for 100 s; a high-priority job H
/// (10 s) arrives at 10.
const SCENARIO: &str = "1,0,100,4,0\n2,10,10,4,5\n";

#[test]
fn requeue_restarts_from_scratch_and_counts_lost_work() {
    let r = run(&jobs(SCENARIO), "priority[preempt=requeue]").jobs;
    let (l, h) = (job(&r, 1), job(&r, 2));
    assert_eq!(h.start.millis(), 10_000);
    // L was stopped at 10, waited for H, restarted at 20 from scratch.
    assert_eq!((l.start.millis(), l.finish.millis()), (20_000, 120_000));
    assert_eq!((l.preemptions, l.lost_cpu_ms), (1, 40_000));
    assert_eq!(l.busy.millis(), 110_000);
    assert_eq!(l.state, FinalState::Completed);
}

#[test]
fn suspend_keeps_the_remaining_work() {
    let r = run(&jobs(SCENARIO), "priority[preempt=suspend]").jobs;
    let l = job(&r, 1);
    assert_eq!((l.start.millis(), l.finish.millis()), (20_000, 110_000));
    assert_eq!(
        (l.preemptions, l.lost_cpu_ms, l.busy.millis()),
        (1, 0, 100_000)
    );
}

#[test]
fn cancel_ends_the_job_preempted() {
    let r = run(&jobs(SCENARIO), "priority[preempt=cancel]").jobs;
    let (l, h) = (job(&r, 1), job(&r, 2));
    assert_eq!(h.start.millis(), 10_000);
    assert_eq!(
        (l.state, l.finish.millis()),
        (FinalState::Preempted, 10_000)
    );
}

#[test]
fn grace_time_delays_the_stop() {
    let r = run(
        &jobs(SCENARIO),
        "easy[order=priority,preempt=requeue,grace=5]",
    )
    .jobs;
    let (l, h) = (job(&r, 1), job(&r, 2));
    assert_eq!(h.start.millis(), 15_000);
    assert_eq!(
        (l.start.millis(), l.finish.millis(), l.lost_cpu_ms),
        (25_000, 125_000, 60_000)
    );
    // Without preemption H waits for L.
    let r = run(&jobs(SCENARIO), "priority").jobs;
    assert_eq!(job(&r, 2).start.millis(), 100_000);
}

#[test]
fn equal_priority_does_not_preempt() {
    let r = run(
        &jobs("1,0,100,4,5\n2,10,10,4,5\n"),
        "priority[preempt=requeue]",
    )
    .jobs;
    assert_eq!(job(&r, 2).start.millis(), 100_000);
    assert_eq!(job(&r, 1).preemptions, 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Suspend keeps the remaining work (all segments add up to the run time); requeue restarts
    /// from zero (the last segment is the whole run time) and counts the CPU-seconds lost.
    #[test]
    fn preempted_work_is_accounted_exactly(
        rows in proptest::collection::vec((0i64..30, 1i64..60, 1u32..=4, 0i64..4), 1..25),
        mode in prop_oneof![Just("requeue"), Just("suspend"), Just("cancel")],
        grace in 0i64..5,
        policy in prop_oneof![Just("priority"), Just("easy[order=priority")],
    ) {
        let mut text = String::new();
        let mut t = 0;
        for (i, (gap, run, cpus, prio)) in rows.iter().enumerate() {
            t += gap;
            text.push_str(&format!("{},{t},{run},{cpus},{prio}\n", i + 1));
        }
        let jobs = jobs(&text);
        let spec = if policy.contains('[') {
            format!("{policy},preempt={mode},grace={grace}]")
        } else {
            format!("{policy}[preempt={mode},grace={grace}]")
        };
        let (p, s) = mini_slurm::policy::build(&spec).unwrap();
        let name = s.canonical();
        let r = simulate(&jobs, SimConfig::new(p, &name), &mut InvariantCheck).unwrap();
        prop_assert_eq!(r.jobs.len(), jobs.jobs.len());
        for j in &r.jobs {
            let run = j.runtime.millis();
            let procs = i64::from(j.spec.cpus);
            prop_assert!(j.start >= j.spec.submit);
            match (mode, j.state) {
                (_, FinalState::Completed) if mode == "suspend" => {
                    prop_assert_eq!(j.busy.millis(), run, "job {}: segments add up", j.spec.id);
                    prop_assert_eq!(j.lost_cpu_ms, 0);
                }
                (_, FinalState::Completed) => {
                    prop_assert_eq!(j.execution().millis(), run, "job {}: the last run is whole", j.spec.id);
                    prop_assert_eq!(j.lost_cpu_ms, (j.busy.millis() - run) * procs);
                }
                ("cancel", FinalState::Preempted) => {
                    prop_assert!(j.busy.millis() <= run);
                    prop_assert_eq!(j.preemptions, 1);
                }
                (m, st) => prop_assert!(false, "mode {m}: unexpected final state {st}"),
            }
        }
    }
}

#[test]
fn preemption_needs_priority_order() {
    let e = mini_slurm::policy::build("easy[order=multifactor,preempt=requeue]")
        .err()
        .unwrap();
    assert_eq!(
        e.to_string(),
        "policy easy: parameter 'preempt': needs order=priority (or preempt_by=qos)"
    );
    assert!(mini_slurm::policy::build("multifactor[preempt=requeue]").is_err());
}

/// `preempt_by=qos`: a `high` QOS job preempts a `scavenger` one even though the scavenger job
/// has the larger `priority` field, and under a non-priority order; without QOS levels (no
/// accounts file) every QOS ranks 0 and nothing is preempted.
#[test]
fn higher_qos_preempts_lower_qos() {
    let text = "id,submit,runtime,cpus,priority,qos\n1,0,100,4,9,scavenger\n2,10,10,4,0,high\n";
    let mut w = csv::read(
        Box::new(Cursor::new(text.as_bytes().to_vec())),
        Path::new("q.csv"),
        false,
    )
    .unwrap();
    let assoc = mini_slurm::config::accounts::parse(
        "qos high priority=100\nqos scavenger priority=0\n",
        Path::new("accounts"),
        &mut w.names,
    )
    .unwrap();
    let jobs = prepare(&w, EstimateMode::Requested, Some(4));
    let spec = "easy[order=multifactor,age=0,fairshare=0,qos=1000,preempt=requeue,preempt_by=qos]";
    let sim = |assoc| {
        let (p, _) = mini_slurm::policy::build(spec).unwrap();
        let cfg = SimConfig {
            assoc,
            ..SimConfig::new(p, spec)
        };
        simulate(&jobs, cfg, &mut InvariantCheck).unwrap().jobs
    };
    let r = sim(Some(assoc));
    let (l, h) = (job(&r, 1), job(&r, 2));
    assert_eq!(h.start.millis(), 10_000);
    assert_eq!((l.start.millis(), l.finish.millis()), (20_000, 120_000));
    assert_eq!((l.preemptions, l.lost_cpu_ms), (1, 40_000));
    let r = sim(None);
    assert_eq!(job(&r, 2).start.millis(), 100_000);
    assert_eq!(job(&r, 1).preemptions, 0);
    // By priority, over a non-priority order, preemption is refused at build time.
    let e = mini_slurm::policy::build("easy[order=multifactor,preempt=requeue]")
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .contains("needs order=priority (or preempt_by=qos)"),
        "{e}"
    );
    assert!(mini_slurm::policy::build("priority[preempt=cancel,preempt_by=size]").is_err());
}
