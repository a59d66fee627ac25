//! `mini-slurm cancel ID...`: cancel pending or running jobs.

use super::{client, failed};
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
    let outcomes = client()?.cancel(&a.ids).map_err(failed)?;
    let mut bad = 0;
    for (id, o) in outcomes {
        match o {
            CancelOutcome::NoSuchJob => {
                eprintln!("error: job {id} does not exist");
                bad += 1;
            }
            CancelOutcome::Cancelled => println!("Cancelled job {id}"),
            CancelOutcome::Cancelling => println!("Cancelling job {id}"),
            CancelOutcome::AlreadyEnded(state) => {
                eprintln!("error: job {id} already ended ({state})");
                bad += 1;
            }
        }
    }
    if bad > 0 {
        return Err(failed(anyhow!("{bad} job(s) could not be cancelled")));
    }
    Ok(())
}
