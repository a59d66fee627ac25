//! Property tests over every registered policy (safety, causality, liveness, determinism) and
//! each backfilling policy's own guarantee, on random workloads.

use crate::util::InvariantCheck;
use mini_slurm::driver::Observer;
use mini_slurm::engine::{Command, Engine};
use mini_slurm::ids::{JobId, Names};
use mini_slurm::metrics::SimResult;
use mini_slurm::metrics::{Fairness, RunInfo, Summary, write_jobs_csv};
use mini_slurm::model::Cluster;
use mini_slurm::model::EstimateMode;
use mini_slurm::policy::{self, REGISTRY};
use mini_slurm::sched::placement::BestFit;
use mini_slurm::sim::{SimConfig, simulate};
use mini_slurm::time::Time;
use mini_slurm::trace::{PrepareOptions, SimJobs, TraceJob, Workload};
use proptest::prelude::*;
use std::collections::HashMap;

#[derive(Clone, Debug)]
struct Gen {
    procs: u32,
    /// (submit gap, run, procs, requested) in seconds; requested −1 = none.
    jobs: Vec<(i64, i64, i64, i64)>,
}

fn workload() -> impl Strategy<Value = Gen> {
    (1u32..=12).prop_flat_map(|p| {
        let job = (
            prop_oneof![Just(0i64), 0i64..30],
            prop_oneof![Just(0i64), 1i64..120],
            1i64..=i64::from(p),
            prop_oneof![Just(-1i64), 0i64..150],
        );
        (Just(p), proptest::collection::vec(job, 1..40))
            .prop_map(|(procs, jobs)| Gen { procs, jobs })
    })
}

fn to_jobs(g: &Gen, mode: EstimateMode) -> SimJobs {
    let mut w = Workload {
        declared_procs: Some(g.procs),
        names: Names::default(),
        ..Workload::default()
    };
    let mut t = 0;
    for (i, &(gap, run, procs, req)) in g.jobs.iter().enumerate() {
        t += gap;
        w.jobs.push(TraceJob {
            nice: (i as i32 % 5) - 2,
            ..crate::util::trace_job(i, t, run, procs, req)
        });
    }
    let cluster = Cluster::uniform(1, g.procs, 0, 0).unwrap();
    w.prepare(
        &cluster,
        &BestFit,
        &PrepareOptions {
            estimate: mode,
            kill_at_limit: false,
            switches: None,
            speedup: Default::default(),
        },
    )
}

fn sim(jobs: &SimJobs, spec: &str, obs: &mut dyn Observer) -> SimResult {
    let (p, s) = policy::build(spec).unwrap();
    let name = s.canonical();
    simulate(jobs, SimConfig::new(p, &name), obs).unwrap()
}

fn outputs(jobs: &SimJobs, r: &SimResult) -> (Vec<u8>, String) {
    let mut csv = Vec::new();
    write_jobs_csv(&mut csv, r, &Names::default(), &jobs.cluster).unwrap();
    let s = Summary::compute(
        &RunInfo {
            trace: "t",
            policy: "p",
            estimate: "e",
            placement: "best-fit",
        },
        jobs,
        r,
        &Names::default(),
    );
    // The summary gathers the fairness sums in its own pass over the jobs: the same values.
    let alone = Fairness::compute(r, &Names::default());
    assert_eq!(
        serde_json::to_string(&s.fairness).unwrap(),
        serde_json::to_string(&alone).unwrap()
    );
    (csv, s.to_json())
}

fn mode() -> impl Strategy<Value = EstimateMode> {
    prop_oneof![
        Just(EstimateMode::Requested),
        Just(EstimateMode::Max),
        Just(EstimateMode::Actual)
    ]
}

/// Specs run by the generic properties: every registered policy, plus priority orderings.
fn specs() -> Vec<String> {
    let mut v: Vec<String> = REGISTRY.iter().map(|p| p.name.to_string()).collect();
    v.push("easy[order=priority]".into());
    v.push("conservative[order=priority]".into());
    v.push("easy[order=multifactor,jobsize=500,half_life=0:10:00]".into());
    v.push("conservative[order=multifactor,tree=accounts]".into());
    v.push("easy[order=multifactor,algo=fairtree,tree=accounts]".into());
    v.push("priority[preempt=suspend]".into());
    v.push("easy[order=priority,preempt=requeue,grace=3]".into());
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_policy_is_safe_causal_live_and_deterministic(g in workload(), m in mode()) {
        let _heavy = crate::util::heavy();
        let jobs = to_jobs(&g, m);
        for spec in specs() {
            let r = sim(&jobs, &spec, &mut InvariantCheck);
            // liveness: every job ran, for exactly its run time
            prop_assert_eq!(r.jobs.len(), jobs.jobs.len());
            for j in &r.jobs {
                prop_assert!(j.start >= j.spec.submit, "{spec}: job {} starts before submit", j.spec.id);
                if j.preemptions == 0 {
                    prop_assert_eq!(j.finish, j.start + j.runtime);
                }
            }
            // safety: at every start instant, the jobs holding processors fit in the machine
            for j in &r.jobs {
                let used: u32 = r.jobs.iter()
                    .filter(|k| k.start <= j.start && j.start < k.finish)
                    .map(|k| k.spec.cpus).sum();
                prop_assert!(used <= g.procs, "{spec}: {used} > {} processors at {}", g.procs, j.start);
            }
            // determinism: same inputs, same bytes
            let again = sim(&jobs, &spec, &mut InvariantCheck);
            prop_assert_eq!(outputs(&jobs, &r), outputs(&jobs, &again));
        }
    }

    #[test]
    fn easy_starts_the_head_by_its_shadow_time(g in workload()) {
        let _heavy = crate::util::heavy();
        let jobs = to_jobs(&g, EstimateMode::Actual);
        let mut obs = ShadowWatch::default();
        let r = sim(&jobs, "easy", &mut obs);
        let start: HashMap<JobId, Time> = r.jobs.iter().map(|j| (j.spec.id, j.start)).collect();
        prop_assert!(!obs.promises.is_empty() || r.jobs.iter().all(|j| j.start == j.spec.submit));
        for (job, shadow) in obs.promises {
            prop_assert!(start[&job] <= shadow, "head {job} started {} after its shadow {shadow}", start[&job]);
        }
    }

    #[test]
    fn conservative_plans_are_feasible_and_greedy(g in workload(), m in mode()) {
        let _heavy = crate::util::heavy();
        let jobs = to_jobs(&g, m);
        let mut obs = PlanWatch { procs: g.procs, checked: 0 };
        sim(&jobs, "conservative", &mut obs);
        prop_assert!(obs.checked >= jobs.jobs.len() as u64, "every job was planned at least once");
    }
}

/// Records, after every pass, the queue head and its shadow time computed independently.
#[derive(Default)]
struct ShadowWatch {
    promises: Vec<(JobId, Time)>,
}

impl Observer for ShadowWatch {
    fn after_step(&mut self, now: Time, e: &Engine, _c: &[Command]) {
        let Some(head) = e.pending().first() else {
            return;
        };
        let mut ends: Vec<(Time, u32)> = e
            .running()
            .iter()
            .map(|r| (r.expected_end(now), r.cpus))
            .collect();
        ends.sort();
        let mut avail = e.free_procs() as u32;
        for (t, p) in ends {
            avail += p;
            if avail >= head.spec.cpus {
                self.promises.push((head.spec.id, t));
                return;
            }
        }
        panic!("head {} can never fit", head.spec.id);
    }
}

/// Checks each conservative pass: the plan (running jobs, jobs started now and reservations,
/// in queue order) never over-commits the machine, and every job's planned start is the
/// earliest feasible one given only the jobs ahead of it — found here by brute force.
struct PlanWatch {
    procs: u32,
    checked: u64,
}

/// (start, end, procs); end == start for a zero-length item.
type Item = (i64, i64, i64);

fn usage_half_open(items: &[Item], x: i64) -> i64 {
    items
        .iter()
        .filter(|&&(s, e, _)| e > s && s <= x && x < e)
        .map(|i| i.2)
        .sum()
}

fn holds(items: &[Item], x: i64) -> i64 {
    items
        .iter()
        .filter(|&&(s, e, _)| s == e && s == x)
        .map(|i| i.2)
        .sum()
}

fn feasible(items: &[Item], p: i64, s: i64, e: i64, cap: i64) -> bool {
    if e == s {
        return usage_half_open(items, s) + p <= cap;
    }
    let mut points = vec![s];
    points.extend(
        items
            .iter()
            .flat_map(|i| [i.0, i.1])
            .filter(|&x| x > s && x < e),
    );
    let steps_ok = points.iter().all(|&x| usage_half_open(items, x) + p <= cap);
    let holds_ok = items
        .iter()
        .filter(|&&(a, b, _)| a == b && s < a && a < e)
        .all(|&(t, _, _)| usage_half_open(items, t) + holds(items, t) + p <= cap);
    steps_ok && holds_ok
}

impl Observer for PlanWatch {
    fn after_step(&mut self, now: Time, e: &Engine, commands: &[Command]) {
        let now = now.millis();
        let cap = i64::from(self.procs);
        let started: Vec<JobId> = commands
            .iter()
            .filter_map(|c| match c {
                Command::Start { job, .. } => Some(*job),
                _ => None,
            })
            .collect();
        // Jobs that were already running before this pass: fixed.
        let mut items: Vec<Item> = e
            .running()
            .iter()
            .filter(|r| !started.contains(&r.spec.id))
            .map(|r| (now, r.expected_end(Time(now)).millis(), i64::from(r.cpus)))
            .filter(|i| i.1 > now)
            .collect();
        // The plan in queue order: ids were assigned in queue order by the generator.
        let mut plan: Vec<(JobId, i64, i64, i64)> = Vec::new();
        for r in e.running().iter().filter(|r| started.contains(&r.spec.id)) {
            plan.push((r.spec.id, now, r.spec.estimate.millis(), i64::from(r.cpus)));
        }
        for &(job, at) in e.plan() {
            let p = e
                .pending()
                .iter()
                .find(|p| p.spec.id == job)
                .expect("planned job pending");
            plan.push((
                job,
                at.millis(),
                p.spec.estimate.millis(),
                i64::from(p.spec.cpus),
            ));
        }
        plan.sort_by_key(|x| x.0);
        for (job, at, est, p) in plan {
            assert!(at >= now, "job {job} planned in the past");
            assert!(
                feasible(&items, p, at, at + est, cap),
                "job {job} planned at {at} over-commits"
            );
            let mut candidates: Vec<i64> = vec![now];
            candidates.extend(items.iter().flat_map(|i| [i.0, i.1]));
            for c in candidates.into_iter().filter(|&c| c >= now && c < at) {
                assert!(
                    !feasible(&items, p, c, c + est, cap),
                    "job {job} planned at {at} but fits earlier at {c}"
                );
            }
            items.push((at, at + est, p));
            self.checked += 1;
        }
    }
}

/// Per-user quotas: at no start instant does any user hold more CPUs or jobs than allowed,
/// whatever the policy, and every job still runs.
mod limits {
    use super::*;
    use mini_slurm::sched::limits::{Limit, Limits};

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn user_limits_are_never_exceeded(g in workload(), cpus_cap in 1u64..6, jobs_cap in 1u64..3) {
            let mut jobs = to_jobs(&g, EstimateMode::Requested);
            let limits = Limits {
                user: Limit { cpus: Some(cpus_cap), jobs: Some(jobs_cap), ..Limit::default() },
                account: Limit::default(),
            };
            jobs.drop_over_limit(&limits);
            for spec in specs() {
                let (p, s) = policy::build(&spec).unwrap();
                let name = s.canonical();
                let cfg = SimConfig { limits, ..SimConfig::new(p, &name) };
                let r = simulate(&jobs, cfg, &mut InvariantCheck).unwrap();
                prop_assert_eq!(r.jobs.len(), jobs.jobs.len());
                for j in r.jobs.iter().filter(|j| j.finish > j.start) {
                    let t = j.start;
                    let mine: Vec<_> = r.jobs.iter()
                        .filter(|k| k.spec.user == j.spec.user && k.start <= t && t < k.finish)
                        .collect();
                    let held: u64 = mine.iter().map(|k| u64::from(k.spec.cpus)).sum();
                    prop_assert!(held <= cpus_cap, "{spec}: user holds {held} CPUs > {cpus_cap} at {t}");
                    prop_assert!(mine.len() as u64 <= jobs_cap, "{spec}: {} jobs > {jobs_cap} at {t}", mine.len());
                }
            }
        }
    }
}
