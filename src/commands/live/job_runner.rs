//! `mini-slurm job-runner --job ID` (hidden): the per-job supervisor the scheduler starts;
//! `job-runner --spawner` (hidden): the process that forks them ([`mini_slurm::live::spawner`]).

use super::failed;
use crate::commands::CliResult;
use mini_slurm::live::Home;

#[derive(clap::Args, Debug)]
pub struct RunnerArgs {
    #[arg(long, required_unless_present = "spawner")]
    job: Option<i64>,
    /// The launch this runner must claim (the daemon records it before the fork)
    #[arg(long)]
    launch: Option<i64>,
    /// The job's memory in MB, as the launch recorded it: the runner makes the job's cgroups
    /// before it claims the launch, and records them with the claim
    #[arg(long, requires = "launch")]
    mem_mb: Option<u64>,
    /// Fork runners for the daemon whose socket is standard input
    #[arg(long, conflicts_with_all = ["job", "launch", "mem_mb"])]
    spawner: bool,
}

pub fn run(a: RunnerArgs) -> CliResult {
    let home = Home::from_env();
    match a.job {
        Some(job) if !a.spawner => {
            let launch = a.launch.map(|l| (l, a.mem_mb));
            mini_slurm::live::runner::run(&home, job, launch).map_err(failed)?;
        }
        _ => mini_slurm::live::spawner::serve(&home).map_err(failed)?,
    }
    Ok(())
}
