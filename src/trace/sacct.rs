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

use super::{TraceError, TraceErrorKind, TraceJob, Workload, check_unique, read_all};
use crate::ids::{FastMap, JobId, Names};
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

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DDTHH:MM:SS` → seconds since the epoch; `None` for `Unknown`, `None` or empty.
fn parse_datetime(s: &str) -> Result<Option<i64>, String> {
    let t = s.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("unknown") || t.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let bad = || format!("expected a date like 2026-03-01T12:00:00, found '{s}'");
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
        days_from_civil(d[0], d[1], d[2]) * 86_400 + h[0] * 3600 + h[1] * 60 + h[2],
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
    let err = |line: u64, column: &str, expected: String, value: &str| {
        TraceError::new(
            path,
            Some(line),
            TraceErrorKind::BadValue {
                column: column.to_string(),
                expected,
                value: value.to_string(),
            },
        )
    };
    let header: Vec<String> = loop {
        match lines.next() {
            Some((_, l)) if l.trim().is_empty() => continue,
            Some((_, l)) => {
                break l
                    .split('|')
                    .map(|h| h.trim().to_ascii_lowercase())
                    .collect();
            }
            None => return Err(TraceError::new(path, None, TraceErrorKind::Empty)),
        }
    };
    let col = |name: &str| header.iter().position(|h| h == name);
    let id_col = col("jobidraw").or_else(|| col("jobid"));
    let need = |c: Option<usize>, name: &'static str| {
        c.ok_or_else(|| TraceError::new(path, Some(1), TraceErrorKind::MissingColumn(name)))
    };
    let id_col = need(id_col, "JobIDRaw")?;
    let submit_col = need(col("submit"), "Submit")?;
    let start_col = need(col("start"), "Start")?;
    let state_col = need(col("state"), "State")?;
    let (elapsed_col, end_col) = (col("elapsed"), col("end"));
    if elapsed_col.is_none() && end_col.is_none() {
        return Err(TraceError::new(
            path,
            Some(1),
            TraceErrorKind::MissingColumn("Elapsed"),
        ));
    }
    let cpus_col = col("ncpus").or_else(|| col("alloccpus"));
    let tres_col = col("alloctres");
    if cpus_col.is_none() && tres_col.is_none() {
        return Err(TraceError::new(
            path,
            Some(1),
            TraceErrorKind::MissingColumn("NCPUS"),
        ));
    }
    // Partitions are kept as names but, as for SWF, jobs run in the cluster's default partition
    // (convert to CSV to match them against a cluster description).
    let mut w = Workload {
        source: path.to_path_buf(),
        ..Workload::default()
    };
    let mut names = Names::default();
    let mut seen: FastMap<JobId, u64> = FastMap::default();
    let (mut never_ran, mut still_running) = (0u64, 0u64);
    for (i, raw) in lines {
        let line = i as u64 + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = raw.split('|').map(str::trim).collect();
        let get = |c: Option<usize>| c.and_then(|c| cells.get(c).copied()).unwrap_or("");
        let parsed = (|| -> Result<Option<TraceJob>, TraceError> {
            if cells.len() != header.len() {
                return Err(err(
                    line,
                    "(line)",
                    format!(
                        "expected {} |-separated fields like the header",
                        header.len()
                    ),
                    &format!("{} fields", cells.len()),
                ));
            }
            let id_s = get(Some(id_col));
            if id_s.contains('.') {
                return Ok(None); // a job step
            }
            let id: u64 = id_s.parse().map_err(|_| {
                err(
                    line,
                    &header[id_col],
                    "expected a numeric job id (use JobIDRaw for array and heterogeneous jobs)"
                        .into(),
                    id_s,
                )
            })?;
            let state_s = get(Some(state_col));
            let state = state_s.split_whitespace().next().unwrap_or("");
            let state = state.trim_end_matches('+');
            if !STATES.contains(&state) {
                return Err(err(
                    line,
                    "State",
                    format!("expected a Slurm job state ({})", STATES.join(", ")),
                    state_s,
                ));
            }
            let dt = |c: usize, name: &str| {
                parse_datetime(get(Some(c))).map_err(|e| err(line, name, e, get(Some(c))))
            };
            let submit = dt(submit_col, "Submit")?.ok_or_else(|| {
                err(
                    line,
                    "Submit",
                    "expected a date".into(),
                    get(Some(submit_col)),
                )
            })?;
            let start = dt(start_col, "Start")?;
            if state == "RUNNING" {
                still_running += 1;
                return Ok(None);
            }
            let Some(start) = start.filter(|_| state != "PENDING") else {
                never_ran += 1;
                return Ok(None);
            };
            let runtime_ms = match elapsed_col {
                Some(c) => {
                    parse_duration(get(Some(c)), 1000)
                        .map_err(|e| err(line, "Elapsed", e, get(Some(c))))?
                        .0
                }
                None => {
                    let end = end_col
                        .map(|c| dt(c, "End"))
                        .transpose()?
                        .flatten()
                        .ok_or_else(|| err(line, "End", "expected a date".into(), get(end_col)))?;
                    if end < start {
                        return Err(err(
                            line,
                            "End",
                            "expected a date after Start".into(),
                            get(end_col),
                        ));
                    }
                    (end - start) * 1000
                }
            };
            let requested = match col("timelimit").map(|c| get(Some(c))) {
                None | Some("") => None,
                Some(v)
                    if v.eq_ignore_ascii_case("unlimited")
                        || v.eq_ignore_ascii_case("partition_limit") =>
                {
                    None
                }
                Some(v) => {
                    Some(parse_duration(v, 60_000).map_err(|e| err(line, "Timelimit", e, v))?)
                }
            };
            let tres_s = get(tres_col);
            let cpus: i64 = match cpus_col.map(|c| get(Some(c))).filter(|v| !v.is_empty()) {
                Some(v) => v
                    .parse::<u32>()
                    .map(i64::from)
                    .map_err(|_| err(line, "NCPUS", "expected a CPU count".into(), v))?,
                None => tres(tres_s, "cpu")
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| err(line, "AllocTRES", "expected cpu=N".into(), tres_s))?,
            };
            let nnodes: u32 = match col("nnodes")
                .map(|c| get(Some(c)))
                .filter(|v| !v.is_empty())
            {
                Some(v) => v
                    .parse()
                    .map_err(|_| err(line, "NNodes", "expected a node count".into(), v))?,
                None => tres(tres_s, "node")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1),
            }
            .max(1);
            let mem_mb = match col("reqmem")
                .map(|c| get(Some(c)))
                .filter(|v| !v.is_empty() && *v != "0")
            {
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
                            .map_err(|e| err(line, "ReqMem", e, v))?
                            .saturating_mul(per),
                    )
                }
                None => match tres(tres_s, "mem") {
                    Some(m) => Some(
                        parse_mem_mb(m).map_err(|e| err(line, "AllocTRES", e, tres_s))?
                            / u64::from(nnodes),
                    ),
                    None => None,
                },
            }
            .filter(|&m| m > 0);
            let gpus = match tres(tres_s, "gres/gpu") {
                Some(g) => {
                    g.parse::<u32>()
                        .map_err(|_| err(line, "AllocTRES", "expected gres/gpu=N".into(), tres_s))?
                        / nnodes
                }
                None => 0,
            };
            let priority = match col("priority")
                .map(|c| get(Some(c)))
                .filter(|v| !v.is_empty())
            {
                Some(v) => v
                    .parse()
                    .map_err(|_| err(line, "Priority", "expected an integer".into(), v))?,
                None => 0,
            };
            let account = match col("account")
                .map(|c| get(Some(c)))
                .filter(|v| !v.is_empty())
            {
                Some(a) => a,
                None => get(col("group")),
            };
            Ok(Some(TraceJob {
                id: JobId(id),
                submit: Time::from_secs(submit),
                runtime: Dur(runtime_ms),
                procs: cpus,
                requested,
                priority,
                user: names.intern(get(col("user"))),
                group: names.intern(account),
                queue: names.intern(""),
                partition: names.intern(get(col("partition"))),
                nodes: (nnodes > 1).then_some(nnodes),
                mem_mb,
                gpus,
                qos: names.intern(get(col("qos"))),
                nice: 0,
                elastic: None,
                speedup: None,
                line,
            }))
        })();
        match parsed {
            Ok(Some(job)) => {
                check_unique(&mut seen, job.id, line, path)?;
                w.jobs.push(job);
            }
            Ok(None) => {}
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
