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

use super::common::incremental::MultifactorQueue;
use super::common::order::{Multifactor, params_with_multifactor};
use super::common::{Order, Strict};
use super::{PolicyError, PolicyInfo};
use crate::sched::{Decisions, Policy, View};

pub const INFO: PolicyInfo = PolicyInfo {
    name: "multifactor",
    summary: "Slurm's multifactor priority (age, classic fair-share, job size) in strict order; usable as order=multifactor under easy and conservative.",
    source: include_str!("multifactor.rs"),
    params: params_with_multifactor!(; ARRANGE_PARAM),
    build,
};

const ARRANGE_PARAM: super::ParamInfo = super::ParamInfo {
    name: "arrange",
    default: "incremental",
    help: "`incremental`: keep the order across passes and look only at its head (fast on deep queues); `sort`: compute every pending job's priority and sort them in every pass (the same schedule; for cross-checks)",
};

fn build(params: &mut super::Params) -> Result<Box<dyn Policy>, PolicyError> {
    let incremental = match params.take("arrange").as_deref() {
        None | Some("incremental") => true,
        Some("sort") => false,
        Some(v) => {
            return Err(params.bad(
                "arrange",
                format!("expected incremental or sort, found '{v}'"),
            ));
        }
    };
    Ok(Box::new(MultifactorPolicy {
        order: Order::multifactor(params)?,
        incremental,
        queue: MultifactorQueue::default(),
        buf: Vec::new(),
        strict: Strict::default(),
    }))
}

pub struct MultifactorPolicy {
    order: Order,
    /// Use `queue` (else sort in every pass).
    incremental: bool,
    queue: MultifactorQueue,
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
        // With elastic jobs the layer shows the policy resized copies of their specs: the
        // incremental index (built from the specs it saw) sits those passes out.
        if let (true, 0, Order::Multifactor(m)) = (self.incremental, view.elastic_jobs, &self.order)
        {
            let m: &Multifactor = m;
            let queue = &mut self.queue;
            let factors = queue.start(m, view);
            let order = std::iter::from_fn(|| queue.next(m, view, factors.as_ref()));
            self.strict.pass(view, order, None, out);
            queue.finish(factors);
            return;
        }
        self.queue.invalidate();
        self.order.arrange(view, &mut self.buf);
        self.strict.pass(view, self.buf.iter().copied(), None, out);
    }
}
