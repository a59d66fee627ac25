//! # mini-slurm
//!
//! A simulation-first batch job scheduler. One policy-agnostic scheduling engine runs in two
//! modes:
//!
//! - **sim**: a discrete-event simulator replays a workload trace (the Parallel Workloads
//!   Archive's SWF, or our CSV) on virtual time under a policy and reports per-job records and
//!   summary metrics;
//! - **live** (planned): the same engine, with a wall clock and a process executor, runs real
//!   jobs on this machine.
//!
//! ## Concepts
//!
//! - [`model`]: what a user asks for ([`model::JobSpec`]) versus what really happens
//!   ([`model::JobTruth`], simulation only). Policies never see the truth.
//! - [`engine`]: plain state and `step(now, events) → commands`; no IO, no clock, no
//!   randomness. An invariant check runs after every step in tests.
//! - [`policy`]: pure deciders over a read-only view; registered in one list.
//! - [`driver`]: the single loop over a `Clock`, an `Executor` and a `Store`; [`sim`] provides
//!   the virtual ones.
//! - [`trace`]: readers; [`metrics`]: the output schema.
//!
//! Time is an integer number of milliseconds ([`time`]), so simultaneous events are exactly
//! simultaneous and a simulation is a pure function of its inputs.

pub mod config;
pub mod driver;
pub mod engine;
pub mod ids;
pub mod live;
pub mod metrics;
pub mod model;
pub mod policy;
pub mod report;
pub mod sched;
pub mod sim;
pub mod stats;
pub mod time;
pub mod trace;
