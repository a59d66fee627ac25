//! What a simulation runs on, as plain data: a [`Setup`] (the trace, how it is read, the
//! machine, placement, quotas, accounts, elastic jobs, load scaling) is read and checked once by
//! [`Setup::prepare`] into a [`Prepared`] workload, which [`Prepared::run`] then simulates under
//! any number of policies — in parallel if wanted, since a `Prepared` is only read.
//!
//! `sim`, `compare` and `experiment` build their `Setup` from flags or `[options]`
//! ([`super::options`]); a Rust program fills one in directly.

use super::{SimConfig, SimError, simulate};
use crate::config::{ClusterOptions, build_cluster};
use crate::driver::{NoObserver, Observer};
use crate::ids::Names;
use crate::metrics::{RunInfo, SimResult, Summary};
use crate::model::{AssocConfig, EstimateMode, Speedup};
use crate::policy::PolicySpec;
use crate::sched::limits::Limits;
use crate::sched::placement;
use crate::time::Dur;
use crate::trace::{PrepareOptions, SimJobs, SkipReason, Workload, read_trace, transform};
use std::fmt;
use std::path::PathBuf;

/// Everything a simulation runs on except the policy: what `sim`'s workload flags set.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The workload trace: `.swf`, `.swf.gz` (SWF) or `.csv`, `.csv.gz`.
    pub trace: PathBuf,
    /// Skip malformed trace lines (counted in the summary) instead of stopping.
    pub lenient: bool,
    /// The run-time estimates the policy sees.
    pub estimate: EstimateMode,
    /// Kill jobs at their requested time (TIMEOUT), as Slurm does.
    pub kill_at_limit: bool,
    /// The machine: a processor count, `nodes × cpus/mem/gpus` shorthands, or a `slurm.conf`
    /// (and `topology.conf`); with none of them, the trace's own machine size.
    pub machine: ClusterOptions,
    /// The placement strategy's name (default: `tree` with a topology, else `best-fit`).
    pub placement: Option<String>,
    /// Run-time penalty per extra leaf switch a job spans, in thousandths of its run time.
    pub topology_penalty_permille: u32,
    /// Slurm's `--switches=COUNT@MAX_WAIT` for every job.
    pub switches: Option<(u32, Dur)>,
    /// Quotas per user and per account.
    pub limits: Limits,
    /// A fair-share associations file (accounts, users, QOS).
    pub accounts: Option<PathBuf>,
    /// Speedup model of elastic jobs whose trace gives none.
    pub speedup: Speedup,
    /// Make this fraction of the jobs elastic (chosen with `seed`).
    pub elastic_fraction: Option<f64>,
    /// The range of jobs made elastic, relative to their size (min = floor(cpus × lo),
    /// max = ceil(cpus × hi)).
    pub elastic_range: (f64, f64),
    /// Seed of the random choices (elastic jobs, shaking).
    pub seed: u64,
    /// Scale the submission gaps so that the offered load on the cluster is this.
    pub load: Option<f64>,
    /// Move each submission by a seeded random amount up to this (input shaking).
    pub shake: Option<Dur>,
}

impl Setup {
    /// `trace` read as `sim` reads it by default: requested estimates, the trace's machine size,
    /// best-fit placement, no quotas, no elastic jobs.
    pub fn new(trace: impl Into<PathBuf>) -> Setup {
        Setup {
            trace: trace.into(),
            lenient: false,
            estimate: EstimateMode::Requested,
            kill_at_limit: false,
            machine: ClusterOptions::default(),
            placement: None,
            topology_penalty_permille: 0,
            switches: None,
            limits: Limits::default(),
            accounts: None,
            speedup: Speedup::default(),
            elastic_fraction: None,
            elastic_range: (0.5, 2.0),
            seed: 1,
            load: None,
            shake: None,
        }
    }

    /// The placement strategy's name, checked.
    pub fn placement_name(&self) -> Result<String, SimError> {
        placement_name(self.placement.as_deref(), self.machine.topology.is_some())
    }

    /// Reads the trace, the accounts file and the cluster, and prepares the jobs. Warnings and
    /// notes (skipped lines, how the machine was understood, skipped jobs) go to `notices` as
    /// they come.
    pub fn prepare(&self, notices: &mut dyn FnMut(Notice)) -> Result<Prepared, SimError> {
        let placement_name = self.placement_name()?;
        let placement = placement::by_name(&placement_name).ok_or_else(|| unknown(""))?;
        let mut workload = read_trace(&self.trace, self.lenient)?;
        let assoc = match &self.accounts {
            None => None,
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|err| SimError::AccountsFile {
                    path: p.clone(),
                    err,
                })?;
                Some(crate::config::accounts::parse(
                    &text,
                    p,
                    &mut workload.names,
                )?)
            }
        };
        for w in &workload.warnings {
            notices(Notice::Warning(w.clone()));
        }
        let built = build_cluster(&self.machine, |procs| {
            workload.machine_procs(procs).map_err(|e| e.to_string())
        })?;
        for n in machine_notes(&self.machine, &built.notes, &built.scheduler) {
            notices(n);
        }
        let scheduler = built.scheduler;
        self.transform(&mut workload, built.cluster.total_cpus())?;
        if let Some(n) = ignore_memory(&mut workload, &built.cluster) {
            notices(memory_note(n));
        }
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
        jobs.drop_over_limit(&self.limits);
        if let Some(f) = self.elastic_fraction {
            crate::trace::elastic::make_elastic(&mut jobs, f, self.elastic_range, self.seed);
        }
        // The trace's own records are no longer needed: give their memory back before simulating.
        workload.jobs = Vec::new();
        if let Some(n) = self.skipped_notice(&jobs, jobs.jobs.len())? {
            notices(n);
        }
        Ok(Prepared {
            setup: self.clone(),
            jobs,
            names: workload.names,
            assoc,
            placement: placement_name,
            scheduler,
        })
    }

    /// The note on the jobs left out of `jobs` (`kept` were kept), if any; an error when every
    /// job was.
    pub(crate) fn skipped_notice(
        &self,
        jobs: &SimJobs,
        kept: usize,
    ) -> Result<Option<Notice>, SimError> {
        if jobs.skipped_total() == 0 {
            return Ok(None);
        }
        if kept == 0 {
            return Err(SimError::AllSkipped {
                trace: self.trace.clone(),
                detail: skipped_note(jobs, kept),
            });
        }
        Ok(Some(Notice::Note(skipped_note(jobs, kept))))
    }

    /// Load scaling, then shaking, on the trace as read (the load measured on `cpus`).
    fn transform(&self, workload: &mut Workload, cpus: u64) -> Result<(), SimError> {
        if let Some(l) = self.load {
            let cpus = u32::try_from(cpus).unwrap_or(u32::MAX);
            match transform::offered_load(&workload.jobs, cpus).filter(|x| *x > 0.0) {
                Some(now) => transform::scale_load(workload, l / now),
                None => {
                    return Err(SimError::NoLoadToScale {
                        trace: self.trace.clone(),
                    });
                }
            }
        }
        if let Some(s) = self.shake {
            transform::shake(workload, s, self.seed);
        }
        Ok(())
    }
}

/// The placement named `name`, or the default (`tree` with a topology, else `best-fit`),
/// checked against the registry.
pub fn placement_name(name: Option<&str>, has_topology: bool) -> Result<String, SimError> {
    let name = name.unwrap_or(if has_topology { "tree" } else { "best-fit" });
    match placement::by_name(name) {
        Some(_) => Ok(name.to_string()),
        None => Err(unknown(name)),
    }
}

fn unknown(name: &str) -> SimError {
    SimError::Placement {
        name: name.to_string(),
        known: placement::PLACEMENTS.map(|p| p.0).join(", "),
    }
}

/// How the machine was understood: the notes of building it, and the scheduling parameters a
/// `slurm.conf` gives the `slurm` policy.
pub(crate) fn machine_notes(
    machine: &ClusterOptions,
    notes: &[String],
    scheduler: &[(String, String)],
) -> Vec<Notice> {
    let mut out: Vec<Notice> = notes.iter().map(|n| Notice::Note(n.clone())).collect();
    if let (Some(path), false) = (&machine.cluster, scheduler.is_empty()) {
        let kv: Vec<String> = scheduler.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push(Notice::Note(format!(
            "{}: scheduling parameters of the `slurm` policy: {} (parameters in the policy spec win)",
            path.display(),
            kv.join(",")
        )));
    }
    out
}

/// The note that `n` jobs' memory requests are ignored (the machine has none).
pub(crate) fn memory_note(n: usize) -> Notice {
    Notice::Note(format!(
        "the machine has no memory (a processor count, or nodes without --mem-per-node): \
         the memory requests of {n} job{} are ignored; give the nodes memory \
         (--mem-per-node, or RealMemory in a slurm.conf) to simulate them",
        if n == 1 { "" } else { "s" }
    ))
}

/// On a machine whose nodes have no memory, memory is not modelled: jobs' memory requests are
/// dropped (rather than every such job skipped). Returns how many jobs had one, if any.
fn ignore_memory(workload: &mut Workload, cluster: &crate::model::Cluster) -> Option<usize> {
    if cluster.nodes.iter().any(|n| n.mem_mb > 0) {
        return None;
    }
    let n = workload
        .jobs
        .iter_mut()
        .map(drop_memory)
        .filter(|&d| d)
        .count();
    (n > 0).then_some(n)
}

/// Drops a job's memory request; true if it had one.
pub(crate) fn drop_memory(j: &mut crate::trace::TraceJob) -> bool {
    let had = j.mem_mb.is_some_and(|m| m > 0);
    if had {
        j.mem_mb = None;
    }
    had
}

/// "skipped N of M jobs (n reason: e.g. job 3: why, ...)", `kept` jobs kept.
fn skipped_note(jobs: &SimJobs, kept: usize) -> String {
    let parts: Vec<String> = SkipReason::ALL
        .iter()
        .filter_map(|r| {
            jobs.skipped
                .get(r)
                .map(|n| match jobs.skip_examples.get(r) {
                    Some(e) => format!("{} {}: e.g. {e}", n, r.key()),
                    None => format!("{} {}", n, r.key()),
                })
        })
        .collect();
    format!(
        "skipped {} of {} jobs ({})",
        jobs.skipped_total(),
        jobs.skipped_total() as usize + kept,
        parts.join(", ")
    )
}

/// Something worth telling while a workload is prepared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A trace line skipped or read with a guess.
    Warning(String),
    /// How the input was understood (the machine, skipped jobs).
    Note(String),
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::Warning(w) => write!(f, "warning: {w}"),
            Notice::Note(n) => write!(f, "note: {n}"),
        }
    }
}

/// A workload read and prepared once, ready to be simulated under any number of policies
/// (in parallel: everything here is shared read-only).
pub struct Prepared {
    /// What it was prepared from.
    pub setup: Setup,
    pub jobs: SimJobs,
    pub names: Names,
    pub assoc: Option<AssocConfig>,
    /// The placement strategy's name (the default resolved).
    pub placement: String,
    /// The `slurm` policy's parameters from the cluster's `slurm.conf` (empty without one).
    pub scheduler: Vec<(String, String)>,
}

/// One simulation's outcome: every job's record and the summary metrics.
pub struct Run {
    pub result: SimResult,
    pub summary: Summary,
}

impl Prepared {
    /// Simulates the prepared jobs under the policy `spec` (e.g. `easy[order=multifactor]`).
    pub fn run(&self, spec: &str) -> Result<Run, SimError> {
        self.run_observed(spec, &mut NoObserver)
    }

    /// [`Prepared::run`], with `observer` called after every engine step (a progress bar).
    pub fn run_observed(&self, spec: &str, observer: &mut dyn Observer) -> Result<Run, SimError> {
        let (result, canonical) = self.simulate_observed(spec, observer)?;
        let summary = self.summary(&canonical, &result);
        Ok(Run { result, summary })
    }

    /// The simulation of [`Prepared::run_observed`] without its summary: the result and the
    /// policy's canonical spec, for [`Prepared::summary`] (which `sim` computes while it writes
    /// `jobs.csv`).
    pub fn simulate_observed(
        &self,
        spec: &str,
        observer: &mut dyn Observer,
    ) -> Result<(SimResult, String), SimError> {
        let (policy, _) =
            crate::policy::build(&self.effective_spec(spec)?).map_err(SimError::Policy)?;
        // Outputs name the policy as the user gave it; the file's parameters are in its note.
        let canonical = PolicySpec::parse(spec)
            .map_err(SimError::Policy)?
            .canonical();
        let placement = placement::by_name(&self.placement).ok_or_else(|| unknown(""))?;
        let cfg = SimConfig {
            policy,
            policy_name: &canonical,
            placement,
            span_penalty_permille: self.setup.topology_penalty_permille,
            limits: self.setup.limits,
            assoc: self.assoc.clone(),
        };
        let result =
            simulate(&self.jobs, cfg, observer).map_err(|source| SimError::Simulation {
                policy: canonical.clone(),
                source,
            })?;
        Ok((result, canonical))
    }

    /// The spec a run builds: for the `slurm` policy, the scheduling parameters of the
    /// cluster's `slurm.conf` below the spec's own (a parameter given in the spec wins).
    pub fn effective_spec(&self, spec: &str) -> Result<String, SimError> {
        Prepared::spec_with(spec, &self.scheduler)
    }

    /// [`Prepared::effective_spec`] with the scheduling parameters `scheduler`.
    pub(crate) fn spec_with(
        spec: &str,
        scheduler: &[(String, String)],
    ) -> Result<String, SimError> {
        let mut parsed = PolicySpec::parse(spec).map_err(SimError::Policy)?;
        if parsed.name != crate::policy::slurm::INFO.name || scheduler.is_empty() {
            return Ok(spec.to_string());
        }
        for (k, v) in scheduler {
            parsed.params.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Ok(parsed.canonical())
    }

    /// The summary of `result`, a run under the policy `canonical`.
    pub fn summary(&self, canonical: &str, result: &SimResult) -> Summary {
        let w = &self.setup;
        let mut summary = Summary::compute(
            &RunInfo {
                trace: &self.trace_name(),
                policy: canonical,
                estimate: w.estimate.name(),
                placement: &self.placement,
            },
            &self.jobs,
            result,
            &self.names,
        );
        if let Some(f) = w.elastic_fraction {
            summary.elastic_fraction = Some(f);
            summary.elastic_range = Some([w.elastic_range.0, w.elastic_range.1]);
            summary.seed = Some(w.seed);
        }
        if summary.elastic.is_some() || w.elastic_fraction.is_some() {
            summary.speedup = Some(w.speedup.to_string());
        }
        summary
    }

    /// The trace's path, as reports show it.
    pub fn trace_name(&self) -> String {
        self.setup.trace.display().to_string()
    }
}
