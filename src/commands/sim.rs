//! `mini-slurm sim`: replay a trace under a policy. The workload flags (shared with `compare`)
//! become a [`Setup`]; the library prepares and runs it; this file prints and shows progress.

use super::{CliError, CliResult};
use anyhow::anyhow;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mini_slurm::config::ClusterOptions;
use mini_slurm::driver::Observer;
use mini_slurm::engine::{Command, Engine};
use mini_slurm::model::{EstimateMode, Speedup};
use mini_slurm::policy;
use mini_slurm::sched::limits::{Limit, Limits};
use mini_slurm::sim::options::{
    parse_count, parse_fraction, parse_mem, parse_speedup, parse_switches, parse_topology_penalty,
    parse_u32, parse_u64,
};
use mini_slurm::sim::output::{OutDir, write_run_with};
use mini_slurm::sim::setup::placement_name;
use mini_slurm::sim::{Notice, Setup};
use mini_slurm::time::{Dur, Time};
use mini_slurm::trace::elastic::parse_range;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    mini-slurm sim --trace traces/KTH-SP2-1996-2.1-cln.swf.gz --policy easy\n  \
    mini-slurm sim --trace traces/lublin_256.swf.gz --policy 'easy[order=priority]' --estimate actual --out out/\n  \
    mini-slurm sim --trace traces/KTH-SP2-1996-2.1-cln.swf.gz --cluster docs/examples/slurm.conf --topology docs/examples/topology.conf\n\n\
Outputs (with --out DIR): DIR/jobs.csv and DIR/summary.json, described in docs/output-schema.md.")]
pub struct SimArgs {
    #[command(flatten)]
    pub w: WorkloadArgs,
    /// Scheduling policy spec, e.g. fcfs, priority, easy, conservative, 'easy[order=priority]'
    #[arg(long, value_name = "SPEC", default_value = "easy")]
    policy: String,
    /// Write jobs.csv and summary.json into DIR (created if needed)
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Leave the host wall time out of summary.json, so identical runs give identical files
    #[arg(long)]
    no_timing: bool,
    /// Print nothing on stdout
    #[arg(long, short)]
    quiet: bool,
}

/// What a simulation runs on: the trace, the cluster and how jobs are read (shared by `sim`,
/// `compare` and `experiment`).
#[derive(clap::Args, Debug, Clone)]
pub struct WorkloadArgs {
    /// Workload trace: .swf, .swf.gz (SWF) or .csv, .csv.gz (mini-slurm CSV)
    #[arg(long, value_name = "PATH")]
    pub trace: PathBuf,
    /// Machine size in processors (overrides the trace's MaxProcs/MaxNodes header)
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub procs: Option<u32>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Run-time estimates the policy sees: requested (user's walltime), max(requested, actual), or actual
    #[arg(long, value_name = "MODE", default_value = "requested")]
    pub estimate: EstimateMode,
    /// Skip malformed trace lines (counted in the summary) instead of stopping
    #[arg(long)]
    pub lenient: bool,
    /// Kill jobs at their requested time (state TIMEOUT), as Slurm does; off in trace replay
    #[arg(long)]
    pub kill_at_limit: bool,
    /// Placement of jobs on nodes: first-fit, best-fit, tree (default: tree with --topology, else best-fit)
    #[arg(long, value_name = "NAME")]
    pub placement: Option<String>,
    /// Run-time penalty per extra leaf switch a job spans, as a fraction (0.1 = +10 % per extra leaf)
    #[arg(long, value_name = "F")]
    pub topology_penalty: Option<String>,
    /// Slurm's --switches for every job: wait up to MAX_WAIT (Slurm time; a plain number is minutes) for an allocation on at most COUNT leaf switches
    #[arg(long, value_name = "COUNT[@MAX_WAIT]", value_parser = parse_switches)]
    pub switches: Option<(u32, Dur)>,
    /// Quota for every user's running jobs, e.g. cpus=64,mem=256G,gpus=4,jobs=10 (Slurm GrpTRES/MaxJobs); jobs over it wait
    #[arg(long, value_name = "LIMITS", value_parser = Limit::parse)]
    pub user_limit: Option<Limit>,
    /// Fair-share associations and QOS levels: `account NAME [parent=P] [shares=N]`, `user NAME account=A [shares=N]` and `qos NAME priority=N` lines (used by order=multifactor)
    #[arg(long, value_name = "FILE")]
    pub accounts: Option<PathBuf>,
    /// Quota for every account's running jobs (the job's group), same syntax
    #[arg(long, value_name = "LIMITS", value_parser = Limit::parse)]
    pub account_limit: Option<Limit>,
    /// Speedup model of elastic jobs whose trace gives none: linear, amdahl:F (serial fraction F) or downey:A:SIGMA
    #[arg(long, value_name = "MODEL", default_value = "linear", value_parser = parse_speedup)]
    pub speedup: Speedup,
    /// Make this fraction of the jobs elastic (chosen with --seed), for experiments
    #[arg(long, value_name = "F", value_parser = parse_fraction)]
    pub elastic_fraction: Option<f64>,
    /// Range of the jobs made elastic, relative to their size: min = floor(cpus × LO), max = ceil(cpus × HI)
    #[arg(long, value_name = "LO,HI", default_value = "0.5,2", value_parser = parse_range)]
    pub elastic_range: (f64, f64),
    /// Seed of the random choices (--elastic-fraction)
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = parse_u64)]
    pub seed: u64,
}

/// How the cluster is described (part of the workload flags).
#[derive(clap::Args, Debug, Clone)]
pub struct ClusterArgs {
    /// Cluster description: the node and partition lines of a Slurm slurm.conf
    #[arg(long, value_name = "SLURM_CONF")]
    pub cluster: Option<PathBuf>,
    /// Switch tree: a Slurm topology.conf (SwitchName=… Nodes=…|Switches=…)
    #[arg(long, value_name = "TOPOLOGY_CONF")]
    pub topology: Option<PathBuf>,
    /// Shorthand: this many identical nodes (with --cpus-per-node, or splitting --procs)
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub nodes: Option<u32>,
    /// Shorthand: CPUs per node; alone, splits the machine's processors into nodes of this size
    #[arg(long, value_name = "C", value_parser = parse_count)]
    pub cpus_per_node: Option<u32>,
    /// Shorthand: memory per node (e.g. 64GB, 512M, or MB)
    #[arg(long, value_name = "SIZE", value_parser = parse_mem)]
    pub mem_per_node: Option<u64>,
    /// Shorthand: GPUs per node
    #[arg(long, value_name = "G", value_parser = parse_u32)]
    pub gpus_per_node: Option<u32>,
}

impl ClusterArgs {
    pub fn options(&self, procs: Option<u32>) -> ClusterOptions {
        ClusterOptions {
            cluster: self.cluster.clone(),
            topology: self.topology.clone(),
            procs,
            nodes: self.nodes,
            cpus_per_node: self.cpus_per_node,
            mem_per_node_mb: self.mem_per_node,
            gpus_per_node: self.gpus_per_node,
        }
    }
}

impl WorkloadArgs {
    /// The workload as the library takes it: the placement checked, then the penalty (the
    /// order `sim` has always checked them in).
    pub fn setup(&self) -> Result<Setup, CliError> {
        let mut s = Setup::new(self.trace.clone());
        s.lenient = self.lenient;
        s.estimate = self.estimate;
        s.kill_at_limit = self.kill_at_limit;
        s.machine = self.cluster.options(self.procs);
        s.placement = self.placement.clone();
        s.placement_name()?;
        if let Some(v) = &self.topology_penalty {
            s.topology_penalty_permille = parse_topology_penalty(v)
                .map_err(|e| CliError::Input(anyhow!("--topology-penalty: {e}")))?;
        }
        s.switches = self.switches;
        s.limits = Limits {
            user: self.user_limit.unwrap_or_default(),
            account: self.account_limit.unwrap_or_default(),
        };
        s.accounts = self.accounts.clone();
        s.speedup = self.speedup;
        s.elastic_fraction = self.elastic_fraction;
        s.elastic_range = self.elastic_range;
        s.seed = self.seed;
        Ok(s)
    }
}

/// Prints a warning or note on stderr unless `quiet`.
pub fn notices(quiet: bool) -> impl FnMut(Notice) {
    move |n| {
        if !quiet {
            eprintln!("{n}");
        }
    }
}

pub fn run(a: SimArgs) -> CliResult {
    let input = |e: anyhow::Error| CliError::Input(e);
    policy::build(&a.policy).map_err(|e| input(anyhow!("--policy: {e}")))?;
    placement_name(a.w.placement.as_deref(), a.w.cluster.topology.is_some())?;
    if let Some(out) = a.out.as_ref().filter(|o| o.exists() && !o.is_dir()) {
        return Err(input(anyhow!(
            "--out {}: exists and is not a directory",
            out.display()
        )));
    }
    let started = Instant::now();
    let setup = a.w.setup()?;
    // The trace is streamed into the simulation when it can be; else read whole first. A
    // streamed run writes jobs.csv while it runs: the output directory is opened first (where
    // it cannot be, the error is told after the run, as for a run that does not stream).
    let out_dir = match &a.out {
        Some(dir) if setup.streams() => OutDir::create(dir).ok(),
        _ => None,
    };
    let jobs_csv = out_dir.as_ref().and_then(|o| o.jobs_csv().ok());
    let mut progress = Progress::new(None);
    let streamed = setup.simulate_streamed_to(&a.policy, &mut progress, jobs_csv)?;
    let (p, result, canonical, rows) = match streamed {
        Some(s) => {
            s.notices.into_iter().for_each(notices(false));
            (s.prepared, s.result, s.canonical, s.rows)
        }
        None => {
            let p = setup.prepare(&mut notices(false))?;
            progress = Progress::new(Some(p.jobs.jobs.len() as u64));
            let (result, canonical) = p.simulate_observed(&a.policy, &mut progress)?;
            (p, result, canonical, None)
        }
    };
    progress.finish();
    let summarize = || {
        let mut summary = p.summary(&canonical, &result);
        if !a.no_timing {
            summary.wall_time_s = Some(started.elapsed().as_secs_f64());
        }
        summary
    };
    // With --out, the summary is computed on another thread while jobs.csv is written.
    let summary = match (&a.out, out_dir) {
        (Some(_), Some(out)) => out.write_run(&p, &result, rows, summarize)?,
        (Some(dir), None) => write_run_with(dir, &p, &result, summarize)?,
        (None, _) => summarize(),
    };
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
    // The process ends here: leave the workload and the result (a record per job, each
    // sharing its spec) to the exit rather than freeing them one by one.
    std::mem::forget(result);
    std::mem::forget(p);
    Ok(())
}

/// A progress bar on stderr, shown only when stderr is a terminal and the run lasts more than
/// half a second; without a total (a streamed trace, its length unknown), a count.
struct Progress {
    total: Option<u64>,
    done: u64,
    steps: u64,
    since: Instant,
    bar: Option<ProgressBar>,
    enabled: bool,
}

impl Progress {
    fn new(total: Option<u64>) -> Progress {
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
            let b = ProgressBar::with_draw_target(self.total, ProgressDrawTarget::stderr());
            let template = match self.total {
                Some(_) => "{spinner} simulating [{bar:40}] {pos}/{len} jobs started ({eta} left)",
                None => "{spinner} simulating: {pos} jobs started",
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                b.set_style(style.progress_chars("=> "));
            }
            self.bar = Some(b);
        }
        if let Some(b) = &self.bar {
            b.set_position(self.done);
        }
    }
}
