//! `mini-slurm job-runner --job ID` (hidden): the per-job supervisor the scheduler starts.

use super::failed;
use crate::commands::CliResult;
use mini_slurm::live::Home;

#[derive(clap::Args, Debug)]
pub struct RunnerArgs {
    #[arg(long)]
    job: i64,
}

pub fn run(a: RunnerArgs) -> CliResult {
    let home = Home::from_env();
    mini_slurm::live::runner::run(&home, a.job).map_err(failed)?;
    Ok(())
}
