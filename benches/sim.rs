//! Criterion benchmarks: whole-trace replays and a single scheduling pass against queue depth.
//!
//! Run: `cargo bench --bench sim` (add `-- --quick` for a fast look). Numbers and the
//! commands that reproduce the whole-process timings are in `docs/performance.md`.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mini_slurm::driver::NoObserver;
use mini_slurm::engine::{PendingJob, RunningJob};
use mini_slurm::ids::JobId;
use mini_slurm::model::{EstimateMode, JobSpec};
use mini_slurm::policy::{self, Decision, View};
use mini_slurm::sim::simulate;
use mini_slurm::time::{Dur, Time};
use mini_slurm::trace::{PrepareOptions, read_trace};
use std::hint::black_box;
use std::path::Path;

const POLICIES: [&str; 4] = ["fcfs", "priority", "easy", "conservative"];

fn kth_replay(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("traces/KTH-SP2-1996-2.1-cln.swf.gz");
    let mut g = c.benchmark_group("replay_kth_sp2");
    g.sample_size(10);
    g.bench_function("read_and_prepare", |b| {
        b.iter(|| {
            let w = read_trace(&path, false).expect("trace");
            black_box(w.prepare(&PrepareOptions::default()).expect("prepare"))
        })
    });
    let w = read_trace(&path, false).expect("trace");
    let jobs = w.prepare(&PrepareOptions::default()).expect("prepare");
    for name in POLICIES {
        g.bench_function(name, |b| {
            b.iter(|| {
                let (p, _) = policy::build(name).expect("policy");
                black_box(simulate(&jobs, p, name, &mut NoObserver).expect("sim"))
            })
        });
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
    let running: Vec<RunningJob> = (0..33)
        .map(|i| RunningJob {
            spec: spec(1_000_000 + i, 3, 600 + 97 * i as i64),
            start: Time::ZERO,
            start_seq: i,
        })
        .collect();
    for n in [100usize, 1_000, 10_000] {
        let pending: Vec<PendingJob> = (0..n as u64)
            .map(|i| PendingJob {
                spec: spec(
                    i,
                    if i + 1 == n as u64 {
                        1
                    } else {
                        2 + (i * 37 % 63) as u32
                    },
                    60 + (i as i64 * 613) % 7200,
                ),
                seq: i,
            })
            .collect();
        let view = View {
            now: Time::from_secs(1),
            total: 100,
            free: 1,
            pending: &pending,
            running: &running,
        };
        for name in ["fcfs", "easy", "conservative", "easy[order=priority]"] {
            let (mut p, _) = policy::build(name).expect("policy");
            let mut out: Vec<Decision> = Vec::new();
            g.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| {
                    out.clear();
                    p.schedule(black_box(&view), &mut out);
                    black_box(out.len())
                })
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
        let jobs = w
            .prepare(&PrepareOptions {
                estimate: mode,
                ..PrepareOptions::default()
            })
            .expect("prepare");
        g.bench_function(mode.name(), |b| {
            b.iter(|| {
                let (p, _) = policy::build("easy").expect("policy");
                black_box(simulate(&jobs, p, "easy", &mut NoObserver).expect("sim"))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, kth_replay, one_pass, estimate_modes);
criterion_main!(benches);
