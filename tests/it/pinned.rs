//! Reference outputs, pinned: `jobs.csv` and `summary.json` of a fixed set of simulations on
//! the bundled traces must stay byte-identical across refactors and speed-ups. Each file is
//! pinned by its length and its FNV-1a 64 hash, taken from the build before the architecture
//! step (issue 12). A change that is meant to change an output must say so and re-pin here:
//! `PIN_PRINT=1 cargo test pinned -- --nocapture` prints the current values.

use std::path::PathBuf;
use std::process::Command;

/// (name, sim arguments, jobs.csv (len, hash), summary.json (len, hash)).
type Pin = (
    &'static str,
    &'static [&'static str],
    (u64, u64),
    (u64, u64),
);

const KTH: &str = "traces/KTH-SP2-1996-2.1-cln.swf.gz";
const ML: &str = "traces/synthetic-ml-2k.csv.gz";

const PINS: &[Pin] = &[
    (
        "kth-fcfs",
        &["--trace", KTH, "--policy", "fcfs"],
        (5026167, 0x8bfb5e1c6501ab9c),
        (85032, 0x9f8624c08e10f834),
    ),
    (
        "kth-easy",
        &["--trace", KTH, "--policy", "easy"],
        (4750904, 0xfc547725634f8582),
        (84572, 0x7982b0323fa2991c),
    ),
    (
        "kth-conservative",
        &["--trace", KTH, "--policy", "conservative"],
        (4770783, 0x8b3b96121939f774),
        (84480, 0xa7bd4c1104122da2),
    ),
    (
        "kth-elastic-amdahl",
        &[
            "--trace",
            KTH,
            "--elastic-fraction",
            "0.5",
            "--seed",
            "1",
            "--speedup",
            "amdahl:0.05",
            "--policy",
            "conservative",
        ],
        (4756042, 0x5b156853e7ca5770),
        (86393, 0x36ea0b128a5d7b44),
    ),
    (
        "kth-tree",
        &[
            "--trace",
            KTH,
            "--nodes",
            "100",
            "--cpus-per-node",
            "1",
            "--topology",
            "docs/examples/kth-tree.topology.conf",
            "--placement",
            "tree",
            "--topology-penalty",
            "0.05",
            "--policy",
            "easy",
        ],
        (6151440, 0x9854a0c9c9cf601a),
        (85445, 0x1d42842a9eb371cb),
    ),
    (
        "nasa-multifactor",
        &[
            "--trace",
            "traces/NASA-iPSC-1993-3.1-cln.swf.gz",
            "--policy",
            "multifactor",
        ],
        (2798347, 0x11012018cb376fd6),
        (30966, 0x981c98b71ee7c5f6),
    ),
    (
        "ml-easy-multifactor",
        &[
            "--trace",
            ML,
            "--nodes",
            "8",
            "--cpus-per-node",
            "64",
            "--gpus-per-node",
            "8",
            "--mem-per-node",
            "1TB",
            "--policy",
            "easy[order=multifactor]",
        ],
        (357813, 0x2e3bdd9e33487289),
        (6811, 0x41d620192bd5edef),
    ),
    (
        "ml-preempt-requeue",
        &[
            "--trace",
            ML,
            "--nodes",
            "8",
            "--cpus-per-node",
            "64",
            "--gpus-per-node",
            "8",
            "--mem-per-node",
            "1TB",
            "--policy",
            "priority[preempt=requeue]",
        ],
        (366034, 0x0486be5c7a2342ba),
        (6798, 0x368098bbc6553c94),
    ),
    (
        "burst-conservative-max",
        &[
            "--trace",
            "traces/synthetic-burst-5k.swf.gz",
            "--estimate",
            "max",
            "--policy",
            "conservative",
        ],
        (813605, 0x9738c2e0aa210106),
        (12011, 0x0cfc72aeb88dae0d),
    ),
];

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn pin_of(path: &std::path::Path) -> (u64, u64) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (bytes.len() as u64, fnv1a(&bytes))
}

#[test]
fn reference_outputs_are_unchanged() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let print = std::env::var_os("PIN_PRINT").is_some();
    let mut changed = Vec::new();
    for (name, args, jobs, summary) in PINS {
        let out = tmp.path().join(name);
        let o = Command::new(env!("CARGO_BIN_EXE_mini-slurm"))
            .current_dir(&root)
            .arg("sim")
            .args(*args)
            .args(["--no-timing", "--out"])
            .arg(&out)
            .output()
            .expect("binary runs");
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let got = (
            pin_of(&out.join("jobs.csv")),
            pin_of(&out.join("summary.json")),
        );
        if print {
            println!("{name}: jobs {:?} summary {:?}", got.0, got.1);
        }
        if got != (*jobs, *summary) {
            changed.push(format!(
                "{name}: jobs.csv {:?} (pinned {jobs:?}), summary.json {:?} (pinned {summary:?})",
                got.0, got.1
            ));
        }
    }
    assert!(
        changed.is_empty(),
        "reference outputs changed:\n{}",
        changed.join("\n")
    );
}
