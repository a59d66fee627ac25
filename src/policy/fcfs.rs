//! `fcfs` — first come, first served.
//!
//! While the queue head fits in the free processors, start it. Stop at the first job that does
//! not fit: nothing behind it may start (semantics §5). Queue order is submit time, then
//! position in the trace. No parameters.

use super::{Decision, Policy, PolicyError, PolicyInfo, View};

pub const INFO: PolicyInfo = PolicyInfo {
    name: "fcfs",
    summary: "First come, first served: start queue-head jobs while they fit, stop at the first that does not.",
    rules: "While the queue head fits in the free processors, start it. Stop at the first job that \
does not fit: nothing behind it starts, even if it would fit. Queue order is submit time, then \
position in the trace (semantics §5).",
    params: &[],
    build,
};

fn build(_: &mut super::Params) -> Result<Box<dyn Policy>, PolicyError> {
    Ok(Box::new(Fcfs))
}

pub struct Fcfs;

impl Policy for Fcfs {
    fn schedule(&mut self, view: &View<'_>, out: &mut Vec<Decision>) {
        let mut free = view.free;
        for (pos, j) in view.pending.iter().enumerate() {
            if j.spec.procs > free {
                break;
            }
            free -= j.spec.procs;
            out.push(Decision::Start {
                pos: pos as u32,
                job: j.spec.id,
            });
        }
    }
}
