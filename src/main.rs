//! The `mini-slurm` command line: parsing and exit codes. Each verb lives in `commands/`.

mod commands;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};
use commands::CliError;
use std::process::ExitCode;

/// mini-slurm: a simulation-first batch job scheduler.
///
/// Replay a workload trace under a scheduling policy (`sim`), list the policies (`policies`), or
/// inspect a cluster description (`cluster show`).
#[derive(Parser, Debug)]
#[command(name = "mini-slurm", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Simulate a workload trace under a scheduling policy
    Sim(Box<commands::sim::SimArgs>),
    /// Compare policies on one workload (in parallel) and write a report with charts
    Compare(Box<commands::compare::CompareArgs>),
    /// Run an experiment: traces × policies × parameters × seeds from a TOML file, with a report
    Experiment(commands::experiment::ExperimentArgs),
    /// List the scheduling policies and their parameters
    Policies(commands::policies::PoliciesArgs),
    /// Chart a metric against a parameter over several runs (summary.json files)
    Plot(commands::plot::PlotArgs),
    /// Inspect cluster descriptions (slurm.conf, topology.conf)
    Cluster(commands::cluster::ClusterCmd),
    /// Workloads: generate synthetic traces, convert SWF / CSV / sacct dumps, inspect a trace
    Trace(commands::trace::TraceCmd),
    /// Run the scheduler daemon on this machine
    Scheduler(commands::live::scheduler::SchedulerArgs),
    /// Submit a job
    Submit(commands::live::submit::SubmitArgs),
    /// Show the job queue
    Queue(commands::live::queue::QueueArgs),
    /// Show a job's details
    Show(commands::live::show::ShowArgs),
    /// Cancel pending or running jobs
    Cancel(commands::live::cancel::CancelArgs),
    /// Show capacity, usage, enforcement and job metrics
    Stats(commands::live::stats::StatsArgs),
    /// Write the finished jobs as a CSV trace the simulator replays
    ExportTrace(commands::live::export_trace::ExportArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions(commands::docs::CompletionsArgs),
    /// Print the man page, or write one per command with --out DIR
    Man(commands::docs::ManArgs),
    /// Supervise one job (started by the scheduler)
    #[command(hide = true)]
    JobRunner(commands::live::job_runner::RunnerArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return clap_error(e),
    };
    if !matches!(cli.command, Command::Scheduler(_) | Command::JobRunner(_)) {
        // A closed pipe (`mini-slurm policies | head`) ends the command quietly, as it does
        // any Unix filter, instead of a panic in println!. The daemon and the job runner keep
        // Rust's default (the error is returned to the writer), as servers should.
        // SAFETY: called before any other thread exists; resets one signal's disposition.
        unsafe {
            let _ = nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGPIPE,
                nix::sys::signal::SigHandler::SigDfl,
            );
        }
    }
    let result = match cli.command {
        Command::Sim(a) => commands::sim::run(*a),
        Command::Policies(a) => commands::policies::run(a),
        Command::Compare(a) => commands::compare::run(*a),
        Command::Experiment(a) => commands::experiment::run(a),
        Command::Plot(a) => commands::plot::run(a),
        Command::Cluster(a) => commands::cluster::run(a),
        Command::Trace(a) => commands::trace::run(a),
        Command::Scheduler(a) => commands::live::scheduler::run(a),
        Command::Submit(a) => commands::live::submit::run(a),
        Command::Queue(a) => commands::live::queue::run(a),
        Command::Show(a) => commands::live::show::run(a),
        Command::Cancel(a) => commands::live::cancel::run(a),
        Command::Stats(a) => commands::live::stats::run(a),
        Command::ExportTrace(a) => commands::live::export_trace::run(a),
        Command::Completions(a) => commands::docs::completions(a, Cli::command()),
        Command::Man(a) => commands::docs::man(a, Cli::command()),
        Command::JobRunner(a) => commands::live::job_runner::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Input(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(CliError::Failed(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Help and version go to stdout with status 0; usage errors go to stderr, status 2, as two lines
/// (see [`usage_error_text`]).
fn clap_error(e: clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            eprintln!("{}", usage_error_text(&e.render().to_string()));
            ExitCode::from(2)
        }
    }
}

/// clap's usage error, compacted: the error with its tip on one line ("did you mean..."), then
/// the usage line of the command.
fn usage_error_text(rendered: &str) -> String {
    let paragraphs: Vec<String> = rendered
        .split("\n\n")
        .map(|p| {
            p.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|p| !p.is_empty())
        .collect();
    let mut first = paragraphs.first().cloned().unwrap_or_default();
    let tips = rendered
        .lines()
        .filter_map(|l| l.trim().strip_prefix("tip: "));
    for tip in tips {
        first.push_str(&format!("; tip: {tip}"));
    }
    match paragraphs.iter().find(|p| p.starts_with("Usage: ")) {
        Some(usage) => format!("{first}\n{usage} (see --help)"),
        None => first,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn usage_errors_keep_the_tip_and_the_usage() {
        let rendered = "error: unexpected argument '--polcy' found\n\n  tip: a similar argument \
                        exists: '--policy'\n\nUsage: mini-slurm sim --trace <PATH> --policy <SPEC>\n\n\
                        For more information, try '--help'.\n";
        assert_eq!(
            super::usage_error_text(rendered),
            "error: unexpected argument '--polcy' found; tip: a similar argument exists: '--policy'\n\
             Usage: mini-slurm sim --trace <PATH> --policy <SPEC> (see --help)"
        );
    }
}
