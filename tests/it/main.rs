//! Integration tests, one binary: the semantics' hand-checked cases, hand-made policy
//! scenarios, property tests over every registered policy, CLI tests and a boundary check.

mod boundaries;
mod cases;
mod cli;
mod cluster_props;
mod dashboard_browser;
mod elastic;
mod fairshare;
mod incremental;
mod live;
mod live_contain;
mod live_crash;
mod live_faults;
mod live_http;
mod live_multi;
mod live_util;
mod live_ux;
mod pinned;
mod preempt;
mod props;
mod reports;
mod scenarios;
mod simlib;
mod slurm_fake;
mod slurm_fidelity;
mod slurm_policy;
mod slurm_real;
mod slurm_replay;
mod stream;
mod util;
mod workloads;
