//! `mini-slurm cancel ID...`: cancel pending or running jobs.

use super::{existing_client, failed, input};
use crate::commands::CliError;
use crate::commands::CliResult;
use anyhow::anyhow;
use mini_slurm::live::client::{CancelOutcome, Client, queue_filter};
use mini_slurm::live::service::MAX_CANCEL;
use mini_slurm::live::store::JobRow;
use mini_slurm::live::syntax::JobRef;

#[derive(clap::Args, Debug)]
pub struct CancelArgs {
    /// Job ids: `J` (a job; an array's first id cancels the whole array, as scancel does) or
    /// `J_T` (one task of array J)
    #[arg(
        required_unless_present_any = ["user", "me", "state", "name"],
        value_name = "JOB_ID"
    )]
    ids: Vec<JobRef>,
    /// Only this user's jobs (scancel -u): with no ids, all of them
    #[arg(long, short = 'u', value_name = "USER", conflicts_with = "me")]
    user: Option<String>,
    /// Only the jobs of the user running the command (scancel --me)
    #[arg(long)]
    me: bool,
    /// Only jobs in these states (scancel -t: PENDING, RUNNING or their codes PD, R;
    /// default both)
    #[arg(long, short = 't', value_name = "STATES")]
    state: Option<String>,
    /// Only jobs of this name (scancel -n)
    #[arg(long, short = 'n', visible_alias = "jobname", value_name = "NAME")]
    name: Option<String>,
}

/// The jobs a filtered `cancel` selects (scancel's -u, --me, -t, -n): active ones only.
fn selected(c: &mut Client, a: &CancelArgs) -> Result<Vec<JobRow>, CliError> {
    let user = if a.me {
        Some(super::my_name())
    } else {
        a.user.clone()
    };
    let filter = queue_filter(Some(a.state.as_deref().unwrap_or("PD,R")), user, false)
        .map_err(|e| input(anyhow!("--state: {e}")))?;
    if let Some(states) = &filter.states
        && states.iter().any(|s| !s.is_active())
    {
        return Err(input(anyhow!(
            "--state: only PENDING and RUNNING jobs can be cancelled"
        )));
    }
    let mut rows = c.queue(&filter).map_err(failed)?;
    rows.retain(|r| a.name.as_ref().is_none_or(|n| &r.name == n));
    Ok(rows)
}

pub fn run(a: CancelArgs) -> CliResult {
    if a.ids.len() > MAX_CANCEL {
        return Err(input(anyhow!(
            "JOB_ID: at most {MAX_CANCEL} job ids at once, {} given",
            a.ids.len()
        )));
    }
    if a.user.is_some() || a.me || a.state.is_some() || a.name.is_some() {
        return run_filtered(&a);
    }
    let mut unknown = 0;
    let Some(mut c) = existing_client()? else {
        for r in &a.ids {
            eprintln!("error: job {r} does not exist");
        }
        return Err(input(anyhow!(
            "{} job(s) could not be cancelled ({} unknown)",
            a.ids.len(),
            a.ids.len()
        )));
    };
    // Each job once, with its id as the user knows it; whether it came from a whole array
    // (whose tasks that already ended are passed over, as scancel does).
    let mut wanted: Vec<(i64, JobRef, bool)> = Vec::new();
    for r in &a.ids {
        let found = c.resolve(*r).map_err(failed)?;
        if found.is_empty() {
            eprintln!("error: job {r} does not exist");
            unknown += 1;
        }
        let whole_array = r.task.is_none() && found.iter().any(|(_, s)| s.task.is_some());
        for (id, shown) in found {
            if !wanted.iter().any(|w| w.0 == id) {
                wanted.push((id, shown, whole_array));
            }
        }
    }
    cancel_all(&mut c, &wanted, unknown)
}

/// scancel with filters: the active jobs they select (among `ids` when given); none is no
/// error, as scancel says nothing when a user has no jobs.
fn run_filtered(a: &CancelArgs) -> CliResult {
    let Some(mut c) = existing_client()? else {
        return Ok(());
    };
    let mut rows = selected(&mut c, a)?;
    let mut unknown = 0;
    if !a.ids.is_empty() {
        let mut named = Vec::new();
        for r in &a.ids {
            let found = c.resolve(*r).map_err(failed)?;
            if found.is_empty() {
                eprintln!("error: job {r} does not exist");
                unknown += 1;
            }
            named.extend(found.into_iter().map(|(id, _)| id));
        }
        rows.retain(|r| named.contains(&r.id));
    }
    let wanted: Vec<(i64, JobRef, bool)> = rows
        .iter()
        .map(|r| {
            let shown = match (r.array_job_id, r.array_task_id) {
                (Some(id), Some(task)) => JobRef {
                    id,
                    task: Some(task),
                },
                _ => JobRef {
                    id: r.id,
                    task: None,
                },
            };
            (r.id, shown, false)
        })
        .collect();
    cancel_all(&mut c, &wanted, unknown)
}

/// Cancels `wanted` (id, as the user knows it, whether it came from a whole array) and says
/// what became of each, as scancel does; `unknown` ids were already reported.
fn cancel_all(c: &mut Client, wanted: &[(i64, JobRef, bool)], mut unknown: usize) -> CliResult {
    let (mut bad, mut denied) = (0, 0);
    let ids: Vec<i64> = wanted.iter().map(|w| w.0).collect();
    // Whole arrays can add up to more ids than one request takes.
    let mut outcomes = Vec::new();
    for chunk in ids.chunks(MAX_CANCEL) {
        outcomes.extend(c.cancel(chunk).map_err(failed)?);
    }
    for (id, o) in outcomes {
        let (shown, whole_array) = wanted
            .iter()
            .find(|w| w.0 == id)
            .map_or((JobRef { id, task: None }, false), |w| (w.1, w.2));
        let id = shown;
        match o {
            CancelOutcome::AlreadyEnded(_) if whole_array => {}
            CancelOutcome::NoSuchJob => {
                eprintln!("error: job {id} does not exist");
                unknown += 1;
            }
            CancelOutcome::Cancelled => println!("Cancelled job {id}"),
            CancelOutcome::Cancelling => println!("Cancelling job {id}"),
            CancelOutcome::AlreadyEnded(state) => {
                eprintln!("error: job {id} already ended ({state})");
                bad += 1;
            }
            CancelOutcome::Denied => {
                // scancel's words.
                eprintln!("error: Kill job error on job id {id}: Access/permission denied");
                denied += 1;
            }
        }
    }
    if denied > 0 && unknown == 0 {
        return Err(failed(anyhow!(
            "{} job(s) could not be cancelled ({denied} another user's)",
            bad + denied
        )));
    }
    if unknown > 0 {
        // A wrong id is bad input (exit 2), as for `show`.
        return Err(input(anyhow!(
            "{} job(s) could not be cancelled ({unknown} unknown)",
            bad + unknown + denied
        )));
    }
    if bad > 0 {
        return Err(failed(anyhow!("{bad} job(s) could not be cancelled")));
    }
    Ok(())
}
