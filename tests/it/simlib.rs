//! The simulation library without the command line: a `Setup` prepared and run, a comparison,
//! an experiment planned, run, rerun and reported — each giving the bytes the CLI gives — and
//! the workload options table kept in step with `sim`'s flags.

use mini_slurm::sim::compare::run_policies;
use mini_slurm::sim::options::{FLAGS, apply_args};
use mini_slurm::sim::output::write_run;
use mini_slurm::sim::{Experiment, ExperimentError, Notice, Setup, SimError};
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_mini-slurm");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("binary runs")
}

/// Four CPUs, three jobs: 2 waits for 1; EASY backfills 3.
const TINY: &str = "id,submit,runtime,cpus,walltime,user\n\
                    1,0,100,3,100,ann\n\
                    2,10,50,2,50,bob\n\
                    3,20,10,1,10,bob\n";

fn tiny(dir: &Path) -> String {
    let trace = dir.join("tiny.csv");
    std::fs::write(&trace, TINY).unwrap();
    trace.display().to_string()
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn a_setup_runs_as_sim_does() {
    let dir = tempfile::tempdir().unwrap();
    let trace = tiny(dir.path());
    let mut setup = Setup::new(&trace);
    setup.machine.procs = Some(4);
    setup.elastic_fraction = Some(0.5);
    let mut notices = Vec::new();
    let prepared = setup.prepare(&mut |n| notices.push(n)).unwrap();
    assert!(notices.is_empty(), "{notices:?}");
    let easy = prepared.run("easy").unwrap();
    assert_eq!(easy.result.jobs.len(), 3);
    write_run(&dir.path().join("lib"), &prepared, &easy).unwrap();
    let o = run(&[
        "sim",
        "--trace",
        &trace,
        "--procs",
        "4",
        "--elastic-fraction",
        "0.5",
        "--no-timing",
        "-q",
        "--out",
        dir.path().join("cli").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in ["jobs.csv", "summary.json"] {
        assert_eq!(
            read(&dir.path().join("lib").join(f)),
            read(&dir.path().join("cli").join(f)),
            "{f}"
        );
    }
    // The same prepared workload runs under any policy, here two at a time.
    let runs = run_policies(
        &prepared,
        &["fcfs".into(), "easy".into()],
        &dir.path().join("c"),
        2,
    )
    .unwrap();
    assert_eq!(runs[1].1.summary.to_json(), easy.summary.to_json());
    assert!(dir.path().join("c/runs/fcfs/jobs.csv").exists());
}

#[test]
fn setup_errors_say_what_was_wrong_and_whether_it_is_input() {
    let dir = tempfile::tempdir().unwrap();
    let trace = tiny(dir.path());
    let mut setup = Setup::new(&trace);
    // The trace has no machine size: a note-free input error naming the trace.
    let e = setup.prepare(&mut |_| {}).err().unwrap();
    assert!(e.is_input());
    assert!(e.to_string().contains("tiny.csv"), "{e}");
    setup.machine.procs = Some(4);
    setup.placement = Some("worst-fit".into());
    let e = setup.prepare(&mut |_| {}).err().unwrap();
    assert!(matches!(e, SimError::Placement { .. }), "{e}");
    setup.placement = None;
    let p = setup.prepare(&mut |_| {}).unwrap();
    let e = p.run("bogus").err().unwrap();
    assert!(
        e.is_input() && e.to_string().starts_with("--policy: "),
        "{e}"
    );
    // A job wider than the machine is skipped, and said so.
    setup.machine.procs = Some(2);
    let mut notices = Vec::new();
    setup.prepare(&mut |n| notices.push(n)).unwrap();
    assert_eq!(
        notices,
        [Notice::Note(
            "skipped 1 of 3 jobs (1 too_many_processors: e.g. job 1: 3 CPUs, the machine has 2)"
                .into()
        )]
    );
}

#[test]
fn the_options_table_is_sims_workload_flags() {
    let help = String::from_utf8(run(&["sim", "--help"]).stdout).unwrap();
    let mut in_help = Vec::new();
    for line in help.lines().map(str::trim_start) {
        let Some(rest) = line.strip_prefix("--") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let name = words.next().unwrap_or_default();
        let value = words
            .next()
            .filter(|w| w.starts_with('<'))
            .map(|w| w.trim_matches(['<', '>']));
        if !["policy", "out", "no-timing"].contains(&name) {
            in_help.push((name.to_string(), value.map(str::to_string)));
        }
    }
    let table: Vec<(String, Option<String>)> = FLAGS
        .iter()
        .map(|f| (f.name.to_string(), f.value.map(str::to_string)))
        .collect();
    assert_eq!(table, in_help);
}

#[test]
fn options_fail_as_the_same_flags_do() {
    let dir = tempfile::tempdir().unwrap();
    let trace = tiny(dir.path());
    for args in [
        &["--procs", "0"][..],
        &["--procs", "-5"],
        &["--gpus-per-node", "99999999999"],
        &["--seed", "x"],
        &["--speedup", "cubic"],
        &["--elastic-fraction", "-0.5"],
        &["--elastic-range", "1"],
        &["--placement", "--lenient"],
        &["--lenient", "yes"],
        &["--bogus", "1"],
        &["--trace", "again"],
        &["--user-limit", "x=1"],
    ] {
        let mut argv = vec!["sim", "--trace", &trace];
        argv.extend(args);
        let o = run(&argv);
        assert_eq!(o.status.code(), Some(2));
        let cli = String::from_utf8_lossy(&o.stderr);
        // The error line (a usage error adds the command's usage line after it).
        let cli = cli
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("error: ");
        let mut ours = vec!["--trace".to_string(), trace.clone()];
        ours.extend(args.iter().map(|a| a.to_string()));
        let lib = apply_args(&mut Setup::new("-"), &ours).err().unwrap();
        assert_eq!(lib, cli, "{args:?}");
    }
    let mut s = Setup::new("-");
    apply_args(
        &mut s,
        &[
            "--nodes=2",
            "--cpus-per-node",
            "8",
            "--lenient",
            "--seed",
            "7",
        ],
    )
    .unwrap();
    assert_eq!(
        (s.machine.nodes, s.machine.cpus_per_node),
        (Some(2), Some(8))
    );
    assert!(s.lenient && s.seed == 7);
}

#[test]
fn an_experiment_runs_from_rust_as_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let trace = tiny(dir.path());
    let toml = format!(
        "traces = [\"{trace}\"]\npolicies = [\"fcfs\", \"easy\"]\nseeds = [1, 2]\n\
         [parameters]\nshake = [0, 30]\n[options]\nprocs = 4\n"
    );
    let file = dir.path().join("e.toml");
    std::fs::write(&file, &toml).unwrap();
    let experiment = Experiment::read(&file).unwrap();
    let out = dir.path().join("lib");
    let plan = experiment.plan(Some(&out), false).unwrap();
    assert_eq!((plan.runs.len(), plan.todo.len()), (8, 8));
    let done = std::sync::atomic::AtomicUsize::new(0);
    plan.execute(2, &|_| {
        done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    })
    .unwrap();
    assert_eq!(done.into_inner(), 8);
    plan.write_report(false).unwrap();
    // Planned again, nothing is left to run.
    assert!(experiment.plan(Some(&out), false).unwrap().todo.is_empty());
    assert_eq!(experiment.plan(Some(&out), true).unwrap().todo.len(), 8);
    let cli = dir.path().join("cli");
    let o = run(&[
        "experiment",
        file.to_str().unwrap(),
        "--out",
        cli.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in ["results.csv", "index.html", "summary.md"] {
        assert_eq!(read(&out.join(f)), read(&cli.join(f)), "{f}");
    }
    // Errors name the file and the key, and are input errors.
    let e = Experiment::parse("x.toml", "traces = []\npolicies = [\"easy\"]\n")
        .err()
        .unwrap();
    assert!(matches!(e, ExperimentError::Invalid { .. }) && e.is_input());
    assert_eq!(
        e.to_string(),
        "x.toml: expected at least one trace, one policy and one seed"
    );
    let e = Experiment::parse(
        "x.toml",
        &format!("traces = [\"{trace}\"]\npolicies = [\"easy\"]\n[options]\nspeedup = \"cubic\"\n"),
    )
    .err()
    .unwrap();
    assert!(
        e.to_string()
            .starts_with("x.toml: [options]: invalid value 'cubic' for '--speedup <MODEL>'"),
        "{e}"
    );
    let no_out = Experiment::parse(
        "x.toml",
        &toml.replace("[options]", "[options]\nlenient = false"),
    )
    .unwrap();
    assert!(no_out.plan(None, false).is_err());
}
