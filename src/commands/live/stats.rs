//! `mini-slurm stats`: capacity, usage, enforcement and job metrics.

use super::{existing_client, failed};
use crate::commands::CliResult;
use mini_slurm::live::Home;
use mini_slurm::live::client::Stats;
use mini_slurm::model::parse_mem_mb;

#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    /// Show capacity as this many CPUs (default: the scheduler's)
    #[arg(long, value_name = "N")]
    total_cpus: Option<u32>,
    /// Show capacity as this much memory (default: the scheduler's)
    #[arg(long, value_name = "SIZE", value_parser = parse_mem_mb)]
    total_mem: Option<u64>,
}

pub fn run(a: StatsArgs) -> CliResult {
    let home = Home::from_env();
    let s = match existing_client()? {
        Some(c) => c.stats().map_err(failed)?,
        None => Stats::without_database(),
    };
    let cpus = a.total_cpus.unwrap_or(s.capacity.cpus);
    let mem = a.total_mem.unwrap_or(s.capacity.mem_mb);
    let gpus = s.capacity.gpus;
    let (used_cpus, used_mem, used_gpus) = s.counts.running;
    let mut out = String::new();
    out.push_str(&format!(
        "Scheduler: {}{}\n",
        if s.daemon_running {
            "running"
        } else {
            "not running"
        },
        s.policy
            .as_ref()
            .map_or(String::new(), |p| format!(", policy {p}"))
    ));
    out.push_str(&format!("Home: {}\n\n", home.dir.display()));
    out.push_str(&format!("CPUs:    {used_cpus} / {cpus} in use\n"));
    out.push_str(&format!("Memory:  {used_mem} / {mem} MB reserved\n"));
    out.push_str(&format!("GPUs:    {used_gpus} / {gpus} in use\n"));
    out.push_str(&format!(
        "Enforcement: CPU affinity (sched_setaffinity) per job; memory: {}\n\n",
        s.enforcement
    ));
    out.push_str(&format!("Jobs: {} total\n", s.counts.total));
    for (st, n) in &s.counts.by_state {
        out.push_str(&format!("  {:<14} {n}\n", st.name()));
    }
    if let Some(f) = &s.last_fault {
        out.push_str(&format!("Last database fault: {f}\n"));
    }
    if let Some((wait, run)) = s.means_s() {
        out.push_str(&format!(
            "\nFinished jobs: {}\n  average wait:    {wait:.2} s\n  average runtime: {run:.2} s\n",
            s.counts.finished
        ));
    }
    print!("{out}");
    Ok(())
}
