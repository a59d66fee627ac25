//! The Standard Workload Format of the Parallel Workloads Archive.
//!
//! One job per line, 18 whitespace-separated numeric fields, `-1` for unknown; lines starting
//! with `;` are header or comment lines. The header fields `MaxProcs` (else `MaxNodes`) give
//! the machine size. See `docs/trace-formats.md` for which fields the simulator uses.

use super::{TraceError, TraceErrorKind, TraceJob, Workload, check_unique, read_all};
use crate::ids::{FastMap, JobId, Names};
use crate::time::{Dur, Time, parse_trimmed_secs};

use std::io::BufRead;
use std::path::Path;

/// The names of the 18 SWF fields, for error messages.
pub const FIELD_NAMES: [&str; 18] = [
    "job number",
    "submit time",
    "wait time",
    "run time",
    "allocated processors",
    "average CPU time",
    "used memory",
    "requested processors",
    "requested time",
    "requested memory",
    "status",
    "user id",
    "group id",
    "executable number",
    "queue number",
    "partition number",
    "preceding job",
    "think time",
];

/// Reads an SWF trace. With `lenient`, malformed lines are skipped and counted instead of
/// stopping the read.
pub fn read(reader: Box<dyn BufRead>, path: &Path, lenient: bool) -> Result<Workload, TraceError> {
    let text = read_all(reader, path)?;
    let mut w = Workload {
        source: path.to_path_buf(),
        ..Workload::default()
    };
    let mut max_procs = None;
    let mut max_nodes = None;
    let mut seen: FastMap<JobId, u64> = FastMap::default();
    let mut names = Names::default();
    let mut cache: NameCache = [None; 4];
    for (i, raw) in text.lines().enumerate() {
        let line_no = i as u64 + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix(';') {
            if let Some(v) = header_value(comment, "MaxProcs") {
                max_procs = Some(v);
            } else if let Some(v) = header_value(comment, "MaxNodes") {
                max_nodes = Some(v);
            }
            continue;
        }
        match parse_line(line, line_no, path, &mut names, &mut cache) {
            Ok(job) => {
                check_unique(&mut seen, job.id, line_no, path)?;
                w.jobs.push(job);
            }
            Err(e) if lenient => {
                let _ = e;
                w.malformed_lines.push(line_no);
            }
            Err(e) => return Err(e),
        }
    }
    w.declared_procs = max_procs.or(max_nodes);
    w.names = names;
    Ok(w)
}

/// `; MaxProcs: 128` → `Some(128)` for key `MaxProcs`; non-positive values count as absent.
pub(crate) fn header_value(comment: &str, key: &str) -> Option<u32> {
    let rest = comment.trim_start().strip_prefix(key)?;
    let rest = rest.trim_start().strip_prefix(':')?;
    let v: i64 = rest.split_whitespace().next()?.parse().ok()?;
    u32::try_from(v).ok().filter(|&v| v > 0)
}

/// The last name seen per interned field (user, group, queue, partition).
type NameCache = [Option<crate::ids::Sym>; 4];

fn parse_line(
    line: &str,
    line_no: u64,
    path: &Path,
    names: &mut Names,
    cache: &mut NameCache,
) -> Result<TraceJob, TraceError> {
    let mut fields: [&str; 18] = [""; 18];
    let mut n = 0;
    // Split at ASCII whitespace, byte by byte (the hot loop of reading a trace).
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        if start < i {
            if n < 18 {
                // Both ends are at ASCII bytes, so this is a char boundary.
                fields[n] = &line[start..i];
            }
            n += 1;
        }
    }
    if n != 18 {
        return Err(TraceError::new(
            path,
            Some(line_no),
            TraceErrorKind::FieldCount(n),
        ));
    }
    // Every field must be numeric, used or not: a non-numeric one means the line is not SWF.
    let mut ms = [0i64; 18];
    for (k, f) in fields.iter().enumerate() {
        ms[k] = parse_trimmed_secs(f).ok_or_else(|| {
            TraceError::new(
                path,
                Some(line_no),
                TraceErrorKind::NotNumeric {
                    field: k + 1,
                    name: FIELD_NAMES[k],
                    value: (*f).to_string(),
                },
            )
        })?;
    }
    let int = |k: usize| -> Result<i64, TraceError> {
        if ms[k] % 1000 != 0 {
            return Err(TraceError::new(
                path,
                Some(line_no),
                TraceErrorKind::NotNumeric {
                    field: k + 1,
                    name: FIELD_NAMES[k],
                    value: format!("{} (expected an integer)", fields[k]),
                },
            ));
        }
        Ok(ms[k] / 1000)
    };
    let id = int(0)?;
    if id < 0 {
        return Err(TraceError::new(
            path,
            Some(line_no),
            TraceErrorKind::NotNumeric {
                field: 1,
                name: FIELD_NAMES[0],
                value: format!("{} (expected a job number ≥ 0)", fields[0]),
            },
        ));
    }
    let alloc = int(4)?;
    let procs = if alloc > 0 { alloc } else { int(7)? };
    let requested = Some(Dur(ms[8])).filter(|d| d.0 > 0);
    let submit = ms[1];
    Ok(TraceJob {
        id: JobId(id as u64),
        submit: Time(submit),
        runtime: Dur(ms[3]),
        procs,
        requested,
        priority: 0,
        user: names.intern_cached(fields[11], &mut cache[0]),
        group: names.intern_cached(fields[12], &mut cache[1]),
        queue: names.intern_cached(fields[14], &mut cache[2]),
        partition: names.intern_cached(fields[15], &mut cache[3]),
        nodes: None,
        mem_mb: None,
        gpus: 0,
        qos: Default::default(),
        nice: 0,
        elastic: None,
        speedup: None,
        line: line_no,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn read_str(s: &str, lenient: bool) -> Result<Workload, TraceError> {
        read(
            Box::new(Cursor::new(s.as_bytes().to_vec())),
            Path::new("t.swf"),
            lenient,
        )
    }

    #[test]
    fn reads_header_and_fallbacks() {
        let w = read_str(
            "; MaxNodes: 8\n; MaxProcs: 16\n\n1 0 -1 10 -1 -1 -1 2 10 -1 1 7 3 -1 1 -1 -1 -1\n",
            false,
        )
        .unwrap();
        assert_eq!(w.declared_procs, Some(16));
        let j = &w.jobs[0];
        assert_eq!(j.procs, 2, "field 5 = -1 falls back to field 8");
        assert_eq!(j.requested, Some(Dur(10_000)));
        assert_eq!(w.names.get(j.user), "7");
        assert_eq!(j.line, 4);
    }

    #[test]
    fn max_nodes_when_no_max_procs() {
        let w = read_str("; MaxNodes: 8\n", false).unwrap();
        assert_eq!(w.declared_procs, Some(8));
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let e = read_str("; x\n1 0 -1 10 2\n", false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.swf:2: expected 18 whitespace-separated fields, found 5"
        );
        let e = read_str("1 0 -1 ten 2 -1 -1 2 10 -1 1 1 1 -1 -1 -1 -1 -1\n", false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.swf:1: field 4 (run time): expected a number, found 'ten'"
        );
        let w = read_str(
            "1 0 -1 ten 2 -1 -1 2 10 -1 1 1 1 -1 -1 -1 -1 -1\n2 0 -1 1 2 -1 -1 2 10 -1 1 1 1 -1 -1 -1 -1 -1\n",
            true,
        )
        .unwrap();
        assert_eq!(w.malformed_lines, vec![1]);
        assert_eq!(w.jobs.len(), 1);
    }

    #[test]
    fn duplicate_ids_are_errors() {
        let l = "1 0 -1 10 2 -1 -1 2 10 -1 1 1 1 -1 -1 -1 -1 -1\n";
        let e = read_str(&format!("{l}{l}"), false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.swf:2: duplicate job id 1 (first seen on line 1)"
        );
    }
}
