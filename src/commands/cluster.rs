//! `mini-slurm cluster show`: what mini-slurm understood of a cluster description.

use super::{CliError, CliResult};
use anyhow::anyhow;
use mini_slurm::config::{ClusterOptions, build_cluster};
use mini_slurm::model::{Cluster, hostlist};
use mini_slurm::time::fmt_slurm_duration;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct ClusterCmd {
    #[command(subcommand)]
    cmd: Sub,
}

#[derive(clap::Subcommand, Debug)]
enum Sub {
    /// Print the nodes, partitions and switch tree read from a slurm.conf (and topology.conf)
    Show {
        /// A Slurm slurm.conf (NodeName= and PartitionName= lines)
        #[arg(value_name = "SLURM_CONF")]
        file: PathBuf,
        /// A Slurm topology.conf (SwitchName= lines)
        #[arg(long, value_name = "TOPOLOGY_CONF")]
        topology: Option<PathBuf>,
    },
}

pub fn run(c: ClusterCmd) -> CliResult {
    match c.cmd {
        Sub::Show { file, topology } => {
            let opts = ClusterOptions {
                cluster: Some(file),
                topology,
                ..ClusterOptions::default()
            };
            let built = build_cluster(&opts, |_| Err("unused".into()))
                .map_err(|e| CliError::Input(anyhow!(e)))?;
            for n in &built.notes {
                eprintln!("note: {n}");
            }
            print!("{}", describe(&built.cluster));
            Ok(())
        }
    }
}

/// A human description of a cluster.
pub fn describe(c: &Cluster) -> String {
    let mut s = String::new();
    let gpus: u64 = c.nodes.iter().map(|n| u64::from(n.gpus)).sum();
    let mem: u64 = c.nodes.iter().map(|n| n.mem_mb).sum();
    s.push_str(&format!(
        "{} nodes, {} CPUs, {} MB memory, {} GPUs\n\nNodes:\n",
        c.nodes.len(),
        c.total_cpus(),
        mem,
        gpus
    ));
    // Group nodes with the same configuration (CPUs, memory, GPUs), in order of first appearance.
    type Shape = (u32, u64, u32);
    let mut groups: Vec<(Shape, Vec<&str>)> = Vec::new();
    for n in &c.nodes {
        let key = (n.cpus, n.mem_mb, n.gpus);
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => g.1.push(&n.name),
            None => groups.push((key, vec![&n.name])),
        }
    }
    for ((cpus, mem, gpus), names) in &groups {
        s.push_str(&format!(
            "  {:<24} {} × CPUs={cpus} RealMemory={mem} GPUs={gpus}\n",
            hostlist::compress(names.iter().copied()),
            names.len()
        ));
    }
    s.push_str("\nPartitions:\n");
    for (i, p) in c.partitions.iter().enumerate() {
        let names = p.nodes.iter().map(|&n| c.nodes[n as usize].name.as_str());
        let cpus: u64 = p
            .nodes
            .iter()
            .map(|&n| u64::from(c.nodes[n as usize].cpus))
            .sum();
        s.push_str(&format!(
            "  {:<12}{} Nodes={} ({} nodes, {} CPUs) MaxTime={} MaxNodes={}\n",
            p.name,
            if i as u32 == c.default_partition {
                "*"
            } else {
                " "
            },
            hostlist::compress(names),
            p.nodes.len(),
            cpus,
            p.max_time
                .map_or("UNLIMITED".to_string(), fmt_slurm_duration),
            p.max_nodes
                .map_or("UNLIMITED".to_string(), |n| n.to_string()),
        ));
    }
    if c.switches.is_empty() {
        s.push_str("\nSwitches: none (no topology)\n");
        return s;
    }
    s.push_str("\nSwitch tree:\n");
    let mut roots: Vec<usize> = (0..c.switches.len())
        .filter(|&i| c.switches[i].parent.is_none())
        .collect();
    roots.sort_unstable();
    for r in roots {
        tree(c, r, 1, &mut s);
    }
    s
}

fn tree(c: &Cluster, i: usize, depth: usize, s: &mut String) {
    let sw = &c.switches[i];
    let names = sw.nodes.iter().map(|&n| c.nodes[n as usize].name.as_str());
    s.push_str(&format!(
        "{}{} (level {}): {}\n",
        "  ".repeat(depth),
        sw.name,
        sw.level,
        hostlist::compress(names)
    ));
    for &ch in &sw.children {
        tree(c, ch as usize, depth + 1, s);
    }
}
