//! Property tests on clusters of several nodes with memory, GPUs, partitions and switches:
//! every policy under every placement never oversubscribes a node, gives each job what it
//! asked for, hands out distinct GPU indices, and stays deterministic. And the scalar
//! conservative profile agrees with the per-node one on the contract's one-node model.

use crate::util::InvariantCheck;
use mini_slurm::ids::JobId;
use mini_slurm::metrics::SimResult;
use mini_slurm::model::{Cluster, JobSpec, JobTruth, Node, Partition, Switch};
use mini_slurm::policy::{self, REGISTRY};
use mini_slurm::sched::placement::{self, PLACEMENTS};
use mini_slurm::sim::{SimConfig, simulate};
use mini_slurm::time::{Dur, Time};
use mini_slurm::trace::SimJobs;
use proptest::prelude::*;
use std::collections::BTreeMap;

/// (submit gap, run, estimate, cpus, node count, mem, gpus, second partition) — sizes as raw
/// numbers, scaled to the cluster when the jobs are built.
type GenJob = (i64, i64, i64, u32, u32, u64, u32, bool);

#[derive(Clone, Debug)]
struct Gen {
    /// (cpus, mem MB, gpus) per node.
    nodes: Vec<(u32, u64, u32)>,
    leaf: Option<usize>,
    two_partitions: bool,
    /// Slurm's --switches for every job: (leaf count, max wait in seconds).
    switches: Option<(u32, i64)>,
    jobs: Vec<GenJob>,
}

fn cluster_and_jobs() -> impl Strategy<Value = Gen> {
    let node = (1u32..=6, prop_oneof![Just(0u64), 100u64..=1000], 0u32..=3);
    let job = (
        0i64..20,
        0i64..60,
        0i64..80,
        1u32..=24,
        0u32..=3,
        0u64..=1000,
        0u32..=3,
        any::<bool>(),
    );
    (
        proptest::collection::vec(node, 1..=5),
        prop_oneof![Just(None), (1usize..=3).prop_map(Some)],
        any::<bool>(),
        prop_oneof![Just(None), (1u32..=2, 0i64..100).prop_map(Some)],
        proptest::collection::vec(job, 1..25),
    )
        .prop_map(|(nodes, leaf, two_partitions, switches, jobs)| Gen {
            nodes,
            leaf,
            two_partitions,
            switches,
            jobs,
        })
}

fn build_cluster(g: &Gen) -> Cluster {
    let nodes: Vec<Node> = g
        .nodes
        .iter()
        .enumerate()
        .map(|(i, &(cpus, mem_mb, gpus))| Node {
            name: format!("n{i}"),
            cpus,
            mem_mb,
            gpus,
        })
        .collect();
    let n = nodes.len() as u32;
    let partitions = if g.two_partitions && n >= 2 {
        vec![
            Partition {
                name: "half".into(),
                nodes: (0..n / 2).collect(),
                max_time: None,
                default_time: None,
                max_nodes: None,
                default: true,
            },
            Partition {
                name: "all".into(),
                nodes: (0..n).collect(),
                max_time: None,
                default_time: None,
                max_nodes: None,
                default: false,
            },
        ]
    } else {
        Vec::new()
    };
    let mut switches = Vec::new();
    if let Some(size) = g.leaf.filter(|_| n >= 2) {
        let leaves: Vec<Vec<u32>> = (0..n)
            .collect::<Vec<_>>()
            .chunks(size)
            .map(<[u32]>::to_vec)
            .collect();
        for (i, l) in leaves.iter().enumerate() {
            switches.push(Switch {
                name: format!("leaf{i}"),
                level: 0,
                parent: None,
                children: Vec::new(),
                nodes: l.clone(),
            });
        }
        let kids = (0..leaves.len() as u32).collect();
        switches.push(Switch {
            name: "top".into(),
            level: 0,
            parent: None,
            children: kids,
            nodes: Vec::new(),
        });
    }
    Cluster::new(nodes, partitions, switches).expect("generated cluster is valid")
}

/// The generated jobs that can ever run on the cluster under `placement`, in queue order.
fn build_jobs(g: &Gen, cluster: &Cluster, placement: &str) -> SimJobs {
    let place = placement::by_name(placement).expect("placement");
    let total = cluster.total_cpus() as u32;
    let mut t = 0;
    let mut jobs = Vec::new();
    for (i, &(gap, run, est, cpus, nodes, mem, gpus, second)) in g.jobs.iter().enumerate() {
        t += gap;
        let cpus = 1 + (cpus - 1) % total;
        let spec = JobSpec {
            partition: u32::from(second && cluster.partitions.len() > 1),
            nodes: (nodes > 0).then_some(nodes.min(cpus)),
            mem_mb: (mem > 0).then_some(mem),
            gpus: gpus.min(2),
            switches: g.switches.map(|(c, w)| (c, Dur::from_secs(w))),
            ..JobSpec::new(
                JobId(i as u64 + 1),
                Time::from_secs(t),
                cpus,
                Dur::from_secs(est),
            )
        };
        if mini_slurm::sched::admission::can_ever_run(cluster, place.as_ref(), &spec).is_ok() {
            jobs.push((spec.into(), JobTruth::new(Dur::from_secs(run))));
        }
    }
    SimJobs {
        cluster: cluster.clone(),
        jobs,
        skipped: BTreeMap::new(),
        skip_examples: BTreeMap::new(),
    }
}

fn sim(jobs: &SimJobs, spec: &str, placement: &str) -> SimResult {
    let (p, s) = policy::build(spec).expect("policy");
    let name = s.canonical();
    let cfg = SimConfig {
        placement: placement::by_name(placement).expect("placement"),
        ..SimConfig::new(p, &name)
    };
    simulate(jobs, cfg, &mut InvariantCheck).expect("simulation runs")
}

fn check(
    cluster: &Cluster,
    jobs: &SimJobs,
    r: &SimResult,
    what: &str,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(r.jobs.len(), jobs.jobs.len(), "{}: every job ran", what);
    for j in &r.jobs {
        let s = &j.spec;
        prop_assert!(j.start >= s.submit, "{}: job {} before submit", what, s.id);
        // The allocation matches the request.
        let cpus: u32 = j.alloc.iter().map(|x| x.cpus).sum();
        prop_assert_eq!(cpus, s.cpus, "{}: job {} CPUs", what, s.id);
        if let Some(n) = s.nodes {
            prop_assert_eq!(j.alloc.len() as u32, n, "{}: job {} node count", what, s.id);
        }
        let part = &cluster.partitions[s.partition as usize];
        for (k, x) in j.alloc.iter().enumerate() {
            prop_assert_eq!(x.gpus, s.gpus, "{}: job {} GPUs per node", what, s.id);
            prop_assert_eq!(x.gpu_mask.count_ones(), x.gpus);
            prop_assert!(
                part.nodes.contains(&x.node),
                "{}: job {} outside its partition",
                what,
                s.id
            );
            prop_assert!(
                j.alloc[..k].iter().all(|y| y.node != x.node),
                "{}: node twice",
                what
            );
        }
    }
    // No node oversubscribed, and GPU indices distinct, at any start instant.
    for j in r.jobs.iter().filter(|j| j.finish > j.start) {
        let t = j.start;
        for (ni, node) in cluster.nodes.iter().enumerate() {
            let (mut cpus, mut mem, mut gpus, mut mask) = (0u32, 0u64, 0u32, 0u64);
            for k in r.jobs.iter().filter(|k| k.start <= t && t < k.finish) {
                for x in k.alloc.iter().filter(|x| x.node as usize == ni) {
                    cpus += x.cpus;
                    mem += k.spec.mem_mb.unwrap_or(0);
                    gpus += x.gpus;
                    prop_assert_eq!(
                        mask & x.gpu_mask,
                        0,
                        "{}: GPU index shared on {}",
                        what,
                        node.name
                    );
                    mask |= x.gpu_mask;
                }
            }
            prop_assert!(
                cpus <= node.cpus,
                "{}: {} CPUs on {} at {}",
                what,
                cpus,
                node.name,
                t
            );
            prop_assert!(
                mem <= node.mem_mb,
                "{}: {} MB on {} at {}",
                what,
                mem,
                node.name,
                t
            );
            prop_assert!(
                gpus <= node.gpus,
                "{}: {} GPUs on {} at {}",
                what,
                gpus,
                node.name,
                t
            );
        }
    }
    Ok(())
}

fn specs() -> Vec<String> {
    let mut v: Vec<String> = REGISTRY.iter().map(|p| p.name.to_string()).collect();
    v.push("easy[order=priority]".into());
    v.push("conservative[profile=nodes]".into());
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_policy_and_placement_respects_nodes(g in cluster_and_jobs()) {
        let _heavy = crate::util::heavy();
        let cluster = build_cluster(&g);
        for (place, _) in PLACEMENTS {
            let jobs = build_jobs(&g, &cluster, place);
            for spec in specs() {
                let what = format!("{spec} / {place}");
                let r = sim(&jobs, &spec, place);
                check(&cluster, &jobs, &r, &what)?;
                let again = sim(&jobs, &spec, place);
                let starts = |r: &SimResult| r.jobs.iter().map(|j| (j.spec.id, j.start, j.alloc.to_vec())).collect::<Vec<_>>();
                prop_assert_eq!(starts(&r), starts(&again), "{}: deterministic", what);
            }
        }
    }

    /// Elastic jobs on clusters of nodes with memory: resizes that add or drop nodes keep every
    /// node's CPUs and memory accounted (the engine's invariants, after every step), every job
    /// ends, sizes stay in range and the work delivered is exact.
    #[test]
    fn elastic_jobs_on_nodes_keep_every_invariant(g in cluster_and_jobs(), seed in 0u64..1000) {
        let _heavy = crate::util::heavy();
        let cluster = build_cluster(&g);
        for (place, _) in PLACEMENTS {
            let mut jobs = build_jobs(&g, &cluster, place);
            // Elastic jobs ask for CPUs only: drop the generated node counts and GPUs.
            for (spec, _) in &mut jobs.jobs {
                *spec = std::sync::Arc::new(mini_slurm::model::JobSpec {
                    nodes: None,
                    gpus: 0,
                    ..(**spec).clone()
                });
            }
            mini_slurm::trace::elastic::make_elastic(&mut jobs, 0.7, (0.5, 2.0), seed);
            for spec in specs() {
                let spec = match spec.strip_suffix(']') {
                    Some(b) => format!("{b},resize_every=0]"),
                    None => format!("{spec}[resize_every=0]"),
                };
                let what = format!("{spec} / {place}");
                let r = sim(&jobs, &spec, place);
                prop_assert_eq!(r.jobs.len(), jobs.jobs.len(), "{}: every job ran", &what);
                for j in r.jobs.iter().filter(|j| j.spec.elastic.is_some()) {
                    let cpus: u32 = j.alloc.iter().map(|x| x.cpus).sum();
                    prop_assert!(j.spec.elastic.is_some_and(|e| e.contains(cpus)), "{}: job {}", &what, j.spec.id);
                }
                for w in &r.elastic_work {
                    prop_assert_eq!(w.1.delivered, w.1.total, "{}: job {} work", &what, w.0);
                    prop_assert!(!w.1.late, "{}: job {} late", &what, w.0);
                }
            }
        }
    }

    #[test]
    fn scalar_and_node_profiles_agree_on_one_node(
        p in 1u32..=10,
        js in proptest::collection::vec((0i64..20, 0i64..60, 0i64..80, 1u32..=10), 1..30),
    ) {
        let cluster = Cluster::uniform(1, p, 0, 0).unwrap();
        let g = Gen {
            nodes: vec![(p, 0, 0)],
            leaf: None,
            two_partitions: false,
            switches: None,
            jobs: js.iter().map(|&(a, b, c, d)| (a, b, c, d, 0, 0, 0, false)).collect(),
        };
        let jobs = build_jobs(&g, &cluster, "best-fit");
        for order in ["queue", "priority"] {
            let scalar = sim(&jobs, &format!("conservative[order={order}]"), "best-fit");
            let nodes = sim(&jobs, &format!("conservative[order={order},profile=nodes]"), "best-fit");
            let starts = |r: &SimResult| r.jobs.iter().map(|j| (j.spec.id, j.start)).collect::<Vec<_>>();
            prop_assert_eq!(starts(&scalar), starts(&nodes));
        }
    }
}
