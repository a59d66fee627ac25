//! Slurm accounting dumps: the output of
//!
//! ```sh
//! sacct --allocations --parsable2 --allusers --starttime 2026-01-01 --endtime now \
//!   --format=JobIDRaw,JobID,User,Group,Account,Partition,QOS,Priority,Submit,Start,End,Elapsed,Timelimit,State,NCPUS,NNodes,NodeList,ReqMem,AllocTRES
//! ```
//!
//! `|`-separated, with the header line (no `--noheader`). (`JobName` is left out of the list:
//! a name may itself contain `|`, which `--parsable2` does not escape.) Columns are found by name, in any
//! order; required: `JobIDRaw` (or a numeric `JobID`), `Submit`, `Start`, `Elapsed` (or `End`),
//! `State`, and `NCPUS` (or `AllocCPUS`, or `cpu=` in `AllocTRES`). The others are optional.
//!
//! - Times: `Submit`/`Start`/`End` are `YYYY-MM-DDTHH:MM:SS` (read as UTC: only differences
//!   matter); `Elapsed` and `Timelimit` are `[D-]HH:MM:SS`, `MM:SS`, or (`Timelimit`)
//!   `UNLIMITED` / `Partition_Limit` (no limit).
//! - Jobs that never ran (`Start` `Unknown`/`None`, state `PENDING`) and jobs still `RUNNING`
//!   are left out and counted in a note. Job steps (`123.batch`, `123.0`), which
//!   `--allocations` already drops, are ignored if present.
//! - States: `COMPLETED`, `FAILED`, `CANCELLED` (also `CANCELLED by UID`), `TIMEOUT`,
//!   `OUT_OF_MEMORY`, `NODE_FAIL`, `PREEMPTED`, `REQUEUED`, `BOOT_FAIL`, `DEADLINE`,
//!   `REVOKED`, `SUSPENDED`, `PENDING`, `RUNNING`: all that ran become jobs with their elapsed
//!   time; another state is an error naming the line.
//! - Memory: `ReqMem` (`4G`, `4000M`, `16Gn` per node, `4Gc` per CPU — older Slurm's
//!   suffixes) else `mem=` in `AllocTRES` (the job's total, divided by its nodes); GPUs:
//!   `gres/gpu=N` in `AllocTRES` (divided by its nodes). `NNodes` > 1 becomes an exact node
//!   count. `Account` (else `Group`) is the job's account, as fair-share uses it.
//! - Submit times are seconds since the Unix epoch. `Partition` is kept as an attribute, but as
//!   with SWF the jobs run in the cluster's default partition.

use super::{TraceError, TraceErrorKind, TraceJob, UniqueIds, Workload, read_all};
use crate::ids::{JobId, Names};
use crate::model::parse_mem_mb;
use crate::time::{Dur, Time, parse_duration};
use std::io::BufRead;
use std::path::Path;

/// Whether `text`'s first line looks like an sacct header.
pub fn looks_like_sacct(first_line: &str) -> bool {
    first_line.contains('|')
        && first_line
            .split('|')
            .any(|h| h.eq_ignore_ascii_case("JobIDRaw") || h.eq_ignore_ascii_case("JobID"))
}

/// `YYYY-MM-DDTHH:MM:SS` → seconds since the epoch; `None` for `Unknown`, `None` or empty.
fn parse_datetime(s: &str) -> Result<Option<i64>, String> {
    let t = s.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("unknown") || t.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let bad = || "expected a date like 2026-03-01T12:00:00".to_string();
    let (date, time) = t.split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let h: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    if d.len() != 3 || h.len() != 3 || !(1..=9999).contains(&d[0]) || !(1..=12).contains(&d[1]) {
        return Err(bad());
    }
    let leap = d[0] % 4 == 0 && (d[0] % 100 != 0 || d[0] % 400 == 0);
    let days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=days[(d[1] - 1) as usize]).contains(&d[2]) {
        return Err(bad());
    }
    if !(0..24).contains(&h[0]) || !(0..60).contains(&h[1]) || !(0..61).contains(&h[2]) {
        return Err(bad());
    }
    Ok(Some(
        crate::time::days_from_civil(d[0], d[1], d[2]) * 86_400 + h[0] * 3600 + h[1] * 60 + h[2],
    ))
}

/// `key=value` pairs of an `AllocTRES` cell.
fn tres<'a>(cell: &'a str, key: &str) -> Option<&'a str> {
    cell.split(',')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
}

const STATES: [&str; 15] = [
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "OUT_OF_MEMORY",
    "NODE_FAIL",
    "PREEMPTED",
    "REQUEUED",
    "BOOT_FAIL",
    "DEADLINE",
    "REVOKED",
    "SUSPENDED",
    "PENDING",
    "RUNNING",
    "RESIZING",
];

/// Reads an sacct dump.
pub fn read(reader: Box<dyn BufRead>, path: &Path, lenient: bool) -> Result<Workload, TraceError> {
    let text = read_all(reader, path)?;
    let mut lines = text.lines().enumerate();
    let header = read_header(&mut lines, path)?;
    let cols = Columns::find(&header, path)?;
    // Partitions are kept as names but, as for SWF, jobs run in the cluster's default partition
    // (convert to CSV to match them against a cluster description).
    let mut w = Workload {
        source: path.to_path_buf(),
        ..Workload::default()
    };
    let mut names = Names::default();
    let mut seen = UniqueIds::default();
    let (mut never_ran, mut still_running) = (0u64, 0u64);
    for (i, raw) in lines {
        let line = i as u64 + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let row = Row {
            cells: raw.split('|').map(str::trim).collect(),
            line,
            path,
        };
        match row.parse(&cols, &mut names) {
            Ok(Parsed::Job(job)) => {
                seen.check(&w.jobs, job.id, line, path)?;
                w.jobs.push(job);
            }
            Ok(Parsed::Step) => {}
            Ok(Parsed::NeverRan) => never_ran += 1,
            Ok(Parsed::StillRunning) => still_running += 1,
            Err(_) if lenient => w.malformed_lines.push(line),
            Err(e) => return Err(e),
        }
    }
    if never_ran + still_running > 0 {
        w.warnings.push(format!(
            "{}: left out {never_ran} jobs that never started and {still_running} still running",
            path.display()
        ));
    }
    w.names = names;
    Ok(w)
}

/// The header's column names, lowercased: the first non-blank line.
fn read_header<'a>(
    lines: &mut impl Iterator<Item = (usize, &'a str)>,
    path: &Path,
) -> Result<Vec<String>, TraceError> {
    loop {
        match lines.next() {
            Some((_, l)) if l.trim().is_empty() => continue,
            Some((_, l)) => {
                return Ok(l
                    .split('|')
                    .map(|h| h.trim().to_ascii_lowercase())
                    .collect());
            }
            None => return Err(TraceError::new(path, None, TraceErrorKind::Empty)),
        }
    }
}

/// Where each column sits in the header; `None` for an optional column that is absent.
struct Columns {
    /// How many fields the header has (every data line must have as many).
    width: usize,
    id: usize,
    /// The id column's name as the header has it (lowercased), for messages.
    id_name: String,
    submit: usize,
    start: usize,
    state: usize,
    /// At least one of `elapsed` and `end`.
    elapsed: Option<usize>,
    end: Option<usize>,
    /// At least one of `cpus` (`NCPUS` or `AllocCPUS`) and `tres`.
    cpus: Option<usize>,
    tres: Option<usize>,
    timelimit: Option<usize>,
    nnodes: Option<usize>,
    reqmem: Option<usize>,
    priority: Option<usize>,
    account: Option<usize>,
    group: Option<usize>,
    user: Option<usize>,
    partition: Option<usize>,
    qos: Option<usize>,
}

impl Columns {
    /// Finds the columns by name; a required one that is missing is an error naming it.
    fn find(header: &[String], path: &Path) -> Result<Columns, TraceError> {
        let col = |name: &str| header.iter().position(|h| h == name);
        let missing = |name: &'static str| {
            TraceError::new(
                path,
                Some(1),
                TraceErrorKind::MissingColumn {
                    column: name,
                    required: "JobIDRaw (or JobID), Submit, Start, Elapsed (or End), State, and NCPUS (or AllocCPUS, or cpu= in AllocTRES)",
                },
            )
        };
        let need = |c: Option<usize>, name: &'static str| c.ok_or_else(|| missing(name));
        let id = need(col("jobidraw").or_else(|| col("jobid")), "JobIDRaw")?;
        let submit = need(col("submit"), "Submit")?;
        let start = need(col("start"), "Start")?;
        let state = need(col("state"), "State")?;
        let (elapsed, end) = (col("elapsed"), col("end"));
        if elapsed.is_none() && end.is_none() {
            return Err(missing("Elapsed"));
        }
        let cpus = col("ncpus").or_else(|| col("alloccpus"));
        let tres = col("alloctres");
        if cpus.is_none() && tres.is_none() {
            return Err(missing("NCPUS"));
        }
        Ok(Columns {
            width: header.len(),
            id,
            id_name: header[id].clone(),
            submit,
            start,
            state,
            elapsed,
            end,
            cpus,
            tres,
            timelimit: col("timelimit"),
            nnodes: col("nnodes"),
            reqmem: col("reqmem"),
            priority: col("priority"),
            account: col("account"),
            group: col("group"),
            user: col("user"),
            partition: col("partition"),
            qos: col("qos"),
        })
    }
}

/// What one data line holds.
enum Parsed {
    Job(TraceJob),
    /// A job step (`123.batch`, `123.0`): ignored.
    Step,
    /// A job that never started (no `Start`, or `PENDING`): left out and counted.
    NeverRan,
    /// A job still `RUNNING`: left out and counted.
    StillRunning,
}

/// One data line, split into trimmed cells.
struct Row<'a> {
    cells: Vec<&'a str>,
    /// 1-based line number.
    line: u64,
    path: &'a Path,
}

impl<'a> Row<'a> {
    /// The cell of column `c`; empty if the column is absent.
    fn get(&self, c: Option<usize>) -> &'a str {
        c.and_then(|c| self.cells.get(c).copied()).unwrap_or("")
    }

    /// The cell of column `c` if the column is present and the cell not empty.
    fn present(&self, c: Option<usize>) -> Option<&'a str> {
        c.map(|c| self.get(Some(c))).filter(|v| !v.is_empty())
    }

    /// A bad value in `column` on this line.
    fn err(&self, column: &str, expected: String, value: &str) -> TraceError {
        TraceError::new(
            self.path,
            Some(self.line),
            TraceErrorKind::BadValue {
                column: column.to_string(),
                expected,
                value: value.to_string(),
            },
        )
    }

    /// The date in column `c` (`None` for `Unknown`, `None` or empty).
    fn datetime(&self, c: usize, name: &str) -> Result<Option<i64>, TraceError> {
        parse_datetime(self.get(Some(c))).map_err(|e| self.err(name, e, self.get(Some(c))))
    }

    /// The line as a job, or why it holds none. The checks run in a fixed order, which decides
    /// which error a line with several faults reports.
    fn parse(&self, c: &Columns, names: &mut Names) -> Result<Parsed, TraceError> {
        if self.cells.len() != c.width {
            return Err(self.err(
                "(line)",
                format!("expected {} |-separated fields like the header", c.width),
                &format!("{} fields", self.cells.len()),
            ));
        }
        let id_s = self.get(Some(c.id));
        if id_s.contains('.') {
            return Ok(Parsed::Step);
        }
        let id: u64 = id_s.parse().map_err(|_| {
            self.err(
                &c.id_name,
                "expected a numeric job id (use JobIDRaw for array and heterogeneous jobs)".into(),
                id_s,
            )
        })?;
        let state = self.state(c)?;
        let submit = self.datetime(c.submit, "Submit")?.ok_or_else(|| {
            self.err("Submit", "expected a date".into(), self.get(Some(c.submit)))
        })?;
        let start = self.datetime(c.start, "Start")?;
        if state == "RUNNING" {
            return Ok(Parsed::StillRunning);
        }
        let Some(start) = start.filter(|_| state != "PENDING") else {
            return Ok(Parsed::NeverRan);
        };
        let runtime_ms = self.runtime_ms(c, start)?;
        let requested = self.requested(c)?;
        let cpus = self.cpus(c)?;
        let nnodes = self.nnodes(c)?;
        let mem_mb = self.mem_mb(c, cpus, nnodes)?;
        let gpus = self.gpus(c, nnodes)?;
        let priority = match self.present(c.priority) {
            Some(v) => v
                .parse()
                .map_err(|_| self.err("Priority", "expected an integer".into(), v))?,
            None => 0,
        };
        let account = match self.present(c.account) {
            Some(a) => a,
            None => self.get(c.group),
        };
        Ok(Parsed::Job(TraceJob {
            id: JobId(id),
            submit: Time::from_secs(submit),
            runtime: Dur(runtime_ms),
            procs: cpus,
            requested,
            priority,
            user: names.intern(self.get(c.user)),
            group: names.intern(account),
            queue: names.intern(""),
            partition: names.intern(self.get(c.partition)),
            nodes: (nnodes > 1).then_some(nnodes),
            mem_mb,
            gpus,
            qos: names.intern(self.get(c.qos)),
            nice: 0,
            elastic: None,
            speedup: None,
            line: self.line,
        }))
    }

    /// The job's state, its first word without Slurm's trailing `+`; one of [`STATES`].
    fn state(&self, c: &Columns) -> Result<&'a str, TraceError> {
        let state_s = self.get(Some(c.state));
        let state = state_s.split_whitespace().next().unwrap_or("");
        let state = state.trim_end_matches('+');
        if !STATES.contains(&state) {
            return Err(self.err(
                "State",
                format!("expected a Slurm job state ({})", STATES.join(", ")),
                state_s,
            ));
        }
        Ok(state)
    }

    /// The run time in milliseconds: `Elapsed`, else `End` − `Start`.
    fn runtime_ms(&self, c: &Columns, start: i64) -> Result<i64, TraceError> {
        if let Some(e) = c.elapsed {
            return Ok(parse_duration(self.get(Some(e)), 1000)
                .map_err(|err| self.err("Elapsed", err, self.get(Some(e))))?
                .0);
        }
        let end = c
            .end
            .map(|e| self.datetime(e, "End"))
            .transpose()?
            .flatten()
            .ok_or_else(|| self.err("End", "expected a date".into(), self.get(c.end)))?;
        if end < start {
            return Err(self.err("End", "expected a date after Start".into(), self.get(c.end)));
        }
        Ok((end - start) * 1000)
    }

    /// The time limit (`Timelimit`, in minutes by default); `None` when absent or unlimited.
    fn requested(&self, c: &Columns) -> Result<Option<Dur>, TraceError> {
        match self.present(c.timelimit) {
            None => Ok(None),
            Some(v)
                if v.eq_ignore_ascii_case("unlimited")
                    || v.eq_ignore_ascii_case("partition_limit") =>
            {
                Ok(None)
            }
            Some(v) => Ok(Some(
                parse_duration(v, 60_000).map_err(|e| self.err("Timelimit", e, v))?,
            )),
        }
    }

    /// The CPU count: `NCPUS` (or `AllocCPUS`), else `cpu=` in `AllocTRES`.
    fn cpus(&self, c: &Columns) -> Result<i64, TraceError> {
        let tres_s = self.get(c.tres);
        match self.present(c.cpus) {
            Some(v) => v
                .parse::<u32>()
                .map(i64::from)
                .map_err(|_| self.err("NCPUS", "expected a CPU count".into(), v)),
            None => tres(tres_s, "cpu")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| self.err("AllocTRES", "expected cpu=N".into(), tres_s)),
        }
    }

    /// The node count (at least 1): `NNodes`, else `node=` in `AllocTRES`, else 1.
    fn nnodes(&self, c: &Columns) -> Result<u32, TraceError> {
        let n: u32 = match self.present(c.nnodes) {
            Some(v) => v
                .parse()
                .map_err(|_| self.err("NNodes", "expected a node count".into(), v))?,
            None => tres(self.get(c.tres), "node")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1),
        };
        Ok(n.max(1))
    }

    /// Memory per node, MB: `ReqMem` (with older Slurm's `n`/`c` suffixes), else `mem=` in
    /// `AllocTRES` divided by the nodes; `None` when neither gives more than 0.
    fn mem_mb(&self, c: &Columns, cpus: i64, nnodes: u32) -> Result<Option<u64>, TraceError> {
        let tres_s = self.get(c.tres);
        let mem = match self.present(c.reqmem).filter(|v| *v != "0") {
            Some(v) => {
                let (body, per) = match v.as_bytes().last() {
                    Some(b'n') => (&v[..v.len() - 1], 1),
                    Some(b'c') => (
                        &v[..v.len() - 1],
                        (cpus.max(1) as u64).div_ceil(u64::from(nnodes)),
                    ),
                    _ => (v, 1),
                };
                Some(
                    parse_mem_mb(body)
                        .map_err(|e| self.err("ReqMem", e, v))?
                        .saturating_mul(per),
                )
            }
            None => match tres(tres_s, "mem") {
                Some(m) => Some(
                    parse_mem_mb(m).map_err(|e| self.err("AllocTRES", e, tres_s))?
                        / u64::from(nnodes),
                ),
                None => None,
            },
        };
        Ok(mem.filter(|&m| m > 0))
    }

    /// GPUs per node: `gres/gpu=` in `AllocTRES` divided by the nodes; 0 without it.
    fn gpus(&self, c: &Columns, nnodes: u32) -> Result<u32, TraceError> {
        let tres_s = self.get(c.tres);
        match tres(tres_s, "gres/gpu") {
            Some(g) => Ok(g
                .parse::<u32>()
                .map_err(|_| self.err("AllocTRES", "expected gres/gpu=N".into(), tres_s))?
                / nnodes),
            None => Ok(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00"), Ok(Some(0)));
        assert_eq!(parse_datetime("2000-03-01T00:00:01"), Ok(Some(951_868_801)));
        assert_eq!(
            parse_datetime("2026-11-29T23:17:21"),
            Ok(Some(1_795_994_241))
        );
        assert_eq!(parse_datetime("Unknown"), Ok(None));
        assert!(parse_datetime("2026-13-01T00:00:00").is_err());
        assert!(parse_datetime("yesterday").is_err());
    }
}
