//! `multifactor` — Slurm's `priority/multifactor`, started in strict priority order.
//!
//! Each pending job's priority is a weighted sum of factors in [0, 1]: age (time waited over
//! `max_age`, at most 1); classic fair-share F = 2^(−U/S) of its user, with U the user's
//! allocated CPU-seconds decayed with `half_life` over all usage, and S equal among the users
//! with jobs in the system (or, with `tree=accounts`, equal among accounts and among the users
//! of an account, with Slurm's effective usage); job size (CPUs over the machine's, or its
//! complement with `favor_small=yes`); partition (1 for every job: one priority tier) and QOS
//! (the job's QOS priority over the largest, from the accounts file's `qos NAME priority=N`
//! lines); the job's nice is subtracted from the sum. Jobs start in descending priority (ties:
//! submit time, then job id) while they fit; the first that does not fit stops the pass, as
//! `fcfs` does. For backfilling over this order use `easy[order=multifactor,...]` or
//! `conservative[order=multifactor,...]`, which take the same weights.

use super::common::order::params_with_multifactor;
use super::common::{Order, Strict};
use super::{PolicyError, PolicyInfo};
use crate::sched::{Decisions, Policy, View};

pub const INFO: PolicyInfo = PolicyInfo {
    name: "multifactor",
    summary: "Slurm's multifactor priority (age, classic fair-share, job size) in strict order; usable as order=multifactor under easy and conservative.",
    source: include_str!("multifactor.rs"),
    params: params_with_multifactor!(; ),
    build,
};

fn build(params: &mut super::Params) -> Result<Box<dyn Policy>, PolicyError> {
    Ok(Box::new(MultifactorPolicy {
        order: Order::multifactor(params)?,
        buf: Vec::new(),
        strict: Strict::default(),
    }))
}

pub struct MultifactorPolicy {
    order: Order,
    buf: Vec<u32>,
    strict: Strict,
}

impl Policy for MultifactorPolicy {
    fn usage_half_life(&self) -> Option<crate::time::Dur> {
        self.order.half_life()
    }
    fn usage_billing(&self) -> crate::sched::usage::Billing {
        self.order.billing()
    }
    fn schedule(&mut self, view: &View<'_>, out: &mut Decisions) {
        self.order.arrange(view, &mut self.buf);
        self.strict.pass(view, self.buf.iter().copied(), None, out);
    }
}
