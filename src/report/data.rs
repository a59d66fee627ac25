//! The data behind each chart of a comparison report, computed from simulation results (pure;
//! tests check these numbers, not the pixels). Each function takes the runs as
//! (policy label, result) pairs in the order they are to be shown.

use super::Series;
use crate::metrics::{BSLD_TAU_SECS, JobResult, SimResult, bounded_slowdown};

/// Wait-time CDF per run: x = log10(wait in seconds + 1), y = fraction of jobs with a wait ≤ x.
/// At most ~300 points per run.
pub fn wait_cdf(runs: &[(String, &SimResult)]) -> Vec<Series> {
    runs.iter()
        .map(|(name, r)| Series {
            name: name.clone(),
            points: super::cdf_points(
                r.jobs
                    .iter()
                    .map(|j| (j.wait().as_secs_f64() + 1.0).log10())
                    .collect(),
                300,
            ),
        })
        .collect()
}

/// Mean bounded slowdown of some jobs (0 for none).
fn mean_bsld<'a>(jobs: impl Iterator<Item = &'a JobResult>) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for j in jobs {
        sum += bounded_slowdown(j, BSLD_TAU_SECS);
        n += 1;
    }
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// Job-size classes: 1, 2, 3-4, 5-8, ... up to the largest job of any run.
pub fn size_classes(runs: &[(String, &SimResult)]) -> Vec<(String, u32, u32)> {
    let max = runs
        .iter()
        .flat_map(|(_, r)| r.jobs.iter().map(|j| j.spec.cpus))
        .max()
        .unwrap_or(1);
    let mut out = Vec::new();
    let mut b = 1u32;
    loop {
        let a = if b <= 2 { b } else { b / 2 + 1 };
        out.push((
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            },
            a,
            b,
        ));
        if b >= max {
            break;
        }
        b = b.saturating_mul(2);
    }
    out
}

/// Run-time classes (label, from s, to s).
pub const RUNTIME_CLASSES: [(&str, f64, f64); 5] = [
    ("< 10 min", 0.0, 600.0),
    ("10 min-1 h", 600.0, 3600.0),
    ("1-4 h", 3600.0, 14_400.0),
    ("4-12 h", 14_400.0, 43_200.0),
    ("> 12 h", 43_200.0, f64::INFINITY),
];

/// Mean bounded slowdown per class, per run: (class labels, per run (name, values)); a class
/// without jobs is 0.
pub fn bsld_by_class(
    runs: &[(String, &SimResult)],
    classes: &[(String, f64, f64)],
    key: fn(&JobResult) -> f64,
) -> (Vec<String>, Vec<(String, Vec<f64>)>) {
    let labels = classes.iter().map(|c| c.0.clone()).collect();
    let per = runs
        .iter()
        .map(|(name, r)| {
            let vals = classes
                .iter()
                .map(|(_, lo, hi)| {
                    mean_bsld(r.jobs.iter().filter(|j| (*lo..*hi).contains(&key(j))))
                })
                .collect();
            (name.clone(), vals)
        })
        .collect();
    (labels, per)
}

/// Mean bounded slowdown by job-size class.
pub fn bsld_by_size(runs: &[(String, &SimResult)]) -> (Vec<String>, Vec<(String, Vec<f64>)>) {
    let classes: Vec<(String, f64, f64)> = size_classes(runs)
        .into_iter()
        .map(|(l, a, b)| (l, f64::from(a), f64::from(b) + 0.5))
        .collect();
    bsld_by_class(runs, &classes, |j| f64::from(j.spec.cpus))
}

/// Mean bounded slowdown by run-time class (the trace's run time).
pub fn bsld_by_runtime(runs: &[(String, &SimResult)]) -> (Vec<String>, Vec<(String, Vec<f64>)>) {
    let classes: Vec<(String, f64, f64)> = RUNTIME_CLASSES
        .iter()
        .map(|(l, a, b)| (l.to_string(), *a, *b))
        .collect();
    bsld_by_class(runs, &classes, |j| j.runtime.as_secs_f64())
}

/// Utilization (busy CPUs / P) and queue length (jobs waiting) over time, averaged over `bins`
/// equal bins from the first submission to the last end: (utilization series, queue series),
/// x in days from the first submission.
pub fn over_time(runs: &[(String, &SimResult)], bins: usize) -> (Vec<Series>, Vec<Series>) {
    let t0 = runs
        .iter()
        .flat_map(|(_, r)| r.jobs.iter().map(|j| j.spec.submit.0))
        .min()
        .unwrap_or(0);
    let t1 = runs
        .iter()
        .flat_map(|(_, r)| r.jobs.iter().map(|j| j.finish.0))
        .max()
        .unwrap_or(1)
        .max(t0 + 1);
    let width = (t1 - t0) as f64 / bins as f64;
    let mut util = Vec::new();
    let mut queue = Vec::new();
    for (name, r) in runs {
        let mut busy = vec![0f64; bins];
        let mut wait = vec![0f64; bins];
        let add = |v: &mut Vec<f64>, from: i64, to: i64, weight: f64| {
            if to <= from {
                return;
            }
            let (a, b) = ((from - t0) as f64, (to - t0) as f64);
            let first = ((a / width) as usize).min(bins - 1);
            let last = ((b / width) as usize).min(bins - 1);
            for (k, slot) in v.iter_mut().enumerate().take(last + 1).skip(first) {
                let (ws, we) = (k as f64 * width, (k + 1) as f64 * width);
                let o = b.min(we) - a.max(ws);
                if o > 0.0 {
                    *slot += o * weight;
                }
            }
        };
        for j in &r.jobs {
            add(&mut busy, j.start.0, j.finish.0, j.mean_cpus());
            add(&mut wait, j.spec.submit.0, j.start.0, 1.0);
        }
        let day = 86_400_000.0;
        let x = |k: usize| (k as f64 + 0.5) * width / day;
        util.push(Series {
            name: name.clone(),
            points: busy
                .iter()
                .enumerate()
                .map(|(k, b)| (x(k), b / width / r.procs.max(1) as f64))
                .collect(),
        });
        queue.push(Series {
            name: name.clone(),
            points: wait
                .iter()
                .enumerate()
                .map(|(k, w)| (x(k), w / width))
                .collect(),
        });
    }
    (util, queue)
}

/// One box of a Gantt chart: a job on processors `[lo, hi)` from `start` to `end` (seconds
/// from the window's start), with its user and whether it was backfilled.
#[derive(Clone, Debug, PartialEq)]
pub struct GanttBox {
    pub job: u64,
    pub start: f64,
    pub end: f64,
    pub lo: u32,
    pub hi: u32,
    pub user: u32,
    pub backfilled: bool,
}

/// Jobs that started before a job ahead of them in the queue did: they were backfilled (or
/// jumped ahead by priority). `queue` lists the job ids in queue order (submit time, then
/// arrival: `SimJobs::jobs`). Indexed like `r.jobs`.
pub fn backfilled(r: &SimResult, queue: &[crate::ids::JobId]) -> Vec<bool> {
    let pos: crate::ids::FastMap<crate::ids::JobId, usize> =
        queue.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut order: Vec<usize> = (0..r.jobs.len()).collect();
    order.sort_by_key(|&i| pos.get(&r.jobs[i].spec.id).copied().unwrap_or(usize::MAX));
    let mut out = vec![false; r.jobs.len()];
    let mut max_start = i64::MIN;
    for i in order {
        let j = &r.jobs[i];
        out[i] = max_start > j.start.0;
        max_start = max_start.max(j.start.0);
    }
    out
}

/// The most processors a Gantt chart lays out (one time slot per processor).
pub const GANTT_MAX_PROCS: u32 = 65_536;

/// Gantt boxes of the jobs running in `[from, to)` (ms): processors are numbered by node and
/// CPU, and each job gets, in start order, the lowest-numbered free processors of its nodes
/// (one box per contiguous run). For an elastic job the allocation it ended with is used; a
/// preempted job shows its last run only. Empty for machines over [`GANTT_MAX_PROCS`].
pub fn gantt(
    r: &SimResult,
    cluster: &crate::model::Cluster,
    queue: &[crate::ids::JobId],
    from: i64,
    to: i64,
) -> Vec<GanttBox> {
    let offsets: Vec<u32> = cluster
        .nodes
        .iter()
        .scan(0u32, |acc, n| {
            let o = *acc;
            *acc += n.cpus;
            Some(o)
        })
        .collect();
    let total: u32 = cluster.nodes.iter().map(|n| n.cpus).sum();
    if total > GANTT_MAX_PROCS {
        return Vec::new();
    }
    let bf = backfilled(r, queue);
    let mut order: Vec<usize> = (0..r.jobs.len())
        .filter(|&i| r.jobs[i].start.0 < to && r.jobs[i].finish.0 > from.min(r.jobs[i].start.0))
        .filter(|&i| r.jobs[i].finish.0 > r.jobs[i].start.0)
        .collect();
    order.sort_by_key(|&i| (r.jobs[i].start, r.jobs[i].spec.id));
    // Busy-until per processor; a job takes processors free at its start.
    let mut busy_until = vec![i64::MIN; total as usize];
    let mut out = Vec::new();
    for i in order {
        let j = &r.jobs[i];
        let mut procs: Vec<u32> = Vec::new();
        for s in j.alloc.iter() {
            let base = offsets.get(s.node as usize).copied().unwrap_or(0);
            let cap = cluster.nodes.get(s.node as usize).map_or(0, |n| n.cpus);
            let mut got = 0;
            for c in 0..cap {
                if got == s.cpus {
                    break;
                }
                let p = base + c;
                if busy_until[p as usize] <= j.start.0 {
                    busy_until[p as usize] = j.finish.0;
                    procs.push(p);
                    got += 1;
                }
            }
        }
        if j.finish.0 <= from {
            continue;
        }
        procs.sort_unstable();
        let mut k = 0;
        while k < procs.len() {
            let lo = procs[k];
            let mut hi = lo + 1;
            while k + 1 < procs.len() && procs[k + 1] == hi {
                hi += 1;
                k += 1;
            }
            out.push(GanttBox {
                job: j.spec.id.0,
                start: (j.start.0.max(from) - from) as f64 / 1000.0,
                end: (j.finish.0.min(to) - from) as f64 / 1000.0,
                lo,
                hi,
                user: j.spec.user.0,
                backfilled: bf[i],
            });
            k += 1;
        }
    }
    out
}

/// Per-user fairness: mean bounded slowdown of the `top` users by CPU-time (over all runs):
/// (user names, per run (name, values)).
pub fn user_bsld(
    runs: &[(String, &SimResult)],
    names: &crate::ids::Names,
    top: usize,
) -> (Vec<String>, Vec<(String, Vec<f64>)>) {
    let mut total: std::collections::BTreeMap<u32, f64> = std::collections::BTreeMap::new();
    for (_, r) in runs {
        for j in &r.jobs {
            *total.entry(j.spec.user.0).or_default() += j.cpu_ms as f64;
        }
    }
    let mut users: Vec<(u32, f64)> = total.into_iter().collect();
    users.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    users.truncate(top);
    let labels = users
        .iter()
        .map(|(u, _)| {
            let n = names.get(crate::ids::Sym(*u));
            if n.is_empty() {
                "(none)".to_string()
            } else {
                n.to_string()
            }
        })
        .collect();
    let per = runs
        .iter()
        .map(|(name, r)| {
            let vals = users
                .iter()
                .map(|(u, _)| mean_bsld(r.jobs.iter().filter(|j| j.spec.user.0 == *u)))
                .collect();
            (name.clone(), vals)
        })
        .collect();
    (labels, per)
}
