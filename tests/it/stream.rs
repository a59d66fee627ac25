//! A trace streamed into its simulation (`sim::stream`) gives the outputs and notices of the
//! same run prepared whole — also when `jobs.csv` is written while it runs; a trace it cannot
//! stream makes it give up, leaving the run to the whole-workload path.

use mini_slurm::driver::NoObserver;
use mini_slurm::sim::output::{OutDir, write_run_with};
use mini_slurm::sim::{Notice, Setup};
use std::path::Path;

const KTH: &str = "traces/KTH-SP2-1996-2.1-cln.swf.gz";

/// `jobs.csv`, `summary.json` and the notices of `setup` under `policy`, streamed (`None` if
/// it gave up) and prepared whole.
type Outputs = (Vec<u8>, String, Vec<Notice>);

/// `jobs.csv` and `summary.json` of `setup` under `policy`, streamed with `jobs.csv` written
/// while it runs, and how many rows were written by then; `None` if it gave up (then the
/// output directory, created here, is gone).
fn written_while_running(
    setup: &Setup,
    policy: &str,
    out: &Path,
) -> Option<(Vec<u8>, String, usize)> {
    let dir = OutDir::create(out).unwrap();
    let jobs_csv = dir.jobs_csv().unwrap();
    let Some(s) = setup
        .simulate_streamed_to(policy, &mut NoObserver, Some(jobs_csv))
        .unwrap()
    else {
        drop(dir);
        assert!(!out.exists(), "{}: left behind", out.display());
        return None;
    };
    let rows = s.rows.as_ref().map_or(0, |r| r.taken().0);
    let summary = dir
        .write_run(&s.prepared, &s.result, s.rows, || {
            s.prepared.summary(&s.canonical, &s.result)
        })
        .unwrap();
    Some((read(&out.join("jobs.csv")), summary.to_json(), rows))
}

fn both(setup: &Setup, policy: &str, dir: &Path) -> (Option<Outputs>, Outputs) {
    let streamed = setup
        .simulate_streamed(policy, &mut NoObserver)
        .unwrap()
        .map(|s| {
            let out = dir.join("streamed");
            let summary = write_run_with(&out, &s.prepared, &s.result, || {
                s.prepared.summary(&s.canonical, &s.result)
            })
            .unwrap();
            (read(&out.join("jobs.csv")), summary.to_json(), s.notices)
        });
    let mut notices = Vec::new();
    let p = setup.prepare(&mut |n| notices.push(n)).unwrap();
    let run = p.run(policy).unwrap();
    let out = dir.join("whole");
    write_run_with(&out, &p, &run.result, || run.summary.clone()).unwrap();
    let whole = (read(&out.join("jobs.csv")), run.summary.to_json(), notices);
    (streamed, whole)
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn swf(dir: &Path, name: &str, lines: &[&str]) -> Setup {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    Setup::new(path)
}

fn job(id: u64, submit: i64, run: i64, procs: i64) -> String {
    format!("{id} {submit} -1 {run} {procs} -1 -1 {procs} {run} -1 1 1 1 -1 1 -1 -1 -1")
}

#[test]
fn a_streamed_run_gives_what_a_whole_one_gives() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cases: Vec<(Setup, &str)> = Vec::new();
    let kth = Setup::new(root.join(KTH));
    for policy in ["fcfs", "easy", "conservative", "multifactor"] {
        cases.push((kth.clone(), policy));
    }
    // Jobs too wide for the machine, killed at their limit, over a user limit, placed on nodes.
    let mut narrow = kth.clone();
    narrow.machine.procs = Some(64);
    narrow.kill_at_limit = true;
    narrow.limits.user.cpus = Some(48);
    cases.push((narrow, "easy"));
    let mut nodes = kth.clone();
    nodes.machine.nodes = Some(25);
    nodes.machine.cpus_per_node = Some(4);
    nodes.estimate = mini_slurm::model::EstimateMode::Actual;
    cases.push((nodes, "easy[order=multifactor]"));
    for name in ["lublin_256.swf.gz", "synthetic-burst-5k.swf.gz"] {
        cases.push((Setup::new(root.join("traces").join(name)), "easy"));
    }
    // A lenient run over a malformed line, with a header before the jobs only.
    let mut lines = vec!["; MaxProcs: 8".to_string()];
    lines.extend((1..=300).map(|i| {
        job(
            i,
            i as i64 * 7,
            50 + (i as i64 % 13) * 10,
            1 + (i as i64 % 8),
        )
    }));
    lines.insert(120, "this is not a job".to_string());
    let text: Vec<&str> = lines.iter().map(String::as_str).collect();
    let mut lenient = swf(dir.path(), "lenient.swf", &text);
    lenient.lenient = true;
    cases.push((lenient, "conservative"));
    for (k, (setup, policy)) in cases.iter().enumerate() {
        let d = dir.path().join(k.to_string());
        let (streamed, whole) = both(setup, policy, &d);
        let streamed = streamed.unwrap_or_else(|| panic!("case {k} did not stream"));
        assert_eq!(streamed.0, whole.0, "case {k} ({policy}): jobs.csv");
        assert_eq!(streamed.1, whole.1, "case {k} ({policy}): summary.json");
        assert_eq!(streamed.2, whole.2, "case {k} ({policy}): notices");
        let (csv, summary, rows) = written_while_running(setup, policy, &d.join("early"))
            .unwrap_or_else(|| panic!("case {k} did not stream"));
        assert_eq!(
            csv, whole.0,
            "case {k} ({policy}): jobs.csv written while running"
        );
        assert_eq!(summary, whole.1, "case {k} ({policy}): summary.json");
        // KTH SP2's 28k jobs: most blocks of 2,048 rows are written before the run ends.
        if k == 0 {
            assert!(rows >= 20_000, "case {k}: only {rows} rows while running");
        }
    }
}

#[test]
fn a_trace_that_cannot_stream_is_left_to_the_whole_path() {
    let dir = tempfile::tempdir().unwrap();
    let head = "; MaxProcs: 8";
    let (a, b, c) = (job(1, 0, 10, 2), job(2, 5, 10, 2), job(3, 9, 10, 2));
    let unsorted = job(3, 1, 10, 2);
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("unsorted", vec![head, &a, &b, &unsorted]),
        ("ids down", vec![head, &b, &a]),
        ("late header", vec![head, &a, "; MaxProcs: 16", &b]),
        ("no size", vec![&a, &b]),
        ("malformed", vec![head, &a, "1 2 3", &c]),
        ("no job", vec![head]),
        ("sacct output", vec!["JobID|Submit|Elapsed", &a]),
    ];
    for (name, lines) in cases {
        let setup = swf(dir.path(), "t.swf", &lines);
        let got = setup.simulate_streamed("easy", &mut NoObserver).unwrap();
        assert!(got.is_none(), "{name}: streamed");
        let early = written_while_running(&setup, "easy", &dir.path().join("early"));
        assert!(early.is_none(), "{name}: streamed with jobs.csv");
    }
    // A trace that gives up at its last line (an id lower than the ones before), after many
    // blocks of jobs may have been simulated and written: the whole path writes jobs.csv
    // afresh in the same directory.
    let mut late: Vec<String> = vec![head.to_string()];
    late.extend((2..=9001).map(|i| job(i, i as i64, 1, 1)));
    late.push(job(1, 9002, 1, 1));
    let text: Vec<&str> = late.iter().map(String::as_str).collect();
    let setup = swf(dir.path(), "late.swf", &text);
    let out = dir.path().join("late");
    let dir_out = OutDir::create(&out).unwrap();
    let got = setup
        .simulate_streamed_to("fcfs", &mut NoObserver, Some(dir_out.jobs_csv().unwrap()))
        .unwrap();
    assert!(got.is_none());
    let p = setup.prepare(&mut |_| {}).unwrap();
    let run = p.run("fcfs").unwrap();
    dir_out
        .write_run(&p, &run.result, None, || run.summary.clone())
        .unwrap();
    let whole = dir.path().join("late-whole");
    write_run_with(&whole, &p, &run.result, || run.summary.clone()).unwrap();
    assert_eq!(read(&out.join("jobs.csv")), read(&whole.join("jobs.csv")));
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        2,
        "only the two outputs"
    );
    // sacct output is read as sacct whatever its name, never as (lenient) SWF.
    let mut sacct = swf(dir.path(), "s.swf", &["JobID|Submit|Elapsed", &a]);
    sacct.lenient = true;
    sacct.machine.procs = Some(8);
    assert!(sacct.streams());
    assert!(
        sacct
            .simulate_streamed("easy", &mut NoObserver)
            .unwrap()
            .is_none()
    );
    // Whole-workload transforms, an accounts file and CSV traces are never streamed.
    let ok = swf(dir.path(), "ok.swf", &[head, &a, &b, &c]);
    assert!(
        ok.simulate_streamed("easy", &mut NoObserver)
            .unwrap()
            .is_some()
    );
    let mut scaled = ok.clone();
    scaled.load = Some(0.5);
    let mut elastic = ok.clone();
    elastic.elastic_fraction = Some(0.5);
    let csv = Setup::new(dir.path().join("t.csv"));
    for setup in [scaled, elastic, csv] {
        assert!(!setup.streams());
        assert!(
            setup
                .simulate_streamed("easy", &mut NoObserver)
                .unwrap()
                .is_none()
        );
    }
    // A bad policy is an error, as on the whole path.
    assert!(ok.simulate_streamed("bogus", &mut NoObserver).is_err());
}
