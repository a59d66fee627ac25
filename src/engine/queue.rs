//! The pending queue: jobs in queue order, read by policies as one slice, with removal of a
//! pass's started jobs in time proportional to how deep in the queue they were, not to the
//! queue's length.
//!
//! Jobs start mostly near the head of the queue (all of them under `fcfs`; backfilled ones
//! a little further). Removing them from a `Vec` shifts the whole queue behind them: on an
//! overloaded trace, where the queue grows to hundreds of thousands of jobs, that made every
//! pass cost the whole queue. Here the live jobs are `buf[head..]`: the started jobs are
//! gathered at the front of the part up to the deepest of them (rotations of the runs between
//! them), the others keeping their order, and `head` moves past them. The dead prefix is dropped once it is as long as the rest, so
//! each removal costs O(1) amortized on top of the swaps.

use crate::sched::PendingJob;
use std::ops::{Deref, DerefMut};

/// Dead entries are dropped when there are at least this many and as many as live ones (few
/// in tests, so that they drop often).
#[cfg(not(test))]
const COMPACT_AT: usize = 1024;
#[cfg(test)]
const COMPACT_AT: usize = 4;

#[derive(Debug, Default)]
pub(super) struct Queue {
    buf: Vec<PendingJob>,
    head: usize,
    /// A buffer: the started positions, sorted.
    sorted: Vec<u32>,
}

impl Queue {
    pub(super) fn push(&mut self, job: PendingJob) {
        self.buf.push(job);
    }

    /// Removes the job at position `i` (a cancellation), keeping the order of the others.
    pub(super) fn remove(&mut self, i: usize) -> PendingJob {
        self.buf.remove(self.head + i)
    }

    /// Removes the jobs at the positions in `started` (distinct), keeping the order of the
    /// others. Costs O(the deepest position) plus amortized O(1) per job removed.
    pub(super) fn remove_started(&mut self, started: &[u32]) {
        if started.is_empty() {
            return;
        }
        let mut sorted = std::mem::take(&mut self.sorted);
        sorted.clear();
        sorted.extend_from_slice(started);
        sorted.sort_unstable();
        // Gather the started jobs into one block, right to left: the survivors between each
        // started job and the block move past the block (slice rotations: moves of whole runs).
        let live = &mut self.buf[self.head..];
        let deepest = sorted[sorted.len() - 1] as usize;
        let (mut from, mut to) = (deepest, deepest + 1);
        for &p in sorted.iter().rev().skip(1) {
            let p = p as usize;
            let gap = from - p - 1;
            live[p + 1..to].rotate_left(gap);
            (from, to) = (p, to - gap);
        }
        live[..to].rotate_left(from);
        self.head += sorted.len();
        self.sorted = sorted;
        if self.head >= COMPACT_AT && self.head * 2 >= self.buf.len() {
            self.buf.drain(..self.head);
            self.head = 0;
        }
    }
}

impl Deref for Queue {
    type Target = [PendingJob];
    fn deref(&self) -> &[PendingJob] {
        &self.buf[self.head..]
    }
}

impl DerefMut for Queue {
    fn deref_mut(&mut self) -> &mut [PendingJob] {
        &mut self.buf[self.head..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::JobId;
    use crate::model::{JobSpec, PendingReason};
    use crate::time::{Dur, Time};
    use proptest::prelude::*;
    use std::sync::Arc;

    fn job(seq: u64) -> PendingJob {
        PendingJob {
            spec: Arc::new(JobSpec::new(JobId(seq), Time::ZERO, 1, Dur(1))),
            seq,
            reason: PendingReason::None,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Against `Vec::retain`, over many passes (so that compaction happens too).
        #[test]
        fn removal_keeps_the_order_of_the_others(
            passes in proptest::collection::vec(
                (0usize..8, proptest::collection::vec(0usize..3000, 0..12)),
                1..40,
            ),
        ) {
            let mut q = Queue::default();
            let mut naive: Vec<u64> = Vec::new();
            let mut next = 0u64;
            for (arrivals, picks) in passes {
                for _ in 0..arrivals * 5 {
                    q.push(job(next));
                    naive.push(next);
                    next += 1;
                }
                if naive.is_empty() {
                    continue;
                }
                let mut started: Vec<u32> = picks.iter().map(|&p| (p % naive.len()) as u32).collect();
                started.sort_unstable();
                started.dedup();
                let mut mask = vec![false; naive.len()];
                for &p in &started {
                    mask[p as usize] = true;
                }
                // In decision order, not sorted.
                let mut order = started.clone();
                let k = arrivals % order.len().max(1);
                order.rotate_left(k);
                q.remove_started(&order);
                let mut i = 0;
                naive.retain(|_| {
                    i += 1;
                    !mask[i - 1]
                });
                let got: Vec<u64> = q.iter().map(|p| p.seq).collect();
                prop_assert_eq!(&got, &naive);
            }
        }
    }
}
