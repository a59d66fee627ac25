//! Workload tools: the generator's statistics and byte stability, round trips between formats,
//! sacct dumps, transformations, and the CLI.

use mini_slurm::trace::generate::{GenParams, Model, RuntimeModel, generate};
use mini_slurm::trace::info::TraceInfo;
use mini_slurm::trace::transform::offered_load;
use mini_slurm::trace::write::{write_csv, write_swf};
use mini_slurm::trace::{Workload, read_trace};
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_mini-slurm");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn csv_bytes(w: &Workload) -> Vec<u8> {
    let mut v = Vec::new();
    write_csv(&mut v, w).unwrap();
    v
}

#[test]
fn generator_is_byte_stable() {
    let p = GenParams::new(Model::Hpc, 60, 128, 0.8, 7);
    let a = csv_bytes(&generate(&p).0);
    assert_eq!(a, csv_bytes(&generate(&p).0), "same seed, same bytes");
    let other = GenParams {
        seed: 8,
        ..p.clone()
    };
    assert_ne!(a, csv_bytes(&generate(&other).0));
    // Against the committed file: the stream (ChaCha8) and the model have not changed.
    let golden = std::fs::read(root().join("tests/data/gen-hpc-60-seed7.csv")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&a),
        String::from_utf8_lossy(&golden)
    );
}

/// Median and σ (from the interquartile range) of a sample.
fn median_sigma(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p) as usize];
    (q(0.5), (q(0.75) - q(0.25)) / 1.349)
}

#[test]
fn hpc_model_realizes_its_parameters() {
    let _heavy = crate::util::heavy();
    let p = GenParams::new(Model::Hpc, 50_000, 512, 0.8, 11);
    let (w, t) = generate(&p);
    assert_eq!(w.jobs.len(), 50_000);
    // Offered load within 3 % of the target.
    let load = offered_load(&w.jobs, 512).unwrap();
    assert!((load - 0.8).abs() < 0.024, "load {load}");
    // Mean inter-arrival within 3 % of 1 / λ.
    let span = (w.jobs.last().unwrap().submit - w.jobs[0].submit).as_secs_f64();
    let mean_gap = span / (w.jobs.len() - 1) as f64;
    let want = 1.0 / t.rate_per_s;
    assert!((mean_gap / want - 1.0).abs() < 0.03, "{mean_gap} vs {want}");
    // 24 % serial jobs (±1 point); sizes within the machine.
    let info = TraceInfo::compute(&w, None);
    assert!(
        (info.serial_share - 0.24).abs() < 0.01,
        "{}",
        info.serial_share
    );
    assert!(
        info.power_of_two_share > 0.75,
        "{}",
        info.power_of_two_share
    );
    assert!(w.jobs.iter().all(|j| j.procs >= 1 && j.procs <= 512));
    // ln(run) − (ln 900 + 0.3 log2 size + user shift) ~ N(0, 1.6), clamped at 1 s and 36 h.
    let users: Vec<String> = (1..=p.users).map(|k| format!("u{k}")).collect();
    let resid: Vec<f64> = w
        .jobs
        .iter()
        .map(|j| {
            let u = users.iter().position(|n| n == w.names.get(j.user)).unwrap();
            (j.runtime.as_secs_f64()).ln()
                - (900f64.ln() + 0.3 * (j.procs as f64).log2() + t.user_run_shift[u])
        })
        .collect();
    let (median, sigma) = median_sigma(resid);
    assert!(median.abs() < 0.04, "median {median}");
    assert!((sigma / 1.6 - 1.0).abs() < 0.04, "σ {sigma}");
    // Estimates: never below the run time, 10 % exact-ish (factor 1), mean accuracy ~0.37.
    assert!(w.jobs.iter().all(|j| j.requested.unwrap() >= j.runtime));
    assert!(
        (info.estimate_accuracy_mean - 0.37).abs() < 0.05,
        "{}",
        info.estimate_accuracy_mean
    );
    // The daily cycle: more arrivals between 08:00 and 20:00 than outside.
    let day = w
        .jobs
        .iter()
        .filter(|j| (8.0..20.0).contains(&((j.submit.as_secs_f64() / 3600.0) % 24.0)))
        .count();
    let share = day as f64 / w.jobs.len() as f64;
    // cos peak at 14:00 with amplitude 0.5: 1/2 + 0.5 × sin(π/2)·(2/π)... ≈ 0.66.
    assert!((share - 0.659).abs() < 0.02, "{share}");
}

#[test]
fn hypergamma_and_other_models() {
    let _heavy = crate::util::heavy();
    let mut p = GenParams::new(Model::Hpc, 20_000, 256, 0.7, 3);
    p.runtime = RuntimeModel::HyperGamma;
    let (w, _) = generate(&p);
    let load = offered_load(&w.jobs, 256).unwrap();
    assert!((load - 0.7).abs() < 0.035, "{load}");
    // ml: GPU jobs on whole-node shapes, sweeps submitted together, load on target.
    let ml = GenParams::new(Model::Ml, 20_000, 1024, 0.7, 5);
    let (w, _) = generate(&ml);
    assert!(
        w.jobs
            .iter()
            .all(|j| j.gpus >= 1 && j.gpus <= 8 && j.nodes.is_some())
    );
    assert!(w.jobs.iter().all(
        |j| j.procs == 8 * i64::from(j.gpus) * i64::from(j.nodes.unwrap())
            || j.procs == 64 * i64::from(j.nodes.unwrap())
    ));
    let mut same_instant = 0;
    for p in w.jobs.windows(2) {
        same_instant += usize::from(p[0].submit == p[1].submit);
    }
    assert!(same_instant > 5_000, "sweeps: {same_instant}");
    let load = offered_load(&w.jobs, 1024).unwrap();
    assert!((load - 0.7).abs() < 0.05, "{load}");
    // burst: inter-arrival times far more variable than Poisson (CV 1).
    let b = GenParams::new(Model::Burst, 20_000, 256, 0.6, 9);
    let (w, _) = generate(&b);
    let gaps: Vec<f64> = w
        .jobs
        .windows(2)
        .map(|p| (p[1].submit - p[0].submit).as_secs_f64())
        .collect();
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
    assert!(var.sqrt() / mean > 1.5, "CV {}", var.sqrt() / mean);
    let load = offered_load(&w.jobs, 256).unwrap();
    assert!((load - 0.6).abs() < 0.06, "{load}");
}

/// A job's id, submit, run time, CPUs, requested time (ms), user, group, queue. (SWF partition
/// numbers are not used: SWF jobs run in the default partition.)
type SimFields = (u64, i64, i64, i64, Option<i64>, String, String, String);

/// The fields the simulator uses, with names resolved.
fn sim_fields(w: &Workload) -> Vec<SimFields> {
    w.jobs
        .iter()
        .map(|j| {
            (
                j.id.0,
                j.submit.0,
                j.runtime.0,
                j.procs,
                j.requested.map(|r| r.0),
                w.names.get(j.user).to_string(),
                w.names.get(j.group).to_string(),
                w.names.get(j.queue).to_string(),
            )
        })
        .collect()
}

#[test]
fn swf_to_csv_to_swf_keeps_every_field_the_simulator_uses() {
    let _heavy = crate::util::heavy();
    let dir = tempfile::tempdir().unwrap();
    for trace in [
        "KTH-SP2-1996-2.1-cln.swf.gz",
        "NASA-iPSC-1993-3.1-cln.swf.gz",
    ] {
        let orig = read_trace(&root().join("traces").join(trace), false).unwrap();
        let csv = dir.path().join("t.csv");
        let mut f = std::fs::File::create(&csv).unwrap();
        write_csv(&mut f, &orig).unwrap();
        let back = read_trace(&csv, false).unwrap();
        assert_eq!(sim_fields(&back), sim_fields(&orig), "{trace} → CSV");
        assert_eq!(back.declared_procs, orig.declared_procs);
        let swf = dir.path().join("t.swf");
        let mut f = std::fs::File::create(&swf).unwrap();
        write_swf(&mut f, &back).unwrap();
        let again = read_trace(&swf, false).unwrap();
        assert_eq!(sim_fields(&again), sim_fields(&orig), "{trace} → CSV → SWF");
        assert_eq!(again.declared_procs, orig.declared_procs);
    }
}

#[test]
fn sacct_dumps_parse() {
    let w = read_trace(&root().join("tests/data/sacct-sample.sacct"), false).unwrap();
    let t0 = 1_772_352_000i64; // 2026-03-01T08:00:00
    let got: Vec<_> = w
        .jobs
        .iter()
        .map(|j| {
            (
                j.id.0,
                j.submit.0 / 1000 - t0,
                j.runtime.0 / 1000,
                j.procs,
                j.requested.map(|r| r.0 / 1000),
                j.nodes,
                j.mem_mb,
                j.gpus,
                w.names.get(j.user),
                w.names.get(j.group),
                w.names.get(j.qos),
                j.priority,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                1001,
                0,
                7200,
                8,
                Some(14400),
                None,
                Some(32768),
                2,
                "alice",
                "ml",
                "normal",
                4294
            ),
            // 1-01:00:00 elapsed, 2-day limit, 4000 MB per CPU × 32 CPUs per node.
            (
                1002,
                1800,
                90000,
                64,
                Some(172800),
                Some(2),
                Some(128000),
                0,
                "bob",
                "physics",
                "normal",
                1200
            ),
            // A 10:00 limit is ten minutes; 2Gn is per node.
            (
                1003,
                3600,
                2,
                1,
                Some(600),
                None,
                Some(2048),
                0,
                "bob",
                "physics",
                "normal",
                1200
            ),
            // "CANCELLED by 1001", MM:SS elapsed, UNLIMITED, memory from AllocTRES.
            (
                1004,
                4200,
                1800,
                16,
                None,
                None,
                Some(65536),
                0,
                "carol",
                "ml",
                "high",
                9000
            ),
            // 1005 never started; JobIDRaw of an array task; Partition_Limit.
            (
                1006,
                7200,
                1200,
                2,
                None,
                None,
                Some(8192),
                1,
                "alice",
                "ml",
                "normal",
                4294
            ),
            (
                1007,
                7500,
                3600,
                32,
                Some(86400),
                None,
                None,
                0,
                "dave",
                "physics",
                "low",
                10
            ),
            // 1008 still runs.
            (
                1009,
                10800,
                600,
                4,
                Some(10800),
                None,
                Some(16384),
                1,
                "erin",
                "ml",
                "low",
                10
            ),
        ]
    );
    assert_eq!(
        w.warnings,
        [format!(
            "{}: left out 1 jobs that never started and 1 still running",
            root().join("tests/data/sacct-sample.sacct").display()
        )]
    );
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn assert_exit2(o: &std::process::Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in {err}");
    }
}

#[test]
fn malformed_sacct_lines_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let header = "JobIDRaw|Submit|Start|Elapsed|State|NCPUS\n";
    for (body, needles) in [
        (
            "1|2026-03-01T08:00:00|2026-03-01T08:00:01|00:01:00|EXPLODED|1\n",
            vec![":2:", "column 'State'", "EXPLODED"],
        ),
        (
            "1|2026-03-01T08:00:00|2026-03-01T08:00:01|00:01:00|COMPLETED|1\n2|yesterday|2026-03-01T08:00:01|00:01:00|COMPLETED|1\n",
            vec![":3:", "column 'Submit'", "yesterday"],
        ),
        (
            "1|2026-03-01T08:00:00|2026-03-01T08:00:01|1:xx|COMPLETED|1\n",
            vec![":2:", "column 'Elapsed'"],
        ),
        (
            "1|2026-03-01T08:00:00|2026-03-01T08:00:01|00:01:00|COMPLETED\n",
            vec![":2:", "expected 6 |-separated fields"],
        ),
    ] {
        let f = dir.path().join("bad.sacct");
        std::fs::write(&f, format!("{header}{body}")).unwrap();
        let o = run(&["trace", "info", f.to_str().unwrap()]);
        assert_exit2(&o, &needles);
    }
    let f = dir.path().join("nohdr.sacct");
    std::fs::write(&f, "JobIDRaw|Submit|Start|State\n").unwrap();
    assert_exit2(&run(&["trace", "info", f.to_str().unwrap()]), &["Elapsed"]);
}

#[test]
fn trace_commands_generate_convert_and_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    // gen: the seeds' command shape, gzip by name; the same bytes twice.
    for out in ["a.csv.gz", "b.csv.gz"] {
        let o = run(&[
            "trace",
            "gen",
            "--model",
            "hpc",
            "--jobs",
            "2000",
            "--procs",
            "128",
            "--load",
            "0.8",
            "--seed",
            "7",
            "-o",
            &p(out),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(
        std::fs::read(p("a.csv.gz")).unwrap(),
        std::fs::read(p("b.csv.gz")).unwrap()
    );
    // It replays without --procs (the CSV says its machine size).
    let o = run(&["sim", "--trace", &p("a.csv.gz"), "--policy", "easy", "-q"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // info: text and JSON.
    let o = run(&["trace", "info", &p("a.csv.gz")]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("jobs              2000 ") && text.contains("machine           128 CPUs"),
        "{text}"
    );
    let o = run(&[
        "trace",
        "info",
        &p("a.csv.gz"),
        "--json",
        "--chart",
        &p("charts"),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let load = v["offered_load"].as_f64().unwrap();
    assert!((load - 0.8).abs() < 0.08, "{load}");
    for svg in ["sizes.svg", "runtimes.svg"] {
        let s = std::fs::read_to_string(dir.path().join("charts").join(svg)).unwrap();
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
    }
    // convert: to SWF with a window, a user filter, load scaling and shaking.
    let o = run(&[
        "trace",
        "convert",
        &p("a.csv.gz"),
        &p("a.swf"),
        "--scale-load",
        "2",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let a = read_trace(Path::new(&p("a.csv.gz")), false).unwrap();
    let s = read_trace(Path::new(&p("a.swf")), false).unwrap();
    let (la, ls) = (
        offered_load(&a.jobs, 128).unwrap(),
        offered_load(&s.jobs, 128).unwrap(),
    );
    assert!((ls / la - 2.0).abs() < 0.01, "{la} {ls}");
    let o = run(&[
        "trace",
        "convert",
        &p("a.csv.gz"),
        &p("u1.csv"),
        "--users",
        "u1",
        "--window",
        "0,2000000",
    ]);
    assert!(o.status.success());
    let u = read_trace(Path::new(&p("u1.csv")), false).unwrap();
    assert!(!u.jobs.is_empty() && u.jobs.len() < a.jobs.len());
    assert!(
        u.jobs
            .iter()
            .all(|j| u.names.get(j.user) == "u1" && j.submit.0 < 2_000_000_000)
    );
    let o = run(&[
        "trace",
        "convert",
        &p("a.csv.gz"),
        &p("t.csv"),
        "--target-load",
        "0.5",
    ]);
    assert!(o.status.success());
    let t = read_trace(Path::new(&p("t.csv")), false).unwrap();
    assert!((offered_load(&t.jobs, 128).unwrap() - 0.5).abs() < 0.001);
    // The sacct fixture converts to CSV, keeping memory and GPUs.
    let o = run(&[
        "trace",
        "convert",
        &root()
            .join("tests/data/sacct-sample.sacct")
            .display()
            .to_string(),
        &p("s.csv"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = std::fs::read_to_string(p("s.csv")).unwrap();
    assert!(
        s.starts_with("id,submit,runtime,cpus,walltime,user,group,priority,mem,gpus,nodes,qos\n"),
        "{s}"
    );
    // Bad usage: exit 2, one line naming the flag.
    assert_exit2(
        &run(&["trace", "gen", "--load", "0", "-o", &p("x.csv")]),
        &["--load"],
    );
    assert_exit2(
        &run(&[
            "trace",
            "gen",
            "--model",
            "ml",
            "--procs",
            "100",
            "-o",
            &p("x.csv"),
        ]),
        &["--procs 100"],
    );
    assert_exit2(
        &run(&["trace", "gen", "-o", &p("x.txt")]),
        &["x.txt", ".csv or .swf"],
    );
    assert_exit2(
        &run(&[
            "trace",
            "convert",
            &p("a.csv.gz"),
            &p("y.csv"),
            "--window",
            "5,1",
        ]),
        &["--window"],
    );
    assert!(!Path::new(&p("x.csv")).exists() && !Path::new(&p("y.csv")).exists());
}

#[test]
fn shipped_traces_are_reproducible() {
    // The commands in traces/SOURCES.md.
    let dir = tempfile::tempdir().unwrap();
    for (file, args) in [
        (
            "synthetic-hpc-5k.csv.gz",
            "--model hpc --jobs 5000 --procs 256 --load 0.85 --seed 1",
        ),
        (
            "synthetic-ml-2k.csv.gz",
            "--model ml --jobs 2000 --procs 512 --cpus-per-node 64 --gpus-per-node 8 --load 0.7 --seed 1",
        ),
        (
            "synthetic-burst-5k.swf.gz",
            "--model burst --jobs 5000 --procs 256 --load 0.6 --seed 1",
        ),
    ] {
        let out = dir.path().join(file);
        let mut a: Vec<&str> = vec!["trace", "gen"];
        a.extend(args.split_whitespace());
        a.extend(["-o", out.to_str().unwrap()]);
        let o = run(&a);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let sources = std::fs::read_to_string(root().join("traces/SOURCES.md")).unwrap();
        assert!(
            sources.contains(&format!("mini-slurm trace gen {args} -o traces/{file}")),
            "{file}"
        );
        assert!(
            std::fs::read(&out).unwrap()
                == std::fs::read(root().join("traces").join(file)).unwrap(),
            "{file} differs from what its command makes"
        );
    }
}

#[test]
fn converted_traces_replay_and_odd_inputs_are_refused() {
    let _heavy = crate::util::heavy();
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    // An SWF converted to CSV replays with every job (its partition numbers are not written as
    // partition names the cluster would lack).
    let kth = root()
        .join("traces/KTH-SP2-1996-2.1-cln.swf.gz")
        .display()
        .to_string();
    assert!(
        run(&["trace", "convert", &kth, &p("kth.csv")])
            .status
            .success()
    );
    for trace in [kth.as_str(), &p("kth.csv")] {
        let o = run(&[
            "sim",
            "--trace",
            trace,
            "--policy",
            "easy",
            "--no-timing",
            "--out",
            &p("o"),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let s: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("o/summary.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(s["jobs_simulated"], 28475, "{trace}");
    }
    // A huge CPU count: info answers (no endless size-class loop).
    std::fs::write(
        p("big.csv"),
        "id,submit,runtime,cpus\n1,0,10,5000000000000000000\n2,5,10,1\n",
    )
    .unwrap();
    let o = run(&["trace", "info", &p("big.csv"), "--procs", "4"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // No work to scale; absurd loads, user counts and scale factors.
    std::fs::write(
        p("zero.csv"),
        "id,submit,runtime,cpus\n1,0,0,1\n2,100,0,1\n",
    )
    .unwrap();
    assert_exit2(
        &run(&[
            "trace",
            "convert",
            &p("zero.csv"),
            &p("z2.csv"),
            "--procs",
            "4",
            "--target-load",
            "0.5",
        ]),
        &["--target-load"],
    );
    assert_exit2(
        &run(&["trace", "gen", "--load", "1e-320", "-o", &p("x.csv")]),
        &["--load"],
    );
    assert_exit2(
        &run(&["trace", "gen", "--users", "4000000000", "-o", &p("x.csv")]),
        &["--users"],
    );
    assert_exit2(
        &run(&[
            "trace",
            "convert",
            &kth,
            &p("y.csv"),
            "--scale-load",
            "1e-300",
        ]),
        &["--scale-load"],
    );
    // Impossible dates, an End before Start and a negative CPU count in an sacct dump.
    for row in [
        "1|2026-02-31T08:00:00|2026-03-01T08:00:01|2026-03-01T09:00:00|COMPLETED|1",
        "1|2026-03-01T08:00:00|2026-03-01T08:00:01|2026-03-01T07:00:00|COMPLETED|1",
        "1|2026-03-01T08:00:00|2026-03-01T08:00:01|2026-03-01T09:00:00|COMPLETED|-4",
    ] {
        std::fs::write(
            p("d.sacct"),
            format!("JobIDRaw|Submit|Start|End|State|NCPUS\n{row}\n"),
        )
        .unwrap();
        assert_exit2(&run(&["trace", "info", &p("d.sacct")]), &[":2:"]);
    }
    let leftovers = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .count();
    assert_eq!(leftovers, 0);
}
