//! The `slurm` policy in simulation, case by case: when its schedulers run (cycles), the
//! behaviours that set it apart from EASY (plans for every waiting job, whole-node plans,
//! minute limits), its parameters (`default_queue_depth`, `bf_max_job_test`, `bf_window`,
//! `def_mem_per_cpu`), `--cluster slurm.conf` setting them, the cycle-skipping shortcut
//! against computing every cycle, and the policy as the live daemon's default.

use mini_slurm::sim::{Prepared, Setup};
use proptest::prelude::*;
use std::path::Path;

/// Prepares `csv` (a mini-slurm CSV trace) on the machine `machine` sets up.
fn prepare(dir: &Path, csv: &str, machine: impl FnOnce(&mut Setup)) -> Prepared {
    let trace = dir.join("t.csv");
    std::fs::write(&trace, csv).unwrap();
    let mut setup = Setup::new(&trace);
    machine(&mut setup);
    setup.prepare(&mut |_| {}).unwrap()
}

/// Start of every job, in seconds (ids 1..), under `spec`.
fn starts_of(p: &Prepared, spec: &str) -> Vec<f64> {
    let run = p.run(spec).unwrap();
    let mut v: Vec<(u64, f64)> = run
        .result
        .jobs
        .iter()
        .map(|j| (j.spec.id.0, j.start.as_secs_f64()))
        .collect();
    v.sort_by_key(|x| x.0);
    v.into_iter().map(|x| x.1).collect()
}

fn on_procs(n: u32) -> impl FnOnce(&mut Setup) {
    move |s| s.machine.procs = Some(n)
}

const HEAD: &str = "id,submit,runtime,cpus,walltime,user\n";

#[test]
fn the_main_scheduler_runs_at_whole_seconds_after_batch_sched_delay() {
    let dir = tempfile::tempdir().unwrap();
    let csv = format!(
        "{HEAD}1,10,20,4,60,u\n2,11,5,1,60,u\n3,11.5,5,1,60,u\n4,12,5,4,60,u\n5,40.25,5,1,60,u\n"
    );
    let p = prepare(dir.path(), &csv, on_procs(4));
    // 1 at once (no earlier run); 2 and 3 when 1 ends (the last run, at 13, was long before);
    // 4 when they end; 5 at the first whole second after its submission.
    let s = starts_of(&p, "slurm");
    assert_eq!(&s[..1], [10.0]);
    assert_eq!(s[3], 35.0, "{s:?}");
    assert_eq!(
        s[4], 41.0,
        "at the next whole second, not when 4 ended: {s:?}"
    );
    assert_eq!(&s[1..3], [30.0, 30.0], "{s:?}");
}

#[test]
fn after_an_end_the_main_scheduler_also_waits_for_batch_sched_delay() {
    // Measured on Slurm 22.05.8 (docs/slurm-fidelity.md): 1 ends one second after the run
    // that started it, and 2 starts when batch_sched_delay (3 s) has passed since that run.
    let dir = tempfile::tempdir().unwrap();
    let csv = format!("{HEAD}1,0,1,4,60,u\n2,0,1,4,60,u\n");
    let p = prepare(dir.path(), &csv, on_procs(4));
    assert_eq!(starts_of(&p, "slurm"), [0.0, 3.0]);
    assert_eq!(starts_of(&p, "slurm[batch_sched_delay=0]"), [0.0, 1.0]);
    let csv = format!("{HEAD}1,0,1.5,4,60,u\n2,0,1,4,60,u\n");
    let p = prepare(dir.path(), &csv, on_procs(4));
    assert_eq!(starts_of(&p, "slurm[batch_sched_delay=0]"), [0.0, 2.0]);
}

#[test]
fn a_submission_waits_batch_sched_delay_after_the_last_run() {
    let dir = tempfile::tempdir().unwrap();
    let csv = format!("{HEAD}1,10,100,1,600,u\n2,11,100,1,600,u\n3,11.5,100,1,600,u\n");
    let p = prepare(dir.path(), &csv, on_procs(8));
    assert_eq!(starts_of(&p, "slurm[bf_interval=-1]"), [10.0, 13.0, 13.0]);
    assert_eq!(
        starts_of(&p, "slurm[bf_interval=-1,batch_sched_delay=0]"),
        [10.0, 11.0, 12.0]
    );
}

#[test]
fn backfill_runs_every_bf_interval_and_only_then_starts_a_job_behind_a_blocked_one() {
    let dir = tempfile::tempdir().unwrap();
    // 1 holds 3 CPUs for 100 s with a 5-minute limit; 2 (4 CPUs) is blocked; 3 (1 CPU, 1
    // minute) ends before 2's plan at 1's limit: backfill starts it at its first cycle.
    let csv = format!("{HEAD}1,0,100,3,300,u\n2,1,10,4,60,u\n3,2,10,1,60,u\n");
    let p = prepare(dir.path(), &csv, on_procs(4));
    assert_eq!(starts_of(&p, "slurm"), [0.0, 100.0, 30.0]);
    assert_eq!(starts_of(&p, "slurm[bf_interval=5]"), [0.0, 100.0, 5.0]);
    // Cycles at whole seconds plus bf_phase.
    assert_eq!(
        starts_of(&p, "slurm[bf_interval=5,bf_phase=250]"),
        [0.0, 100.0, 5.25]
    );
    assert_eq!(starts_of(&p, "easy"), [0.0, 100.0, 2.0]);
    // Without backfill it waits for the head.
    assert_eq!(starts_of(&p, "slurm[bf_interval=-1]"), [0.0, 100.0, 110.0]);
}

#[test]
fn every_waiting_job_is_planned_so_a_later_wide_job_holds_back_a_long_narrow_one() {
    let dir = tempfile::tempdir().unwrap();
    // Running: 1 (2 CPUs, 2-minute limit), 2 (1 CPU, 10-minute limit). 3 (4 CPUs) is planned
    // at 2's limit; 4 (3 CPUs) at 1's limit, before 3's plan. 5 (1 CPU, 5 minutes) would end
    // before 3's plan — EASY starts it — but it reaches 4's plan: Slurm holds it.
    let csv =
        format!("{HEAD}1,0,6,2,120,u\n2,0,12,1,600,u\n3,1,3,4,60,u\n4,1,3,3,60,u\n5,1,3,1,300,u\n");
    let p = prepare(dir.path(), &csv, on_procs(4));
    let slurm = starts_of(&p, "slurm[bf_interval=1,batch_sched_delay=0]");
    let easy = starts_of(&p, "easy");
    assert!(slurm[4] > slurm[3], "5 waits for 4: {slurm:?}");
    assert!(easy[4] < easy[3], "EASY backfills 5: {easy:?}");
}

#[test]
fn a_plan_holds_whole_nodes_but_only_its_own() {
    let dir = tempfile::tempdir().unwrap();
    // Two nodes of 4. 1 (3 CPUs, 10 min) and 2 (3 CPUs, 2 min) leave one CPU on each. 3
    // (4 CPUs) is planned on the whole node of 2. 4 (1 CPU, 5 min) starts on the other node;
    // 5 (1 CPU, 5 min) finds a free CPU only on the planned node, and waits for 4 to end.
    let csv = format!(
        "{HEAD}1,0,200,3,600,u\n2,0,100,3,120,u\n3,1,10,4,60,u\n4,2,50,1,300,u\n5,2,50,1,300,u\n"
    );
    let p = prepare(dir.path(), &csv, |s| {
        s.machine.nodes = Some(2);
        s.machine.cpus_per_node = Some(4);
    });
    let s = starts_of(&p, "slurm[bf_interval=1,batch_sched_delay=0]");
    assert_eq!([s[3], s[4]], [2.0, 52.0], "{s:?}");
}

#[test]
fn limits_are_whole_minutes_rounded_up() {
    let dir = tempfile::tempdir().unwrap();
    // 1's 90 s limit is 2 minutes: 2 (4 CPUs) is planned at 120, and 3 (40 s: 1 minute) ends
    // before it. Read as 90 s, the plan would begin at 60 (rounded down to bf_resolution)
    // and hold 3 back.
    let csv = format!("{HEAD}1,0,50,3,90,u\n2,1,5,4,30,u\n3,1,5,1,40,u\n");
    let p = prepare(dir.path(), &csv, on_procs(4));
    assert_eq!(
        starts_of(&p, "slurm[bf_interval=1,batch_sched_delay=0]"),
        [0.0, 50.0, 1.0]
    );
    // With a 61 s limit (2 minutes) 3 reaches the plan at 120 and waits.
    let csv = format!("{HEAD}1,0,50,3,90,u\n2,1,5,4,30,u\n3,1,5,1,61,u\n");
    let p = prepare(dir.path(), &csv, on_procs(4));
    assert_eq!(
        starts_of(&p, "slurm[bf_interval=1,batch_sched_delay=0]"),
        [0.0, 50.0, 55.0]
    );
}

#[test]
fn the_start_estimate_is_the_end_of_the_last_job_of_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    // 3 (3 CPUs) fits once 1 ends (limit end 60), but 2's limit end (120) falls in the same
    // batch (within 30 s of 90, the 30 s boundary after 60): Slurm plans 3 at 120, so 4 (1 CPU,
    // 1 minute) is backfilled at once. Planned at 60, 3 would hold 4 back.
    let csv = format!("{HEAD}1,0,50,2,60,u\n2,0,100,1,120,u\n3,1,10,3,60,u\n4,1,10,1,60,u\n");
    let p = prepare(dir.path(), &csv, on_procs(4));
    assert_eq!(
        starts_of(&p, "slurm[bf_interval=1,batch_sched_delay=0]"),
        [0.0, 0.0, 50.0, 1.0]
    );
    // With 2's limit at 3 minutes (beyond the batch), 3 is planned at 60 and 4 waits.
    let csv = format!("{HEAD}1,0,50,2,60,u\n2,0,100,1,180,u\n3,1,10,3,60,u\n4,1,10,1,60,u\n");
    let p = prepare(dir.path(), &csv, on_procs(4));
    assert_eq!(
        starts_of(&p, "slurm[bf_interval=1,batch_sched_delay=0]"),
        [0.0, 0.0, 50.0, 60.0]
    );
}

#[test]
fn an_event_run_tests_default_queue_depth_plus_one_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = HEAD.to_string();
    for i in 1..=5 {
        csv.push_str(&format!("{i},0,200,1,600,u\n"));
    }
    let p = prepare(dir.path(), &csv, on_procs(8));
    // Three at once; the rest at the run over the whole queue, sched_interval later.
    assert_eq!(
        starts_of(&p, "slurm[bf_interval=-1,default_queue_depth=2]"),
        [0.0, 0.0, 0.0, 60.0, 60.0]
    );
    assert_eq!(
        starts_of(
            &p,
            "slurm[bf_interval=-1,default_queue_depth=2,sched_interval=20]"
        ),
        [0.0, 0.0, 0.0, 20.0, 20.0]
    );
}

#[test]
fn bf_max_job_test_and_bf_window_bound_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    // 1 holds 3 CPUs for 100 s (10-minute limit). 2 (4 CPUs) is planned at 600. 3 (1 CPU,
    // 5 minutes) is backfilled only if it is tested (bf_max_job_test ≥ 2)...
    let csv = format!("{HEAD}1,0,100,3,600,u\n2,1,5,4,60,u\n3,1,5,1,300,u\n");
    let p = prepare(dir.path(), &csv, on_procs(4));
    let fast = "bf_interval=1,batch_sched_delay=0";
    assert_eq!(starts_of(&p, &format!("slurm[{fast}]"))[2], 1.0);
    assert_eq!(
        starts_of(&p, &format!("slurm[{fast},bf_max_job_test=1]"))[2],
        105.0
    );
    // ... and a 15-minute job reaches 2's plan, unless the plan lies beyond bf_window.
    let csv = format!("{HEAD}1,0,100,3,600,u\n2,1,5,4,60,u\n3,1,5,1,900,u\n");
    let p = prepare(dir.path(), &csv, on_procs(4));
    assert_eq!(starts_of(&p, &format!("slurm[{fast}]"))[2], 105.0);
    assert_eq!(starts_of(&p, &format!("slurm[{fast},bf_window=5]"))[2], 1.0);
}

#[test]
fn without_def_mem_per_cpu_a_job_without_memory_takes_the_whole_node() {
    let dir = tempfile::tempdir().unwrap();
    let csv = format!("{HEAD}1,0,100,1,600,u\n2,0,100,1,600,u\n");
    let p = prepare(dir.path(), &csv, |s| {
        s.machine.nodes = Some(1);
        s.machine.cpus_per_node = Some(4);
        s.machine.mem_per_node_mb = Some(1000);
    });
    assert_eq!(starts_of(&p, "slurm"), [0.0, 0.0]);
    assert_eq!(starts_of(&p, "slurm[def_mem_per_cpu=0]"), [0.0, 100.0]);
    assert_eq!(starts_of(&p, "slurm[def_mem_per_cpu=500]"), [0.0, 0.0]);
    assert_eq!(starts_of(&p, "slurm[def_mem_per_cpu=600]"), [0.0, 100.0]);
}

#[test]
fn slurm_conf_sets_the_parameters_and_the_spec_wins() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("slurm.conf");
    std::fs::write(
        &conf,
        "SchedulerType=sched/backfill\n\
         SchedulerParameters=bf_interval=5,bf_continue,batch_sched_delay=0\n\
         SelectTypeParameters=CR_Core_Memory\n\
         NodeName=n0 CPUs=4 RealMemory=1000\n\
         PartitionName=p Nodes=n0 Default=YES MaxTime=INFINITE\n",
    )
    .unwrap();
    let csv = format!("{HEAD}1,0,100,3,300,u\n2,1,10,4,60,u\n3,2,10,1,60,u\n");
    let mut notes = Vec::new();
    let trace = dir.path().join("t.csv");
    std::fs::write(&trace, csv).unwrap();
    let mut setup = Setup::new(&trace);
    setup.machine.cluster = Some(conf.clone());
    let p = setup.prepare(&mut |n| notes.push(n.to_string())).unwrap();
    assert!(
        notes.iter().any(|n| n.contains(
            "scheduling parameters of the `slurm` policy: def_mem_per_cpu=0,bf_interval=5,batch_sched_delay=0"
        )),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("SchedulerParameters … bf_continue")),
        "{notes:?}"
    );
    assert_eq!(
        p.effective_spec("slurm[bf_interval=2]").unwrap(),
        "slurm[batch_sched_delay=0,bf_interval=2,def_mem_per_cpu=0]"
    );
    assert_eq!(p.effective_spec("easy").unwrap(), "easy");
    // DefMemPerCPU unset under CR_Core_Memory: 3 runs alone (its job takes the node's
    // memory); 2 follows; 3 at its first cycle after 2.
    assert_eq!(starts_of(&p, "slurm"), [0.0, 100.0, 110.0]);
    assert_eq!(
        starts_of(&p, "slurm[def_mem_per_cpu=none]"),
        [0.0, 100.0, 5.0]
    );
    // The run is labelled with the spec as given.
    assert_eq!(p.run("slurm").unwrap().summary.policy, "slurm");
}

#[test]
fn bad_parameters_are_refused_with_their_name() {
    for (spec, msg) in [
        ("slurm[bf_interval=0]", "parameter 'bf_interval'"),
        (
            "slurm[bf_interval=-1,sched_interval=-1]",
            "nothing would ever start",
        ),
        (
            "slurm[priority=fair]",
            "expected basic, multifactor or recorded",
        ),
        ("slurm[def_mem_per_cpu=lots]", "parameter 'def_mem_per_cpu'"),
        ("slurm[bf_max_job_test=0]", "≥ 1"),
    ] {
        let e = mini_slurm::policy::build(spec).err().unwrap().to_string();
        assert!(e.contains(msg), "{spec}: {e}");
    }
}

/// A random workload on 1–3 nodes of 4 CPUs.
fn workload() -> impl Strategy<Value = (u32, Vec<(u32, u32, u32, u32)>)> {
    (
        1u32..4,
        prop::collection::vec((0u32..400, 1u32..300, 1u32..9, 1u32..6), 1..40),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
    /// Skipping cycles after which nothing changed gives the schedule of computing them all.
    #[test]
    fn skipping_idle_cycles_changes_no_start((nodes, jobs) in workload()) {
        let dir = tempfile::tempdir().unwrap();
        let mut csv = HEAD.to_string();
        for (i, (submit, run, cpus, minutes)) in jobs.iter().enumerate() {
            let cpus = (*cpus).min(4 * nodes);
            // Some jobs run past their limit (the estimate), some end early.
            csv.push_str(&format!("{},{submit},{run},{cpus},{},u{}\n", i + 1, minutes * 50, i % 3));
        }
        let p = prepare(dir.path(), &csv, |s| {
            s.machine.nodes = Some(nodes);
            s.machine.cpus_per_node = Some(4);
        });
        for params in [
            "",
            "bf_interval=7,batch_sched_delay=0,bf_resolution=30,",
            "priority=multifactor,bf_interval=11,sched_interval=45,bf_phase=400,",
        ] {
            let lazy = starts_of(&p, &format!("slurm[{params}skip_idle=yes]"));
            let every = starts_of(&p, &format!("slurm[{params}skip_idle=no]"));
            prop_assert_eq!(lazy, every, "{}", params);
        }
    }
}

/// The live daemon's default policy is `slurm`: a 1-CPU job with a 5-minute limit is not
/// started beside a running 2-CPU job while a 3-CPU job waits (its plan holds the whole node),
/// though `easy` would start it at once; the two start together when the 2-CPU job ends, at
/// the main scheduler's next run (`batch_sched_delay`, 3 s by default).
#[test]
fn the_live_daemons_default_policy_is_slurm() {
    use crate::live_util::Live;
    let mut l = Live::new();
    // A first start records the machine; the jobs are queued while no daemon runs, so they all
    // meet in its first pass.
    l.start_as_given(&["--cpus", "4"], &[]);
    l.stop();
    let a = l.submit(&["--cpus", "2", "--time", "1:00", "--", "sleep", "1"]);
    let b = l.submit(&["--cpus", "3", "--time", "1:00", "--", "sleep", "0.2"]);
    let c = l.submit(&["--cpus", "1", "--time", "5:00", "--", "sleep", "0.2"]);
    l.start_as_given(&["--cpus", "4"], &[]);
    let stats = String::from_utf8_lossy(&l.cmd(&["stats"]).stdout).to_string();
    assert!(stats.contains("policy slurm"), "{stats}");
    let [a, b, c] = [a, b, c].map(|id| {
        let r = l.wait_state(id, 30);
        assert_eq!(r.state.name(), "COMPLETED", "{r:?}");
        r
    });
    let (a_end, b_start, c_start) = (a.end_ms.unwrap(), b.start_ms.unwrap(), c.start_ms.unwrap());
    assert!(
        a_end <= b_start && a_end <= c_start,
        "the 3-CPU job's plan held the node until the 2-CPU job ended (ms): end {a_end}, starts {b_start} and {c_start}"
    );
}
