//! # mini-slurm
//!
//! A simulation-first batch job scheduler. One policy-agnostic scheduling engine runs in two
//! modes:
//!
//! - **sim**: a discrete-event simulator replays a workload trace (the Parallel Workloads
//!   Archive's SWF, our CSV, a `sacct` dump or a generated workload) on virtual time under a
//!   policy and reports per-job records and summary metrics;
//! - **live**: the same engine, with a wall clock, a process executor and an SQLite store,
//!   runs real jobs on this machine ([`live`]).
//!
//! ## Concepts, in dependency order
//!
//! - [`time`], [`ids`]: integer milliseconds; job ids and interned names.
//! - [`model`]: what a user asks for ([`model::JobSpec`]) versus what really happens
//!   ([`model::JobTruth`], simulation only); the cluster; job states and pending reasons with
//!   Slurm's names ([`model::state`]); accounts data. Policies never see the truth.
//! - [`sched`]: the scheduling interface — everything a policy sees ([`sched::View`]) and
//!   returns ([`sched::Decisions`]), the usage and limit ledgers, placement and admission.
//! - [`engine`]: plain state and `step(now, events) → commands`; validates each pass on a
//!   scratch copy and applies it at once; no IO, no clock, no randomness.
//! - [`policy`]: pure deciders over a [`sched::View`]; registered in one list.
//! - [`driver`]: the single loop over a `Clock`, an `Executor` and a `Store`; [`sim`] and
//!   [`live`] provide the virtual and the real ones.
//! - [`config`]: `slurm.conf`, `topology.conf` and accounts files; [`trace`]: readers,
//!   writers, the generator; [`metrics`]: results and the output schema; [`report`]: charts
//!   and pages.
//!
//! `engine` and `policy` both depend on `sched` and never on each other; `tests/it/boundaries.rs`
//! checks the whole module graph. Time is an integer number of milliseconds ([`time`]), so
//! simultaneous events are exactly simultaneous and a simulation is a pure function of its
//! inputs.
//!
//! ## Running a simulation or an experiment from Rust
//!
//! Everything the `sim`, `compare` and `experiment` commands do is a library call in [`sim`]:
//! fill in a [`sim::Setup`] (the trace, the machine, how jobs are read — what `sim`'s
//! workload flags set), [`sim::Setup::prepare`] it once into a [`sim::Prepared`] workload, and
//! [`sim::Prepared::run`] it under any policy spec; [`sim::output::write_run`] writes the
//! run's `jobs.csv` and `summary.json`, [`sim::compare`] runs several policies in parallel and
//! writes their report. An experiment file is read by [`sim::Experiment::read`], planned
//! ([`sim::Experiment::plan`]: the grid of runs, and which have no outputs yet), run
//! ([`sim::experiment::Plan::execute`], with a callback per finished run) and reported
//! ([`sim::experiment::Plan::write_report`]). Errors say which file, line or option was wrong,
//! and `is_input()` tells bad input from a failure. `tests/it/simlib.rs` checks that these
//! calls give the bytes the commands give.
//!
//! ```no_run
//! use mini_slurm::sim::{Experiment, Setup, output::write_run, parallel::default_threads};
//! use std::path::Path;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // One workload, read and checked once, run under two policies.
//! let mut setup = Setup::new("traces/lublin_256.swf.gz");
//! setup.machine.procs = Some(256);
//! let prepared = setup.prepare(&mut |notice| eprintln!("{notice}"))?;
//! for policy in ["fcfs", "easy"] {
//!     let run = prepared.run(policy)?;
//!     println!("{policy}: mean wait {:.0} s", run.summary.wait_s.mean);
//!     write_run(&Path::new("out").join(policy), &prepared, &run)?;
//! }
//!
//! // An experiment file, as `mini-slurm experiment` runs it.
//! let experiment = Experiment::read(Path::new("docs/examples/load-sweep.toml"))?;
//! let plan = experiment.plan(Some(Path::new("out/load-sweep")), false)?;
//! plan.execute(default_threads(), &|run| eprintln!("done: {}", run.id))?;
//! plan.write_report(false)?;
//! # Ok(())
//! # }
//! ```

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
