//! `conservative` — conservative backfilling: every queued job holds a reservation.
//!
//! Each pass builds the availability profile from now on: the processors idle now, plus each
//! running job's processors released at its expected end (max(start + estimate, now)). The
//! queued jobs are taken in order; each gets the earliest τ ≥ now at which the profile has its
//! processors free during [τ, τ + estimate), and those are reserved. Jobs reserved at τ = now
//! that fit in the free processors start now. The plan is rebuilt from scratch every pass, in
//! queue order, as Slurm's backfill re-plans every cycle, so a job's planned start can move later
//! when a job ahead of it moves earlier (`cases/early-end` of the semantics). A zero-length
//! estimate holds its processors at the instant τ only: a later job whose interval [s, s + e)
//! has s < τ < s + e counts them as taken; one starting exactly at τ does not.
//!
//! On a cluster of nodes (or with memory and GPUs) the profile holds each node's free resources
//! per step, and "free during [τ, τ + estimate)" means the placement strategy finds nodes on the
//! per-node minimum over that window; a job reserved at now starts if that allocation fits the
//! resources actually free now.
//!
//! The pass stops planning once no later job could start now (no processor left free now, or
//! fewer than the smallest remaining request); reservations are reported for the planned
//! prefix. Those later jobs' reservations would not change any start, so the schedule is the
//! same as with a full plan. When the plan is wanted for showing (live mode's expected starts)
//! and no elastic job is around, every job is planned; the elastic layer decides growth on the
//! planned prefix, so with elastic jobs the prefix is what is reported.

use super::common::order::{ORDER_PARAM, params_with_multifactor};
use super::common::{NodeProfile, Order, Profile, drop_limited, fits, take};
use super::{ParamInfo, PolicyError, PolicyInfo};
use crate::model::{Avail, Slice};
use crate::sched::limits::PassUsage;
use crate::sched::{Decisions, Policy, View};

pub const INFO: PolicyInfo = PolicyInfo {
    name: "conservative",
    summary: "Conservative backfilling: every queued job gets a reservation in order; a job starts now only if its reservation is now.",
    source: include_str!("conservative.rs"),
    params: params_with_multifactor!(ORDER_PARAM, PROFILE_PARAM; ),
    build,
};

const PROFILE_PARAM: ParamInfo = ParamInfo {
    name: "profile",
    default: "auto",
    help: "`auto`: a scalar processor profile on a one-node CPU-only cluster (the contract's model), per-node otherwise; `nodes`: always per node (for cross-checks)",
};

fn build(params: &mut super::Params) -> Result<Box<dyn Policy>, PolicyError> {
    let order = Order::from_params(params)?;
    let force_nodes = match params.take("profile").as_deref() {
        None | Some("auto") => false,
        Some("nodes") => true,
        Some(other) => {
            return Err(params.bad(
                "profile",
                format!("unknown profile '{other}' (expected auto or nodes)"),
            ));
        }
    };
    Ok(Box::new(Conservative {
        order,
        force_nodes,
        ..Conservative::default()
    }))
}

#[derive(Default)]
pub struct Conservative {
    order: Order,
    force_nodes: bool,
    buf: Vec<u32>,
    suffix_min: Vec<u32>,
    profile: Profile,
    nodes: NodeProfile,
    avail: Vec<Avail>,
    slices: Vec<Slice>,
}

impl Conservative {
    /// suffix_min[k] = smallest request among the jobs from k on.
    fn suffix_minima(&mut self, view: &View<'_>) {
        self.suffix_min.clear();
        self.suffix_min.resize(self.buf.len() + 1, u32::MAX);
        for k in (0..self.buf.len()).rev() {
            let p = view.pending[self.buf[k] as usize].spec.cpus;
            self.suffix_min[k] = self.suffix_min[k + 1].min(p);
        }
    }

    /// One node of P CPUs: the scalar profile of the contract.
    fn scalar_pass(&mut self, view: &View<'_>, out: &mut Decisions) {
        let now = view.now;
        self.profile
            .rebuild(now, view.free as u32, view.running, &[]);
        let mut free = view.free;
        let mut extra = PassUsage::default();
        for (k, &pos) in self.buf.iter().enumerate() {
            let room_now = self.profile.avail_at(now).min(free as i64);
            if !plan_all(view) && room_now < i64::from(self.suffix_min[k]) {
                break;
            }
            let j = &view.pending[pos as usize].spec;
            if view.limits.blocked(j, &extra).is_some() {
                continue;
            }
            let at = self.profile.earliest(now, j.cpus, j.estimate);
            self.profile.reserve(at, j.cpus, j.estimate);
            if at == now && u64::from(j.cpus) <= free {
                free -= u64::from(j.cpus);
                let one = [Slice::new(0, j.cpus, 0)];
                out.start(pos, j.id, &one);
                view.limits.count(&mut extra, j);
            } else {
                out.reserve(pos, j.id, at);
            }
        }
    }

    /// Any cluster: the per-node profile, with placement deciding what fits.
    fn node_pass(&mut self, view: &View<'_>, out: &mut Decisions) {
        let now = view.now;
        self.nodes.rebuild(now, view.avail, view.running);
        self.avail.clear();
        self.avail.extend_from_slice(view.avail);
        let mut free = view.free;
        let mut extra = PassUsage::default();
        for (k, &pos) in self.buf.iter().enumerate() {
            let room_now = self.nodes.cpus_now().min(free);
            if !plan_all(view) && room_now < u64::from(self.suffix_min[k]) {
                break;
            }
            let pj = &view.pending[pos as usize];
            let j = &pj.spec;
            if view.limits.blocked(j, &extra).is_some() {
                continue;
            }
            let req = j.request_at(now);
            self.slices.clear();
            let Some(at) = self.nodes.earliest(
                now,
                view.cluster,
                view.placement,
                view.nodes_of(pj),
                &req,
                j.estimate,
                &mut self.slices,
            ) else {
                continue;
            };
            self.nodes.reserve(at, j.estimate, &self.slices, req.mem_mb);
            if at == now && fits(&self.avail, &self.slices, req.mem_mb) {
                take(&mut self.avail, &self.slices, req.mem_mb);
                free -= u64::from(req.cpus);
                out.start(pos, j.id, &self.slices);
                view.limits.count(&mut extra, j);
            } else {
                out.reserve(pos, j.id, at);
            }
        }
    }
}

/// Plan every waiting job, not just the prefix that decides this pass's starts: when the plan
/// is shown and no elastic job's growth depends on it (see the module header).
fn plan_all(view: &View<'_>) -> bool {
    view.want_plan && view.elastic_jobs == 0
}

impl Policy for Conservative {
    fn usage_half_life(&self) -> Option<crate::time::Dur> {
        self.order.half_life()
    }
    fn usage_billing(&self) -> crate::sched::usage::Billing {
        self.order.billing()
    }
    fn schedule(&mut self, view: &View<'_>, out: &mut Decisions) {
        self.order.arrange(view, &mut self.buf);
        drop_limited(view, &mut self.buf);
        self.suffix_minima(view);
        if view.cluster.is_single_cpu_pool() && !self.force_nodes {
            self.scalar_pass(view, out);
        } else {
            self.node_pass(view, out);
        }
    }
}
