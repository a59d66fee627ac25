//! The built binary, driven in temporary directories.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mini-slurm"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit 2, exactly one error line on stderr containing every `needle` (a usage error adds the
/// command's usage line).
fn assert_input_error(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    let lines: Vec<&str> = err.trim_end().lines().collect();
    assert!(
        lines.len() == 1 || (lines.len() == 2 && lines[1].starts_with("Usage: ")),
        "one line: {err}"
    );
    for n in needles {
        assert!(err.contains(n), "{n:?} not in {err:?}");
    }
}

fn lublin() -> String {
    root()
        .join("traces/lublin_256.swf.gz")
        .display()
        .to_string()
}

#[test]
fn sim_writes_jobs_and_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = run(&[
        "sim",
        "--trace",
        &lublin(),
        "--policy",
        "easy",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("utilization"), "{stdout}");
    let csv = std::fs::read_to_string(out.join("jobs.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    assert!(header.starts_with(
        "job_id,submission_time,requested_number_of_resources,requested_time,starting_time,\
         execution_time,finish_time,waiting_time,turnaround_time,stretch,final_state,user"
    ));
    assert_eq!(csv.lines().count(), 10_000 + 1, "one row per simulated job");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["jobs_simulated"], 10_000);
    assert_eq!(summary["procs"], 256);
    let u = summary["utilization"].as_f64().unwrap();
    assert!(u > 0.0 && u <= 1.0, "utilization {u}");
    assert!(summary["wall_time_s"].as_f64().is_some());
}

#[test]
fn identical_runs_write_identical_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for name in ["a", "b"] {
        let out = tmp.path().join(name);
        let nasa = root().join("traces/NASA-iPSC-1993-3.1-cln.swf.gz");
        let o = run(&[
            "sim",
            "--trace",
            nasa.to_str().unwrap(),
            "--policy",
            "conservative",
            "--estimate",
            "max",
            "--no-timing",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        files.push((
            std::fs::read(out.join("jobs.csv")).unwrap(),
            std::fs::read(out.join("summary.json")).unwrap(),
        ));
    }
    assert!(files[0] == files[1], "two runs differ");
}

/// Runs `sim ARGS --out OUT` and checks it succeeded.
fn sim_ok(out: &Path, args: &[&str]) -> Output {
    let mut a = vec!["sim"];
    a.extend_from_slice(args);
    a.extend(["--out", out.to_str().unwrap()]);
    let o = run(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    o
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn malformed_swf_line_names_file_and_line_and_leaves_no_output() {
    let tmp = tempfile::tempdir().unwrap();
    let trace = write(
        tmp.path(),
        "bad.swf",
        "; MaxProcs: 4\n1 0 -1 10 1 -1 -1 1 10 -1 1 1 1 -1 -1 -1 -1 -1\n2 0 -1 x 1 -1 -1 1 10 -1 1 1 1 -1 -1 -1 -1 -1\n",
    );
    let out = tmp.path().join("out");
    let o = run(&["sim", "--trace", &trace, "--out", out.to_str().unwrap()]);
    assert_input_error(&o, &["bad.swf:3:", "field 4 (run time)"]);
    assert!(!out.exists(), "no output directory on bad input");
    // --lenient skips and counts it
    let o = run(&[
        "sim",
        "--trace",
        &trace,
        "--lenient",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = std::fs::read_to_string(out.join("summary.json")).unwrap();
    assert!(s.contains("\"malformed_line\": 1"), "{s}");
}

#[test]
fn csv_missing_required_column() {
    let tmp = tempfile::tempdir().unwrap();
    let trace = write(tmp.path(), "t.csv", "id,submit,cpus\n1,0,2\n");
    let o = run(&["sim", "--trace", &trace, "--procs", "4"]);
    assert_input_error(&o, &["t.csv:1:", "missing required column 'runtime'"]);
}

#[test]
fn csv_trace_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let trace = write(
        tmp.path(),
        "t.csv",
        "id,submit,runtime,cpus,walltime,user\n1,0,100,4,200,alice\n2,5,50,4,,bob\n",
    );
    let out = tmp.path().join("o");
    sim_ok(
        &out,
        &["--trace", &trace, "--procs", "4", "--policy", "fcfs"],
    );
    let csv = std::fs::read_to_string(out.join("jobs.csv")).unwrap();
    assert!(
        csv.contains(
            "\n1,0.000,4,200.000,0.000,100.000,100.000,0.000,100.000,1.000000,COMPLETED,alice,"
        ),
        "{csv}"
    );
    assert!(
        csv.contains(
            "\n2,5.000,4,50.000,100.000,50.000,150.000,95.000,145.000,2.900000,COMPLETED,bob,"
        ),
        "{csv}"
    );
}

#[test]
fn bad_flags_and_missing_files() {
    let o = run(&["sim", "--trace", &lublin(), "--procs", "0"]);
    assert_input_error(&o, &["--procs"]);
    let o = run(&["sim", "--trace", &lublin(), "--policy", "lottery"]);
    assert_input_error(&o, &["unknown policy 'lottery'"]);
    let o = run(&["sim", "--trace", &lublin(), "--policy", "easy[depth=2]"]);
    assert_input_error(&o, &["unknown parameter 'depth'"]);
    let o = run(&["sim", "--trace", "/nonexistent/x.swf"]);
    assert_input_error(&o, &["/nonexistent/x.swf"]);
    let o = run(&["sim", "--trace", &lublin(), "--estimate", "psychic"]);
    assert_input_error(&o, &["--estimate"]);
    let o = run(&["sim"]);
    assert_input_error(&o, &["--trace"]);
}

#[test]
fn trace_without_machine_size_needs_procs() {
    let tmp = tempfile::tempdir().unwrap();
    let trace = write(
        tmp.path(),
        "t.swf",
        "1 0 -1 10 1 -1 -1 1 10 -1 1 1 1 -1 -1 -1 -1 -1\n",
    );
    let o = run(&["sim", "--trace", &trace]);
    assert_input_error(&o, &["t.swf", "--procs"]);
    let o = run(&["sim", "--trace", &trace, "--procs", "2", "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn help_everywhere_and_policies_listed() {
    for args in [&["--help"][..], &["sim", "--help"], &["policies", "--help"]] {
        let o = run(args);
        assert!(o.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("Usage"),
            "{args:?}"
        );
    }
    let o = run(&["policies"]);
    let text = String::from_utf8_lossy(&o.stdout);
    for p in mini_slurm::policy::REGISTRY {
        assert!(text.contains(p.name), "{} listed", p.name);
    }
}

#[test]
fn policies_doc_is_current() {
    let on_disk = std::fs::read_to_string(root().join("docs/policies.md")).unwrap_or_default();
    assert!(
        on_disk == mini_slurm::policy::docs_markdown(),
        "docs/policies.md is stale: run `cargo run -- policies --markdown > docs/policies.md`"
    );
}

fn example(name: &str) -> String {
    root()
        .join("docs/examples")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn cluster_show_prints_what_was_understood() {
    let o = run(&[
        "cluster",
        "show",
        &example("slurm.conf"),
        "--topology",
        &example("topology.conf"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("64 nodes, 2048 CPUs"), "{out}");
    assert!(out.contains("n[00-47]"), "{out}");
    assert!(
        out.contains(
            "gpu           Nodes=g[00-15] (16 nodes, 512 CPUs) MaxTime=1-00:00:00 MaxNodes=8"
        ),
        "{out}"
    );
    assert!(out.contains("core (level 1)"), "{out}");
    assert!(stderr(&o).contains("ignored"), "unknown keys are noted");
}

/// KTH SP2 on its 100 nodes under a tree of ten leaves, with `placement`: (jobs.csv, summary).
fn kth_on_tree(placement: &str, out: &Path) -> (String, serde_json::Value) {
    let o = run(&[
        "sim",
        "--trace",
        &root()
            .join("traces/KTH-SP2-1996-2.1-cln.swf.gz")
            .display()
            .to_string(),
        "--nodes",
        "100",
        "--cpus-per-node",
        "1",
        "--topology",
        &example("kth-tree.topology.conf"),
        "--placement",
        placement,
        "--policy",
        "easy",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = std::fs::read_to_string(out.join("jobs.csv")).unwrap();
    let summary =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    (csv, summary)
}

#[test]
fn sim_on_a_tree_cluster_reports_allocations_and_leaves() {
    let tmp = tempfile::tempdir().unwrap();
    let (csv, tree) = kth_on_tree("tree", &tmp.path().join("tree"));
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (alloc, leaves, procs) = (
        col("allocated_resources"),
        col("leaf_switches"),
        col("requested_number_of_resources"),
    );
    for line in csv.lines().skip(1) {
        let f: Vec<String> = csv_split(line);
        let n: usize = f[leaves].parse().unwrap();
        let p: usize = f[procs].parse().unwrap();
        let hosts = f[alloc].trim_matches('"');
        assert!(hosts.starts_with('n'), "{line}");
        // at least the leaves the job's size needs, at most one per node
        assert!(n >= p.div_ceil(10) && n <= p, "{line}");
    }
    assert_eq!(tree["placement"], "tree");
    assert_eq!(tree["nodes"], 100);
    // Tree placement keeps jobs more compact than first-fit on the same workload.
    let (_, first) = kth_on_tree("first-fit", &tmp.path().join("ff"));
    let (t, f) = (
        tree["mean_leaf_switches"].as_f64().unwrap(),
        first["mean_leaf_switches"].as_f64().unwrap(),
    );
    assert!(t >= 1.0 && t < f, "tree {t} vs first-fit {f}");
}

/// Splits a CSV line with double-quoted fields.
fn csv_split(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(String::new()),
            _ => out.last_mut().unwrap().push(c),
        }
    }
    out
}

#[test]
fn bad_cluster_input_is_a_one_line_error() {
    let tmp = tempfile::tempdir().unwrap();
    let trace = lublin();
    let conf = write(
        tmp.path(),
        "slurm.conf",
        "NodeName=n[0-3] CPUs=64\nPartitionName=p Nodes=n[0-4]\n",
    );
    let o = run(&["sim", "--trace", &trace, "--cluster", &conf]);
    assert_input_error(&o, &["slurm.conf:2:", "unknown node n4"]);
    let conf = write(tmp.path(), "ok.conf", "NodeName=n[0-3] CPUs=64\n");
    let topo = write(
        tmp.path(),
        "topo.conf",
        "SwitchName=a Nodes=n[0-2]\nSwitchName=b Nodes=n[2-3]\n",
    );
    let o = run(&[
        "sim",
        "--trace",
        &trace,
        "--cluster",
        &conf,
        "--topology",
        &topo,
    ]);
    assert_input_error(&o, &["topo.conf", "node n2 is under two leaf switches"]);
    let topo = write(
        tmp.path(),
        "topo2.conf",
        "SwitchName=a Nodes=n[0-3]\nSwitchName=top Switches=a,zz\n",
    );
    let o = run(&[
        "sim",
        "--trace",
        &trace,
        "--cluster",
        &conf,
        "--topology",
        &topo,
    ]);
    assert_input_error(&o, &["topo2.conf:2:", "unknown switch zz"]);
    let o = run(&["sim", "--trace", &trace, "--cluster", &conf, "--nodes", "4"]);
    assert_input_error(&o, &["--nodes cannot be combined with --cluster"]);
    let o = run(&["sim", "--trace", &trace, "--cpus-per-node", "100"]);
    assert_input_error(
        &o,
        &["--cpus-per-node 100 does not divide the machine's 256 processors"],
    );
    let o = run(&["sim", "--trace", &trace, "--placement", "random"]);
    assert_input_error(&o, &["--placement", "random"]);
}

#[test]
fn jobs_larger_than_their_partition_are_counted_not_run() {
    let tmp = tempfile::tempdir().unwrap();
    // 4 nodes of 8 CPUs: the default partition has two of them (16 CPUs).
    let conf = write(
        tmp.path(),
        "slurm.conf",
        "NodeName=n[0-3] CPUs=8 RealMemory=1000\nPartitionName=small Nodes=n[0-1] Default=YES MaxTime=10\nPartitionName=big Nodes=ALL\n",
    );
    let trace = write(
        tmp.path(),
        "t.csv",
        "id,submit,runtime,cpus,partition,walltime,mem\n1,0,60,16,,,\n2,0,60,24,,,\n3,0,60,24,big,,\n4,0,60,4,nope,,\n5,0,60,4,,1:00:00,\n6,0,60,4,,,2000\n",
    );
    let out = tmp.path().join("o");
    let o = sim_ok(&out, &["--trace", &trace, "--cluster", &conf]);
    let err = stderr(&o);
    assert!(err.contains("skipped 4 of 6 jobs"), "{err}");
    // The reason names the resource, with the first job it hit.
    assert!(
        err.contains(
            "3 cannot_run_in_partition: e.g. job 2: CPUs: it asks 24, its partition has 16"
        ),
        "{err}"
    );
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    // 2 needs 24 CPUs in a 16-CPU partition; 5 asks 1 h where MaxTime is 10 min; 6 asks more
    // memory than a node has; 4 names no partition of the cluster.
    assert_eq!(s["jobs_skipped"]["cannot_run_in_partition"], 3);
    assert_eq!(s["jobs_skipped"]["unknown_partition"], 1);
    assert_eq!(s["jobs_simulated"], 2);
    let csv = std::fs::read_to_string(out.join("jobs.csv")).unwrap();
    assert!(
        csv.contains(",small,n[0-1],0,n0:8;n1:8,None,0,0.000,,0,"),
        "{csv}"
    );
    assert!(
        csv.contains(",big,n[0-2],0,n0:8;n1:8;n2:8,Resources,0,0.000,,0,"),
        "{csv}"
    );
}

#[test]
fn gpu_indices_are_reported_per_node() {
    let tmp = tempfile::tempdir().unwrap();
    let trace = write(
        tmp.path(),
        "g.csv",
        "id,submit,runtime,cpus,gpus,nodes\n1,0,100,2,1,1\n2,0,100,2,2,1\n3,0,100,4,1,2\n",
    );
    let out = tmp.path().join("o");
    sim_ok(
        &out,
        &[
            "--trace",
            &trace,
            "--nodes",
            "2",
            "--cpus-per-node",
            "4",
            "--gpus-per-node",
            "4",
            "--placement",
            "first-fit",
        ],
    );
    let csv = std::fs::read_to_string(out.join("jobs.csv")).unwrap();
    // 1 and 2 share n0 (GPUs 0 and 1-2); 3 needs 2 CPUs and a GPU on each of two nodes, so
    // it waits until n0 is free again at 100, then gets GPU 0 on both.
    assert!(
        csv.contains(",n0,0,n0:2:gpu(IDX:0),None,0,0.000,,0,"),
        "{csv}"
    );
    assert!(
        csv.contains(",n0,0,n0:2:gpu(IDX:1-2),None,0,0.000,,0,"),
        "{csv}"
    );
    assert!(csv.contains("\n3,0.000,4,100.000,100.000,"), "{csv}");
    assert!(
        csv.contains(",n[0-1],0,n0:2:gpu(IDX:0);n1:2:gpu(IDX:0),Resources,0,0.000,,0,"),
        "{csv}"
    );
}

#[test]
fn user_limits_hold_jobs_with_slurm_reasons() {
    let tmp = tempfile::tempdir().unwrap();
    let trace = write(
        tmp.path(),
        "q.csv",
        "id,submit,runtime,cpus,user\n1,0,100,1,ann\n2,0,100,1,ann\n3,0,100,1,bob\n4,0,100,6,ann\n",
    );
    let out = tmp.path().join("o");
    sim_ok(
        &out,
        &[
            "--trace",
            &trace,
            "--procs",
            "8",
            "--policy",
            "fcfs",
            "--user-limit",
            "jobs=1,cpus=4",
        ],
    );
    let csv = std::fs::read_to_string(out.join("jobs.csv")).unwrap();
    // ann may run one job at a time; bob is not held behind her second job even under fcfs;
    // job 4 asks more than ann's CPU limit on its own and is skipped.
    assert!(csv.contains("\n1,0.000,1,100.000,0.000,"), "{csv}");
    assert!(csv.contains("\n3,0.000,1,100.000,0.000,"), "{csv}");
    assert!(csv.contains("\n2,0.000,1,100.000,100.000,"), "{csv}");
    assert!(
        csv.trim_end()
            .lines()
            .nth(2)
            .unwrap()
            .contains(",AssocMaxJobsLimit,0,0.000,,0,"),
        "{csv}"
    );
    let s = std::fs::read_to_string(out.join("summary.json")).unwrap();
    assert!(s.contains("\"exceeds_limit\": 1"), "{s}");
    let o = run(&[
        "sim",
        "--trace",
        &trace,
        "--procs",
        "4",
        "--user-limit",
        "cores=2",
    ]);
    assert_input_error(&o, &["--user-limit", "unknown limit 'cores'"]);
}

#[test]
fn elastic_fraction_makes_a_trace_elastic() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o");
    let args = [
        "--trace",
        &lublin(),
        "--elastic-fraction",
        "0.5",
        "--elastic-range",
        "0.5,2",
        "--seed",
        "3",
        "--speedup",
        "amdahl:0.05",
        "--no-timing",
    ];
    let o = sim_ok(&out, &args);
    assert!(String::from_utf8_lossy(&o.stdout).contains("elastic jobs"));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let e = &s["elastic"];
    let (n_el, n_rg) = (
        e["jobs_elastic"].as_u64().unwrap(),
        e["jobs_rigid"].as_u64().unwrap(),
    );
    assert!(
        n_el > 0 && n_rg > 0 && n_el.abs_diff(n_rg) < (n_el + n_rg) / 5,
        "{e}"
    );
    assert!(e["resizes_total"].as_u64().unwrap() > 0, "{e}");
    let u = e["utilization_elastic"].as_f64().unwrap() + e["utilization_rigid"].as_f64().unwrap();
    assert!((u - s["utilization"].as_f64().unwrap()).abs() < 1e-9, "{s}");
    let csv = std::fs::read_to_string(out.join("jobs.csv")).unwrap();
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .ends_with(",elastic_range,resizes,cpu_seconds")
    );
    // Same seed, same bytes.
    let again = tmp.path().join("again");
    sim_ok(&again, &args);
    assert_eq!(
        std::fs::read(out.join("jobs.csv")).unwrap(),
        std::fs::read(again.join("jobs.csv")).unwrap()
    );
    assert_eq!(
        std::fs::read(out.join("summary.json")).unwrap(),
        std::fs::read(again.join("summary.json")).unwrap()
    );
    for (flag, value, needle) in [
        (
            "--elastic-fraction",
            "1.5",
            "expected a fraction between 0 and 1",
        ),
        (
            "--elastic-range",
            "2,3",
            "expected LO,HI with 0 < LO ≤ 1 ≤ HI",
        ),
        ("--speedup", "cubic", "invalid speedup model 'cubic'"),
    ] {
        let o = run(&["sim", "--trace", &lublin(), flag, value]);
        assert_input_error(&o, &[flag, needle]);
    }
}

#[test]
fn plot_draws_a_metric_against_a_parameter() {
    let tmp = tempfile::tempdir().unwrap();
    let mut summaries = Vec::new();
    for (p, f) in [("fcfs", "0"), ("fcfs", "1"), ("easy", "0"), ("easy", "1")] {
        let out = tmp.path().join(format!("{p}-{f}"));
        sim_ok(
            &out,
            &[
                "--trace",
                &lublin(),
                "--policy",
                p,
                "--elastic-fraction",
                f,
                "-q",
            ],
        );
        summaries.push(out.join("summary.json").display().to_string());
    }
    let svg = tmp.path().join("bsld.svg");
    let mut args = vec![
        "plot",
        "--x",
        "elastic_fraction",
        "--y",
        "mean_bounded_slowdown",
        "--by",
        "policy",
        "--out",
        svg.to_str().unwrap(),
    ];
    args.extend(summaries.iter().map(String::as_str));
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    // The data drawn: one line per policy, x sorted, y as in each summary.
    let bsld = |name: &str| -> f64 {
        let s: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(tmp.path().join(name).join("summary.json")).unwrap(),
        )
        .unwrap();
        s["mean_bounded_slowdown"].as_f64().unwrap()
    };
    let table = String::from_utf8_lossy(&o.stdout).into_owned();
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 4, "{table}");
    for (row, (name, x, run)) in rows.iter().zip([
        ("easy", 0.0, "easy-0"),
        ("easy", 1.0, "easy-1"),
        ("fcfs", 0.0, "fcfs-0"),
        ("fcfs", 1.0, "fcfs-1"),
    ]) {
        assert_eq!(row[0], name, "{table}");
        assert_eq!(row[1].parse::<f64>().unwrap(), x);
        assert!(
            (row[2].parse::<f64>().unwrap() - bsld(run)).abs() < 1e-6,
            "{table}"
        );
    }
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));
    assert_eq!(text.matches("<circle").count(), 4);
    for label in ["easy", "fcfs", "elastic_fraction", "mean_bounded_slowdown"] {
        assert!(text.contains(&format!("\n{label}\n")), "{label}");
    }
    // A field that is not in the files: exit 2, naming the file and the field.
    let o = run(&[
        "plot",
        "--x",
        "no_such.field",
        "--y",
        "utilization",
        "--out",
        svg.to_str().unwrap(),
        &summaries[0],
    ]);
    assert_input_error(&o, &["--x no_such.field", "summary.json"]);
}

/// A mistyped flag is a usage error with clap's suggestion and the command's usage line.
#[test]
fn mistyped_flags_get_a_suggestion_and_the_usage() {
    let o = run(&["sim", "--polcy", "easy", "--trace", "x.swf"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "unexpected argument '--polcy' found; tip: a similar argument exists: '--policy'"
        ),
        "{err}"
    );
    assert!(err.contains("\nUsage: mini-slurm sim "), "{err}");
}

/// Output into a closed pipe (`mini-slurm policies | head`) ends the command quietly (SIGPIPE,
/// as any Unix filter), never with a panic.
#[test]
fn a_closed_pipe_is_not_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    for args in [
        &["policies"][..],
        &["policies", "--markdown"],
        &["queue", "--all", "--json"],
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let mut child = bin()
            .args(args)
            .env("MINI_SLURM_HOME", tmp.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader goes away before anything is written
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            o.status.signal() == Some(13) || o.status.success(),
            "{args:?}: {:?} {err}",
            o.status
        );
    }
}

/// Shell completions and man pages come from the same definitions as `--help`.
#[test]
fn completions_and_man_pages() {
    for (shell, needle) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef mini-slurm"),
        ("fish", "complete -c mini-slurm"),
    ] {
        let o = run(&["completions", shell]);
        assert!(o.status.success(), "{shell}: {}", stderr(&o));
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains(needle) && text.contains("policy"), "{shell}");
    }
    assert_eq!(run(&["completions", "tcsh"]).status.code(), Some(2));
    let o = run(&["man"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains(".TH mini-slurm 1"));
    let tmp = tempfile::tempdir().unwrap();
    let o = run(&["man", "--out", tmp.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let sim = std::fs::read_to_string(tmp.path().join("mini-slurm-sim.1")).unwrap();
    assert!(sim.contains("\\-\\-policy"), "{sim}");
    assert!(tmp.path().join("mini-slurm-submit.1").exists());
    assert!(
        !tmp.path().join("mini-slurm-job-runner.1").exists(),
        "hidden commands have none"
    );
}

/// A mistyped `submit` option is refused (exit 2, with the suggestion) and nothing is stored;
/// options after the command belong to the command; `--job-name` is Slurm's name for `-J`.
#[test]
fn submit_refuses_unknown_options() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("h");
    let submit = |args: &[&str]| {
        bin()
            .arg("submit")
            .args(args)
            .env("MINI_SLURM_HOME", &home)
            .output()
            .unwrap()
    };
    let o = submit(&["--cpu", "2", "echo t"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("a similar argument exists: '--cpus'"),
        "{}",
        stderr(&o)
    );
    assert!(!home.join("jobs.db").exists(), "nothing stored");
    let o = submit(&[
        "--parsable",
        "--job-name",
        "train",
        "python3",
        "x.py",
        "--epochs",
        "10",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let q = bin()
        .args(["queue", "--json"])
        .env("MINI_SLURM_HOME", &home)
        .output()
        .unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&q.stdout).unwrap();
    assert_eq!(rows[0]["name"], "train");
    assert_eq!(
        rows[0]["argv"],
        serde_json::json!(["python3", "x.py", "--epochs", "10"])
    );
}

/// `queue` prints squeue's default columns, takes squeue's `--format` language, keeps the wide
/// table under `--long`; `submit` warns when no scheduler runs.
#[test]
fn queue_formats_like_squeue() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("h");
    let cmd = |args: &[&str]| {
        bin()
            .args(args)
            .env("MINI_SLURM_HOME", &home)
            .output()
            .unwrap()
    };
    let o = cmd(&["submit", "--time", "5", "-J", "train", "--", "sleep", "100"]);
    assert!(
        stderr(&o).contains("warning: no scheduler runs for"),
        "{}",
        stderr(&o)
    );
    cmd(&["submit", "--array", "0-1", "-J", "sweep", "echo t"]);
    let out = |o: Output| String::from_utf8_lossy(&o.stdout).into_owned();
    let q = out(cmd(&["queue"]));
    let lines: Vec<&str> = q.lines().collect();
    assert_eq!(
        lines[0],
        "             JOBID PARTITION     NAME     USER ST       TIME  NODES NODELIST(REASON)"
    );
    assert!(
        lines[1].trim_start().starts_with("1 ") && lines[1].ends_with("(Resources)"),
        "{q}"
    );
    assert!(
        lines[2].trim_start().starts_with("2_0 ") && lines[2].contains(" PD "),
        "{q}"
    );
    assert!(lines.iter().all(|l| l.len() < 100), "compact: {q}");
    let q = out(cmd(&["queue", "--noheader", "-o", "%i|%j|%T|%l|%C"]));
    assert_eq!(
        q,
        "1|train|PENDING|00:05:00|1\n2_0|sweep|PENDING|UNLIMITED|1\n2_1|sweep|PENDING|UNLIMITED|1\n"
    );
    let q = out(cmd(&["queue", "--long"]));
    assert!(
        q.starts_with("   JOBID NAME ") && q.contains("MEM(MB)"),
        "{q}"
    );
    let o = cmd(&["queue", "-o", "%z"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--format: unknown field '%z'"));
}

#[test]
fn memory_on_a_machine_without_memory_is_ignored_with_one_note() {
    let tmp = tempfile::tempdir().unwrap();
    // What `export-trace` writes for jobs submitted with --mem, simulated on a processor count.
    let trace = write(
        tmp.path(),
        "mine.csv",
        "id,submit,runtime,cpus,mem\n1,0,10,1,4G\n2,5,10,2,\n3,6,10,2,512M\n",
    );
    let out = tmp.path().join("o");
    let o = sim_ok(&out, &["--trace", &trace, "--procs", "8"]);
    let err = stderr(&o);
    assert_eq!(
        err.matches("memory requests of 2 jobs are ignored").count(),
        1,
        "{err}"
    );
    assert!(!err.contains("skipped"), "{err}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["jobs_simulated"], 3);
    // With memory on the nodes, the requests count again: 4 GB does not fit 1 GB nodes.
    let o = sim_ok(
        &tmp.path().join("o2"),
        &["--trace", &trace, "--procs", "8", "--mem-per-node", "1G"],
    );
    let err = stderr(&o);
    assert!(
        err.contains("1 cannot_run_in_partition: e.g. job 1: memory: it asks 4096 MB per node, its partition's nodes have at most 1024 MB"),
        "{err}"
    );
}

#[test]
fn a_run_that_skips_every_job_is_an_error_naming_the_resource() {
    let tmp = tempfile::tempdir().unwrap();
    let ml = root().join("traces/synthetic-ml-2k.csv.gz");
    let out = tmp.path().join("o");
    let o = run(&[
        "sim",
        "--trace",
        ml.to_str().unwrap(),
        "--procs",
        "512",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let last = err.trim_end().lines().last().unwrap_or_default();
    for n in [
        "error: ",
        "every job was skipped, nothing to simulate",
        "2000 cannot_run_in_partition",
        "e.g. job 1: GPUs: it asks 8 per node, its partition's nodes have none",
    ] {
        assert!(last.contains(n), "{n:?} not in {err:?}");
    }
    assert!(!out.exists(), "nothing written");
    // The machine the trace's SOURCES line gives runs it.
    let o = sim_ok(
        &out,
        &[
            "--trace",
            ml.to_str().unwrap(),
            "--nodes",
            "8",
            "--cpus-per-node",
            "64",
            "--gpus-per-node",
            "8",
            "--mem-per-node",
            "1TB",
        ],
    );
    assert!(!stderr(&o).contains("skipped"), "{}", stderr(&o));
}

/// `sim --out` opens its directory before a streamed run: a run that then fails leaves nothing
/// behind — not the directory it created, not a temporary file — whether the trace turns out
/// bad halfway (the stream gives up, the whole path refuses it: exit 2, file and line named) or
/// the disk fills while `jobs.csv` is written during the run (a small tmpfs: exit 1, the file
/// named).
#[test]
fn a_failed_sim_leaves_no_output_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = vec!["; MaxProcs: 8".to_string()];
    lines.extend((1..=5000).map(|i| format!("{i} {i} -1 5 1 -1 -1 1 5 -1 1 1 1 -1 1 -1 -1 -1")));
    lines.insert(4000, "4000 this is not a job".to_string());
    let trace = dir.path().join("bad.swf");
    std::fs::write(&trace, lines.join("\n") + "\n").unwrap();
    let out = dir.path().join("new/deeper");
    let o = run(&[
        "sim",
        "--trace",
        trace.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_input_error(&o, &["bad.swf", "4001"]);
    assert!(
        !dir.path().join("new").exists(),
        "new/deeper or new/ left behind"
    );

    if !crate::live_util::root_or_skip("mounting a tmpfs") {
        return;
    }
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let _unmount = crate::live_util::mount_tmpfs(&small, "1m");
    let out = small.join("kth");
    let kth = root().join("traces/KTH-SP2-1996-2.1-cln.swf.gz");
    let o = run(&[
        "sim",
        "--trace",
        kth.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(err.contains(".jobs.csv.tmp"), "{err}");
    assert!(!out.exists(), "{} left behind", out.display());
}
