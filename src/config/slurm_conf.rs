//! The hardware lines of Slurm's `slurm.conf` (`NodeName=…` and `PartitionName=…`) and the
//! scheduling lines the `slurm` policy models.
//!
//! Understood: `NodeName` (a hostlist, or `DEFAULT` for defaults of later lines) with `CPUs`
//! (or `Procs`, else `Boards × Sockets × CoresPerSocket × ThreadsPerCore`), `RealMemory` (MB)
//! and `Gres=gpu:N` / `gpu:TYPE:N`; `PartitionName` (or `DEFAULT`) with `Nodes` (hostlist or
//! `ALL`), `Default=YES|NO`, `MaxTime` and `DefaultTime` (`UNLIMITED`/`INFINITE`, minutes, or
//! Slurm's time syntax) and `MaxNodes` (`UNLIMITED` or a count).
//!
//! Scheduling lines become parameters of the `slurm` policy, under its own names
//! ([`SlurmConf::scheduler`]): `SchedulerType` (`sched/builtin` turns backfill off), the
//! modelled `SchedulerParameters` (`bf_interval`, `bf_resolution`, `bf_window`,
//! `bf_max_job_test`, `bf_node_space_size`, `default_queue_depth`, `sched_interval`,
//! `batch_sched_delay`), `PriorityType`, `PriorityWeight{Age,Fairshare,JobSize,Partition,QOS}`
//! (Slurm's default weight is 0), `PriorityMaxAge`, `PriorityDecayHalfLife`,
//! `PriorityFavorSmall`, `KillWait`, and `DefMemPerCPU` when
//! `SelectTypeParameters` makes memory consumable (unset there: a job without a memory
//! request takes its nodes' memory, `def_mem_per_cpu=0`).
//!
//! Other keys of these lines, `SchedulerParameters` options not modelled, and every other line
//! (`ClusterName=…`, ...), are ignored with a note.

use super::slurm_keys::{self, known};
use super::{ConfigError, expand_glob, include_target, logical_lines, pairs};
use crate::model::hostlist;
use crate::model::{Node, Partition};
use crate::time::{Dur, parse_duration};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub struct SlurmConf {
    pub nodes: Vec<Node>,
    pub partitions: Vec<Partition>,
    /// Parameters of the `slurm` policy, `(name, value)` in the policy's own names, in the
    /// order the file gave them.
    pub scheduler: Vec<(String, String)>,
    pub notes: Vec<String>,
}

/// `SchedulerParameters` options the `slurm` policy models: whole numbers, same names.
const SCHED_PARAMS: [&str; 8] = [
    "bf_interval",
    "bf_resolution",
    "bf_window",
    "bf_max_job_test",
    "bf_node_space_size",
    "default_queue_depth",
    "sched_interval",
    "batch_sched_delay",
];

/// Global keys read as `slurm` policy parameters: (slurm.conf key, parameter, value kind).
const SCHED_KEYS: [(&str, &str, Kind); 9] = [
    ("priorityweightage", "age", Kind::Number),
    ("priorityweightfairshare", "fairshare", Kind::Number),
    ("priorityweightjobsize", "jobsize", Kind::Number),
    ("priorityweightpartition", "partition", Kind::Number),
    ("priorityweightqos", "qos", Kind::Number),
    ("prioritymaxage", "max_age", Kind::Time),
    ("prioritydecayhalflife", "half_life", Kind::Time),
    ("priorityfavorsmall", "favor_small", Kind::YesNo),
    ("killwait", "kill_wait", Kind::Number),
];

#[derive(Clone, Copy)]
enum Kind {
    Number,
    Time,
    YesNo,
}

/// Node keys we read, and keys Slurm defines for node lines that do not change the model.
const NODE_QUIET: [&str; 14] = [
    "state",
    "feature",
    "features",
    "weight",
    "nodeaddr",
    "nodehostname",
    "port",
    "tmpdisk",
    "memspeclimit",
    "cpuspeclist",
    "corespeccount",
    "reason",
    "cpubind",
    "bcastaddr",
];
const PART_QUIET: [&str; 11] = [
    "state",
    "oversubscribe",
    "priorityjobfactor",
    "prioritytier",
    "allowgroups",
    "allowaccounts",
    "allowqos",
    "hidden",
    "rootonly",
    "shared",
    "defmempercpu",
];

/// What a `NodeSet=` names.
enum NodeSetDef {
    Nodes(String),
    Feature(String),
}

#[derive(Clone, Default)]
struct NodeDefaults {
    features: Vec<String>,
    cpus: Option<u32>,
    boards: Option<u32>,
    sockets: Option<u32>,
    cores: Option<u32>,
    threads: Option<u32>,
    mem: Option<u64>,
    gpus: Option<u32>,
}

#[derive(Clone, Default)]
struct PartDefaults {
    max_time: Option<Option<Dur>>,
    default_time: Option<Option<Dur>>,
    max_nodes: Option<Option<u32>>,
    nodes: Option<String>,
}

/// Reads the node and partition lines of a `slurm.conf`; every other line is noted as ignored.
pub fn parse(text: &str, path: &Path) -> Result<SlurmConf, ConfigError> {
    let mut r = Reader::default();
    r.read(text, path, 0)?;
    r.finish(path)
}

/// How deep `Include` lines may nest (a file including itself stops here).
const MAX_INCLUDE_DEPTH: usize = 8;

/// A line's error: the message placed at the file and line being read.
type LineErr<'a> = &'a dyn Fn(String) -> ConfigError;

/// What the lines read so far give: the nodes and partitions, the current `DEFAULT` values,
/// and the keys ignored.
#[derive(Default)]
struct Reader {
    nodes: Vec<Node>,
    partitions: Vec<Partition>,
    ignored: BTreeSet<String>,
    node_def: NodeDefaults,
    part_def: PartDefaults,
    /// Each partition's file, line and node list, resolved once every node is known.
    part_nodes: Vec<(PathBuf, u64, String)>,
    /// Each node's features (`Feature=`/`Features=`), for `NodeSet=… Feature=`.
    features: Vec<Vec<String>>,
    nodesets: Vec<(String, NodeSetDef)>,
    scheduler: Vec<(String, String)>,
    /// `SelectTypeParameters` makes memory consumable.
    memory: bool,
    def_mem_per_cpu: Option<String>,
    /// `PriorityType=priority/multifactor`.
    multifactor: bool,
}

impl Reader {
    /// Reads the lines of one file (`path`, for errors), following its `Include` lines.
    fn read(&mut self, text: &str, path: &Path, depth: usize) -> Result<(), ConfigError> {
        for (line, l) in logical_lines(text) {
            let err = |m: String| ConfigError::at(path, line, m);
            if let Some(target) = include_target(&l) {
                self.include(target, path, line, depth)?;
                continue;
            }
            let kv = pairs(&l).map_err(err)?;
            let Some((first, value)) = kv.first() else {
                continue;
            };
            match first.to_ascii_lowercase().as_str() {
                "nodename" => self.node_line(value, &kv[1..], &err)?,
                "partitionname" => self.partition_line(path, line, value, &kv[1..], &err)?,
                "nodeset" => self.nodeset_line(value, &kv[1..], &err)?,
                "downnodes" | "frontendname" => {
                    self.ignored.insert(first.to_string());
                }
                _ => {
                    for (k, v) in &kv {
                        self.global(k, v, &err)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// `Include FILE` (relative to the including file's directory; `*` and `?` match in the
    /// file name, as Slurm's glob does): the files' lines are read in place, in name order.
    fn include(
        &mut self,
        target: &str,
        from: &Path,
        line: u64,
        depth: usize,
    ) -> Result<(), ConfigError> {
        let err = |m: String| ConfigError::at(from, line, m);
        if depth >= MAX_INCLUDE_DEPTH {
            return Err(err(format!(
                "Include {target}: more than {MAX_INCLUDE_DEPTH} levels of Include (a loop?)"
            )));
        }
        let base = from.parent().unwrap_or(Path::new(""));
        let full = base.join(target);
        let files = expand_glob(&full).map_err(|e| err(format!("Include {target}: {e}")))?;
        if files.is_empty() {
            return Err(err(format!("Include {target}: no such file")));
        }
        for f in files {
            let text = std::fs::read_to_string(&f)
                .map_err(|e| err(format!("Include {}: {e}", f.display())))?;
            self.read(&text, &f, depth + 1)?;
        }
        Ok(())
    }

    /// `NodeSet=NAME Nodes=HOSTLIST|ALL` or `NodeSet=NAME Feature=FEATURE`: a name partitions
    /// may use in their `Nodes=`.
    fn nodeset_line(
        &mut self,
        name: &str,
        keys: &[(String, String)],
        err: LineErr,
    ) -> Result<(), ConfigError> {
        let mut set = None;
        for (k, v) in keys {
            match known(k, slurm_keys::NODESET) {
                Some("Nodes") => set = Some(NodeSetDef::Nodes(v.clone())),
                Some(_) => set = Some(NodeSetDef::Feature(v.clone())),
                None => {
                    return Err(err(slurm_keys::unknown(
                        k,
                        "on a NodeSet line",
                        slurm_keys::NODESET,
                    )));
                }
            }
        }
        let Some(set) = set else {
            return Err(err(format!("NodeSet {name}: expected Nodes= or Feature=")));
        };
        if self.nodesets.iter().any(|(n, _)| n == name) {
            return Err(err(format!("NodeSet {name} is defined twice")));
        }
        self.nodesets.push((name.to_string(), set));
        Ok(())
    }

    /// A `NodeName=` line: new defaults (`DEFAULT`), or nodes with the defaults overridden by
    /// the line's keys.
    fn node_line(
        &mut self,
        value: &str,
        keys: &[(String, String)],
        err: LineErr,
    ) -> Result<(), ConfigError> {
        let mut d = self.node_def.clone();
        for (k, v) in keys {
            let key = k.to_ascii_lowercase();
            let num = |what: &str| -> Result<u32, ConfigError> {
                v.parse::<u32>()
                    .map_err(|_| err(format!("{k}: expected {what}, found '{v}'")))
            };
            match key.as_str() {
                "cpus" | "procs" => d.cpus = Some(num("a CPU count")?),
                "boards" => d.boards = Some(num("a count")?),
                "sockets" | "socketsperboard" => d.sockets = Some(num("a count")?),
                "corespersocket" => d.cores = Some(num("a count")?),
                "threadspercore" => d.threads = Some(num("a count")?),
                "realmemory" => {
                    d.mem =
                        Some(v.parse::<u64>().map_err(|_| {
                            err(format!("RealMemory: expected megabytes, found '{v}'"))
                        })?)
                }
                "gres" => d.gpus = Some(parse_gres(v).map_err(err)?),
                "feature" | "features" => {
                    d.features = v.split(',').map(|f| f.trim().to_string()).collect()
                }
                q if NODE_QUIET.contains(&q) => {}
                _ => match known(k, slurm_keys::NODE) {
                    Some(k) => {
                        self.ignored.insert(format!("NodeName … {k}"));
                    }
                    None => {
                        return Err(err(slurm_keys::unknown(
                            k,
                            "on a NodeName line",
                            slurm_keys::NODE,
                        )));
                    }
                },
            }
        }
        if value.eq_ignore_ascii_case("DEFAULT") {
            self.node_def = d;
            return Ok(());
        }
        let names = hostlist::expand(value).map_err(err)?;
        let cpus = d.cpus.unwrap_or_else(|| {
            d.boards.unwrap_or(1)
                * d.sockets.unwrap_or(1)
                * d.cores.unwrap_or(1)
                * d.threads.unwrap_or(1)
        });
        for name in names {
            if self.nodes.iter().any(|n| n.name == name) {
                return Err(err(format!("node {name} is defined twice")));
            }
            // Slurm's default RealMemory is 1 MB.
            self.nodes.push(Node {
                name,
                cpus,
                mem_mb: d.mem.unwrap_or(1),
                gpus: d.gpus.unwrap_or(0),
            });
            self.features.push(d.features.clone());
        }
        Ok(())
    }

    /// A `PartitionName=` line: new defaults (`DEFAULT`), or a partition whose node list is
    /// resolved later, by [`Reader::finish`].
    fn partition_line(
        &mut self,
        path: &Path,
        line: u64,
        value: &str,
        keys: &[(String, String)],
        err: LineErr,
    ) -> Result<(), ConfigError> {
        let mut d = self.part_def.clone();
        let mut default = false;
        for (k, v) in keys {
            match k.to_ascii_lowercase().as_str() {
                "nodes" => d.nodes = Some(v.clone()),
                "default" => {
                    default = match v.to_ascii_uppercase().as_str() {
                        "YES" => true,
                        "NO" => false,
                        _ => {
                            return Err(err(format!("Default: expected YES or NO, found '{v}'")));
                        }
                    }
                }
                "maxtime" => d.max_time = Some(parse_max_time("MaxTime", v).map_err(err)?),
                "defaulttime" => {
                    d.default_time = Some(parse_max_time("DefaultTime", v).map_err(err)?)
                }
                "maxnodes" => {
                    d.max_nodes = Some(if is_unlimited(v) {
                        None
                    } else {
                        Some(v.parse::<u32>().map_err(|_| {
                            err(format!(
                                "MaxNodes: expected a count or UNLIMITED, found '{v}'"
                            ))
                        })?)
                    })
                }
                q if PART_QUIET.contains(&q) => {}
                _ => match known(k, slurm_keys::PARTITION) {
                    Some(k) => {
                        self.ignored.insert(format!("PartitionName … {k}"));
                    }
                    None => {
                        return Err(err(slurm_keys::unknown(
                            k,
                            "on a PartitionName line",
                            slurm_keys::PARTITION,
                        )));
                    }
                },
            }
        }
        if value.eq_ignore_ascii_case("DEFAULT") {
            self.part_def = d;
            return Ok(());
        }
        if self.partitions.iter().any(|p| p.name == value) {
            return Err(err(format!("partition {value} is defined twice")));
        }
        let Some(list) = d.nodes.clone() else {
            return Err(err(format!("partition {value} has no Nodes=")));
        };
        self.part_nodes.push((path.to_path_buf(), line, list));
        self.partitions.push(Partition {
            name: value.to_string(),
            nodes: Vec::new(),
            max_time: d.max_time.flatten(),
            default_time: d.default_time.flatten(),
            max_nodes: d.max_nodes.flatten(),
            default,
        });
        Ok(())
    }

    /// A global `Key=Value`: a scheduling key the `slurm` policy models, or one ignored.
    fn global(&mut self, key: &str, v: &str, err: LineErr) -> Result<(), ConfigError> {
        let lower = key.to_ascii_lowercase();
        let mut push = |name: &str, value: String| self.scheduler.push((name.to_string(), value));
        match lower.as_str() {
            "schedulertype" => match v {
                "sched/backfill" => {}
                "sched/builtin" => push("bf_interval", "-1".into()),
                _ => {
                    return Err(err(format!(
                        "SchedulerType: expected sched/backfill or sched/builtin, found '{v}'"
                    )));
                }
            },
            "schedulerparameters" => {
                for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                    let (k, val) = item.split_once('=').unwrap_or((item, ""));
                    let k = k.trim().to_ascii_lowercase();
                    if !SCHED_PARAMS.contains(&k.as_str()) {
                        self.ignored.insert(format!("SchedulerParameters … {k}"));
                        continue;
                    }
                    let val = val.trim();
                    if val.parse::<i64>().is_err() {
                        return Err(err(format!(
                            "SchedulerParameters: {k}: expected a whole number, found '{val}'"
                        )));
                    }
                    self.scheduler.push((k, val.to_string()));
                }
            }
            "prioritytype" => match v {
                "priority/basic" => self.multifactor = false,
                "priority/multifactor" => self.multifactor = true,
                _ => {
                    return Err(err(format!(
                        "PriorityType: expected priority/basic or priority/multifactor, found '{v}'"
                    )));
                }
            },
            "selecttype" => match v {
                "select/cons_tres" | "select/cons_res" => {}
                _ => {
                    self.ignored
                        .insert(format!("SelectType={v} (whole-node allocation)"));
                }
            },
            "selecttypeparameters" => {
                self.memory = v.split(',').any(|p| {
                    p.trim().to_ascii_lowercase().ends_with("_memory")
                        || p.trim().eq_ignore_ascii_case("CR_Memory")
                });
            }
            "defmempercpu" => {
                v.parse::<u64>()
                    .map_err(|_| err(format!("DefMemPerCPU: expected megabytes, found '{v}'")))?;
                self.def_mem_per_cpu = Some(v.to_string());
            }
            k => match SCHED_KEYS.iter().find(|(name, _, _)| *name == k) {
                Some(&(_, param, kind)) => {
                    let ok = match kind {
                        Kind::Number => v.parse::<f64>().is_ok_and(|x| x.is_finite() && x >= 0.0),
                        Kind::Time => parse_duration(v, 60_000).is_ok(),
                        Kind::YesNo => matches!(v.to_ascii_uppercase().as_str(), "YES" | "NO"),
                    };
                    if !ok {
                        let what = match kind {
                            Kind::Number => "a number ≥ 0",
                            Kind::Time => "minutes or [D-]HH:MM:SS",
                            Kind::YesNo => "YES or NO",
                        };
                        return Err(err(format!("{key}: expected {what}, found '{v}'")));
                    }
                    let value = match kind {
                        Kind::YesNo => v.to_ascii_lowercase(),
                        _ => v.to_string(),
                    };
                    push(param, value);
                }
                None => match known(key, slurm_keys::GLOBAL) {
                    Some(k) => {
                        self.ignored.insert(k.to_string());
                    }
                    None => {
                        return Err(err(slurm_keys::unknown(
                            key,
                            "in slurm.conf",
                            slurm_keys::GLOBAL,
                        )));
                    }
                },
            },
        }
        Ok(())
    }

    /// The `slurm` policy's parameters from the scheduling keys read: the priority source
    /// (with Slurm's weights, 0 unless given), the memory default, then the rest as given.
    fn scheduler_params(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.multifactor {
            out.push(("priority".to_string(), "multifactor".to_string()));
            for w in ["age", "fairshare", "jobsize", "partition", "qos"] {
                if !self.scheduler.iter().any(|(k, _)| k == w) {
                    out.push((w.to_string(), "0".to_string()));
                }
            }
        }
        if self.memory {
            let d = self
                .def_mem_per_cpu
                .clone()
                .unwrap_or_else(|| "0".to_string());
            out.push(("def_mem_per_cpu".to_string(), d));
        }
        // A key given twice: the last one counts, as in Slurm.
        for (k, v) in &self.scheduler {
            out.retain(|(o, _)| o != k);
            out.push((k.clone(), v.clone()));
        }
        out
    }

    /// After the last line: at least one node, the partitions' node lists resolved (`ALL` or
    /// hostlists of known nodes), and one note listing what was ignored.
    fn finish(self, path: &Path) -> Result<SlurmConf, ConfigError> {
        let scheduler = self.scheduler_params();
        let Reader {
            nodes,
            mut partitions,
            ignored,
            part_nodes,
            features,
            nodesets,
            ..
        } = self;
        if nodes.is_empty() {
            return Err(ConfigError::file(
                path,
                "no NodeName= line: the file describes no node",
            ));
        }
        for (p, (file, line, list)) in partitions.iter_mut().zip(part_nodes) {
            p.nodes = resolve_nodes(&list, &nodes, &features, &nodesets)
                .map_err(|e| ConfigError::at(&file, line, format!("partition {}: {e}", p.name)))?;
        }
        let mut notes = Vec::new();
        if !ignored.is_empty() {
            notes.push(format!(
                "{}: ignored (not part of the hardware model): {}",
                path.display(),
                ignored.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        Ok(SlurmConf {
            nodes,
            partitions,
            scheduler,
            notes,
        })
    }
}

/// A partition's `Nodes=`: comma-separated hostlists, `ALL`, and `NodeSet` names, as node
/// indices in the order given (each node once).
fn resolve_nodes(
    list: &str,
    nodes: &[Node],
    features: &[Vec<String>],
    nodesets: &[(String, NodeSetDef)],
) -> Result<Vec<u32>, String> {
    let mut out: Vec<u32> = Vec::new();
    let add = |i: u32, out: &mut Vec<u32>| {
        if !out.contains(&i) {
            out.push(i);
        }
    };
    let by_name = |name: &str| -> Result<u32, String> {
        nodes
            .iter()
            .position(|n| n.name == name)
            .map(|i| i as u32)
            .ok_or_else(|| format!("unknown node {name}"))
    };
    for item in hostlist::split_top_level(list)? {
        if item.eq_ignore_ascii_case("ALL") {
            (0..nodes.len() as u32).for_each(|i| add(i, &mut out));
            continue;
        }
        if let Some((_, set)) = nodesets.iter().find(|(n, _)| *n == item) {
            match set {
                NodeSetDef::Nodes(l) if l.eq_ignore_ascii_case("ALL") => {
                    (0..nodes.len() as u32).for_each(|i| add(i, &mut out))
                }
                NodeSetDef::Nodes(l) => {
                    for name in hostlist::expand(l)? {
                        add(by_name(&name)?, &mut out);
                    }
                }
                NodeSetDef::Feature(f) => {
                    for (i, fs) in features.iter().enumerate() {
                        if fs.iter().any(|x| x == f) {
                            add(i as u32, &mut out);
                        }
                    }
                }
            }
            continue;
        }
        for name in hostlist::expand(&item)? {
            add(by_name(&name)?, &mut out);
        }
    }
    Ok(out)
}

fn is_unlimited(v: &str) -> bool {
    v.eq_ignore_ascii_case("UNLIMITED") || v.eq_ignore_ascii_case("INFINITE")
}

/// `MaxTime` or `DefaultTime`: `UNLIMITED`/`INFINITE`, a number of minutes, or
/// `[D-]HH:MM:SS`.
fn parse_max_time(key: &str, v: &str) -> Result<Option<Dur>, String> {
    if is_unlimited(v) {
        return Ok(None);
    }
    parse_duration(v, 60_000)
        .map(Some)
        .map_err(|_| format!("{key}: expected minutes, [D-]HH:MM:SS or UNLIMITED, found '{v}'"))
}

/// The GPU count of a `Gres=` value: `gpu:4`, `gpu:a100:4`, `gpu:2,mps:100`; other resources
/// are ignored.
fn parse_gres(v: &str) -> Result<u32, String> {
    let mut gpus = 0;
    for item in v.split(',') {
        let item = item.split('(').next().unwrap_or("");
        let parts: Vec<&str> = item.split(':').collect();
        if parts.first().map(|p| p.trim()) != Some("gpu") {
            continue;
        }
        let count = match parts.len() {
            1 => 1,
            _ => {
                match parts[parts.len() - 1].parse::<u32>() {
                    Ok(n) => n,
                    Err(_) if parts.len() == 2 => 1, // gpu:TYPE
                    Err(_) => {
                        return Err(format!(
                            "Gres: expected gpu:N or gpu:TYPE:N, found '{item}'"
                        ));
                    }
                }
            }
        };
        gpus += count;
    }
    Ok(gpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<SlurmConf, ConfigError> {
        parse(text, Path::new("slurm.conf"))
    }

    #[test]
    fn reads_nodes_partitions_and_defaults() {
        let c = p("ClusterName=demo\n\
                   NodeName=DEFAULT RealMemory=64000\n\
                   NodeName=n[0-3] CPUs=32 State=UNKNOWN\n\
                   NodeName=g[0-1] Sockets=2 CoresPerSocket=8 ThreadsPerCore=2 Gres=gpu:a100:4 \\\n  RealMemory=512000\n\
                   PartitionName=cpu Nodes=n[0-3] Default=YES MaxTime=2-00:00:00\n\
                   PartitionName=gpu Nodes=g[0-1] MaxTime=60 MaxNodes=2 # short\n\
                   PartitionName=all Nodes=ALL MaxTime=INFINITE MinNodes=1\n")
        .unwrap();
        assert_eq!(c.nodes.len(), 6);
        assert_eq!(c.nodes[0].cpus, 32);
        assert_eq!(c.nodes[0].mem_mb, 64000);
        assert_eq!(c.nodes[4].name, "g0");
        assert_eq!(c.nodes[4].cpus, 32, "2 × 8 × 2");
        assert_eq!(c.nodes[4].gpus, 4);
        assert_eq!(c.nodes[4].mem_mb, 512000);
        assert_eq!(c.partitions[0].nodes, [0, 1, 2, 3]);
        assert!(c.partitions[0].default);
        assert_eq!(c.partitions[0].max_time, Some(Dur::from_secs(2 * 86400)));
        assert_eq!(c.partitions[1].max_time, Some(Dur::from_secs(3600)));
        assert_eq!(c.partitions[1].max_nodes, Some(2));
        assert_eq!(c.partitions[2].nodes.len(), 6);
        assert_eq!(c.partitions[2].max_time, None);
        assert_eq!(c.notes.len(), 1);
        assert!(c.notes[0].contains("ClusterName"), "{:?}", c.notes);
        assert!(
            c.notes[0].contains("PartitionName … MinNodes"),
            "{:?}",
            c.notes
        );
    }

    #[test]
    fn errors_name_the_line() {
        let e = p("NodeName=n[0-1] CPUs=4\nPartitionName=p Nodes=n[0-2]\n")
            .err()
            .unwrap();
        assert_eq!(e.to_string(), "slurm.conf:2: partition p: unknown node n2");
        let e = p("NodeName=n[0-1] CPUs=four\n").err().unwrap();
        assert_eq!(
            e.to_string(),
            "slurm.conf:1: CPUs: expected a CPU count, found 'four'"
        );
        let e = p("NodeName=n[0-1 CPUs=4\n").err().unwrap();
        assert!(e.to_string().starts_with("slurm.conf:1: "), "{e}");
        let e = p("NodeName=n1 CPUs=4 oops\n").err().unwrap();
        assert_eq!(
            e.to_string(),
            "slurm.conf:1: expected Key=Value, found 'oops'"
        );
        let e = p("ClusterName=x\n").err().unwrap();
        assert!(e.to_string().contains("no NodeName"), "{e}");
    }

    #[test]
    fn scheduling_lines_become_slurm_policy_parameters() {
        let c = p("SchedulerType=sched/backfill\n\
                   SchedulerParameters=bf_interval=1,sched_min_interval=0,batch_sched_delay=0,bf_continue\n\
                   SelectType=select/cons_tres\n\
                   SelectTypeParameters=CR_Core_Memory\n\
                   DefMemPerCPU=100\n\
                   PriorityType=priority/multifactor\n\
                   PriorityWeightAge=500\n\
                   PriorityMaxAge=1-0\n\
                   PriorityFavorSmall=YES\n\
                   KillWait=5\n\
                   NodeName=n0 CPUs=4 RealMemory=8000\n\
                   PartitionName=p Nodes=n0 DefaultTime=30 MaxTime=2:00:00\n")
        .unwrap();
        let kv: Vec<String> = c
            .scheduler
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(
            kv.join(","),
            "priority=multifactor,fairshare=0,jobsize=0,partition=0,qos=0,def_mem_per_cpu=100,\
             bf_interval=1,batch_sched_delay=0,age=500,max_age=1-0,favor_small=yes,kill_wait=5"
        );
        assert_eq!(c.partitions[0].default_time, Some(Dur::from_secs(1800)));
        assert_eq!(c.partitions[0].max_time, Some(Dur::from_secs(7200)));
        let note = &c.notes[0];
        assert!(
            note.contains("SchedulerParameters … sched_min_interval"),
            "{note}"
        );
        assert!(note.contains("SchedulerParameters … bf_continue"), "{note}");
        assert!(
            !note.contains("PriorityType") && !note.contains("KillWait"),
            "{note}"
        );
        // Memory not consumable: no memory default; builtin: no backfill.
        let c = p("SchedulerType=sched/builtin\nSelectTypeParameters=CR_Core\nDefMemPerCPU=100\nNodeName=n0 CPUs=4\n").unwrap();
        assert_eq!(c.scheduler, [("bf_interval".to_string(), "-1".to_string())]);
        // Memory consumable without DefMemPerCPU: a job without memory takes its nodes' memory.
        let c = p("SelectTypeParameters=CR_CPU_Memory\nNodeName=n0 CPUs=4\n").unwrap();
        assert_eq!(
            c.scheduler,
            [("def_mem_per_cpu".to_string(), "0".to_string())]
        );
        let c = p("SelectType=select/linear\nNodeName=n0 CPUs=4\n").unwrap();
        assert!(c.notes[0].contains("select/linear"), "{:?}", c.notes);
    }

    #[test]
    fn bad_scheduling_values_name_the_line() {
        for (text, msg) in [
            (
                "SchedulerParameters=bf_interval=often\n",
                "slurm.conf:1: SchedulerParameters: bf_interval: expected a whole number, found 'often'",
            ),
            (
                "\nPriorityType=priority/fancy\n",
                "slurm.conf:2: PriorityType: expected priority/basic or priority/multifactor, found 'priority/fancy'",
            ),
            (
                "PriorityWeightAge=-3\n",
                "slurm.conf:1: PriorityWeightAge: expected a number ≥ 0, found '-3'",
            ),
            (
                "DefMemPerCPU=lots\n",
                "slurm.conf:1: DefMemPerCPU: expected megabytes, found 'lots'",
            ),
            (
                "SchedulerType=sched/wiki\n",
                "slurm.conf:1: SchedulerType: expected sched/backfill or sched/builtin, found 'sched/wiki'",
            ),
            (
                "NodeName=n0 CPUs=4\nPartitionName=p Nodes=n0 DefaultTime=soon\n",
                "slurm.conf:2: DefaultTime: expected minutes, [D-]HH:MM:SS or UNLIMITED, found 'soon'",
            ),
        ] {
            let text = format!("{text}NodeName=z9 CPUs=1\n");
            assert_eq!(p(&text).err().unwrap().to_string(), msg);
        }
    }

    #[test]
    fn unknown_keys_are_errors_with_the_nearest_key() {
        for (text, msg) in [
            (
                "NodeName=n[0-47] CPUs=32 RealMemroy=128000\n",
                "slurm.conf:1: unknown key 'RealMemroy' on a NodeName line (did you mean 'RealMemory'?)",
            ),
            (
                "NodeName=n0 CPUs=4\nPartitionName=p Nodes=n0 MaxTme=60\n",
                "slurm.conf:2: unknown key 'MaxTme' on a PartitionName line (did you mean 'MaxTime'?)",
            ),
            (
                "SchedulerParamters=bf_interval=30\nNodeName=n0 CPUs=4\n",
                "slurm.conf:1: unknown key 'SchedulerParamters' in slurm.conf (did you mean 'SchedulerParameters'?)",
            ),
            (
                "NodeName=n0 CPUs=4\nPartitionName=p Nodes=n0 Frobnicate=1\n",
                "slurm.conf:2: unknown key 'Frobnicate' on a PartitionName line (see slurm.conf(5) for the keys Slurm knows)",
            ),
        ] {
            assert_eq!(p(text).err().unwrap().to_string(), msg);
        }
        // Keys Slurm knows that do not change the model: one note, whatever their case.
        let c = p(
            "clustername=x\nSlurmctldHost=h\nAuthType=auth/munge\nDownNodes=n0 State=DOWN\n\
                   NodeName=n0 CPUs=4 TmpDisk=100 TRESWeights=x\n",
        )
        .unwrap();
        let note = &c.notes[0];
        for k in [
            "ClusterName",
            "SlurmctldHost",
            "AuthType",
            "DownNodes",
            "NodeName … TRESWeights",
        ] {
            assert!(note.contains(k), "{k} in {note}");
        }
    }

    #[test]
    fn real_memory_defaults_to_one_megabyte_as_in_slurm() {
        let c = p("NodeName=n0 CPUs=4\n").unwrap();
        assert_eq!(c.nodes[0].mem_mb, 1);
    }

    #[test]
    fn nodesets_by_hostlist_and_feature() {
        let c = p("NodeName=n[0-3] CPUs=4 Feature=cpu,ib\n\
                   NodeName=g[0-1] CPUs=8 Features=gpu\n\
                   NodeSet=gpus Feature=gpu\n\
                   NodeSet=first Nodes=n[0-1]\n\
                   PartitionName=a Nodes=gpus,first\n\
                   PartitionName=b Nodes=n3,gpus,g1 Default=YES\n")
        .unwrap();
        assert_eq!(c.partitions[0].nodes, [4, 5, 0, 1]);
        assert_eq!(c.partitions[1].nodes, [3, 4, 5], "g1 once");
        let e = p("NodeName=n0 CPUs=1\nNodeSet=x\n").err().unwrap();
        assert_eq!(
            e.to_string(),
            "slurm.conf:2: NodeSet x: expected Nodes= or Feature="
        );
        let e = p("NodeName=n0 CPUs=1\nNodeSet=x Nodes=n9\nPartitionName=p Nodes=x\n")
            .err()
            .unwrap();
        assert_eq!(e.to_string(), "slurm.conf:3: partition p: unknown node n9");
    }

    #[test]
    fn include_reads_files_in_place_relative_to_the_including_file() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("conf.d");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("10-nodes.conf"), "NodeName=n[0-1] CPUs=4\n").unwrap();
        std::fs::write(sub.join("20-gpu.conf"), "NodeName=g0 CPUs=8 Gres=gpu:2\n").unwrap();
        std::fs::write(sub.join("bad.conf"), "NodeName=b0 CPUs=1 Wieght=3\n").unwrap();
        let main = dir.path().join("slurm.conf");
        let c = parse(
            "ClusterName=x\nInclude conf.d/*-*.conf\nPartitionName=p Nodes=ALL\n",
            &main,
        )
        .unwrap();
        assert_eq!(c.nodes.len(), 3);
        assert_eq!(c.nodes[2].gpus, 2);
        assert_eq!(c.partitions[0].nodes, [0, 1, 2]);
        // Errors name the included file and its line.
        let e = parse("include conf.d/bad.conf\n", &main).err().unwrap();
        let bad = sub.join("bad.conf");
        assert_eq!(
            e.to_string(),
            format!(
                "{}:1: unknown key 'Wieght' on a NodeName line (did you mean 'Weight'?)",
                bad.display()
            )
        );
        let e = parse("Include nope.conf\n", &main).err().unwrap();
        assert!(
            e.to_string()
                .ends_with("slurm.conf:1: Include nope.conf: no such file"),
            "{e}"
        );
        // A file that includes itself stops.
        std::fs::write(sub.join("loop.conf"), "Include loop.conf\n").unwrap();
        let e = parse("Include conf.d/loop.conf\n", &main).err().unwrap();
        assert!(e.to_string().contains("levels of Include"), "{e}");
        assert!(
            super::super::wildcard("*-*.conf", "10-nodes.conf")
                && !super::super::wildcard("*-*.conf", "bad.conf")
        );
    }

    #[test]
    fn gres_forms() {
        assert_eq!(parse_gres("gpu:4"), Ok(4));
        assert_eq!(parse_gres("gpu:a100:2"), Ok(2));
        assert_eq!(parse_gres("gpu:2,mps:100"), Ok(2));
        assert_eq!(parse_gres("mps:100"), Ok(0));
        assert_eq!(parse_gres("gpu:tesla:2(S:0-1)"), Ok(2));
        assert!(parse_gres("gpu:a:b").is_err());
    }
}
