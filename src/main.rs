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
    /// The jobs that ended in a time window, as sacct (-S/-E; --json)
    History(commands::live::history::HistoryArgs),
    /// Stop the scheduler daemon (as scontrol shutdown); running jobs go on
    Stop(commands::live::stop::StopArgs),
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

/// The hot verbs (a submission, a job's runner, the live queries) parsed alone: clap builds
/// the whole command tree — every verb's flags — before it parses, which costs a client more
/// than its request to the daemon (see docs/performance.md). Any error, `--help` or
/// `--version` included, is left to the full parse, so messages are the same either way.
fn parse_hot(args: &[std::ffi::OsString]) -> Option<Command> {
    macro_rules! alone {
        ($variant:ident, $args:ty, $name:literal) => {{
            #[derive(Parser)]
            #[command(name = $name)]
            struct One {
                #[command(flatten)]
                a: $args,
            }
            let rest = args.iter().skip(2).cloned();
            One::try_parse_from(std::iter::once($name.into()).chain(rest))
                .ok()
                .map(|o| Command::$variant(o.a))
        }};
    }
    use commands::live::{cancel, job_runner, queue, show, submit};
    match args.get(1)?.to_str()? {
        "submit" => alone!(Submit, submit::SubmitArgs, "mini-slurm submit"),
        "job-runner" => alone!(JobRunner, job_runner::RunnerArgs, "mini-slurm job-runner"),
        "queue" => alone!(Queue, queue::QueueArgs, "mini-slurm queue"),
        "show" => alone!(Show, show::ShowArgs, "mini-slurm show"),
        "cancel" => alone!(Cancel, cancel::CancelArgs, "mini-slurm cancel"),
        _ => None,
    }
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match parse_hot(&args) {
        Some(command) => Cli { command },
        None => match Cli::try_parse_from(&args) {
            Ok(c) => c,
            Err(e) => return clap_error(e),
        },
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
        Command::Stop(a) => commands::live::stop::run(a),
        Command::History(a) => commands::live::history::run(a),
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
    /// The hot verbs' own parse agrees with the full one.
    #[test]
    fn hot_verbs_parse_as_the_full_command_line() {
        use clap::Parser;
        for line in [
            "mini-slurm submit --parsable --cpus 2 -o out-%j -- python train.py --epochs 3",
            "mini-slurm submit --nice -5 --priority -2 echo hi",
            "mini-slurm submit -J x -t 1:00 -d afterok:3 -a 0-3%2 -- sleep 1",
            "mini-slurm job-runner --job 7 --launch 2",
            "mini-slurm queue -s RUNNING -u ann --format %i%j -H",
            "mini-slurm show 4",
            "mini-slurm cancel 4 5",
        ] {
            let args: Vec<std::ffi::OsString> = line.split(' ').map(Into::into).collect();
            let hot = super::parse_hot(&args).map(|c| format!("{c:?}"));
            let full = super::Cli::try_parse_from(&args).map(|c| format!("{:?}", c.command));
            assert_eq!(hot, full.ok(), "{line}");
        }
        for line in [
            "mini-slurm submit --help",
            "mini-slurm submit --version",
            "mini-slurm submit --cpu 2 true",
            "mini-slurm queue --bogus",
            "mini-slurm sim --help",
        ] {
            let args: Vec<std::ffi::OsString> = line.split(' ').map(Into::into).collect();
            assert!(
                super::parse_hot(&args).is_none(),
                "{line}: left to the full parse"
            );
        }
    }

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
