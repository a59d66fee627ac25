//! Experiments: the cartesian product of traces × policies × parameters × seeds, run in
//! parallel, gathered in one tidy CSV (one row per run) with a report. Runs whose outputs exist
//! for the same inputs are not run again.
//!
//! ```toml
//! title = "Load sweep"                      # optional
//! out = "reports/load-sweep"                # optional; --out overrides
//! traces = ["traces/lublin_256.swf.gz"]
//! policies = ["fcfs", "easy", "conservative"]
//! seeds = [1, 2, 3]                         # optional, default [1]
//!
//! [parameters]                              # optional; each a list of values
//! load = [0.6, 0.8, 1.0]                    # target offered load (submission gaps scaled)
//! shake = [0, 60]                           # input shaking, seconds (seeded by the seed)
//! elastic_fraction = [0.0, 0.5]             # elastic jobs (seeded by the seed)
//! estimate = ["requested", "actual"]
//!
//! [options]                                 # any workload flag of `sim`, fixed for all runs
//! procs = 256
//! speedup = "amdahl:0.05"
//! ```
//!
//! The steps, each a library call: [`Experiment::read`] (the file, checked: every error names
//! it), [`Experiment::plan`] (the grid of runs, and which of them to run: those without a
//! `summary.json` and a `run.txt` stamp saying the same inputs), [`Plan::execute`] (the runs,
//! in parallel threads, with a callback per finished run) and [`Plan::write_report`]
//! (`results.csv`, charts and pages from every run's `summary.json`).

mod check;
mod plan;
mod report;

pub use plan::{Plan, Point};

use super::{Setup, SimError};
use crate::model::EstimateMode;
use std::path::{Path, PathBuf};

/// An experiment, checked: what to run, over which values.
#[derive(Clone, Debug)]
pub struct Experiment {
    /// The experiment file's name, as messages and the report show it.
    pub file: String,
    /// The report's title (default: "Experiment FILE").
    pub title: Option<String>,
    /// The output directory the file names, if any.
    pub out: Option<PathBuf>,
    pub traces: Vec<PathBuf>,
    /// Policy specs.
    pub policies: Vec<String>,
    pub seeds: Vec<u64>,
    pub parameters: Parameters,
    /// The fixed options (`[options]`) as a setup; each run sets its trace, seed and
    /// parameters on a copy.
    pub base: Setup,
    /// The fixed options as flags (`--procs 256`), as the stamp and the report show them;
    /// `None` when the file sets none.
    pub options: Option<Vec<String>>,
}

/// The parameters that vary across runs; each given is a list of distinct values.
#[derive(Clone, Debug, Default)]
pub struct Parameters {
    /// Target offered loads (submission gaps scaled, measured on the run's cluster).
    pub load: Option<Vec<f64>>,
    /// Input shaking, seconds (seeded by the run's seed).
    pub shake: Option<Vec<f64>>,
    /// Fractions of the jobs made elastic (seeded by the run's seed).
    pub elastic_fraction: Option<Vec<f64>>,
    /// Run-time estimates the policies see.
    pub estimate: Option<Vec<EstimateMode>>,
}

/// An experiment file that cannot be run as written, or a run that failed.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// The file cannot be read.
    #[error("{file}: {err}")]
    Read { file: String, err: std::io::Error },
    /// Something in the file is wrong: `what` names the key (`policies: ...`).
    #[error("{file}: {what}")]
    Invalid { file: String, what: String },
    /// The output directory is a file.
    #[error("{}: exists and is not a directory", path.display())]
    OutNotDir { path: PathBuf },
    /// A run could not be prepared, run or written.
    #[error(transparent)]
    Run(#[from] SimError),
}

impl ExperimentError {
    /// Whether the error is in what the user gave rather than a failure while running.
    pub fn is_input(&self) -> bool {
        match self {
            ExperimentError::Run(e) => e.is_input(),
            _ => true,
        }
    }
}

impl Experiment {
    /// Reads and checks the experiment file at `path`.
    pub fn read(path: &Path) -> Result<Experiment, ExperimentError> {
        let file = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Experiment::parse(&file, &text),
            Err(err) => Err(ExperimentError::Read { file, err }),
        }
    }

    /// Parses and checks an experiment's TOML `text`; `file` names it in messages.
    pub fn parse(file: &str, text: &str) -> Result<Experiment, ExperimentError> {
        check::parse(file, text)
    }

    /// The grid of runs with their results under `out` (default: the file's `out`), and which
    /// of them to run: all with `force`, else those whose outputs are missing or were made
    /// from other inputs.
    pub fn plan(&self, out: Option<&Path>, force: bool) -> Result<Plan<'_>, ExperimentError> {
        let out = out
            .map(Path::to_path_buf)
            .or_else(|| self.out.clone())
            .ok_or_else(|| self.invalid("no output directory: give `out` or --out DIR"))?;
        if out.exists() && !out.is_dir() {
            return Err(ExperimentError::OutNotDir { path: out });
        }
        Ok(Plan::new(self, out, force))
    }

    /// The report's title.
    pub fn title(&self) -> String {
        self.title
            .clone()
            .unwrap_or_else(|| format!("Experiment {}", self.file))
    }

    fn invalid(&self, what: impl Into<String>) -> ExperimentError {
        ExperimentError::Invalid {
            file: self.file.clone(),
            what: what.into(),
        }
    }
}
