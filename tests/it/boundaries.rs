//! The engine, the policies, the driver and the model stay sans-IO: they name no process,
//! database, plotting, CLI, clock or randomness API.

use std::path::{Path, PathBuf};

const FORBIDDEN: [&str; 12] = [
    "rusqlite",
    "nix::",
    "plotters",
    "clap",
    "SystemTime",
    "Instant",
    "rand::",
    "std::time",
    "std::fs",
    "std::process",
    "std::thread",
    "std::net",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("source dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn core_modules_do_no_io() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for d in ["engine", "policy", "model"] {
        rust_files(&src.join(d), &mut files);
    }
    files.push(src.join("driver.rs"));
    files.push(src.join("time.rs"));
    assert!(files.len() >= 10, "found the core files");
    let mut offences = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("readable");
        for (i, line) in text.lines().enumerate() {
            for word in FORBIDDEN {
                if line.contains(word) {
                    offences.push(format!("{}:{}: {word}", f.display(), i + 1));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "sans-IO boundary crossed:\n{}",
        offences.join("\n")
    );
}
