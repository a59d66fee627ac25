//! The Slurm executor: the live daemon's engine, policy and store, with the jobs run by a real
//! Slurm (`scheduler --executor slurm`). mini-slurm decides when and where each job starts;
//! Slurm runs it there.
//!
//! - The cluster the engine schedules is read from Slurm (`scontrol show node -o`, the nodes
//!   of one partition; [`read_cluster`]) and re-read every [`REFRESH`]: a node that goes down
//!   or is drained, and CPUs taken by jobs outside mini-slurm, are held in the engine by
//!   placeholder jobs (`executor.rs`), so the policy plans around them.
//! - Each `Start` becomes one `sbatch --parsable` onto exactly the engine's nodes (`--nodelist`,
//!   `--nodes`), CPUs, memory, GPUs and time limit, with the submitter's working directory,
//!   environment and mini-slurm's log files ([`submission`]). Cancel and preemption are
//!   `scancel`. Ends come from one batched `squeue` per poll, and `sacct` for jobs squeue no
//!   longer lists (`parse.rs` maps every Slurm state).
//! - Crash safety: the launch is recorded (CONFIGURING, with a launch number) before `sbatch`
//!   runs, and the job is submitted under a name unique to this home, job and launch
//!   ([`token`]); its Slurm id is recorded as soon as `sbatch` returns it. A restart adopts the
//!   jobs whose id is recorded, looks the others up by their token (a crash between `sbatch`
//!   and recording the id) and queues again only the launches Slurm never received
//!   (`recovery.rs`): nothing is submitted twice.
//! - Faults: a command that fails or hangs (controller down, `--timeout`) is retried with
//!   back-off and counted in `stats`; the daemon keeps running.
//! - Elastic jobs are refused: Slurm cannot resize a running job's CPUs in place.

pub mod cli;
pub mod executor;
pub mod parse;
pub(super) mod recovery;

use crate::live::Home;
use crate::live::store::JobRow;
use crate::model::{Cluster, Node, Partition, Slice};
use crate::time::Dur;
use cli::{Cli, SlurmError, Submission};
use std::ffi::OsString;
use std::time::Duration;

/// How often the cluster is read again from Slurm.
pub const REFRESH: Dur = Dur(30_000);

/// Why elastic jobs cannot run on this executor (shown to users who submit one).
pub const NO_ELASTIC: &str = "elastic jobs are refused by the Slurm executor: Slurm cannot resize a running job's CPUs in place";

/// How the daemon talks to Slurm.
#[derive(Clone, Debug)]
pub struct SlurmConfig {
    /// The partition jobs run in (`None`: Slurm's default partition).
    pub partition: Option<String>,
    /// The longest a Slurm command may take before it is killed and retried.
    pub timeout: Duration,
    /// How long a job may be missing from both squeue and sacct before it is failed
    /// (Slurm forgot it: no accounting, and it left squeue after MinJobAge).
    pub lost_after: Duration,
}

impl Default for SlurmConfig {
    fn default() -> SlurmConfig {
        SlurmConfig {
            partition: None,
            timeout: Duration::from_secs(20),
            lost_after: Duration::from_secs(600),
        }
    }
}

/// Reading the cluster from Slurm failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Slurm(#[from] SlurmError),
    #[error("--partition {0}: Slurm has no such partition (it has: {1})")]
    NoPartition(String, String),
    #[error("Slurm has no default partition: name one with --partition")]
    NoDefault,
    #[error("partition {0}: {1}")]
    Cluster(String, crate::model::cluster::ClusterError),
}

/// The nodes of `partition` (Slurm's default one if `None`) as the engine's cluster: one
/// partition of that name, with Slurm's `MaxTime`.
pub fn read_cluster(cli: &Cli, partition: Option<&str>) -> Result<Cluster, SetupError> {
    let parts = cli.partitions()?;
    let part = match partition {
        Some(name) => parts.iter().find(|p| p.name == name).ok_or_else(|| {
            let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
            SetupError::NoPartition(name.to_string(), names.join(", "))
        })?,
        None => parts
            .iter()
            .find(|p| p.default)
            .ok_or(SetupError::NoDefault)?,
    };
    let nodes: Vec<Node> = cli
        .nodes()?
        .into_iter()
        .filter(|n| n.partitions.contains(&part.name))
        .map(|n| Node {
            name: n.name,
            cpus: n.cpus,
            mem_mb: n.mem_mb,
            gpus: n.gpus,
        })
        .collect();
    let partition = Partition {
        name: part.name.clone(),
        nodes: (0..nodes.len() as u32).collect(),
        max_time: part.max_minutes.map(|m| Dur(m * 60_000)),
        default_time: part.default_minutes.map(|m| Dur(m * 60_000)),
        max_nodes: None,
        default: true,
    };
    Cluster::new(nodes, vec![partition], Vec::new())
        .map_err(|e| SetupError::Cluster(part.name.clone(), e))
}

/// A short tag of this home (FNV-1a of its path), so two homes' jobs never share a token.
pub fn home_tag(home: &Home) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in home.dir.as_os_str().as_encoded_bytes() {
        h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

/// The Slurm job name of launch `launch` of job `id`: unique per home, job and launch, so a
/// restart finds a submission whose id was never recorded (`ms.TAG.ID.LAUNCH`).
pub fn token(tag: &str, id: i64, launch: i64) -> String {
    format!("ms.{tag}.{id}.{launch}")
}

/// Single-quotes `s` for `/bin/sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Where a job runs and for how long: what the engine chose.
pub struct Placed<'a> {
    pub cluster: &'a Cluster,
    pub partition: &'a str,
    pub alloc: &'a [Slice],
    pub limit: Option<Dur>,
    pub token: &'a str,
}

/// The `sbatch` of a job: its arguments (exactly the engine's allocation), its batch script
/// (the command, run as `submit` runs it) and its environment.
pub fn submission(home: &Home, row: &JobRow, at: &Placed<'_>) -> Submission {
    let names: Vec<&str> = at
        .alloc
        .iter()
        .filter_map(|s| at.cluster.nodes.get(s.node as usize))
        .map(|n| n.name.as_str())
        .collect();
    let cpus: Vec<u32> = at.alloc.iter().map(|s| s.cpus).collect();
    let total: u32 = cpus.iter().sum();
    // The job's `--output`/`--error` (its patterns expanded as the runner would, on the first
    // node), else the home's logs.
    let (out, err) = crate::live::output::paths(home, row, names.first().copied().unwrap_or(""));
    let mut args = vec![
        format!("--job-name={}", at.token),
        format!("--comment={}", row.name),
        format!("--partition={}", at.partition),
        format!("--nodes={}", names.len()),
        format!("--nodelist={}", names.join(",")),
        "--no-requeue".into(),
        "--export=ALL".into(),
        format!("--chdir={}", row.cwd),
        format!("--output={}", out.display()),
        format!("--error={}", err.display()),
    ];
    if let Some(&c) = cpus.first()
        && cpus.iter().all(|&x| x == c)
    {
        args.push("--ntasks-per-node=1".into());
        args.push(format!("--cpus-per-task={c}"));
    } else {
        // Unequal parts: one task per CPU; Slurm spreads them over the named nodes.
        args.push(format!("--ntasks={total}"));
        args.push("--cpus-per-task=1".into());
    }
    if row.mem_mb > 0 {
        args.push(format!("--mem={}M", row.mem_mb));
    }
    if let Some(g) = at.alloc.iter().map(|s| s.gpus).max().filter(|&g| g > 0) {
        args.push(format!("--gres=gpu:{g}"));
    }
    if let Some(l) = at.limit {
        // Slurm's limits are whole minutes: rounded up, at least one.
        args.push(format!("--time={}", ((l.0 + 59_999) / 60_000).max(1)));
    }
    let mut script = format!(
        "#!/bin/sh\n# mini-slurm job {} ({})\nexport MINI_SLURM_JOB_ID={}\n",
        row.id, at.token, row.id
    );
    if let (Some(a), Some(t)) = (row.array_job_id, row.array_task_id) {
        script.push_str(&format!(
            "export MINI_SLURM_ARRAY_JOB_ID={a} MINI_SLURM_ARRAY_TASK_ID={t} SLURM_ARRAY_TASK_ID={t}\n"
        ));
    }
    let words: Vec<String> = row.argv.iter().map(|a| sh_quote(a)).collect();
    if row.shell {
        script.push_str(&format!("exec /bin/sh -c {}\n", words.join(" ")));
    } else {
        script.push_str(&format!("exec {}\n", words.join(" ")));
    }
    Submission {
        args,
        script,
        env: job_env(row),
    }
}

/// The submitter's environment for `sbatch`, without the variables that would steer
/// `sbatch` itself (`SBATCH_*`, `SLURM_*` of an enclosing job), with the daemon's
/// `SLURM_CONF` (which Slurm's commands need) and the job's name.
fn job_env(row: &JobRow) -> Vec<(OsString, OsString)> {
    let steering = |k: &OsString| {
        let k = k.to_string_lossy();
        k.starts_with("SBATCH_") || (k.starts_with("SLURM_") && k != "SLURM_CONF")
    };
    let mut env: Vec<(OsString, OsString)> = row
        .env
        .iter()
        .filter(|(k, _)| !steering(k) && k != "MINI_SLURM_JOB_NAME")
        .cloned()
        .collect();
    if let Some(conf) = std::env::var_os("SLURM_CONF")
        && !env.iter().any(|(k, _)| k == "SLURM_CONF")
    {
        env.push(("SLURM_CONF".into(), conf));
    }
    env.push(("MINI_SLURM_JOB_NAME".into(), row.name.clone().into()));
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_per_home() {
        let a = home_tag(&Home::at("/home/a/.mini_slurm"));
        let b = home_tag(&Home::at("/home/b/.mini_slurm"));
        assert_ne!(a, b);
        assert_eq!(a.len(), 8);
        assert_eq!(token(&a, 7, 2), format!("ms.{a}.7.2"));
    }

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote("$HOME"), "'$HOME'");
    }
}
