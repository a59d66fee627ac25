//! `mini-slurm queue`: the job queue, as `squeue` (or JSON).

use super::format::{self, Format, job_label};
use super::{existing_client, exit_code_str, failed, input, secs, time_limit, utc};
use crate::commands::CliResult;
use anyhow::anyhow;
use mini_slurm::live::client::{Client, ExpectedStarts, queue_filter};
use mini_slurm::live::now_ms;
use mini_slurm::live::publish::PlanScope;
use mini_slurm::live::store::JobRow;
use mini_slurm::live::syntax::JobRef;
use mini_slurm::model::JobState;

#[derive(clap::Args, Debug)]
pub struct QueueArgs {
    /// Only jobs in these states (comma-separated: PENDING, RUNNING, COMPLETED, FAILED,
    /// CANCELLED, TIMEOUT, OUT_OF_MEMORY, or squeue's codes PD, R, CD, F, CA, TO, OOM; all)
    #[arg(long, short = 's', short_alias = 't', aliases = ["state", "states"], value_name = "STATES")]
    status: Option<String>,
    /// Only this user's jobs
    #[arg(long, short = 'u', value_name = "USER", conflicts_with = "me")]
    user: Option<String>,
    /// Only the jobs of the user running the command (squeue --me)
    #[arg(long)]
    me: bool,
    /// Only these jobs, in every state unless --status says (comma-separated: `J`, a job or a
    /// whole array, or `J_T`, task T of array J), as squeue -j
    #[arg(long, short = 'j', value_name = "JOB_IDS", value_delimiter = ',')]
    jobs: Vec<JobRef>,
    /// All jobs, finished ones too (default: pending and running)
    #[arg(long)]
    all: bool,
    /// JSON output
    #[arg(long)]
    json: bool,
    /// Output format in squeue's language, e.g. '%.18i %.8j %.2t %.10M %R' (default: squeue's
    /// own, '%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R')
    #[arg(long, short = 'o', value_name = "FORMAT", conflicts_with = "long")]
    format: Option<String>,
    /// The wide table: state, CPUs, memory, GPUs, priority, elastic range, submit time, wait,
    /// run time, limit, reason or exit code, command
    #[arg(long, short = 'l')]
    long: bool,
    /// No header line
    #[arg(long, short = 'H', alias = "noheader")]
    no_header: bool,
    /// Expected start times of pending jobs, as `squeue --start`: from the running
    /// scheduler's plan (backfilling policies), N/A where it has none
    #[arg(long, conflicts_with = "long")]
    start: bool,
}

pub fn run(a: QueueArgs) -> CliResult {
    // `squeue --start` lists pending jobs unless states are asked for.
    let status = match (&a.status, a.start) {
        (None, true) => Some("PENDING"),
        (s, _) => s.as_deref(),
    };
    let user = match a.me {
        true => Some(super::my_name()),
        false => a.user,
    };
    let all = a.all || !a.jobs.is_empty();
    let filter = queue_filter(status, user, all).map_err(|e| input(anyhow!("--status: {e}")))?;
    let mut client = existing_client()?;
    let mut rows = match &mut client {
        Some(c) => c.queue(&filter).map_err(failed)?,
        None => Vec::new(),
    };
    let narrowed = filter.user.is_some() || !a.jobs.is_empty();
    if !a.jobs.is_empty() {
        rows.retain(|r| a.jobs.iter().any(|j| names(j, r)));
    }
    if a.json {
        let s = serde_json::to_string_pretty(&rows).map_err(failed)?;
        println!("{s}");
        return Ok(());
    }
    // Which pending job waits for resources rather than behind others is a fact of the whole
    // queue, not of the lines a filter keeps.
    let top = match (&mut client, narrowed) {
        (Some(c), true) => {
            let pending =
                queue_filter(Some("PENDING"), None, false).map_err(|e| failed(anyhow!(e)))?;
            top_pending(&c.queue(&pending).map_err(failed)?)
        }
        _ => top_pending(&rows),
    };
    let now = now_ms();
    if a.long {
        let table = queue_table(&rows, now, top);
        let skip = usize::from(a.no_header);
        for line in table.lines().skip(skip) {
            println!("{line}");
        }
        return Ok(());
    }
    if a.start {
        note_unknown_starts(&rows, client.as_mut());
    }
    let default = if a.start {
        format::START
    } else {
        format::DEFAULT
    };
    let spec = a.format.as_deref().unwrap_or(default);
    let fmt = Format::parse(spec).map_err(|e| input(anyhow!("--format: {e}")))?;
    let node = mini_slurm::live::machine::hostname();
    let mut out = String::new();
    if !a.no_header {
        out.push_str(&fmt.header());
        out.push('\n');
    }
    for r in &rows {
        out.push_str(&fmt.row(r, &node, now, &reason_or_exit(r, top)));
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}

/// Says on stderr why pending jobs show no expected start, when some do not.
fn note_unknown_starts(rows: &[JobRow], client: Option<&mut Client>) {
    let unknown = rows
        .iter()
        .any(|r| r.state == JobState::Pending && r.expected_start_ms.is_none());
    if !unknown {
        return;
    }
    let Some(Ok(starts)) = client.map(Client::expected_starts) else {
        return;
    };
    let why = match starts {
        s if !s.daemon_running => "no scheduler runs",
        ExpectedStarts {
            scope: Some(scope), ..
        } if scope != PlanScope::Every => scope.describe(),
        _ => return,
    };
    eprintln!("note: START_TIME N/A: {why}");
}

/// Whether `j` names row `r`: the job, a whole array by its id, or one task of it.
fn names(j: &JobRef, r: &JobRow) -> bool {
    match j.task {
        None => r.id == j.id || r.array_job_id == Some(j.id),
        Some(t) => r.array_job_id == Some(j.id) && r.array_task_id == Some(t),
    }
}

/// The pending job that waits for resources rather than behind others: the highest priority,
/// then the oldest.
fn top_pending(rows: &[JobRow]) -> Option<i64> {
    rows.iter()
        .filter(|r| r.state == JobState::Pending && r.reason.is_none())
        .max_by_key(|r| (r.priority, std::cmp::Reverse(r.id)))
        .map(|r| r.id)
}

/// What the REASON/EXIT column says: a pending job without a recorded reason waits for
/// resources (the highest-priority one, `top`) or behind higher priorities; an ended job
/// shows its exit code.
fn reason_or_exit(r: &JobRow, top: Option<i64>) -> String {
    match r.state {
        JobState::Pending if r.reason.is_none() => {
            if Some(r.id) == top {
                "Resources".to_string()
            } else {
                "Priority".to_string()
            }
        }
        JobState::Pending | JobState::Configuring | JobState::Running => r.reason.to_string(),
        _ => exit_code_str(r.exit_code, r.signal),
    }
}

/// The wide table (`--long`): the seeds' columns (memory, wait, run time) and more.
fn queue_table(rows: &[JobRow], now: i64, top: Option<i64>) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:>8} {:<12} {:<10} {:<13} {:>4} {:>8} {:>4} {:>4} {:>9} {:<20} {:>9} {:>9} {:>11} {:<24} {}\n",
        "JOBID",
        "NAME",
        "USER",
        "STATE",
        "CPUS",
        "MEM(MB)",
        "GPUS",
        "PRI",
        "ELASTIC",
        "SUBMIT",
        "WAIT(s)",
        "RUN(s)",
        "TIME_LIMIT",
        "REASON/EXIT",
        "COMMAND"
    ));
    for r in rows {
        let wait = r.start_ms.unwrap_or(if r.state == JobState::Pending {
            now
        } else {
            r.end_ms.unwrap_or(now)
        }) - r.submit_ms;
        let run = match r.start_ms {
            Some(s) => r.end_ms.unwrap_or(now) - s,
            None => 0,
        };
        // A running elastic job shows the CPUs it holds now.
        let cpus = match (r.state, r.alloc_cpus) {
            (JobState::Running, Some(n)) => n,
            _ => r.cpus,
        };
        let elastic = match (r.min_cpus, r.max_cpus) {
            (Some(lo), Some(hi)) => format!("{lo}-{hi}"),
            _ => "-".to_string(),
        };
        out.push_str(&format!(
            "{:>8} {:<12} {:<10} {:<13} {:>4} {:>8} {:>4} {:>4} {:>9} {:<20} {:>9} {:>9} {:>11} {:<24} {}\n",
            job_label(r),
            truncate(&r.name, 12),
            truncate(&r.user, 10),
            r.state.name(),
            cpus,
            r.mem_mb,
            r.gpus,
            r.priority,
            elastic,
            utc(r.submit_ms),
            secs(wait),
            secs(run),
            time_limit(r.time_limit_ms),
            truncate(&reason_or_exit(r, top), 24),
            if r.details_hidden {
                super::HIDDEN.to_string()
            } else {
                r.argv.join(" ")
            }
        ));
    }
    out
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}
