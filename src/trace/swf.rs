//! The Standard Workload Format of the Parallel Workloads Archive.
//!
//! One job per line, 18 whitespace-separated numeric fields, `-1` for unknown; lines starting
//! with `;` are header or comment lines. The header fields `MaxProcs` (else `MaxNodes`) give
//! the machine size. See `docs/trace-formats.md` for which fields the simulator uses.

use super::chunks::for_each_chunk;
use super::{TraceError, TraceErrorKind, TraceJob, UniqueIds, Workload};
use crate::ids::{JobId, Names, Sym};
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
/// stopping the read. The text is read (and gunzipped) on a second thread, which also scans
/// the chunks it gets ahead on; this thread scans the others, interns the names and checks the
/// ids, in line order (`trace::chunks`).
pub fn read(
    reader: Box<dyn BufRead + Send>,
    path: &Path,
    lenient: bool,
) -> Result<Workload, TraceError> {
    let mut w = Workload {
        source: path.to_path_buf(),
        ..Workload::default()
    };
    let mut max_procs = None;
    let mut max_nodes = None;
    let mut seen = UniqueIds::default();
    let names = read_each(reader, path, |item, _| {
        match item {
            Item::Header { procs, nodes } => {
                max_procs = procs.or(max_procs);
                max_nodes = nodes.or(max_nodes);
            }
            Item::Job(job) => {
                seen.check(&w.jobs, job.id, job.line, path)?;
                w.jobs.push(job);
            }
            Item::Malformed(line, _) if lenient => w.malformed_lines.push(line),
            Item::Malformed(_, e) => return Err(*e),
        }
        Ok(())
    })?;
    w.declared_procs = max_procs.or(max_nodes);
    w.names = names;
    Ok(w)
}

/// What an SWF trace holds, line by line, as [`read_each`] hands it over.
pub(crate) enum Item {
    /// `MaxProcs` / `MaxNodes` in a comment line.
    Header {
        procs: Option<u32>,
        nodes: Option<u32>,
    },
    /// A job line, its names interned (ids not checked for duplicates).
    Job(TraceJob),
    /// A malformed line: its number and the error.
    Malformed(u64, Box<TraceError>),
}

/// Reads an SWF trace and hands `each` its headers, jobs and malformed lines in line order,
/// with the names interned so far (a job's among them); returns the interned names. The first error `each` returns stops the reading (the rest of
/// the input is still checked for read errors and invalid UTF-8, which win, as in [`read`]).
pub(crate) fn read_each(
    reader: Box<dyn BufRead + Send>,
    path: &Path,
    mut each: impl FnMut(Item, &Names) -> Result<(), TraceError>,
) -> Result<Names, TraceError> {
    let mut names = Names::default();
    let mut cache = NameCache::default();
    let scan =
        |text: &str, first_line: u64, out: &mut Vec<Line>| scan_chunk(text, first_line, path, out);
    for_each_chunk(reader, path, scan, |text, lines: &mut Vec<Line>| {
        for l in lines.drain(..) {
            let item = match l {
                Line::Header { procs, nodes } => Item::Header { procs, nodes },
                Line::Job(j) => Item::Job(j.finish(text, &mut names, &mut cache)),
                Line::Bad(line, e) => Item::Malformed(line, e),
            };
            each(item, &names)?;
        }
        Ok(())
    })?;
    Ok(names)
}

/// A line of a chunk as scanned, without what needs the whole file's state (names, ids).
enum Line {
    /// `MaxProcs` / `MaxNodes` in a comment line.
    Header {
        procs: Option<u32>,
        nodes: Option<u32>,
    },
    Job(Scanned),
    /// A malformed line: its number and the error.
    Bad(u64, Box<TraceError>),
}

/// A job line's values; its names are still text in the chunk.
struct Scanned {
    id: u64,
    submit: i64,
    runtime: i64,
    procs: i64,
    requested: Option<Dur>,
    line: u64,
    /// User, group, queue and partition: where the text is in the chunk, and the value when it
    /// is written as a plain integer.
    names: [(usize, usize, Option<i64>); 4],
}

impl Scanned {
    fn finish(&self, text: &str, names: &mut Names, cache: &mut NameCache) -> TraceJob {
        let [user, group, queue, partition] = std::array::from_fn(|k| {
            let (from, to, value) = self.names[k];
            cache.intern(names, k, text.get(from..to).unwrap_or(""), value)
        });
        TraceJob {
            id: JobId(self.id),
            submit: Time(self.submit),
            runtime: Dur(self.runtime),
            procs: self.procs,
            requested: self.requested,
            priority: 0,
            user,
            group,
            queue,
            partition,
            nodes: None,
            mem_mb: None,
            gpus: 0,
            qos: Default::default(),
            nice: 0,
            elastic: None,
            speedup: None,
            line: self.line,
        }
    }
}

/// Scans the lines of `text`, a chunk whose first line is `first_line`, into `out`.
fn scan_chunk(text: &str, first_line: u64, path: &Path, out: &mut Vec<Line>) {
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', text.as_bytes()).chain([text.len()]);
    for (this, end) in (first_line..).zip(ends) {
        // Both ends are at a newline (or the end): char boundaries.
        let line = trim(&text[start..end]);
        let offset = line.as_ptr() as usize - text.as_ptr() as usize;
        start = end + 1;
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix(';') {
            let procs = header_value(comment, "MaxProcs");
            let nodes = procs
                .is_none()
                .then(|| header_value(comment, "MaxNodes"))
                .flatten();
            if procs.is_some() || nodes.is_some() {
                out.push(Line::Header { procs, nodes });
            }
            continue;
        }
        out.push(match scan_line(line, offset, this, path) {
            Ok(j) => Line::Job(j),
            Err(e) => Line::Bad(this, Box::new(e)),
        });
    }
}

/// `line.trim()`, without decoding characters unless the line starts or ends with a non-ASCII
/// byte (which may be Unicode white space).
fn trim(line: &str) -> &str {
    // ASCII white space as `char::is_whitespace` has it: \t \n \x0b \x0c \r and space.
    let ws = |c: u8| c == b' ' || (b'\t'..=b'\r').contains(&c);
    let b = line.as_bytes();
    let (mut s, mut e) = (0, b.len());
    while s < e && ws(b[s]) {
        s += 1;
    }
    while e > s && ws(b[e - 1]) {
        e -= 1;
    }
    if s < e && (b[s] >= 0x80 || b[e - 1] >= 0x80) {
        return line.trim();
    }
    // `s` and `e` are next to ASCII bytes (or at the ends): char boundaries.
    &line[s..e]
}

/// `; MaxProcs: 128` → `Some(128)` for key `MaxProcs`; non-positive values count as absent.
pub(crate) fn header_value(comment: &str, key: &str) -> Option<u32> {
    let rest = comment.trim_start().strip_prefix(key)?;
    let rest = rest.trim_start().strip_prefix(':')?;
    let v: i64 = rest.split_whitespace().next()?.parse().ok()?;
    u32::try_from(v).ok().filter(|&v| v > 0)
}

/// Interned names of the four name fields (user, group, queue, partition). SWF names are
/// numbers: a small one written plainly (`-1`, `0`, `17`, not `017`) is found by its value in a
/// table per field; anything else goes through [`Names`]. Either way the symbols are the ones
/// [`Names::intern`] gives, in the same order.
#[derive(Default)]
struct NameCache {
    /// Per field: symbol + 1 by value + 1 (`-1` at 0), 0 when not seen yet.
    small: [Vec<u32>; 4],
}

/// Values up to this (exclusive) are looked up by value.
const SMALL_NAMES: usize = 100_000;

impl NameCache {
    /// The symbol of `text`, field `field`'s name; `value` is its value when it is written as a
    /// plain integer (digits, maybe a leading `-`).
    fn intern(&mut self, names: &mut Names, field: usize, text: &str, value: Option<i64>) -> Sym {
        let b = text.as_bytes();
        let slot = match value {
            Some(-1) if b == b"-1" => Some(0),
            Some(v) if v >= 0 && b.len() <= 5 && b[0] != b'-' && (b.len() == 1 || b[0] != b'0') => {
                Some(v as usize + 1)
            }
            _ => None,
        };
        let Some(slot) = slot.filter(|&s| s <= SMALL_NAMES) else {
            return names.intern(text);
        };
        let table = &mut self.small[field];
        if table.len() <= slot {
            table.resize(slot + 1, 0);
        }
        match table[slot] {
            0 => {
                let sym = names.intern(text);
                table[slot] = sym.0 + 1;
                sym
            }
            s => Sym(s - 1),
        }
    }
}

/// Splits `line` at ASCII whitespace, keeping the first 18 fields in `fields`, and returns how
/// many fields there are, a mask of the kept fields still to parse and a mask of those parsed
/// that have a decimal point. The hot loop of reading a trace: plain numbers (`-1`, `86400`,
/// `4988.39`: up to 15 digits before the point and 3 after it, nearly every field) are parsed
/// on the way into `ms`, in milliseconds, exactly as [`parse_trimmed_secs`] would; the others
/// (more decimals, exponents, garbage) are left to it.
fn split_fields<'l>(
    line: &'l str,
    fields: &mut [&'l str; 18],
    ms: &mut [i64; 18],
) -> (usize, u32, u32) {
    const SCALE: [i64; 4] = [1000, 100, 10, 1];
    let ws = |c: u8| c <= b' ' && c.is_ascii_whitespace();
    let b = line.as_bytes();
    let len = b.len();
    let (mut n, mut complex, mut decimal) = (0, 0u32, 0u32);
    let mut i = 0;
    loop {
        while i < len && ws(b[i]) {
            i += 1;
        }
        if i == len {
            break;
        }
        let start = i;
        let neg = b[i] == b'-';
        i += usize::from(neg);
        // Digits, then maybe a point and digits; wrapping: too many digits fail `plain` anyway.
        let mut v: i64 = 0;
        let digits_from = i;
        while i < len && b[i].wrapping_sub(b'0') < 10 {
            v = v.wrapping_mul(10).wrapping_add(i64::from(b[i] - b'0'));
            i += 1;
        }
        let mut plain = (1..=15).contains(&(i - digits_from));
        let mut scale = SCALE[0];
        let dot = i < len && b[i] == b'.';
        if dot {
            i += 1;
            let frac_from = i;
            while i < len && b[i].wrapping_sub(b'0') < 10 {
                v = v.wrapping_mul(10).wrapping_add(i64::from(b[i] - b'0'));
                i += 1;
            }
            let frac = i - frac_from;
            plain &= frac <= 3;
            scale = SCALE[frac.min(3)];
        }
        if i < len && !ws(b[i]) {
            plain = false;
            while i < len && !ws(b[i]) {
                i += 1;
            }
        }
        if n < 18 {
            // Both ends are at ASCII bytes (or the end), so this is a char boundary.
            fields[n] = &line[start..i];
            if plain {
                let x = v * scale;
                ms[n] = if neg { -x } else { x };
                decimal |= u32::from(dot) << n;
            } else {
                complex |= 1 << n;
            }
        }
        n += 1;
    }
    (n, complex, decimal)
}

/// Scans a job line, found at `offset` in its chunk.
fn scan_line(line: &str, offset: usize, line_no: u64, path: &Path) -> Result<Scanned, TraceError> {
    let mut fields: [&str; 18] = [""; 18];
    let mut ms = [0i64; 18];
    let (n, complex, decimal) = split_fields(line, &mut fields, &mut ms);
    if n != 18 {
        return Err(TraceError::new(
            path,
            Some(line_no),
            TraceErrorKind::FieldCount(n),
        ));
    }
    // Every field must be numeric, used or not: a non-numeric one means the line is not SWF.
    let mut left = complex;
    while left != 0 {
        let k = left.trailing_zeros() as usize;
        left &= left - 1;
        let f = fields[k];
        ms[k] = parse_trimmed_secs(f).ok_or_else(|| {
            TraceError::new(
                path,
                Some(line_no),
                TraceErrorKind::NotNumeric {
                    field: k + 1,
                    name: FIELD_NAMES[k],
                    value: f.to_string(),
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
    // A field written as a plain integer (no point, exponent, ...): its value.
    let name = |k: usize| {
        let from = offset + (fields[k].as_ptr() as usize - line.as_ptr() as usize);
        let value = ((complex | decimal) & (1 << k) == 0).then_some(ms[k] / 1000);
        (from, from + fields[k].len(), value)
    };
    Ok(Scanned {
        id: id as u64,
        submit,
        runtime: ms[3],
        procs,
        requested,
        line: line_no,
        names: [name(11), name(12), name(14), name(15)],
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

    /// The fields and values as the reader found them before the one-pass scanner: split at
    /// ASCII whitespace, then [`parse_trimmed_secs`] on each.
    fn reference_split(line: &str) -> (usize, Vec<String>, Vec<Option<i64>>) {
        let fields: Vec<&str> = line
            .split(|c: char| c.is_ascii_whitespace())
            .filter(|f| !f.is_empty())
            .collect();
        let kept: Vec<&str> = fields.iter().take(18).copied().collect();
        let values = kept.iter().map(|f| parse_trimmed_secs(f)).collect();
        (
            fields.len(),
            kept.iter().map(|f| f.to_string()).collect(),
            values,
        )
    }

    proptest::proptest! {
        #[test]
        fn the_scanner_splits_and_parses_as_before(
            tokens in proptest::collection::vec(
                proptest::sample::select(vec![
                    "-1", "0", "7", "86400", "-", "--1", "+5", "1.5", "-0.25", "2e3", "1e400",
                    "123456789012345", "1234567890123456", "99999999999999999999", "x", "1a",
                    "é", "\u{a0}", " ", "  ", "\t", "\r", "\x0c", "\x0b", ".", "-.5",
                ]),
                0..40,
            ),
        ) {
            let line: String = tokens.concat();
            let (n_ref, fields_ref, values_ref) = reference_split(&line);
            let mut fields = [""; 18];
            let mut ms = [0i64; 18];
            let (n, complex, _) = split_fields(&line, &mut fields, &mut ms);
            proptest::prop_assert_eq!(n, n_ref);
            for k in 0..n.min(18) {
                proptest::prop_assert_eq!(fields[k], fields_ref[k].as_str());
                let v = if complex & (1 << k) != 0 { parse_trimmed_secs(fields[k]) } else { Some(ms[k]) };
                proptest::prop_assert_eq!(v, values_ref[k]);
            }
        }
    }

    #[test]
    fn names_are_interned_in_order_of_first_appearance() {
        let line = |id, user: &str, group: &str| {
            format!("{id} 0 -1 10 2 -1 -1 2 10 -1 1 {user} {group} -1 1 -1 -1 -1\n")
        };
        let text: String = [
            line(1, "7", "-1"),
            line(2, "007", "7"),
            line(3, "100000", "99999"),
            line(4, "-1", "007"),
            line(5, "7", "100000"),
        ]
        .concat();
        let w = read_str(&text, false).unwrap();
        let mut want = Names::default();
        let syms: Vec<(Sym, Sym, Sym)> = [
            ("7", "-1"),
            ("007", "7"),
            ("100000", "99999"),
            ("-1", "007"),
            ("7", "100000"),
        ]
        .iter()
        .map(|(u, g)| {
            let (u, g) = (want.intern(u), want.intern(g));
            let (q, p) = (want.intern("-1"), want.intern("1"));
            assert_eq!((q, p), (want.intern("-1"), want.intern("1")));
            (u, g, p)
        })
        .collect();
        let got: Vec<(Sym, Sym, Sym)> = w.jobs.iter().map(|j| (j.user, j.group, j.queue)).collect();
        assert_eq!(got, syms);
        for j in &w.jobs {
            assert_eq!(w.names.get(j.user), want.get(j.user));
            assert_eq!(w.names.get(j.group), want.get(j.group));
        }
    }

    #[test]
    fn duplicate_ids_are_errors_in_any_order() {
        let line = |id| format!("{id} 0 -1 10 2 -1 -1 2 10 -1 1 1 1 -1 -1 -1 -1 -1\n");
        let text = [line(5), line(9), line(3), line(9)].concat();
        let e = read_str(&text, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.swf:4: duplicate job id 9 (first seen on line 2)"
        );
        let text = [line(5), line(3), line(4), line(5)].concat();
        let e = read_str(&text, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.swf:4: duplicate job id 5 (first seen on line 1)"
        );
    }

    /// The errors keep the precedence of a reader that reads the whole file, then checks it is
    /// UTF-8, then parses it, though the text is parsed while it is read.
    #[test]
    fn a_damaged_file_wins_over_a_malformed_line_before_the_damage() {
        use flate2::{Compression, write::GzEncoder};
        use std::io::Write;
        let ok = |id| format!("{id} 0 -1 10 2 -1 -1 2 10 -1 1 1 1 -1 -1 -1 -1 -1\n");
        // Over two read chunks of text: line 2 is malformed, the damage comes long after.
        let mut text = ok(1) + "2 0 -1 ten 2 -1 -1 2 10 -1 1 1 1 -1 -1 -1 -1 -1\n";
        for id in 3..60_000 {
            text.push_str(&ok(id));
        }
        let dir = tempfile::tempdir().unwrap();
        let read = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            crate::trace::read_trace(&path, false)
        };
        let e = read("plain.swf", text.as_bytes()).unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(text.as_bytes()).unwrap();
        let mut gz = gz.finish().unwrap();
        gz.truncate(gz.len() - 100);
        let e = read("cut.swf.gz", &gz).unwrap_err();
        assert!(
            e.line.is_none() && matches!(e.kind, TraceErrorKind::Io(_)),
            "{e}"
        );
        let mut bad = text.into_bytes();
        bad.extend_from_slice(b"\xff\n");
        let e = read("bad.swf", &bad).unwrap_err();
        let want = format!(
            "{}:60000: not valid UTF-8 text",
            dir.path().join("bad.swf").display()
        );
        assert_eq!(e.to_string(), want);
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
