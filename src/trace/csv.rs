//! mini-slurm's own CSV trace format.
//!
//! A header row names the columns, in any order. Required: `id`, `submit`, `runtime`, `cpus`.
//! Optional: `walltime`, `user`, `group`, `priority`, `mem` (per node), `gpus` (per node),
//! `nodes`, `partition`, `queue`, `qos` (a name; its priority comes from the accounts file's `qos`
//! lines), `nice` (an integer subtracted from the multifactor priority), and for elastic jobs
//! `min_cpus`, `max_cpus` (either makes the job elastic; the other defaults to `cpus`) and
//! `speedup` (`linear`, `amdahl:F`, `downey:A:SIGMA`; the run's `--speedup` when empty).
//! Unknown columns are ignored with a warning, so files exported from other tools can carry
//! extra columns; later features add their columns to [`KNOWN`]. Times are seconds (decimals
//! allowed) or, for `runtime` and `walltime`, Slurm's `[D-]HH:MM:SS`; `mem` accepts `4GB`,
//! `512M` or plain megabytes. An empty cell means "not given". Comment lines start with `#`;
//! one before the header of the form `# MaxProcs: N` gives the machine size. Full reference:
//! `docs/trace-formats.md`.

use super::{TraceError, TraceErrorKind, TraceJob, UniqueIds, Workload, read_all};
use crate::ids::{JobId, Names};
use crate::model::parse_mem_mb;
use crate::time::{Dur, MS_PER_SEC, Time, parse_duration, parse_secs_to_millis};
use std::io::BufRead;
use std::path::Path;

/// Columns this reader understands.
pub const KNOWN: [&str; 19] = [
    "id",
    "submit",
    "runtime",
    "cpus",
    "walltime",
    "user",
    "group",
    "priority",
    "mem",
    "gpus",
    "partition",
    "queue",
    "nodes",
    "cpus_per_node",
    "qos",
    "nice",
    "min_cpus",
    "max_cpus",
    "speedup",
];
const REQUIRED: [&str; 3] = ["id", "submit", "runtime"];

/// The known columns a file has, with their positions.
#[derive(Default)]
struct Columns(Vec<(&'static str, usize)>);

impl Columns {
    /// Adds a column; whether it was there already.
    fn insert(&mut self, name: &'static str, i: usize) -> bool {
        let dup = self.contains(name);
        self.0.push((name, i));
        dup
    }
    fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|c| c.0 == name)
    }
    fn get(&self, name: &str) -> Option<usize> {
        self.0.iter().find(|c| c.0 == name).map(|c| c.1)
    }
}

/// Reads a CSV trace. With `lenient`, malformed rows are skipped and counted.
pub fn read(reader: Box<dyn BufRead>, path: &Path, lenient: bool) -> Result<Workload, TraceError> {
    let text = read_all(reader, path)?;
    let mut rdr = ::csv::ReaderBuilder::new()
        .trim(::csv::Trim::All)
        .comment(Some(b'#'))
        .flexible(false)
        .from_reader(text.as_bytes());
    let err = |line: Option<u64>, kind| TraceError::new(path, line, kind);
    let headers = rdr
        .headers()
        .map_err(|e| err(Some(1), TraceErrorKind::Csv(e.to_string())))?
        .clone();
    // Column name → position: a short list searched linearly (faster than hashing per cell).
    let mut col = Columns::default();
    let mut w = Workload {
        source: path.to_path_buf(),
        ..Workload::default()
    };
    // A comment `# MaxProcs: N` (written by `trace gen` and `trace convert`) gives the machine
    // size, as SWF's header does.
    w.declared_procs = text
        .lines()
        .take_while(|l| l.trim_start().starts_with('#') || l.trim().is_empty())
        .find_map(|l| super::swf::header_value(l.trim_start().trim_start_matches('#'), "MaxProcs"));
    let lower: Vec<String> = headers.iter().map(|h| h.to_ascii_lowercase()).collect();
    for (i, h) in lower.iter().enumerate() {
        match KNOWN.iter().find(|k| **k == h.as_str()) {
            Some(k) => {
                if col.insert(k, i) {
                    return Err(err(Some(1), TraceErrorKind::DuplicateColumn(h.clone())));
                }
            }
            None => w.warnings.push(format!(
                "{}: ignoring unknown column '{}' (known: {})",
                path.display(),
                headers.get(i).unwrap_or_default(),
                KNOWN.join(", ")
            )),
        }
    }
    let missing = |column| TraceErrorKind::MissingColumn {
        column,
        required: "id, submit, runtime, and cpus or cpus_per_node with nodes",
    };
    for r in REQUIRED {
        if !col.contains(r) {
            return Err(err(Some(1), missing(r)));
        }
    }
    if !col.contains("cpus") && !col.contains("cpus_per_node") {
        return Err(err(Some(1), missing("cpus")));
    }
    let mut names = Names::default();
    let mut seen = UniqueIds::default();
    let mut record = ::csv::StringRecord::new();
    loop {
        let more = match rdr.read_record(&mut record) {
            Ok(m) => m,
            Err(e) => {
                let line = e.position().map(|p| p.line());
                if lenient && line.is_some() {
                    w.malformed_lines.push(line.unwrap_or(0));
                    continue;
                }
                return Err(err(line, TraceErrorKind::Csv(csv_message(&e))));
            }
        };
        if !more {
            break;
        }
        let line = record.position().map_or(0, |p| p.line());
        let row = Row {
            rec: &record,
            col: &col,
            line,
            path,
        };
        match row.job(&mut names) {
            Ok(job) => {
                seen.check(&w.jobs, job.id, line, path)?;
                w.jobs.push(job);
            }
            Err(_) if lenient => w.malformed_lines.push(line),
            Err(e) => return Err(e),
        }
    }
    w.names = names;
    w.partitions_named = true;
    Ok(w)
}

fn csv_message(e: &::csv::Error) -> String {
    match e.kind() {
        ::csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("expected {expected_len} fields like the header, found {len}"),
        _ => e.to_string(),
    }
}

/// One data row, with what is needed to read its cells and to report a bad one.
struct Row<'a> {
    rec: &'a ::csv::StringRecord,
    col: &'a Columns,
    /// 1-based line number.
    line: u64,
    path: &'a Path,
}

impl<'a> Row<'a> {
    /// The cell of column `name`; empty if the file has no such column.
    fn get(&self, name: &str) -> &'a str {
        self.col
            .get(name)
            .and_then(|i| self.rec.get(i))
            .unwrap_or("")
    }

    /// A bad value in `column` on this row.
    fn bad(&self, column: &str, expected: &str, value: &str) -> TraceError {
        TraceError::new(
            self.path,
            Some(self.line),
            TraceErrorKind::BadValue {
                column: column.to_string(),
                expected: expected.to_string(),
                value: value.to_string(),
            },
        )
    }

    /// An integer cell; empty is `None`, or an error if `required`.
    fn int(&self, name: &str, required: bool) -> Result<Option<i64>, TraceError> {
        let v = self.get(name);
        if v.is_empty() {
            return if required {
                Err(self.bad(name, "expected an integer", v))
            } else {
                Ok(None)
            };
        }
        v.parse::<i64>()
            .map(Some)
            .map_err(|_| self.bad(name, "expected an integer", v))
    }

    /// A run time or walltime cell: empty → `None`; `-1` (unknown, as in SWF) → a negative
    /// span; otherwise seconds or Slurm's `[D-]HH:MM:SS`.
    fn duration(&self, column: &str) -> Result<Option<Dur>, TraceError> {
        let v = self.get(column);
        if v.is_empty() {
            return Ok(None);
        }
        if let Some(ms) = parse_secs_to_millis(v) {
            return Ok(Some(Dur(ms)));
        }
        parse_duration(v, MS_PER_SEC)
            .map(Some)
            .map_err(|_| self.bad(column, "expected seconds or [D-]HH:MM:SS", v))
    }

    /// The row as a job. The cells are read in a fixed order, which decides which error a row
    /// with several faults reports.
    fn job(&self, names: &mut Names) -> Result<TraceJob, TraceError> {
        let id = self.int("id", true)?.unwrap_or(0);
        if id < 0 {
            return Err(self.bad("id", "expected a job id ≥ 0", self.get("id")));
        }
        let submit = parse_secs_to_millis(self.get("submit"))
            .ok_or_else(|| self.bad("submit", "expected seconds", self.get("submit")))?;
        let runtime = self.duration("runtime")?.unwrap_or(Dur(-1));
        let requested = self.duration("walltime")?.filter(|d| d.0 > 0);
        let total = self.int("cpus", false)?;
        let mem_mb = match self.get("mem") {
            "" => None,
            v => Some(
                parse_mem_mb(v).map_err(|_| self.bad("mem", "expected e.g. 4GB, 512M or MB", v))?,
            ),
        };
        let gpus = match self.int("gpus", false)? {
            None => 0,
            Some(g) => u32::try_from(g)
                .map_err(|_| self.bad("gpus", "expected a count ≥ 0", self.get("gpus")))?,
        };
        let nodes = self.nodes()?;
        let nice = self.nice()?;
        let procs = self.procs(total, nodes)?;
        let elastic = self.elastic(procs, gpus, nodes)?;
        let speedup = match self.get("speedup") {
            "" => None,
            v => Some(crate::model::Speedup::parse(v).map_err(|why| self.bad("speedup", &why, v))?),
        };
        Ok(TraceJob {
            elastic,
            speedup,
            id: JobId(id as u64),
            submit: Time(submit),
            runtime,
            procs,
            requested,
            priority: self.int("priority", false)?.unwrap_or(0),
            user: names.intern(self.get("user")),
            group: names.intern(self.get("group")),
            queue: names.intern(self.get("queue")),
            partition: names.intern(self.get("partition")),
            nodes,
            mem_mb,
            gpus,
            qos: names.intern(self.get("qos")),
            nice,
            line: self.line,
        })
    }

    /// The exact node count (`nodes`, at least 1), if given.
    fn nodes(&self) -> Result<Option<u32>, TraceError> {
        match self.int("nodes", false)? {
            None => Ok(None),
            Some(n) => Ok(Some(u32::try_from(n).ok().filter(|&n| n > 0).ok_or_else(
                || self.bad("nodes", "expected a node count ≥ 1", self.get("nodes")),
            )?)),
        }
    }

    /// The nice value (0 when not given).
    fn nice(&self) -> Result<i32, TraceError> {
        // Slurm bounds nice to ±2147483645; any i32 is fine here.
        match self.int("nice", false)? {
            None => Ok(0),
            Some(n) => i32::try_from(n).map_err(|_| {
                self.bad(
                    "nice",
                    "expected an integer in the 32-bit range",
                    self.get("nice"),
                )
            }),
        }
    }

    /// CPUs in total (`cpus`), or per node (`cpus_per_node`) times the node count; both must
    /// agree when both are given.
    fn procs(&self, total: Option<i64>, nodes: Option<u32>) -> Result<i64, TraceError> {
        match (total, self.int("cpus_per_node", false)?) {
            (Some(t), None) => Ok(t),
            (None, Some(per)) => match nodes {
                Some(n) => Ok(per * i64::from(n)),
                None => Err(self.bad(
                    "cpus_per_node",
                    "needs a `nodes` count",
                    self.get("cpus_per_node"),
                )),
            },
            (Some(t), Some(per)) => {
                if nodes.is_none_or(|n| per * i64::from(n) != t) {
                    return Err(self.bad(
                        "cpus_per_node",
                        &format!("expected cpus / nodes (cpus = {t})"),
                        self.get("cpus_per_node"),
                    ));
                }
                Ok(t)
            }
            (None, None) => Err(self.bad("cpus", "expected an integer", "")),
        }
    }

    /// The elastic range (`min_cpus`, `max_cpus`; either makes the job elastic, the other
    /// defaults to `procs`), checked against `procs`; an elastic job asks for no GPUs and no
    /// node count.
    fn elastic(
        &self,
        procs: i64,
        gpus: u32,
        nodes: Option<u32>,
    ) -> Result<Option<crate::model::ElasticRange>, TraceError> {
        let (min, max) = (self.int("min_cpus", false)?, self.int("max_cpus", false)?);
        if min.is_none() && max.is_none() {
            return Ok(None);
        }
        let range = |name: &str, v: Option<i64>| -> Result<u32, TraceError> {
            match v {
                None => u32::try_from(procs)
                    .map_err(|_| self.bad("cpus", "expected a count ≥ 1", self.get("cpus"))),
                Some(n) => u32::try_from(n)
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or_else(|| self.bad(name, "expected a CPU count ≥ 1", self.get(name))),
            }
        };
        let r = crate::model::ElasticRange {
            min: range("min_cpus", min)?,
            max: range("max_cpus", max)?,
        };
        let p = u32::try_from(procs).unwrap_or(0);
        if r.check(p).is_err() {
            let column = if r.min > p { "min_cpus" } else { "max_cpus" };
            return Err(self.bad(
                column,
                &format!("expected min_cpus ≤ cpus ≤ max_cpus (cpus = {p})"),
                self.get(column),
            ));
        }
        if gpus > 0 || nodes.is_some() {
            return Err(self.bad(
                "min_cpus",
                "an elastic job cannot also ask for GPUs or a node count",
                self.get("min_cpus"),
            ));
        }
        Ok(Some(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn read_str(s: &str) -> Result<Workload, TraceError> {
        read(
            Box::new(Cursor::new(s.as_bytes().to_vec())),
            Path::new("t.csv"),
            false,
        )
    }

    #[test]
    fn reads_named_columns_in_any_order() {
        let w = read_str(
            "cpus,id,submit,runtime,walltime,user,mem,extra\n4,7,10,1:00,2:00:00,alice,4GB,x\n",
        )
        .unwrap();
        let j = &w.jobs[0];
        assert_eq!(j.id, JobId(7));
        assert_eq!(j.procs, 4);
        assert_eq!(j.submit, Time(10_000));
        assert_eq!(j.runtime, Dur(60_000));
        assert_eq!(j.requested, Some(Dur(7_200_000)));
        assert_eq!(j.mem_mb, Some(4096));
        assert_eq!(w.names.get(j.user), "alice");
        assert_eq!(w.warnings.len(), 1, "unknown column 'extra' is noted");
    }

    #[test]
    fn missing_required_column_is_an_error() {
        let e = read_str("id,submit,cpus\n1,0,2\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.csv:1: missing required column 'runtime' (required: id, submit, runtime, and cpus or cpus_per_node with nodes)"
        );
    }

    #[test]
    fn cpus_per_node_times_nodes() {
        let w = read_str("id,submit,runtime,nodes,cpus_per_node\n1,0,10,4,8\n").unwrap();
        assert_eq!(w.jobs[0].procs, 32);
        assert_eq!(w.jobs[0].nodes, Some(4));
        let e = read_str("id,submit,runtime,cpus_per_node\n1,0,10,8\n").unwrap_err();
        assert!(e.to_string().contains("needs a `nodes` count"), "{e}");
        let e =
            read_str("id,submit,runtime,cpus,nodes,cpus_per_node\n1,0,10,30,4,8\n").unwrap_err();
        assert!(e.to_string().contains("expected cpus / nodes"), "{e}");
    }

    #[test]
    fn bad_cells_name_line_and_column() {
        let e = read_str("id,submit,runtime,cpus\n1,0,10,2\n2,0,10,two\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.csv:3: column 'cpus': expected an integer, found 'two'"
        );
        let e = read_str("id,submit,runtime,cpus\n1,0,10\n").unwrap_err();
        assert!(
            e.to_string().starts_with("t.csv:2: expected 4 fields"),
            "{e}"
        );
    }
}
