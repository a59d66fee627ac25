//! The last hours of utilization and queue length, for the dashboard's chart: a sampler thread
//! reads the latest published snapshot every `sample_every` and after each pass (at most once
//! a second), and keeps the samples of the last `keep` in a ring buffer. Between passes
//! nothing changes, so a sample at any instant reads the state at that instant.

use crate::live::now_ms;
use crate::live::publish::{NodeUse, Published};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The most samples kept, whatever the window (a bound on memory).
const MAX_SAMPLES: usize = 20_000;

/// What the machine held at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Sample {
    /// Wall-clock epoch ms.
    pub t_ms: i64,
    pub cpus_alloc: u64,
    pub cpus: u64,
    pub mem_alloc_mb: u64,
    pub mem_mb: u64,
    pub gpus_alloc: u64,
    pub gpus: u64,
    /// Jobs waiting in the engine's queue, and running.
    pub pending: u64,
    pub running: u64,
}

/// A ring buffer of samples over a window.
pub struct History {
    keep_ms: i64,
    samples: Mutex<VecDeque<Sample>>,
}

impl History {
    pub fn new(keep: Duration) -> History {
        History {
            keep_ms: keep.as_millis().min(i64::MAX as u128) as i64,
            samples: Mutex::new(VecDeque::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Sample>> {
        self.samples.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a sample, dropping those older than the window.
    pub fn push(&self, s: Sample) {
        let mut q = self.lock();
        q.push_back(s);
        while q.len() > MAX_SAMPLES || q.front().is_some_and(|f| f.t_ms < s.t_ms - self.keep_ms) {
            q.pop_front();
        }
    }

    /// The samples taken at or after `since_ms`, oldest first.
    pub fn since(&self, since_ms: i64) -> Vec<Sample> {
        self.lock()
            .iter()
            .filter(|s| s.t_ms >= since_ms)
            .copied()
            .collect()
    }
}

/// What the latest snapshot says now.
pub fn sample_now(p: &Published) -> Sample {
    let snap = p.latest();
    let usage = snap.node_use(&p.fixed().cluster);
    let sum = |f: &dyn Fn(&NodeUse) -> u64| usage.iter().map(f).sum::<u64>();
    Sample {
        t_ms: now_ms(),
        cpus_alloc: sum(&|u| u.alloc[0]),
        cpus: sum(&|u| u.total[0]),
        mem_alloc_mb: sum(&|u| u.alloc[1]),
        mem_mb: sum(&|u| u.total[1]),
        gpus_alloc: sum(&|u| u.alloc[2]),
        gpus: sum(&|u| u.total[2]),
        pending: snap.pending.len() as u64,
        running: snap.running.len() as u64,
    }
}

/// The sampler thread's loop, until `stop` is set.
pub fn sample(h: &History, p: &Published, stop: &AtomicBool, every: Duration) {
    let (mut seen, mut dirty) = (0, false);
    let mut last = Instant::now();
    h.push(sample_now(p));
    while !stop.load(Ordering::SeqCst) {
        let wait = every
            .saturating_sub(last.elapsed())
            .min(Duration::from_millis(250));
        let (generation, _) = p.wait_newer(seen, wait);
        dirty |= generation != seen;
        seen = generation;
        let since = last.elapsed();
        if since >= every || (dirty && since >= Duration::from_secs(1)) {
            h.push(sample_now(p));
            (last, dirty) = (Instant::now(), false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_drops_old_samples() {
        let h = History::new(Duration::from_millis(100));
        for t in [0, 50, 120, 200] {
            h.push(Sample {
                t_ms: t,
                ..Sample::default()
            });
        }
        let ts: Vec<i64> = h.since(0).iter().map(|s| s.t_ms).collect();
        assert_eq!(ts, [120, 200]);
        assert_eq!(h.since(150).len(), 1);
    }
}
