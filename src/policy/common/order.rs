//! Queue orderings. A policy that takes an `order` parameter arranges the pending jobs with one
//! of these before it applies its start-time discipline.

use crate::engine::PendingJob;
use crate::policy::{ParamInfo, Params, PolicyError};
use std::cmp::Reverse;

/// The `order` parameter shared by policies.
pub const ORDER_PARAM: ParamInfo = ParamInfo {
    name: "order",
    default: "queue",
    help: "`queue`: submit time, then arrival (trace position); `priority`: priority descending, then submit time, then job id",
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Order {
    /// Submit time, then arrival order: the engine's own queue order.
    #[default]
    Queue,
    /// Priority descending, then submit time, then job id.
    Priority,
}

impl Order {
    /// Reads the `order` parameter (default `queue`).
    pub fn from_params(params: &mut Params) -> Result<Order, PolicyError> {
        match params.take("order").as_deref() {
            None | Some("queue") | Some("fcfs") | Some("submit") => Ok(Order::Queue),
            Some("priority") => Ok(Order::Priority),
            Some(other) => Err(params.bad(
                "order",
                format!("unknown ordering '{other}' (expected queue or priority)"),
            )),
        }
    }

    /// Fills `out` with the positions of `pending` in this order.
    pub fn arrange(self, pending: &[PendingJob], out: &mut Vec<u32>) {
        out.clear();
        out.extend(0..pending.len() as u32);
        if self == Order::Priority {
            out.sort_unstable_by_key(|&i| {
                let s = &pending[i as usize].spec;
                (Reverse(s.priority), s.submit, s.id, pending[i as usize].seq)
            });
        }
    }
}
