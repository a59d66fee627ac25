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
        let (mut mem, mut gpus, mut cpus) = (0u64, 0u32, 0u64);
        for &n in &part.nodes {
            if let Some(node) = cluster.nodes.get(n as usize) {
                mem = mem.max(node.mem_mb);
                gpus = gpus.max(node.gpus);
                cpus += u64::from(node.cpus);
            }
        }
        let which = if req.mem_mb > mem {
            format!(
                "memory: it asks {} MB per node, its partition's nodes have {}",
                req.mem_mb,
                if mem == 0 {
                    "none modelled".to_string()
                } else {
                    format!("at most {mem} MB")
                }
            )
        } else if req.gpus > gpus {
            format!(
                "GPUs: it asks {} per node, its partition's nodes have {}",
                req.gpus,
                if gpus == 0 {
                    "none".to_string()
                } else {
                    format!("at most {gpus}")
                }
            )
        } else if u64::from(req.cpus) > cpus {
            format!("CPUs: it asks {}, its partition has {cpus}", req.cpus)
        } else {
            format!(
                "no set of its nodes holds {} CPUs with {} MB and {} GPUs per node{}",
                req.cpus,
                req.mem_mb,
                req.gpus,
                req.nodes
                    .map_or(String::new(), |n| format!(" on {n} nodes"))
            )
        };
        return Err(which);
    }
    Ok(())
}
