//! Building blocks shared by policies: queue orderings, resource bookkeeping on scratch copies
//! of the cluster state, and availability profiles (scalar and per node); Slurm's backfill
//! time map and its two schedulers, for the `slurm` policy.

pub mod elastic;
pub mod fairshare;
pub mod node_profile;
pub mod node_space;
pub mod order;
pub mod preempt;
pub mod profile;
pub mod slurm_pass;

pub use node_profile::NodeProfile;
pub use order::Order;
pub use preempt::Preemption;
pub use profile::Profile;

use crate::model::{Avail, Slice};
use crate::sched::limits::PassUsage;
use crate::sched::{Decisions, View};

/// Takes an allocation's resources from `avail` (saturating: callers only take what fits).
pub fn take(avail: &mut [Avail], slices: &[Slice], mem_mb: u64) {
    for s in slices {
        let a = &mut avail[s.node as usize];
        a.cpus = a.cpus.saturating_sub(s.cpus);
        a.mem_mb = a.mem_mb.saturating_sub(mem_mb);
        a.gpus = a.gpus.saturating_sub(s.gpus);
    }
}

/// Gives an allocation's resources back to `avail`.
pub fn give(avail: &mut [Avail], slices: &[Slice], mem_mb: u64) {
    for s in slices {
        let a = &mut avail[s.node as usize];
        a.cpus += s.cpus;
        a.mem_mb += mem_mb;
        a.gpus += s.gpus;
    }
}

/// Whether an allocation fits in `avail` as it stands.
pub fn fits(avail: &[Avail], slices: &[Slice], mem_mb: u64) -> bool {
    slices.iter().all(|s| {
        let a = &avail[s.node as usize];
        s.cpus <= a.cpus && mem_mb <= a.mem_mb && s.gpus <= a.gpus
    })
}

/// Removes from `order` the jobs a limit holds back now: they wait (with their reason) without
/// blocking the jobs behind them.
pub fn drop_limited(view: &View<'_>, order: &mut Vec<u32>) {
    if view.limits.is_unlimited() {
        return;
    }
    let none = PassUsage::default();
    order.retain(|&p| {
        view.limits
            .blocked(&view.pending[p as usize].spec, &none)
            .is_none()
    });
}

/// Scratch buffers for a strict in-order pass.
#[derive(Default)]
pub struct Strict {
    avail: Vec<Avail>,
    slices: Vec<Slice>,
}

impl Strict {
    /// Starts jobs in `order` (queue positions) while each can be placed; stops at the first
    /// that cannot. Returns how many started.
    pub fn pass(
        &mut self,
        view: &View<'_>,
        order: impl Iterator<Item = u32>,
        preemption: Option<&Preemption>,
        out: &mut Decisions,
    ) -> usize {
        self.avail.clear();
        self.avail.extend_from_slice(view.avail);
        let mut free = view.free;
        let mut n = 0;
        let mut extra = PassUsage::default();
        for pos in order {
            let j = &view.pending[pos as usize];
            // Held by a limit: waits, and does not block the jobs behind it.
            if view.limits.blocked(&j.spec, &extra).is_some() {
                continue;
            }
            let req = j.spec.request_at(view.now);
            self.slices.clear();
            if u64::from(j.spec.cpus) > free
                || !view.placement.place(
                    view.cluster,
                    &self.avail,
                    view.nodes_of(j),
                    &req,
                    &mut self.slices,
                )
            {
                out.blocked(pos, j.spec.id);
                if let Some(p) = preemption {
                    p.make_room(view, j, &self.avail, out);
                }
                break;
            }
            take(&mut self.avail, &self.slices, req.mem_mb);
            free -= u64::from(req.cpus);
            out.start(pos, j.spec.id, &self.slices);
            extra.take(&j.spec);
            n += 1;
        }
        n
    }
}
