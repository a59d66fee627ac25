//! Making a trace elastic for experiments: `--elastic-fraction F --elastic-range LO,HI`.
//!
//! Each job, in queue order, draws one number `u` uniform in [0, 1) from a ChaCha8 stream
//! seeded with `--seed` (portable: the same on every machine and version of this program).
//! A job with `u < F` becomes elastic with range `[max(1, floor(procs × LO)),
//! min(P, ceil(procs × HI))]`, where P is the CPU count of its partition, unless it already is
//! elastic, asks for GPUs or an exact node count, or the range would be just `procs`. Every
//! job draws, chosen or not, so the choice of a job does not depend on the jobs before it.

use super::SimJobs;
use crate::model::ElasticRange;
use rand::{RngExt, SeedableRng};
use std::sync::Arc;

/// `LO,HI` with 0 < LO ≤ 1 ≤ HI.
pub fn parse_range(s: &str) -> Result<(f64, f64), String> {
    let bad = || format!("expected LO,HI with 0 < LO ≤ 1 ≤ HI (e.g. 0.5,2), found '{s}'");
    let (lo, hi) = s.split_once(',').ok_or_else(bad)?;
    let lo: f64 = lo.trim().parse().map_err(|_| bad())?;
    let hi: f64 = hi.trim().parse().map_err(|_| bad())?;
    if !(lo > 0.0 && lo <= 1.0 && hi >= 1.0 && hi.is_finite()) {
        return Err(bad());
    }
    Ok((lo, hi))
}

/// Makes a seeded fraction of `jobs` elastic; returns how many became elastic.
pub fn make_elastic(jobs: &mut SimJobs, fraction: f64, range: (f64, f64), seed: u64) -> usize {
    let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(seed);
    let mut n = 0;
    for (spec, _) in &mut jobs.jobs {
        let u: f64 = rng.random();
        if u >= fraction || spec.elastic.is_some() || spec.gpus > 0 || spec.nodes.is_some() {
            continue;
        }
        let cap = jobs
            .cluster
            .partitions
            .get(spec.partition as usize)
            .map_or(0, |p| {
                p.nodes
                    .iter()
                    .map(|&i| u64::from(jobs.cluster.nodes[i as usize].cpus))
                    .sum::<u64>()
            });
        let procs = f64::from(spec.cpus);
        let min = ((procs * range.0).floor() as u32).clamp(1, spec.cpus);
        let max = ((procs * range.1).ceil().min(cap as f64) as u32).max(spec.cpus);
        if min == max {
            continue;
        }
        let mut s = (**spec).clone();
        s.elastic = Some(ElasticRange { min, max });
        *spec = Arc::new(s);
        n += 1;
    }
    n
}
