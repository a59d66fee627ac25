//! `mini-slurm compare`: several policies on the same workload, run in parallel, and a report
//! (`index.html`, `summary.md`, charts, the data behind them, each run's outputs).

use super::sim::{Prepared, WorkloadArgs, write_outputs};
use super::{CliError, CliResult};
use anyhow::{Context, anyhow};
use mini_slurm::metrics::SimResult;
use mini_slurm::metrics::Summary;
use mini_slurm::report::data::{self, GanttBox};
use mini_slurm::report::html::{Figure, Row, headline, index_html, summary_md};
use mini_slurm::report::{Format, Series, bar_chart, gantt_chart, line_chart_err};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    mini-slurm compare --trace traces/KTH-SP2-1996-2.1-cln.swf.gz --policies fcfs,easy,conservative --out reports/kth\n  \
    mini-slurm compare --trace traces/lublin_256.swf.gz --policies 'easy,easy[order=multifactor]' --out r/ --gantt-hours 12 --color user\n\n\
Writes DIR/index.html (self-contained), DIR/summary.md, DIR/charts/*.svg, DIR/data/*.csv (the data behind each chart) and DIR/runs/<policy>/{jobs.csv,summary.json}.")]
pub struct CompareArgs {
    #[command(flatten)]
    pub w: WorkloadArgs,
    /// Policy specs, comma-separated (commas inside [...] belong to a spec)
    #[arg(long, value_name = "SPECS", default_value = "fcfs,easy,conservative")]
    pub policies: String,
    /// The report's directory
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Length of the Gantt chart's window, hours (it starts where the first policy's queue is longest)
    #[arg(long, value_name = "H", default_value_t = 24.0)]
    pub gantt_hours: f64,
    /// Gantt boxes coloured by `backfill` (backfilled or not) or by `user`
    #[arg(long, value_name = "BY", default_value = "backfill")]
    pub color: String,
    /// Report title (default: the trace's name)
    #[arg(long)]
    pub title: Option<String>,
    /// Runs at a time (default: the machine's cores)
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Also write each chart as PNG (charts/*.png; text in the embedded DejaVu Sans font)
    #[arg(long)]
    pub png: bool,
    /// Print nothing on stdout
    #[arg(long, short)]
    pub quiet: bool,
}

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

pub use mini_slurm::trace::write::csv_field;

/// Runs `items` with `f` on up to `threads` threads; results in input order.
pub fn parallel<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: &(dyn Fn(&T) -> R + Sync),
) -> Vec<R> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, items.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(item) = items.get(i) else {
                        break;
                    };
                    let r = f(item);
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(r);
                    }
                }
            });
        }
    });
    results
        .into_iter()
        .filter_map(|m| m.into_inner().ok().flatten())
        .collect()
}

pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Writes `text` to `path` through a temporary file.
pub fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
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

/// How the report is drawn.
#[derive(Clone, Copy, Debug)]
pub struct ReportOptions {
    /// Length of the Gantt window.
    pub gantt_hours: f64,
    /// Gantt boxes coloured by user (else by backfilled or not).
    pub by_user: bool,
    /// Charts also as PNG.
    pub png: bool,
}

/// The report of `runs` (policy spec, result, summary), written into `dir`.
pub fn write_report(
    dir: &Path,
    title: &str,
    inputs: &[(String, String)],
    p: &Prepared,
    runs: &[(String, SimResult, Summary)],
    opts: ReportOptions,
) -> anyhow::Result<Vec<Row>> {
    let ReportOptions {
        gantt_hours,
        by_user,
        png,
    } = opts;
    let charts = dir.join("charts");
    let datadir = dir.join("data");
    std::fs::create_dir_all(&charts)
        .with_context(|| format!("cannot create {}", charts.display()))?;
    std::fs::create_dir_all(&datadir)
        .with_context(|| format!("cannot create {}", datadir.display()))?;
    let named: Vec<(String, &SimResult)> = runs.iter().map(|(n, r, _)| (n.clone(), r)).collect();
    let names: Vec<String> = runs.iter().map(|r| r.0.clone()).collect();
    let summaries: Vec<&Summary> = runs.iter().map(|r| &r.2).collect();
    let rows = headline(&summaries);
    let mut figures = Vec::new();
    // Each chart: SVG (inlined in the page), and PNG as well when asked.
    type Draw<'d> = &'d dyn Fn(Format) -> Result<Vec<u8>, mini_slurm::report::ChartError>;
    let mut fig =
        |file: &str, title: String, draw: Draw<'_>, caption: &str| -> anyhow::Result<()> {
            let svg = String::from_utf8(draw(Format::Svg).map_err(|e| anyhow!(e))?)?;
            write_file(&charts.join(file), &svg)?;
            if png {
                let bytes = draw(Format::Png).map_err(|e| anyhow!(e))?;
                let path = charts.join(file).with_extension("png");
                std::fs::write(&path, bytes)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            figures.push(Figure {
                title,
                svg,
                caption: caption.to_string(),
            });
            Ok(())
        };
    // Wait-time CDF.
    let cdf = data::wait_cdf(&named);
    write_file(
        &datadir.join("wait_cdf.csv"),
        &series_csv("policy,log10_wait_plus_1_s,fraction", &cdf),
    )?;
    fig(
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
    )?;
    // Bounded slowdown by size and run-time class.
    for (file, t, x, (labels, per)) in [
        (
            "bsld_by_size",
            "Mean bounded slowdown by job size",
            "job size class (CPUs)",
            data::bsld_by_size(&named),
        ),
        (
            "bsld_by_runtime",
            "Mean bounded slowdown by run time",
            "run-time class",
            data::bsld_by_runtime(&named),
        ),
    ] {
        write_file(
            &datadir.join(format!("{file}.csv")),
            &groups_csv("policy,class,mean_bounded_slowdown", &labels, &per),
        )?;
        fig(
            &format!("{file}.svg"),
            t.into(),
            &|f| bar_chart(f, t, x, "mean bounded slowdown (τ = 10 s)", &labels, &per),
            "Lower is better. A class without jobs shows 0.",
        )?;
    }
    // Utilization and queue length over time.
    let (util, queue) = data::over_time(&named, 200);
    let mut s = String::from("policy,day,utilization,queue_length\n");
    for (u, q) in util.iter().zip(&queue) {
        for ((x, y), (_, ql)) in u.points.iter().zip(&q.points) {
            let _ = writeln!(s, "{},{x:.6},{y:.6},{ql:.6}", csv_field(&u.name));
        }
    }
    write_file(&datadir.join("over_time.csv"), &s)?;
    fig(
        "utilization.svg",
        "Utilization over time".into(),
        &|f| {
            line_chart_err(
                f,
                "Utilization over time",
                "time from the first submission (days)",
                "busy CPUs / all CPUs",
                &util,
                &[],
            )
        },
        "Averaged over 200 equal bins of the run.",
    )?;
    fig(
        "queue_length.svg",
        "Queue length over time".into(),
        &|f| {
            line_chart_err(
                f,
                "Queue length over time",
                "time from the first submission (days)",
                "jobs waiting (mean over the bin)",
                &queue,
                &[],
            )
        },
        "Averaged over 200 equal bins of the run.",
    )?;
    // Per-user fairness.
    let (users, per) = data::user_bsld(&named, &p.names, 10);
    write_file(
        &datadir.join("users.csv"),
        &groups_csv("policy,user,mean_bounded_slowdown", &users, &per),
    )?;
    if !users.is_empty() {
        fig(
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
        )?;
    }
    // Gantt charts of one window, where the first policy's queue is longest.
    let t0 = runs
        .iter()
        .flat_map(|r| r.1.jobs.iter().map(|j| j.spec.submit.0))
        .min()
        .unwrap_or(0);
    // The first bin where the queue is longest (a flat queue: the start).
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
        .flat_map(|r| r.1.jobs.iter().map(|j| j.finish.0))
        .max()
        .unwrap_or(t0);
    // The window, within the run (a longer one is the whole run).
    let window_ms = ((gantt_hours.max(0.1) * 3_600_000.0).min((t_end - t0).max(1) as f64)) as i64;
    let from = (t0 + (peak_day * 86_400_000.0) as i64 - window_ms / 2)
        .clamp(t0, (t_end - window_ms).max(t0));
    let queue_order: Vec<mini_slurm::ids::JobId> = p.jobs.jobs.iter().map(|(s, _)| s.id).collect();
    let procs: u32 = p.jobs.cluster.nodes.iter().map(|n| n.cpus).sum();
    let mut gcsv = String::from("policy,job,start_s,end_s,proc_lo,proc_hi,user,backfilled\n");
    let slugs = unique_slugs(&names);
    for (gi, (name, r, _)) in runs.iter().enumerate() {
        let boxes: Vec<GanttBox> =
            data::gantt(r, &p.jobs.cluster, &queue_order, from, from + window_ms);
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
        fig(
            &format!("gantt_{}.svg", slugs[gi]),
            format!("Gantt chart: {name}"),
            &|f| gantt_chart(f, &t, procs, window_ms as f64 / 1000.0, &boxes, by_user),
            if by_user {
                "Each box is a job on its processors, coloured by user."
            } else {
                "Each box is a job on its processors; orange jobs started before a job ahead of them in the queue (backfilled)."
            },
        )?;
    }
    write_file(&datadir.join("gantt.csv"), &gcsv)?;
    write_file(
        &dir.join("summary.md"),
        &summary_md(title, inputs, &names, &rows),
    )?;
    write_file(
        &dir.join("index.html"),
        &index_html(title, inputs, &names, &rows, &figures),
    )?;
    Ok(rows)
}

/// The inputs that make a report reproducible.
pub fn inputs_of(p: &Prepared, policies: &[String]) -> Vec<(String, String)> {
    let c = &p.jobs.cluster;
    let mut v = vec![
        ("trace".to_string(), p.trace_name.clone()),
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
                p.placement_name
            ),
        ),
        ("estimates".to_string(), p.w.estimate.name().to_string()),
        ("policies".to_string(), policies.join("  ")),
    ];
    if let Some(f) = p.w.elastic_fraction {
        v.push((
            "elastic".to_string(),
            format!(
                "fraction {f}, range {},{}, seed {}, speedup {}",
                p.w.elastic_range.0, p.w.elastic_range.1, p.w.seed, p.w.speedup
            ),
        ));
    }
    v.push((
        "version".to_string(),
        format!("mini-slurm {}", env!("CARGO_PKG_VERSION")),
    ));
    v
}

pub fn run(a: CompareArgs) -> CliResult {
    let input = |e: anyhow::Error| CliError::Input(e);
    let specs = split_specs(&a.policies);
    if specs.is_empty() {
        return Err(input(anyhow!(
            "--policies: expected at least one policy spec"
        )));
    }
    let mut canon = std::collections::BTreeSet::new();
    for s in &specs {
        let (_, parsed) =
            mini_slurm::policy::build(s).map_err(|e| input(anyhow!("--policies: {e}")))?;
        if !canon.insert(parsed.canonical()) {
            return Err(input(anyhow!(
                "--policies: '{s}' is given twice (as {})",
                parsed.canonical()
            )));
        }
    }
    let by_user = match a.color.as_str() {
        "user" => true,
        "backfill" => false,
        other => {
            return Err(input(anyhow!(
                "--color: expected backfill or user, found '{other}'"
            )));
        }
    };
    if !(a.gantt_hours > 0.0 && a.gantt_hours.is_finite()) {
        return Err(input(anyhow!("--gantt-hours: expected hours > 0")));
    }
    if a.out.exists() && !a.out.is_dir() {
        return Err(input(anyhow!(
            "--out {}: exists and is not a directory",
            a.out.display()
        )));
    }
    let p = a.w.prepare(a.quiet)?;
    if p.jobs.jobs.is_empty() {
        return Err(input(anyhow!(
            "{}: no job to simulate",
            a.w.trace.display()
        )));
    }
    let threads = a.jobs.unwrap_or_else(default_threads);
    let items: Vec<(String, String)> = specs.iter().cloned().zip(unique_slugs(&specs)).collect();
    // Each run writes its own outputs on its thread.
    let results = parallel(&items, threads, &|(s, dir): &(String, String)| {
        let (result, summary) = p.run(s, false)?;
        write_outputs(
            &a.out.join("runs").join(dir),
            &result,
            &p.names,
            &p.jobs.cluster,
            &summary,
        )
        .map_err(CliError::Failed)?;
        Ok::<_, CliError>((result, summary))
    });
    let mut runs = Vec::new();
    for (spec, r) in specs.iter().zip(results) {
        let (result, summary) = r?;
        runs.push((spec.clone(), result, summary));
    }
    let title = a.title.clone().unwrap_or_else(|| {
        format!(
            "Policy comparison: {}",
            a.w.trace
                .file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into_owned())
        )
    });
    let inputs = inputs_of(&p, &specs);
    let opts = ReportOptions {
        gantt_hours: a.gantt_hours,
        by_user,
        png: a.png,
    };
    write_report(&a.out, &title, &inputs, &p, &runs, opts).map_err(CliError::Failed)?;
    if !a.quiet {
        print!(
            "{}",
            std::fs::read_to_string(a.out.join("summary.md")).unwrap_or_default()
        );
        println!("\nwrote {}/index.html", a.out.display());
    }
    Ok(())
}
