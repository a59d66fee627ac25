//! Cluster descriptions: Slurm's own `slurm.conf` and `topology.conf` (the lines that describe
//! hardware), and the command-line shorthands (`--nodes N --cpus-per-node C`, or a trace's
//! P processors as one node).

pub mod accounts;
pub mod slurm_conf;
pub mod slurm_keys;
pub mod topology_conf;

use crate::model::{Cluster, Node};
use std::fmt;
use std::path::{Path, PathBuf};

/// An error in a cluster description, naming the file and, where it applies, the line.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub path: Option<PathBuf>,
    pub line: Option<u64>,
    pub msg: String,
}

impl ConfigError {
    pub fn at(path: &Path, line: u64, msg: impl Into<String>) -> ConfigError {
        ConfigError {
            path: Some(path.to_path_buf()),
            line: Some(line),
            msg: msg.into(),
        }
    }
    pub fn file(path: &Path, msg: impl Into<String>) -> ConfigError {
        ConfigError {
            path: Some(path.to_path_buf()),
            line: None,
            msg: msg.into(),
        }
    }
    pub fn usage(msg: impl Into<String>) -> ConfigError {
        ConfigError {
            path: None,
            line: None,
            msg: msg.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.path, self.line) {
            (Some(p), Some(l)) => write!(f, "{}:{}: {}", p.display(), l, self.msg),
            (Some(p), None) => write!(f, "{}: {}", p.display(), self.msg),
            _ => f.write_str(&self.msg),
        }
    }
}

/// How the user described the cluster on the command line.
#[derive(Clone, Debug, Default)]
pub struct ClusterOptions {
    /// A `slurm.conf` (node and partition lines).
    pub cluster: Option<PathBuf>,
    /// A `topology.conf` (switch lines).
    pub topology: Option<PathBuf>,
    /// Machine size in CPUs (overrides the trace's header).
    pub procs: Option<u32>,
    pub nodes: Option<u32>,
    pub cpus_per_node: Option<u32>,
    pub mem_per_node_mb: Option<u64>,
    pub gpus_per_node: Option<u32>,
}

/// The cluster plus the notes gathered while reading its files (ignored keys, ...).
pub struct Built {
    pub cluster: Cluster,
    /// Parameters of the `slurm` policy read from a `slurm.conf` (`SchedulerParameters`,
    /// `PriorityType`, ...), in the policy's names; empty without a file.
    pub scheduler: Vec<(String, String)>,
    pub notes: Vec<String>,
}

/// Builds the cluster a run uses. `trace_procs` gives the trace's machine size when needed.
pub fn build_cluster(
    opts: &ClusterOptions,
    trace_procs: impl FnOnce(Option<u32>) -> Result<u32, String>,
) -> Result<Built, ConfigError> {
    let mut notes = Vec::new();
    let mut scheduler = Vec::new();
    let (nodes, partitions) = if let Some(path) = &opts.cluster {
        for (flag, given) in [
            ("--procs", opts.procs.is_some()),
            ("--nodes", opts.nodes.is_some()),
            ("--cpus-per-node", opts.cpus_per_node.is_some()),
            ("--mem-per-node", opts.mem_per_node_mb.is_some()),
            ("--gpus-per-node", opts.gpus_per_node.is_some()),
        ] {
            if given {
                return Err(ConfigError::usage(format!(
                    "{flag} cannot be combined with --cluster (the file describes the nodes)"
                )));
            }
        }
        let text = read(path)?;
        let conf = slurm_conf::parse(&text, path)?;
        notes.extend(conf.notes);
        scheduler = conf.scheduler;
        (conf.nodes, conf.partitions)
    } else {
        let (n, cpus) = match (opts.nodes, opts.cpus_per_node) {
            (Some(n), Some(c)) => (n, c),
            (n, c) => {
                let p = trace_procs(opts.procs).map_err(ConfigError::usage)?;
                match (n, c) {
                    (Some(n), None) => {
                        if n == 0 || p % n != 0 {
                            return Err(ConfigError::usage(format!(
                                "--nodes {n} does not divide the machine's {p} processors; give --cpus-per-node too"
                            )));
                        }
                        (n, p / n)
                    }
                    (None, Some(c)) => {
                        if c == 0 || p % c != 0 {
                            return Err(ConfigError::usage(format!(
                                "--cpus-per-node {c} does not divide the machine's {p} processors"
                            )));
                        }
                        (p / c, c)
                    }
                    _ => (1, p),
                }
            }
        };
        if n == 0 || cpus == 0 {
            return Err(ConfigError::usage(
                "--nodes and --cpus-per-node must be at least 1",
            ));
        }
        let nodes = (0..n)
            .map(|i| Node {
                name: format!("n{i}"),
                cpus,
                mem_mb: opts.mem_per_node_mb.unwrap_or(0),
                gpus: opts.gpus_per_node.unwrap_or(0),
            })
            .collect();
        (nodes, Vec::new())
    };
    let switches = match &opts.topology {
        Some(path) => {
            let text = read(path)?;
            let t = topology_conf::parse(&text, path, &nodes)?;
            notes.extend(t.notes);
            t.switches
        }
        None => Vec::new(),
    };
    let what = opts
        .topology
        .as_ref()
        .or(opts.cluster.as_ref())
        .map(|p| p.as_path());
    let cluster = Cluster::new(nodes, partitions, switches).map_err(|e| match what {
        Some(p) => ConfigError::file(p, e.to_string()),
        None => ConfigError::usage(e.to_string()),
    })?;
    Ok(Built {
        cluster,
        scheduler,
        notes,
    })
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError::file(path, e.to_string()))
}

/// Splits a `Key=Value Key=Value` line (after comments and continuations are handled) into
/// pairs. Values may be double-quoted.
pub(crate) fn pairs(line: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!("expected Key=Value, found '{key}'"));
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some(c) => value.push(c),
                    None => return Err(format!("unclosed quote in the value of {key}")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
}

/// Logical lines: comments (`#` to end of line) removed, `\` continuations joined, blank lines
/// dropped; each with its first physical line number.
pub(crate) fn logical_lines(text: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(u64, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let no_comment = match raw.find('#') {
            Some(k) => &raw[..k],
            None => raw,
        };
        let (body, cont) = match no_comment.trim_end().strip_suffix('\\') {
            Some(b) => (b, true),
            None => (no_comment, false),
        };
        let entry = pending.get_or_insert_with(|| (i as u64 + 1, String::new()));
        entry.1.push(' ');
        entry.1.push_str(body);
        if !cont
            && let Some((n, l)) = pending.take()
            && !l.trim().is_empty()
        {
            out.push((n, l.trim().to_string()));
        }
    }
    if let Some((n, l)) = pending
        && !l.trim().is_empty()
    {
        out.push((n, l.trim().to_string()));
    }
    out
}

/// The file an `Include FILE` line names (Slurm also reads `include`), if the line is one.
pub(crate) fn include_target(line: &str) -> Option<&str> {
    let (word, rest) = line.split_once(char::is_whitespace)?;
    let rest = rest.trim();
    (word.eq_ignore_ascii_case("include") && !rest.is_empty() && !rest.contains('='))
        .then_some(rest)
}

/// The files `path` names: itself, or with `*`/`?` in its file name the matching files of its
/// directory, sorted by name.
pub(crate) fn expand_glob(path: &Path) -> Result<Vec<PathBuf>, String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.contains(['*', '?']) {
        return Ok(if path.exists() {
            vec![path.to_path_buf()]
        } else {
            Vec::new()
        });
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| wildcard(&name, &e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    out.sort();
    Ok(out)
}

/// Shell-style `*` and `?` matching of a whole name.
pub(crate) fn wildcard(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(sp) = star {
            pi = sp + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}
