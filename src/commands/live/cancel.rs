//! `mini-slurm cancel ID...`: cancel pending or running jobs.

use super::{existing_client, failed, input};
use crate::commands::CliResult;
use anyhow::anyhow;
use mini_slurm::live::client::CancelOutcome;
use mini_slurm::live::syntax::JobRef;

#[derive(clap::Args, Debug)]
pub struct CancelArgs {
    /// Job ids: `J` (a job; an array's first id cancels the whole array, as scancel does) or
    /// `J_T` (one task of array J)
    #[arg(required = true, value_name = "JOB_ID")]
    ids: Vec<JobRef>,
}

pub fn run(a: CancelArgs) -> CliResult {
    let (mut bad, mut unknown, mut denied) = (0, 0, 0);
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
    let ids: Vec<i64> = wanted.iter().map(|w| w.0).collect();
    let outcomes = if ids.is_empty() {
        Vec::new()
    } else {
        c.cancel(&ids).map_err(failed)?
    };
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
