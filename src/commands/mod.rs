//! One file per subcommand. Errors are `anyhow` with context, split by exit code.

pub mod cluster;
pub mod compare;
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
