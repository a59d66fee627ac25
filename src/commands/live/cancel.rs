//! `mini-slurm cancel ID...`: cancel pending or running jobs.

use super::{existing_client, failed, input};
use crate::commands::CliResult;
use anyhow::anyhow;
use mini_slurm::live::client::CancelOutcome;

#[derive(clap::Args, Debug)]
pub struct CancelArgs {
    /// Job ids
    #[arg(required = true, value_name = "JOB_ID")]
    ids: Vec<i64>,
}

pub fn run(a: CancelArgs) -> CliResult {
    let outcomes = match existing_client()? {
        Some(mut c) => c.cancel(&a.ids).map_err(failed)?,
        None => a
            .ids
            .iter()
            .map(|&i| (i, CancelOutcome::NoSuchJob))
            .collect(),
    };
    let (mut bad, mut unknown, mut denied) = (0, 0, 0);
    for (id, o) in outcomes {
        match o {
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
