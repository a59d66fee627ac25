//! Criterion benchmarks of the workload tools: generating 1M jobs (in memory) and reading a
//! 1M-job SWF and CSV file (goals: under 2 s each, issue #7).
//!
//! Run: `cargo bench --bench trace` (add `-- --quick` for a fast look); numbers in
//! `docs/performance.md`.

use criterion::{Criterion, criterion_group, criterion_main};
use mini_slurm::trace::generate::{GenParams, Model, generate};
use mini_slurm::trace::read_trace;
use mini_slurm::trace::write::{write_csv, write_swf};
use std::hint::black_box;

fn workloads(c: &mut Criterion) {
    let mut g = c.benchmark_group("workloads_1m");
    g.sample_size(10);
    let p = GenParams::new(Model::Hpc, 1_000_000, 1024, 0.8, 7);
    g.bench_function("generate_hpc", |b| {
        b.iter(|| black_box(generate(&p).0.jobs.len()))
    });
    let (w, _) = generate(&p);
    let dir = std::env::temp_dir().join(format!("mini-slurm-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let swf = dir.join("1m.swf");
    let csv = dir.join("1m.csv");
    write_swf(
        &mut std::io::BufWriter::new(std::fs::File::create(&swf).expect("swf")),
        &w,
    )
    .expect("write swf");
    write_csv(
        &mut std::io::BufWriter::new(std::fs::File::create(&csv).expect("csv")),
        &w,
    )
    .expect("write csv");
    g.bench_function("read_swf", |b| {
        b.iter(|| black_box(read_trace(&swf, false).expect("swf").jobs.len()))
    });
    g.bench_function("read_csv", |b| {
        b.iter(|| black_box(read_trace(&csv, false).expect("csv").jobs.len()))
    });
    g.bench_function("write_csv", |b| {
        b.iter(|| {
            let mut v = Vec::with_capacity(40 << 20);
            write_csv(&mut v, &w).expect("write");
            black_box(v.len())
        })
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, workloads);
criterion_main!(benches);
