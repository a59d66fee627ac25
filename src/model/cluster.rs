//! The cluster: nodes with CPUs, memory and GPUs; partitions; the switch tree.
//!
//! A trace of P identical processors is the cluster of one node with P CPUs (or, with
//! `--cpus-per-node C`, P / C nodes of C CPUs). Cluster description files (`config/`) build the
//! same type from Slurm's `slurm.conf` and `topology.conf`.

use crate::time::Dur;

/// A compute node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub cpus: u32,
    /// Memory in MB; 0 = not modelled (jobs' memory requests are then refused).
    pub mem_mb: u64,
    pub gpus: u32,
}

/// A named set of nodes with limits, as a Slurm partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    pub name: String,
    /// Node indices, ascending.
    pub nodes: Vec<u32>,
    pub max_time: Option<Dur>,
    /// Slurm's `DefaultTime`: the time limit of a job that gives none (read by the `slurm`
    /// policy).
    pub default_time: Option<Dur>,
    pub max_nodes: Option<u32>,
    pub default: bool,
}

/// A network switch. Leaves (level 0) connect nodes; higher switches connect switches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Switch {
    pub name: String,
    pub level: u32,
    pub parent: Option<u32>,
    pub children: Vec<u32>,
    /// Every node below this switch, ascending.
    pub nodes: Vec<u32>,
}

impl Switch {
    pub fn is_leaf(&self) -> bool {
        self.level == 0
    }
}

/// Free resources of one node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Avail {
    pub cpus: u32,
    pub mem_mb: u64,
    pub gpus: u32,
}

/// What a job needs from the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Request {
    /// CPUs in total.
    pub cpus: u32,
    /// Exact node count (Slurm's `-N`), if given.
    pub nodes: Option<u32>,
    /// Memory per node used, MB.
    pub mem_mb: u64,
    /// GPUs per node used.
    pub gpus: u32,
    /// At most this many leaf switches (Slurm's `--switches`), while the job may still wait
    /// for such an allocation.
    pub max_leaves: Option<u32>,
}

/// The part of an allocation on one node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slice {
    pub node: u32,
    pub cpus: u32,
    pub gpus: u32,
    /// The GPU indices held (bit i = GPU i of the node). Policies leave it 0; the engine picks
    /// the indices when the job starts.
    pub gpu_mask: u64,
}

impl Slice {
    pub fn new(node: u32, cpus: u32, gpus: u32) -> Slice {
        Slice {
            node,
            cpus,
            gpus,
            gpu_mask: 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub partitions: Vec<Partition>,
    pub switches: Vec<Switch>,
    /// The leaf switch of each node (`None` without a topology).
    pub node_leaf: Vec<Option<u32>>,
    pub default_partition: u32,
}

/// Bit indices as ranges: `0b1011` → `0-1,3`.
pub fn index_ranges(mask: u64) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < 64 {
        if mask & (1 << i) == 0 {
            i += 1;
            continue;
        }
        let start = i;
        while i + 1 < 64 && mask & (1 << (i + 1)) != 0 {
            i += 1;
        }
        out.push(if start == i {
            start.to_string()
        } else {
            format!("{start}-{i}")
        });
        i += 1;
    }
    out.join(",")
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClusterError {
    #[error("the cluster has no node")]
    NoNodes,
    #[error("node {0} has no CPU")]
    NoCpus(String),
    #[error("node {0} is defined twice")]
    DuplicateNode(String),
    #[error("node {node} has {gpus} GPUs; at most 64 per node are supported")]
    TooManyGpus { node: String, gpus: u32 },
    #[error("partition {0} is defined twice")]
    DuplicatePartition(String),
    #[error("partition {0} has no node")]
    EmptyPartition(String),
    #[error("more than one default partition: {0} and {1}")]
    TwoDefaults(String, String),
    #[error("node {node} is under two leaf switches, {first} and {second}")]
    OverlappingSwitches {
        node: String,
        first: String,
        second: String,
    },
    #[error("switch {0} is below itself")]
    SwitchCycle(String),
    #[error("switch {child} has two parents, {first} and {second}")]
    TwoParents {
        child: String,
        first: String,
        second: String,
    },
    #[error("node {0} is under no leaf switch (with a topology, every node must be)")]
    NodeWithoutSwitch(String),
}

impl Cluster {
    /// `n` identical nodes named `n0`, `n1`, ..., one partition `all` with every node.
    pub fn uniform(n: u32, cpus: u32, mem_mb: u64, gpus: u32) -> Result<Cluster, ClusterError> {
        let nodes = (0..n)
            .map(|i| Node {
                name: format!("n{i}"),
                cpus,
                mem_mb,
                gpus,
            })
            .collect();
        Cluster::new(nodes, Vec::new(), Vec::new())
    }

    /// Validates and assembles a cluster. Without partitions, one partition `all` holds every
    /// node; without an explicit default, the first partition is the default (as in Slurm).
    /// `switches` hold leaf switches (with `nodes`) and higher ones (with `children`); levels,
    /// parents and subtree node lists are computed here.
    pub fn new(
        nodes: Vec<Node>,
        mut partitions: Vec<Partition>,
        mut switches: Vec<Switch>,
    ) -> Result<Cluster, ClusterError> {
        if nodes.is_empty() {
            return Err(ClusterError::NoNodes);
        }
        let mut names = std::collections::HashMap::new();
        for (i, n) in nodes.iter().enumerate() {
            if n.cpus == 0 {
                return Err(ClusterError::NoCpus(n.name.clone()));
            }
            if n.gpus > 64 {
                return Err(ClusterError::TooManyGpus {
                    node: n.name.clone(),
                    gpus: n.gpus,
                });
            }
            if names.insert(n.name.clone(), i).is_some() {
                return Err(ClusterError::DuplicateNode(n.name.clone()));
            }
        }
        if partitions.is_empty() {
            partitions.push(Partition {
                name: "all".into(),
                nodes: (0..nodes.len() as u32).collect(),
                max_time: None,
                default_time: None,
                max_nodes: None,
                default: true,
            });
        }
        let mut default: Option<(usize, String)> = None;
        for (i, p) in partitions.iter_mut().enumerate() {
            p.nodes.sort_unstable();
            p.nodes.dedup();
            if p.nodes.is_empty() {
                return Err(ClusterError::EmptyPartition(p.name.clone()));
            }
            if p.default {
                if let Some((_, first)) = &default {
                    return Err(ClusterError::TwoDefaults(first.clone(), p.name.clone()));
                }
                default = Some((i, p.name.clone()));
            }
        }
        for (i, p) in partitions.iter().enumerate() {
            if partitions[..i].iter().any(|q| q.name == p.name) {
                return Err(ClusterError::DuplicatePartition(p.name.clone()));
            }
        }
        let default_partition = default.map_or(0, |d| d.0) as u32;
        // Switch tree.
        let mut node_leaf: Vec<Option<u32>> = vec![None; nodes.len()];
        for (s, sw) in switches.iter().enumerate() {
            if !sw.children.is_empty() {
                continue;
            }
            for &n in &sw.nodes {
                if let Some(prev) = node_leaf[n as usize] {
                    return Err(ClusterError::OverlappingSwitches {
                        node: nodes[n as usize].name.clone(),
                        first: switches[prev as usize].name.clone(),
                        second: sw.name.clone(),
                    });
                }
                node_leaf[n as usize] = Some(s as u32);
            }
        }
        let ns = switches.len();
        let mut parent: Vec<Option<u32>> = vec![None; ns];
        for s in 0..ns {
            for &c in &switches[s].children.clone() {
                if c as usize == s {
                    return Err(ClusterError::SwitchCycle(switches[s].name.clone()));
                }
                if let Some(p) = parent[c as usize] {
                    return Err(ClusterError::TwoParents {
                        child: switches[c as usize].name.clone(),
                        first: switches[p as usize].name.clone(),
                        second: switches[s].name.clone(),
                    });
                }
                parent[c as usize] = Some(s as u32);
            }
        }
        // Levels and subtree nodes, children first; a cycle leaves some switch unresolved.
        let mut done = vec![false; ns];
        for _ in 0..=ns {
            for s in 0..ns {
                if done[s] || !switches[s].children.iter().all(|&c| done[c as usize]) {
                    continue;
                }
                if !switches[s].children.is_empty() {
                    let mut level = 0;
                    let mut sub = Vec::new();
                    for &c in &switches[s].children {
                        level = level.max(switches[c as usize].level + 1);
                        sub.extend_from_slice(&switches[c as usize].nodes);
                    }
                    sub.sort_unstable();
                    switches[s].level = level;
                    switches[s].nodes = sub;
                } else {
                    switches[s].level = 0;
                    switches[s].nodes.sort_unstable();
                }
                switches[s].parent = parent[s];
                done[s] = true;
            }
        }
        if let Some(s) = done.iter().position(|d| !d) {
            return Err(ClusterError::SwitchCycle(switches[s].name.clone()));
        }
        if !switches.is_empty()
            && let Some(n) = node_leaf.iter().position(Option::is_none)
        {
            return Err(ClusterError::NodeWithoutSwitch(nodes[n].name.clone()));
        }
        Ok(Cluster {
            nodes,
            partitions,
            switches,
            node_leaf,
            default_partition,
        })
    }

    pub fn total_cpus(&self) -> u64 {
        self.nodes.iter().map(|n| u64::from(n.cpus)).sum()
    }

    /// Every node fully free.
    pub fn empty_avail(&self) -> Vec<Avail> {
        self.nodes
            .iter()
            .map(|n| Avail {
                cpus: n.cpus,
                mem_mb: n.mem_mb,
                gpus: n.gpus,
            })
            .collect()
    }

    pub fn partition_by_name(&self, name: &str) -> Option<u32> {
        self.partitions
            .iter()
            .position(|p| p.name == name)
            .map(|i| i as u32)
    }

    pub fn node_by_name(&self, name: &str) -> Option<u32> {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .map(|i| i as u32)
    }

    /// Number of distinct leaf switches an allocation spans (0 without a topology).
    pub fn leaves_spanned(&self, slices: &[Slice]) -> u32 {
        let mut leaves: Vec<u32> = slices
            .iter()
            .filter_map(|s| self.node_leaf[s.node as usize])
            .collect();
        leaves.sort_unstable();
        leaves.dedup();
        leaves.len() as u32
    }

    /// The allocation per node, as `NODE:CPUS` or `NODE:CPUS:gpu(IDX:0-1)`, joined by `;`
    /// (Slurm's `scontrol show job -d` detail, compacted).
    pub fn allocation_detail(&self, slices: &[Slice]) -> String {
        let mut parts = Vec::with_capacity(slices.len());
        for s in slices {
            let name = &self.nodes[s.node as usize].name;
            if s.gpus == 0 {
                parts.push(format!("{name}:{}", s.cpus));
            } else {
                parts.push(format!(
                    "{name}:{}:gpu(IDX:{})",
                    s.cpus,
                    index_ranges(s.gpu_mask)
                ));
            }
        }
        parts.join(";")
    }

    /// The allocation's nodes in Slurm hostlist syntax.
    pub fn hostlist(&self, slices: &[Slice]) -> String {
        let mut nodes: Vec<u32> = slices.iter().map(|s| s.node).collect();
        nodes.sort_unstable();
        super::hostlist::compress(nodes.iter().map(|&n| self.nodes[n as usize].name.as_str()))
    }

    /// True when the cluster is one node with CPUs only: the single-resource model of the
    /// simulation contract (semantics §5), which policies may plan with a scalar profile.
    pub fn is_single_cpu_pool(&self) -> bool {
        self.nodes.len() == 1 && self.nodes[0].mem_mb == 0 && self.nodes[0].gpus == 0
    }
}
