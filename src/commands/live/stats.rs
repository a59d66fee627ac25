//! `mini-slurm stats`: capacity, usage, enforcement and job metrics.

use super::{existing_client, failed};
use crate::commands::CliResult;
use mini_slurm::live::Home;
use mini_slurm::live::client::Stats;
use mini_slurm::live::contain::containment;
use mini_slurm::live::machine::cpu_ids;
use mini_slurm::live::syntax::{cpu_list, parse_cpu_list};
use mini_slurm::model::parse_mem_mb;

#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    /// Show capacity as this many CPUs (default: the scheduler's)
    #[arg(long, value_name = "N")]
    total_cpus: Option<u32>,
    /// Show capacity as this much memory (default: the scheduler's)
    #[arg(long, value_name = "SIZE", value_parser = parse_mem_mb)]
    total_mem: Option<u64>,
    /// JSON output: capacity, counts, enforcement and containment as the daemon reports them
    #[arg(long)]
    json: bool,
}

pub fn run(a: StatsArgs) -> CliResult {
    let home = Home::from_env();
    let s = match existing_client()? {
        Some(mut c) => c.stats().map_err(failed)?,
        None => Stats::without_database(),
    };
    if a.json {
        let v = serde_json::json!({ "home": home.dir, "stats": s });
        println!("{}", serde_json::to_string_pretty(&v).map_err(failed)?);
        return Ok(());
    }
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
    out.push_str(&format!("Home: {}\n", home.dir.display()));
    if let Some(addr) = &s.http {
        out.push_str(&format!(
            "Dashboard: http://{addr}/ (metrics /metrics, API /api/v1/)\n"
        ));
    }
    out.push('\n');
    out.push_str(&format!("CPUs:    {used_cpus} / {cpus} in use\n"));
    out.push_str(&format!("Memory:  {used_mem} / {mem} MB reserved\n"));
    out.push_str(&format!("GPUs:    {used_gpus} / {gpus} in use\n"));
    if s.executor.as_deref() == Some("slurm") {
        let status = s.slurm.as_deref().unwrap_or("no poll yet");
        out.push_str(&format!("Enforcement: {}\n", s.enforcement));
        out.push_str(&format!("Executor: Slurm ({status})\n\n"));
    } else {
        out.push_str("Enforcement:\n");
        out.push_str(&format!("  CPUs:        {}\n", cpu_line(&s, cpus)));
        out.push_str(&format!("  memory:      {}\n", s.enforcement));
        out.push_str(&format!(
            "  containment: {}\n\n",
            s.contain
                .containment
                .clone()
                .unwrap_or_else(|| containment().describe())
        ));
    }
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

/// CPU pinning in one line: the real CPU ids jobs are pinned to, whether `cpus` scheduled CPUs
/// oversubscribe them, and the pinning failures.
fn cpu_line(s: &Stats, cpus: u32) -> String {
    let c = &s.contain;
    let ids = c.cpu_ids.as_deref().map_or_else(cpu_ids, parse_cpu_list);
    let mut line = format!(
        "affinity (sched_setaffinity) per job to CPU ids {} (the scheduler's mask)",
        cpu_list(&ids)
    );
    if cpus as usize > ids.len() {
        line.push_str(&format!(
            ", oversubscribed: {cpus} CPUs scheduled on {}",
            ids.len()
        ));
    }
    match &c.last_pin_error {
        None => line.push_str("; pinning failures: 0"),
        Some((job, e)) => line.push_str(&format!(
            "; pinning failures: {} (latest: job {job}: {e})",
            c.pin_failures
        )),
    }
    line
}
