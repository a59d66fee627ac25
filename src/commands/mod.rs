//! One file per subcommand: arguments → a validated library config → the library call →
//! printing. Errors are `anyhow` with context, split by exit code.

pub mod cluster;
pub mod compare;
pub mod docs;
pub mod experiment;
pub mod live;
pub mod plot;
pub mod policies;
pub mod sim;
pub mod trace;

/// A command's failure: bad usage or input (exit 2) or a failure while running (exit 1).
#[derive(Debug)]
pub enum CliError {
    Input(anyhow::Error),
    Failed(anyhow::Error),
}

pub type CliResult = Result<(), CliError>;

impl CliError {
    /// `e` as bad input (exit 2) when `input`, else as a failure (exit 1).
    fn of(e: impl Into<anyhow::Error>, input: bool) -> CliError {
        if input {
            CliError::Input(e.into())
        } else {
            CliError::Failed(e.into())
        }
    }
}

impl From<mini_slurm::sim::SimError> for CliError {
    fn from(e: mini_slurm::sim::SimError) -> CliError {
        let input = e.is_input();
        CliError::of(e, input)
    }
}

impl From<mini_slurm::sim::ExperimentError> for CliError {
    fn from(e: mini_slurm::sim::ExperimentError) -> CliError {
        let input = e.is_input();
        CliError::of(e, input)
    }
}
