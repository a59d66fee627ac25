//! `fcfs` — first come, first served.
//!
//! While the queue head fits in the free resources (the placement strategy finds nodes for it),
//! start it. Stop at the first job that does not fit: nothing behind it starts, even if it would
//! fit. Queue order is submit time, then position in the trace (semantics §5).

use super::common::Strict;
use super::{PolicyError, PolicyInfo};
use crate::sched::{Decisions, Policy, View};

pub const INFO: PolicyInfo = PolicyInfo {
    name: "fcfs",
    summary: "First come, first served: start queue-head jobs while they fit, stop at the first that does not.",
    source: include_str!("fcfs.rs"),
    params: &[],
    build,
};

fn build(_: &mut super::Params) -> Result<Box<dyn Policy>, PolicyError> {
    Ok(Box::new(Fcfs::default()))
}

#[derive(Default)]
pub struct Fcfs {
    strict: Strict,
}

impl Policy for Fcfs {
    fn schedule(&mut self, view: &View<'_>, out: &mut Decisions) {
        self.strict
            .pass(view, 0..view.pending.len() as u32, None, out);
    }
}
