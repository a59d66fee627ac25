//! Elastic (malleable) jobs: a hand-checked schedule with exact completion times under linear
//! and Amdahl speedup, and properties over every registered policy (no oversubscription
//! through resizes, sizes always in range, the work delivered equals the work of the job).

use crate::util::{InvariantCheck, run};
use mini_slurm::ids::{JobId, Names};
use mini_slurm::metrics::SimResult;
use mini_slurm::model::{Cluster, ElasticRange, EstimateMode, FinalState, Speedup};
use mini_slurm::policy::{self, REGISTRY};
use mini_slurm::sched::placement::BestFit;
use mini_slurm::sim::{SimConfig, simulate};

use mini_slurm::trace::{PrepareOptions, SimJobs, TraceJob, Workload};
use proptest::prelude::*;
use std::io::Cursor;
use std::path::Path;

fn csv_jobs(text: &str, procs: u32, speedup: &str) -> SimJobs {
    let w = mini_slurm::trace::csv::read(
        Box::new(Cursor::new(text.as_bytes().to_vec())),
        Path::new("t.csv"),
        false,
    )
    .expect("trace parses");
    let cluster = Cluster::uniform(1, procs, 0, 0).unwrap();
    w.prepare(
        &cluster,
        &BestFit,
        &PrepareOptions {
            estimate: EstimateMode::Requested,
            speedup: Speedup::parse(speedup).unwrap(),
            ..PrepareOptions::default()
        },
    )
}

/// (id, start ms, finish ms, resizes, CPU-ms held) per job.
fn outcome(r: &SimResult) -> Vec<(u64, i64, i64, u32, i64)> {
    r.jobs
        .iter()
        .map(|j| {
            (
                j.spec.id.0,
                j.start.millis(),
                j.finish.millis(),
                j.resizes,
                j.cpu_ms,
            )
        })
        .collect()
}

/// Six CPUs. Job 1 is elastic (2 CPUs requested, range 1–4) and needs 98 s at 2 CPUs; job 2
/// (rigid, 4 CPUs, 50 s) arrives at 10 s.
const HAND: &str = "id,submit,runtime,cpus,walltime,min_cpus,max_cpus\n\
                    1,0,98,2,98,1,4\n\
                    2,10,50,4,50,,\n";

#[test]
fn grows_into_idle_cpus_then_shrinks_for_a_wide_job_linear() {
    // 0 s: 1 starts and grows to 4 (idle CPUs). 10 s: shrinking 1 to its minimum frees 5 CPUs;
    // 2 starts on 4 and 1 takes back the sixth: 4 → 2. 60 s: 2 ends, 1 grows back to 4.
    // Work 98 s × 2 CPUs = 196 CPU-s; 0–10 s on 4: 40; 10–60 s on 2: 100; 56 left on 4:
    // 14 s, so 1 ends at 74 s.
    for spec in [
        "easy[resize_every=0]",
        "fcfs[resize_every=0]",
        "conservative[resize_every=0]",
    ] {
        let r = run(&csv_jobs(HAND, 6, "linear"), spec);
        assert_eq!(
            outcome(&r),
            [(1, 0, 74_000, 2, 196_000), (2, 10_000, 60_000, 0, 200_000)],
            "{spec}"
        );
        assert_eq!(r.jobs[0].alloc[0].cpus, 4, "{spec}: ends on 4 CPUs");
    }
}

#[test]
fn grows_into_idle_cpus_then_shrinks_for_a_wide_job_amdahl() {
    // Amdahl, serial fraction 1/2: S(n) = 2n / (n + 1). Relative to the requested 2 CPUs
    // (S = 4/3) the rates are 1.2 on 4 CPUs and 1 on 2. Work 98 s: 0–10 s at 1.2: 12;
    // 10–60 s at 1: 50; 36 left at 1.2: 30 s, so 1 ends at 90 s.
    let r = run(&csv_jobs(HAND, 6, "amdahl:0.5"), "easy[resize_every=0]");
    assert_eq!(
        outcome(&r),
        [
            (1, 0, 90_000, 2, 4 * 10_000 + 2 * 50_000 + 4 * 30_000),
            (2, 10_000, 60_000, 0, 200_000)
        ]
    );
    // The model can also be given per job in the trace.
    let per_job = HAND
        .replace(",max_cpus\n", ",max_cpus,speedup\n")
        .replace("1,4\n", "1,4,amdahl:0.5\n")
        .replace("50,,\n", "50,,,\n");
    let r2 = run(&csv_jobs(&per_job, 6, "linear"), "easy[resize_every=0]");
    assert_eq!(outcome(&r2), outcome(&r));
    for (_, w) in &r.elastic_work {
        assert_eq!(w.delivered, w.total);
        assert!(!w.late);
    }
}

#[test]
fn resize_every_limits_how_often_a_job_is_resized() {
    // With resize_every = 30 s, 1 (started at 0 on 4 CPUs) cannot shrink before 30 s: 2 waits
    // until then (the layer asks for a pass at 30 s). 1 then runs on 2 CPUs: 196 − 120 = 76
    // CPU-s left take 38 s, so it ends at 68 s, before it could grow again.
    let r = run(&csv_jobs(HAND, 6, "linear"), "easy[resize_every=30]");
    assert_eq!(
        outcome(&r),
        [(1, 0, 68_000, 1, 196_000), (2, 30_000, 80_000, 0, 200_000)]
    );
}

#[test]
fn elastic_off_runs_elastic_jobs_rigid() {
    let r = run(&csv_jobs(HAND, 6, "linear"), "easy[elastic=off]");
    assert_eq!(
        outcome(&r),
        [(1, 0, 98_000, 0, 196_000), (2, 10_000, 60_000, 0, 200_000)]
    );
}

#[test]
fn elastic_columns_are_checked() {
    let read = |t: &str| {
        mini_slurm::trace::csv::read(
            Box::new(Cursor::new(t.as_bytes().to_vec())),
            Path::new("e.csv"),
            false,
        )
        .err()
        .map(|e| e.to_string())
    };
    assert_eq!(
        read("id,submit,runtime,cpus,min_cpus,max_cpus\n1,0,10,2,3,4\n").as_deref(),
        Some(
            "e.csv:2: column 'min_cpus': expected min_cpus ≤ cpus ≤ max_cpus (cpus = 2), found '3'"
        )
    );
    assert_eq!(
        read("id,submit,runtime,cpus,max_cpus\n1,0,10,2,x\n").as_deref(),
        Some("e.csv:2: column 'max_cpus': expected an integer, found 'x'")
    );
    assert!(
        read("id,submit,runtime,cpus,max_cpus,speedup\n1,0,10,2,4,cubic\n")
            .unwrap()
            .starts_with("e.csv:2: column 'speedup': invalid speedup model 'cubic'")
    );
    assert!(
        read("id,submit,runtime,cpus,gpus,max_cpus\n1,0,10,2,1,4\n")
            .unwrap()
            .contains("cannot also ask for GPUs")
    );
}

#[test]
fn elastic_fraction_is_seeded() {
    let text: String = std::iter::once("id,submit,runtime,cpus\n".to_string())
        .chain((1..=400).map(|i| format!("{i},{i},100,{}\n", 1 + i % 8)))
        .collect();
    let base = csv_jobs(&text, 16, "linear");
    let pick = |seed| {
        let mut j = base.clone();
        let n = mini_slurm::trace::elastic::make_elastic(&mut j, 0.5, (0.5, 2.0), seed);
        let ranges: Vec<Option<ElasticRange>> = j.jobs.iter().map(|(s, _)| s.elastic).collect();
        (n, ranges)
    };
    let (n, a) = pick(7);
    assert_eq!(pick(7), (n, a.clone()), "same seed, same choice");
    assert_ne!(pick(8).1, a, "another seed, another choice");
    // About half, in range around each size.
    assert!((150..=250).contains(&n), "{n} of 400");
    for ((s, _), r) in base.jobs.iter().zip(&a) {
        if let Some(r) = r {
            assert_eq!(r.min, (s.cpus / 2).max(1));
            assert_eq!(r.max, (s.cpus * 2).min(16));
        }
    }
}

// ---- properties ----

/// (submit gap, run, procs, requested, elastic: how far min and max lie from procs), seconds.
type GenJob = (i64, i64, i64, i64, Option<(u32, u32)>);

#[derive(Clone, Debug)]
struct Gen {
    procs: u32,
    jobs: Vec<GenJob>,
    speedup: Speedup,
    every: u32,
}

fn workload() -> impl Strategy<Value = Gen> {
    (1u32..=12).prop_flat_map(|p| {
        let job = (
            prop_oneof![Just(0i64), 0i64..30],
            prop_oneof![Just(0i64), 1i64..120],
            1i64..=i64::from(p),
            prop_oneof![Just(-1i64), 0i64..150],
            prop_oneof![Just(None), (0u32..4, 0u32..8).prop_map(Some)],
        );
        let speedup = prop_oneof![
            Just(Speedup::Linear),
            Just(Speedup::Amdahl {
                serial_ppm: 300_000
            }),
            Just(Speedup::Downey {
                a_milli: 4_000,
                sigma_milli: 500
            }),
            Just(Speedup::Downey {
                a_milli: 3_000,
                sigma_milli: 2_000
            }),
        ];
        (
            Just(p),
            proptest::collection::vec(job, 1..30),
            speedup,
            prop_oneof![Just(0u32), Just(5), Just(60)],
        )
            .prop_map(|(procs, jobs, speedup, every)| Gen {
                procs,
                jobs,
                speedup,
                every,
            })
    })
}

fn to_jobs(g: &Gen) -> SimJobs {
    let mut w = Workload {
        declared_procs: Some(g.procs),
        names: Names::default(),
        ..Workload::default()
    };
    let mut t = 0;
    for (i, &(gap, run, procs, req, el)) in g.jobs.iter().enumerate() {
        t += gap;
        let p = procs as u32;
        w.jobs.push(TraceJob {
            elastic: el.map(|(lo, hi)| ElasticRange {
                min: p.saturating_sub(lo).max(1),
                max: (p + hi).min(g.procs),
            }),
            ..crate::util::trace_job(i, t, run, procs, req)
        });
    }
    let cluster = Cluster::uniform(1, g.procs, 0, 0).unwrap();
    w.prepare(
        &cluster,
        &BestFit,
        &PrepareOptions {
            speedup: g.speedup,
            ..PrepareOptions::default()
        },
    )
}

/// Every registered policy, and the orderings and preemption modes layered on them.
fn specs(every: u32) -> Vec<String> {
    let mut v: Vec<String> = REGISTRY.iter().map(|p| p.name.to_string()).collect();
    v.push("easy[order=priority]".into());
    v.push("conservative[order=multifactor,half_life=0:10:00]".into());
    v.push("priority[preempt=suspend]".into());
    v.push("easy[order=priority,preempt=requeue,grace=3]".into());
    v.into_iter()
        .map(|s| match s.strip_suffix(']') {
            Some(body) => format!("{body},resize_every={every}]"),
            None => format!("{s}[resize_every={every}]"),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Through every resize: no CPU is held twice and none is lost (the engine's invariants,
    /// checked after every step, include each elastic job's size being in its range); every
    /// job ends; an elastic job's work delivered over its segments equals its work exactly,
    /// and it ends in the first millisecond its work allows.
    #[test]
    fn resizes_keep_every_invariant(g in workload()) {
        let _heavy = crate::util::heavy();
        let jobs = to_jobs(&g);
        for spec in specs(g.every) {
            let (p, s) = policy::build(&spec).unwrap();
            let name = s.canonical();
            let r = simulate(&jobs, SimConfig::new(p, &name), &mut InvariantCheck)
                .unwrap_or_else(|e| panic!("{spec}: {e}"));
            prop_assert_eq!(r.jobs.len(), jobs.jobs.len());
            let by_id: std::collections::BTreeMap<JobId, _> =
                r.elastic_work.iter().copied().collect();
            for j in &r.jobs {
                let Some(range) = j.spec.elastic else {
                    prop_assert_eq!(j.resizes, 0);
                    continue;
                };
                let held: u32 = j.alloc.iter().map(|s| s.cpus).sum();
                prop_assert!(range.contains(held), "{}: job {} ends on {} CPUs", spec, j.spec.id, held);
                if j.state == FinalState::Completed && j.preemptions == 0 {
                    let w = by_id[&j.spec.id];
                    prop_assert_eq!(w.delivered, w.total, "{}: job {}", spec, j.spec.id);
                    prop_assert!(!w.late, "{}: job {} ended late", spec, j.spec.id);
                    prop_assert_eq!(w.resizes, j.resizes);
                    // Linear speedup: the CPU-time held is the work, to the millisecond's
                    // rounding of each segment's end.
                    if g.speedup == Speedup::Linear {
                        let work = j.runtime.0 * i64::from(j.spec.cpus);
                        prop_assert!(j.cpu_ms >= work && j.cpu_ms < work + i64::from(range.max).max(1),
                            "{}: job {} held {} CPU-ms for {} of work", spec, j.spec.id, j.cpu_ms, work);
                    }
                }
            }
            // Deterministic.
            let (p2, _) = policy::build(&spec).unwrap();
            let r2 = simulate(&jobs, SimConfig::new(p2, &name), &mut InvariantCheck).unwrap();
            prop_assert_eq!(&r.jobs, &r2.jobs);
        }
    }
}

#[test]
fn a_job_preempted_in_a_pass_is_not_grown_in_it() {
    // 8 CPUs, priority order with requeue. V (elastic 4–8, priority 0) and R (rigid 4, 100 s)
    // fill the machine. At 100 s R ends and H (8 CPUs, priority 10) arrives: shown V at its
    // minimum (4), H does not fit, so V is preempted — and must not be grown into R's CPUs in
    // the same pass. H starts at 100 s; V restarts after it.
    let trace = "id,submit,runtime,cpus,walltime,min_cpus,max_cpus,priority\n\
                 1,0,1000,4,1000,4,8,0\n\
                 2,0,100,4,100,,,0\n\
                 3,100,50,8,50,,,10\n";
    let r = run(
        &csv_jobs(trace, 8, "linear"),
        "easy[order=priority,preempt=requeue,resize_every=0]",
    );
    let h = &r.jobs[2];
    assert_eq!((h.start.millis(), h.finish.millis()), (100_000, 150_000));
    let v = &r.jobs[0];
    assert_eq!(v.preemptions, 1, "{v:?}");
    assert!(v.start.millis() >= 150_000, "{v:?}");
}

#[test]
fn growth_does_not_take_cpus_a_reservation_needs() {
    // 10 CPUs, resize_every 300 s. R (rigid, 6 CPUs) runs until 30 s; H (8 CPUs) arrives at 1 s
    // and is reserved at 30 s; E (elastic 1–4, asks 2) arrives at 2 s and backfills at 1 CPU.
    // Growing E would keep its CPUs past 30 s (it could not shrink before 302 s), so it does
    // not grow while H is planned within the interval: H starts at 30 s.
    let trace = "id,submit,runtime,cpus,walltime,min_cpus,max_cpus\n\
                 1,0,30,6,30,,\n\
                 2,1,50,8,50,,\n\
                 3,2,1000,2,1000,1,4\n";
    let r = run(&csv_jobs(trace, 10, "linear"), "easy[resize_every=300]");
    assert_eq!(r.jobs[1].start.millis(), 30_000, "{:?}", r.jobs[1]);
    assert_eq!(r.jobs[2].start.millis(), 2_000);
}

#[test]
fn huge_estimates_do_not_overflow() {
    // A walltime of ~3 × 10^11 years (the live daemon's "unlimited" is of that order).
    let trace = "id,submit,runtime,cpus,walltime,min_cpus,max_cpus\n\
                 1,0,100,8,9000000000000000,4,16\n\
                 2,5,10,6,9000000000000000,,\n";
    for spec in [
        "easy[resize_every=0]",
        "conservative[resize_every=0]",
        "fcfs",
    ] {
        for speedup in ["linear", "amdahl:0.1"] {
            let r = run(&csv_jobs(trace, 16, speedup), spec);
            assert!(
                r.jobs.iter().all(|j| j.finish > j.start),
                "{spec}: {:?}",
                r.jobs
            );
        }
    }
}
