//! `mini-slurm trace gen | convert | info`: synthetic workloads, conversion between SWF, CSV
//! and sacct dumps (with transformations for experiments), and what a trace holds.

use super::{CliError, CliResult};
use anyhow::{Context, anyhow};
use mini_slurm::model::parse_mem_mb;
use mini_slurm::report::cdf_series;
use mini_slurm::report::line_chart_svg;
use mini_slurm::time::{Dur, Time, parse_duration, parse_secs_to_millis};
use mini_slurm::trace::generate::{GenParams, Model, RuntimeModel, generate};
use mini_slurm::trace::info::TraceInfo;
use mini_slurm::trace::write::{swf_dropped, write_csv, write_swf};
use mini_slurm::trace::{TraceFormat, Workload, read_trace_as, transform};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct TraceCmd {
    #[command(subcommand)]
    cmd: Sub,
}

#[derive(clap::Subcommand, Debug)]
enum Sub {
    /// Generate a synthetic workload (models: hpc, ml, burst; see docs/workloads.md)
    #[command(after_help = "Examples:\n  \
        mini-slurm trace gen --model hpc --jobs 100000 --procs 1024 --load 0.8 --seed 7 -o out.csv\n  \
        mini-slurm trace gen --model ml --jobs 5000 --procs 512 --cpus-per-node 64 --gpus-per-node 8 --load 0.7 -o ml.csv\n  \
        mini-slurm trace gen --model burst --jobs 20000 --procs 256 --load 0.6 -o burst.swf.gz")]
    Gen(GenArgs),
    /// Convert between SWF, CSV and sacct dumps (gzip by a .gz name), optionally transformed
    #[command(after_help = "Examples:\n  \
        mini-slurm trace convert traces/KTH-SP2-1996-2.1-cln.swf.gz kth.csv\n  \
        mini-slurm trace convert dump.sacct jobs.csv.gz\n  \
        mini-slurm trace convert kth.csv kth-busy.swf --scale-load 1.3\n  \
        mini-slurm trace convert kth.csv shaken.csv --shake 60 --seed 2")]
    Convert(ConvertArgs),
    /// Print what a trace holds: jobs, users, span, sizes, offered load, estimate accuracy, distributions
    Info(InfoArgs),
}

#[derive(clap::Args, Debug)]
struct GenArgs {
    /// The model: hpc, ml or burst
    #[arg(long, default_value = "hpc")]
    model: Model,
    /// Number of jobs
    #[arg(long, default_value_t = 10_000)]
    jobs: usize,
    /// Machine size in CPUs
    #[arg(long, default_value_t = 256)]
    procs: u32,
    /// Target offered load: Σ(run × CPUs) / (procs × span)
    #[arg(long, default_value_t = 0.8)]
    load: f64,
    /// Seed of the random stream (same seed and parameters, same bytes)
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Number of users (default: 16; ml: 8)
    #[arg(long)]
    users: Option<u32>,
    /// Run-time model of hpc and burst: lognormal or hypergamma
    #[arg(long, default_value = "lognormal")]
    runtime: RuntimeModel,
    /// Amplitude of the daily cycle of arrivals, in [0, 1) (default: hpc 0.5, ml 0.3, burst 0)
    #[arg(long, value_name = "A")]
    daily_cycle: Option<f64>,
    /// hpc, burst: memory requests around this much per CPU (e.g. 2GB)
    #[arg(long, value_name = "SIZE")]
    mem_per_cpu: Option<String>,
    /// ml: CPUs per node
    #[arg(long, default_value_t = 64)]
    cpus_per_node: u32,
    /// ml: GPUs per node
    #[arg(long, default_value_t = 8)]
    gpus_per_node: u32,
    /// ml: memory per GPU
    #[arg(long, default_value = "64GB", value_name = "SIZE")]
    mem_per_gpu: String,
    /// Make this fraction of the CPU-only jobs elastic
    #[arg(long, value_name = "F", default_value_t = 0.0)]
    elastic_fraction: f64,
    /// Range of elastic jobs relative to their size
    #[arg(long, value_name = "LO,HI", default_value = "0.5,2", value_parser = mini_slurm::trace::elastic::parse_range)]
    elastic_range: (f64, f64),
    /// Output file: .csv or .swf, optionally .gz
    #[arg(long, short, value_name = "FILE")]
    out: PathBuf,
}

#[derive(clap::Args, Debug)]
struct ConvertArgs {
    /// Input trace (.swf, .csv, .sacct, optionally .gz; an sacct dump is also recognized by its header)
    input: PathBuf,
    /// Output file: .csv or .swf, optionally .gz
    output: PathBuf,
    /// Read the input as this format: swf, csv or sacct
    #[arg(long, value_name = "FORMAT")]
    from: Option<String>,
    /// Machine size (for the SWF header and --target-load); default: the input's
    #[arg(long, value_name = "N")]
    procs: Option<u32>,
    /// Keep the jobs submitted in [FROM, TO) (seconds, as in the trace)
    #[arg(long, value_name = "FROM,TO")]
    window: Option<String>,
    /// Keep only these users' jobs (comma-separated names)
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    users: Vec<String>,
    /// Keep only these queues' jobs (comma-separated names)
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    queues: Vec<String>,
    /// Multiply the offered load by F (divide the gaps between submissions by F)
    #[arg(long, value_name = "F", conflicts_with = "target_load")]
    scale_load: Option<f64>,
    /// Scale the gaps between submissions so that the offered load is L (needs the machine size)
    #[arg(long, value_name = "L")]
    target_load: Option<f64>,
    /// Input shaking: move each submission by a uniform random offset in [-S, +S] seconds
    #[arg(long, value_name = "S")]
    shake: Option<String>,
    /// Seed of --shake
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Skip malformed input lines instead of stopping
    #[arg(long)]
    lenient: bool,
}

#[derive(clap::Args, Debug)]
struct InfoArgs {
    /// The trace (.swf, .csv, .sacct, optionally .gz)
    trace: PathBuf,
    /// Machine size (default: the trace's header)
    #[arg(long, value_name = "N")]
    procs: Option<u32>,
    /// Read the input as this format: swf, csv or sacct
    #[arg(long, value_name = "FORMAT")]
    from: Option<String>,
    /// Also write charts of the size and run-time distributions into DIR (sizes.svg, runtimes.svg)
    #[arg(long, value_name = "DIR")]
    chart: Option<PathBuf>,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

fn input(e: anyhow::Error) -> CliError {
    CliError::Input(e)
}

pub fn run(c: TraceCmd) -> CliResult {
    match c.cmd {
        Sub::Gen(a) => gen_cmd(a),
        Sub::Convert(a) => convert(a),
        Sub::Info(a) => info(a),
    }
}

/// The output format of a file name.
fn out_format(path: &Path) -> Result<TraceFormat, CliError> {
    match TraceFormat::from_path(path) {
        TraceFormat::Sacct => Err(input(anyhow!(
            "{}: cannot write sacct dumps; write .csv or .swf (optionally .gz)",
            path.display()
        ))),
        f => {
            let name = path.to_string_lossy().to_ascii_lowercase();
            let name = name.strip_suffix(".gz").unwrap_or(&name);
            if !name.ends_with(".csv") && !name.ends_with(".swf") {
                return Err(input(anyhow!(
                    "{}: expected an output name ending in .csv or .swf (optionally .gz)",
                    path.display()
                )));
            }
            Ok(f)
        }
    }
}

/// Writes `w` to `path` (gzip when the name ends in .gz) through a temporary file.
fn write_workload(path: &Path, w: &Workload) -> CliResult {
    let format = out_format(path)?;
    let gz = path.to_string_lossy().to_ascii_lowercase().ends_with(".gz");
    // A temporary name of this process's own, in the same directory (rename is atomic there).
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map_or("trace".into(), |n| n.to_string_lossy()),
        std::process::id()
    ));
    let attempt = || -> anyhow::Result<()> {
        let ctx = || format!("cannot write {}", path.display());
        let f = std::fs::File::create(&tmp).with_context(ctx)?;
        let mut buf = std::io::BufWriter::with_capacity(1 << 16, f);
        let write = |out: &mut dyn Write| match format {
            TraceFormat::Csv => write_csv(out, w),
            _ => write_swf(out, w),
        };
        let f = if gz {
            let mut enc = flate2::write::GzEncoder::new(buf, flate2::Compression::default());
            write(&mut enc).with_context(ctx)?;
            // finish() writes the last block and the trailer, and reports a failure to.
            enc.finish()
                .with_context(ctx)?
                .into_inner()
                .map_err(|e| e.into_error())
                .with_context(ctx)?
        } else {
            write(&mut buf).with_context(ctx)?;
            buf.into_inner()
                .map_err(|e| e.into_error())
                .with_context(ctx)?
        };
        f.sync_all().with_context(ctx)?;
        drop(f);
        std::fs::rename(&tmp, path).with_context(ctx)?;
        Ok(())
    };
    attempt().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        CliError::Failed(e)
    })
}

fn gen_cmd(a: GenArgs) -> CliResult {
    out_format(&a.out)?;
    let mut p = GenParams::new(a.model, a.jobs, a.procs, a.load, a.seed);
    p.runtime = a.runtime;
    if let Some(u) = a.users {
        p.users = u;
    }
    if let Some(d) = a.daily_cycle {
        p.daily_cycle = d;
    }
    p.mem_per_cpu_mb = match &a.mem_per_cpu {
        None => None,
        Some(m) => Some(parse_mem_mb(m).map_err(|e| input(anyhow!("--mem-per-cpu: {e}")))?),
    };
    p.mem_per_gpu_mb =
        parse_mem_mb(&a.mem_per_gpu).map_err(|e| input(anyhow!("--mem-per-gpu: {e}")))?;
    p.cpus_per_node = a.cpus_per_node;
    p.gpus_per_node = a.gpus_per_node;
    if !(0.0..=1.0).contains(&a.elastic_fraction) {
        return Err(input(anyhow!(
            "--elastic-fraction: expected a fraction between 0 and 1, found {}",
            a.elastic_fraction
        )));
    }
    p.elastic_fraction = a.elastic_fraction;
    p.elastic_range = a.elastic_range;
    p.check().map_err(|e| input(anyhow!(e)))?;
    let (w, _) = generate(&p);
    write_workload(&a.out, &w)?;
    let load = transform::offered_load(&w.jobs, a.procs).unwrap_or(0.0);
    eprintln!(
        "wrote {} jobs to {} (offered load {load:.3} on {} CPUs)",
        w.jobs.len(),
        a.out.display(),
        a.procs
    );
    Ok(())
}

fn read_input(path: &Path, from: Option<&str>, lenient: bool) -> Result<Workload, CliError> {
    let format = from
        .map(TraceFormat::parse)
        .transpose()
        .map_err(|e| input(anyhow!("--from: {e}")))?;
    let w = read_trace_as(path, format, lenient).map_err(|e| input(e.into()))?;
    for warning in &w.warnings {
        eprintln!("note: {warning}");
    }
    Ok(w)
}

fn convert(a: ConvertArgs) -> CliResult {
    out_format(&a.output)?;
    let mut w = read_input(&a.input, a.from.as_deref(), a.lenient)?;
    if let Some(p) = a.procs {
        w.declared_procs = Some(p);
    }
    if let Some(win) = &a.window {
        let bad = || {
            input(anyhow!(
                "--window: expected FROM,TO in seconds, found '{win}'"
            ))
        };
        let (f, t) = win.split_once(',').ok_or_else(bad)?;
        let f = parse_secs_to_millis(f).ok_or_else(bad)?;
        let t = parse_secs_to_millis(t).ok_or_else(bad)?;
        if t <= f {
            return Err(bad());
        }
        transform::window(&mut w, Time(f), Time(t));
    }
    if !a.users.is_empty() {
        transform::keep_names(&mut w, |j| j.user, &a.users);
    }
    if !a.queues.is_empty() {
        transform::keep_names(&mut w, |j| j.queue, &a.queues);
    }
    if let Some(f) = a.scale_load {
        if !(1e-6..=1e6).contains(&f) {
            return Err(input(anyhow!(
                "--scale-load: expected a factor between 1e-6 and 1e6, found {f}"
            )));
        }
        transform::scale_load(&mut w, f);
    }
    if let Some(l) = a.target_load {
        let p = w.declared_procs.ok_or_else(|| {
            input(anyhow!(
                "--target-load: the machine size is unknown; give --procs N"
            ))
        })?;
        let now = transform::offered_load(&w.jobs, p)
            .filter(|l| *l > 0.0)
            .ok_or_else(|| {
                input(anyhow!(
                    "--target-load: the trace has no load to scale (fewer than two submit times, or no work)"
                ))
            })?;
        if !(l > 0.0 && l.is_finite()) {
            return Err(input(anyhow!(
                "--target-load: expected a load > 0, found {l}"
            )));
        }
        transform::scale_load(&mut w, l / now);
    }
    if let Some(s) = &a.shake {
        let d = parse_duration(s, 1000).map_err(|e| input(anyhow!("--shake: {e}")))?;
        transform::shake(&mut w, Dur(d.0), a.seed);
    }
    if out_format(&a.output)? == TraceFormat::Swf {
        let dropped = swf_dropped(&w);
        if !dropped.is_empty() {
            eprintln!(
                "note: SWF has no field for {}: they are left out of {}",
                dropped.join(", "),
                a.output.display()
            );
        }
    }
    write_workload(&a.output, &w)?;
    eprintln!("wrote {} jobs to {}", w.jobs.len(), a.output.display());
    Ok(())
}

fn info(a: InfoArgs) -> CliResult {
    let w = read_input(&a.trace, a.from.as_deref(), false)?;
    let i = TraceInfo::compute(&w, a.procs);
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&i).map_err(|e| CliError::Failed(e.into()))?
        );
    } else {
        print!("{}", i.to_text());
    }
    if let Some(dir) = &a.chart {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create {}", dir.display()))
            .map_err(CliError::Failed)?;
        let (sizes, runs) = cdf_series(&w);
        let name = a
            .trace
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        for (file, title, x, s) in [
            (
                "sizes.svg",
                format!("{name}: job sizes"),
                "log2(CPUs)",
                sizes,
            ),
            (
                "runtimes.svg",
                format!("{name}: run times"),
                "log10(run time, s)",
                runs,
            ),
        ] {
            let svg = line_chart_svg(&title, x, "fraction of jobs ≤ x", &[s])
                .map_err(|e| CliError::Failed(e.into()))?;
            let path = dir.join(file);
            std::fs::write(&path, svg)
                .with_context(|| format!("cannot write {}", path.display()))
                .map_err(CliError::Failed)?;
        }
        eprintln!(
            "wrote {}/sizes.svg and {}/runtimes.svg",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}
