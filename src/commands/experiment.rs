//! `mini-slurm experiment FILE.toml`: the cartesian product of traces × policies × parameters ×
//! seeds, run in parallel, gathered in one tidy CSV (one row per run) with a report. Runs whose
//! `summary.json` exists are not run again.
//!
//! ```toml
//! title = "Load sweep"                      # optional
//! out = "reports/load-sweep"                # optional; --out overrides
//! traces = ["traces/lublin_256.swf.gz"]
//! policies = ["fcfs", "easy", "conservative"]
//! seeds = [1, 2, 3]                         # optional, default [1]
//!
//! [parameters]                              # optional; each a list of values
//! load = [0.6, 0.8, 1.0]                    # target offered load (submission gaps scaled)
//! shake = [0, 60]                           # input shaking, seconds (seeded by the seed)
//! elastic_fraction = [0.0, 0.5]             # elastic jobs (seeded by the seed)
//! estimate = ["requested", "actual"]
//!
//! [options]                                 # any workload flag of `sim`, fixed for all runs
//! procs = 256
//! speedup = "amdahl:0.05"
//! ```

use super::compare::{csv_field, default_threads, parallel, write_file};
use super::sim::WorkloadArgs;
use super::{CliError, CliResult};
use anyhow::{Context, anyhow};
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mini_slurm::report::html::{Better, Figure, Row, index_html, summary_md};
use mini_slurm::report::{Format, Series, line_chart_err, line_chart_err_svg};
use mini_slurm::time::Dur;
use mini_slurm::trace::transform;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example: mini-slurm experiment docs/examples/load-sweep.toml --out reports/load-sweep\n\n\
Writes DIR/results.csv (one row per run), DIR/runs/<run>/{jobs.csv,summary.json}, DIR/index.html, DIR/summary.md and DIR/charts/*.svg. The file format is described in docs/reports.md."
)]
pub struct ExperimentArgs {
    /// The experiment description (TOML)
    file: PathBuf,
    /// The output directory (default: the file's `out`)
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Runs at a time (default: the machine's cores)
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Run again the runs whose outputs exist
    #[arg(long)]
    force: bool,
    /// Also write each chart as PNG (charts/*.png)
    #[arg(long)]
    png: bool,
    /// Print nothing on stdout
    #[arg(long, short)]
    quiet: bool,
}

#[derive(serde::Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Spec {
    title: Option<String>,
    out: Option<PathBuf>,
    traces: Vec<PathBuf>,
    policies: Vec<String>,
    #[serde(default = "one_seed")]
    seeds: Vec<u64>,
    #[serde(default)]
    parameters: Params,
    #[serde(default)]
    options: BTreeMap<String, toml::Value>,
}

fn one_seed() -> Vec<u64> {
    vec![1]
}

#[derive(serde::Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct Params {
    load: Option<Vec<f64>>,
    shake: Option<Vec<f64>>,
    elastic_fraction: Option<Vec<f64>>,
    estimate: Option<Vec<String>>,
}

#[derive(Parser)]
struct OptionsParser {
    #[command(flatten)]
    w: WorkloadArgs,
}

/// Reads one parameter's value of a run.
type RunParam = fn(&Run) -> Option<f64>;

/// One run of the product.
#[derive(Clone, Debug)]
struct Run {
    id: String,
    trace: PathBuf,
    policy: String,
    load: Option<f64>,
    shake: Option<f64>,
    elastic_fraction: Option<f64>,
    estimate: Option<String>,
    seed: u64,
}

fn fmt_num(v: f64) -> String {
    let s = format!("{v}");
    s.replace('.', "p")
}

pub fn run(a: ExperimentArgs) -> CliResult {
    let input = |e: anyhow::Error| CliError::Input(e);
    let file = a.file.display().to_string();
    let text = std::fs::read_to_string(&a.file).map_err(|e| input(anyhow!("{file}: {e}")))?;
    let spec: Spec = toml::from_str(&text).map_err(|e| {
        input(anyhow!(
            "{file}: {}",
            e.to_string().lines().collect::<Vec<_>>().join(" ")
        ))
    })?;
    if spec.traces.is_empty() || spec.policies.is_empty() || spec.seeds.is_empty() {
        return Err(input(anyhow!(
            "{file}: expected at least one trace, one policy and one seed"
        )));
    }
    for p in &spec.policies {
        mini_slurm::policy::build(p).map_err(|e| input(anyhow!("{file}: policies: {e}")))?;
    }
    // Fixed options, as `sim` flags (so they are checked exactly as on the command line).
    let mut argv: Vec<String> = vec!["experiment".into(), "--trace".into(), "-".into()];
    for (k, v) in &spec.options {
        let flag = format!("--{}", k.replace('_', "-"));
        match v {
            toml::Value::Boolean(true) => argv.push(flag),
            toml::Value::Boolean(false) => {}
            toml::Value::String(s) => argv.extend([flag, s.clone()]),
            toml::Value::Integer(i) => argv.extend([flag, i.to_string()]),
            toml::Value::Float(f) => argv.extend([flag, f.to_string()]),
            other => {
                return Err(input(anyhow!(
                    "{file}: options.{k}: expected a string, number or boolean, found {other:?}"
                )));
            }
        }
    }
    let base = OptionsParser::try_parse_from(&argv)
        .map_err(|e| {
            input(anyhow!(
                "{file}: [options]: {}",
                e.to_string()
                    .lines()
                    .next()
                    .unwrap_or("invalid")
                    .trim_start_matches("error: ")
            ))
        })?
        .w;
    if spec.options.contains_key("seed") || spec.options.contains_key("trace") {
        return Err(input(anyhow!(
            "{file}: [options]: `seed` and `trace` are set per run: use `seeds` and `traces`"
        )));
    }
    // Distinct traces, policies and seeds (a run must not be made twice).
    let mut seen_traces = std::collections::BTreeSet::new();
    for t in &spec.traces {
        if !t.is_file() {
            return Err(input(anyhow!(
                "{file}: traces: {}: no such file",
                t.display()
            )));
        }
        let c = std::fs::canonicalize(t).unwrap_or_else(|_| t.clone());
        if !seen_traces.insert(c) {
            return Err(input(anyhow!(
                "{file}: traces: {} is given twice",
                t.display()
            )));
        }
    }
    let mut seen_policies = std::collections::BTreeSet::new();
    for p in &spec.policies {
        let (_, parsed) =
            mini_slurm::policy::build(p).map_err(|e| input(anyhow!("{file}: policies: {e}")))?;
        if !seen_policies.insert(parsed.canonical()) {
            return Err(input(anyhow!("{file}: policies: '{p}' is given twice")));
        }
    }
    let mut seeds = spec.seeds.clone();
    seeds.sort_unstable();
    seeds.dedup();
    if seeds.len() != spec.seeds.len() {
        return Err(input(anyhow!("{file}: seeds: a seed is given twice")));
    }
    let pr = &spec.parameters;
    for (name, v) in [
        ("load", &pr.load),
        ("shake", &pr.shake),
        ("elastic_fraction", &pr.elastic_fraction),
    ] {
        if let Some(v) = v {
            let ok = match name {
                "load" => v.iter().all(|x| (0.001..=100.0).contains(x)),
                "shake" => v.iter().all(|x| (0.0..=1e7).contains(x)),
                _ => v.iter().all(|x| (0.0..=1.0).contains(x)),
            };
            // -0.0 and 0.0, 0.5 and 0.50 are the same value: a run would be made twice.
            let mut norm: Vec<f64> = v.iter().map(|x| x + 0.0).collect();
            norm.sort_by(f64::total_cmp);
            norm.dedup();
            if v.is_empty() || !ok || norm.len() != v.len() {
                return Err(input(anyhow!(
                    "{file}: parameters.{name}: expected a non-empty list of distinct {}",
                    match name {
                        "load" => "loads between 0.001 and 100",
                        "shake" => "seconds between 0 and 10000000",
                        _ => "fractions in [0, 1]",
                    }
                )));
            }
        }
    }
    if let Some(es) = &pr.estimate {
        let mut d = es.clone();
        d.sort();
        d.dedup();
        if es.is_empty() || d.len() != es.len() {
            return Err(input(anyhow!(
                "{file}: parameters.estimate: expected a non-empty list of distinct modes"
            )));
        }
        for e in es {
            e.parse::<mini_slurm::model::EstimateMode>()
                .map_err(|why| input(anyhow!("{file}: parameters.estimate: {why}")))?;
        }
    }
    let out = a.out.clone().or(spec.out.clone()).ok_or_else(|| {
        input(anyhow!(
            "{file}: no output directory: give `out` or --out DIR"
        ))
    })?;
    if out.exists() && !out.is_dir() {
        return Err(input(anyhow!(
            "{}: exists and is not a directory",
            out.display()
        )));
    }
    // The product, in a fixed order.
    let opt = |v: &Option<Vec<f64>>| -> Vec<Option<f64>> {
        v.as_ref()
            .map_or(vec![None], |v| v.iter().map(|x| Some(*x)).collect())
    };
    let estimates: Vec<Option<String>> = pr
        .estimate
        .as_ref()
        .map_or(vec![None], |v| v.iter().map(|x| Some(x.clone())).collect());
    let mut runs = Vec::new();
    let stems: Vec<String> = spec
        .traces
        .iter()
        .map(|t| {
            t.file_name()
                .map_or("trace".into(), |n| n.to_string_lossy().into_owned())
        })
        .collect();
    let trace_slugs = super::compare::unique_slugs(&stems);
    let policy_slugs = super::compare::unique_slugs(&spec.policies);
    for (trace, stem_slug) in spec.traces.iter().zip(&trace_slugs) {
        for (policy, policy_slug) in spec.policies.iter().zip(&policy_slugs) {
            for load in opt(&pr.load) {
                for shake in opt(&pr.shake) {
                    for ef in opt(&pr.elastic_fraction) {
                        for est in &estimates {
                            for &seed in &spec.seeds {
                                let mut id = format!("{stem_slug}__{policy_slug}");
                                if let Some(l) = load {
                                    id.push_str(&format!("__load{}", fmt_num(l)));
                                }
                                if let Some(s) = shake {
                                    id.push_str(&format!("__shake{}", fmt_num(s)));
                                }
                                if let Some(f) = ef {
                                    id.push_str(&format!("__elastic{}", fmt_num(f)));
                                }
                                if let Some(e) = est {
                                    id.push_str(&format!("__est-{e}"));
                                }
                                id.push_str(&format!("__seed{seed}"));
                                runs.push(Run {
                                    id,
                                    trace: trace.clone(),
                                    policy: policy.clone(),
                                    load,
                                    shake,
                                    elastic_fraction: ef,
                                    estimate: est.clone(),
                                    seed,
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    let runs_dir = out.join("runs");
    // What a run is, in full: a run's outputs are reused only when this matches.
    let stamp = |r: &Run| -> String {
        let trace = std::fs::canonicalize(&r.trace).unwrap_or_else(|_| r.trace.clone());
        format!(
            "mini-slurm {}\ntrace {}\npolicy {}\nload {:?}\nshake {:?}\nelastic_fraction {:?}\nestimate {:?}\nseed {}\noptions {}\n",
            env!("CARGO_PKG_VERSION"),
            trace.display(),
            r.policy,
            r.load,
            r.shake,
            r.elastic_fraction,
            r.estimate,
            r.seed,
            argv[3..].join(" ")
        )
    };
    let todo: Vec<Run> = runs
        .iter()
        .filter(|r| {
            let dir = runs_dir.join(&r.id);
            a.force
                || !dir.join("summary.json").exists()
                || std::fs::read_to_string(dir.join("run.txt")).ok() != Some(stamp(r))
        })
        .cloned()
        .collect();
    let bar = if std::io::stderr().is_terminal() && !todo.is_empty() {
        let b =
            ProgressBar::with_draw_target(Some(todo.len() as u64), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} runs [{bar:40}] {pos}/{len} ({eta} left)")
        {
            b.set_style(style.progress_chars("=> "));
        }
        Some(b)
    } else {
        None
    };
    let one = |r: &Run| -> Result<(), CliError> {
        let mut w = base.clone();
        w.trace = r.trace.clone();
        w.seed = r.seed;
        if let Some(f) = r.elastic_fraction {
            w.elastic_fraction = Some(f);
        }
        if let Some(e) = &r.estimate {
            w.estimate = e
                .parse()
                .map_err(|why: String| CliError::Input(anyhow!(why)))?;
        }
        let (load, shake, seed) = (r.load, r.shake, r.seed);
        let unscalable = std::cell::Cell::new(false);
        // The load is measured on the cluster the run uses.
        let p = w.prepare_with(true, &|wl, cpus| {
            if let Some(l) = load {
                let cpus = u32::try_from(cpus).unwrap_or(u32::MAX);
                match transform::offered_load(&wl.jobs, cpus).filter(|x| *x > 0.0) {
                    Some(now) => transform::scale_load(wl, l / now),
                    None => unscalable.set(true),
                }
            }
            if let Some(s) = shake.filter(|s| *s > 0.0) {
                transform::shake(wl, Dur((s * 1000.0) as i64), seed);
            }
        })?;
        if unscalable.get() {
            return Err(CliError::Input(anyhow!(
                "{}: parameters.load: the trace has no load to scale (fewer than two submit times, or no work)",
                r.trace.display()
            )));
        }
        let (result, summary) = p.run(&r.policy, false)?;
        super::sim::write_outputs(
            &runs_dir.join(&r.id),
            &result,
            &p.names,
            &p.jobs.cluster,
            &summary,
        )
        .map_err(CliError::Failed)?;
        write_file(&runs_dir.join(&r.id).join("run.txt"), &stamp(r)).map_err(CliError::Failed)?;
        if let Some(b) = &bar {
            b.inc(1);
        }
        Ok(())
    };
    let threads = a.jobs.unwrap_or_else(default_threads);
    let results = parallel(&todo, threads, &one);
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    for r in results {
        r?;
    }
    // The tidy table, from every run's summary.json (run now or before).
    let mut rows: Vec<(Run, serde_json::Value)> = Vec::new();
    for r in &runs {
        let path = runs_dir.join(&r.id).join("summary.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))
            .map_err(CliError::Failed)?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not JSON", path.display()))
            .map_err(CliError::Failed)?;
        rows.push((r.clone(), v));
    }
    let metric = |v: &serde_json::Value, path: &str| -> f64 {
        path.split('.')
            .try_fold(v, |v, k| v.get(k))
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(f64::NAN)
    };
    const METRICS: [(&str, &str); 9] = [
        ("jobs", "jobs_simulated"),
        ("mean_wait_s", "wait_s.mean"),
        ("median_wait_s", "wait_s.median"),
        ("p95_wait_s", "wait_s.p95"),
        ("mean_bounded_slowdown", "mean_bounded_slowdown"),
        ("mean_turnaround_s", "turnaround_s.mean"),
        ("utilization", "utilization"),
        ("makespan_s", "makespan_s"),
        ("jain_bounded_slowdown", "fairness.jain_bounded_slowdown"),
    ];
    let mut csv = String::from("run,trace,policy");
    for (name, v) in [
        ("load", pr.load.is_some()),
        ("shake_s", pr.shake.is_some()),
        ("elastic_fraction", pr.elastic_fraction.is_some()),
        ("estimate", pr.estimate.is_some()),
    ] {
        if v {
            csv.push(',');
            csv.push_str(name);
        }
    }
    csv.push_str(",seed");
    for (m, _) in METRICS {
        csv.push(',');
        csv.push_str(m);
    }
    csv.push('\n');
    for (r, v) in &rows {
        let _ = write!(
            csv,
            "{},{},{}",
            csv_field(&r.id),
            csv_field(&r.trace.display().to_string()),
            csv_field(&r.policy)
        );
        for x in [r.load, r.shake, r.elastic_fraction].into_iter().zip([
            pr.load.is_some(),
            pr.shake.is_some(),
            pr.elastic_fraction.is_some(),
        ]) {
            if x.1 {
                let _ = write!(csv, ",{}", x.0.unwrap_or(0.0));
            }
        }
        if pr.estimate.is_some() {
            let _ = write!(csv, ",{}", r.estimate.clone().unwrap_or_default());
        }
        let _ = write!(csv, ",{}", r.seed);
        for (_, path) in METRICS {
            let _ = write!(csv, ",{:.6}", metric(v, path));
        }
        csv.push('\n');
    }
    std::fs::create_dir_all(&out)
        .with_context(|| format!("cannot create {}", out.display()))
        .map_err(CliError::Failed)?;
    write_file(&out.join("results.csv"), &csv).map_err(CliError::Failed)?;
    // Report: the headline (each policy's mean over its runs), then each parameter's lines.
    let policies = &spec.policies;
    let mean_of = |pol: &str, path: &str| -> f64 {
        let v: Vec<f64> = rows
            .iter()
            .filter(|(r, _)| r.policy == pol)
            .map(|(_, v)| metric(v, path))
            .collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    let head: Vec<Row> = [
        ("mean wait (s)", "wait_s.mean", Better::Lower, 0),
        (
            "mean bounded slowdown",
            "mean_bounded_slowdown",
            Better::Lower,
            2,
        ),
        ("mean turnaround (s)", "turnaround_s.mean", Better::Lower, 0),
        ("utilization (%)", "utilization", Better::Higher, 2),
        (
            "Jain index of users' bsld",
            "fairness.jain_bounded_slowdown",
            Better::Higher,
            3,
        ),
    ]
    .into_iter()
    .map(|(m, path, better, decimals)| Row {
        metric: m,
        better,
        values: policies
            .iter()
            .map(|p| mean_of(p, path) * if path == "utilization" { 100.0 } else { 1.0 })
            .collect(),
        decimals,
    })
    .collect();
    let mut figures = Vec::new();
    let charts = out.join("charts");
    std::fs::create_dir_all(&charts)
        .with_context(|| format!("cannot create {}", charts.display()))
        .map_err(CliError::Failed)?;
    let params: Vec<(&str, &str, RunParam)> = vec![
        ("load", "target offered load", |r: &Run| r.load),
        ("shake", "input shaking (s)", |r: &Run| r.shake),
        ("elastic_fraction", "fraction of jobs elastic", |r: &Run| {
            r.elastic_fraction
        }),
    ];
    for (pname, plabel, get) in params {
        let values: Vec<f64> = {
            let mut v: Vec<f64> = rows.iter().filter_map(|(r, _)| get(r)).collect();
            v.sort_by(f64::total_cmp);
            v.dedup();
            v
        };
        if values.len() < 2 {
            continue;
        }
        for (mname, mpath, ylabel) in [
            ("bsld", "mean_bounded_slowdown", "mean bounded slowdown"),
            ("wait", "wait_s.mean", "mean wait (s)"),
            ("utilization", "utilization", "utilization"),
        ] {
            let mut series = Vec::new();
            let mut errors = Vec::new();
            for pol in policies {
                let mut pts = Vec::new();
                let mut errs = Vec::new();
                for &x in &values {
                    let ys: Vec<f64> = rows
                        .iter()
                        .filter(|(r, _)| &r.policy == pol && get(r) == Some(x))
                        .map(|(_, v)| metric(v, mpath))
                        .collect();
                    if ys.is_empty() {
                        continue;
                    }
                    let mean = ys.iter().sum::<f64>() / ys.len() as f64;
                    let lo = ys.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    pts.push((x, mean));
                    errs.push((lo, hi));
                }
                series.push(Series {
                    name: pol.clone(),
                    points: pts,
                });
                errors.push(errs);
            }
            let title = format!("{ylabel} vs {plabel}");
            let svg = line_chart_err_svg(&title, plabel, ylabel, &series, &errors)
                .map_err(|e| CliError::Failed(anyhow!(e)))?;
            write_file(&charts.join(format!("{mname}_vs_{pname}.svg")), &svg)
                .map_err(CliError::Failed)?;
            if a.png {
                let bytes = line_chart_err(Format::Png, &title, plabel, ylabel, &series, &errors)
                    .map_err(|e| CliError::Failed(anyhow!(e)))?;
                let path = charts.join(format!("{mname}_vs_{pname}.png"));
                std::fs::write(&path, bytes)
                    .with_context(|| format!("cannot write {}", path.display()))
                    .map_err(CliError::Failed)?;
            }
            figures.push(Figure {
                title,
                svg,
                caption: format!(
                    "Mean over seeds{}; bars span the lowest and highest run.",
                    if rows.len() > policies.len() * values.len() * spec.seeds.len() {
                        " and the other parameters"
                    } else {
                        ""
                    }
                ),
            });
        }
    }
    let title = spec
        .title
        .clone()
        .unwrap_or_else(|| format!("Experiment {file}"));
    let mut inputs = vec![
        ("experiment".to_string(), file.clone()),
        (
            "traces".to_string(),
            spec.traces
                .iter()
                .map(|t| t.display().to_string())
                .collect::<Vec<_>>()
                .join("  "),
        ),
        ("policies".to_string(), policies.join("  ")),
        (
            "seeds".to_string(),
            spec.seeds
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" "),
        ),
        (
            "runs".to_string(),
            format!("{} ({} run now)", runs.len(), todo.len()),
        ),
    ];
    if !spec.options.is_empty() {
        inputs.push(("options".to_string(), argv[3..].join(" ")));
    }
    inputs.push((
        "version".to_string(),
        format!("mini-slurm {}", env!("CARGO_PKG_VERSION")),
    ));
    // The run count says what was skipped; the pages themselves stay identical across reruns.
    let stable: Vec<(String, String)> = inputs
        .iter()
        .map(|(k, v)| {
            if k == "runs" {
                (k.clone(), runs.len().to_string())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    write_file(
        &out.join("summary.md"),
        &summary_md(&title, &stable, policies, &head),
    )
    .map_err(CliError::Failed)?;
    write_file(
        &out.join("index.html"),
        &index_html(&title, &stable, policies, &head, &figures),
    )
    .map_err(CliError::Failed)?;
    if !a.quiet {
        println!(
            "{} runs ({} run now, {} found done); wrote {}/results.csv and {}/index.html",
            runs.len(),
            todo.len(),
            runs.len() - todo.len(),
            out.display(),
            out.display()
        );
    }
    Ok(())
}
