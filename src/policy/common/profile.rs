//! The availability profile: how many processors are free at every future instant, given the
//! running jobs' expected ends and the reservations made so far in a pass.
//!
//! It is a step function over half-open intervals — `avail[i]` processors during
//! `[times[i], times[i+1])`, the last step lasting forever — plus *instant holds*: a job whose
//! estimate is zero holds its processors at the single instant of its reservation. Following
//! semantics §5, a hold at τ is taken into account only by a later job whose interval
//! `[s, s+e)` has `s < τ < s+e`; a job starting exactly at τ is not blocked by it, and a
//! zero-length job checks only the step function at its instant.
//!
//! Conservative backfilling asks it for the earliest fit of every job it plans: one forward
//! walk from `from` that moves the candidate start past each step too short for the job (a
//! test compares it with the candidate-by-candidate search it replaced, on random plans).

use crate::sched::RunningJob;
use crate::time::{Dur, Time};

#[derive(Clone, Debug, Default)]
pub struct Profile {
    times: Vec<Time>,
    avail: Vec<i64>,
    /// (instant, processors held), sorted by instant, one entry per instant.
    holds: Vec<(Time, i64)>,
    scratch: Vec<(Time, i64)>,
}

impl Profile {
    /// Rebuilds the profile at `now`: `free` processors idle, plus each running job's processors
    /// released at its expected end (jobs that overran their estimate release at `now`).
    /// `extra_running` lists jobs started earlier in the same pass as (expected end, procs).
    pub fn rebuild(
        &mut self,
        now: Time,
        free: u32,
        running: &[RunningJob],
        extra_running: &[(Time, u32)],
    ) {
        self.times.clear();
        self.avail.clear();
        self.holds.clear();
        self.scratch.clear();
        let mut at_now = i64::from(free);
        let ends = running
            .iter()
            .map(|r| (r.expected_end(now), r.cpus))
            .chain(extra_running.iter().copied());
        for (end, p) in ends {
            if end <= now {
                at_now += i64::from(p);
            } else {
                self.scratch.push((end, i64::from(p)));
            }
        }
        self.scratch.sort_unstable();
        self.times.push(now);
        self.avail.push(at_now);
        let mut level = at_now;
        for &(t, p) in &self.scratch {
            level += p;
            if *self.times.last().unwrap_or(&now) == t {
                if let Some(a) = self.avail.last_mut() {
                    *a = level;
                }
            } else {
                self.times.push(t);
                self.avail.push(level);
            }
        }
    }

    /// Index of the step containing `t` (t ≥ the profile's start).
    fn seg(&self, t: Time) -> usize {
        self.times.partition_point(|&x| x <= t).saturating_sub(1)
    }

    /// Processors free at instant `t` according to the step function (holds excluded).
    pub fn avail_at(&self, t: Time) -> i64 {
        self.avail[self.seg(t)]
    }

    /// The earliest τ ≥ `from` at which `procs` processors are available for `est`.
    pub fn earliest(&self, from: Time, procs: u32, est: Dur) -> Time {
        let need = i64::from(procs);
        if est.0 <= 0 {
            let mut i = self.seg(from);
            while i < self.avail.len() {
                if self.avail[i] >= need {
                    return self.times[i].max(from);
                }
                i += 1;
            }
            return *self.times.last().unwrap_or(&from);
        }
        let n = self.times.len();
        // One forward walk: the candidate start `s` (in step `i`) moves past every step too
        // short for the job, to the next step with enough, until a window fits.
        let mut s = from;
        let mut i = self.seg(s);
        'candidates: loop {
            let end = s + est;
            let mut k = i;
            while k < n && self.times[k] < end {
                if self.avail[k] < need {
                    k += 1;
                    while k < n && self.avail[k] < need {
                        k += 1;
                    }
                    if k == n {
                        // The last step never ends: the job can never fit (procs > total).
                        return Time::MAX;
                    }
                    (s, i) = (self.times[k], k);
                    continue 'candidates;
                }
                k += 1;
            }
            let h = self.holds.partition_point(|h| h.0 <= s);
            for &(tau, held) in &self.holds[h..] {
                if tau >= end {
                    break;
                }
                if self.avail_at(tau) - held < need {
                    (s, i) = (tau, self.seg(tau));
                    continue 'candidates;
                }
            }
            return s;
        }
    }

    /// Reserves `procs` processors on `[at, at+est)`, or at the instant `at` when `est` is 0.
    pub fn reserve(&mut self, at: Time, procs: u32, est: Dur) {
        let p = i64::from(procs);
        if est.0 <= 0 {
            match self.holds.binary_search_by_key(&at, |h| h.0) {
                Ok(i) => self.holds[i].1 += p,
                Err(i) => self.holds.insert(i, (at, p)),
            }
            return;
        }
        let a = self.split(at, 0);
        let b = self.split(at + est, a);
        for v in &mut self.avail[a..b] {
            *v -= p;
        }
    }

    /// Makes `t` a step boundary; returns its index. `t` is after the step at `from`.
    fn split(&mut self, t: Time, from: usize) -> usize {
        let i = from + self.times[from..].partition_point(|&x| x < t);
        if i < self.times.len() && self.times[i] == t {
            return i;
        }
        let v = self.avail[i - 1];
        self.times.insert(i, t);
        self.avail.insert(i, v);
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(now: i64, free: u32) -> Profile {
        let mut p = Profile::default();
        p.rebuild(Time(now), free, &[], &[(Time(now + 100), 10 - free)]);
        p
    }

    /// The candidate-by-candidate search the forward walk replaced (each candidate start
    /// looked up again, restarted at the next step after a short one): the reference.
    fn reference_earliest(p: &Profile, from: Time, procs: u32, est: Dur) -> Time {
        let need = i64::from(procs);
        let mut s = from;
        'candidates: loop {
            let end = s + est;
            let mut i = p.seg(s);
            while i < p.times.len() && p.times[i] < end {
                if p.avail[i] < need {
                    let Some(&next) = p.times.get(i + 1) else {
                        return Time::MAX;
                    };
                    s = next;
                    continue 'candidates;
                }
                i += 1;
            }
            let blocked = p
                .holds
                .iter()
                .find(|&&(tau, held)| tau > s && tau < end && p.avail_at(tau) - held < need);
            match blocked {
                Some(&(tau, _)) => s = tau,
                None => return s,
            }
        }
    }

    fn running(now: i64, jobs: &[(i64, u32)]) -> Vec<RunningJob> {
        use crate::ids::JobId;
        use crate::model::{JobSpec, Slice};
        jobs.iter()
            .enumerate()
            .map(|(i, &(left, cpus))| {
                let spec = JobSpec::new(JobId(i as u64), Time(0), cpus, Dur(now + left));
                RunningJob::new(
                    spec.into(),
                    Time(0),
                    i as u64,
                    vec![Slice::new(0, cpus, 0)].into(),
                )
            })
            .collect()
    }

    proptest::proptest! {
        /// Random running jobs, then a plan of random jobs (some of zero length, some that never
        /// fit): every answer and every step value as the reference gives them.
        #[test]
        fn answers_as_the_reference(
            now in 0i64..50,
            run in proptest::collection::vec((-20i64..300, 1u32..8), 0..20),
            extra in proptest::collection::vec((0i64..300, 1u32..8), 0..4),
            jobs in proptest::collection::vec((1u32..40, 0i64..120, 0u32..4), 0..40),
        ) {
            let total: u32 = 32;
            let held: u32 = run.iter().map(|r| r.1).sum::<u32>() + extra.iter().map(|e| e.1).sum::<u32>();
            let free = total.saturating_sub(held);
            let running = running(now, &run);
            let extra: Vec<(Time, u32)> = extra.iter().map(|&(t, c)| (Time(now + t), c)).collect();
            let mut p = Profile::default();
            for round in 0..2 {
                p.rebuild(Time(now), free, &running, &extra);
                // The steps as rebuilt, and the reservations made since: what every step
                // value must be.
                let base = p.clone();
                let mut made: Vec<(Time, Time, i64)> = Vec::new();
                for &(cpus, est, from) in &jobs {
                    let from = Time(now + i64::from(from) * 7 * round);
                    let est = Dur(if est < 10 { 0 } else { est });
                    let a = p.earliest(from, cpus, est);
                    if est.0 > 0 {
                        proptest::prop_assert_eq!(a, reference_earliest(&p, from, cpus, est));
                    }
                    if a == Time::MAX {
                        continue;
                    }
                    p.reserve(a, cpus, est);
                    if est.0 > 0 {
                        made.push((a, a + est, i64::from(cpus)));
                    }
                    for t in (now..now + 700).step_by(13) {
                        let t = Time(t);
                        let taken: i64 = made.iter().filter(|m| m.0 <= t && t < m.1).map(|m| m.2).sum();
                        proptest::prop_assert_eq!(p.avail_at(t), base.avail_at(t) - taken);
                    }
                }
            }
        }
    }

    #[test]
    fn earliest_fits_around_reservations() {
        // 4 free now, all 10 free from 100.
        let mut p = flat(0, 4);
        assert_eq!(p.earliest(Time(0), 4, Dur(50)), Time(0));
        assert_eq!(p.earliest(Time(0), 5, Dur(50)), Time(100));
        p.reserve(Time(100), 10, Dur(50));
        // a 1-proc job of 120 overlaps the full reservation: after it
        assert_eq!(p.earliest(Time(0), 1, Dur(120)), Time(150));
        // a 1-proc job of 100 ends exactly when the reservation starts
        assert_eq!(p.earliest(Time(0), 1, Dur(100)), Time(0));
    }

    #[test]
    fn zero_length_holds_block_only_strict_interiors() {
        let mut p = flat(0, 4);
        p.reserve(Time(10), 10, Dur(0)); // hold all 10 at instant 10 (would-be)
        // 1 proc, 20 s from 0 contains 10 strictly: blocked; starts at 10
        assert_eq!(p.earliest(Time(0), 1, Dur(20)), Time(10));
        // ending exactly at 10 is fine
        assert_eq!(p.earliest(Time(0), 1, Dur(10)), Time(0));
        // a zero-length job at 10 is not blocked by the hold
        assert_eq!(p.earliest(Time(10), 4, Dur(0)), Time(10));
    }
}
