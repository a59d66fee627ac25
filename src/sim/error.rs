//! What can go wrong when a simulation is set up, run and written: each error names the file,
//! line or option at fault, and [`SimError::is_input`] tells bad input (exit status 2 on the
//! command line) from a failure while running or writing (status 1).

use crate::config::ConfigError;
use crate::driver::DriverError;
use crate::policy::PolicyError;
use crate::report::ChartError;
use crate::trace::TraceError;
use std::path::PathBuf;

/// An error of [`Setup::prepare`](super::Setup::prepare), [`Prepared::run`](super::Prepared::run),
/// the output writers, comparisons and experiments.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A placement strategy nobody registered.
    #[error("--placement: unknown placement '{name}' (known: {known})")]
    Placement { name: String, known: String },
    /// The trace could not be read (file and line in the error).
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// The accounts file could not be read.
    #[error("{}: {err}", path.display())]
    AccountsFile { path: PathBuf, err: std::io::Error },
    /// A cluster description or accounts file says something wrong (file and line).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A target load on a trace that has no load (experiments' `parameters.load`).
    #[error(
        "{}: parameters.load: the trace has no load to scale (fewer than two submit times, or no work)",
        trace.display()
    )]
    NoLoadToScale { trace: PathBuf },
    /// Every job of the trace was skipped: nothing would be simulated.
    #[error("{}: every job was skipped, nothing to simulate: {detail}", trace.display())]
    AllSkipped { trace: PathBuf, detail: String },
    /// A policy spec that does not parse or names no policy.
    #[error("--policy: {0}")]
    Policy(PolicyError),
    /// The simulation itself failed (the engine refused a decision, the run stalled, ...).
    #[error("simulation under {policy} failed")]
    Simulation {
        policy: String,
        #[source]
        source: DriverError,
    },
    #[error("cannot create {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not JSON", path.display())]
    NotJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A file could not be moved into place.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Chart(#[from] ChartError),
    #[error(transparent)]
    NotUtf8(#[from] std::string::FromUtf8Error),
}

impl SimError {
    /// Whether the error is in what the user gave (a file, a flag, an option) rather than a
    /// failure while running or writing.
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            SimError::Placement { .. }
                | SimError::Trace(_)
                | SimError::AccountsFile { .. }
                | SimError::Config(_)
                | SimError::NoLoadToScale { .. }
                | SimError::AllSkipped { .. }
                | SimError::Policy(_)
        )
    }
}
