//! The workload options as flags — `--procs 256 --speedup amdahl:0.05` — turned into a
//! [`Setup`]: one value parser per option, shared by `sim`'s command line (its argument parser
//! calls the same functions) and an experiment's `[options]` table, so an option is checked
//! exactly as its flag is, and fails with the same message.
//!
//! [`FLAGS`] lists the options with the names of their values; `tests/it/simlib.rs` checks it
//! against `mini-slurm sim --help`.

use super::Setup;
use crate::model::{EstimateMode, Speedup};
use crate::sched::limits::Limit;
use crate::time::{Dur, parse_duration, parse_secs_to_millis};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// One workload option.
pub struct Flag {
    /// The flag's name without its dashes (`procs`); in `[options]` the key may use `_`.
    pub name: &'static str,
    /// The name of its value in help and messages (`N`); `None` for a switch.
    pub value: Option<&'static str>,
    set: Setter,
}

#[derive(Clone, Copy)]
enum Setter {
    Value(fn(&mut Setup, &str) -> Result<(), String>),
    Switch(fn(&mut Setup)),
}

/// Every workload option, in `sim --help`'s order.
pub const FLAGS: &[Flag] = &[
    flag("trace", "PATH", |s, v| {
        s.trace = PathBuf::from(v);
        Ok(())
    }),
    flag("procs", "N", |s, v| {
        s.machine.procs = Some(parse_count(v)?);
        Ok(())
    }),
    flag("cluster", "SLURM_CONF", |s, v| {
        s.machine.cluster = Some(v.into());
        Ok(())
    }),
    flag("topology", "TOPOLOGY_CONF", |s, v| {
        s.machine.topology = Some(v.into());
        Ok(())
    }),
    flag("nodes", "N", |s, v| {
        s.machine.nodes = Some(parse_count(v)?);
        Ok(())
    }),
    flag("cpus-per-node", "C", |s, v| {
        s.machine.cpus_per_node = Some(parse_count(v)?);
        Ok(())
    }),
    flag("mem-per-node", "SIZE", |s, v| {
        s.machine.mem_per_node_mb = Some(parse_mem(v)?);
        Ok(())
    }),
    flag("gpus-per-node", "G", |s, v| {
        s.machine.gpus_per_node = Some(parse_u32(v)?);
        Ok(())
    }),
    flag("estimate", "MODE", |s, v| {
        s.estimate = v.parse::<EstimateMode>()?;
        Ok(())
    }),
    switch("lenient", |s| s.lenient = true),
    switch("kill-at-limit", |s| s.kill_at_limit = true),
    flag("placement", "NAME", |s, v| {
        s.placement = Some(v.into());
        Ok(())
    }),
    flag("topology-penalty", "F", |s, v| {
        s.topology_penalty_permille = parse_topology_penalty(v)?;
        Ok(())
    }),
    flag("switches", "COUNT[@MAX_WAIT]", |s, v| {
        s.switches = Some(parse_switches(v)?);
        Ok(())
    }),
    flag("user-limit", "LIMITS", |s, v| {
        s.limits.user = Limit::parse(v)?;
        Ok(())
    }),
    flag("accounts", "FILE", |s, v| {
        s.accounts = Some(v.into());
        Ok(())
    }),
    flag("account-limit", "LIMITS", |s, v| {
        s.limits.account = Limit::parse(v)?;
        Ok(())
    }),
    flag("speedup", "MODEL", |s, v| {
        s.speedup = parse_speedup(v)?;
        Ok(())
    }),
    flag("elastic-fraction", "F", |s, v| {
        s.elastic_fraction = Some(parse_fraction(v)?);
        Ok(())
    }),
    flag("elastic-range", "LO,HI", |s, v| {
        s.elastic_range = crate::trace::elastic::parse_range(v)?;
        Ok(())
    }),
    flag("seed", "N", |s, v| {
        s.seed = parse_u64(v)?;
        Ok(())
    }),
];

const fn flag(
    name: &'static str,
    value: &'static str,
    set: fn(&mut Setup, &str) -> Result<(), String>,
) -> Flag {
    Flag {
        name,
        value: Some(value),
        set: Setter::Value(set),
    }
}

const fn switch(name: &'static str, set: fn(&mut Setup)) -> Flag {
    Flag {
        name,
        value: None,
        set: Setter::Switch(set),
    }
}

impl Flag {
    /// `--name <VALUE>`, as the command line's messages write it.
    fn usage(&self) -> String {
        match self.value {
            Some(v) => format!("--{} <{v}>", self.name),
            None => format!("--{}", self.name),
        }
    }
}

/// `args` (`--procs 4 --lenient`, or `--procs=4`) applied to `setup` in order. Messages read
/// as the command line's for the same flags, so an experiment's options fail as they do.
pub fn apply_args<S: AsRef<str>>(setup: &mut Setup, args: &[S]) -> Result<(), String> {
    let mut given = BTreeSet::new();
    let mut rest = args.iter().map(AsRef::as_ref);
    while let Some(arg) = rest.next() {
        let Some(long) = arg.strip_prefix("--") else {
            return Err(unexpected(arg));
        };
        let (name, inline) = match long.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (long, None),
        };
        let Some(f) = FLAGS.iter().find(|f| f.name == name) else {
            return Err(format!("unexpected argument '--{name}' found"));
        };
        if !given.insert(f.name) {
            return Err(format!(
                "the argument '{}' cannot be used multiple times",
                f.usage()
            ));
        }
        match f.set {
            Setter::Switch(set) => match inline {
                Some(v) => {
                    return Err(format!(
                        "unexpected value '{v}' for '{}' found; no more were expected",
                        f.usage()
                    ));
                }
                None => set(setup),
            },
            Setter::Value(set) => {
                let value = match inline {
                    Some(v) => v,
                    None => value_of(f, rest.next())?,
                };
                set(setup, value)
                    .map_err(|e| format!("invalid value '{value}' for '{}': {e}", f.usage()))?;
            }
        }
    }
    Ok(())
}

/// The value after `--flag`: a word that does not look like a flag.
fn value_of<'a>(f: &Flag, next: Option<&'a str>) -> Result<&'a str, String> {
    let missing = || {
        format!(
            "a value is required for '{}' but none was supplied",
            f.usage()
        )
    };
    match next {
        None => Err(missing()),
        Some(v) if v.starts_with("--") && v.len() > 2 => {
            let name = v[2..].split('=').next().unwrap_or_default();
            if FLAGS.iter().any(|f| f.name == name) {
                Err(missing())
            } else {
                Err(format!("unexpected argument '--{name}' found"))
            }
        }
        Some(v) if v.starts_with('-') && v.len() > 1 => Err(unexpected(v)),
        Some(v) => Ok(v),
    }
}

/// A word where a flag was expected: `-x...` reads as the short flag `-x`.
fn unexpected(arg: &str) -> String {
    match arg.strip_prefix('-').and_then(|s| s.chars().next()) {
        Some(c) if c != '-' => format!("unexpected argument '-{c}' found"),
        _ => format!("unexpected argument '{arg}' found"),
    }
}

/// A count of at least one (processors, nodes, CPUs per node).
pub fn parse_count(s: &str) -> Result<u32, String> {
    parse_in(s, 1)
}

/// Any `u32` (GPUs per node).
pub fn parse_u32(s: &str) -> Result<u32, String> {
    parse_in(s, 0)
}

fn parse_in(s: &str, min: u32) -> Result<u32, String> {
    let n: i64 = s
        .parse()
        .map_err(|e: std::num::ParseIntError| e.to_string())?;
    u32::try_from(n)
        .ok()
        .filter(|&n| n >= min)
        .ok_or_else(|| format!("{n} is not in {min}..={}", u32::MAX))
}

/// A seed.
pub fn parse_u64(s: &str) -> Result<u64, String> {
    s.parse()
        .map_err(|e: std::num::ParseIntError| e.to_string())
}

/// A speedup model: `linear`, `amdahl:F` or `downey:A:SIGMA`.
pub fn parse_speedup(s: &str) -> Result<Speedup, String> {
    Speedup::parse(s)
}

/// A fraction in [0, 1].
pub fn parse_fraction(s: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|f| (0.0..=1.0).contains(f))
        .ok_or_else(|| format!("expected a fraction between 0 and 1, found '{s}'"))
}

/// A memory size in megabytes (`64GB`, `512M`, or MB).
pub fn parse_mem(s: &str) -> Result<u64, String> {
    crate::model::parse_mem_mb(s)
}

/// `COUNT[@MAX_WAIT]`, as Slurm's `--switches`; without a wait, Slurm's default of 24 hours.
pub fn parse_switches(s: &str) -> Result<(u32, Dur), String> {
    let (count, wait) = s.split_once('@').unwrap_or((s, "1-00:00:00"));
    let count: u32 = count
        .trim()
        .parse()
        .ok()
        .filter(|&c| c >= 1)
        .ok_or_else(|| format!("expected COUNT[@MAX_WAIT] with COUNT ≥ 1, found '{s}'"))?;
    let wait = parse_duration(wait, 60_000)?;
    Ok((count, wait))
}

/// A run-time penalty per extra leaf switch, as a fraction (`0.1`), in thousandths, exactly.
pub fn parse_topology_penalty(s: &str) -> Result<u32, String> {
    match parse_secs_to_millis(s) {
        Some(p) if (0..=1_000_000).contains(&p) => Ok(p as u32),
        _ => Err(format!("expected a fraction ≥ 0 such as 0.1, found '{s}'")),
    }
}

/// An experiment's `[options]` table as flags, in the table's (sorted) order: `true` gives
/// the switch, `false` nothing, a string or number its text.
pub fn toml_args(
    options: &std::collections::BTreeMap<String, toml::Value>,
) -> Result<Vec<String>, String> {
    let mut args = Vec::new();
    for (k, v) in options {
        let flag = format!("--{}", k.replace('_', "-"));
        match v {
            toml::Value::Boolean(true) => args.push(flag),
            toml::Value::Boolean(false) => {}
            toml::Value::String(s) => args.extend([flag, s.clone()]),
            toml::Value::Integer(i) => args.extend([flag, i.to_string()]),
            toml::Value::Float(f) => args.extend([flag, f.to_string()]),
            other => {
                return Err(format!(
                    "options.{k}: expected a string, number or boolean, found {other:?}"
                ));
            }
        }
    }
    Ok(args)
}
