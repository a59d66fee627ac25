//! `mini-slurm experiment FILE.toml`: the cartesian product of traces × policies × parameters ×
//! seeds, run in parallel, gathered in one tidy CSV (one row per run) with a report. Runs whose
//! outputs exist for the same inputs are not run again. The file format and the runner are in
//! [`mini_slurm::sim::experiment`]; this file adds the progress bar and the closing line.

use super::CliResult;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mini_slurm::sim::Experiment;
use mini_slurm::sim::parallel::default_threads;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example: mini-slurm experiment docs/examples/load-sweep.toml --out reports/load-sweep\n\n\
Writes DIR/results.csv (one row per run), DIR/runs/<run>/{jobs.csv,summary.json}, DIR/index.html, DIR/summary.md and DIR/charts/*.svg. The file format is described in docs/reports.md."
)]
pub struct ExperimentArgs {
    /// The experiment description (TOML)
    file: PathBuf,
    /// The output directory (default: the file's `out`)
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Runs at a time (default: the machine's cores)
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Run again the runs whose outputs exist
    #[arg(long)]
    force: bool,
    /// Also write each chart as PNG (charts/*.png)
    #[arg(long)]
    png: bool,
    /// Print nothing on stdout
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(a: ExperimentArgs) -> CliResult {
    let experiment = Experiment::read(&a.file)?;
    let plan = experiment.plan(a.out.as_deref(), a.force)?;
    let bar = bar(plan.todo.len());
    let threads = a.jobs.unwrap_or_else(default_threads);
    let ran = plan.execute(threads, &|_| {
        if let Some(b) = &bar {
            b.inc(1);
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    ran?;
    plan.write_report(a.png)?;
    if !a.quiet {
        let out = plan.out.display();
        println!(
            "{} runs ({} run now, {} found done); wrote {out}/results.csv and {out}/index.html",
            plan.runs.len(),
            plan.todo.len(),
            plan.runs.len() - plan.todo.len(),
        );
    }
    Ok(())
}

/// A bar of the runs done, on stderr when it is a terminal and there is something to run.
fn bar(todo: usize) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() || todo == 0 {
        return None;
    }
    let b = ProgressBar::with_draw_target(Some(todo as u64), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} runs [{bar:40}] {pos}/{len} ({eta} left)")
    {
        b.set_style(style.progress_chars("=> "));
    }
    Some(b)
}
