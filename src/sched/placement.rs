//! Placement: which nodes (and how many CPUs and GPUs on each) a job gets. A separate,
//! pluggable step, as in Slurm, used by every policy both to start jobs and to plan.
//!
//! Rules shared by every strategy:
//! - A node is eligible when it has the job's memory and GPUs (per node) free and at least one
//!   free CPU.
//! - Without a node count, the job's CPUs may be split across any number of eligible nodes.
//! - With a node count N, the job takes exactly N nodes; the first `cpus mod N` get
//!   ⌈cpus/N⌉ CPUs and the others ⌊cpus/N⌋, and every chosen node must have ⌈cpus/N⌉ free.
//!
//! Strategies:
//! - `first-fit`: nodes in index order.
//! - `best-fit`: the single eligible node that holds the whole job with the fewest free CPUs
//!   left (ties: lowest index); otherwise nodes by free CPUs descending (fewest nodes; ties:
//!   lowest index). With a node count: the N qualifying nodes with the fewest free CPUs.
//! - `tree` (Slurm's topology/tree, semantics §9): if the job fits under one leaf switch, the
//!   leaf with the fewest free CPUs that can hold it (best fit), placed best-fit inside it;
//!   otherwise the lowest-level switch that can hold it (the one with the fewest free CPUs at
//!   that level), filled leaf by leaf, leaves by free CPUs descending. Without a topology it is
//!   `best-fit`.
//!
//! A request with `max_leaves` (Slurm's `--switches=COUNT@MAX_WAIT`, while the job may still
//! wait) only accepts allocations spanning at most that many leaf switches.

use crate::model::{Avail, Cluster, Request, Slice};

/// A placement strategy.
pub trait Placement: Send + Sync {
    fn name(&self) -> &'static str;
    /// Chooses nodes for `req` among `candidates` (node indices, ascending) with free
    /// resources `avail` (indexed by node). On success appends the slices to `out` and returns
    /// true; otherwise leaves `out` unchanged and returns false.
    fn place(
        &self,
        cluster: &Cluster,
        avail: &[Avail],
        candidates: &[u32],
        req: &Request,
        out: &mut Vec<Slice>,
    ) -> bool;
}

/// The registered strategies: (name, one-line description).
pub const PLACEMENTS: [(&str, &str); 3] = [
    ("first-fit", "nodes in index order"),
    ("best-fit", "tightest single node, else widest nodes first"),
    (
        "tree",
        "lowest switch that holds the job, best fit among its leaves (Slurm topology/tree)",
    ),
];

/// Builds a strategy by name.
pub fn by_name(name: &str) -> Option<Box<dyn Placement>> {
    match name {
        "first-fit" | "firstfit" | "first_fit" => Some(Box::new(FirstFit)),
        "best-fit" | "bestfit" | "best_fit" => Some(Box::new(BestFit)),
        "tree" | "topology" => Some(Box::new(Tree)),
        _ => None,
    }
}

/// Undoes a placement that spans more leaf switches than the request allows.
fn within_leaves(c: &Cluster, req: &Request, out: &mut Vec<Slice>, start: usize, ok: bool) -> bool {
    if ok
        && req
            .max_leaves
            .is_some_and(|m| c.leaves_spanned(&out[start..]) > m)
    {
        out.truncate(start);
        return false;
    }
    ok
}

fn eligible(a: &Avail, req: &Request) -> bool {
    a.cpus > 0 && a.mem_mb >= req.mem_mb && a.gpus >= req.gpus
}

/// One candidate node: every strategy agrees (the common case of a trace on one machine).
fn single(avail: &[Avail], node: u32, req: &Request, out: &mut Vec<Slice>) -> bool {
    let a = &avail[node as usize];
    if req.nodes.is_none_or(|n| n == 1) && eligible(a, req) && a.cpus >= req.cpus {
        out.push(Slice::new(node, req.cpus, req.gpus));
        return true;
    }
    false
}

/// Fills `req` from `order` (node indices in preference order). Shared by all strategies.
fn fill(avail: &[Avail], order: &[u32], req: &Request, out: &mut Vec<Slice>) -> bool {
    if let [n] = order {
        return single(avail, *n, req, out);
    }
    let start = out.len();
    match req.nodes {
        None => {
            let mut left = req.cpus;
            for &n in order {
                let a = &avail[n as usize];
                if !eligible(a, req) {
                    continue;
                }
                let take = a.cpus.min(left);
                out.push(Slice::new(n, take, req.gpus));
                left -= take;
                if left == 0 {
                    return true;
                }
            }
        }
        Some(count) if count >= 1 && count <= req.cpus => {
            let hi = req.cpus.div_ceil(count);
            let n_hi = match req.cpus % count {
                0 => count,
                r => r,
            };
            for &n in order {
                let a = &avail[n as usize];
                if !eligible(a, req) || a.cpus < hi {
                    continue;
                }
                let k = (out.len() - start) as u32;
                out.push(Slice::new(
                    n,
                    if k < n_hi { hi } else { req.cpus / count },
                    req.gpus,
                ));
                if k + 1 == count {
                    return true;
                }
            }
        }
        Some(_) => {}
    }
    out.truncate(start);
    false
}

pub struct FirstFit;

impl Placement for FirstFit {
    fn name(&self) -> &'static str {
        "first-fit"
    }
    fn place(
        &self,
        c: &Cluster,
        avail: &[Avail],
        candidates: &[u32],
        req: &Request,
        out: &mut Vec<Slice>,
    ) -> bool {
        let start = out.len();
        let ok = fill(avail, candidates, req, out);
        within_leaves(c, req, out, start, ok)
    }
}

pub struct BestFit;

/// Buffers the strategies reuse from call to call (placement runs for every job a policy
/// considers, many times per pass): one set per thread, so that strategies stay `&self` and
/// shareable, and no call allocates.
#[derive(Default)]
struct Buffers {
    /// `best_fit`'s node order.
    order: Vec<u32>,
    /// `tree`: candidate flags per node (all false between calls), eligible free CPUs per
    /// switch, a switch's candidate nodes, the switches of a level, a switch's leaves.
    member: Vec<bool>,
    free: Vec<u64>,
    nodes: Vec<u32>,
    at: Vec<usize>,
    leaves: Vec<u32>,
}

thread_local! {
    static BUFFERS: std::cell::RefCell<Buffers> = std::cell::RefCell::new(Buffers::default());
}

fn best_fit(avail: &[Avail], candidates: &[u32], req: &Request, out: &mut Vec<Slice>) -> bool {
    // One candidate (a trace on one machine): no buffer needed, so no thread-local either.
    if let [n] = candidates {
        return single(avail, *n, req, out);
    }
    BUFFERS.with_borrow_mut(|b| best_fit_in(avail, candidates, req, out, &mut b.order))
}

fn best_fit_in(
    avail: &[Avail],
    candidates: &[u32],
    req: &Request,
    out: &mut Vec<Slice>,
    order: &mut Vec<u32>,
) -> bool {
    if let [n] = candidates {
        return single(avail, *n, req, out);
    }
    // One node?
    if req.nodes.is_none_or(|n| n == 1) {
        let best = candidates
            .iter()
            .copied()
            .filter(|&n| {
                let a = &avail[n as usize];
                eligible(a, req) && a.cpus >= req.cpus
            })
            .min_by_key(|&n| (avail[n as usize].cpus, n));
        if let Some(n) = best {
            out.push(Slice::new(n, req.cpus, req.gpus));
            return true;
        }
        if req.nodes == Some(1) {
            return false;
        }
    }
    order.clear();
    order.extend(
        candidates
            .iter()
            .copied()
            .filter(|&n| eligible(&avail[n as usize], req)),
    );
    if req.nodes.is_some() {
        order.sort_unstable_by_key(|&n| (avail[n as usize].cpus, n));
    } else {
        order.sort_unstable_by_key(|&n| (std::cmp::Reverse(avail[n as usize].cpus), n));
    }
    fill(avail, order, req, out)
}

impl Placement for BestFit {
    fn name(&self) -> &'static str {
        "best-fit"
    }
    fn place(
        &self,
        c: &Cluster,
        avail: &[Avail],
        candidates: &[u32],
        req: &Request,
        out: &mut Vec<Slice>,
    ) -> bool {
        let start = out.len();
        let ok = best_fit(avail, candidates, req, out);
        within_leaves(c, req, out, start, ok)
    }
}

pub struct Tree;

impl Placement for Tree {
    fn name(&self) -> &'static str {
        "tree"
    }
    fn place(
        &self,
        c: &Cluster,
        avail: &[Avail],
        candidates: &[u32],
        req: &Request,
        out: &mut Vec<Slice>,
    ) -> bool {
        BUFFERS.with_borrow_mut(|b| {
            if c.switches.is_empty() {
                return best_fit_in(avail, candidates, req, out, &mut b.order);
            }
            // Which nodes are candidates (flags cleared again before returning).
            let all = candidates.len() == c.nodes.len();
            if !all {
                b.member.resize(c.nodes.len(), false);
                for &n in candidates {
                    b.member[n as usize] = true;
                }
            }
            let ok = tree_place(c, avail, candidates, all, req, out, b);
            if !all {
                for &n in candidates {
                    b.member[n as usize] = false;
                }
            }
            ok
        })
    }
}

/// `tree` on a cluster with switches (see the module header); `b.member` flags the candidates
/// unless `all` nodes are.
fn tree_place(
    c: &Cluster,
    avail: &[Avail],
    candidates: &[u32],
    all: bool,
    req: &Request,
    out: &mut Vec<Slice>,
    b: &mut Buffers,
) -> bool {
    let Buffers {
        order,
        member,
        free,
        nodes,
        at,
        leaves,
    } = b;
    let is_cand = |n: u32| all || member[n as usize];
    // The eligible free CPUs under every switch.
    free.clear();
    free.resize(c.switches.len(), 0);
    for &n in candidates {
        let a = &avail[n as usize];
        if let (true, Some(l)) = (eligible(a, req), c.node_leaf[n as usize]) {
            free[l as usize] += u64::from(a.cpus);
        }
    }
    let total: u64 = (0..c.switches.len())
        .filter(|&s| c.switches[s].is_leaf())
        .map(|s| free[s])
        .sum();
    if total < u64::from(req.cpus) {
        return false;
    }
    let max_level = c.switches.iter().map(|s| s.level).max().unwrap_or(0);
    for level in 1..=max_level {
        for s in 0..c.switches.len() {
            if c.switches[s].level == level {
                free[s] = c.switches[s]
                    .children
                    .iter()
                    .map(|&ch| free[ch as usize])
                    .sum();
            }
        }
    }
    for level in 0..=max_level {
        // Switches at this level that might hold the job, tightest first.
        at.clear();
        at.extend(
            (0..c.switches.len())
                .filter(|&s| c.switches[s].level == level && free[s] >= u64::from(req.cpus)),
        );
        at.sort_unstable_by_key(|&s| (free[s], s));
        for &s in at.iter() {
            nodes.clear();
            if level == 0 {
                nodes.extend(c.switches[s].nodes.iter().copied().filter(|&n| is_cand(n)));
                if best_fit_in(avail, nodes, req, out, order) {
                    return true; // one leaf: always within a leaf limit
                }
            } else {
                leaves.clear();
                collect_leaves(c, s, leaves);
                leaves.sort_unstable_by_key(|&l| (std::cmp::Reverse(free[l as usize]), l));
                for &l in leaves.iter() {
                    nodes.extend(
                        c.switches[l as usize]
                            .nodes
                            .iter()
                            .copied()
                            .filter(|&n| is_cand(n)),
                    );
                }
                let start = out.len();
                let ok = fill(avail, nodes, req, out);
                if within_leaves(c, req, out, start, ok) {
                    return true;
                }
            }
        }
    }
    false
}

/// The leaf switches below switch `s`.
fn collect_leaves(c: &Cluster, s: usize, out: &mut Vec<u32>) {
    let sw = &c.switches[s];
    if sw.is_leaf() {
        out.push(s as u32);
    }
    for &ch in &sw.children {
        collect_leaves(c, ch as usize, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::topology_conf;
    use crate::model::Node;
    use std::path::Path;

    /// The example of Slurm's topology.conf man page: three leaf switches of six nodes under
    /// one top switch.
    const SLURM_EXAMPLE: &str = "SwitchName=s0 Nodes=dev[0-5]\n\
                                 SwitchName=s1 Nodes=dev[6-11]\n\
                                 SwitchName=s2 Nodes=dev[12-17]\n\
                                 SwitchName=s3 Switches=s[0-2]\n";

    fn cluster(topology: &str, n: u32) -> Cluster {
        let nodes: Vec<Node> = (0..n)
            .map(|i| Node {
                name: format!("dev{i}"),
                cpus: 1,
                mem_mb: 0,
                gpus: 0,
            })
            .collect();
        let t = topology_conf::parse(topology, Path::new("topology.conf"), &nodes).unwrap();
        Cluster::new(nodes, Vec::new(), t.switches).unwrap()
    }

    fn place(p: &dyn Placement, c: &Cluster, avail: &[Avail], cpus: u32) -> Option<Vec<u32>> {
        let all: Vec<u32> = (0..c.nodes.len() as u32).collect();
        let req = Request {
            cpus,
            nodes: None,
            mem_mb: 0,
            gpus: 0,
            max_leaves: None,
        };
        let mut out = Vec::new();
        p.place(c, avail, &all, &req, &mut out)
            .then(|| out.iter().map(|s| s.node).collect())
    }

    fn busy(c: &Cluster, nodes: &[u32]) -> Vec<Avail> {
        let mut a = c.empty_avail();
        for &n in nodes {
            a[n as usize].cpus = 0;
        }
        a
    }

    #[test]
    fn a_job_that_fits_under_one_leaf_gets_one_leaf() {
        let c = cluster(SLURM_EXAMPLE, 18);
        let nodes = place(&Tree, &c, &c.empty_avail(), 4).unwrap();
        assert_eq!(nodes, [0, 1, 2, 3]);
        // Best fit among leaves: with two nodes of s0 busy, s0 (4 free) is the tightest leaf
        // that holds 4 nodes; first-fit takes what comes first.
        let a = busy(&c, &[0, 1]);
        assert_eq!(place(&Tree, &c, &a, 4).unwrap(), [2, 3, 4, 5]);
        let a = busy(&c, &[0, 1, 6]);
        assert_eq!(
            place(&Tree, &c, &a, 5).unwrap(),
            [7, 8, 9, 10, 11],
            "s1 has exactly 5"
        );
        let a = busy(&c, &[3, 9]);
        assert_eq!(
            place(&FirstFit, &c, &a, 6).unwrap(),
            [0, 1, 2, 4, 5, 6],
            "spans two leaves"
        );
        assert_eq!(
            place(&Tree, &c, &a, 6).unwrap(),
            [12, 13, 14, 15, 16, 17],
            "one whole leaf"
        );
        let nodes = place(&Tree, &c, &a, 6).unwrap();
        let slices: Vec<Slice> = nodes.iter().map(|&n| Slice::new(n, 1, 0)).collect();
        assert_eq!(c.leaves_spanned(&slices), 1);
    }

    #[test]
    fn a_larger_job_goes_to_the_lowest_common_switch() {
        let c = cluster(SLURM_EXAMPLE, 18);
        // 10 nodes fit under no leaf: s3, filled leaf by leaf, fullest leaves first.
        let a = busy(&c, &[0, 1, 2]);
        let nodes = place(&Tree, &c, &a, 10).unwrap();
        assert_eq!(nodes, [6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
        let slices: Vec<Slice> = nodes.iter().map(|&n| Slice::new(n, 1, 0)).collect();
        assert_eq!(c.leaves_spanned(&slices), 2);
        // Three levels: the job stays under the mid-level switch that holds it.
        let three = "SwitchName=l0 Nodes=dev[0-3]\nSwitchName=l1 Nodes=dev[4-7]\n\
                     SwitchName=l2 Nodes=dev[8-11]\nSwitchName=l3 Nodes=dev[12-15]\n\
                     SwitchName=m0 Switches=l[0-1]\nSwitchName=m1 Switches=l[2-3]\n\
                     SwitchName=top Switches=m[0-1]\n";
        let c = cluster(three, 16);
        let a = busy(&c, &[0, 5]);
        // m0 has 6 free, m1 has 8: a 6-node job goes under m0 (tightest), not across m0 and m1.
        let nodes = place(&Tree, &c, &a, 6).unwrap();
        assert_eq!(nodes, [1, 2, 3, 4, 6, 7]);
        // 7 nodes only fit under m1.
        assert_eq!(place(&Tree, &c, &a, 7).unwrap(), [8, 9, 10, 11, 12, 13, 14]);
        // 14 need the top switch.
        assert_eq!(place(&Tree, &c, &a, 14).unwrap().len(), 14);
        assert_eq!(place(&Tree, &c, &a, 15), None);
    }

    #[test]
    fn a_leaf_limit_refuses_fragmented_allocations() {
        let c = cluster(SLURM_EXAMPLE, 18);
        let a = busy(&c, &[0, 6, 12]);
        let all: Vec<u32> = (0..18).collect();
        let mut req = Request {
            cpus: 6,
            nodes: None,
            mem_mb: 0,
            gpus: 0,
            max_leaves: Some(1),
        };
        let mut out = Vec::new();
        // Every leaf has 5 free nodes: 6 nodes need two leaves.
        for p in [&Tree as &dyn Placement, &FirstFit, &BestFit] {
            assert!(!p.place(&c, &a, &all, &req, &mut out), "{}", p.name());
            assert!(out.is_empty());
        }
        req.max_leaves = Some(2);
        assert!(Tree.place(&c, &a, &all, &req, &mut out));
        assert_eq!(out.len(), 6);
    }

    #[test]
    fn jobs_do_not_span_disconnected_fabrics() {
        // Two trees with no common switch: 8 free nodes in all, but at most 4 under one fabric.
        let c = cluster(
            "SwitchName=a Nodes=dev[0-3]\nSwitchName=b Nodes=dev[4-7]\n",
            8,
        );
        assert_eq!(place(&Tree, &c, &c.empty_avail(), 4).unwrap().len(), 4);
        assert_eq!(place(&Tree, &c, &c.empty_avail(), 5), None);
        assert_eq!(place(&BestFit, &c, &c.empty_avail(), 5).unwrap().len(), 5);
    }

    #[test]
    fn node_counts_memory_and_gpus() {
        let nodes = (0..3)
            .map(|i| Node {
                name: format!("g{i}"),
                cpus: 8,
                mem_mb: 1000,
                gpus: 2,
            })
            .collect();
        let c = Cluster::new(nodes, Vec::new(), Vec::new()).unwrap();
        let mut a = c.empty_avail();
        a[0].gpus = 0;
        a[1].mem_mb = 100;
        let req = Request {
            cpus: 5,
            nodes: Some(2),
            mem_mb: 500,
            gpus: 1,
            max_leaves: None,
        };
        let all = [0, 1, 2];
        let mut out = Vec::new();
        // Only g2 has a GPU and 500 MB free: two nodes cannot be found.
        assert!(!FirstFit.place(&c, &a, &all, &req, &mut out));
        assert!(out.is_empty());
        a[1].mem_mb = 1000;
        assert!(FirstFit.place(&c, &a, &all, &req, &mut out));
        // 5 CPUs over 2 nodes: 3 on the first, 2 on the second.
        assert_eq!(out, [Slice::new(1, 3, 1), Slice::new(2, 2, 1)]);
        // Best fit puts a one-node job on the tightest node.
        let mut a = c.empty_avail();
        a[2].cpus = 3;
        let one = Request {
            cpus: 3,
            nodes: None,
            mem_mb: 0,
            gpus: 0,
            max_leaves: None,
        };
        out.clear();
        assert!(BestFit.place(&c, &a, &all, &one, &mut out));
        assert_eq!(out, [Slice::new(2, 3, 0)]);
    }
}
