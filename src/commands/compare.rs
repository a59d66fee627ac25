//! `mini-slurm compare`: several policies on the same workload, run in parallel, and a report
//! (`index.html`, `summary.md`, charts, the data behind them, each run's outputs). The runs
//! and the report are library calls ([`mini_slurm::sim::compare`]).

use super::sim::{WorkloadArgs, notices};
use super::{CliError, CliResult};
use anyhow::anyhow;
use mini_slurm::sim::compare::{ReportOptions, inputs_of, run_policies, split_specs, write_report};
use mini_slurm::sim::parallel::default_threads;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    mini-slurm compare --trace traces/KTH-SP2-1996-2.1-cln.swf.gz --policies fcfs,easy,conservative --out reports/kth\n  \
    mini-slurm compare --trace traces/lublin_256.swf.gz --policies 'easy,easy[order=multifactor]' --out r/ --gantt-hours 12 --color user\n\n\
Writes DIR/index.html (self-contained), DIR/summary.md, DIR/charts/*.svg, DIR/data/*.csv (the data behind each chart) and DIR/runs/<policy>/{jobs.csv,summary.json}.")]
pub struct CompareArgs {
    #[command(flatten)]
    pub w: WorkloadArgs,
    /// Policy specs, comma-separated (commas inside [...] belong to a spec)
    #[arg(long, value_name = "SPECS", default_value = "fcfs,easy,conservative")]
    pub policies: String,
    /// The report's directory
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Length of the Gantt chart's window, hours (it starts where the first policy's queue is longest)
    #[arg(long, value_name = "H", default_value_t = 24.0)]
    pub gantt_hours: f64,
    /// Gantt boxes coloured by `backfill` (backfilled or not) or by `user`
    #[arg(long, value_name = "BY", default_value = "backfill")]
    pub color: String,
    /// Report title (default: the trace's name)
    #[arg(long)]
    pub title: Option<String>,
    /// Runs at a time (default: the machine's cores)
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Also write each chart as PNG (charts/*.png; text in the embedded DejaVu Sans font)
    #[arg(long)]
    pub png: bool,
    /// Print nothing on stdout
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(a: CompareArgs) -> CliResult {
    let input = |e: anyhow::Error| CliError::Input(e);
    let specs = split_specs(&a.policies);
    if specs.is_empty() {
        return Err(input(anyhow!(
            "--policies: expected at least one policy spec"
        )));
    }
    let mut canon = std::collections::BTreeSet::new();
    for s in &specs {
        let (_, parsed) =
            mini_slurm::policy::build(s).map_err(|e| input(anyhow!("--policies: {e}")))?;
        if !canon.insert(parsed.canonical()) {
            return Err(input(anyhow!(
                "--policies: '{s}' is given twice (as {})",
                parsed.canonical()
            )));
        }
    }
    let by_user = match a.color.as_str() {
        "user" => true,
        "backfill" => false,
        other => {
            return Err(input(anyhow!(
                "--color: expected backfill or user, found '{other}'"
            )));
        }
    };
    if !(a.gantt_hours > 0.0 && a.gantt_hours.is_finite()) {
        return Err(input(anyhow!("--gantt-hours: expected hours > 0")));
    }
    if a.out.exists() && !a.out.is_dir() {
        return Err(input(anyhow!(
            "--out {}: exists and is not a directory",
            a.out.display()
        )));
    }
    let p = a.w.setup()?.prepare(&mut notices(a.quiet))?;
    if p.jobs.jobs.is_empty() {
        return Err(input(anyhow!(
            "{}: no job to simulate",
            a.w.trace.display()
        )));
    }
    let threads = a.jobs.unwrap_or_else(default_threads);
    let runs = run_policies(&p, &specs, &a.out, threads)?;
    let title = a.title.clone().unwrap_or_else(|| {
        format!(
            "Policy comparison: {}",
            a.w.trace
                .file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into_owned())
        )
    });
    let inputs = inputs_of(&p, &specs);
    let opts = ReportOptions {
        gantt_hours: a.gantt_hours,
        by_user,
        png: a.png,
    };
    write_report(&a.out, &title, &inputs, &p, &runs, opts)?;
    if !a.quiet {
        print!(
            "{}",
            std::fs::read_to_string(a.out.join("summary.md")).unwrap_or_default()
        );
        println!("\nwrote {}/index.html", a.out.display());
    }
    Ok(())
}
