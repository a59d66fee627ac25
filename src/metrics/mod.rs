//! Metrics and output files (semantics §6–7).
//!
//! | metric | definition |
//! |---|---|
//! | wait | start − submit |
//! | turnaround | finish − submit |
//! | slowdown | turnaround / run time; a zero-length job counts as running 1 s (the traces' resolution), so it scores 1 when it did not wait |
//! | bounded slowdown | max(1, (wait + run) / max(run, τ)), τ = 10 s |
//! | makespan | max(finish) − min(submit) |
//! | utilization | Σ(run × procs) / (P × makespan); an elastic job counts the CPU-time it held (CPUs × time over its segments between resizes) |
//!
//! "run" is the execution time (finish − start). Percentiles interpolate linearly between
//! order statistics (NumPy's default), so the median of an even count is the mean of the two
//! middle values.

mod jobs_csv;
mod result;

use crate::stats::percentile;

pub use jobs_csv::{
    BLOCK_ROWS, JOBS_CSV_COLUMNS, NameSender, RowStream, write_jobs_csv, write_jobs_csv_header,
    write_jobs_csv_rows,
};
pub use result::{ElasticWork, JobResult, SimResult};

use crate::ids::Names;
use crate::time::{Dur, Time};
use crate::trace::{SimJobs, SkipReason};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// τ of the bounded slowdown, in seconds.
pub const BSLD_TAU_SECS: f64 = 10.0;

/// Slowdown of one job (see the module table).
pub fn slowdown(j: &JobResult) -> f64 {
    let run = j.execution().as_secs_f64();
    let turnaround = j.turnaround().as_secs_f64();
    if run > 0.0 {
        turnaround / run
    } else {
        turnaround.max(1.0)
    }
}

/// Bounded slowdown of one job.
pub fn bounded_slowdown(j: &JobResult, tau_secs: f64) -> f64 {
    let run = j.execution().as_secs_f64();
    let wait = j.wait().as_secs_f64();
    ((wait + run) / run.max(tau_secs)).max(1.0)
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Stats {
    pub mean: f64,
    pub median: f64,
    pub p95: f64,
    pub max: f64,
}

impl Stats {
    pub fn of(mut v: Vec<f64>) -> Stats {
        // Values equal under `total_cmp` are the same bits: an unstable sort gives the same.
        v.sort_unstable_by(f64::total_cmp);
        Stats::of_sorted(&v)
    }

    /// [`Stats::of`] the durations `ms` (milliseconds) in seconds: the integers are sorted —
    /// cheaper than the floats — and then converted; `ms as f64 / 1000` is monotonic, so the
    /// seconds come out in the very order (and with the very bits) sorting them gives.
    pub fn of_millis(mut ms: Vec<i64>) -> Stats {
        ms.sort_unstable();
        // Collected in place (the same allocation: no second vector of a million values).
        let secs: Vec<f64> = ms.into_iter().map(|m| Dur(m).as_secs_f64()).collect();
        Stats::of_sorted(&secs)
    }

    fn of_sorted(v: &[f64]) -> Stats {
        let mean = if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        };
        Stats {
            mean,
            median: percentile(v, 50.0),
            p95: percentile(v, 95.0),
            max: v.last().copied().unwrap_or(0.0),
        }
    }
}

/// The contents of `summary.json`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Summary {
    pub trace: String,
    pub policy: String,
    pub estimate: String,
    pub placement: String,
    pub procs: u64,
    pub nodes: usize,
    pub jobs_simulated: usize,
    pub jobs_skipped: BTreeMap<&'static str, u64>,
    pub jobs_skipped_total: u64,
    pub wait_s: Stats,
    pub turnaround_s: Stats,
    pub mean_bounded_slowdown: f64,
    pub bounded_slowdown_tau_s: f64,
    pub mean_slowdown: f64,
    pub max_slowdown: f64,
    pub utilization: f64,
    pub makespan_s: f64,
    pub first_submit_s: f64,
    pub last_finish_s: f64,
    pub scheduling_passes: u64,
    /// Mean number of leaf switches a job's allocation spans (0 without a topology).
    pub mean_leaf_switches: f64,
    /// Jobs whose allocation spans more than one leaf switch.
    pub jobs_spanning_leaves: usize,
    pub fairness: Fairness,
    /// `--elastic-fraction`, `--elastic-range` and `--seed`, when the run made jobs elastic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elastic_fraction: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elastic_range: Option<[f64; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The default speedup model of elastic jobs, when the run had any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speedup: Option<String>,
    /// Elastic jobs, when the run had any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elastic: Option<ElasticSummary>,
    /// Host wall time of the simulation; left out when byte-identical outputs are wanted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wall_time_s: Option<f64>,
}

/// Elastic jobs against rigid ones in one run.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ElasticSummary {
    pub jobs_elastic: usize,
    pub jobs_rigid: usize,
    /// Elastic jobs resized at least once.
    pub jobs_resized: usize,
    pub resizes_total: u64,
    pub resizes_per_elastic_job: f64,
    pub resizes_max: u32,
    /// CPU-time held by elastic (rigid) jobs over P × makespan; they add up to `utilization`.
    pub utilization_elastic: f64,
    pub utilization_rigid: f64,
    pub mean_turnaround_elastic_s: f64,
    pub mean_turnaround_rigid_s: f64,
    pub mean_bounded_slowdown_elastic: f64,
    pub mean_bounded_slowdown_rigid: f64,
}

impl ElasticSummary {
    fn compute(jobs: &[JobResult], capacity: i128) -> Option<ElasticSummary> {
        if !jobs.iter().any(|j| j.spec.elastic.is_some()) {
            return None;
        }
        let (el, rg): (Vec<&JobResult>, Vec<&JobResult>) =
            jobs.iter().partition(|j| j.spec.elastic.is_some());
        if el.is_empty() {
            return None;
        }
        let mean = |v: &[&JobResult], f: &dyn Fn(&JobResult) -> f64| {
            if v.is_empty() {
                0.0
            } else {
                v.iter().map(|j| f(j)).sum::<f64>() / v.len() as f64
            }
        };
        let util = |v: &[&JobResult]| {
            let w: i128 = v.iter().map(|j| i128::from(j.cpu_ms)).sum();
            if capacity > 0 {
                w as f64 / capacity as f64
            } else {
                0.0
            }
        };
        let resizes: u64 = el.iter().map(|j| u64::from(j.resizes)).sum();
        Some(ElasticSummary {
            jobs_elastic: el.len(),
            jobs_rigid: rg.len(),
            jobs_resized: el.iter().filter(|j| j.resizes > 0).count(),
            resizes_total: resizes,
            resizes_per_elastic_job: resizes as f64 / el.len() as f64,
            resizes_max: el.iter().map(|j| j.resizes).max().unwrap_or(0),
            utilization_elastic: util(&el),
            utilization_rigid: util(&rg),
            mean_turnaround_elastic_s: mean(&el, &|j| j.turnaround().as_secs_f64()),
            mean_turnaround_rigid_s: mean(&rg, &|j| j.turnaround().as_secs_f64()),
            mean_bounded_slowdown_elastic: mean(&el, &|j| bounded_slowdown(j, BSLD_TAU_SECS)),
            mean_bounded_slowdown_rigid: mean(&rg, &|j| bounded_slowdown(j, BSLD_TAU_SECS)),
        })
    }
}

/// One user's service.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct UserService {
    pub jobs: usize,
    pub mean_wait_s: f64,
    pub mean_bounded_slowdown: f64,
    /// CPU-seconds delivered to the user's jobs.
    pub cpu_seconds: f64,
    /// The user's fraction of all delivered CPU-seconds.
    pub share: f64,
    /// Equal shares: 1 / number of users.
    pub target_share: f64,
}

/// Delivered CPU-seconds per user in one window of the run.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ShareWindow {
    pub start_s: f64,
    pub end_s: f64,
    /// User → fraction of the CPU-seconds delivered in the window (users with none omitted).
    pub shares: BTreeMap<String, f64>,
}

/// Per-user service and fairness indices.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Fairness {
    pub users: BTreeMap<String, UserService>,
    /// Jain's index over share / target share per user: 1 when every user got its equal
    /// share, 1/n at worst.
    pub jain_share: f64,
    /// Jain's index over the users' mean bounded slowdowns: 1 when all users were served
    /// equally well.
    pub jain_bounded_slowdown: f64,
    /// Delivered shares in ten equal windows of the makespan.
    pub share_windows: Vec<ShareWindow>,
}

/// Jain's fairness index (Σx)² / (n Σx²); 1 for an empty set.
pub fn jain(xs: &[f64]) -> f64 {
    let s: f64 = xs.iter().sum();
    let s2: f64 = xs.iter().map(|x| x * x).sum();
    if xs.is_empty() || s2 == 0.0 {
        1.0
    } else {
        s * s / (xs.len() as f64 * s2)
    }
}

/// A run's per-user sums, in job order (user symbol → jobs, wait seconds, bounded slowdowns,
/// CPU-seconds), and its first submit and last end in milliseconds: what [`Fairness`] is
/// computed from, gathered in one pass over the jobs (with the summary's own sums, in
/// [`Summary::compute`]).
#[derive(Default)]
struct Service {
    per: Vec<(usize, f64, f64, f64)>,
    span: Option<(i64, i64)>,
}

impl Service {
    fn add(&mut self, j: &JobResult, bsld: f64) {
        let u = j.spec.user.0 as usize;
        if self.per.len() <= u {
            self.per.resize(u + 1, (0, 0.0, 0.0, 0.0));
        }
        let e = &mut self.per[u];
        e.0 += 1;
        e.1 += j.wait().as_secs_f64();
        e.2 += bsld;
        e.3 += j.cpu_ms as f64 / 1000.0;
        let (s, f) = (j.spec.submit.0, j.finish.0);
        self.span = Some(self.span.map_or((s, f), |(a, b)| (a.min(s), b.max(f))));
    }
}

impl Fairness {
    pub fn compute(result: &SimResult, names: &Names) -> Fairness {
        let mut service = Service::default();
        for j in &result.jobs {
            service.add(j, bounded_slowdown(j, BSLD_TAU_SECS));
        }
        Fairness::of(service, result, names)
    }

    fn of(service: Service, result: &SimResult, names: &Names) -> Fairness {
        let per = service.per;
        // Per user symbol first (cheap), then by name.
        let n_syms = per.len();
        let total: f64 = per.iter().map(|v| v.3).sum();
        let n = per.iter().filter(|v| v.0 > 0).count().max(1) as f64;
        let mut users: BTreeMap<String, UserService> = BTreeMap::new();
        for (sym, &(k, w, b, c)) in per.iter().enumerate().filter(|(_, v)| v.0 > 0) {
            let k_f = k as f64;
            users.insert(
                names.get(crate::ids::Sym(sym as u32)).to_string(),
                UserService {
                    jobs: k,
                    mean_wait_s: w / k_f,
                    mean_bounded_slowdown: b / k_f,
                    cpu_seconds: c,
                    share: if total > 0.0 { c / total } else { 0.0 },
                    target_share: 1.0 / n,
                },
            );
        }
        let ratios: Vec<f64> = users.values().map(|u| u.share / u.target_share).collect();
        let bslds: Vec<f64> = users.values().map(|u| u.mean_bounded_slowdown).collect();
        Fairness {
            jain_share: jain(&ratios),
            jain_bounded_slowdown: jain(&bslds),
            share_windows: share_windows(result, names, 10, n_syms, service.span),
            users,
        }
    }
}

/// Delivered CPU-seconds per user in `k` equal windows between the first submit and the last
/// end, `span` (a job's CPU-seconds are split across the windows it ran in).
fn share_windows(
    result: &SimResult,
    names: &Names,
    k: usize,
    n_syms: usize,
    span: Option<(i64, i64)>,
) -> Vec<ShareWindow> {
    let jobs = &result.jobs;
    let Some((a, b)) = span else {
        return Vec::new();
    };
    if b <= a {
        return Vec::new();
    }
    let width = (b - a) as f64 / k as f64;
    let mut per: Vec<Vec<f64>> = vec![vec![0.0; n_syms]; k];
    for j in jobs {
        let (s, e) = (j.start.0, j.finish.0);
        if e <= s {
            continue;
        }
        let first = (((s - a) as f64 / width) as usize).min(k - 1);
        let last = (((e - a) as f64 / width) as usize).min(k - 1);
        for (w, win) in per.iter_mut().enumerate().take(last + 1).skip(first) {
            let ws = a as f64 + w as f64 * width;
            let we = ws + width;
            let overlap = (e as f64).min(we) - (s as f64).max(ws);
            if overlap > 0.0 {
                win[j.spec.user.0 as usize] += overlap / 1000.0 * j.mean_cpus();
            }
        }
    }
    per.into_iter()
        .enumerate()
        .map(|(w, v)| {
            let tot: f64 = v.iter().sum();
            ShareWindow {
                start_s: (a as f64 + w as f64 * width) / 1000.0,
                end_s: (a as f64 + (w + 1) as f64 * width) / 1000.0,
                shares: v
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c > 0.0)
                    .map(|(u, c)| {
                        (
                            names.get(crate::ids::Sym(u as u32)).to_string(),
                            if tot > 0.0 { c / tot } else { 0.0 },
                        )
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Identifies a run in the summary.
pub struct RunInfo<'a> {
    pub trace: &'a str,
    pub policy: &'a str,
    pub estimate: &'a str,
    pub placement: &'a str,
}

impl Summary {
    pub fn compute(
        info: &RunInfo<'_>,
        input: &SimJobs,
        result: &SimResult,
        names: &Names,
    ) -> Summary {
        let jobs = &result.jobs;
        let secs = |d: Dur| d.as_secs_f64();
        // One pass over the jobs (each record and its spec read once): the sums are added in
        // job order, as iterator sums add them (from −0.0), so the bits are those of a pass
        // per value.
        let mut waits: Vec<i64> = Vec::with_capacity(jobs.len());
        let mut tats: Vec<i64> = Vec::with_capacity(jobs.len());
        let (mut bsld_sum, mut sld_sum, mut sld_max, mut leaf_sum) = (-0.0f64, -0.0f64, 0.0, -0.0);
        // Σ(run × procs) in processor-milliseconds, exact in integers; a preempted job's every
        // segment counts (the machine was busy with it).
        let mut work: i128 = 0;
        let (mut spanning, mut elastic) = (0, false);
        let mut service = Service::default();
        for j in jobs {
            waits.push(j.wait().0);
            tats.push(j.turnaround().0);
            let bsld = bounded_slowdown(j, BSLD_TAU_SECS);
            bsld_sum += bsld;
            let sld = slowdown(j);
            sld_sum += sld;
            sld_max = f64::max(sld_max, sld);
            work += i128::from(j.cpu_ms);
            leaf_sum += f64::from(j.leaf_switches);
            spanning += usize::from(j.leaf_switches > 1);
            elastic |= j.spec.elastic.is_some();
            service.add(j, bsld);
        }
        let n = jobs.len().max(1) as f64;
        let bsld = bsld_sum / n;
        let (first, last) = match service.span {
            Some((a, b)) => (Some(Time(a)), Some(Time(b))),
            None => (None, None),
        };
        let makespan = match (first, last) {
            (Some(a), Some(b)) => b - a,
            _ => Dur::ZERO,
        };
        let capacity = i128::from(result.procs) * i128::from(makespan.0);
        let utilization = if capacity > 0 {
            work as f64 / capacity as f64
        } else {
            0.0
        };
        let mut skipped = BTreeMap::new();
        for r in SkipReason::ALL {
            skipped.insert(r.key(), input.skipped.get(&r).copied().unwrap_or(0));
        }
        Summary {
            trace: info.trace.to_string(),
            policy: info.policy.to_string(),
            estimate: info.estimate.to_string(),
            placement: info.placement.to_string(),
            procs: result.procs,
            nodes: input.cluster.nodes.len(),
            jobs_simulated: jobs.len(),
            jobs_skipped: skipped,
            jobs_skipped_total: input.skipped_total(),
            wait_s: Stats::of_millis(waits),
            turnaround_s: Stats::of_millis(tats),
            mean_bounded_slowdown: bsld,
            bounded_slowdown_tau_s: BSLD_TAU_SECS,
            mean_slowdown: sld_sum / n,
            max_slowdown: sld_max,
            utilization,
            makespan_s: secs(makespan),
            first_submit_s: first.map_or(0.0, |t| t.as_secs_f64()),
            last_finish_s: last.map_or(0.0, |t| t.as_secs_f64()),
            scheduling_passes: result.passes,
            mean_leaf_switches: leaf_sum / n,
            jobs_spanning_leaves: spanning,
            fairness: Fairness::of(service, result, names),
            elastic_fraction: None,
            elastic_range: None,
            seed: None,
            speedup: None,
            elastic: elastic
                .then(|| ElasticSummary::compute(jobs, capacity))
                .flatten(),
            wall_time_s: None,
        }
    }

    /// `summary.json` text (pretty, trailing newline).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// The short human table printed on stdout.
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        let rows: Vec<(&str, String)> = vec![
            ("trace", self.trace.clone()),
            (
                "policy",
                format!("{} (estimates: {})", self.policy, self.estimate),
            ),
            (
                "cluster",
                format!(
                    "{} CPUs on {} node{} ({} placement)",
                    self.procs,
                    self.nodes,
                    if self.nodes == 1 { "" } else { "s" },
                    self.placement
                ),
            ),
            (
                "jobs",
                format!(
                    "{} simulated, {} skipped",
                    self.jobs_simulated, self.jobs_skipped_total
                ),
            ),
            (
                "wait (s)",
                format!(
                    "mean {:.1}  median {:.1}  p95 {:.1}  max {:.1}",
                    self.wait_s.mean, self.wait_s.median, self.wait_s.p95, self.wait_s.max
                ),
            ),
            (
                "bounded slowdown",
                format!(
                    "mean {:.2} (τ = {} s)",
                    self.mean_bounded_slowdown, self.bounded_slowdown_tau_s
                ),
            ),
            ("slowdown", format!("mean {:.2}", self.mean_slowdown)),
            ("utilization", format!("{:.2} %", self.utilization * 100.0)),
            (
                "makespan",
                format!(
                    "{:.0} s ({:.1} days)",
                    self.makespan_s,
                    self.makespan_s / 86400.0
                ),
            ),
        ];
        let mut rows = rows;
        if let Some(e) = &self.elastic {
            rows.push((
                "elastic jobs",
                format!(
                    "{} of {} ({} resized, {:.2} resizes per elastic job)",
                    e.jobs_elastic,
                    e.jobs_elastic + e.jobs_rigid,
                    e.jobs_resized,
                    e.resizes_per_elastic_job
                ),
            ));
            rows.push((
                "turnaround (s)",
                format!(
                    "elastic {:.1}  rigid {:.1}",
                    e.mean_turnaround_elastic_s, e.mean_turnaround_rigid_s
                ),
            ));
        }
        if self.mean_leaf_switches > 0.0 {
            rows.push((
                "leaf switches",
                format!(
                    "mean {:.2} per job, {} jobs span several",
                    self.mean_leaf_switches, self.jobs_spanning_leaves
                ),
            ));
        }
        let w = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
        for (k, v) in rows {
            let _ = writeln!(s, "{k:<w$}  {v}");
        }
        if let Some(t) = self.wall_time_s {
            let _ = writeln!(s, "{:<w$}  {:.3} s", "simulated in", t);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::JobId;
    use crate::model::{FinalState, JobSpec, PendingReason};
    use crate::time::Time;

    fn job(submit: i64, start: i64, finish: i64) -> JobResult {
        JobResult {
            spec: JobSpec::new(JobId(1), Time::from_secs(submit), 1, Dur::ZERO).into(),
            runtime: Time::from_secs(finish) - Time::from_secs(start),
            start: Time::from_secs(start),
            finish: Time::from_secs(finish),
            state: FinalState::Completed,
            alloc: Default::default(),
            leaf_switches: 0,
            pending_reason: PendingReason::None,
            preemptions: 0,
            busy: Time::from_secs(finish) - Time::from_secs(start),
            lost_cpu_ms: 0,
            cpu_ms: (finish - start) * 1000,
            resizes: 0,
        }
    }

    #[test]
    fn stats_of_millis_are_the_stats_of_the_seconds() {
        // Pseudo-random durations, negative and repeated ones, and values a float cannot tell apart.
        let mut x: u64 = 7;
        let mut ms: Vec<i64> = (0..5_000)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 20) as i64 % 100_000_000 - 1_000_000
            })
            .collect();
        ms.extend([0, 0, -1, i64::MAX, i64::MAX - 1, 1 << 60, (1 << 60) + 1]);
        for v in [ms.clone(), ms[..1].to_vec(), Vec::new()] {
            let secs = v.iter().map(|&m| Dur(m).as_secs_f64()).collect();
            let (a, b) = (Stats::of_millis(v), Stats::of(secs));
            for (p, q) in [
                (a.mean, b.mean),
                (a.median, b.median),
                (a.p95, b.p95),
                (a.max, b.max),
            ] {
                assert_eq!(p.to_bits(), q.to_bits());
            }
        }
    }

    /// The summary's one-pass sums start where iterator sums start (−0.0), so an empty run's
    /// means keep their bits.
    #[test]
    fn float_sums_start_from_negative_zero() {
        let none: [f64; 0] = [];
        assert_eq!(none.iter().sum::<f64>().to_bits(), (-0.0f64).to_bits());
    }

    #[test]
    fn slowdowns() {
        // waited 100, ran 100
        assert_eq!(slowdown(&job(0, 100, 200)), 2.0);
        assert_eq!(bounded_slowdown(&job(0, 100, 200), 10.0), 2.0);
        // short job: bounded by τ
        assert_eq!(bounded_slowdown(&job(0, 18, 20), 10.0), 2.0);
        assert_eq!(bounded_slowdown(&job(0, 0, 2), 10.0), 1.0);
        // zero-length jobs: 1 without waiting; otherwise as if they ran 1 s
        assert_eq!(slowdown(&job(5, 5, 5)), 1.0);
        assert_eq!(slowdown(&job(0, 7, 7)), 7.0);
    }

    #[test]
    fn percentiles_interpolate() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 50.0), 2.5);
        assert_eq!(percentile(&v, 100.0), 4.0);
        assert!((percentile(&v, 95.0) - 3.85).abs() < 1e-12);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
