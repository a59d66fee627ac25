//! Admission: whether a job could ever start — on its partition if the partition were empty
//! and no other job held anything ([`can_ever_run`]), and within its user's and account's
//! limits on its own ([`exceeds_limits_alone`]) — and why not. The engine refuses such jobs at
//! submission, trace preparation skips and counts them, and the live daemon fails them with
//! the reason: one rule, one place.

use super::limits::{LimitState, Limits, PassUsage};
use super::placement::Placement;
use crate::model::{Cluster, JobSpec, PendingReason};

/// The limit a job breaks on its own (not because of what else runs): it could never start.
pub fn exceeds_limits_alone(limits: &Limits, spec: &JobSpec) -> Option<PendingReason> {
    LimitState::new(*limits).blocked(spec, &PassUsage::default())
}

/// Whether `spec` could run on its partition of an empty `cluster`; the reason if not.
pub fn can_ever_run(
    cluster: &Cluster,
    placement: &dyn Placement,
    spec: &JobSpec,
) -> Result<(), String> {
    let Some(part) = cluster.partitions.get(spec.partition as usize) else {
        return Err("no such partition".into());
    };
    let req = spec.request();
    if let (Some(max), Some(limit)) = (part.max_time, spec.requested_time)
        && limit > max
    {
        return Err(format!(
            "time limit {} s exceeds the partition's MaxTime {} s",
            limit.secs_str(),
            max.secs_str()
        ));
    }
    if let (Some(max), Some(n)) = (part.max_nodes, req.nodes)
        && n > max
    {
        return Err(format!("{n} nodes exceed the partition's MaxNodes {max}"));
    }
    if req.nodes.is_some_and(|n| n == 0 || n > req.cpus) {
        return Err(format!(
            "{} CPUs cannot be spread over {} nodes",
            req.cpus,
            req.nodes.unwrap_or(0)
        ));
    }
    let mut slices = Vec::new();
    if !placement.place(
        cluster,
        &cluster.empty_avail(),
        &part.nodes,
        &req,
        &mut slices,
    ) {
        return Err(format!(
            "no set of its nodes holds {} CPUs with {} MB and {} GPUs per node{}",
            req.cpus,
            req.mem_mb,
            req.gpus,
            req.nodes
                .map_or(String::new(), |n| format!(" on {n} nodes"))
        ));
    }
    Ok(())
}
