//! What a trace holds (`trace info`): counts, span, sizes, offered load, estimate accuracy and
//! distributions, over the jobs the simulator would keep (known run time ≥ 0, CPUs ≥ 1).

use super::Workload;
use super::transform::offered_load;
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// Quantiles of a sample (linear interpolation, as the metrics module).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Quantiles {
    pub mean: f64,
    pub p10: f64,
    pub median: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Quantiles {
    fn of(mut v: Vec<f64>) -> Quantiles {
        v.sort_by(f64::total_cmp);
        let q = |p: f64| crate::stats::percentile(&v, p);
        Quantiles {
            mean: if v.is_empty() {
                0.0
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            },
            p10: q(10.0),
            median: q(50.0),
            p90: q(90.0),
            p99: q(99.0),
            max: v.last().copied().unwrap_or(0.0),
        }
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TraceInfo {
    pub jobs: usize,
    /// Jobs the simulator would skip (run time < 0 or no CPUs).
    pub unusable: usize,
    pub users: usize,
    pub first_submit_s: f64,
    pub last_submit_s: f64,
    pub span_days: f64,
    pub machine_procs: Option<u32>,
    pub max_cpus: i64,
    /// Σ(run × CPUs) / (P × span of submissions).
    pub offered_load: Option<f64>,
    pub interarrival_s: Quantiles,
    pub runtime_s: Quantiles,
    pub cpus: Quantiles,
    /// Jobs with a requested time, mean of run time / requested time, and the share that ran
    /// past their request.
    pub jobs_with_estimate: usize,
    pub estimate_accuracy_mean: f64,
    pub overrunning_share: f64,
    /// Share of serial jobs and of jobs whose size is a power of two (among parallel jobs).
    pub serial_share: f64,
    pub power_of_two_share: f64,
    /// Jobs by size class `1`, `2`, `3-4`, `5-8`, ...: (label, count).
    pub size_classes: Vec<(String, usize)>,
    /// Jobs by run-time class: (label, count).
    pub runtime_classes: Vec<(String, usize)>,
    pub elastic_jobs: usize,
    pub gpu_jobs: usize,
}

const RUNTIME_CLASSES: [(&str, f64); 6] = [
    ("< 1 min", 60.0),
    ("1-10 min", 600.0),
    ("10 min-1 h", 3600.0),
    ("1-10 h", 36_000.0),
    ("10-24 h", 86_400.0),
    ("> 24 h", f64::INFINITY),
];

impl TraceInfo {
    pub fn compute(w: &Workload, procs: Option<u32>) -> TraceInfo {
        let valid: Vec<_> = w
            .jobs
            .iter()
            .filter(|j| j.runtime.0 >= 0 && j.procs > 0)
            .collect();
        let machine = procs.or(w.declared_procs);
        let mut submits: Vec<i64> = valid.iter().map(|j| j.submit.0).collect();
        submits.sort_unstable();
        let gaps: Vec<f64> = submits
            .windows(2)
            .map(|p| (p[1] - p[0]) as f64 / 1000.0)
            .collect();
        let users: BTreeSet<u32> = valid.iter().map(|j| j.user.0).collect();
        let with_est: Vec<_> = valid
            .iter()
            .filter(|j| j.requested.is_some_and(|r| r.0 > 0))
            .collect();
        let acc: Vec<f64> = with_est
            .iter()
            .map(|j| j.runtime.0 as f64 / j.requested.map_or(1, |r| r.0) as f64)
            .collect();
        let parallel: Vec<_> = valid.iter().filter(|j| j.procs > 1).collect();
        let max_cpus = valid.iter().map(|j| j.procs).max().unwrap_or(0);
        // Classes 1, 2, 3-4, 5-8, ... up to the one holding the largest job.
        let mut size_classes = Vec::new();
        let mut b = 1i64;
        loop {
            let a = if b <= 2 { b } else { b / 2 + 1 };
            let n = valid
                .iter()
                .filter(|j| j.procs >= a && j.procs <= b)
                .count();
            let label = if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            };
            size_classes.push((label, n));
            match b.checked_mul(2) {
                Some(n) if b < max_cpus => b = n,
                _ => break,
            }
        }
        let mut runtime_classes = Vec::new();
        let mut prev = 0.0;
        for (label, hi) in RUNTIME_CLASSES {
            let n = valid
                .iter()
                .filter(|j| {
                    let s = j.runtime.0 as f64 / 1000.0;
                    s >= prev && s < hi
                })
                .count();
            runtime_classes.push((label.to_string(), n));
            prev = hi;
        }
        let share = |n: usize, of: usize| if of > 0 { n as f64 / of as f64 } else { 0.0 };
        TraceInfo {
            jobs: valid.len(),
            unusable: w.jobs.len() - valid.len(),
            users: users.len(),
            first_submit_s: submits.first().map_or(0.0, |&t| t as f64 / 1000.0),
            last_submit_s: submits.last().map_or(0.0, |&t| t as f64 / 1000.0),
            span_days: match (submits.first(), submits.last()) {
                (Some(a), Some(b)) => (b - a) as f64 / 86_400_000.0,
                _ => 0.0,
            },
            machine_procs: machine,
            max_cpus,
            offered_load: machine.and_then(|p| offered_load(&w.jobs, p)),
            interarrival_s: Quantiles::of(gaps),
            runtime_s: Quantiles::of(valid.iter().map(|j| j.runtime.0 as f64 / 1000.0).collect()),
            cpus: Quantiles::of(valid.iter().map(|j| j.procs as f64).collect()),
            jobs_with_estimate: with_est.len(),
            estimate_accuracy_mean: Quantiles::of(acc).mean,
            overrunning_share: share(
                with_est
                    .iter()
                    .filter(|j| j.requested.is_some_and(|r| j.runtime > r))
                    .count(),
                with_est.len(),
            ),
            serial_share: share(valid.len() - parallel.len(), valid.len()),
            power_of_two_share: share(
                parallel
                    .iter()
                    .filter(|j| (j.procs as u64).is_power_of_two())
                    .count(),
                parallel.len(),
            ),
            size_classes,
            runtime_classes,
            elastic_jobs: valid.iter().filter(|j| j.elastic.is_some()).count(),
            gpu_jobs: valid.iter().filter(|j| j.gpus > 0).count(),
        }
    }

    /// The human-readable report.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let q = |x: &Quantiles, unit: &str| {
            format!(
                "mean {:.1}{unit}  p10 {:.1}  median {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
                x.mean, x.p10, x.median, x.p90, x.p99, x.max
            )
        };
        let _ = writeln!(
            s,
            "jobs              {} ({} unusable: unknown run time or no CPUs)",
            self.jobs, self.unusable
        );
        let _ = writeln!(s, "users             {}", self.users);
        let _ = writeln!(
            s,
            "span              {:.2} days (submits {:.0} s to {:.0} s)",
            self.span_days, self.first_submit_s, self.last_submit_s
        );
        let _ = writeln!(
            s,
            "machine           {}",
            self.machine_procs
                .map_or("unknown (give --procs)".to_string(), |p| format!(
                    "{p} CPUs"
                ))
        );
        let _ = writeln!(s, "largest job       {} CPUs", self.max_cpus);
        let _ = writeln!(
            s,
            "offered load      {}",
            self.offered_load
                .map_or("unknown".to_string(), |l| format!("{:.3}", l))
        );
        let _ = writeln!(s, "inter-arrival     {}", q(&self.interarrival_s, " s"));
        let _ = writeln!(s, "run time          {}", q(&self.runtime_s, " s"));
        let _ = writeln!(s, "CPUs              {}", q(&self.cpus, ""));
        let _ = writeln!(
            s,
            "serial jobs       {:.1} %; parallel jobs of a power-of-two size {:.1} %",
            self.serial_share * 100.0,
            self.power_of_two_share * 100.0
        );
        let _ = writeln!(
            s,
            "estimates         {} jobs with a requested time; mean accuracy (run / requested) {:.3}; {:.1} % ran past it",
            self.jobs_with_estimate,
            self.estimate_accuracy_mean,
            self.overrunning_share * 100.0
        );
        if self.elastic_jobs > 0 || self.gpu_jobs > 0 {
            let _ = writeln!(
                s,
                "elastic / GPU     {} elastic jobs, {} jobs with GPUs{}",
                self.elastic_jobs,
                self.gpu_jobs,
                if self.gpu_jobs > 0 {
                    " (simulate them on nodes with GPUs: --nodes N --cpus-per-node C --gpus-per-node G, or Gres=gpu:G in a slurm.conf)"
                } else {
                    ""
                }
            );
        }
        let bar = |n: usize| {
            let w = if self.jobs > 0 {
                (n * 40).div_ceil(self.jobs)
            } else {
                0
            };
            "#".repeat(w)
        };
        let _ = writeln!(s, "\njobs by size (CPUs):");
        for (label, n) in &self.size_classes {
            let _ = writeln!(s, "  {label:>11} {n:>8}  {}", bar(*n));
        }
        let _ = writeln!(s, "\njobs by run time:");
        for (label, n) in &self.runtime_classes {
            let _ = writeln!(s, "  {label:>11} {n:>8}  {}", bar(*n));
        }
        s
    }
}
