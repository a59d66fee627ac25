//! The resource ledger: free CPUs, memory and GPUs per node, GPU indices as bit masks, and the
//! scratch copy a pass is validated on.
//!
//! A pass is checked against a [`Scratch`]: a copy-on-write overlay of the ledger holding only
//! the nodes the pass touched. Every resize and start of the pass takes (or gives back) its
//! resources on the scratch; if any decision is refused the scratch is dropped and the ledger
//! never changed, otherwise [`Scratch::commit`] writes the touched nodes back at once. The
//! overlay costs O(nodes touched) per pass, not O(nodes), so a 1,024-node cluster pays nothing
//! for the nodes a pass does not use.

use crate::ids::FastMap;
use crate::model::{Avail, Cluster, Slice};
use std::sync::Arc;

/// Free resources per node.
#[derive(Clone, Debug)]
pub struct Ledger {
    total: u64,
    free: u64,
    avail: Vec<Avail>,
    /// Free GPU indices per node (bit i: GPU i is free).
    gpu_free: Vec<u64>,
}

/// The GPU mask of a node with `gpus` GPUs, all free.
fn all_gpus(gpus: u32) -> u64 {
    if gpus >= 64 {
        u64::MAX
    } else {
        (1u64 << gpus) - 1
    }
}

impl Ledger {
    /// Everything free.
    pub fn new(cluster: &Cluster) -> Ledger {
        let total = cluster.total_cpus();
        Ledger {
            total,
            free: total,
            avail: cluster.empty_avail(),
            gpu_free: cluster.nodes.iter().map(|n| all_gpus(n.gpus)).collect(),
        }
    }
    /// CPUs of the cluster.
    pub fn total(&self) -> u64 {
        self.total
    }
    /// Free CPUs over all nodes.
    pub fn free(&self) -> u64 {
        self.free
    }
    /// Free resources per node.
    pub fn avail(&self) -> &[Avail] {
        &self.avail
    }
    /// Free GPU indices of `node`.
    pub fn gpu_free(&self, node: usize) -> u64 {
        self.gpu_free[node]
    }

    /// Holds an allocation that already carries its GPU indices (a job re-adopted after a
    /// restart, checked by the caller).
    pub fn hold(&mut self, alloc: &[Slice], mem_mb: u64) {
        for s in alloc {
            let a = &mut self.avail[s.node as usize];
            a.cpus -= s.cpus;
            a.mem_mb -= mem_mb;
            a.gpus -= s.gpus;
            self.gpu_free[s.node as usize] &= !s.gpu_mask;
            self.free -= u64::from(s.cpus);
        }
    }

    /// Gives an allocation's resources back.
    pub fn release(&mut self, alloc: &[Slice], mem_mb: u64) {
        for s in alloc {
            let a = &mut self.avail[s.node as usize];
            a.cpus += s.cpus;
            a.mem_mb += mem_mb;
            a.gpus += s.gpus;
            self.gpu_free[s.node as usize] |= s.gpu_mask;
            self.free += u64::from(s.cpus);
        }
    }
}

/// A node as the pass left it so far.
#[derive(Clone, Copy, Debug)]
struct Touched {
    node: u32,
    avail: Avail,
    gpu_free: u64,
}

/// A copy-on-write overlay of a [`Ledger`] for one pass (see the module header).
#[derive(Debug, Default)]
pub struct Scratch {
    /// Per node: its index in `touched`, or `u32::MAX` if the pass has not touched it.
    slot: Vec<u32>,
    touched: Vec<Touched>,
    free: u64,
    /// One-node allocations without GPUs by (node, CPUs), shared by every job of that shape.
    shared: FastMap<(u32, u32), Arc<[Slice]>>,
}

impl Scratch {
    /// Starts a pass over `l`: nothing taken yet.
    pub fn begin(&mut self, l: &Ledger) {
        self.reset();
        if self.slot.len() != l.avail.len() {
            self.slot = vec![u32::MAX; l.avail.len()];
        }
        self.free = l.free;
    }

    /// Forgets what the pass took (the pass was refused).
    pub fn reset(&mut self) {
        for t in self.touched.drain(..) {
            self.slot[t.node as usize] = u32::MAX;
        }
    }

    /// A node's free resources, as the pass left them.
    pub fn avail(&self, l: &Ledger, node: u32) -> Avail {
        match self.slot[node as usize] {
            u32::MAX => l.avail[node as usize],
            i => self.touched[i as usize].avail,
        }
    }

    fn entry(&mut self, l: &Ledger, node: u32) -> &mut Touched {
        let i = match self.slot[node as usize] {
            u32::MAX => {
                let i = self.touched.len() as u32;
                self.touched.push(Touched {
                    node,
                    avail: l.avail[node as usize],
                    gpu_free: l.gpu_free[node as usize],
                });
                self.slot[node as usize] = i;
                i
            }
            i => i,
        };
        &mut self.touched[i as usize]
    }

    /// Gives back an allocation (a job being resized releases its old one).
    pub fn release(&mut self, l: &Ledger, alloc: &[Slice], mem_mb: u64) {
        for s in alloc {
            let t = self.entry(l, s.node);
            t.avail.cpus += s.cpus;
            t.avail.mem_mb += mem_mb;
            t.avail.gpus += s.gpus;
            t.gpu_free |= s.gpu_mask;
            self.free += u64::from(s.cpus);
        }
    }

    /// Takes a checked allocation, choosing the lowest free GPU indices on each node; returns
    /// the allocation with its GPU masks.
    pub fn take(&mut self, l: &Ledger, slices: &[Slice], mem_mb: u64) -> Arc<[Slice]> {
        // One node, no GPU (nearly every job of a trace): the same allocation for every job of
        // that shape, shared (a million jobs would otherwise hold a million of them).
        if let [s] = slices
            && s.gpus == 0
        {
            let t = self.entry(l, s.node);
            t.avail.cpus -= s.cpus;
            t.avail.mem_mb -= mem_mb;
            self.free -= u64::from(s.cpus);
            let one = Slice { gpu_mask: 0, ..*s };
            return Arc::clone(
                self.shared
                    .entry((s.node, s.cpus))
                    .or_insert_with(|| Arc::from([one])),
            );
        }
        // Collected straight into the `Arc` (one allocation: the iterator's length is known).
        slices
            .iter()
            .map(|s| {
                let t = self.entry(l, s.node);
                t.avail.cpus -= s.cpus;
                t.avail.mem_mb -= mem_mb;
                t.avail.gpus -= s.gpus;
                let mut mask = 0u64;
                for _ in 0..s.gpus {
                    let bit = t.gpu_free & t.gpu_free.wrapping_neg();
                    mask |= bit;
                    t.gpu_free &= !bit;
                }
                self.free -= u64::from(s.cpus);
                Slice {
                    gpu_mask: mask,
                    ..*s
                }
            })
            .collect()
    }

    /// Writes what the pass took into the ledger and starts empty again.
    pub fn commit(&mut self, l: &mut Ledger) {
        for t in self.touched.drain(..) {
            l.avail[t.node as usize] = t.avail;
            l.gpu_free[t.node as usize] = t.gpu_free;
            self.slot[t.node as usize] = u32::MAX;
        }
        l.free = self.free;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_pass_leaves_the_ledger_alone_and_a_committed_one_lands_at_once() {
        let cluster = Cluster::uniform(3, 4, 100, 2).unwrap();
        let mut l = Ledger::new(&cluster);
        let mut s = Scratch::default();
        s.begin(&l);
        let a = s.take(&l, &[Slice::new(1, 3, 1)], 10);
        assert_eq!(a[0].gpu_mask, 0b1);
        assert_eq!(s.avail(&l, 1).cpus, 1);
        assert_eq!(s.avail(&l, 0).cpus, 4, "untouched nodes read through");
        assert_eq!(s.free, 9);
        s.reset();
        assert_eq!(l.free(), 12);
        assert_eq!(l.avail()[1].cpus, 4);
        s.begin(&l);
        let a = s.take(&l, &[Slice::new(1, 3, 2), Slice::new(2, 1, 1)], 10);
        s.commit(&mut l);
        assert_eq!(
            (l.free(), l.avail()[1].cpus, l.avail()[2].mem_mb),
            (8, 1, 90)
        );
        assert_eq!((l.gpu_free(1), l.gpu_free(2)), (0, 0b10));
        l.release(&a, 10);
        assert_eq!((l.free(), l.gpu_free(1), l.avail()[1].gpus), (12, 0b11, 2));
    }
}
