//! `mini-slurm job-runner --job ID` (hidden): the per-job supervisor the scheduler starts.

use super::failed;
use crate::commands::CliResult;
use mini_slurm::live::Home;

#[derive(clap::Args, Debug)]
pub struct RunnerArgs {
    #[arg(long)]
    job: i64,
    /// The launch this runner must claim (the daemon records it before the fork)
    #[arg(long)]
    launch: Option<i64>,
}

pub fn run(a: RunnerArgs) -> CliResult {
    let home = Home::from_env();
    mini_slurm::live::runner::run(&home, a.job, a.launch).map_err(failed)?;
    Ok(())
}
