//! Criterion benchmarks: whole-trace replays, a single scheduling pass against queue depth,
//! and the 114k-job trace on a 1024-node tree cluster.
//!
//! Run: `cargo bench --bench sim` (add `-- --quick` for a fast look). Numbers and the
//! commands that reproduce the whole-process timings are in `docs/performance.md`.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mini_slurm::driver::NoObserver;
use mini_slurm::ids::JobId;
use mini_slurm::model::{Cluster, EstimateMode, JobSpec, Node, Slice, Speedup, Switch};
use mini_slurm::policy;
use mini_slurm::sched::placement::{self, BestFit, Placement};
use mini_slurm::sched::{Decisions, PendingJob, RunningJob, View};
use mini_slurm::sim::{SimConfig, simulate};
use mini_slurm::time::{Dur, Time};
use mini_slurm::trace::{PrepareOptions, SimJobs, Workload, read_trace};
use std::hint::black_box;
use std::path::Path;

const POLICIES: [&str; 6] = [
    "fcfs",
    "priority",
    "easy",
    "conservative",
    "easy[order=multifactor]",
    "easy[order=multifactor,tree=accounts]",
];

fn kth() -> Workload {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("traces/KTH-SP2-1996-2.1-cln.swf.gz");
    read_trace(&path, false).expect("trace")
}

fn one_node(w: &Workload, estimate: EstimateMode) -> SimJobs {
    let p = w.machine_procs(None).expect("machine size");
    let cluster = Cluster::uniform(1, p, 0, 0).expect("cluster");
    w.prepare(
        &cluster,
        &BestFit,
        &PrepareOptions {
            estimate,
            ..PrepareOptions::default()
        },
    )
}

fn run(jobs: &SimJobs, spec: &str, placement: Box<dyn Placement>) {
    let (p, _) = policy::build(spec).expect("policy");
    let cfg = SimConfig {
        placement,
        ..SimConfig::new(p, spec)
    };
    black_box(simulate(jobs, cfg, &mut NoObserver).expect("sim"));
}

fn kth_replay(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("traces/KTH-SP2-1996-2.1-cln.swf.gz");
    let mut g = c.benchmark_group("replay_kth_sp2");
    g.sample_size(10);
    g.bench_function("read_and_prepare", |b| {
        b.iter(|| {
            let w = read_trace(&path, false).expect("trace");
            black_box(one_node(&w, EstimateMode::Requested))
        })
    });
    let jobs = one_node(&kth(), EstimateMode::Requested);
    for name in POLICIES {
        g.bench_function(name, |b| b.iter(|| run(&jobs, name, Box::new(BestFit))));
    }
    g.finish();
}

fn spec(id: u64, procs: u32, est_s: i64) -> JobSpec {
    JobSpec {
        priority: (id % 7) as i64,
        ..JobSpec::new(JobId(id), Time::ZERO, procs, Dur::from_secs(est_s))
    }
}

/// One pass on a 100-processor machine with 1 processor free, 33 running jobs and `n` waiting
/// jobs of 2–64 processors, the last one needing a single processor, so backfilling policies
/// must consider the whole queue.
fn one_pass(c: &mut Criterion) {
    let mut g = c.benchmark_group("one_pass");
    g.sample_size(20);
    let cluster = Cluster::uniform(1, 100, 0, 0).expect("cluster");
    let running: Vec<RunningJob> = (0..33)
        .map(|i| {
            RunningJob::new(
                spec(1_000_000 + i, 3, 600 + 97 * i as i64).into(),
                Time::ZERO,
                i,
                vec![Slice::new(0, 3, 0)].into(),
            )
        })
        .collect();
    let avail = [mini_slurm::model::Avail {
        cpus: 1,
        mem_mb: 0,
        gpus: 0,
    }];
    let limits = mini_slurm::sched::limits::LimitState::default();
    for n in [100usize, 1_000, 10_000] {
        let pending: Vec<PendingJob> = (0..n as u64)
            .map(|i| {
                let procs = if i + 1 == n as u64 {
                    1
                } else {
                    2 + (i * 37 % 63) as u32
                };
                PendingJob {
                    spec: spec(i, procs, 60 + (i as i64 * 613) % 7200).into(),
                    seq: i,
                    reason: mini_slurm::model::PendingReason::None,
                }
            })
            .collect();
        let view = View {
            now: Time::from_secs(1),
            cluster: &cluster,
            placement: &BestFit,
            avail: &avail,
            free: 1,
            pending: &pending,
            running: &running,
            want_plan: true,
            usage: None,
            limits: &limits,
            assoc: None,
            elastic_jobs: 0,
        };
        for name in ["fcfs", "easy", "conservative", "easy[order=priority]"] {
            let (mut p, _) = policy::build(name).expect("policy");
            let mut out = Decisions::default();
            g.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| {
                    out.clear();
                    p.schedule(black_box(&view), &mut out);
                    black_box(out.list.len())
                })
            });
        }
    }
    g.finish();
}

/// `n` single-CPU nodes under leaves of `leaf` nodes, `spine` leaves per spine switch, one core.
pub fn tree_cluster(n: u32, leaf: u32, spine: u32) -> Cluster {
    let nodes = (0..n)
        .map(|i| Node {
            name: format!("n{i}"),
            cpus: 1,
            mem_mb: 0,
            gpus: 0,
        })
        .collect();
    let sw = |name: String, nodes: Vec<u32>, children: Vec<u32>| Switch {
        name,
        level: 0,
        parent: None,
        children,
        nodes,
    };
    let leaves = n.div_ceil(leaf);
    let mut switches: Vec<Switch> = (0..leaves)
        .map(|l| {
            sw(
                format!("leaf{l}"),
                (l * leaf..((l + 1) * leaf).min(n)).collect(),
                vec![],
            )
        })
        .collect();
    let spines = leaves.div_ceil(spine);
    for s in 0..spines {
        let kids = (s * spine..((s + 1) * spine).min(leaves)).collect();
        switches.push(sw(format!("spine{s}"), vec![], kids));
    }
    switches.push(sw(
        "core".into(),
        vec![],
        (leaves..leaves + spines).collect(),
    ));
    Cluster::new(nodes, Vec::new(), switches).expect("tree cluster")
}

/// KTH SP2 four times over (114k jobs), each copy shifted by 365 days.
fn kth_x4() -> Workload {
    let mut w = kth();
    let n = w.jobs.len();
    for k in 1..4u64 {
        for i in 0..n {
            let mut j = w.jobs[i].clone();
            j.id = JobId(j.id.0 + k * 100_000);
            j.submit = j.submit + Dur::from_secs(k as i64 * 31_536_000);
            w.jobs.push(j);
        }
    }
    w
}

fn tree_replay(c: &mut Criterion) {
    let w = kth_x4();
    let cluster = tree_cluster(1024, 32, 8);
    let jobs = w.prepare(&cluster, &placement::Tree, &PrepareOptions::default());
    let mut g = c.benchmark_group("replay_kth_x4_tree_1024");
    g.sample_size(10);
    for (spec, place) in [("easy", "tree"), ("easy", "first-fit")] {
        g.bench_function(format!("{spec}/{place}"), |b| {
            b.iter(|| run(&jobs, spec, placement::by_name(place).expect("placement")))
        });
    }
    g.finish();
}

/// KTH×4 with every job elastic (range ×0.5–×2, seed 1), on one node as in the rigid replay;
/// the goal is under 10 s per run (issue #6), linear and Amdahl speedup.
fn elastic_replay(c: &mut Criterion) {
    let w = kth_x4();
    let p = w.machine_procs(None).expect("machine size");
    let cluster = Cluster::uniform(1, p, 0, 0).expect("cluster");
    let mut g = c.benchmark_group("replay_kth_x4_elastic_100");
    g.sample_size(10);
    for speedup in ["linear", "amdahl:0.05"] {
        let mut jobs = w.prepare(
            &cluster,
            &BestFit,
            &PrepareOptions {
                speedup: Speedup::parse(speedup).expect("model"),
                ..PrepareOptions::default()
            },
        );
        mini_slurm::trace::elastic::make_elastic(&mut jobs, 1.0, (0.5, 2.0), 1);
        for spec in ["easy", "conservative"] {
            g.bench_function(format!("{spec}/{speedup}"), |b| {
                b.iter(|| run(&jobs, spec, Box::new(BestFit)))
            });
        }
    }
    g.finish();
}

fn estimate_modes(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("traces/lublin_256.swf.gz");
    let w = read_trace(&path, false).expect("trace");
    let mut g = c.benchmark_group("replay_lublin_256_easy");
    g.sample_size(10);
    for mode in EstimateMode::ALL {
        let jobs = one_node(&w, mode);
        g.bench_function(mode.name(), |b| {
            b.iter(|| run(&jobs, "easy", Box::new(BestFit)))
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    kth_replay,
    one_pass,
    tree_replay,
    elastic_replay,
    estimate_modes
);
criterion_main!(benches);
