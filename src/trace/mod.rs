//! Workload traces: readers that turn a file into a [`Workload`], and the one place where trace
//! records become simulated jobs ([`Workload::prepare`]).
//!
//! Readers keep what the file says (including values the simulator will refuse, such as a
//! negative run time) and the line each job came from; [`Workload::prepare`] applies the
//! semantics' reading rules (§2): skip jobs that cannot run, count every skip by reason, derive
//! estimates, and stable-sort by submit time, which defines the queue order.

mod chunks;
pub mod csv;
pub mod elastic;
pub mod generate;
pub mod info;
mod prepare;
pub mod sacct;
pub mod swf;
pub mod transform;
pub mod write;

pub use prepare::JobPreparer;

use crate::ids::{FastMap, JobId, Names, Sym};
use crate::model::{Cluster, EstimateMode, JobSpec, JobTruth};
use crate::sched::limits::{LimitState, Limits, PassUsage};
use crate::time::{Dur, Time};
use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One job as the trace gives it.
#[derive(Clone, Debug)]
pub struct TraceJob {
    pub id: JobId,
    pub submit: Time,
    /// May be negative (unknown): such jobs are skipped.
    pub runtime: Dur,
    /// Processors after the field-5 → field-8 fallback; may be ≤ 0: such jobs are skipped.
    pub procs: i64,
    /// The user's requested time; `None` when the trace gives none (or ≤ 0).
    pub requested: Option<Dur>,
    pub priority: i64,
    pub user: Sym,
    pub group: Sym,
    pub queue: Sym,
    pub partition: Sym,
    /// Exact node count, if given.
    pub nodes: Option<u32>,
    pub mem_mb: Option<u64>,
    pub gpus: u32,
    pub qos: Sym,
    pub nice: i32,
    /// Elastic range (CSV `min_cpus`/`max_cpus`), checked against `procs` by the reader.
    pub elastic: Option<crate::model::ElasticRange>,
    /// Speedup model of an elastic job (CSV `speedup`); the run's default when `None`.
    pub speedup: Option<crate::model::Speedup>,
    /// 1-based line in the source file.
    pub line: u64,
}

/// Why a trace job was left out of a simulation (semantics §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    /// Run time < 0 (unknown).
    NegativeRuntime,
    /// No processor count (≤ 0 after the fallback to the requested count).
    NoProcessors,
    /// More processors than the machine has.
    TooManyProcessors,
    /// A malformed line, skipped because the run was lenient.
    MalformedLine,
    /// The job names a partition the cluster does not have.
    UnknownPartition,
    /// No set of the partition's nodes can ever hold the job, or it breaks a partition limit
    /// (MaxTime, MaxNodes).
    CannotRunInPartition,
    /// The job alone exceeds its user's or account's limit (`--user-limit`, `--account-limit`).
    ExceedsLimit,
}

impl SkipReason {
    pub const ALL: [SkipReason; 7] = [
        SkipReason::NegativeRuntime,
        SkipReason::NoProcessors,
        SkipReason::TooManyProcessors,
        SkipReason::MalformedLine,
        SkipReason::UnknownPartition,
        SkipReason::CannotRunInPartition,
        SkipReason::ExceedsLimit,
    ];

    /// The key used in `summary.json` and on stderr.
    pub fn key(self) -> &'static str {
        match self {
            SkipReason::NegativeRuntime => "negative_runtime",
            SkipReason::NoProcessors => "no_processors",
            SkipReason::TooManyProcessors => "too_many_processors",
            SkipReason::MalformedLine => "malformed_line",
            SkipReason::UnknownPartition => "unknown_partition",
            SkipReason::CannotRunInPartition => "cannot_run_in_partition",
            SkipReason::ExceedsLimit => "exceeds_limit",
        }
    }
}

/// A trace read into memory.
#[derive(Clone, Debug, Default)]
pub struct Workload {
    pub source: PathBuf,
    pub jobs: Vec<TraceJob>,
    /// The machine size the trace declares (SWF `MaxProcs`, else `MaxNodes`).
    pub declared_procs: Option<u32>,
    pub names: Names,
    /// Lines skipped by a lenient reader, with their line numbers.
    pub malformed_lines: Vec<u64>,
    /// Notes for the user (unknown CSV columns, ...); not errors.
    pub warnings: Vec<String>,
    /// Whether `partition` holds names to match against the cluster's partitions (CSV), rather
    /// than the trace's own numbers (SWF, whose jobs go to the default partition).
    pub partitions_named: bool,
}

/// How to turn a workload into a simulation input.
#[derive(Clone, Copy, Debug, Default)]
pub struct PrepareOptions {
    pub estimate: EstimateMode,
    /// Kill jobs at their requested time (Slurm's behaviour) instead of replaying their run time.
    pub kill_at_limit: bool,
    /// Slurm's `--switches=COUNT@MAX_WAIT` for every job.
    pub switches: Option<(u32, Dur)>,
    /// Speedup model of elastic jobs whose trace gives none.
    pub speedup: crate::model::Speedup,
}

/// The jobs of one simulation, in queue order (stable-sorted by submit time), with their truth,
/// and the cluster they run on.
#[derive(Clone, Debug)]
pub struct SimJobs {
    pub cluster: Cluster,
    /// Specs are shared with the engine and the results (`Arc`): never copied per job.
    pub jobs: Vec<(Arc<JobSpec>, JobTruth)>,
    pub skipped: BTreeMap<SkipReason, u64>,
    /// For the reasons that depend on the machine, the first skipped job and why, in words
    /// ("job 12: no set of its nodes holds 4 CPUs with 0 MB and 1 GPUs per node").
    pub skip_examples: BTreeMap<SkipReason, String>,
}

impl SimJobs {
    /// Leaves out (and counts) the jobs that alone exceed a user or account limit: they could
    /// never start.
    pub fn drop_over_limit(&mut self, limits: &Limits) {
        let state = LimitState::new(*limits);
        let none = PassUsage::default();
        let before = self.jobs.len();
        self.jobs.retain(|(s, _)| state.blocked(s, &none).is_none());
        let n = (before - self.jobs.len()) as u64;
        if n > 0 {
            *self.skipped.entry(SkipReason::ExceedsLimit).or_insert(0) += n;
        }
    }

    /// CPUs in the cluster (P).
    pub fn procs(&self) -> u64 {
        self.cluster.total_cpus()
    }

    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
}

impl Workload {
    /// The machine size a trace alone implies: `procs`, else its `MaxProcs`/`MaxNodes`.
    pub fn machine_procs(&self, procs: Option<u32>) -> Result<u32, TraceError> {
        match procs.or(self.declared_procs) {
            Some(p) if p > 0 => Ok(p),
            _ => Err(TraceError::new(
                &self.source,
                None,
                TraceErrorKind::NoMachineSize,
            )),
        }
    }
}

/// Which reader a file needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceFormat {
    Swf,
    Csv,
    /// `sacct --parsable2` output.
    Sacct,
}

impl TraceFormat {
    /// By extension (`.swf`, `.csv`, `.sacct`, each optionally `.gz`); anything else is read as
    /// SWF unless its first line is an sacct header.
    pub fn from_path(path: &Path) -> TraceFormat {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        if name.ends_with(".csv") {
            TraceFormat::Csv
        } else if name.ends_with(".sacct") {
            TraceFormat::Sacct
        } else {
            TraceFormat::Swf
        }
    }

    pub fn parse(s: &str) -> Result<TraceFormat, String> {
        match s {
            "swf" => Ok(TraceFormat::Swf),
            "csv" => Ok(TraceFormat::Csv),
            "sacct" => Ok(TraceFormat::Sacct),
            _ => Err(format!(
                "unknown trace format '{s}' (expected swf, csv or sacct)"
            )),
        }
    }
}

/// Reads a trace file of any format; gzip is detected by its magic bytes, the format by the
/// file name (or an sacct header on the first line).
pub fn read_trace(path: &Path, lenient: bool) -> Result<Workload, TraceError> {
    read_trace_as(path, None, lenient)
}

/// Reads a trace file in `format`, or the one its name and content say.
pub fn read_trace_as(
    path: &Path,
    format: Option<TraceFormat>,
    lenient: bool,
) -> Result<Workload, TraceError> {
    let mut reader = open(path)?;
    let format = match format {
        Some(f) => f,
        None => detect_format(&mut reader, path)?,
    };
    match format {
        TraceFormat::Swf => swf::read(reader, path, lenient),
        TraceFormat::Csv => csv::read(reader, path, lenient),
        TraceFormat::Sacct => sacct::read(reader, path, lenient),
    }
}

/// The format of the file `path`, open as `reader`: by its name, or sacct when a file not named
/// as CSV or sacct starts with an sacct header line.
pub fn detect_format(
    reader: &mut Box<dyn BufRead + Send>,
    path: &Path,
) -> Result<TraceFormat, TraceError> {
    Ok(match TraceFormat::from_path(path) {
        TraceFormat::Swf => {
            let head = reader
                .fill_buf()
                .map_err(|e| TraceError::new(path, None, TraceErrorKind::Io(e)))?;
            let first = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
            if sacct::looks_like_sacct(&String::from_utf8_lossy(first)) {
                TraceFormat::Sacct
            } else {
                TraceFormat::Swf
            }
        }
        f => f,
    })
}

/// Opens a file, transparently decompressing gzip.
pub fn open(path: &Path) -> Result<Box<dyn BufRead + Send>, TraceError> {
    let io = |e| TraceError::new(path, None, TraceErrorKind::Io(e));
    let file = std::fs::File::open(path).map_err(io)?;
    let mut r = BufReader::with_capacity(1 << 16, file);
    let gz = r.fill_buf().map_err(io)?.starts_with(&[0x1f, 0x8b]);
    if gz {
        let d = flate2::bufread::MultiGzDecoder::new(r);
        Ok(Box::new(BufReader::with_capacity(1 << 16, d)))
    } else {
        Ok(Box::new(r))
    }
}

/// Reads all of a reader into a string, naming the file on failure (bad gzip, bad UTF-8).
pub(crate) fn read_all(mut r: Box<dyn BufRead>, path: &Path) -> Result<String, TraceError> {
    let mut bytes = Vec::new();
    r.read_to_end(&mut bytes)
        .map_err(|e| TraceError::new(path, None, TraceErrorKind::Io(e)))?;
    String::from_utf8(bytes).map_err(|e| {
        let upto = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = upto.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        TraceError::new(path, Some(line), TraceErrorKind::NotUtf8)
    })
}

/// An error reading a trace, naming the file and, where it applies, the line.
#[derive(Debug, thiserror::Error)]
pub struct TraceError {
    pub path: PathBuf,
    pub line: Option<u64>,
    pub kind: TraceErrorKind,
}

impl TraceError {
    pub fn new(path: &Path, line: Option<u64>, kind: TraceErrorKind) -> TraceError {
        TraceError {
            path: path.to_path_buf(),
            line,
            kind,
        }
    }
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.path.display(), l, self.kind),
            None => write!(f, "{}: {}", self.path.display(), self.kind),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TraceErrorKind {
    #[error("{0}")]
    Io(#[source] std::io::Error),
    #[error("not valid UTF-8 text")]
    NotUtf8,
    #[error("expected 18 whitespace-separated fields, found {0}")]
    FieldCount(usize),
    #[error("field {field} ({name}): expected a number, found '{value}'")]
    NotNumeric {
        field: usize,
        name: &'static str,
        value: String,
    },
    #[error("column '{column}': {expected}, found '{value}'")]
    BadValue {
        column: String,
        expected: String,
        value: String,
    },
    #[error("missing required column '{column}' (required: {required})")]
    MissingColumn {
        column: &'static str,
        /// The format's required columns, as a user reads them.
        required: &'static str,
    },
    #[error("duplicate column '{0}'")]
    DuplicateColumn(String),
    #[error("{0}")]
    Csv(String),
    #[error("duplicate job id {id} (first seen on line {first})")]
    DuplicateId { id: JobId, first: u64 },
    #[error(
        "the machine size is unknown: the trace has no MaxProcs or MaxNodes header; give --procs N"
    )]
    NoMachineSize,
    #[error("the trace holds no job")]
    Empty,
}

/// Rejects a job id seen before, naming the line it was first seen on. Traces mostly number
/// their jobs in increasing order: while every id exceeds the largest so far no set is needed;
/// the first id that does not builds the set (id → first line) from the jobs accepted so far.
#[derive(Debug, Default)]
pub(crate) struct UniqueIds {
    max: Option<JobId>,
    seen: Option<FastMap<JobId, u64>>,
}

impl UniqueIds {
    /// Checks `id` (on `line`) against `accepted`, the jobs accepted before it.
    pub(crate) fn check(
        &mut self,
        accepted: &[TraceJob],
        id: JobId,
        line: u64,
        path: &Path,
    ) -> Result<(), TraceError> {
        if self.seen.is_none() {
            if self.max.is_none_or(|m| id > m) {
                self.max = Some(id);
                return Ok(());
            }
            let mut seen = FastMap::default();
            seen.reserve(accepted.len());
            for j in accepted {
                seen.entry(j.id).or_insert(j.line);
            }
            self.seen = Some(seen);
        }
        let seen = self.seen.get_or_insert_with(FastMap::default);
        if let Some(&first) = seen.get(&id) {
            return Err(TraceError::new(
                path,
                Some(line),
                TraceErrorKind::DuplicateId { id, first },
            ));
        }
        seen.insert(id, line);
        Ok(())
    }
}
