//! Prometheus metrics in the OpenMetrics text format, with the names of Slurm 25.11's own
//! exporter (the `metrics/openmetrics` plugin of slurmctld), so dashboards written for Slurm
//! read mini-slurm too: `/metrics/jobs` (`slurm_jobs_pending`, `slurm_jobs_cpus_alloc`, ...),
//! `/metrics/nodes` (`slurm_node_cpus_alloc{node}`, `slurm_nodes_idle`, ...),
//! `/metrics/partitions` (`slurm_partition_jobs_pending{partition}`, ...),
//! `/metrics/jobs-users-accts` (`slurm_user_jobs_pending{username}`, ...) and
//! `/metrics/scheduler` (`slurm_schedule_cycle_last`, `slurm_backfilled_jobs`, ...), each as
//! Slurm serves it; `/metrics` serves them all at once (Slurm lists the paths there), plus the
//! scheduler's own `mini_slurm_*` metrics: the decision-round duration histogram, jobs
//! started by backfill, the queue depth and the planned jobs. Like Slurm's, every `slurm_*`
//! metric is a gauge, and times of scheduling cycles are microseconds.
//!
//! Job counts per state come from the database (every job it holds, as `stats` counts them);
//! what is allocated, per node and in all, from the scheduler's latest snapshot. The text is
//! written by `prometheus-client` (the Prometheus project's own crate: label values escaped,
//! histogram buckets cumulative, the closing `# EOF`); series are written in a fixed order.

use super::routes::App;
use super::server::Response;
use crate::live::now_ms;
use crate::live::publish::{Counters, NodeUse, PASS_BUCKETS_S, Snapshot};
use crate::live::store::{Db, JobRow};
use crate::model::JobState;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Gauges with one label, written in the order given.
#[derive(Debug)]
struct Series {
    key: &'static str,
    values: Vec<(String, i64)>,
}

impl EncodeMetric for Series {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (label, v) in &self.values {
            let labels = [(self.key, label.as_str())];
            encoder.encode_family(&labels)?.encode_gauge(v)?;
        }
        Ok(())
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

/// The decision-round histogram, from the counters' buckets.
#[derive(Debug)]
struct PassHistogram(Counters);

impl EncodeMetric for PassHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let c = &self.0;
        let buckets: Vec<(f64, u64)> = PASS_BUCKETS_S
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(c.pass_buckets.iter().copied())
            .collect();
        let sum = c.pass_total_us as f64 / 1e6;
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            sum, c.passes, &buckets, None,
        )
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// A counter's value (OpenMetrics adds `_total` to its name).
#[derive(Debug)]
struct Total(u64);

impl EncodeMetric for Total {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&self.0, None)
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

struct Out(Registry);

impl Out {
    fn gauge(&mut self, name: &str, help: &str, v: u64) {
        self.0
            .register(name, help, ConstGauge::new(v.min(i64::MAX as u64) as i64));
    }
    fn series(&mut self, name: &str, help: &str, key: &'static str, values: Vec<(String, i64)>) {
        self.0.register(name, help, Series { key, values });
    }
}

/// What the metrics are computed from.
struct Facts<'a> {
    app: &'a App,
    snap: &'a Snapshot,
    states: Vec<(JobState, u64)>,
    /// Jobs not over (pending, configuring, running).
    active: Vec<JobRow>,
}

/// Serves `/metrics{kind}`.
pub fn serve(app: &App, st: &mut Option<Db>, kind: &str) -> Response {
    let kinds: &[&str] = match kind.trim_end_matches('/') {
        "" => &[
            "jobs",
            "nodes",
            "partitions",
            "jobs-users-accts",
            "scheduler",
        ],
        "/jobs" => &["jobs"],
        "/nodes" => &["nodes"],
        "/partitions" => &["partitions"],
        "/jobs-users-accts" => &["jobs-users-accts"],
        "/scheduler" => &["scheduler"],
        _ => return Response::text(404, format!("no such metrics: /metrics{kind}")),
    };
    let db = match app.db(st) {
        Ok(db) => db,
        Err(e) => return e,
    };
    let (states, active) = match (db.state_counts(), db.jobs_since(i64::MAX, 0)) {
        (Ok(s), Ok(a)) => (s, a),
        (Err(e), _) | (_, Err(e)) => return Response::text(503, format!("database: {e}")),
    };
    let snap = app.published.latest();
    let f = Facts {
        app,
        snap: &snap,
        states,
        active,
    };
    let mut out = Out(Registry::default());
    for k in kinds {
        match *k {
            "jobs" => jobs(&mut out, &f),
            "nodes" => nodes(&mut out, &f),
            "partitions" => partitions(&mut out, &f),
            "jobs-users-accts" => users(&mut out, &f),
            _ => scheduler(&mut out, &f),
        }
    }
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &out.0) {
        Ok(()) => Response::new(200, CONTENT_TYPE, text),
        Err(_) => Response::text(500, "metrics could not be encoded"),
    }
}

/// Slurm's state metrics (suffix of `slurm_jobs_`) of the states live mode has.
const STATE_METRICS: [(JobState, &str, &str); 9] = [
    (JobState::Pending, "pending", "Pending"),
    (JobState::Configuring, "configuring", "Configuring"),
    (JobState::Running, "running", "Running"),
    (JobState::Completed, "completed", "Completed"),
    (JobState::Cancelled, "cancelled", "Cancelled"),
    (JobState::Failed, "failed", "Failed"),
    (JobState::Timeout, "timeout", "Timeout"),
    (JobState::OutOfMemory, "outofmemory", "Out of Memory"),
    (JobState::Preempted, "preempted", "Preempted"),
];

/// CPUs, GPUs, memory (bytes) and nodes held by the running jobs of the snapshot that `keep`
/// selects.
fn held(snap: &Snapshot, keep: impl Fn(&crate::sched::RunningJob) -> bool) -> [u64; 4] {
    let mut t = [0u64; 4];
    for r in snap.running.iter().filter(|r| keep(r)) {
        t[0] += u64::from(r.cpus);
        t[1] += r.alloc.iter().map(|s| u64::from(s.gpus)).sum::<u64>();
        t[2] += r.spec.mem_mb.unwrap_or(0) * r.alloc.len() as u64 * 1024 * 1024;
        t[3] += r.alloc.len() as u64;
    }
    t
}

fn jobs(out: &mut Out, f: &Facts<'_>) {
    let count = |s: JobState| f.states.iter().find(|x| x.0 == s).map_or(0, |x| x.1);
    out.gauge(
        "slurm_jobs",
        "Total number of jobs",
        f.states.iter().map(|s| s.1).sum(),
    );
    for (state, name, words) in STATE_METRICS {
        out.gauge(
            &format!("slurm_jobs_{name}"),
            &format!("Number of jobs in {words} state"),
            count(state),
        );
    }
    let [cpus, gpus, mem, nodes] = held(f.snap, |_| true);
    out.gauge(
        "slurm_jobs_cpus_alloc",
        "Total number of Cpus allocated by jobs",
        cpus,
    );
    out.gauge(
        "slurm_jobs_gpus_alloc",
        "Total number of GPUs allocated by jobs",
        gpus,
    );
    out.gauge(
        "slurm_jobs_memory_alloc",
        "Total memory bytes allocated by jobs",
        mem,
    );
    out.gauge(
        "slurm_jobs_nodes_alloc",
        "Total number of nodes allocated by jobs",
        nodes,
    );
}

fn nodes(out: &mut Out, f: &Facts<'_>) {
    let usage = f.snap.node_use(&f.app.published.fixed().cluster);
    let per = |k: usize, alloc: bool| -> Vec<(String, i64)> {
        usage
            .iter()
            .map(|u| {
                (
                    u.name.clone(),
                    (if alloc { u.alloc[k] } else { u.total[k] }) as i64,
                )
            })
            .collect()
    };
    const MB: i64 = 1024 * 1024;
    let bytes = |v: Vec<(String, i64)>| v.into_iter().map(|(n, x)| (n, x * MB)).collect();
    out.series(
        "slurm_node_cpus",
        "Total number of cpus in the node",
        "node",
        per(0, false),
    );
    out.series(
        "slurm_node_cpus_alloc",
        "Allocated cpus in the node",
        "node",
        per(0, true),
    );
    let idle = usage
        .iter()
        .map(|u| (u.name.clone(), (u.total[0] - u.alloc[0]) as i64))
        .collect();
    out.series(
        "slurm_node_cpus_idle",
        "Idle cpus in the node",
        "node",
        idle,
    );
    out.series(
        "slurm_node_gpus",
        "Total number of GPUs in the node",
        "node",
        per(2, false),
    );
    out.series(
        "slurm_node_gpus_alloc",
        "Number of GPUs currently allocated by jobs on the node",
        "node",
        per(2, true),
    );
    out.series(
        "slurm_node_memory_bytes",
        "Total memory in bytes of the node",
        "node",
        bytes(per(1, false)),
    );
    out.series(
        "slurm_node_memory_alloc_bytes",
        "Bytes allocated to jobs in the node",
        "node",
        bytes(per(1, true)),
    );
    // Slurm's node states: idle (nothing allocated), mixed (some CPUs), allocated (all).
    let state = |u: &NodeUse| match (u.jobs, u.alloc[0] >= u.total[0]) {
        (0, _) => 0,
        (_, false) => 1,
        (_, true) => 2,
    };
    let n = |s| usage.iter().filter(|u| state(u) == s).count() as u64;
    out.gauge("slurm_nodes", "Total number of nodes", usage.len() as u64);
    out.gauge(
        "slurm_nodes_alloc",
        "Number of nodes in Allocated state",
        n(2),
    );
    out.gauge("slurm_nodes_idle", "Number of nodes in Idle state", n(0));
    out.gauge("slurm_nodes_mixed", "Number of nodes in Mixed state", n(1));
}

/// Per key (partition or user): jobs, pending, running, CPUs and GPUs held, memory held
/// (bytes), from the jobs not over.
fn per_key(rows: &[JobRow], key: impl Fn(&JobRow) -> &str) -> BTreeMap<String, [u64; 6]> {
    let mut m: BTreeMap<String, [u64; 6]> = BTreeMap::new();
    for r in rows {
        let e = m.entry(key(r).to_string()).or_default();
        e[0] += 1;
        match r.state {
            JobState::Pending => e[1] += 1,
            JobState::Running => e[2] += 1,
            _ => {}
        }
        if r.state.is_started() {
            e[3] += u64::from(r.alloc_cpus.unwrap_or(r.cpus));
            e[4] += u64::from(r.gpus);
            e[5] += r.mem_mb * 1024 * 1024;
        }
    }
    m
}

/// The per-key job metrics of Slurm's partition and user families (`slurm_{prefix}_jobs*`).
fn key_jobs(out: &mut Out, prefix: &str, label: &'static str, m: &BTreeMap<String, [u64; 6]>) {
    let col = |i: usize| -> Vec<(String, i64)> {
        m.iter().map(|(k, v)| (k.clone(), v[i] as i64)).collect()
    };
    let names = [
        ("jobs", "Number of jobs"),
        ("jobs_pending", "Number of jobs in Pending state"),
        ("jobs_running", "Number of jobs in Running state"),
        ("jobs_cpus_alloc", "Total number of Cpus allocated by jobs"),
        ("jobs_gpus_alloc", "Total number of GPUs allocated by jobs"),
        ("jobs_memory_alloc", "Total memory bytes allocated by jobs"),
    ];
    for (i, (name, help)) in names.iter().enumerate() {
        out.series(&format!("slurm_{prefix}_{name}"), help, label, col(i));
    }
}

fn partitions(out: &mut Out, f: &Facts<'_>) {
    let cluster = &f.app.published.fixed().cluster;
    let mut m = per_key(&f.active, |r| r.partition.as_str());
    for p in &cluster.partitions {
        m.entry(p.name.clone()).or_default();
    }
    out.gauge(
        "slurm_partitions",
        "Total number of partitions",
        cluster.partitions.len() as u64,
    );
    key_jobs(out, "partition", "partition", &m);
    let usage = f.snap.node_use(cluster);
    let sum = |p: &crate::model::Partition, k: usize, alloc: bool| -> i64 {
        p.nodes
            .iter()
            .filter_map(|&i| usage.get(i as usize))
            .map(|u| if alloc { u.alloc[k] } else { u.total[k] } as i64)
            .sum()
    };
    let per = |g: &dyn Fn(&crate::model::Partition) -> i64| -> Vec<(String, i64)> {
        cluster
            .partitions
            .iter()
            .map(|p| (p.name.clone(), g(p)))
            .collect()
    };
    out.series(
        "slurm_partition_cpus",
        "Partition total cpus",
        "partition",
        per(&|p| sum(p, 0, false)),
    );
    out.series(
        "slurm_partition_gpus",
        "Partition total gpus",
        "partition",
        per(&|p| sum(p, 2, false)),
    );
    out.series(
        "slurm_partition_nodes",
        "Partition total nodes",
        "partition",
        per(&|p| p.nodes.len() as i64),
    );
    out.series(
        "slurm_partition_nodes_cpus_alloc",
        "Number of allocated cpus",
        "partition",
        per(&|p| sum(p, 0, true)),
    );
    out.series(
        "slurm_partition_nodes_cpus_idle",
        "Number of idle CPUs on all nodes",
        "partition",
        per(&|p| sum(p, 0, false) - sum(p, 0, true)),
    );
}

fn users(out: &mut Out, f: &Facts<'_>) {
    let m = per_key(&f.active, |r| r.user.as_str());
    key_jobs(out, "user", "username", &m);
}

fn scheduler(out: &mut Out, f: &Facts<'_>) {
    let c = &f.snap.counters;
    out.gauge(
        "slurm_schedule_cycle_cnt",
        "Scheduling cycle count",
        c.passes,
    );
    out.gauge(
        "slurm_schedule_cycle_last",
        "Last scheduling cycle time",
        c.pass_last_us,
    );
    out.gauge(
        "slurm_schedule_cycle_max",
        "Max scheduling cycle time",
        c.pass_max_us,
    );
    out.gauge(
        "slurm_schedule_cycle_tot",
        "Sum of scheduling cycle times",
        c.pass_total_us,
    );
    out.gauge(
        "slurm_sched_mean_cycle",
        "Mean scheduling cycle time",
        c.pass_total_us.checked_div(c.passes).unwrap_or(0),
    );
    let depth = f.snap.pending.len() as u64;
    out.gauge(
        "slurm_schedule_queue_len",
        "Jobs pending queue length",
        depth,
    );
    out.gauge(
        "slurm_backfilled_jobs",
        "Total backfilled jobs since reset",
        c.backfilled,
    );
    out.gauge(
        "slurm_sdiag_jobs_started",
        "Jobs started since reset",
        c.started,
    );
    out.gauge(
        "slurm_sched_stats_timestamp",
        "Statistics snapshot timestamp",
        (now_ms() / 1000).max(0) as u64,
    );
    out.0.register_with_unit(
        "mini_slurm_pass_duration",
        "Duration of a decision round: the policy's pass and its commands applied",
        prometheus_client::registry::Unit::Seconds,
        PassHistogram(c.clone()),
    );
    out.0.register(
        "mini_slurm_jobs_backfilled",
        "Jobs started while a job ahead of them in queue order kept waiting",
        Total(c.backfilled),
    );
    out.0
        .register("mini_slurm_jobs_started", "Jobs started", Total(c.started));
    out.gauge(
        "mini_slurm_queue_depth",
        "Jobs waiting in the scheduler's queue (dependencies and array limits met)",
        depth,
    );
    out.gauge(
        "mini_slurm_jobs_planned",
        "Waiting jobs with an expected start in the policy's plan",
        f.snap.plan.len() as u64,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_and_histograms_encode_in_order() {
        let mut out = Out(Registry::default());
        out.series(
            "slurm_user_jobs_pending",
            "Number of jobs in Pending state",
            "username",
            vec![("ann".into(), 2), ("b\"ob".into(), 1)],
        );
        let mut c = Counters {
            passes: 2,
            pass_total_us: 1500,
            ..Counters::default()
        };
        c.pass_buckets[3] = 2;
        out.0.register_with_unit(
            "mini_slurm_pass_duration",
            "Rounds",
            prometheus_client::registry::Unit::Seconds,
            PassHistogram(c),
        );
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &out.0).unwrap();
        assert!(
            text.contains("slurm_user_jobs_pending{username=\"ann\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("slurm_user_jobs_pending{username=\"b\\\"ob\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("mini_slurm_pass_duration_seconds_count 2\n"),
            "{text}"
        );
        assert!(
            text.contains("mini_slurm_pass_duration_seconds_bucket{le=\"0.0005\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("mini_slurm_pass_duration_seconds_bucket{le=\"0.001\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("mini_slurm_pass_duration_seconds_bucket{le=\"+Inf\"} 2\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
