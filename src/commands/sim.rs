//! `mini-slurm sim`: replay a trace under a policy.

use super::{CliError, CliResult};
use anyhow::{Context, anyhow};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mini_slurm::driver::Observer;
use mini_slurm::engine::{Command, Engine};
use mini_slurm::metrics::{RunInfo, Summary, write_jobs_csv};
use mini_slurm::model::EstimateMode;
use mini_slurm::policy;
use mini_slurm::sim::simulate;
use mini_slurm::time::Time;
use mini_slurm::trace::{PrepareOptions, SkipReason, read_trace};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    mini-slurm sim --trace traces/KTH-SP2-1996-2.1-cln.swf.gz --policy easy\n  \
    mini-slurm sim --trace traces/lublin_256.swf.gz --policy 'easy[order=priority]' --estimate actual --out out/\n\n\
Outputs (with --out DIR): DIR/jobs.csv and DIR/summary.json, described in docs/output-schema.md.")]
pub struct SimArgs {
    /// Workload trace: .swf, .swf.gz (SWF) or .csv, .csv.gz (mini-slurm CSV)
    #[arg(long, value_name = "PATH")]
    trace: PathBuf,
    /// Scheduling policy spec, e.g. fcfs, priority, easy, conservative, 'easy[order=priority]'
    #[arg(long, value_name = "SPEC", default_value = "easy")]
    policy: String,
    /// Machine size in processors (overrides the trace's MaxProcs/MaxNodes header)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    procs: Option<u32>,
    /// Run-time estimates the policy sees: requested (user's walltime), max(requested, actual), or actual
    #[arg(long, value_name = "MODE", default_value = "requested")]
    estimate: EstimateMode,
    /// Write jobs.csv and summary.json into DIR (created if needed)
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Skip malformed trace lines (counted in the summary) instead of stopping
    #[arg(long)]
    lenient: bool,
    /// Kill jobs at their requested time (state TIMEOUT), as Slurm does; off in trace replay
    #[arg(long)]
    kill_at_limit: bool,
    /// Leave the host wall time out of summary.json, so identical runs give identical files
    #[arg(long)]
    no_timing: bool,
    /// Print nothing on stdout
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(a: SimArgs) -> CliResult {
    let input = |e: anyhow::Error| CliError::Input(e);
    let (policy, spec) = policy::build(&a.policy).map_err(|e| input(anyhow!("--policy: {e}")))?;
    if let Some(out) = a.out.as_ref().filter(|o| o.exists() && !o.is_dir()) {
        return Err(input(anyhow!(
            "--out {}: exists and is not a directory",
            out.display()
        )));
    }
    let started = Instant::now();
    let workload = read_trace(&a.trace, a.lenient).map_err(|e| input(e.into()))?;
    for w in &workload.warnings {
        eprintln!("warning: {w}");
    }
    let jobs = workload
        .prepare(&PrepareOptions {
            procs: a.procs,
            estimate: a.estimate,
            kill_at_limit: a.kill_at_limit,
        })
        .map_err(|e| input(e.into()))?;
    if jobs.skipped_total() > 0 {
        let parts: Vec<String> = SkipReason::ALL
            .iter()
            .filter_map(|r| jobs.skipped.get(r).map(|n| format!("{} {}", n, r.key())))
            .collect();
        eprintln!(
            "note: skipped {} of {} jobs ({})",
            jobs.skipped_total(),
            jobs.skipped_total() as usize + jobs.jobs.len(),
            parts.join(", ")
        );
    }
    let canonical = spec.canonical();
    let mut progress = Progress::new(jobs.jobs.len() as u64);
    let result = simulate(&jobs, policy, &canonical, &mut progress)
        .map_err(|e| CliError::Failed(anyhow!(e).context("simulation failed")))?;
    progress.finish();
    let trace_name = a.trace.display().to_string();
    let mut summary = Summary::compute(
        &RunInfo {
            trace: &trace_name,
            policy: &canonical,
            estimate: a.estimate.name(),
        },
        &jobs,
        &result,
    );
    if !a.no_timing {
        summary.wall_time_s = Some(started.elapsed().as_secs_f64());
    }
    if let Some(dir) = &a.out {
        write_outputs(dir, &result, &workload.names, &summary).map_err(CliError::Failed)?;
    }
    if !a.quiet {
        print!("{}", summary.to_table());
        if let Some(dir) = &a.out {
            println!(
                "wrote {}/jobs.csv and {}/summary.json",
                dir.display(),
                dir.display()
            );
        }
    }
    Ok(())
}

/// Writes both files through temporary names and renames them into place, so a failure leaves
/// neither a half-written file nor a directory this run created.
fn write_outputs(
    dir: &Path,
    result: &mini_slurm::sim::SimResult,
    names: &mini_slurm::ids::Names,
    summary: &Summary,
) -> anyhow::Result<()> {
    let created = !dir.exists();
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let jobs_tmp = dir.join(".jobs.csv.tmp");
    let summary_tmp = dir.join(".summary.json.tmp");
    let attempt = || -> anyhow::Result<()> {
        let f = std::fs::File::create(&jobs_tmp)
            .with_context(|| format!("cannot write {}", jobs_tmp.display()))?;
        let mut w = std::io::BufWriter::new(f);
        write_jobs_csv(&mut w, result, names)
            .and_then(|()| w.flush())
            .with_context(|| format!("cannot write {}", jobs_tmp.display()))?;
        std::fs::write(&summary_tmp, summary.to_json())
            .with_context(|| format!("cannot write {}", summary_tmp.display()))?;
        std::fs::rename(&jobs_tmp, dir.join("jobs.csv"))?;
        std::fs::rename(&summary_tmp, dir.join("summary.json"))?;
        Ok(())
    };
    let r = attempt();
    if r.is_err() {
        let _ = std::fs::remove_file(&jobs_tmp);
        let _ = std::fs::remove_file(&summary_tmp);
        if created {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    r
}

/// A progress bar on stderr, shown only when stderr is a terminal and the run lasts more than
/// half a second.
struct Progress {
    total: u64,
    done: u64,
    steps: u64,
    since: Instant,
    bar: Option<ProgressBar>,
    enabled: bool,
}

impl Progress {
    fn new(total: u64) -> Progress {
        Progress {
            total,
            done: 0,
            steps: 0,
            since: Instant::now(),
            bar: None,
            enabled: std::io::stderr().is_terminal(),
        }
    }
    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl Observer for Progress {
    fn after_step(&mut self, _now: Time, _engine: &Engine, commands: &[Command]) {
        self.done += commands.len() as u64;
        self.steps += 1;
        if !self.enabled || !self.steps.is_multiple_of(512) {
            return;
        }
        if self.bar.is_none() && self.since.elapsed() > Duration::from_millis(500) {
            let b = ProgressBar::with_draw_target(Some(self.total), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} simulating [{bar:40}] {pos}/{len} jobs started ({eta} left)",
            ) {
                b.set_style(style.progress_chars("=> "));
            }
            self.bar = Some(b);
        }
        if let Some(b) = &self.bar {
            b.set_position(self.done);
        }
    }
}
