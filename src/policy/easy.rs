//! `easy` — EASY backfilling (Mu'alem & Feitelson), one reservation.
//!
//! 1. As fcfs: start head jobs (in the chosen order) while they fit.
//! 2. If jobs remain, the head H does not fit. Sort the running jobs — including those started
//!    in step 1 — by (expected end, start order), where a running job's expected end is
//!    max(start + estimate, now). Starting from `free`, add their processors one job at a time;
//!    the first expected end at which the total reaches H's processors is the *shadow time* S.
//!    `extra` = free + processors of all running jobs whose expected end ≤ S, minus H's
//!    processors. H is reported as reserved at S.
//! 3. Scan the rest of the queue in order. A job J with J.procs ≤ free starts now if
//!    (a) now + J.estimate ≤ S, or else (b) J.procs ≤ extra, in which case extra −= J.procs.
//!    Each start reduces `free`; S and `extra` are not recomputed during the scan.
//!
//! On a cluster of nodes the same rules are read with placement: "fits" means the placement
//! strategy finds nodes; S is the first expected end after which H can be placed on the
//! resources free then; and (b) becomes "H can still be placed at S with J still running on the
//! nodes it gets now". On one node of P CPUs this is exactly the processor-count rule.
//!
//! With `preempt=requeue|suspend|cancel` (needs `order=priority`), a head that does not fit
//! preempts running jobs of strictly lower priority (lowest first, then the most recently
//! started) until it fits; they stop after `grace` seconds; nothing backfills in that pass. With
//! `preempt_by=qos` jobs are ranked by their QOS priority (accounts file `qos` lines) instead,
//! under any `order`.

use super::common::order::{ORDER_PARAM, params_with_multifactor};
use super::common::preempt::{GRACE_PARAM, PREEMPT_BY_PARAM, PREEMPT_PARAM, PreemptBy};
use super::common::{Order, Preemption, drop_limited, give, take};
use super::{PolicyError, PolicyInfo};
use crate::model::{Avail, Slice};
use crate::sched::limits::PassUsage;
use crate::sched::{Decisions, Policy, View};
use crate::time::Time;

pub const INFO: PolicyInfo = PolicyInfo {
    name: "easy",
    summary: "EASY backfilling: the queue head gets a reservation at its shadow time; later jobs may start now if they do not delay it.",
    source: include_str!("easy.rs"),
    params: params_with_multifactor!(ORDER_PARAM; PREEMPT_PARAM, GRACE_PARAM, PREEMPT_BY_PARAM),
    build,
};

fn build(params: &mut super::Params) -> Result<Box<dyn Policy>, PolicyError> {
    let order = Order::from_params(params)?;
    let preemption = Preemption::from_params(params)?;
    // Preemption follows the job's priority; over another order a preempted job could come
    // back ahead of the job it made room for, and the two would take turns forever.
    // Preemption by QOS is safe under any order: QOS ranks never change.
    if preemption.is_some_and(|p| p.by == PreemptBy::Priority) && order != Order::Priority {
        return Err(params.bad("preempt", "needs order=priority (or preempt_by=qos)"));
    }
    Ok(Box::new(Easy {
        order,
        preemption,
        ..Easy::default()
    }))
}

/// Start order given to jobs started earlier in the same pass: after every running job.
const IN_PASS: u64 = u64::MAX / 2;

/// A future release of resources: (expected end, start order, source). The source is a running
/// job's index, or (for jobs started earlier in this pass) `IN_PASS_SRC + k` for the k-th
/// range in `in_pass`.
type Release = (Time, u64, usize);
const IN_PASS_SRC: usize = usize::MAX / 2;

#[derive(Default)]
pub struct Easy {
    order: Order,
    preemption: Option<Preemption>,
    buf: Vec<u32>,
    avail: Vec<Avail>,
    shadow: Vec<Avail>,
    slices: Vec<Slice>,
    probe: Vec<Slice>,
    releases: Vec<Release>,
    /// Jobs started in this pass: (slices range in `in_pass_slices`, CPUs, memory per node).
    in_pass: Vec<(usize, usize, u32, u64)>,
    in_pass_slices: Vec<Slice>,
}

/// The slices, CPUs and memory per node a release gives back.
fn released<'v>(
    in_pass: &[(usize, usize, u32, u64)],
    in_pass_slices: &'v [Slice],
    view: &'v View<'_>,
    src: usize,
) -> (&'v [Slice], u32, u64) {
    if src >= IN_PASS_SRC {
        let (from, len, cpus, mem) = in_pass[src - IN_PASS_SRC];
        (&in_pass_slices[from..from + len], cpus, mem)
    } else {
        let r = &view.running[src];
        (&r.alloc, r.cpus, r.spec.mem_mb.unwrap_or(0))
    }
}

impl Easy {
    /// Step 2: the shadow time of the head (the job at `self.buf[k]`) — the first expected end
    /// after which it can be placed — leaving in `self.shadow` the resources free at it (every
    /// job ending by then released). `free` is the free CPU count after step 1.
    fn shadow_time(&mut self, view: &View<'_>, free: u64, k: usize) -> Option<Time> {
        let now = view.now;
        let head = &view.pending[self.buf[k] as usize];
        let hreq = head.spec.request_at(view.now);
        let hnodes = view.nodes_of(head);
        self.releases.extend(
            view.running
                .iter()
                .enumerate()
                .map(|(i, r)| (r.expected_end(now), r.start_seq, i)),
        );
        self.releases.sort_unstable_by_key(|r| (r.0, r.1));
        self.shadow.clear();
        self.shadow.extend_from_slice(&self.avail);
        let mut total = free;
        let mut i = 0;
        while i < self.releases.len() {
            let (end, _, src) = self.releases[i];
            let (slices, cpus, mem) = released(&self.in_pass, &self.in_pass_slices, view, src);
            give(&mut self.shadow, slices, mem);
            total += u64::from(cpus);
            i += 1;
            self.probe.clear();
            if total >= u64::from(hreq.cpus)
                && view
                    .placement
                    .place(view.cluster, &self.shadow, hnodes, &hreq, &mut self.probe)
            {
                while let Some(&(e, _, src)) = self.releases.get(i) {
                    if e > end {
                        break;
                    }
                    let (slices, _, mem) = released(&self.in_pass, &self.in_pass_slices, view, src);
                    give(&mut self.shadow, slices, mem);
                    i += 1;
                }
                return Some(end);
            }
        }
        None
    }
}

impl Policy for Easy {
    fn usage_half_life(&self) -> Option<crate::time::Dur> {
        self.order.half_life()
    }
    fn usage_billing(&self) -> crate::sched::usage::Billing {
        self.order.billing()
    }

    fn schedule(&mut self, view: &View<'_>, out: &mut Decisions) {
        self.order.arrange(view, &mut self.buf);
        drop_limited(view, &mut self.buf);
        let mut extra = PassUsage::default();
        let now = view.now;
        let (cluster, placement) = (view.cluster, view.placement);
        self.avail.clear();
        self.avail.extend_from_slice(view.avail);
        self.releases.clear();
        self.in_pass.clear();
        self.in_pass_slices.clear();
        let mut free = view.free;
        // Step 1: start head jobs while they fit.
        let mut k = 0;
        while let Some(&pos) = self.buf.get(k) {
            let j = &view.pending[pos as usize];
            if view.limits.blocked(&j.spec, &extra).is_some() {
                // Held back by a job of the same user or account started just before.
                self.buf.remove(k);
                continue;
            }
            let req = j.spec.request_at(view.now);
            self.slices.clear();
            if u64::from(req.cpus) > free
                || !placement.place(
                    cluster,
                    &self.avail,
                    view.nodes_of(j),
                    &req,
                    &mut self.slices,
                )
            {
                break;
            }
            take(&mut self.avail, &self.slices, req.mem_mb);
            free -= u64::from(req.cpus);
            out.start(pos, j.spec.id, &self.slices);
            view.limits.count(&mut extra, &j.spec);
            self.releases.push((
                now + j.spec.estimate,
                IN_PASS + k as u64,
                IN_PASS_SRC + self.in_pass.len(),
            ));
            self.in_pass.push((
                self.in_pass_slices.len(),
                self.slices.len(),
                req.cpus,
                req.mem_mb,
            ));
            self.in_pass_slices.extend_from_slice(&self.slices);
            k += 1;
        }
        let Some(&head_pos) = self.buf.get(k) else {
            return;
        };
        let head = &view.pending[head_pos as usize];
        out.blocked(head_pos, head.spec.id);
        // Preemption: the head takes the place of lower-priority jobs; nothing backfills into
        // resources that are about to be its.
        if let Some(p) = &self.preemption
            && p.make_room(view, head, &self.avail, out)
        {
            return;
        }
        let hreq = head.spec.request_at(view.now);
        let hnodes = view.nodes_of(head);
        // Step 2 is computed when first needed: when a later job fits now, or when the plan is
        // wanted. Nothing else depends on it.
        let mut shadow = None;
        if view.want_plan {
            shadow = self.shadow_time(view, free, k);
            if let Some(t) = shadow {
                out.reserve(head_pos, head.spec.id, t);
            }
        }
        // Step 3: backfill. A job that ends by the shadow time starts if it fits now; one that
        // runs past it must also leave the head placeable at the shadow time (EASY's `extra`).
        for idx in k + 1..self.buf.len() {
            if free == 0 {
                break;
            }
            let pos = self.buf[idx];
            let j = &view.pending[pos as usize];
            if u64::from(j.spec.cpus) > free || view.limits.blocked(&j.spec, &extra).is_some() {
                continue;
            }
            let req = j.spec.request_at(view.now);
            self.slices.clear();
            if !placement.place(
                cluster,
                &self.avail,
                view.nodes_of(j),
                &req,
                &mut self.slices,
            ) {
                continue;
            }
            let s = match shadow {
                Some(s) => s,
                None => {
                    // Submission guarantees the head fits an empty partition: a shadow exists.
                    let Some(t) = self.shadow_time(view, free, k) else {
                        return;
                    };
                    out.reserve(head_pos, head.spec.id, t);
                    shadow = Some(t);
                    t
                }
            };
            if now + j.spec.estimate > s {
                take(&mut self.shadow, &self.slices, req.mem_mb);
                self.probe.clear();
                if !placement.place(cluster, &self.shadow, hnodes, &hreq, &mut self.probe) {
                    give(&mut self.shadow, &self.slices, req.mem_mb);
                    continue;
                }
            }
            take(&mut self.avail, &self.slices, req.mem_mb);
            free -= u64::from(req.cpus);
            out.start(pos, j.spec.id, &self.slices);
            view.limits.count(&mut extra, &j.spec);
        }
    }
}
