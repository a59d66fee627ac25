//! An experiment's results, from every run's `summary.json` (run now or before): the tidy
//! `results.csv` (one row per run, no host timings: the same file gives the same bytes), the
//! headline table (each policy's mean over its runs), and for each parameter with several
//! values, charts of three metrics against it (one line per policy, error bars from the lowest
//! to the highest run).

use super::{Plan, Point};
use crate::model::EstimateMode;
use crate::report::html::{Better, Figure, Row, index_html, summary_md};
use crate::report::{Format, Series, line_chart_err, line_chart_err_svg};
use crate::sim::SimError;
use crate::sim::output::{create_dir, write_bytes, write_file};
use crate::trace::write::csv_field;
use serde_json::Value;
use std::fmt::Write as _;

/// The columns of `results.csv` after the run's inputs: name and path in `summary.json`.
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

/// A run and its summary.
type Rows = [(Point, Value)];

/// Reads one parameter's value of a run.
type Param = fn(&Point) -> Option<f64>;

/// A metric of a summary by its dotted path (NaN when absent).
fn metric(v: &Value, path: &str) -> f64 {
    path.split('.')
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_f64)
        .unwrap_or(f64::NAN)
}

impl Plan<'_> {
    /// Writes `results.csv`, `summary.md`, `index.html` and `charts/` (PNG as well with `png`)
    /// from every run's `summary.json`.
    pub fn write_report(&self, png: bool) -> Result<(), SimError> {
        let rows = self.read_rows()?;
        create_dir(&self.out)?;
        write_file(&self.out.join("results.csv"), &self.results_csv(&rows))?;
        let head = self.headline(&rows);
        let figures = self.charts(&rows, png)?;
        let title = self.experiment.title();
        let inputs = self.inputs();
        let policies = &self.experiment.policies;
        write_file(
            &self.out.join("summary.md"),
            &summary_md(&title, &inputs, policies, &head),
        )?;
        write_file(
            &self.out.join("index.html"),
            &index_html(&title, &inputs, policies, &head, &figures),
        )
    }

    /// Every run's summary, in the grid's order.
    fn read_rows(&self) -> Result<Vec<(Point, Value)>, SimError> {
        let mut rows = Vec::new();
        for r in &self.runs {
            let path = self.dir(r).join("summary.json");
            let text = std::fs::read_to_string(&path).map_err(|source| SimError::Read {
                path: path.clone(),
                source,
            })?;
            let v: Value =
                serde_json::from_str(&text).map_err(|source| SimError::NotJson { path, source })?;
            rows.push((r.clone(), v));
        }
        Ok(rows)
    }

    /// `results.csv`: the run, its trace, policy, the parameters given, seed, and the metrics.
    fn results_csv(&self, rows: &Rows) -> String {
        let pr = &self.experiment.parameters;
        let given = [
            pr.load.is_some(),
            pr.shake.is_some(),
            pr.elastic_fraction.is_some(),
        ];
        let mut csv = String::from("run,trace,policy");
        for (name, v) in ["load", "shake_s", "elastic_fraction", "estimate"]
            .into_iter()
            .zip([given[0], given[1], given[2], pr.estimate.is_some()])
        {
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
        for (r, v) in rows {
            let _ = write!(
                csv,
                "{},{},{}",
                csv_field(&r.id),
                csv_field(&r.trace.display().to_string()),
                csv_field(&r.policy)
            );
            for (x, g) in [r.load, r.shake, r.elastic_fraction].into_iter().zip(given) {
                if g {
                    let _ = write!(csv, ",{}", x.unwrap_or(0.0));
                }
            }
            if pr.estimate.is_some() {
                let _ = write!(csv, ",{}", r.estimate.map_or("", EstimateMode::name));
            }
            let _ = write!(csv, ",{}", r.seed);
            for (_, path) in METRICS {
                let _ = write!(csv, ",{:.6}", metric(v, path));
            }
            csv.push('\n');
        }
        csv
    }

    /// The headline table: each policy's mean over its runs.
    fn headline(&self, rows: &Rows) -> Vec<Row> {
        let mean_of = |pol: &str, path: &str| -> f64 {
            let v: Vec<f64> = rows
                .iter()
                .filter(|(r, _)| r.policy == pol)
                .map(|(_, v)| metric(v, path))
                .collect();
            v.iter().sum::<f64>() / v.len().max(1) as f64
        };
        [
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
            values: self
                .experiment
                .policies
                .iter()
                .map(|p| mean_of(p, path) * if path == "utilization" { 100.0 } else { 1.0 })
                .collect(),
            decimals,
        })
        .collect()
    }

    /// For each parameter with two values or more: mean bounded slowdown, mean wait and
    /// utilization against it.
    fn charts(&self, rows: &Rows, png: bool) -> Result<Vec<Figure>, SimError> {
        let mut figures = Vec::new();
        let charts = self.out.join("charts");
        create_dir(&charts)?;
        let params: [(&str, &str, Param); 3] = [
            ("load", "target offered load", |r| r.load),
            ("shake", "input shaking (s)", |r| r.shake),
            ("elastic_fraction", "fraction of jobs elastic", |r| {
                r.elastic_fraction
            }),
        ];
        for (pname, plabel, get) in params {
            let mut values: Vec<f64> = rows.iter().filter_map(|(r, _)| get(r)).collect();
            values.sort_by(f64::total_cmp);
            values.dedup();
            if values.len() < 2 {
                continue;
            }
            for (mname, mpath, ylabel) in [
                ("bsld", "mean_bounded_slowdown", "mean bounded slowdown"),
                ("wait", "wait_s.mean", "mean wait (s)"),
                ("utilization", "utilization", "utilization"),
            ] {
                let (series, errors) = self.lines(rows, get, &values, mpath);
                let title = format!("{ylabel} vs {plabel}");
                let svg = line_chart_err_svg(&title, plabel, ylabel, &series, &errors)?;
                let file = charts.join(format!("{mname}_vs_{pname}.svg"));
                write_file(&file, &svg)?;
                if png {
                    let bytes =
                        line_chart_err(Format::Png, &title, plabel, ylabel, &series, &errors)?;
                    write_bytes(&file.with_extension("png"), &bytes)?;
                }
                let e = self.experiment;
                let others = rows.len() > e.policies.len() * values.len() * e.seeds.len();
                figures.push(Figure {
                    title,
                    svg,
                    caption: format!(
                        "Mean over seeds{}; bars span the lowest and highest run.",
                        if others {
                            " and the other parameters"
                        } else {
                            ""
                        }
                    ),
                });
            }
        }
        Ok(figures)
    }

    /// One line per policy: the metric at `mpath` against the parameter `get` at `values`,
    /// points at the mean over the runs, error bars from the lowest to the highest.
    fn lines(
        &self,
        rows: &Rows,
        get: Param,
        values: &[f64],
        mpath: &str,
    ) -> (Vec<Series>, Vec<Vec<(f64, f64)>>) {
        let mut series = Vec::new();
        let mut errors = Vec::new();
        for pol in &self.experiment.policies {
            let mut pts = Vec::new();
            let mut errs = Vec::new();
            for &x in values {
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
        (series, errors)
    }

    /// The inputs shown on the pages. The run count leaves out how many ran now, so the pages
    /// stay identical across reruns.
    fn inputs(&self) -> Vec<(String, String)> {
        let e = self.experiment;
        let mut inputs = vec![
            ("experiment".to_string(), e.file.clone()),
            (
                "traces".to_string(),
                e.traces
                    .iter()
                    .map(|t| t.display().to_string())
                    .collect::<Vec<_>>()
                    .join("  "),
            ),
            ("policies".to_string(), e.policies.join("  ")),
            (
                "seeds".to_string(),
                e.seeds
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            ("runs".to_string(), self.runs.len().to_string()),
        ];
        if let Some(o) = &e.options {
            inputs.push(("options".to_string(), o.join(" ")));
        }
        inputs.push((
            "version".to_string(),
            format!("mini-slurm {}", env!("CARGO_PKG_VERSION")),
        ));
        inputs
    }
}
