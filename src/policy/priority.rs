//! `priority` — strict priority order.
//!
//! Jobs are ordered by priority (larger first), then submit time, then job id. While the first
//! job in that order fits in the free resources, start it; stop at the first that does not. This
//! is FCFS over priority order (Slurm's `sched/builtin` with priorities). For backfilling over
//! priority order use `easy[order=priority]` or `conservative[order=priority]`.
//!
//! With `preempt=requeue|suspend|cancel`, a job that cannot start preempts running jobs of
//! strictly lower priority (lowest first, then the most recently started) until it fits; they
//! stop after `grace` seconds and are requeued, suspended (resumed later with their remaining
//! work) or cancelled (state PREEMPTED). With `preempt_by=qos` jobs are ranked by their QOS
//! priority (accounts file `qos` lines) instead.

use super::common::preempt::{GRACE_PARAM, PREEMPT_BY_PARAM, PREEMPT_PARAM};
use super::common::{Order, Preemption, Strict};
use super::{PolicyError, PolicyInfo};
use crate::sched::{Decisions, Policy, View};

pub const INFO: PolicyInfo = PolicyInfo {
    name: "priority",
    summary: "Strict priority order: priority descending, then submit time, then job id; stop at the first job that does not fit.",
    source: include_str!("priority.rs"),
    params: &[PREEMPT_PARAM, GRACE_PARAM, PREEMPT_BY_PARAM],
    build,
};

fn build(params: &mut super::Params) -> Result<Box<dyn Policy>, PolicyError> {
    Ok(Box::new(Priority {
        preemption: Preemption::from_params(params)?,
        ..Priority::default()
    }))
}

#[derive(Default)]
pub struct Priority {
    order: Vec<u32>,
    strict: Strict,
    preemption: Option<Preemption>,
}

impl Policy for Priority {
    fn schedule(&mut self, view: &View<'_>, out: &mut Decisions) {
        Order::Priority.arrange(view, &mut self.order);
        self.strict.pass(
            view,
            self.order.iter().copied(),
            self.preemption.as_ref(),
            out,
        );
    }
}
