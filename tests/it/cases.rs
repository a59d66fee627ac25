//! The hand-checked cases of the simulation contract (docs/semantics.md §5, files in
//! `tests/data/spec-cases`): every (policy, estimate) row of every case.

use crate::util::{prepare, read_swf, run};
use mini_slurm::model::EstimateMode;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/spec-cases")
}

fn check_case(name: &str) {
    let swf = std::fs::read_to_string(dir().join(format!("{name}.swf"))).expect("case trace");
    let expected =
        std::fs::read_to_string(dir().join(format!("{name}.expected.csv"))).expect("expected");
    // (policy, estimate) → job → start (as printed, three decimals)
    let mut want: BTreeMap<(String, String), BTreeMap<u64, String>> = BTreeMap::new();
    for line in expected.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 4, "{name}: bad expected row {line}");
        want.entry((f[0].to_string(), f[1].to_string()))
            .or_default()
            .insert(f[2].parse().expect("job id"), f[3].to_string());
    }
    assert!(!want.is_empty(), "{name}: no expected rows");
    let w = read_swf(&swf);
    for ((policy, estimate), jobs) in &want {
        let mode: EstimateMode = estimate.parse().expect("estimate mode");
        let r = run(&prepare(&w, mode, None), policy);
        let got: BTreeMap<u64, String> = r
            .jobs
            .iter()
            .map(|j| (j.spec.id.0, j.start.secs_str()))
            .collect();
        assert_eq!(
            &got, jobs,
            "case {name}, policy {policy}, estimate {estimate}"
        );
    }
}

#[test]
fn easy_vs_conservative() {
    check_case("easy-vs-conservative");
}

#[test]
fn easy_extra() {
    check_case("easy-extra");
}

#[test]
fn overrun_reserved_now() {
    check_case("overrun-reserved-now");
}

#[test]
fn zero_length() {
    check_case("zero-length");
}

#[test]
fn zero_length_reserved() {
    check_case("zero-length-reserved");
}

#[test]
fn early_end() {
    check_case("early-end");
}

#[test]
fn read_rules() {
    check_case("read-rules");
}

#[test]
fn every_case_file_is_tested() {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .expect("cases dir")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".expected.csv"))
                .map(str::to_string)
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "early-end",
            "easy-extra",
            "easy-vs-conservative",
            "overrun-reserved-now",
            "read-rules",
            "zero-length",
            "zero-length-reserved"
        ]
    );
}
