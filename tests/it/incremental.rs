//! Differential tests: the strict policies' incremental orders against the sort in every pass
//! they replaced (`arrange=sort`), on random deep queues with many users, nice values, QOS
//! levels, fair-share trees and limits. The schedules must be identical, job by job.

use crate::util::InvariantCheck;
use mini_slurm::config::accounts;
use mini_slurm::ids::Names;
use mini_slurm::metrics::SimResult;
use mini_slurm::model::{AssocConfig, Cluster, EstimateMode};
use mini_slurm::policy;
use mini_slurm::sched::limits::{Limit, Limits};
use mini_slurm::sched::placement::BestFit;
use mini_slurm::sim::{SimConfig, simulate};
use mini_slurm::trace::{PrepareOptions, SimJobs, csv};
use proptest::prelude::*;
use std::fmt::Write as _;
use std::io::Cursor;
use std::path::Path;

const ACCOUNTS: &str = "account a1 shares=2\naccount a2 shares=1\n\
                        user u0 account=a1 shares=3\nuser u1 account=a1\nuser u2 account=a2\n\
                        qos q0 priority=0\nqos q1 priority=10\nqos q2 priority=100\n";

/// (submit gap, run, cpus, walltime, user, nice, qos) per job; several jobs often arrive at
/// once, on a machine they overload, so queues run deep.
type Row = (i64, i64, u32, i64, u32, i32, u32);

fn rows() -> impl Strategy<Value = Vec<Row>> {
    let row = (
        prop_oneof![Just(0i64), 0i64..400],
        1i64..600,
        1u32..=8,
        prop_oneof![Just(0i64), 1i64..900],
        0u32..6,
        prop_oneof![Just(0i32), -2i32..3],
        0u32..3,
    );
    proptest::collection::vec(row, 1..120)
}

fn workload(rows: &[Row], names: &mut Names) -> (SimJobs, AssocConfig) {
    let mut text = String::from("id,submit,runtime,cpus,walltime,user,group,qos,nice\n");
    let mut t = 0;
    for (i, &(gap, run, cpus, wall, user, nice, qos)) in rows.iter().enumerate() {
        t += gap;
        let wall = if wall == 0 { run } else { wall };
        let _ = writeln!(
            text,
            "{},{t},{run},{cpus},{wall},u{user},g{},q{qos},{nice}",
            i + 1,
            user % 2
        );
    }
    let mut w = csv::read(
        Box::new(Cursor::new(text.into_bytes())),
        Path::new("t.csv"),
        false,
    )
    .unwrap();
    let assoc = accounts::parse(ACCOUNTS, Path::new("accounts"), &mut w.names).unwrap();
    *names = w.names.clone();
    let cluster = Cluster::uniform(1, 8, 0, 0).unwrap();
    let opts = PrepareOptions {
        estimate: EstimateMode::Requested,
        kill_at_limit: false,
        switches: None,
        speedup: Default::default(),
    };
    (w.prepare(&cluster, &BestFit, &opts), assoc)
}

fn run(jobs: &SimJobs, spec: &str, assoc: Option<&AssocConfig>, limits: Limits) -> SimResult {
    let (p, s) = policy::build(spec).unwrap();
    let name = s.canonical();
    let mut cfg = SimConfig::new(p, &name);
    cfg.assoc = assoc.cloned();
    cfg.limits = limits;
    simulate(jobs, cfg, &mut InvariantCheck).unwrap()
}

/// Every job's (id, start, finish, pending reason).
fn schedule(r: &SimResult) -> Vec<(u64, i64, i64, String)> {
    r.jobs
        .iter()
        .map(|j| {
            (
                j.spec.id.0,
                j.start.millis(),
                j.finish.millis(),
                j.pending_reason.to_string(),
            )
        })
        .collect()
}

const WEIGHTS: [&str; 6] = [
    "",
    "jobsize=500,favor_small=yes",
    "qos=3000,age=10",
    "tree=accounts,half_life=0:20:00",
    "algo=fairtree,age=0",
    "age=0,fairshare=0",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn incremental_multifactor_schedules_as_the_sort(rows in rows(), k in 0usize..WEIGHTS.len(), with_file in any::<bool>(), limited in any::<bool>()) {
        let _heavy = crate::util::heavy();
        let mut names = Names::default();
        let (mut jobs, assoc) = workload(&rows, &mut names);
        let assoc = with_file.then_some(&assoc);
        let limits = if limited {
            Limits { user: Limit::parse("cpus=6").unwrap(), ..Limits::default() }
        } else {
            Limits::default()
        };
        jobs.drop_over_limit(&limits);
        let w = WEIGHTS[k];
        let sep = if w.is_empty() { "" } else { "," };
        let fast = run(&jobs, &format!("multifactor[{w}]"), assoc, limits);
        let sorted = run(&jobs, &format!("multifactor[{w}{sep}arrange=sort]"), assoc, limits);
        prop_assert_eq!(schedule(&fast), schedule(&sorted));
    }
}
