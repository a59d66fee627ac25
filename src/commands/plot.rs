//! `mini-slurm plot`: a metric against a parameter over several runs' `summary.json`, one
//! line per group — e.g. mean bounded slowdown against the elastic fraction, per policy.

use super::{CliError, CliResult};
use anyhow::{Context, anyhow};
use mini_slurm::report::{Format, Series, line_chart_err};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
#[command(after_help = "Example:\n  \
    for f in 0 0.5 1; do for p in fcfs easy; do\n    \
    mini-slurm sim --trace traces/KTH-SP2-1996-2.1-cln.swf.gz --policy $p --elastic-fraction $f --out runs/$p-$f -q\n  \
    done; done\n  \
    mini-slurm plot --x elastic_fraction --y mean_bounded_slowdown --by policy --out bsld.svg runs/*/summary.json\n\n\
Fields are paths into summary.json with dots (e.g. elastic.resizes_per_elastic_job, wait_s.mean); see docs/output-schema.md.")]
pub struct PlotArgs {
    /// Field for the x axis (a number)
    #[arg(long, value_name = "FIELD")]
    x: String,
    /// Field for the y axis (a number)
    #[arg(long, value_name = "FIELD")]
    y: String,
    /// Field that names the lines (default: one line)
    #[arg(long, value_name = "FIELD")]
    by: Option<String>,
    /// Chart title (default: "Y by X")
    #[arg(long)]
    title: Option<String>,
    /// Axis labels (default: the field names)
    #[arg(long, value_name = "TEXT")]
    x_label: Option<String>,
    #[arg(long, value_name = "TEXT")]
    y_label: Option<String>,
    /// The chart to write: FILE.svg, or FILE.png for a PNG image
    #[arg(long, short, value_name = "FILE.svg")]
    out: PathBuf,
    /// summary.json files of the runs
    #[arg(required = true, value_name = "SUMMARY")]
    summaries: Vec<PathBuf>,
}

fn field<'v>(v: &'v serde_json::Value, path: &str) -> Option<&'v serde_json::Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

pub fn run(a: PlotArgs) -> CliResult {
    let input = |e: anyhow::Error| CliError::Input(e);
    let mut groups: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for p in &a.summaries {
        let text =
            std::fs::read_to_string(p).map_err(|e| input(anyhow!("{}: {e}", p.display())))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| input(anyhow!("{}: not JSON: {e}", p.display())))?;
        let num = |f: &str, flag: &str| {
            field(&v, f).and_then(serde_json::Value::as_f64).ok_or_else(|| {
                input(anyhow!(
                    "{}: {flag} {f}: no such number in the file (fields are dotted paths into summary.json)",
                    p.display()
                ))
            })
        };
        let (x, y) = (num(&a.x, "--x")?, num(&a.y, "--y")?);
        let name = match &a.by {
            None => a.y.clone(),
            Some(f) => match field(&v, f) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
                    other.to_string()
                }
                _ => {
                    return Err(input(anyhow!(
                        "{}: --by {f}: no such field in the file",
                        p.display()
                    )));
                }
            },
        };
        groups.entry(name).or_default().push((x, y));
    }
    let series: Vec<Series> = groups
        .into_iter()
        .map(|(name, mut points)| {
            points.sort_by(|p, q| p.0.total_cmp(&q.0).then(p.1.total_cmp(&q.1)));
            Series { name, points }
        })
        .collect();
    let title = a
        .title
        .clone()
        .unwrap_or_else(|| format!("{} by {}", a.y, a.x));
    // PNG for a .png name, else SVG.
    let format = if a
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"))
    {
        Format::Png
    } else {
        Format::Svg
    };
    let bytes = line_chart_err(
        format,
        &title,
        a.x_label.as_deref().unwrap_or(&a.x),
        a.y_label.as_deref().unwrap_or(&a.y),
        &series,
        &[],
    )
    .map_err(|e| CliError::Failed(e.into()))?;
    let tmp = a.out.with_extension("tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, &a.out))
        .with_context(|| format!("cannot write {}", a.out.display()))
        .map_err(CliError::Failed)?;
    // The data behind the chart, as a table.
    println!("{:<24} {:>14} {:>14}", "line", a.x, a.y);
    for s in &series {
        for (x, y) in &s.points {
            println!("{:<24} {x:>14.6} {y:>14.6}", s.name);
        }
    }
    Ok(())
}
