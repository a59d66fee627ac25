//! Reading an experiment file: the TOML into plain structs (unknown keys refused), then each
//! list checked — a run must never be made twice, so duplicate traces, policies, seeds and
//! parameter values are refused — and the `[options]` applied as `sim`'s flags would be.

use super::{Experiment, ExperimentError, Parameters};
use crate::sim::Setup;
use crate::sim::options::{apply_args, toml_args};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// The file as written.
#[derive(serde::Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct File {
    title: Option<String>,
    out: Option<PathBuf>,
    traces: Vec<PathBuf>,
    policies: Vec<String>,
    #[serde(default = "one_seed")]
    seeds: Vec<u64>,
    #[serde(default)]
    parameters: FileParams,
    #[serde(default)]
    options: BTreeMap<String, toml::Value>,
}

fn one_seed() -> Vec<u64> {
    vec![1]
}

#[derive(serde::Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileParams {
    load: Option<Vec<f64>>,
    shake: Option<Vec<f64>>,
    elastic_fraction: Option<Vec<f64>>,
    estimate: Option<Vec<String>>,
}

/// Parses and checks `text`, the experiment file `file`.
pub(super) fn parse(file: &str, text: &str) -> Result<Experiment, ExperimentError> {
    let invalid = |what: String| ExperimentError::Invalid {
        file: file.to_string(),
        what,
    };
    let spec: File = toml::from_str(text)
        .map_err(|e| invalid(e.to_string().lines().collect::<Vec<_>>().join(" ")))?;
    if spec.traces.is_empty() || spec.policies.is_empty() || spec.seeds.is_empty() {
        return Err(invalid(
            "expected at least one trace, one policy and one seed".into(),
        ));
    }
    for p in &spec.policies {
        crate::policy::build(p).map_err(|e| invalid(format!("policies: {e}")))?;
    }
    // Fixed options, as `sim` flags (so they are checked exactly as on the command line).
    let options = toml_args(&spec.options).map_err(invalid)?;
    let mut base = Setup::new("-");
    let mut argv = vec!["--trace".to_string(), "-".to_string()];
    argv.extend(options.iter().cloned());
    apply_args(&mut base, &argv).map_err(|e| invalid(format!("[options]: {e}")))?;
    if spec.options.contains_key("seed") || spec.options.contains_key("trace") {
        return Err(invalid(
            "[options]: `seed` and `trace` are set per run: use `seeds` and `traces`".into(),
        ));
    }
    distinct_traces(&spec.traces).map_err(invalid)?;
    distinct_policies(&spec.policies).map_err(invalid)?;
    let mut seeds = spec.seeds.clone();
    seeds.sort_unstable();
    seeds.dedup();
    if seeds.len() != spec.seeds.len() {
        return Err(invalid("seeds: a seed is given twice".into()));
    }
    let parameters = parameters(spec.parameters).map_err(invalid)?;
    Ok(Experiment {
        file: file.to_string(),
        title: spec.title,
        out: spec.out,
        traces: spec.traces,
        policies: spec.policies,
        seeds: spec.seeds,
        parameters,
        base,
        options: (!spec.options.is_empty()).then_some(options),
    })
}

/// Every trace a file, none given twice (under two names either).
fn distinct_traces(traces: &[PathBuf]) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for t in traces {
        if !t.is_file() {
            return Err(format!("traces: {}: no such file", t.display()));
        }
        let c = std::fs::canonicalize(t).unwrap_or_else(|_| t.clone());
        if !seen.insert(c) {
            return Err(format!("traces: {} is given twice", t.display()));
        }
    }
    Ok(())
}

/// No policy given twice (as the same canonical spec).
fn distinct_policies(policies: &[String]) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for p in policies {
        let (_, parsed) = crate::policy::build(p).map_err(|e| format!("policies: {e}"))?;
        if !seen.insert(parsed.canonical()) {
            return Err(format!("policies: '{p}' is given twice"));
        }
    }
    Ok(())
}

/// The parameters, each a non-empty list of distinct values in its range.
fn parameters(pr: FileParams) -> Result<Parameters, String> {
    for (name, v, range, what) in [
        (
            "load",
            &pr.load,
            0.001..=100.0,
            "loads between 0.001 and 100",
        ),
        (
            "shake",
            &pr.shake,
            0.0..=1e7,
            "seconds between 0 and 10000000",
        ),
        (
            "elastic_fraction",
            &pr.elastic_fraction,
            0.0..=1.0,
            "fractions in [0, 1]",
        ),
    ] {
        if let Some(v) = v {
            let ok = v.iter().all(|x| range.contains(x));
            // -0.0 and 0.0, 0.5 and 0.50 are the same value: a run would be made twice.
            let mut norm: Vec<f64> = v.iter().map(|x| x + 0.0).collect();
            norm.sort_by(f64::total_cmp);
            norm.dedup();
            if v.is_empty() || !ok || norm.len() != v.len() {
                return Err(format!(
                    "parameters.{name}: expected a non-empty list of distinct {what}"
                ));
            }
        }
    }
    let estimate = match &pr.estimate {
        None => None,
        Some(es) => {
            let mut d = es.clone();
            d.sort();
            d.dedup();
            if es.is_empty() || d.len() != es.len() {
                return Err(
                    "parameters.estimate: expected a non-empty list of distinct modes".into(),
                );
            }
            let modes = es.iter().map(|e| e.parse()).collect::<Result<Vec<_>, _>>();
            Some(modes.map_err(|why| format!("parameters.estimate: {why}"))?)
        }
    };
    Ok(Parameters {
        load: pr.load,
        shake: pr.shake,
        elastic_fraction: pr.elastic_fraction,
        estimate,
    })
}
