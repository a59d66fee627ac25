//! A larger replay against the local Slurm: 200 consecutive jobs of the bundled KTH SP2 trace,
//! compressed in time, submitted as sleep jobs and simulated from what Slurm recorded (as in
//! `slurm_fidelity`); the mean wait and the utilization of the simulations are compared with the
//! real ones. Ignored by default (about eight minutes); docs/slurm-fidelity.md has a run's
//! numbers. Run it with `cargo test --test it slurm_replay -- --ignored --nocapture`.
//!
//! The transformation: run times ÷ 1500 (at least 1 s), submit gaps ÷ 1500, time limits in
//! whole minutes of the requested time ÷ 1800 (so limits keep their spread, 1–8 minutes, and
//! overestimate the compressed run times about fiftyfold), processors × 4 / 100 rounded up (the
//! 100-node SP2 onto 4 CPUs).

use crate::slurm_fidelity::{
    Record, Scenario, j, real_slurm_lock, run_real, simulate, slurm_answers, slurm_conf,
};

const FIRST: usize = 1000;
const JOBS: usize = 200;
const RUN_DIV: f64 = 1500.0;
const LIMIT_DIV: f64 = 1800.0;

/// The excerpt as scenario jobs.
fn excerpt() -> Vec<crate::slurm_fidelity::J> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/traces/KTH-SP2-1996-2.1-cln.swf.gz"
    );
    let w = mini_slurm::trace::read_trace(std::path::Path::new(path), false).expect("trace");
    let jobs = &w.jobs[FIRST..FIRST + JOBS];
    let t0 = jobs[0].submit.as_secs_f64();
    jobs.iter()
        .map(|t| {
            let at = ((t.submit.as_secs_f64() - t0) / RUN_DIV).round() as u32;
            let cpus = ((t.procs.max(1) as f64) * 4.0 / 100.0)
                .ceil()
                .clamp(1.0, 4.0) as u32;
            let req = t.requested.map_or(t.runtime, |r| r).as_secs_f64();
            let minutes = ((req / LIMIT_DIV).ceil() as u32).max(1);
            let run = ((t.runtime.as_secs_f64() / RUN_DIV).round() as u32).max(1);
            j(at, cpus, &minutes.to_string(), run)
        })
        .collect()
}

/// Mean wait (s) and utilization of 4 CPUs, from starts and the recorded run times.
fn metrics(jobs: &[crate::slurm_fidelity::J], recs: &[Record], starts: &[i64]) -> (f64, f64) {
    let first = recs.iter().map(|r| r.submit).min().unwrap_or(0);
    let mut wait = 0.0;
    let mut work = 0.0;
    let mut last = first;
    for ((job, r), &s) in jobs.iter().zip(recs).zip(starts) {
        let run = r.done - r.start;
        wait += (s - r.submit) as f64 / 1000.0;
        work += run as f64 / 1000.0 * f64::from(job.cpus);
        last = last.max(s + run);
    }
    let span = (last - first) as f64 / 1000.0;
    (wait / jobs.len() as f64, work / (4.0 * span))
}

#[test]
#[ignore = "eight minutes on the local Slurm; run by hand for docs/slurm-fidelity.md"]
fn slurm_replay_of_a_kth_excerpt() {
    assert!(slurm_answers(), "no local Slurm answers (sinfo failed)");
    let _lock = real_slurm_lock();
    let s = Scenario {
        name: "kth-replay",
        what: "200 KTH SP2 jobs, compressed",
        jobs: excerpt(),
    };
    let recs = run_real(&s).unwrap_or_else(|e| panic!("{e}"));
    let real: Vec<i64> = recs.iter().map(|r| r.start).collect();
    let (w0, u0) = metrics(&s.jobs, &recs, &real);
    let mut md = format!(
        "| run | mean wait (s) | deviation | utilization | deviation |\n|---|---|---|---|---|\n| real Slurm 22.05.8 | {w0:.1} | | {:.1} % | |\n",
        u0 * 100.0
    );
    // `slurm[bf_phase=0]`: both of Slurm's schedulers on one phase, to show what the phase
    // offset read from the log is worth.
    for spec in ["slurm", "slurm[bf_phase=0]", "easy", "conservative", "fcfs"] {
        let sim = simulate(&s.jobs, &recs, &slurm_conf(), spec);
        let (w, u) = metrics(&s.jobs, &recs, &sim);
        md.push_str(&format!(
            "| `{spec}` | {w:.1} | {:+.1} % | {:.1} % | {:+.1} % |\n",
            (w - w0) / w0 * 100.0,
            u * 100.0,
            (u - u0) / u0 * 100.0
        ));
    }
    eprintln!("{md}");
    if let Some(out) = std::env::var_os("MINI_SLURM_REPLAY_OUT") {
        std::fs::write(out, &md).expect("report written");
    }
}
