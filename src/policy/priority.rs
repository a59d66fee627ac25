//! `priority` — strict priority order.
//!
//! Jobs are ordered by priority (larger first), then submit time, then job id. While the first
//! job in that order fits in the free processors, start it; stop at the first that does not.
//! This is FCFS over priority order (Slurm's `sched/builtin` with priorities). No parameters;
//! for backfilling over priority order use `easy[order=priority]` or
//! `conservative[order=priority]`.

use super::common::Order;
use super::{Decision, Policy, PolicyError, PolicyInfo, View};

pub const INFO: PolicyInfo = PolicyInfo {
    name: "priority",
    summary: "Strict priority order: priority descending, then submit time, then job id; stop at the first job that does not fit.",
    rules: "Jobs are ordered by priority (larger first), then submit time, then job id. While the \
first job in that order fits in the free processors, start it; stop at the first that does not \
(Slurm's `sched/builtin` with priorities). For backfilling over priority order use \
`easy[order=priority]` or `conservative[order=priority]`.",
    params: &[],
    build,
};

fn build(_: &mut super::Params) -> Result<Box<dyn Policy>, PolicyError> {
    Ok(Box::new(Priority { order: Vec::new() }))
}

pub struct Priority {
    order: Vec<u32>,
}

impl Policy for Priority {
    fn schedule(&mut self, view: &View<'_>, out: &mut Vec<Decision>) {
        Order::Priority.arrange(view.pending, &mut self.order);
        let mut free = view.free;
        for &pos in &self.order {
            let j = &view.pending[pos as usize];
            if j.spec.procs > free {
                break;
            }
            free -= j.spec.procs;
            out.push(Decision::Start {
                pos,
                job: j.spec.id,
            });
        }
    }
}
