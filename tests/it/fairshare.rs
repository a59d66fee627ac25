//! Multi-user scenarios for fair-share ordering.

use crate::util::{prepare, run};
use mini_slurm::ids::Names;
use mini_slurm::metrics::SimResult;
use mini_slurm::metrics::{Fairness, jain};
use mini_slurm::model::EstimateMode;
use mini_slurm::trace::csv;
use std::fmt::Write as _;
use std::io::Cursor;
use std::path::Path;

fn workload(rows: &[(u64, i64, i64, &str)]) -> mini_slurm::trace::Workload {
    let mut text = String::from("id,submit,runtime,cpus,walltime,user\n");
    for (id, submit, run, user) in rows {
        let _ = writeln!(text, "{id},{submit},{run},4,{run},{user}");
    }
    csv::read(
        Box::new(Cursor::new(text.into_bytes())),
        Path::new("users.csv"),
        false,
    )
    .unwrap()
}

fn starts_of(r: &SimResult, names: &Names, user: &str) -> Vec<i64> {
    r.jobs
        .iter()
        .filter(|j| names.get(j.spec.user) == user)
        .map(|j| j.start.millis() / 1000)
        .collect()
}

/// A heavy user queues 20 machine-wide jobs at once; a light user submits 4 later. Under FCFS
/// the light user waits behind the whole backlog; under fair-share its jobs overtake the heavy
/// user's waiting ones as soon as the heavy user has used the machine.
#[test]
fn light_user_overtakes_heavy_backlog() {
    let mut rows: Vec<(u64, i64, i64, &str)> = (1..=20).map(|i| (i, 0, 100, "heavy")).collect();
    rows.extend((21..=24).map(|i| (i, 150 + (i as i64 - 21) * 10, 100, "light")));
    let w = workload(&rows);
    let jobs = prepare(&w, EstimateMode::Requested, Some(4));
    let fcfs = run(&jobs, "fcfs");
    let fair = run(&jobs, "multifactor[age=0,fairshare=10000]");
    // FCFS: the light user's first job starts after all 20 heavy jobs (at 2000 s).
    assert_eq!(starts_of(&fcfs, &w.names, "light")[0], 2000);
    // Fair-share: the light user's first job starts at the first completion after it arrives
    // (200 s) and its second right after (300 s), ahead of 17 waiting heavy jobs. By 400 s both
    // users have used 800 CPU-seconds, the heavy user's longer ago (so decayed more): from then
    // on they alternate, 400 heavy, 500 light, 600 heavy, 700 light.
    let light = starts_of(&fair, &w.names, "light");
    assert_eq!(light, [200, 300, 500, 700]);
    let heavy = starts_of(&fair, &w.names, "heavy");
    assert_eq!(&heavy[..4], [0, 100, 400, 600]);
    // Every job still runs, and the light user's mean bounded slowdown falls.
    assert_eq!(fair.jobs.len(), 24);
    let f_fcfs = Fairness::compute(&fcfs, &w.names);
    let f_fair = Fairness::compute(&fair, &w.names);
    assert!(
        f_fair.users["light"].mean_bounded_slowdown
            < f_fcfs.users["light"].mean_bounded_slowdown / 5.0
    );
}

/// Two users with equal shares and endless demand: A queues its whole backlog first. Under
/// FCFS A gets the machine until its backlog is gone; under fair-share the delivered shares
/// converge to the configured 50 / 50.
#[test]
fn delivered_shares_converge_to_equal_shares() {
    let mut rows: Vec<(u64, i64, i64, &str)> = (1..=60).map(|i| (i, 0, 100, "a")).collect();
    rows.extend((61..=120).map(|i| (i, 1, 100, "b")));
    let w = workload(&rows);
    let jobs = prepare(&w, EstimateMode::Requested, Some(4));
    let fcfs = Fairness::compute(&run(&jobs, "fcfs"), &w.names);
    let fair = Fairness::compute(
        &run(
            &jobs,
            "multifactor[age=0,fairshare=10000,half_life=0:30:00]",
        ),
        &w.names,
    );
    // FCFS: the first half of the run is all A.
    for win in &fcfs.share_windows[..4] {
        assert_eq!(win.shares.get("a").copied().unwrap_or(0.0), 1.0);
    }
    // Fair-share: every window serves both users about equally.
    for win in &fair.share_windows {
        let a = win.shares.get("a").copied().unwrap_or(0.0);
        assert!((0.35..=0.65).contains(&a), "share of a in {win:?}");
    }
    assert!((fair.users["a"].share - 0.5).abs() < 1e-9);
}

#[test]
fn jain_index_bounds() {
    assert_eq!(jain(&[1.0, 1.0, 1.0]), 1.0);
    assert!((jain(&[1.0, 0.0, 0.0, 0.0]) - 0.25).abs() < 1e-12);
    assert_eq!(jain(&[]), 1.0);
}

/// Shares from an accounts file: account A holds 80 shares, B 20; with endless demand from one
/// user in each, fair-share delivers the machine in about that proportion.
#[test]
fn accounts_file_shares_are_honoured() {
    use mini_slurm::sim::{SimConfig, simulate};
    let mut rows: Vec<(u64, i64, i64, &str)> = (1..=100).map(|i| (i, 0, 100, "a")).collect();
    rows.extend((101..=200).map(|i| (i, 1, 100, "b")));
    let mut w = workload(&rows);
    let assoc = mini_slurm::config::accounts::parse(
        "account A shares=80\naccount B shares=20\nuser a account=A\nuser b account=B\n",
        Path::new("accounts"),
        &mut w.names,
    )
    .unwrap();
    let jobs = prepare(&w, EstimateMode::Requested, Some(4));
    let spec = "multifactor[age=0,fairshare=10000,half_life=0:30:00]";
    let (p, _) = mini_slurm::policy::build(spec).unwrap();
    let cfg = SimConfig {
        assoc: Some(assoc),
        ..SimConfig::new(p, spec)
    };
    let r = simulate(&jobs, cfg, &mut crate::util::InvariantCheck).unwrap();
    let f = Fairness::compute(&r, &w.names);
    // While both users have work (the first half of the run), A gets about 80 %.
    for win in &f.share_windows[..4] {
        let a = win.shares.get("a").copied().unwrap_or(0.0);
        assert!((0.7..=0.9).contains(&a), "share of a in {win:?}");
    }
}

/// QOS levels from an accounts file and `nice` from the trace: with one machine-wide job
/// running and four waiting, the multifactor order is QOS priority first (weight 1000), then
/// nice, then submit time. Without the file every QOS factor is 0 and only nice reorders.
#[test]
fn qos_levels_and_nice_order_the_queue() {
    use mini_slurm::sim::{SimConfig, simulate};
    let text = "id,submit,runtime,cpus,walltime,user,qos,nice\n\
                1,0,100,4,100,u,,0\n\
                2,1,100,4,100,u,normal,0\n\
                3,2,100,4,100,u,high,0\n\
                4,3,100,4,100,u,normal,-50\n\
                5,4,100,4,100,u,,10\n";
    let mut w = csv::read(
        Box::new(Cursor::new(text.as_bytes().to_vec())),
        Path::new("qos.csv"),
        false,
    )
    .unwrap();
    let assoc = mini_slurm::config::accounts::parse(
        "qos high priority=100\nqos normal priority=50\n",
        Path::new("accounts"),
        &mut w.names,
    )
    .unwrap();
    let jobs = prepare(&w, EstimateMode::Requested, Some(4));
    let spec = "multifactor[age=0,fairshare=0,qos=1000]";
    let sim = |assoc| {
        let (p, _) = mini_slurm::policy::build(spec).unwrap();
        let cfg = SimConfig {
            assoc,
            ..SimConfig::new(p, spec)
        };
        let r = simulate(&jobs, cfg, &mut crate::util::InvariantCheck).unwrap();
        let mut order = crate::util::starts(&r);
        order.sort_by_key(|&(id, start)| (start, id));
        order.into_iter().map(|(id, _)| id).collect::<Vec<_>>()
    };
    // Priorities: 3 → 1000; 4 → 500 + 50; 2 → 500; 1 → 0; 5 → −10.
    assert_eq!(sim(Some(assoc)), [1, 3, 4, 2, 5]);
    // No QOS levels: 4 → 50; 2 → 0 (earlier submit than 3); 3 → 0; 5 → −10.
    assert_eq!(sim(None), [1, 4, 2, 3, 5]);
}

#[test]
fn bad_nice_cell_names_line_and_column() {
    let text = "id,submit,runtime,cpus,nice\n1,0,10,1,3\n2,0,10,1,lots\n";
    let e = csv::read(
        Box::new(Cursor::new(text.as_bytes().to_vec())),
        Path::new("n.csv"),
        false,
    )
    .err()
    .unwrap();
    assert_eq!(
        e.to_string(),
        "n.csv:3: column 'nice': expected an integer, found 'lots'"
    );
}
