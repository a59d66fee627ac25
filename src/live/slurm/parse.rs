//! Readers of what Slurm's commands print, and the mapping of Slurm's job states onto
//! mini-slurm's. Pure functions over text, so every format and every state is unit-tested
//! here without a Slurm (the fake commands of the integration tests print the same formats).
//!
//! The formats are fixed by the arguments `cli.rs` passes:
//! - `sbatch --parsable`: `ID` or `ID;CLUSTER`;
//! - `squeue -h -t all -O JobID:|,State:|,Reason:|,exit_code:|,NodeList:|,Name:|`: one job per
//!   line, fields ended by `|`; `exit_code` is the raw wait status (`768` = exit 3, `15` =
//!   SIGTERM). `-O` rather than `-o` because only `-O` prints the exit code (Slurm 22.05);
//! - `sacct -X -P -n -o JobID,State,ExitCode,JobName`: `|`-separated, `ExitCode` as
//!   `code:signal`, `State` possibly followed by ` by UID` (`CANCELLED by 0`);
//! - `scontrol show node -o` and `scontrol show partition -o`: one record per line of
//!   `Key=Value` words, where a value may contain spaces (`OS=Linux 6.1 #1 SMP`).

use crate::model::FinalState;

/// Where a Slurm job is, in mini-slurm's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlurmState {
    /// Not running yet (PENDING, REQUEUED, held...): Slurm's reason comes with it.
    Waiting,
    /// Resources allocated, not yet in use (CONFIGURING: nodes booting).
    Configuring,
    /// Running, or finishing (COMPLETING, STAGE_OUT), or stopped in place (SUSPENDED,
    /// STOPPED, SIGNALING, RESIZING).
    Running,
    /// Over: how it ended.
    Ended(FinalState),
    /// A state this build does not know: logged, and asked again on the next poll.
    Unknown(String),
}

impl SlurmState {
    /// Maps a state as squeue (`%T`) or sacct print it (`CANCELLED by 0` too).
    pub fn of(text: &str) -> SlurmState {
        let name = text.split_whitespace().next().unwrap_or("");
        let name = name.trim_end_matches('+');
        match name {
            "PENDING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESV_DEL_HOLD"
            | "SPECIAL_EXIT" => SlurmState::Waiting,
            "CONFIGURING" => SlurmState::Configuring,
            "RUNNING" | "COMPLETING" | "STAGE_OUT" | "SUSPENDED" | "STOPPED" | "SIGNALING"
            | "RESIZING" => SlurmState::Running,
            "COMPLETED" => SlurmState::Ended(FinalState::Completed),
            "FAILED" => SlurmState::Ended(FinalState::Failed),
            "TIMEOUT" => SlurmState::Ended(FinalState::Timeout),
            // Slurm ends a job that can no longer finish before its --deadline: it ran out of
            // the time it was given.
            "DEADLINE" => SlurmState::Ended(FinalState::Timeout),
            "CANCELLED" | "REVOKED" => SlurmState::Ended(FinalState::Cancelled),
            "OUT_OF_MEMORY" => SlurmState::Ended(FinalState::OutOfMemory),
            "NODE_FAIL" | "BOOT_FAIL" => SlurmState::Ended(FinalState::NodeFail),
            "PREEMPTED" => SlurmState::Ended(FinalState::Preempted),
            _ => SlurmState::Unknown(text.to_string()),
        }
    }
}

/// Exit code and signal of a finished job (`None`s when Slurm did not say).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl Exit {
    /// From a raw wait status (squeue's `exit_code`): `768` → 3:0, `15` → 0:15.
    pub fn from_status(text: &str) -> Exit {
        let Ok(s) = text.trim().parse::<i32>() else {
            return Exit::default();
        };
        let signal = s & 0x7f;
        Exit {
            code: Some((s >> 8) & 0xff),
            signal: (signal != 0).then_some(signal),
        }
    }
    /// From sacct's `code:signal`.
    pub fn from_pair(text: &str) -> Exit {
        let mut it = text.trim().splitn(2, ':').map(|p| p.parse::<i32>().ok());
        let code = it.next().flatten();
        let signal = it.next().flatten().filter(|&s| s != 0);
        Exit { code, signal }
    }
}

/// One job as a poll reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobStatus {
    pub id: u64,
    /// The state as Slurm printed it (shown to users as is).
    pub state_text: String,
    pub state: SlurmState,
    /// Slurm's reason (`Resources`, `NonZeroExitCode`, `None`...).
    pub reason: String,
    pub exit: Exit,
    /// The job's name: mini-slurm's token (see `token`).
    pub name: String,
}

/// What went wrong reading a command's output: the line, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unexpected output line '{line}': {why}")]
pub struct ParseError {
    pub line: String,
    pub why: &'static str,
}

fn bad(line: &str, why: &'static str) -> ParseError {
    ParseError {
        line: line.to_string(),
        why,
    }
}

/// The job id `sbatch --parsable` prints (`ID` or `ID;CLUSTER`).
pub fn sbatch_id(out: &str) -> Result<u64, ParseError> {
    let line = out
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("");
    let id = line.split(';').next().unwrap_or("");
    id.parse().map_err(|_| bad(line, "not a job id"))
}

/// Reads the squeue lines (see the module header). A job array's or a het job's component
/// ids (`12_3`, `12+0`) are not mini-slurm's and are skipped.
pub fn squeue(out: &str) -> Result<Vec<JobStatus>, ParseError> {
    let mut jobs = Vec::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.splitn(6, '|').map(str::trim).collect();
        let [id, state, reason, exit, _nodes, name] = f.as_slice() else {
            return Err(bad(line, "expected 6 fields separated by '|'"));
        };
        let Ok(id) = id.parse::<u64>() else {
            if id.contains(['_', '+']) {
                continue;
            }
            return Err(bad(line, "not a job id"));
        };
        jobs.push(JobStatus {
            id,
            state_text: state.to_string(),
            state: SlurmState::of(state),
            reason: reason.to_string(),
            exit: Exit::from_status(exit),
            name: name.trim_end_matches('|').trim().to_string(),
        });
    }
    Ok(jobs)
}

/// Reads `sacct -X -P -n -o JobID,State,ExitCode,JobName` lines.
pub fn sacct(out: &str) -> Result<Vec<JobStatus>, ParseError> {
    let mut jobs = Vec::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.splitn(4, '|').collect();
        let [id, state, exit, name] = f.as_slice() else {
            return Err(bad(line, "expected 4 fields separated by '|'"));
        };
        let Ok(id) = id.trim().parse::<u64>() else {
            if id.contains(['_', '+', '.']) {
                continue;
            }
            return Err(bad(line, "not a job id"));
        };
        jobs.push(JobStatus {
            id,
            state_text: state.trim().to_string(),
            state: SlurmState::of(state),
            reason: String::new(),
            exit: Exit::from_pair(exit),
            name: name.trim().to_string(),
        });
    }
    Ok(jobs)
}

/// One `scontrol show ... -o` record: its `Key=Value` words in order. A word without `=`
/// continues the previous value (`OS=Linux 6.1 #1 SMP`).
pub fn record(line: &str) -> Vec<(&str, String)> {
    let mut out: Vec<(&str, String)> = Vec::new();
    for word in line.split_whitespace() {
        match word.split_once('=') {
            Some((k, v)) if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric()) => {
                out.push((k, v.to_string()));
            }
            _ => {
                if let Some((_, v)) = out.last_mut() {
                    v.push(' ');
                    v.push_str(word);
                }
            }
        }
    }
    out
}

fn field<'a>(rec: &'a [(&str, String)], key: &str) -> Option<&'a str> {
    rec.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str())
}

/// A node as `scontrol show node -o` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlurmNode {
    pub name: String,
    /// CPUs jobs may use (`CPUEfctv`, else `CPUTot`).
    pub cpus: u32,
    /// CPUs allocated to jobs now (mini-slurm's and others').
    pub cpus_alloc: u32,
    pub mem_mb: u64,
    pub mem_alloc_mb: u64,
    /// GPUs: the counts of `gpu` entries of `Gres`.
    pub gpus: u32,
    /// `IDLE`, `MIXED`, `DOWN*`, `IDLE+DRAIN`...
    pub state: String,
    pub partitions: Vec<String>,
}

impl SlurmNode {
    /// Whether Slurm may start jobs on it now (not down, drained, failing or powered off).
    pub fn usable(&self) -> bool {
        let s = self.state.to_ascii_uppercase();
        ![
            "DOWN",
            "DRAIN",
            "FAIL",
            "POWER",
            "INVAL",
            "NOT_RESPONDING",
            "FUTURE",
            "MAINT",
        ]
        .iter()
        .any(|bad| s.contains(bad))
            && !s.ends_with('*')
    }
}

/// GPUs in a `Gres` value: `gpu:4`, `gpu:a100:2(S:0-1),gpu:v100:1`, `(null)`.
pub fn gres_gpus(gres: &str) -> u32 {
    gres.split(',')
        .filter(|g| g.starts_with("gpu"))
        .filter_map(|g| {
            let g = g.split('(').next().unwrap_or(g);
            g.rsplit(':').next().and_then(|n| n.parse::<u32>().ok())
        })
        .sum()
}

fn num<T: std::str::FromStr>(rec: &[(&str, String)], key: &str) -> Option<T> {
    field(rec, key).and_then(|v| v.parse().ok())
}

/// Reads `scontrol show node -o`.
pub fn nodes(out: &str) -> Result<Vec<SlurmNode>, ParseError> {
    let mut nodes = Vec::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let rec = record(line);
        let name = field(&rec, "NodeName").ok_or_else(|| bad(line, "no NodeName"))?;
        let cpus = num(&rec, "CPUEfctv")
            .or_else(|| num(&rec, "CPUTot"))
            .ok_or_else(|| bad(line, "no CPUTot"))?;
        nodes.push(SlurmNode {
            name: name.to_string(),
            cpus,
            cpus_alloc: num(&rec, "CPUAlloc").unwrap_or(0),
            mem_mb: num(&rec, "RealMemory").unwrap_or(0),
            mem_alloc_mb: num(&rec, "AllocMem").unwrap_or(0),
            gpus: field(&rec, "Gres").map_or(0, gres_gpus),
            state: field(&rec, "State").unwrap_or("UNKNOWN").to_string(),
            partitions: field(&rec, "Partitions")
                .unwrap_or("")
                .split(',')
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
        });
    }
    Ok(nodes)
}

/// A partition as `scontrol show partition -o` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlurmPartition {
    pub name: String,
    pub default: bool,
    /// `MaxTime` in minutes (`None`: UNLIMITED / INFINITE).
    pub max_minutes: Option<i64>,
    /// `DefaultTime` in minutes (`None`: NONE, the partition's `MaxTime` applies).
    pub default_minutes: Option<i64>,
}

/// Reads `scontrol show partition -o`.
pub fn partitions(out: &str) -> Result<Vec<SlurmPartition>, ParseError> {
    let mut parts = Vec::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let rec = record(line);
        let name = field(&rec, "PartitionName").ok_or_else(|| bad(line, "no PartitionName"))?;
        parts.push(SlurmPartition {
            name: name.to_string(),
            default: field(&rec, "Default") == Some("YES"),
            max_minutes: field(&rec, "MaxTime").and_then(slurm_minutes),
            default_minutes: field(&rec, "DefaultTime").and_then(slurm_minutes),
        });
    }
    Ok(parts)
}

/// Minutes of a Slurm time (`1-02:03:04`, `30:00`, `UNLIMITED`); seconds round up.
pub fn slurm_minutes(t: &str) -> Option<i64> {
    let (days, rest) = match t.split_once('-') {
        Some((d, r)) => (d.parse::<i64>().ok()?, r),
        None => (0, t),
    };
    let p: Vec<i64> = rest
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let secs = match p.as_slice() {
        [m] if days == 0 => m * 60,
        [h] => h * 3600,
        [m, s] if days == 0 => m * 60 + s,
        [h, m] => h * 3600 + m * 60,
        [h, m, s] => h * 3600 + m * 60 + s,
        _ => return None,
    };
    Some((days * 86_400 + secs + 59) / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_maps() {
        use FinalState::*;
        let cases = [
            ("PENDING", SlurmState::Waiting),
            ("REQUEUED", SlurmState::Waiting),
            ("REQUEUE_HOLD", SlurmState::Waiting),
            ("REQUEUE_FED", SlurmState::Waiting),
            ("RESV_DEL_HOLD", SlurmState::Waiting),
            ("SPECIAL_EXIT", SlurmState::Waiting),
            ("CONFIGURING", SlurmState::Configuring),
            ("RUNNING", SlurmState::Running),
            ("COMPLETING", SlurmState::Running),
            ("STAGE_OUT", SlurmState::Running),
            ("SUSPENDED", SlurmState::Running),
            ("STOPPED", SlurmState::Running),
            ("SIGNALING", SlurmState::Running),
            ("RESIZING", SlurmState::Running),
            ("COMPLETED", SlurmState::Ended(Completed)),
            ("FAILED", SlurmState::Ended(Failed)),
            ("TIMEOUT", SlurmState::Ended(Timeout)),
            ("DEADLINE", SlurmState::Ended(Timeout)),
            ("CANCELLED", SlurmState::Ended(Cancelled)),
            ("CANCELLED by 0", SlurmState::Ended(Cancelled)),
            ("CANCELLED+", SlurmState::Ended(Cancelled)),
            ("REVOKED", SlurmState::Ended(Cancelled)),
            ("OUT_OF_MEMORY", SlurmState::Ended(OutOfMemory)),
            ("NODE_FAIL", SlurmState::Ended(NodeFail)),
            ("BOOT_FAIL", SlurmState::Ended(NodeFail)),
            ("PREEMPTED", SlurmState::Ended(Preempted)),
            (
                "LAUNCH_FAILED?",
                SlurmState::Unknown("LAUNCH_FAILED?".into()),
            ),
            ("", SlurmState::Unknown(String::new())),
        ];
        for (text, want) in cases {
            assert_eq!(SlurmState::of(text), want, "{text}");
        }
    }

    #[test]
    fn exit_codes() {
        let e = |c, s| Exit {
            code: Some(c),
            signal: s,
        };
        assert_eq!(Exit::from_status("768"), e(3, None));
        assert_eq!(Exit::from_status("15"), e(0, Some(15)));
        assert_eq!(Exit::from_status("0"), e(0, None));
        assert_eq!(Exit::from_status("N/A"), Exit::default());
        assert_eq!(Exit::from_pair("3:0"), e(3, None));
        assert_eq!(Exit::from_pair("0:9"), e(0, Some(9)));
        assert_eq!(Exit::from_pair(""), Exit::default());
    }

    #[test]
    fn sbatch_ids() {
        assert_eq!(sbatch_id("1529\n"), Ok(1529));
        assert_eq!(sbatch_id("77;cluster\n"), Ok(77));
        assert!(sbatch_id("sbatch: error: Batch job submission failed").is_err());
        assert!(sbatch_id("").is_err());
    }

    #[test]
    fn squeue_lines() {
        let out = "1530|CANCELLED|None|15|vm|ms.ab.2.1|\n1529|FAILED|NonZeroExitCode|768|vm|ms.ab.1.1|\n\
                   1531|PENDING|Resources|0||ms.ab.3.1|\n12_3|RUNNING|None|0|vm|other|\n";
        let jobs = squeue(out).unwrap();
        assert_eq!(jobs.len(), 3);
        assert_eq!(jobs[0].state, SlurmState::Ended(FinalState::Cancelled));
        assert_eq!(jobs[0].exit.signal, Some(15));
        assert_eq!((jobs[1].id, jobs[1].exit.code), (1529, Some(3)));
        assert_eq!(jobs[1].name, "ms.ab.1.1");
        assert_eq!(
            (jobs[2].state.clone(), jobs[2].reason.as_str()),
            (SlurmState::Waiting, "Resources")
        );
        assert!(squeue("garbage\n").is_err());
        assert!(squeue("x|RUNNING|None|0|vm|n|\n").is_err());
        assert_eq!(squeue("").unwrap(), vec![]);
    }

    #[test]
    fn sacct_lines() {
        let jobs = sacct("1529|FAILED|3:0|ms.ab.1.1\n1530|CANCELLED by 0|0:15|ms.ab.2.1\n1529.batch|FAILED|3:0|batch\n").unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].exit.code, Some(3));
        assert_eq!(jobs[1].state, SlurmState::Ended(FinalState::Cancelled));
        assert!(sacct("1529|FAILED\n").is_err());
    }

    #[test]
    fn node_records() {
        let out = "NodeName=vm Arch=x86_64 CoresPerSocket=4  CPUAlloc=1 CPUEfctv=4 CPUTot=4 CPULoad=3.61 \
                   Gres=(null) NodeAddr=127.0.0.1 OS=Linux 6.18.44-fc-v1300 #1 SMP PREEMPT_DYNAMIC @0  \
                   RealMemory=8000 AllocMem=100 State=MIXED Partitions=debug,long  BootTime=2026-12-07T13:09:33\n\
                   NodeName=g1 CPUTot=64 CPUAlloc=0 RealMemory=512000 Gres=gpu:a100:4(S:0-1),gpu:v100:2 State=DOWN* Partitions=gpu\n";
        let n = nodes(out).unwrap();
        assert_eq!(n.len(), 2);
        assert_eq!(
            (
                n[0].cpus,
                n[0].cpus_alloc,
                n[0].mem_mb,
                n[0].mem_alloc_mb,
                n[0].gpus
            ),
            (4, 1, 8000, 100, 0)
        );
        assert_eq!(n[0].partitions, vec!["debug", "long"]);
        assert!(n[0].usable());
        assert_eq!((n[1].cpus, n[1].gpus), (64, 6));
        assert!(!n[1].usable());
        assert!(nodes("Arch=x86_64\n").is_err());
        let drained = SlurmNode {
            state: "IDLE+DRAIN".into(),
            ..n[0].clone()
        };
        assert!(!drained.usable());
    }

    #[test]
    fn partition_records() {
        let p = partitions(
            "PartitionName=debug AllowGroups=ALL Default=YES DefaultTime=NONE MaxTime=UNLIMITED Nodes=vm\n\
             PartitionName=short Default=NO DefaultTime=00:10:00 MaxTime=1-00:30:00 Nodes=vm\n",
        )
        .unwrap();
        assert_eq!(
            (p[0].name.as_str(), p[0].default, p[0].max_minutes),
            ("debug", true, None)
        );
        assert_eq!(p[1].max_minutes, Some(24 * 60 + 30));
        assert_eq!(
            (p[0].default_minutes, p[1].default_minutes),
            (None, Some(10))
        );
        assert_eq!(slurm_minutes("30"), Some(30));
        assert_eq!(slurm_minutes("1:30"), Some(2));
        assert_eq!(slurm_minutes("INFINITE"), None);
    }
}
