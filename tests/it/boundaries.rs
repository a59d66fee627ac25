//! Boundaries of the code: the engine, the policies, the scheduling interface, the driver and
//! the model stay sans-IO (they name no process, database, plotting, CLI, clock or randomness
//! API), and the top-level modules of `src/` name each other only along a fixed DAG.

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
    for d in ["engine", "policy", "sched", "model"] {
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

/// The top-level modules of `src/` each may name only the modules listed here (outside test
/// modules). The table is a DAG, checked below, so the layering cannot silently grow a cycle:
/// `sched` (what a policy sees and returns) is the leaf that `engine` and `policy` share and
/// neither names the other; `trace` and `metrics` never name the simulator, the engine or the
/// report. A new module must be added here, with its place in the layers.
const ALLOWED: &[(&str, &[&str])] = &[
    ("time", &[]),
    ("ids", &[]),
    ("stats", &[]),
    ("model", &["time", "ids"]),
    ("sched", &["time", "ids", "model"]),
    ("engine", &["time", "ids", "model", "sched"]),
    ("policy", &["time", "ids", "model", "sched"]),
    ("driver", &["time", "ids", "model", "engine"]),
    ("config", &["time", "ids", "model"]),
    ("trace", &["time", "ids", "stats", "model", "sched"]),
    ("metrics", &["time", "ids", "stats", "model", "trace"]),
    (
        "report",
        &["time", "ids", "stats", "model", "trace", "metrics"],
    ),
    (
        "sim",
        &[
            "time", "ids", "stats", "model", "sched", "engine", "policy", "driver", "config",
            "trace", "metrics", "report",
        ],
    ),
    (
        "live",
        &[
            "time", "ids", "stats", "model", "sched", "engine", "policy", "driver", "config",
            "trace", "metrics",
        ],
    ),
];

/// Text of a source file without its `#[cfg(test)] mod ...` blocks (tests may reach further).
fn without_tests(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if l.trim_start().starts_with("#[cfg(test)]")
            && lines
                .get(i + 1)
                .is_some_and(|n| n.trim_start().starts_with("mod "))
        {
            // Skip to the closing brace at the same indentation.
            let indent = &l[..l.len() - l.trim_start().len()];
            i += 2;
            while i < lines.len() && lines[i] != format!("{indent}}}") {
                i += 1;
            }
            i += 1;
            continue;
        }
        out.push_str(l);
        out.push('\n');
        i += 1;
    }
    out
}

/// The top-level modules a source text names through `crate::NAME`.
fn named_modules(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .match_indices("crate::")
        .filter(|(i, _)| {
            // Not `mini_slurm_crate::` or the like: a word boundary before `crate`.
            !text[..*i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
        .map(|(i, m)| {
            text[i + m.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|n| !n.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

fn top_level_modules() -> Vec<(String, Vec<PathBuf>)> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut mods = Vec::new();
    for e in std::fs::read_dir(&src).expect("src").flatten() {
        let p = e.path();
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        if ["lib", "main", "commands"].contains(&name.as_str()) {
            continue; // the crate root and the binary's commands may name everything
        }
        let mut files = Vec::new();
        if p.is_dir() {
            rust_files(&p, &mut files);
        } else if p.extension().is_some_and(|x| x == "rs") {
            files.push(p);
        } else {
            continue;
        }
        mods.push((name, files));
    }
    mods.sort();
    mods
}

#[test]
fn top_level_modules_form_the_documented_dag() {
    let mods = top_level_modules();
    assert!(mods.len() >= 12, "found the modules: {mods:?}");
    let mut offences = Vec::new();
    for (name, files) in &mods {
        let Some((_, allowed)) = ALLOWED.iter().find(|(m, _)| m == name) else {
            offences.push(format!(
                "src/{name}: not in the boundary table (tests/it/boundaries.rs)"
            ));
            continue;
        };
        for f in files {
            let text = without_tests(&std::fs::read_to_string(f).expect("readable"));
            for used in named_modules(&text) {
                if used != *name && !allowed.contains(&used.as_str()) {
                    offences.push(format!("{} names crate::{used}", f.display()));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "module boundary crossed:\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_boundary_table_is_acyclic_and_says_what_the_issue_asks() {
    // Depth-first search for a cycle.
    fn visit<'a>(m: &'a str, stack: &mut Vec<&'a str>, done: &mut Vec<&'a str>) -> Option<String> {
        if done.contains(&m) {
            return None;
        }
        if let Some(i) = stack.iter().position(|s| *s == m) {
            return Some(format!("{} -> {m}", stack[i..].join(" -> ")));
        }
        stack.push(m);
        let deps = ALLOWED
            .iter()
            .find(|(n, _)| *n == m)
            .map_or(&[][..], |d| d.1);
        for d in deps {
            if let Some(c) = visit(d, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.push(m);
        None
    }
    let mut done = Vec::new();
    for (m, _) in ALLOWED {
        assert_eq!(visit(m, &mut Vec::new(), &mut done), None, "cycle");
    }
    let deps = |m: &str| ALLOWED.iter().find(|(n, _)| *n == m).unwrap().1;
    assert!(!deps("engine").contains(&"policy"));
    assert!(!deps("policy").contains(&"engine"));
    for m in ["trace", "metrics"] {
        for f in ["sim", "engine", "report"] {
            assert!(!deps(m).contains(&f), "{m} may not name {f}");
        }
    }
    assert_eq!(deps("sched"), ["time", "ids", "model"]);
}

#[test]
fn the_module_scan_sees_names_and_skips_tests() {
    let text = "use crate::engine::Engine;\nfn f() { crate::policy::build(\"x\"); }\n\
                #[cfg(test)]\nmod tests {\n    use crate::sim;\n}\nuse mini_slurm_crate::x;\n";
    assert_eq!(named_modules(&without_tests(text)), ["engine", "policy"]);
}
