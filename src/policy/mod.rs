//! Scheduling policies: pure deciders.
//!
//! A policy receives a read-only [`View`](crate::sched::View) of the cluster at one instant
//! (free processors, the pending queue in queue order, the running jobs with their *estimates*
//! — never their true run times) and appends [`Decision`](crate::sched::Decision)s: start a job
//! now, report a reservation, ask for a wake-up.
//! The engine validates every decision before it becomes a command.
//!
//! Adding a policy: write one file in this folder whose `//!` header is a title line
//! (`` `name` — what it is. ``), a blank line, and the policy's rules in Markdown; expose a
//! `pub const INFO: PolicyInfo` with `source: include_str!("name.rs")`, and add it to
//! [`REGISTRY`]. The header is the one text of the rules: rustdoc shows it, and the CLI
//! (`mini-slurm policies --markdown`) and `docs/policies.md` read it from `source` through
//! [`PolicyInfo::rules`]. The shared property tests pick the policy up from the registry.

pub mod common;
pub mod conservative;
pub mod easy;
pub mod fcfs;
pub mod multifactor;
pub mod priority;
pub mod slurm;

use crate::sched::Policy;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One parameter of a policy.
#[derive(Clone, Copy, Debug)]
pub struct ParamInfo {
    pub name: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

/// A registered policy.
#[derive(Clone, Copy)]
pub struct PolicyInfo {
    pub name: &'static str,
    /// One line.
    pub summary: &'static str,
    /// The policy file's own text (`include_str!` of itself): its `//!` header holds the
    /// rules, read by [`PolicyInfo::rules`].
    pub source: &'static str,
    pub params: &'static [ParamInfo],
    pub build: fn(&mut Params) -> Result<Box<dyn Policy>, PolicyError>,
}

impl PolicyInfo {
    /// The rules, in Markdown: the policy file's `//!` header without its title paragraph.
    pub fn rules(&self) -> String {
        let doc = module_doc(self.source);
        match doc.split_once("\n\n") {
            Some((_title, rules)) => rules.trim().to_string(),
            None => String::new(),
        }
    }
}

/// The leading `//!` block of a Rust source file, without the markers (`//! ` or a bare `//!`
/// on a blank line): one line per comment line.
fn module_doc(source: &str) -> String {
    let mut doc = String::new();
    for line in source.lines() {
        let Some(text) = line.strip_prefix("//!") else {
            break;
        };
        doc.push_str(text.strip_prefix(' ').unwrap_or(text));
        doc.push('\n');
    }
    doc
}

/// Every policy, in the order `mini-slurm policies` lists them.
pub static REGISTRY: &[PolicyInfo] = &[
    fcfs::INFO,
    priority::INFO,
    easy::INFO,
    conservative::INFO,
    multifactor::INFO,
    slurm::INFO,
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("unknown policy '{name}' (known: {known})")]
    Unknown { name: String, known: String },
    #[error("malformed policy spec '{spec}': expected NAME or NAME[key=value,...]")]
    Malformed { spec: String },
    #[error("policy {policy}: unknown parameter '{param}' (known: {known})")]
    UnknownParam {
        policy: String,
        param: String,
        known: String,
    },
    #[error("policy {policy}: parameter '{param}': {why}")]
    BadValue {
        policy: String,
        param: String,
        why: String,
    },
}

/// The parameters of a spec string, consumed by a policy's `build`.
#[derive(Clone, Debug, Default)]
pub struct Params {
    policy: String,
    values: BTreeMap<String, String>,
}

impl Params {
    /// Removes and returns a parameter's value.
    pub fn take(&mut self, key: &str) -> Option<String> {
        self.values.remove(key)
    }
    pub fn bad(&self, param: &str, why: impl Into<String>) -> PolicyError {
        PolicyError::BadValue {
            policy: self.policy.clone(),
            param: param.to_string(),
            why: why.into(),
        }
    }
}

/// A parsed policy spec: `easy`, `easy[order=priority]` or `easy:order=priority`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySpec {
    pub name: String,
    pub params: BTreeMap<String, String>,
}

impl PolicySpec {
    pub fn parse(spec: &str) -> Result<PolicySpec, PolicyError> {
        let malformed = || PolicyError::Malformed {
            spec: spec.to_string(),
        };
        let s = spec.trim();
        let (name, body) = if let Some(open) = s.find('[') {
            let body = s[open + 1..].strip_suffix(']').ok_or_else(malformed)?;
            (&s[..open], body)
        } else if let Some((n, b)) = s.split_once(':') {
            (n, b)
        } else {
            (s, "")
        };
        let name = name.trim();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(malformed());
        }
        let mut params = BTreeMap::new();
        for kv in body.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = kv.split_once('=').ok_or_else(malformed)?;
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty() || params.insert(k.to_string(), v.to_string()).is_some() {
                return Err(malformed());
            }
        }
        Ok(PolicySpec {
            name: name.to_ascii_lowercase(),
            params,
        })
    }

    /// Canonical form: `name` or `name[k=v,...]` with keys sorted.
    pub fn canonical(&self) -> String {
        if self.params.is_empty() {
            return self.name.clone();
        }
        let kv: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("{}[{}]", self.name, kv.join(","))
    }
}

/// Looks a policy up by name.
pub fn lookup(name: &str) -> Option<&'static PolicyInfo> {
    REGISTRY.iter().find(|p| p.name == name)
}

/// Builds a policy from a spec string, rejecting unknown names and parameters.
pub fn build(spec: &str) -> Result<(Box<dyn Policy>, PolicySpec), PolicyError> {
    let parsed = PolicySpec::parse(spec)?;
    let info = lookup(&parsed.name).ok_or_else(|| PolicyError::Unknown {
        name: parsed.name.clone(),
        known: REGISTRY
            .iter()
            .map(|p| p.name)
            .collect::<Vec<_>>()
            .join(", "),
    })?;
    let layer = &common::elastic::LAYER_PARAMS;
    for k in parsed.params.keys() {
        if !info.params.iter().chain(layer).any(|p| p.name == k) {
            let known: Vec<&str> = info.params.iter().chain(layer).map(|p| p.name).collect();
            return Err(PolicyError::UnknownParam {
                policy: info.name.to_string(),
                param: k.clone(),
                known: if known.is_empty() {
                    "this policy takes none".into()
                } else {
                    known.join(", ")
                },
            });
        }
    }
    let mut params = Params {
        policy: info.name.to_string(),
        values: parsed.params.clone(),
    };
    let elastic = common::elastic::from_params(&mut params)?;
    let mut policy = (info.build)(&mut params)?;
    if let Some(every) = elastic {
        policy = Box::new(common::elastic::ElasticLayer::new(policy, every));
    }
    Ok((policy, parsed))
}

/// The text of `docs/policies.md`, generated from the registry.
pub fn docs_markdown() -> String {
    let mut s = String::from(
        "# Policies\n\n<!-- generated by `mini-slurm policies --markdown`; a test fails when this file is stale -->\n\n\
         A policy is selected with a spec string: `NAME` or `NAME[key=value,...]` \
         (also `NAME:key=value,...`, which needs no quoting in the shell). \
         Every policy sees job *estimates*, never true run times.\n",
    );
    s.push_str(
        "\nEvery policy also takes the parameters of the **elastic layer**, which resizes elastic \
         (malleable) jobs around it (see `docs/elastic.md`):\n\n\
         | parameter | default | meaning |\n|---|---|---|\n",
    );
    for q in &common::elastic::LAYER_PARAMS {
        let _ = writeln!(s, "| `{}` | `{}` | {} |", q.name, q.default, q.help);
    }
    for p in REGISTRY {
        let _ = write!(s, "\n## `{}`\n\n{}\n\n{}\n", p.name, p.summary, p.rules());
        if p.params.is_empty() {
            s.push_str("\nParameters: none.\n");
        } else {
            s.push_str("\n| parameter | default | meaning |\n|---|---|---|\n");
            for q in p.params {
                let _ = writeln!(s, "| `{}` | `{}` | {} |", q.name, q.default, q.help);
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_strings() {
        let p = PolicySpec::parse("easy[order=priority]").unwrap();
        assert_eq!(p.name, "easy");
        assert_eq!(p.params.get("order").map(String::as_str), Some("priority"));
        assert_eq!(PolicySpec::parse("easy:order=priority").unwrap(), p);
        assert_eq!(p.canonical(), "easy[order=priority]");
        assert_eq!(PolicySpec::parse("fcfs").unwrap().canonical(), "fcfs");
        assert!(PolicySpec::parse("easy[order=priority").is_err());
        assert!(PolicySpec::parse("easy[order]").is_err());
        assert!(PolicySpec::parse("").is_err());
    }

    #[test]
    fn unknown_names_and_params_are_refused() {
        let e = build("sjf").err().unwrap();
        assert_eq!(
            e.to_string(),
            "unknown policy 'sjf' (known: fcfs, priority, easy, conservative, multifactor, slurm)"
        );
        let e = build("easy[depth=3]").err().unwrap();
        assert_eq!(
            e.to_string(),
            "policy easy: unknown parameter 'depth' (known: order, age, fairshare, jobsize, partition, qos, max_age, favor_small, half_life, tree, algo, billing, preempt, grace, preempt_by, elastic, resize_every)"
        );
        let e = build("easy[order=random]").err().unwrap();
        assert!(
            e.to_string().starts_with("policy easy: parameter 'order'"),
            "{e}"
        );
    }

    #[test]
    fn every_registered_policy_builds_with_defaults() {
        for p in REGISTRY {
            assert!(build(p.name).is_ok(), "{}", p.name);
            assert!(
                !p.rules().trim().is_empty(),
                "{} documents its rules",
                p.name
            );
        }
    }

    #[test]
    fn rules_come_from_the_policy_file_header() {
        let src = "//! `x` — a title.\n//!\n//! Rule one,\n//!    continued.\n//!\n//! Rule two.\n\nuse a;\n//! not doc\n";
        assert_eq!(
            module_doc(src),
            "`x` — a title.\n\nRule one,\n   continued.\n\nRule two.\n"
        );
        let info = PolicyInfo {
            source: src,
            ..fcfs::INFO
        };
        assert_eq!(info.rules(), "Rule one,\n   continued.\n\nRule two.");
        for p in REGISTRY {
            let title = format!("`{}` — ", p.name);
            assert!(
                module_doc(p.source).starts_with(&title),
                "{}: the file header starts with its title line",
                p.name
            );
        }
    }
}
