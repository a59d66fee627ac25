//! Transformations of a workload for experiments (`trace convert` flags):
//!
//! - [`scale_load`]: multiply the offered load by `f` by dividing every gap between
//!   submissions by `f` (the first submission stays; run times and sizes do not change).
//! - [`window`]: keep the jobs submitted in `[from, to)` (seconds, as in the trace).
//! - [`keep_names`]: keep the jobs of the given users (or queues).
//! - [`shake`]: "input shaking" (Tsafrir, Ouaknine & Feitelson): move every submission by a
//!   uniform random offset in `[-max, +max]` (milliseconds, from a ChaCha8 stream seeded with
//!   `seed`; never before 0), then stable-sort by submit time. A policy comparison that flips
//!   under shaking was an artefact of the exact arrival instants.
//!
//! Each keeps the jobs' other fields as they are; the result is written in submit order.

use super::{TraceJob, Workload};
use crate::ids::Sym;
use crate::time::{Dur, Time};
use rand::{RngExt, SeedableRng};

/// Offered load: Σ(run time × CPUs) / (P × (last submit − first submit)), over the jobs the
/// simulator keeps (known run time, 1 to P CPUs). `None` for fewer than two distinct submit
/// times.
pub fn offered_load(jobs: &[TraceJob], procs: u32) -> Option<f64> {
    let valid = || {
        jobs.iter()
            .filter(move |j| j.runtime.0 >= 0 && j.procs > 0 && j.procs <= i64::from(procs))
    };
    let first = valid().map(|j| j.submit).min()?;
    let last = valid().map(|j| j.submit).max()?;
    let span = last.0.saturating_sub(first.0);
    if span <= 0 || procs == 0 {
        return None;
    }
    let work: f64 = valid().map(|j| j.runtime.0 as f64 * j.procs as f64).sum();
    Some(work / (f64::from(procs) * span as f64))
}

/// Divides the gaps between submissions by `factor` (> 0), keeping the first submission.
pub fn scale_load(w: &mut Workload, factor: f64) {
    let Some(t0) = w.jobs.iter().map(|j| j.submit).min() else {
        return;
    };
    for j in &mut w.jobs {
        let gap = j.submit.0.saturating_sub(t0.0) as f64 / factor;
        j.submit = t0 + Dur(gap.round() as i64);
    }
}

/// Keeps the jobs submitted in `[from, to)`.
pub fn window(w: &mut Workload, from: Time, to: Time) {
    w.jobs.retain(|j| j.submit >= from && j.submit < to);
}

/// Keeps the jobs whose `field` (user or queue) is one of `names`.
pub fn keep_names(w: &mut Workload, field: fn(&TraceJob) -> Sym, names: &[String]) {
    let n = &w.names;
    w.jobs
        .retain(|j| names.iter().any(|x| x == n.get(field(j))));
}

/// Moves every submission by a seeded uniform offset in `[-max, +max]`, then sorts by submit.
pub fn shake(w: &mut Workload, max: Dur, seed: u64) {
    let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(seed);
    let m = max.0.max(0);
    for j in &mut w.jobs {
        let d: i64 = rng.random_range(-m..=m);
        j.submit = Time(j.submit.0.saturating_add(d).max(0));
    }
    w.jobs.sort_by_key(|j| j.submit);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::JobId;

    fn job(id: u64, submit: i64, run: i64, procs: i64) -> TraceJob {
        TraceJob {
            id: JobId(id),
            submit: Time::from_secs(submit),
            runtime: Dur::from_secs(run),
            procs,
            requested: None,
            priority: 0,
            user: Sym(0),
            group: Sym(0),
            queue: Sym(0),
            partition: Sym(0),
            nodes: None,
            mem_mb: None,
            gpus: 0,
            qos: Sym(0),
            nice: 0,
            elastic: None,
            speedup: None,
            line: id,
        }
    }

    #[test]
    fn load_scaling_compresses_gaps() {
        let mut w = Workload {
            jobs: vec![job(1, 100, 50, 2), job(2, 200, 50, 2), job(3, 300, 100, 4)],
            ..Workload::default()
        };
        // Σ run × cpus = 100 + 100 + 400 = 600 over 4 CPUs × 200 s.
        assert_eq!(offered_load(&w.jobs, 4), Some(0.75));
        scale_load(&mut w, 2.0);
        let submits: Vec<i64> = w.jobs.iter().map(|j| j.submit.0 / 1000).collect();
        assert_eq!(submits, [100, 150, 200]);
        assert_eq!(offered_load(&w.jobs, 4), Some(1.5));
    }

    #[test]
    fn shaking_is_seeded_and_bounded() {
        let jobs: Vec<TraceJob> = (0..100)
            .map(|i| job(i, 1000 + 10 * i as i64, 1, 1))
            .collect();
        let w = Workload {
            jobs,
            ..Workload::default()
        };
        let shaken = |seed| {
            let mut c = w.clone();
            shake(&mut c, Dur::from_secs(30), seed);
            c.jobs.iter().map(|j| (j.id, j.submit)).collect::<Vec<_>>()
        };
        assert_eq!(shaken(1), shaken(1));
        assert_ne!(shaken(1), shaken(2));
        for (id, t) in shaken(1) {
            let orig = Time::from_secs(1000 + 10 * id.0 as i64);
            assert!((t - orig).0.abs() <= 30_000);
        }
        assert!(shaken(1).windows(2).all(|p| p[0].1 <= p[1].1));
    }
}
