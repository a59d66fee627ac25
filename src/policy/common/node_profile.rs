//! The availability profile per node, for planning on clusters of several nodes or with memory
//! and GPUs. The same semantics as [`super::Profile`] (half-open steps, zero-length instant
//! holds), with a full per-node state in each step and placement deciding what "fits".

use crate::model::{Avail, Cluster, Request, Slice};
use crate::sched::RunningJob;
use crate::sched::placement::Placement;
use crate::time::{Dur, Time};

#[derive(Clone, Debug, Default)]
pub struct NodeProfile {
    n: usize,
    times: Vec<Time>,
    /// `times.len() × n` node states, row-major: row i holds during [times[i], times[i+1]).
    state: Vec<Avail>,
    /// Zero-length reservations: (instant, per-node (node, cpus, mem, gpus) held).
    holds: Vec<(Time, Vec<(u32, Avail)>)>,
    window: Vec<Avail>,
    releases: Vec<(Time, usize)>,
}

impl NodeProfile {
    /// Rebuilds at `now` from the free resources and the running jobs' expected ends.
    pub fn rebuild(&mut self, now: Time, avail: &[Avail], running: &[RunningJob]) {
        self.n = avail.len();
        self.times.clear();
        self.state.clear();
        self.holds.clear();
        self.times.push(now);
        self.state.extend_from_slice(avail);
        self.releases.clear();
        for (i, r) in running.iter().enumerate() {
            let end = r.expected_end(now);
            if end <= now {
                add_alloc(
                    &mut self.state[..self.n],
                    &r.alloc,
                    r.spec.mem_mb.unwrap_or(0),
                );
            } else {
                self.releases.push((end, i));
            }
        }
        self.releases.sort_unstable();
        for k in 0..self.releases.len() {
            let (end, i) = self.releases[k];
            if self.times.last() != Some(&end) {
                self.times.push(end);
                let start = self.state.len() - self.n;
                self.state.extend_from_within(start..);
            }
            let row = self.state.len() - self.n;
            let r = &running[i];
            add_alloc(&mut self.state[row..], &r.alloc, r.spec.mem_mb.unwrap_or(0));
        }
    }

    fn seg(&self, t: Time) -> usize {
        self.times.partition_point(|&x| x <= t).saturating_sub(1)
    }

    fn row(&self, i: usize) -> &[Avail] {
        &self.state[i * self.n..(i + 1) * self.n]
    }

    /// Free CPUs over all nodes at the profile's start.
    pub fn cpus_now(&self) -> u64 {
        self.row(0).iter().map(|a| u64::from(a.cpus)).sum()
    }

    /// Fills `self.window` with the per-node minimum over [s, s+est) (holds strictly inside
    /// count as taken), or the state at s for a zero-length job. Returns its free CPUs.
    fn window_min(&mut self, s: Time, est: Dur) -> u64 {
        let i0 = self.seg(s);
        self.window.clear();
        self.window
            .extend_from_slice(&self.state[i0 * self.n..(i0 + 1) * self.n]);
        if est.0 > 0 {
            let end = s + est;
            let mut i = i0 + 1;
            while i < self.times.len() && self.times[i] < end {
                let base = i * self.n;
                for (w, a) in self.window.iter_mut().zip(&self.state[base..base + self.n]) {
                    min_into(w, a);
                }
                i += 1;
            }
            let h0 = self.holds.partition_point(|h| h.0 <= s);
            for h in h0..self.holds.len() {
                let (tau, ref held) = self.holds[h];
                if tau >= end {
                    break;
                }
                let base = self.seg(tau) * self.n;
                for &(node, hold) in held {
                    let at = self.state[base + node as usize];
                    let left = Avail {
                        cpus: at.cpus.saturating_sub(hold.cpus),
                        mem_mb: at.mem_mb.saturating_sub(hold.mem_mb),
                        gpus: at.gpus.saturating_sub(hold.gpus),
                    };
                    min_into(&mut self.window[node as usize], &left);
                }
            }
        }
        self.window.iter().map(|a| u64::from(a.cpus)).sum()
    }

    /// The earliest τ ≥ `from` at which the job can be placed for its whole estimate, and the
    /// placement there (appended to `out`). `None` if it never fits (cannot happen for jobs the
    /// engine admitted).
    #[allow(clippy::too_many_arguments)]
    pub fn earliest(
        &mut self,
        from: Time,
        cluster: &Cluster,
        placement: &dyn Placement,
        nodes: &[u32],
        req: &Request,
        est: Dur,
        out: &mut Vec<Slice>,
    ) -> Option<Time> {
        let first = self.seg(from);
        let mut cands: Vec<Time> = vec![from];
        cands.extend(self.times[first + 1..].iter().copied());
        if est.0 > 0 {
            cands.extend(self.holds.iter().map(|h| h.0).filter(|&t| t > from));
            cands.sort_unstable();
            cands.dedup();
        }
        for c in cands {
            if self.window_min(c, est) < u64::from(req.cpus) {
                continue;
            }
            let window = std::mem::take(&mut self.window);
            let ok = placement.place(cluster, &window, nodes, req, out);
            self.window = window;
            if ok {
                return Some(c);
            }
        }
        None
    }

    /// Reserves an allocation on [at, at+est), or at the instant `at` when est is 0.
    pub fn reserve(&mut self, at: Time, est: Dur, slices: &[Slice], mem_mb: u64) {
        if est.0 <= 0 {
            let i = match self.holds.binary_search_by_key(&at, |h| h.0) {
                Ok(i) => i,
                Err(i) => {
                    self.holds.insert(i, (at, Vec::new()));
                    i
                }
            };
            for s in slices {
                let held = &mut self.holds[i].1;
                let add = Avail {
                    cpus: s.cpus,
                    mem_mb,
                    gpus: s.gpus,
                };
                match held.iter_mut().find(|h| h.0 == s.node) {
                    Some(h) => {
                        h.1.cpus += add.cpus;
                        h.1.mem_mb += add.mem_mb;
                        h.1.gpus += add.gpus;
                    }
                    None => held.push((s.node, add)),
                }
            }
            return;
        }
        let a = self.split(at);
        let b = self.split(at + est);
        for row in a..b {
            let base = row * self.n;
            super::take(&mut self.state[base..base + self.n], slices, mem_mb);
        }
    }

    fn split(&mut self, t: Time) -> usize {
        let i = self.times.partition_point(|&x| x < t);
        if i < self.times.len() && self.times[i] == t {
            return i;
        }
        self.times.insert(i, t);
        let prev = (i - 1) * self.n;
        let row: Vec<Avail> = self.state[prev..prev + self.n].to_vec();
        let at = i * self.n;
        self.state.splice(at..at, row);
        i
    }
}

fn add_alloc(row: &mut [Avail], slices: &[Slice], mem_mb: u64) {
    super::give(row, slices, mem_mb);
}

fn min_into(w: &mut Avail, a: &Avail) {
    w.cpus = w.cpus.min(a.cpus);
    w.mem_mb = w.mem_mb.min(a.mem_mb);
    w.gpus = w.gpus.min(a.gpus);
}
