//! `mini-slurm completions SHELL` and `mini-slurm man`: shell completion scripts and man pages,
//! generated from the same clap definitions as `--help` (clap's own `clap_complete` and
//! `clap_mangen`), so they never drift from the flags.

use super::{CliError, CliResult};
use anyhow::Context;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

#[derive(clap::Args, Debug)]
pub struct ManArgs {
    /// Write mini-slurm.1 and one page per command (mini-slurm-sim.1, ...) into this folder;
    /// without it, print mini-slurm.1 on stdout
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// Prints the completion script for `a.shell`, e.g. `mini-slurm completions bash >
/// /etc/bash_completion.d/mini-slurm`.
pub fn completions(a: CompletionsArgs, mut cmd: clap::Command) -> CliResult {
    clap_complete::generate(a.shell, &mut cmd, "mini-slurm", &mut std::io::stdout());
    Ok(())
}

/// Writes the man pages (or prints the main one).
pub fn man(a: ManArgs, cmd: clap::Command) -> CliResult {
    let failed = |e: anyhow::Error| CliError::Failed(e);
    let Some(dir) = a.out else {
        clap_mangen::Man::new(cmd)
            .render(&mut std::io::stdout())
            .context("writing the man page")
            .map_err(failed)?;
        return Ok(());
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))
        .map_err(failed)?;
    clap_mangen::generate_to(cmd, &dir)
        .with_context(|| format!("cannot write man pages into {}", dir.display()))
        .map_err(failed)?;
    let n = std::fs::read_dir(&dir).map_or(0, |d| d.count());
    eprintln!("wrote {n} man pages to {}", dir.display());
    Ok(())
}
