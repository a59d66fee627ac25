//! `conservative` — conservative backfilling: every queued job holds a reservation.
//!
//! Each pass builds the availability profile from now on: processors idle now, plus each
//! running job's processors released at its expected end (max(start + estimate, now)). The
//! queued jobs are taken in order; each gets the earliest τ ≥ now at which the profile has its
//! processors free during [τ, τ + estimate), and those are reserved. Jobs reserved at τ = now
//! that fit in the free processors start now. The profile is rebuilt from scratch every pass,
//! in queue order, as Slurm's backfill re-plans every cycle, so a job's planned start can move
//! later when a job ahead of it moves earlier (`cases/early-end` of the semantics).
//! A zero-length estimate holds its processors at the instant τ only (see
//! [`super::common::profile`]).
//!
//! The pass stops planning once no later job could start now (no processor left free now, or
//! fewer than the smallest remaining request); reservations are reported for the planned
//! prefix. Those later jobs' reservations would not change any start, so the schedule is the
//! same as with a full plan.

use super::common::order::ORDER_PARAM;
use super::common::{Order, Profile};
use super::{Decision, Policy, PolicyError, PolicyInfo, View};

pub const INFO: PolicyInfo = PolicyInfo {
    name: "conservative",
    summary: "Conservative backfilling: every queued job gets a reservation in order; a job starts now only if its reservation is now.",
    rules: "Each pass builds the availability profile from now on: the processors idle now, plus each \
running job's processors released at its expected end (max(start + estimate, now)). The queued \
jobs are taken in order; each gets the earliest τ ≥ now at which the profile has its processors \
free during [τ, τ + estimate), and those are reserved. Jobs reserved at τ = now that fit in the \
free processors start now. The plan is rebuilt from scratch every pass (as Slurm's backfill \
re-plans every cycle), so a job's planned start can move later when a job ahead of it moves \
earlier. A zero-length estimate holds its processors at the instant τ only: a later job whose \
interval [s, s+e) has s < τ < s+e counts them as taken; one starting exactly at τ does not.",
    params: &[ORDER_PARAM],
    build,
};

fn build(params: &mut super::Params) -> Result<Box<dyn Policy>, PolicyError> {
    Ok(Box::new(Conservative {
        order: Order::from_params(params)?,
        buf: Vec::new(),
        suffix_min: Vec::new(),
        profile: Profile::default(),
    }))
}

pub struct Conservative {
    order: Order,
    buf: Vec<u32>,
    suffix_min: Vec<u32>,
    profile: Profile,
}

impl Policy for Conservative {
    fn schedule(&mut self, view: &View<'_>, out: &mut Vec<Decision>) {
        let now = view.now;
        self.order.arrange(view.pending, &mut self.buf);
        // suffix_min[k] = smallest request among the jobs from k on.
        self.suffix_min.clear();
        self.suffix_min.resize(self.buf.len() + 1, u32::MAX);
        for k in (0..self.buf.len()).rev() {
            let p = view.pending[self.buf[k] as usize].spec.procs;
            self.suffix_min[k] = self.suffix_min[k + 1].min(p);
        }
        self.profile.rebuild(now, view.free, view.running, &[]);
        let mut free = view.free;
        for (k, &pos) in self.buf.iter().enumerate() {
            let room_now = self.profile.avail_at(now).min(i64::from(free));
            if room_now < i64::from(self.suffix_min[k]) {
                break;
            }
            let j = &view.pending[pos as usize].spec;
            let at = self.profile.earliest(now, j.procs, j.estimate);
            self.profile.reserve(at, j.procs, j.estimate);
            if at == now && j.procs <= free {
                free -= j.procs;
                out.push(Decision::Start { pos, job: j.id });
            } else {
                out.push(Decision::Reserve { pos, job: j.id, at });
            }
        }
    }
}
