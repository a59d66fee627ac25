//! Several policies on one prepared workload: [`run_policies`] simulates them in parallel
//! threads and writes each run's outputs (`runs/<policy>/`); [`write_report`] writes the
//! comparison (`index.html`, `summary.md`, `charts/*.svg`, and `data/*.csv`, the data behind
//! each chart). The charts, their data and the pages come from [`crate::report`]; this module
//! lays them out in files.

use super::SimError;
use super::output::{create_dir, write_bytes, write_file, write_run};
use super::parallel::parallel;
use super::setup::{Prepared, Run};
use crate::metrics::{SimResult, Summary};
use crate::report::data::{self, GanttBox};
use crate::report::html::{Figure, Row, headline, index_html, summary_md};
use crate::report::{ChartError, Format, Series, bar_chart, gantt_chart, line_chart_err};
use crate::trace::write::csv_field;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Splits `a,b[x=1,y=2],c` at the commas outside brackets.
pub fn split_specs(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut cur) = (0i32, String::new());
    for ch in s.chars() {
        match ch {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur).trim().to_string());
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out.into_iter().filter(|s| !s.is_empty()).collect()
}

/// A file-system-safe name for a policy spec.
pub fn slug(spec: &str) -> String {
    let s: String = spec
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.trim_matches('_').to_string()
}

/// File-system names for specs, unique: a slug that two specs share gets `-2`, `-3`, ....
pub fn unique_slugs(specs: &[String]) -> Vec<String> {
    let mut seen: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    specs
        .iter()
        .map(|s| {
            let base = slug(s);
            let n = seen.entry(base.clone()).or_insert(0);
            *n += 1;
            if *n == 1 { base } else { format!("{base}-{n}") }
        })
        .collect()
}

/// Simulates `p` under each of `specs` on up to `threads` threads; each run writes its
/// `jobs.csv` and `summary.json` into `out/runs/<slug of its spec>/`. The runs in `specs`'
/// order, or the first spec's error.
pub fn run_policies(
    p: &Prepared,
    specs: &[String],
    out: &Path,
    threads: usize,
) -> Result<Vec<(String, Run)>, SimError> {
    let items: Vec<(String, String)> = specs.iter().cloned().zip(unique_slugs(specs)).collect();
    // Each run writes its own outputs on its thread.
    let results = parallel(&items, threads, &|(s, dir): &(String, String)| {
        let run = p.run(s)?;
        write_run(&out.join("runs").join(dir), p, &run)?;
        Ok::<_, SimError>(run)
    });
    specs
        .iter()
        .zip(results)
        .map(|(spec, r)| Ok((spec.clone(), r?)))
        .collect()
}

/// The inputs that make a report reproducible (trace, jobs, cluster, estimates, policies,
/// elastic jobs, version), as (name, value) rows.
pub fn inputs_of(p: &Prepared, policies: &[String]) -> Vec<(String, String)> {
    let c = &p.jobs.cluster;
    let w = &p.setup;
    let mut v = vec![
        ("trace".to_string(), p.trace_name()),
        (
            "jobs".to_string(),
            format!(
                "{} simulated, {} skipped",
                p.jobs.jobs.len(),
                p.jobs.skipped_total()
            ),
        ),
        (
            "cluster".to_string(),
            format!(
                "{} CPUs on {} node(s), placement {}",
                c.total_cpus(),
                c.nodes.len(),
                p.placement
            ),
        ),
        ("estimates".to_string(), w.estimate.name().to_string()),
        ("policies".to_string(), policies.join("  ")),
    ];
    if let Some(f) = w.elastic_fraction {
        v.push((
            "elastic".to_string(),
            format!(
                "fraction {f}, range {},{}, seed {}, speedup {}",
                w.elastic_range.0, w.elastic_range.1, w.seed, w.speedup
            ),
        ));
    }
    v.push((
        "version".to_string(),
        format!("mini-slurm {}", env!("CARGO_PKG_VERSION")),
    ));
    v
}

/// How the report is drawn.
#[derive(Clone, Copy, Debug)]
pub struct ReportOptions {
    /// Length of the Gantt window, hours (it starts where the first policy's queue is longest).
    pub gantt_hours: f64,
    /// Gantt boxes coloured by user (else by backfilled or not).
    pub by_user: bool,
    /// Charts also as PNG.
    pub png: bool,
}

/// The report of `runs` (policy spec and its run, on `p`), written into `dir`: the pages,
/// the charts and their data. Returns the headline table.
pub fn write_report(
    dir: &Path,
    title: &str,
    inputs: &[(String, String)],
    p: &Prepared,
    runs: &[(String, Run)],
    opts: ReportOptions,
) -> Result<Vec<Row>, SimError> {
    let mut out = Figures::new(dir, opts.png)?;
    let named: Vec<(String, &SimResult)> =
        runs.iter().map(|(n, r)| (n.clone(), &r.result)).collect();
    let names: Vec<String> = runs.iter().map(|r| r.0.clone()).collect();
    let summaries: Vec<&Summary> = runs.iter().map(|r| &r.1.summary).collect();
    let rows = headline(&summaries);
    wait_cdf(&mut out, &named)?;
    slowdown_by_class(&mut out, &named)?;
    let queue = over_time(&mut out, &named)?;
    users(&mut out, &named, p)?;
    gantt(&mut out, runs, p, &queue, opts)?;
    write_file(
        &dir.join("summary.md"),
        &summary_md(title, inputs, &names, &rows),
    )?;
    write_file(
        &dir.join("index.html"),
        &index_html(title, inputs, &names, &rows, &out.figures),
    )?;
    Ok(rows)
}

/// Where a report's charts and data go, and the figures drawn so far.
struct Figures {
    charts: PathBuf,
    data: PathBuf,
    png: bool,
    figures: Vec<Figure>,
}

/// Draws a chart in a format.
type Draw<'d> = &'d dyn Fn(Format) -> Result<Vec<u8>, ChartError>;

impl Figures {
    fn new(dir: &Path, png: bool) -> Result<Figures, SimError> {
        let (charts, data) = (dir.join("charts"), dir.join("data"));
        create_dir(&charts)?;
        create_dir(&data)?;
        Ok(Figures {
            charts,
            data,
            png,
            figures: Vec::new(),
        })
    }

    /// A chart as `charts/FILE` (SVG, inlined in the page; PNG as well when asked).
    fn figure(
        &mut self,
        file: &str,
        title: String,
        draw: Draw<'_>,
        caption: &str,
    ) -> Result<(), SimError> {
        let svg = String::from_utf8(draw(Format::Svg)?)?;
        write_file(&self.charts.join(file), &svg)?;
        if self.png {
            let bytes = draw(Format::Png)?;
            write_bytes(&self.charts.join(file).with_extension("png"), &bytes)?;
        }
        self.figures.push(Figure {
            title,
            svg,
            caption: caption.to_string(),
        });
        Ok(())
    }

    /// The data behind a chart as `data/FILE`.
    fn data(&self, file: &str, text: &str) -> Result<(), SimError> {
        write_file(&self.data.join(file), text)
    }
}

fn series_csv(header: &str, series: &[Series]) -> String {
    let mut s = format!("{header}\n");
    for se in series {
        for (x, y) in &se.points {
            let _ = writeln!(s, "{},{x:.6},{y:.6}", csv_field(&se.name));
        }
    }
    s
}

fn groups_csv(header: &str, labels: &[String], per: &[(String, Vec<f64>)]) -> String {
    let mut s = format!("{header}\n");
    for (name, vals) in per {
        for (l, v) in labels.iter().zip(vals) {
            let _ = writeln!(s, "{},{},{v:.6}", csv_field(name), csv_field(l));
        }
    }
    s
}

/// The wait-time CDF.
fn wait_cdf(out: &mut Figures, named: &[(String, &SimResult)]) -> Result<(), SimError> {
    let cdf = data::wait_cdf(named);
    out.data(
        "wait_cdf.csv",
        &series_csv("policy,log10_wait_plus_1_s,fraction", &cdf),
    )?;
    out.figure(
        "wait_cdf.svg",
        "Wait time distribution".into(),
        &|f| {
            line_chart_err(
                f,
                "Wait time CDF",
                "log10(wait + 1 s)   (0 = no wait, 3 ≈ 17 min, 4 ≈ 2.8 h, 5 ≈ 28 h)",
                "fraction of jobs waiting ≤ x",
                &cdf,
                &[],
            )
        },
        "Cumulative distribution of the wait time per policy: higher and further left is better.",
    )
}

/// Bounded slowdown by job size and by run-time class.
fn slowdown_by_class(out: &mut Figures, named: &[(String, &SimResult)]) -> Result<(), SimError> {
    for (file, t, x, (labels, per)) in [
        (
            "bsld_by_size",
            "Mean bounded slowdown by job size",
            "job size class (CPUs)",
            data::bsld_by_size(named),
        ),
        (
            "bsld_by_runtime",
            "Mean bounded slowdown by run time",
            "run-time class",
            data::bsld_by_runtime(named),
        ),
    ] {
        out.data(
            &format!("{file}.csv"),
            &groups_csv("policy,class,mean_bounded_slowdown", &labels, &per),
        )?;
        out.figure(
            &format!("{file}.svg"),
            t.into(),
            &|f| bar_chart(f, t, x, "mean bounded slowdown (τ = 10 s)", &labels, &per),
            "Lower is better. A class without jobs shows 0.",
        )?;
    }
    Ok(())
}

/// Utilization and queue length over time; returns the queue lengths (the Gantt window is
/// where the first policy's queue is longest).
fn over_time(out: &mut Figures, named: &[(String, &SimResult)]) -> Result<Vec<Series>, SimError> {
    let (util, queue) = data::over_time(named, 200);
    let mut s = String::from("policy,day,utilization,queue_length\n");
    for (u, q) in util.iter().zip(&queue) {
        for ((x, y), (_, ql)) in u.points.iter().zip(&q.points) {
            let _ = writeln!(s, "{},{x:.6},{y:.6},{ql:.6}", csv_field(&u.name));
        }
    }
    out.data("over_time.csv", &s)?;
    for (file, title, y, series) in [
        (
            "utilization.svg",
            "Utilization over time",
            "busy CPUs / all CPUs",
            &util,
        ),
        (
            "queue_length.svg",
            "Queue length over time",
            "jobs waiting (mean over the bin)",
            &queue,
        ),
    ] {
        out.figure(
            file,
            title.into(),
            &|f| {
                line_chart_err(
                    f,
                    title,
                    "time from the first submission (days)",
                    y,
                    series,
                    &[],
                )
            },
            "Averaged over 200 equal bins of the run.",
        )?;
    }
    Ok(queue)
}

/// Per-user fairness: the heaviest users' mean bounded slowdown.
fn users(out: &mut Figures, named: &[(String, &SimResult)], p: &Prepared) -> Result<(), SimError> {
    let (users, per) = data::user_bsld(named, &p.names, 10);
    out.data(
        "users.csv",
        &groups_csv("policy,user,mean_bounded_slowdown", &users, &per),
    )?;
    if users.is_empty() {
        return Ok(());
    }
    out.figure(
        "users.svg",
        "Fairness across users".into(),
        &|f| {
            bar_chart(
                f,
                "Mean bounded slowdown of the 10 heaviest users",
                "user (by CPU-time used, heaviest first)",
                "mean bounded slowdown",
                &users,
                &per,
            )
        },
        "Users ordered by the CPU-time their jobs used; similar bars across users mean a fair policy.",
    )
}

/// The Gantt window, in milliseconds: (start of the run, from, length). It is centred on the
/// first bin where the first policy's queue is longest (a flat queue: the start), and lies
/// within the run (a longer one is the whole run).
fn gantt_window(runs: &[(String, Run)], queue: &[Series], hours: f64) -> (i64, i64, i64) {
    let t0 = runs
        .iter()
        .flat_map(|r| r.1.result.jobs.iter().map(|j| j.spec.submit.0))
        .min()
        .unwrap_or(0);
    let peak_day = queue
        .first()
        .and_then(|q| {
            q.points
                .iter()
                .fold(None::<(f64, f64)>, |best, p| match best {
                    Some(b) if b.1 >= p.1 => Some(b),
                    _ => Some(*p),
                })
                .map(|p| p.0)
        })
        .unwrap_or(0.0);
    let t_end = runs
        .iter()
        .flat_map(|r| r.1.result.jobs.iter().map(|j| j.finish.0))
        .max()
        .unwrap_or(t0);
    let window_ms = ((hours.max(0.1) * 3_600_000.0).min((t_end - t0).max(1) as f64)) as i64;
    let from = (t0 + (peak_day * 86_400_000.0) as i64 - window_ms / 2)
        .clamp(t0, (t_end - window_ms).max(t0));
    (t0, from, window_ms)
}

/// One Gantt chart per policy over the same window, and their boxes in `data/gantt.csv`.
fn gantt(
    out: &mut Figures,
    runs: &[(String, Run)],
    p: &Prepared,
    queue: &[Series],
    opts: ReportOptions,
) -> Result<(), SimError> {
    let (t0, from, window_ms) = gantt_window(runs, queue, opts.gantt_hours);
    let queue_order: Vec<crate::ids::JobId> = p.jobs.jobs.iter().map(|(s, _)| s.id).collect();
    let procs: u32 = p.jobs.cluster.nodes.iter().map(|n| n.cpus).sum();
    let mut gcsv = String::from("policy,job,start_s,end_s,proc_lo,proc_hi,user,backfilled\n");
    let names: Vec<String> = runs.iter().map(|r| r.0.clone()).collect();
    let slugs = unique_slugs(&names);
    for ((name, r), slug) in runs.iter().zip(&slugs) {
        let boxes: Vec<GanttBox> = data::gantt(
            &r.result,
            &p.jobs.cluster,
            &queue_order,
            from,
            from + window_ms,
        );
        for b in &boxes {
            let _ = writeln!(
                gcsv,
                "{},{},{:.3},{:.3},{},{},{},{}",
                csv_field(name),
                b.job,
                b.start,
                b.end,
                b.lo,
                b.hi,
                b.user,
                b.backfilled
            );
        }
        let t = format!(
            "{name}: jobs from day {:.2} to {:.2}",
            (from - t0) as f64 / 86_400_000.0,
            (from + window_ms - t0) as f64 / 86_400_000.0
        );
        out.figure(
            &format!("gantt_{slug}.svg"),
            format!("Gantt chart: {name}"),
            &|f| gantt_chart(f, &t, procs, window_ms as f64 / 1000.0, &boxes, opts.by_user),
            if opts.by_user {
                "Each box is a job on its processors, coloured by user."
            } else {
                "Each box is a job on its processors; orange jobs started before a job ahead of them in the queue (backfilled)."
            },
        )?;
    }
    out.data("gantt.csv", &gcsv)
}
