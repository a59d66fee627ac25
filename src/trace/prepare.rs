//! Where trace records become simulated jobs: the reading rules of semantics §2 and §3, one job
//! at a time ([`JobPreparer`]), for a whole [`Workload`] ([`Workload::prepare`]) or for jobs
//! streamed into a simulation as they are read (`sim::stream`).

use super::{PrepareOptions, SimJobs, SkipReason, TraceJob, Workload};
use crate::ids::{FastMap, Names};
use crate::model::{Cluster, JobSpec, JobTruth, Request};
use crate::sched::admission::can_ever_run;
use crate::sched::placement::Placement;
use crate::time::Dur;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Turns trace records into jobs for a run on one cluster (the same for every job): skips the
/// jobs that cannot run (counted by reason, with an example for the reasons that depend on the
/// machine), derives estimates and resolves partitions.
pub struct JobPreparer {
    opts: PrepareOptions,
    /// Whether partitions are matched by name (CSV) rather than all jobs going to the default.
    partitions_named: bool,
    pub skipped: BTreeMap<SkipReason, u64>,
    pub skip_examples: BTreeMap<SkipReason, String>,
    /// Many jobs share a shape: each (partition, request, time limit) is decided once.
    runnable: FastMap<(u32, Request, Option<Dur>), bool>,
}

impl JobPreparer {
    pub fn new(opts: &PrepareOptions, partitions_named: bool) -> JobPreparer {
        JobPreparer {
            opts: *opts,
            partitions_named,
            skipped: BTreeMap::new(),
            skip_examples: BTreeMap::new(),
            runnable: FastMap::default(),
        }
    }

    /// Counts a job left out for `reason`.
    pub fn skip(&mut self, reason: SkipReason, n: u64) {
        if n > 0 {
            *self.skipped.entry(reason).or_insert(0) += n;
        }
    }

    /// The job `j` (its names in `names`) as simulated on `cluster` with `placement`, or `None`
    /// (counted) when it cannot run there.
    pub fn prepare(
        &mut self,
        cluster: &Cluster,
        placement: &dyn Placement,
        j: &TraceJob,
        names: &Names,
    ) -> Option<(Arc<JobSpec>, JobTruth)> {
        let total = cluster.total_cpus();
        let partition = if self.partitions_named && !names.get(j.partition).is_empty() {
            cluster.partition_by_name(names.get(j.partition))
        } else {
            Some(cluster.default_partition)
        };
        let reason = if j.runtime.0 < 0 {
            Some(SkipReason::NegativeRuntime)
        } else if j.procs <= 0 {
            Some(SkipReason::NoProcessors)
        } else if j.procs as u64 > total {
            Some(SkipReason::TooManyProcessors)
        } else if partition.is_none() {
            Some(SkipReason::UnknownPartition)
        } else {
            None
        };
        if let Some(r) = reason {
            self.skip(r, 1);
            if r == SkipReason::TooManyProcessors {
                self.skip_examples.entry(r).or_insert_with(|| {
                    format!("job {}: {} CPUs, the machine has {total}", j.id.0, j.procs)
                });
            }
            return None;
        }
        let opts = &self.opts;
        let spec = JobSpec {
            id: j.id,
            submit: j.submit,
            cpus: j.procs as u32,
            estimate: opts.estimate.estimate(j.requested, j.runtime),
            requested_time: j.requested,
            time_limit: if opts.kill_at_limit {
                j.requested
            } else {
                None
            },
            priority: j.priority,
            user: j.user,
            account: j.group,
            queue: j.queue,
            partition: partition.unwrap_or(0),
            nodes: j.nodes,
            mem_mb: j.mem_mb,
            gpus: j.gpus,
            switches: opts.switches,
            qos: j.qos,
            nice: j.nice,
            elastic: j.elastic,
        };
        let key = (spec.partition, spec.request(), spec.requested_time);
        let ok = *self
            .runnable
            .entry(key)
            .or_insert_with(|| can_ever_run(cluster, placement, &spec).is_ok());
        if !ok {
            let r = SkipReason::CannotRunInPartition;
            self.skip(r, 1);
            self.skip_examples.entry(r).or_insert_with(|| {
                let why = can_ever_run(cluster, placement, &spec)
                    .err()
                    .unwrap_or_default();
                format!("job {}: {why}", spec.id.0)
            });
            return None;
        }
        let truth = JobTruth {
            speedup: j.speedup.unwrap_or(opts.speedup),
            ..JobTruth::new(j.runtime)
        };
        Some((Arc::new(spec), truth))
    }
}

impl Workload {
    /// Applies the reading rules of semantics §2 and §3 for a run on `cluster`: skips jobs
    /// that cannot run (counted by reason), derives estimates, resolves partitions, and
    /// stable-sorts by submit time.
    pub fn prepare(
        &self,
        cluster: &Cluster,
        placement: &dyn Placement,
        opts: &PrepareOptions,
    ) -> SimJobs {
        let mut p = JobPreparer::new(opts, self.partitions_named);
        p.skip(SkipReason::MalformedLine, self.malformed_lines.len() as u64);
        let mut jobs = Vec::with_capacity(self.jobs.len());
        jobs.extend(
            self.jobs
                .iter()
                .filter_map(|j| p.prepare(cluster, placement, j, &self.names)),
        );
        // Queue order: submit time, then position in the file (a stable sort; most traces are
        // in order already, and a stable sort would still take a buffer of half the jobs).
        if !jobs.is_sorted_by_key(|(s, _)| s.submit) {
            jobs.sort_by_key(|(s, _)| s.submit);
        }
        SimJobs {
            cluster: cluster.clone(),
            jobs,
            skipped: p.skipped,
            skip_examples: p.skip_examples,
        }
    }
}
