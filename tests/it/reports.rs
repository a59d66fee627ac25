//! Comparison reports and experiments: the data behind each chart (golden, computed by hand),
//! well-formed SVG, a self-contained page, determinism, and experiment reruns.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_mini-slurm");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Tags balance: every opened element is closed in order (a small XML well-formedness check).
fn well_formed(xml: &str) -> Result<usize, String> {
    let mut stack: Vec<String> = Vec::new();
    let mut elements = 0;
    let mut rest = xml;
    while let Some(i) = rest.find('<') {
        let Some(j) = rest[i..].find('>') else {
            return Err("unclosed '<'".into());
        };
        let tag = &rest[i + 1..i + j];
        rest = &rest[i + j + 1..];
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '/')
            .collect();
        if tag.starts_with('/') {
            match stack.pop() {
                Some(open) if open == name => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
        } else {
            elements += 1;
            if !tag.ends_with('/') {
                stack.push(name);
            }
        }
    }
    if stack.is_empty() {
        Ok(elements)
    } else {
        Err(format!("unclosed {stack:?}"))
    }
}

/// Four CPUs: job 1 takes three for 100 s; job 2 (two CPUs) waits for it; job 3 (one CPU,
/// 10 s) arrives at 20 s. FCFS keeps 3 behind 2 (both start at 100 s); EASY backfills 3 at
/// 20 s, since it ends (30 s) before 2's reservation (100 s).
const TINY: &str = "id,submit,runtime,cpus,walltime,user\n\
                    1,0,100,3,100,ann\n\
                    2,10,50,2,50,bob\n\
                    3,20,10,1,10,bob\n";

#[test]
fn compare_report_data_is_what_the_schedules_give() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("tiny.csv");
    std::fs::write(&trace, TINY).unwrap();
    let out = dir.path().join("r");
    let o = run(&[
        "compare",
        "--trace",
        trace.to_str().unwrap(),
        "--procs",
        "4",
        "--policies",
        "fcfs,easy",
        "--gantt-hours",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    ok(&o);
    let data = |f: &str| std::fs::read_to_string(out.join("data").join(f)).unwrap();
    // Bounded slowdowns: FCFS 1 (job 1), 2.8 (job 2: 90 + 50 over 50), 9 (job 3: 80 + 10 over
    // 10); EASY the same but job 3 did not wait: 1.
    assert_eq!(
        data("bsld_by_size.csv"),
        "policy,class,mean_bounded_slowdown\n\
         fcfs,1,9.000000\nfcfs,2,2.800000\nfcfs,3-4,1.000000\n\
         easy,1,1.000000\neasy,2,2.800000\neasy,3-4,1.000000\n"
    );
    assert_eq!(
        data("bsld_by_runtime.csv")
            .lines()
            .filter(|l| l.contains("< 10 min"))
            .collect::<Vec<_>>(),
        ["fcfs,< 10 min,4.266667", "easy,< 10 min,1.600000"]
    );
    // Wait CDF: FCFS waits 0, 80, 90 s → log10(w + 1) = 0, 1.908485, 1.959041.
    assert!(data("wait_cdf.csv").starts_with(
        "policy,log10_wait_plus_1_s,fraction\n\
         fcfs,0.000000,0.333333\nfcfs,1.908485,0.666667\nfcfs,1.959041,1.000000\n\
         easy,0.000000,0.666667\neasy,1.959041,1.000000\n"
    ));
    // Gantt: EASY puts job 3 on the fourth CPU from 20 to 30 s, backfilled; job 2 on the first
    // two from 100 s.
    assert_eq!(
        data("gantt.csv"),
        "policy,job,start_s,end_s,proc_lo,proc_hi,user,backfilled\n\
         fcfs,1,0.000,100.000,0,3,1,false\n\
         fcfs,2,100.000,150.000,0,2,2,false\n\
         fcfs,3,100.000,110.000,2,3,2,false\n\
         easy,1,0.000,100.000,0,3,1,false\n\
         easy,3,20.000,30.000,3,4,2,true\n\
         easy,2,100.000,150.000,0,2,2,false\n"
    );
    // Utilization over time: the busy CPU-seconds add up to the work (300 + 100 + 10).
    let over = data("over_time.csv");
    let (mut fcfs_busy, mut bins) = (0.0, 0);
    for l in over.lines().skip(1).filter(|l| l.starts_with("fcfs,")) {
        let f: Vec<f64> = l.split(',').skip(1).map(|v| v.parse().unwrap()).collect();
        fcfs_busy += f[1];
        bins += 1;
    }
    assert_eq!(bins, 200);
    // Each bin is 150 s / 200 long, utilization is busy / (4 CPUs × bin).
    assert!(
        (fcfs_busy * 4.0 * 150.0 / 200.0 - 410.0).abs() < 1e-3,
        "{fcfs_busy}"
    );
    // summary.md: policies as columns, best marked.
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("| metric | `fcfs` | `easy` |"), "{md}");
    assert!(
        md.contains("| mean bounded slowdown | 4.27 | **1.60** |"),
        "{md}"
    );
    assert!(
        md.contains("- trace: `") && md.contains("- version: `mini-slurm "),
        "{md}"
    );
    // Every chart is well-formed, non-empty SVG, and inlined in a self-contained page.
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    let mut charts = 0;
    for e in std::fs::read_dir(out.join("charts")).unwrap() {
        let p = e.unwrap().path();
        let svg = std::fs::read_to_string(&p).unwrap();
        let n = well_formed(&svg).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(
            n > 20 && svg.contains("<text"),
            "{}: {n} elements",
            p.display()
        );
        assert!(html.contains(&svg), "{} inline", p.display());
        charts += 1;
    }
    assert_eq!(
        charts, 8,
        "wait CDF, 2 bsld classes, utilization, queue, users, 2 Gantt"
    );
    well_formed(&html).unwrap();
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http") && !html.contains("<script")
    );
    // Each run's outputs are there.
    for p in ["fcfs", "easy"] {
        assert!(out.join("runs").join(p).join("jobs.csv").exists());
    }
    // PNG on request: every chart also as a PNG image of the same size class.
    let png = dir.path().join("png");
    ok(&run(&[
        "compare",
        "--trace",
        trace.to_str().unwrap(),
        "--procs",
        "4",
        "--policies",
        "fcfs,easy",
        "--png",
        "-q",
        "--out",
        png.to_str().unwrap(),
    ]));
    let mut pngs = 0;
    for e in std::fs::read_dir(png.join("charts")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "png") {
            let b = std::fs::read(&p).unwrap();
            assert!(
                b.starts_with(b"\x89PNG\r\n\x1a\n") && b.len() > 5_000,
                "{}",
                p.display()
            );
            assert!(p.with_extension("svg").exists());
            pngs += 1;
        }
    }
    assert_eq!(pngs, 8);
}

#[test]
fn compare_is_deterministic_and_checks_its_input() {
    let _heavy = crate::util::heavy();
    let dir = tempfile::tempdir().unwrap();
    let lublin = Path::new(env!("CARGO_MANIFEST_DIR")).join("traces/synthetic-hpc-5k.csv.gz");
    let mut files: Vec<Vec<(String, Vec<u8>)>> = Vec::new();
    for name in ["a", "b"] {
        let out = dir.path().join(name);
        ok(&run(&[
            "compare",
            "--trace",
            lublin.to_str().unwrap(),
            "--policies",
            "fcfs,easy[order=priority]",
            "--out",
            out.to_str().unwrap(),
            "-q",
        ]));
        let mut v = Vec::new();
        for sub in ["", "charts", "data"] {
            for e in std::fs::read_dir(out.join(sub)).unwrap() {
                let p = e.unwrap().path();
                if p.is_file() {
                    v.push((
                        format!("{sub}/{}", p.file_name().unwrap().to_string_lossy()),
                        std::fs::read(&p).unwrap(),
                    ));
                }
            }
        }
        v.sort();
        files.push(v);
    }
    assert!(files[0].len() >= 15);
    assert!(files[0] == files[1], "two runs, same bytes");
    // Bad input: exit 2, one line.
    for (args, needle) in [
        (vec!["--policies", "fcfs,sjf"], "unknown policy 'sjf'"),
        (vec!["--policies", "easy", "--color", "pink"], "--color"),
    ] {
        let mut a = vec!["compare", "--trace", lublin.to_str().unwrap(), "--out"];
        let out = dir.path().join("bad");
        a.push(out.to_str().unwrap());
        a.extend(args);
        let o = run(&a);
        assert_eq!(o.status.code(), Some(2));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(needle) && err.trim_end().lines().count() == 1,
            "{err}"
        );
        assert!(!out.exists());
    }
}

#[test]
fn experiments_are_deterministic_and_rerun_only_what_is_missing() {
    let _heavy = crate::util::heavy();
    let dir = tempfile::tempdir().unwrap();
    let lublin = Path::new(env!("CARGO_MANIFEST_DIR")).join("traces/synthetic-hpc-5k.csv.gz");
    let toml = dir.path().join("e.toml");
    std::fs::write(
        &toml,
        format!(
            "title = \"t\"\ntraces = [\"{}\"]\npolicies = [\"fcfs\", \"easy\"]\nseeds = [1, 2]\n\
             [parameters]\nload = [0.5, 0.9]\nshake = [30]\n",
            lublin.display()
        ),
    )
    .unwrap();
    let out = dir.path().join("x");
    let go = || {
        run(&[
            "experiment",
            toml.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let o = go();
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("8 runs (8 run now, 0 found done)"));
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 9, "{csv}");
    assert!(lines[0].starts_with("run,trace,policy,load,shake_s,seed,jobs,mean_wait_s"));
    // Load 0.9 gives longer waits than 0.5 under FCFS, for each seed.
    let wait = |policy: &str, load: &str, seed: &str| -> f64 {
        let l = lines
            .iter()
            .find(|l| {
                let f: Vec<&str> = l.split(',').collect();
                f[2] == policy && f[3] == load && f[5] == seed
            })
            .unwrap();
        l.split(',').nth(7).unwrap().parse().unwrap()
    };
    for seed in ["1", "2"] {
        assert!(wait("fcfs", "0.9", seed) > wait("fcfs", "0.5", seed));
        assert!(wait("easy", "0.9", seed) < wait("fcfs", "0.9", seed));
    }
    // Shaking with different seeds gives different runs.
    assert_ne!(wait("fcfs", "0.9", "1"), wait("fcfs", "0.9", "2"));
    for f in [
        "bsld_vs_load.svg",
        "wait_vs_load.svg",
        "utilization_vs_load.svg",
    ] {
        let svg = std::fs::read_to_string(out.join("charts").join(f)).unwrap();
        well_formed(&svg).unwrap();
        assert_eq!(
            svg.matches("<circle").count(),
            4,
            "{f}: 2 policies × 2 loads"
        );
    }
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    // A rerun runs nothing and writes the same bytes; a removed run is run again.
    let o = go();
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("8 runs (0 run now, 8 found done)"));
    assert_eq!(
        std::fs::read_to_string(out.join("results.csv")).unwrap(),
        csv
    );
    assert_eq!(
        std::fs::read_to_string(out.join("index.html")).unwrap(),
        html
    );
    let first = lines[1].split(',').next().unwrap();
    std::fs::remove_dir_all(out.join("runs").join(first)).unwrap();
    let o = go();
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("8 runs (1 run now, 7 found done)"));
    assert_eq!(
        std::fs::read_to_string(out.join("results.csv")).unwrap(),
        csv
    );
    // A fresh directory gives the same CSV bytes.
    let out2 = dir.path().join("y");
    ok(&run(&[
        "experiment",
        toml.to_str().unwrap(),
        "--out",
        out2.to_str().unwrap(),
        "-q",
    ]));
    assert_eq!(
        std::fs::read_to_string(out2.join("results.csv")).unwrap(),
        csv
    );
    // Errors name the file.
    std::fs::write(
        &toml,
        "traces = [\"x\"]\npolicies = [\"easy\"]\nbogus = 1\n",
    )
    .unwrap();
    let o = go();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("e.toml"));
}

#[test]
fn runs_never_share_a_name_and_stale_runs_are_redone() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("tiny.csv");
    std::fs::write(&trace, TINY).unwrap();
    let t = trace.to_str().unwrap();
    // The same policy twice is refused; two specs with one slug get two directories.
    let out = dir.path().join("c");
    let o = run(&[
        "compare",
        "--trace",
        t,
        "--procs",
        "4",
        "--policies",
        "easy,easy[]",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("given twice"));
    ok(&run(&[
        "compare",
        "--trace",
        t,
        "--procs",
        "4",
        "-q",
        "--out",
        out.to_str().unwrap(),
        "--policies",
        "easy[order=multifactor,max_age=1.5],easy[order=multifactor,max_age=1:5]",
    ]));
    for d in [
        "easy_order_multifactor_max_age_1_5",
        "easy_order_multifactor_max_age_1_5-2",
    ] {
        assert!(out.join("runs").join(d).join("jobs.csv").exists(), "{d}");
    }
    // An empty trace: exit 2 before anything is written.
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "id,submit,runtime,cpus\n").unwrap();
    let e = dir.path().join("e");
    let o = run(&[
        "compare",
        "--trace",
        empty.to_str().unwrap(),
        "--procs",
        "4",
        "--out",
        e.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!e.exists());
    // An experiment rerun with other options runs again instead of reusing old outputs.
    let toml = dir.path().join("x.toml");
    let out = dir.path().join("x");
    let go = |procs: u32| {
        std::fs::write(
            &toml,
            format!("traces = [\"{t}\"]\npolicies = [\"fcfs\"]\n[options]\nprocs = {procs}\n"),
        )
        .unwrap();
        run(&[
            "experiment",
            toml.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let first = go(4);
    ok(&first);
    assert!(String::from_utf8_lossy(&first.stdout).starts_with("1 runs (1 run now"));
    let again = go(4);
    assert!(String::from_utf8_lossy(&again.stdout).starts_with("1 runs (0 run now"));
    let other = go(8);
    assert!(String::from_utf8_lossy(&other.stdout).starts_with("1 runs (1 run now"));
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let wait: f64 = csv
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .nth(5)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(wait, 0.0, "on 8 CPUs nothing waits: {csv}");
    // Duplicate values make duplicate runs: refused.
    for extra in ["seeds = [1, 1]\n", "[parameters]\nload = [0.5, 0.50]\n"] {
        std::fs::write(
            &toml,
            format!("traces = [\"{t}\"]\npolicies = [\"fcfs\"]\n{extra}"),
        )
        .unwrap();
        let o = run(&[
            "experiment",
            toml.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(2), "{extra}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("x.toml"),
            "{extra}"
        );
    }
}

#[test]
fn the_shipped_ml_report_is_what_its_command_makes() {
    // The command in reports/make.sh, run from the repository root; every page, chart and data
    // file must equal the committed one (a stale report fails here).
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let make = std::fs::read_to_string(root.join("reports/make.sh")).unwrap();
    let args = [
        "--trace",
        "traces/synthetic-ml-2k.csv.gz",
        "--nodes",
        "8",
        "--cpus-per-node",
        "64",
        "--gpus-per-node",
        "8",
        "--mem-per-node",
        "1TB",
        "--policies",
        "fcfs,easy,easy[order=multifactor],conservative",
        "--title",
        "Generated ML workload (GPU jobs, sweeps) on 8 nodes",
    ];
    assert!(make.contains("--trace traces/synthetic-ml-2k.csv.gz --nodes 8 --cpus-per-node 64 --gpus-per-node 8 \\\n  --mem-per-node 1TB --policies \"fcfs,easy,easy[order=multifactor],conservative\""));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ml");
    let mut a = vec!["compare", "-q", "--out", out.to_str().unwrap()];
    a.extend(args);
    let o = Command::new(BIN)
        .args(&a)
        .current_dir(root)
        .output()
        .unwrap();
    ok(&o);
    let shipped = root.join("reports/ml");
    for sub in ["", "charts", "data"] {
        for e in std::fs::read_dir(out.join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                let name = p.strip_prefix(&out).unwrap();
                assert!(
                    std::fs::read(&p).unwrap()
                        == std::fs::read(shipped.join(name)).unwrap_or_default(),
                    "reports/ml/{} is stale: run sh reports/make.sh",
                    name.display()
                );
            }
        }
    }
}
