//! `mini-slurm history`: the jobs that ended in a time window, as `sacct` lists them
//! (`-S/--starttime`, `-E/--endtime`, by default since midnight UTC; the caller's own jobs
//! unless `--allusers`, as sacct does for users who are not root), or as JSON.

use super::{existing_client, exit_code_str, failed, input, iso_time};
use crate::commands::CliResult;
use anyhow::anyhow;
use mini_slurm::live::client::{Owner, queue_filter};
use mini_slurm::live::now_ms;
use mini_slurm::live::store::JobRow;
use mini_slurm::live::syntax::parse_sacct_time;
use mini_slurm::time::{Dur, fmt_slurm_duration};

#[derive(clap::Args, Debug)]
pub struct HistoryArgs {
    /// Jobs that ended at or after this time (UTC): YYYY-MM-DD[THH:MM[:SS]], now-2hours,
    /// now-7days, today
    #[arg(long, short = 'S', value_name = "TIME", default_value = "today")]
    starttime: String,
    /// Jobs that ended before this time (same forms; default: now)
    #[arg(long, short = 'E', value_name = "TIME", default_value = "now")]
    endtime: String,
    /// Only this user's jobs (default: your own; root: everyone's)
    #[arg(long, short = 'u', value_name = "USER", conflicts_with = "allusers")]
    user: Option<String>,
    /// Every user's jobs
    #[arg(long, short = 'a')]
    allusers: bool,
    /// Only jobs that ended in these states (comma-separated: COMPLETED, FAILED, CANCELLED,
    /// TIMEOUT, OUT_OF_MEMORY, PREEMPTED)
    #[arg(long, short = 's', value_name = "STATES")]
    state: Option<String>,
    /// JSON output (the fields of `queue --json`)
    #[arg(long)]
    json: bool,
    /// No header line
    #[arg(long, short = 'n', alias = "noheader")]
    no_header: bool,
}

pub fn run(a: HistoryArgs) -> CliResult {
    let now = now_ms();
    let from =
        parse_sacct_time(&a.starttime, now).map_err(|e| input(anyhow!("--starttime: {e}")))?;
    let to = parse_sacct_time(&a.endtime, now).map_err(|e| input(anyhow!("--endtime: {e}")))?;
    let me = Owner::current();
    let user = match (a.user, a.allusers) {
        (Some(u), _) => Some(u),
        (None, true) => None,
        (None, false) if me.is_root() => None,
        (None, false) => Some(me.user.clone()),
    };
    let mut filter =
        queue_filter(a.state.as_deref(), user, true).map_err(|e| input(anyhow!("--state: {e}")))?;
    if filter.states.is_none() {
        filter.states = Some(
            mini_slurm::model::JobState::ALL
                .iter()
                .copied()
                .filter(|s| s.final_state().is_some())
                .collect(),
        );
    }
    let mut rows: Vec<JobRow> = match existing_client()? {
        Some(mut c) => c.queue(&filter).map_err(failed)?,
        None => Vec::new(),
    };
    rows.retain(|r| r.end_ms.is_some_and(|e| from <= e && e < to.max(from + 1)));
    rows.sort_by_key(|r| (r.end_ms, r.id));
    if a.json {
        let s = serde_json::to_string_pretty(&rows).map_err(failed)?;
        println!("{s}");
        return Ok(());
    }
    let mut out = String::new();
    if !a.no_header {
        out.push_str(&format!(
            "{:>12} {:<10} {:<9} {:<9} {:>9} {:<19} {:<19} {:>10} {:<13} {:>8}\n",
            "JobID",
            "JobName",
            "Partition",
            "User",
            "AllocCPUS",
            "Start",
            "End",
            "Elapsed",
            "State",
            "ExitCode"
        ));
        out.push_str(&format!(
            "{} {} {} {} {} {} {} {} {} {}\n",
            "-".repeat(12),
            "-".repeat(10),
            "-".repeat(9),
            "-".repeat(9),
            "-".repeat(9),
            "-".repeat(19),
            "-".repeat(19),
            "-".repeat(10),
            "-".repeat(13),
            "-".repeat(8)
        ));
    }
    for r in &rows {
        let id = match (r.array_job_id, r.array_task_id) {
            (Some(j), Some(t)) => format!("{j}_{t}"),
            _ => r.id.to_string(),
        };
        let elapsed = match (r.start_ms, r.end_ms) {
            (Some(s), Some(e)) => fmt_slurm_duration(Dur((e - s).max(0))),
            _ => fmt_slurm_duration(Dur(0)),
        };
        out.push_str(&format!(
            "{:>12} {:<10} {:<9} {:<9} {:>9} {:<19} {:<19} {:>10} {:<13} {:>8}\n",
            id,
            cut(&r.name, 10),
            cut(&r.partition, 9),
            cut(&r.user, 9),
            r.alloc_cpus.unwrap_or(r.cpus),
            r.start_ms.map_or("Unknown".to_string(), iso_time),
            r.end_ms.map_or("Unknown".to_string(), iso_time),
            elapsed,
            r.state.name(),
            exit_code_str(r.exit_code, r.signal)
        ));
    }
    print!("{out}");
    Ok(())
}

/// sacct's way with long names: cut, with `+` as the last character.
fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "+"
    }
}
