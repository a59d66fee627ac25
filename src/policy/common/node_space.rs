//! Slurm's backfill time map (`node_space` in `sched/backfill/backfill.c`): the nodes that are
//! still unplanned during each time slot of one backfill cycle.
//!
//! The map is a list of disjoint slots `[begin, end)` covering the backfill window, each with a
//! set of nodes ([`Nodes`]) not yet reserved for a planned (pending) job. Reservations take
//! **whole nodes**, whatever the job needs of them — Slurm's documented shortcut ("the backfill
//! scheduler reserves whole nodes for jobs, even if jobs don't require whole nodes"). Running
//! jobs are not in the map: they are seen at CPU and memory granularity by the start-time
//! estimate. The map is rebuilt from nothing at every cycle.
//!
//! The three operations are transcribed from Slurm 22.05.8: the usable nodes of an interval
//! (the slot walk of `_attempt_backfill`, with its `later_start` probe), `_add_reservation`
//! (split at both ends, clear the nodes, merge at most one pair of equal neighbours) and
//! `_test_resv_overlap`.

use crate::time::{Dur, Time};

/// A set of node indices, as a bitmap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Nodes(Vec<u64>);

impl Nodes {
    /// The empty set over `n` nodes.
    pub fn empty(n: usize) -> Nodes {
        Nodes(vec![0; n.div_ceil(64)])
    }
    /// Every one of `n` nodes.
    pub fn all(n: usize) -> Nodes {
        Nodes::of(n, 0..n as u32)
    }
    /// The set of `nodes` over `n` nodes.
    pub fn of(n: usize, nodes: impl IntoIterator<Item = u32>) -> Nodes {
        let mut s = Nodes::empty(n);
        for i in nodes {
            s.insert(i);
        }
        s
    }
    pub fn insert(&mut self, i: u32) {
        self.0[i as usize / 64] |= 1 << (i % 64);
    }
    pub fn contains(&self, i: u32) -> bool {
        self.0[i as usize / 64] & (1 << (i % 64)) != 0
    }
    pub fn count(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }
    /// self ∩= other.
    pub fn and(&mut self, other: &Nodes) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a &= b;
        }
    }
    /// self −= other.
    pub fn and_not(&mut self, other: &Nodes) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a &= !b;
        }
    }
    pub fn copy_from(&mut self, other: &Nodes) {
        self.0.clear();
        self.0.extend_from_slice(&other.0);
    }
    /// Every node of `sub` is in self.
    pub fn is_superset(&self, sub: &Nodes) -> bool {
        self.0.iter().zip(&sub.0).all(|(a, b)| b & !a == 0)
    }
    /// (a ∩ b) ⊆ (c ∩ d), without allocating.
    fn and_subset(a: &Nodes, b: &Nodes, c: &Nodes, d: &Nodes) -> bool {
        (0..a.0.len()).all(|k| (a.0[k] & b.0[k]) & !(c.0[k] & d.0[k]) == 0)
    }
    /// The members, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().enumerate().flat_map(|(k, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros();
                w &= w - 1;
                Some(k as u32 * 64 + b)
            })
        })
    }
}

#[derive(Clone, Debug)]
struct Slot {
    begin: Time,
    end: Time,
    /// Nodes not reserved during [begin, end).
    free: Nodes,
}

/// The time map of one backfill cycle.
#[derive(Clone, Debug, Default)]
pub struct NodeSpace {
    slots: Vec<Slot>,
    resolution: Dur,
    /// Records created this cycle: Slurm counts a slot merged away too, and stops planning
    /// when this reaches `bf_node_space_size`.
    records: usize,
}

/// `t` rounded down to a multiple of `res` (Slurm's `(t / res) * res` on non-negative times).
pub fn floor_to(t: Time, res: Dur) -> Time {
    Time(t.0.div_euclid(res.0.max(1)) * res.0.max(1))
}

impl NodeSpace {
    /// One slot from `floor(now)` to `floor(now + window)` (both to `resolution`) with every
    /// node in `up` unplanned.
    pub fn reset(&mut self, now: Time, window: Dur, resolution: Dur, up: &Nodes) {
        self.resolution = resolution;
        self.slots.clear();
        self.slots.push(Slot {
            begin: floor_to(now, resolution),
            end: floor_to(now + window, resolution),
            free: up.clone(),
        });
        self.records = 1;
    }

    /// Records created this cycle (Slurm's `node_space_recs`).
    pub fn records(&self) -> usize {
        self.records
    }
    /// Where the window ends.
    pub fn window_end(&self) -> Time {
        self.slots.last().map_or(Time::ZERO, |s| s.end)
    }

    /// The slot walk for a job that could start at `start_res` and end by `end`: `avail`
    /// (arriving as the usable nodes) keeps the nodes unplanned in every slot that ends after
    /// `start_res` and begins at or before `end` (inclusive: a plan that begins exactly at the
    /// job's end still counts). Returns `later_start`: the end of the first slot after which a
    /// usable node becomes unplanned that is not unplanned now, if any.
    pub fn usable(
        &self,
        start_res: Time,
        end: Time,
        usable: &Nodes,
        avail: &mut Nodes,
    ) -> Option<Time> {
        let mut later = None;
        for (j, s) in self.slots.iter().enumerate() {
            if later.is_none()
                && s.end > start_res
                && let Some(next) = self.slots.get(j + 1)
                && !Nodes::and_subset(usable, &next.free, avail, &s.free)
            {
                later = Some(s.end);
            }
            if s.end <= start_res {
                continue;
            }
            if s.begin <= end {
                avail.and(&s.free);
            } else {
                break;
            }
        }
        later
    }

    /// Whether `nodes` are planned for another job in a slot that intersects `(start, end)`.
    pub fn overlaps(&self, nodes: &Nodes, start: Time, end: Time) -> bool {
        self.slots
            .iter()
            .any(|s| s.end > start && s.begin < end && !s.free.is_superset(nodes))
    }

    /// Reserves `nodes` on `[start, end)`: at least one resolution step long, clipped to the
    /// window, split at both ends; then at most one pair of neighbouring slots with equal node
    /// sets is merged, as `_add_reservation` does.
    pub fn reserve(&mut self, start: Time, end: Time, nodes: &Nodes) {
        let Some(first) = self.slots.first() else {
            return;
        };
        let start = start.max(first.begin);
        let end = end.max(start + self.resolution);
        // Find or make the slot beginning at `start`.
        let mut one_before = 0;
        let mut j = None;
        for i in 0..self.slots.len() {
            if self.slots[i].end > start {
                let mut tail = self.slots[i].clone();
                tail.begin = start;
                self.slots[i].end = start;
                self.slots.insert(i + 1, tail);
                self.records += 1;
                j = Some(i);
                break;
            }
            if self.slots[i].end == start {
                j = Some(i);
                break;
            }
            one_before = i;
        }
        let Some(mut j) = j else {
            return;
        };
        let mut one_after = None;
        while j + 1 < self.slots.len() {
            j += 1;
            if end < self.slots[j].end {
                let mut tail = self.slots[j].clone();
                tail.begin = end;
                self.slots[j].end = end;
                self.slots.insert(j + 1, tail);
                self.records += 1;
            }
            self.slots[j].free.and_not(nodes);
            if end == self.slots[j].end {
                if j + 1 < self.slots.len() {
                    one_after = Some(j + 1);
                }
                break;
            }
        }
        // Merge the first pair of equal neighbours from `one_before` up to `one_after`.
        let mut i = one_before;
        while Some(i) != one_after && i + 1 < self.slots.len() {
            if self.slots[i].free == self.slots[i + 1].free {
                self.slots[i].end = self.slots[i + 1].end;
                self.slots.remove(i + 1);
                break;
            }
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Time {
        Time::from_secs(s)
    }

    #[test]
    fn node_sets() {
        let mut a = Nodes::of(130, [0, 64, 129]);
        assert_eq!(a.count(), 3);
        assert_eq!(a.iter().collect::<Vec<_>>(), [0, 64, 129]);
        let b = Nodes::of(130, [64]);
        assert!(a.is_superset(&b));
        assert!(!b.is_superset(&a));
        a.and_not(&b);
        assert_eq!(a.iter().collect::<Vec<_>>(), [0, 129]);
        a.and(&Nodes::of(130, [129, 5]));
        assert_eq!(a.iter().collect::<Vec<_>>(), [129]);
        assert!(a.contains(129) && !a.contains(0));
    }

    #[test]
    fn reservations_take_whole_nodes_on_resolution_steps() {
        let up = Nodes::of(2, [0, 1]);
        let mut m = NodeSpace::default();
        m.reset(t(10), Dur::from_secs(3600), Dur::from_secs(60), &up);
        assert_eq!(m.slots[0].begin, t(0));
        assert_eq!(m.window_end(), t(3600));
        m.reserve(t(120), t(300), &Nodes::of(2, [0]));
        assert_eq!(m.slots.len(), 3);
        assert_eq!(m.records(), 3);
        // A job on [60, 130] meets the plan at 120 on node 0: only node 1 is usable.
        let mut avail = up.clone();
        let later = m.usable(t(60), t(130), &up, &mut avail);
        assert_eq!(avail.iter().collect::<Vec<_>>(), [1]);
        assert_eq!(later, Some(t(300)), "node 0 is unplanned again from 300");
        // A job ending exactly when the plan begins still meets it (inclusive).
        let mut avail = up.clone();
        m.usable(t(60), t(120), &up, &mut avail);
        assert_eq!(avail.count(), 1);
        let mut avail = up.clone();
        m.usable(t(60), t(119), &up, &mut avail);
        assert_eq!(avail.count(), 2);
        assert!(m.overlaps(&Nodes::of(2, [0]), t(0), t(121)));
        assert!(!m.overlaps(&Nodes::of(2, [0]), t(0), t(120)));
        assert!(!m.overlaps(&Nodes::of(2, [1]), t(0), t(3600)));
        // A second plan on node 0 right after the first: equal neighbours merge once.
        m.reserve(t(300), t(400), &Nodes::of(2, [0]));
        assert_eq!(m.slots.len(), 3, "{:?}", m.slots);
        assert_eq!(m.records(), 4, "a merged record still counts");
        // Short plans last at least one resolution step.
        m.reserve(t(1000), t(1000), &Nodes::of(2, [1]));
        assert!(m.overlaps(&Nodes::of(2, [1]), t(1059), t(1060)));
        assert!(!m.overlaps(&Nodes::of(2, [1]), t(1060), t(1200)));
    }
}
