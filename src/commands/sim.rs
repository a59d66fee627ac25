//! `mini-slurm sim`: replay a trace under a policy.

use super::{CliError, CliResult};
use anyhow::{Context, anyhow};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mini_slurm::config::{ClusterOptions, build_cluster};
use mini_slurm::driver::Observer;
use mini_slurm::engine::{Command, Engine};
use mini_slurm::metrics::{RunInfo, Summary, write_jobs_csv};
use mini_slurm::model::EstimateMode;
use mini_slurm::policy;
use mini_slurm::sched::limits::{Limit, Limits};
use mini_slurm::sched::placement;
use mini_slurm::sim::{SimConfig, simulate};
use mini_slurm::time::{Dur, Time, parse_duration, parse_secs_to_millis};
use mini_slurm::trace::{PrepareOptions, SkipReason, read_trace};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
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
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
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
    pub speedup: mini_slurm::model::Speedup,
    /// Make this fraction of the jobs elastic (chosen with --seed), for experiments
    #[arg(long, value_name = "F", value_parser = parse_fraction)]
    pub elastic_fraction: Option<f64>,
    /// Range of the jobs made elastic, relative to their size: min = floor(cpus × LO), max = ceil(cpus × HI)
    #[arg(long, value_name = "LO,HI", default_value = "0.5,2", value_parser = mini_slurm::trace::elastic::parse_range)]
    pub elastic_range: (f64, f64),
    /// Seed of the random choices (--elastic-fraction)
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
}

fn parse_speedup(s: &str) -> Result<mini_slurm::model::Speedup, String> {
    mini_slurm::model::Speedup::parse(s)
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|f| (0.0..=1.0).contains(f))
        .ok_or_else(|| format!("expected a fraction between 0 and 1, found '{s}'"))
}

/// How the cluster is described (shared by `sim` and `cluster show`).
#[derive(clap::Args, Debug, Clone)]
pub struct ClusterArgs {
    /// Cluster description: the node and partition lines of a Slurm slurm.conf
    #[arg(long, value_name = "SLURM_CONF")]
    pub cluster: Option<PathBuf>,
    /// Switch tree: a Slurm topology.conf (SwitchName=… Nodes=…|Switches=…)
    #[arg(long, value_name = "TOPOLOGY_CONF")]
    pub topology: Option<PathBuf>,
    /// Shorthand: this many identical nodes (with --cpus-per-node, or splitting --procs)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub nodes: Option<u32>,
    /// Shorthand: CPUs per node; alone, splits the machine's processors into nodes of this size
    #[arg(long, value_name = "C", value_parser = clap::value_parser!(u32).range(1..))]
    pub cpus_per_node: Option<u32>,
    /// Shorthand: memory per node (e.g. 64GB, 512M, or MB)
    #[arg(long, value_name = "SIZE", value_parser = parse_mem)]
    pub mem_per_node: Option<u64>,
    /// Shorthand: GPUs per node
    #[arg(long, value_name = "G")]
    pub gpus_per_node: Option<u32>,
}

/// `COUNT[@MAX_WAIT]`, as Slurm's `--switches`; without a wait, Slurm's default of 24 hours.
fn parse_switches(s: &str) -> Result<(u32, Dur), String> {
    let (count, wait) = s.split_once('@').unwrap_or((s, "1-00:00:00"));
    let count: u32 = count
        .trim()
        .parse()
        .ok()
        .filter(|&c| c >= 1)
        .ok_or_else(|| format!("expected COUNT[@MAX_WAIT] with COUNT ≥ 1, found '{s}'"))?;
    let wait = parse_duration(wait, 60_000)?;
    Ok((count, wait))
}

fn parse_mem(s: &str) -> Result<u64, String> {
    mini_slurm::model::parse_mem_mb(s)
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

/// A workload read and prepared once, ready to be simulated under any number of policies
/// (in parallel: everything here is shared read-only).
pub struct Prepared {
    pub jobs: mini_slurm::trace::SimJobs,
    pub names: mini_slurm::ids::Names,
    pub assoc: Option<mini_slurm::model::AssocConfig>,
    pub limits: Limits,
    pub placement_name: String,
    pub penalty: u32,
    pub trace_name: String,
    pub w: WorkloadArgs,
}

impl WorkloadArgs {
    /// The placement strategy's name (checked).
    fn placement_name(&self) -> Result<String, CliError> {
        let name = self.placement.clone().unwrap_or_else(|| {
            if self.cluster.topology.is_some() {
                "tree"
            } else {
                "best-fit"
            }
            .to_string()
        });
        if placement::by_name(&name).is_none() {
            return Err(CliError::Input(anyhow!(
                "--placement: unknown placement '{name}' (known: {})",
                placement::PLACEMENTS.map(|p| p.0).join(", ")
            )));
        }
        Ok(name)
    }

    /// Reads the trace and the cluster and prepares the jobs (notes on stderr unless `quiet`).
    pub fn prepare(&self, quiet: bool) -> Result<Prepared, CliError> {
        self.prepare_with(quiet, &|_, _| {})
    }

    /// As [`WorkloadArgs::prepare`], with `transform` applied to the trace once read and the
    /// cluster built (it gets the cluster's CPU count): load scaling, shaking (experiments).
    pub fn prepare_with(
        &self,
        quiet: bool,
        transform: &dyn Fn(&mut mini_slurm::trace::Workload, u64),
    ) -> Result<Prepared, CliError> {
        let input = |e: anyhow::Error| CliError::Input(e);
        let placement_name = self.placement_name()?;
        let placement = placement::by_name(&placement_name)
            .ok_or_else(|| input(anyhow!("--placement: unknown placement")))?;
        let penalty = match &self.topology_penalty {
            None => 0,
            Some(v) => match parse_secs_to_millis(v) {
                Some(p) if (0..=1_000_000).contains(&p) => p as u32,
                _ => {
                    return Err(input(anyhow!(
                        "--topology-penalty: expected a fraction ≥ 0 such as 0.1, found '{v}'"
                    )));
                }
            },
        };
        let mut workload = read_trace(&self.trace, self.lenient).map_err(|e| input(e.into()))?;
        let assoc = match &self.accounts {
            None => None,
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| input(anyhow!("{}: {e}", p.display())))?;
                Some(
                    mini_slurm::config::accounts::parse(&text, p, &mut workload.names)
                        .map_err(|e| input(e.into()))?,
                )
            }
        };
        if !quiet {
            for w in &workload.warnings {
                eprintln!("warning: {w}");
            }
        }
        let built = build_cluster(&self.cluster.options(self.procs), |procs| {
            workload.machine_procs(procs).map_err(|e| e.to_string())
        })
        .map_err(|e| input(e.into()))?;
        if !quiet {
            for n in &built.notes {
                eprintln!("note: {n}");
            }
        }
        transform(&mut workload, built.cluster.total_cpus());
        let limits = Limits {
            user: self.user_limit.unwrap_or_default(),
            account: self.account_limit.unwrap_or_default(),
        };
        let mut jobs = workload.prepare(
            &built.cluster,
            placement.as_ref(),
            &PrepareOptions {
                estimate: self.estimate,
                kill_at_limit: self.kill_at_limit,
                switches: self.switches,
                speedup: self.speedup,
            },
        );
        jobs.drop_over_limit(&limits);
        if let Some(f) = self.elastic_fraction {
            mini_slurm::trace::elastic::make_elastic(&mut jobs, f, self.elastic_range, self.seed);
        }
        // The trace's own records are no longer needed: give their memory back before simulating.
        workload.jobs = Vec::new();
        if jobs.skipped_total() > 0 && !quiet {
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
        Ok(Prepared {
            jobs,
            names: workload.names,
            assoc,
            limits,
            placement_name,
            penalty,
            trace_name: self.trace.display().to_string(),
            w: self.clone(),
        })
    }
}

impl Prepared {
    /// Simulates the prepared jobs under `spec` (a progress bar on a terminal when asked).
    pub fn run(
        &self,
        spec: &str,
        show_progress: bool,
    ) -> Result<(mini_slurm::metrics::SimResult, Summary), CliError> {
        let (policy, parsed) =
            policy::build(spec).map_err(|e| CliError::Input(anyhow!("--policy: {e}")))?;
        let canonical = parsed.canonical();
        let placement = placement::by_name(&self.placement_name)
            .ok_or_else(|| CliError::Input(anyhow!("--placement: unknown placement")))?;
        let mut progress = Progress::new(self.jobs.jobs.len() as u64);
        progress.enabled &= show_progress;
        let cfg = SimConfig {
            policy,
            policy_name: &canonical,
            placement,
            span_penalty_permille: self.penalty,
            limits: self.limits,
            assoc: self.assoc.clone(),
        };
        let result = simulate(&self.jobs, cfg, &mut progress).map_err(|e| {
            CliError::Failed(anyhow!(e).context(format!("simulation under {canonical} failed")))
        })?;
        progress.finish();
        let mut summary = Summary::compute(
            &RunInfo {
                trace: &self.trace_name,
                policy: &canonical,
                estimate: self.w.estimate.name(),
                placement: &self.placement_name,
            },
            &self.jobs,
            &result,
            &self.names,
        );
        if let Some(f) = self.w.elastic_fraction {
            summary.elastic_fraction = Some(f);
            summary.elastic_range = Some([self.w.elastic_range.0, self.w.elastic_range.1]);
            summary.seed = Some(self.w.seed);
        }
        if summary.elastic.is_some() || self.w.elastic_fraction.is_some() {
            summary.speedup = Some(self.w.speedup.to_string());
        }
        Ok((result, summary))
    }
}

pub fn run(a: SimArgs) -> CliResult {
    let input = |e: anyhow::Error| CliError::Input(e);
    policy::build(&a.policy).map_err(|e| input(anyhow!("--policy: {e}")))?;
    a.w.placement_name()?;
    if let Some(out) = a.out.as_ref().filter(|o| o.exists() && !o.is_dir()) {
        return Err(input(anyhow!(
            "--out {}: exists and is not a directory",
            out.display()
        )));
    }
    let started = Instant::now();
    let p = a.w.prepare(false)?;
    let (result, mut summary) = p.run(&a.policy, true)?;
    if !a.no_timing {
        summary.wall_time_s = Some(started.elapsed().as_secs_f64());
    }
    if let Some(dir) = &a.out {
        write_outputs(dir, &result, &p.names, &p.jobs.cluster, &summary)
            .map_err(CliError::Failed)?;
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
pub fn write_outputs(
    dir: &Path,
    result: &mini_slurm::metrics::SimResult,
    names: &mini_slurm::ids::Names,
    cluster: &mini_slurm::model::Cluster,
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
        write_jobs_csv(&mut w, result, names, cluster)
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
