//! CPU slots and the real CPUs they run on.
//!
//! The engine counts `scheduler --cpus N` CPUs; the executor hands out *slots* `0..N`, and slot
//! `i` runs on the real CPU id `ids[i mod n]` of the daemon's own affinity mask (`ids`, `n` of
//! them; `machine::cpu_ids`). So a daemon under `taskset -c 1`, or in a cpuset that does not
//! start at 0, pins its jobs to CPUs it may use, and `--cpus` beyond `n` oversubscribes the
//! real CPUs evenly. A job is given the lowest free slots on distinct real CPUs where it can
//! be, then the lowest; a shrinking job keeps those on distinct real CPUs. What is recorded
//! and shown is the real ids.

/// Which slots are free, and the real CPU each runs on.
#[derive(Clone, Debug)]
pub struct CpuSlots {
    free: Vec<bool>,
    ids: Vec<usize>,
}

impl CpuSlots {
    /// `slots` free slots, slot `i` on CPU `i` until [`set_ids`](CpuSlots::set_ids).
    pub fn new(slots: usize) -> CpuSlots {
        CpuSlots {
            free: vec![true; slots],
            ids: (0..slots).collect(),
        }
    }

    /// The real CPU ids slots run on (ignored if empty).
    pub fn set_ids(&mut self, ids: Vec<usize>) {
        if !ids.is_empty() {
            self.ids = ids;
        }
    }

    /// The real CPU id of a slot.
    pub fn real(&self, slot: usize) -> usize {
        self.ids
            .get(slot % self.ids.len().max(1))
            .copied()
            .unwrap_or(slot)
    }

    /// The real CPU ids of slots, sorted (a real CPU twice where a job is wider than the
    /// machine).
    pub fn real_ids(&self, slots: &[usize]) -> Vec<usize> {
        let mut ids: Vec<usize> = slots.iter().map(|&s| self.real(s)).collect();
        ids.sort_unstable();
        ids
    }

    /// Takes `n` free slots for a job that holds `held` already: the lowest on real CPUs it
    /// does not run on yet (and distinct), then the lowest. Sorted.
    pub fn take(&mut self, n: usize, held: &[usize]) -> Vec<usize> {
        let mut got: Vec<usize> = Vec::with_capacity(n);
        let mut used: Vec<usize> = held.iter().map(|&s| self.real(s)).collect();
        for distinct in [true, false] {
            for slot in 0..self.free.len() {
                if got.len() == n {
                    break;
                }
                let real = self.real(slot);
                if self.free[slot] && !(distinct && used.contains(&real)) {
                    self.free[slot] = false;
                    got.push(slot);
                    used.push(real);
                }
            }
        }
        got.sort_unstable();
        got
    }

    /// Frees slots.
    pub fn release(&mut self, slots: &[usize]) {
        for &s in slots {
            if let Some(f) = self.free.get_mut(s) {
                *f = true;
            }
        }
    }

    /// Shrinks a job's `held` slots to `n`: it keeps the lowest on distinct real CPUs, then the
    /// lowest others; the rest are freed.
    pub fn shrink(&mut self, held: &mut Vec<usize>, n: usize) {
        let mut sorted = std::mem::take(held);
        sorted.sort_unstable();
        let mut seen = Vec::new();
        let (mut keep, mut rest) = (Vec::new(), Vec::new());
        for s in sorted {
            if seen.contains(&self.real(s)) {
                rest.push(s);
            } else {
                seen.push(self.real(s));
                keep.push(s);
            }
        }
        keep.extend(rest);
        let gone = keep.split_off(n.min(keep.len()));
        self.release(&gone);
        keep.sort_unstable();
        *held = keep;
    }

    /// Takes back the slots of a job recorded on real CPUs `real`: for each, the lowest free
    /// slot that runs on it (none where all are taken, as when the daemon restarts with fewer
    /// CPUs).
    pub fn adopt(&mut self, real: &[usize]) -> Vec<usize> {
        let mut slots = Vec::with_capacity(real.len());
        for &c in real {
            if let Some(s) = (0..self.free.len()).find(|&s| self.free[s] && self.real(s) == c) {
                self.free[s] = false;
                slots.push(s);
            }
        }
        slots
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(n: usize, ids: &[usize]) -> CpuSlots {
        let mut s = CpuSlots::new(n);
        s.set_ids(ids.to_vec());
        s
    }

    #[test]
    fn slots_run_on_the_daemons_cpu_ids() {
        // A daemon under `taskset -c 1`: one slot, on CPU 1.
        let mut c = slots(1, &[1]);
        let s = c.take(1, &[]);
        assert_eq!(c.real_ids(&s), [1]);
        // Four slots on CPUs 2 and 5: one-CPU jobs alternate between them.
        let mut c = slots(4, &[2, 5]);
        let got: Vec<Vec<usize>> = (0..4).map(|_| c.take(1, &[])).collect();
        let real: Vec<Vec<usize>> = got.iter().map(|s| c.real_ids(s)).collect();
        assert_eq!(real, [[2], [5], [2], [5]]);
        // Slots 0 and 2 free (both on CPU 2) and 3 (CPU 5): a two-CPU job takes distinct CPUs.
        c.release(&[0, 2, 3]);
        let s = c.take(2, &[]);
        assert_eq!((s.clone(), c.real_ids(&s)), (vec![0, 3], vec![2, 5]));
        // Wider than the machine: a CPU twice.
        let mut c = slots(4, &[2, 5]);
        let s = c.take(3, &[]);
        assert_eq!(c.real_ids(&s), [2, 2, 5]);
        // Growing prefers the CPUs the job does not run on yet.
        let mut c = slots(4, &[2, 5]);
        let held = c.take(1, &[]);
        c.take(1, &[]);
        c.release(&[1]);
        assert_eq!(c.take(1, &held), [1]);
    }

    #[test]
    fn shrink_keeps_distinct_cpus_and_adopt_takes_back_slots() {
        let mut c = slots(4, &[2, 5]);
        let mut held = c.take(3, &[]);
        assert_eq!(held, [0, 1, 2]);
        c.shrink(&mut held, 2);
        assert_eq!(held, [0, 1]);
        assert_eq!(c.free, [false, false, true, true]);
        let mut c = slots(4, &[2, 5]);
        assert_eq!(c.adopt(&[5]), [1]);
        assert_eq!(c.free, [true, false, true, true]);
        // More recorded than free: what is free is taken.
        let mut c = slots(1, &[0]);
        assert_eq!(c.adopt(&[0, 1]), [0]);
    }
}
