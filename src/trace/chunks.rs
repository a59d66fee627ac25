//! A trace's text in chunks of whole lines, read (and gunzipped) on a second thread while the
//! caller parses, and scanned by whichever of the two threads is free: reading a `.swf.gz`
//! then takes about half of inflating and parsing together, not their sum, and the text is
//! never held whole (a 1M-job SWF is 65 MB).
//!
//! The reader thread also checks that the text is UTF-8 and counts lines, so the errors are the
//! ones [`super::read_all`] gives, with the same precedence whatever the threads' timing: a
//! read error (bad gzip) anywhere wins over invalid UTF-8 anywhere, which wins over the
//! caller's own error (a malformed line) — the order in which a reader that first reads the
//! whole file, then checks it, then parses it finds them.

use super::{TraceError, TraceErrorKind};
use std::io::{BufRead, ErrorKind, Read};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

/// Bytes read before a chunk is handed over (it ends at the last newline in it).
const CHUNK: usize = 1 << 20;

/// Bytes read for the first chunk; each next chunk reads twice as many, up to [`CHUNK`]. The
/// caller waits for the first chunk (a streamed simulation cannot start before the trace's
/// first job): a small one lets it start after a few milliseconds rather than after a whole
/// mebibyte has been inflated and scanned.
const FIRST_CHUNK: usize = 64 << 10;

/// Chunks in flight between the threads.
const IN_FLIGHT: usize = 4;

/// Reads `reader`'s text in consecutive chunks of whole lines on another thread; `scan(text,
/// first_line, out)` turns each chunk into its lines (`first_line` is the 1-based number of its
/// first line), on whichever thread is free: the reader scans a chunk itself when the caller is
/// behind. `take(text, lines)` then gets every chunk's lines on this thread, in order. What is
/// scanned does not depend on the thread, so neither does the outcome.
///
/// The first error `take` returns stops the reading; the rest of the input is still read and
/// checked, so that a read error or invalid UTF-8 later in the file is reported instead, as
/// [`super::read_all`] would.
pub(crate) fn for_each_chunk<L: Send>(
    reader: Box<dyn BufRead + Send>,
    path: &Path,
    scan: impl Fn(&str, u64, &mut Vec<L>) + Sync,
    mut take: impl FnMut(&str, &mut Vec<L>) -> Result<(), TraceError>,
) -> Result<(), TraceError> {
    let (tx, rx) = mpsc::sync_channel::<Chunk<L>>(IN_FLIGHT);
    let (back_tx, back_rx) = mpsc::channel::<Chunk<L>>();
    let queued = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let (queued, scan) = (&queued, &scan);
        let reading = s.spawn(move || read_chunks(reader, &tx, &back_rx, queued, scan));
        let mut failed = None;
        for mut chunk in rx.iter() {
            queued.fetch_sub(1, Ordering::Relaxed);
            if !chunk.scanned {
                scan(&chunk.text, chunk.first_line, &mut chunk.lines);
            }
            if let Err(e) = take(&chunk.text, &mut chunk.lines) {
                failed = Some(e);
                break;
            }
            let _ = back_tx.send(chunk);
        }
        // Stop receiving: the reader goes on checking the rest of the input on its own.
        drop(rx);
        let read = reading
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        match (read, failed) {
            (Err(ReadError::Io(e)), _) => Err(TraceError::new(path, None, TraceErrorKind::Io(e))),
            (Err(ReadError::NotUtf8 { line }), _) => {
                Err(TraceError::new(path, Some(line), TraceErrorKind::NotUtf8))
            }
            (Ok(()), Some(e)) => Err(e),
            (Ok(()), None) => Ok(()),
        }
    })
}

/// Whole lines of text and, once scanned, what they hold. Sent back once taken, to be reused.
struct Chunk<L> {
    text: String,
    first_line: u64,
    lines: Vec<L>,
    scanned: bool,
}

enum ReadError {
    Io(std::io::Error),
    NotUtf8 { line: u64 },
}

/// The reader thread: reads `reader` to its end in chunks cut after their last newline, checks
/// that each is UTF-8 and sends it while the receiver listens and the text is valid — scanned
/// first when `queued` says the receiver has chunks waiting; spent chunks come back on `spent`.
fn read_chunks<L>(
    mut reader: Box<dyn BufRead + Send>,
    tx: &mpsc::SyncSender<Chunk<L>>,
    spent: &mpsc::Receiver<Chunk<L>>,
    queued: &AtomicUsize,
    scan: &impl Fn(&str, u64, &mut Vec<L>),
) -> Result<(), ReadError> {
    let mut line = 1u64;
    let mut carry: Vec<u8> = Vec::new();
    let mut listening = true;
    let mut bad_utf8: Option<u64> = None;
    let mut size = FIRST_CHUNK;
    loop {
        let (buf, mut lines) = match spent.try_recv() {
            Ok(c) => (c.text.into_bytes(), c.lines),
            Err(_) => (Vec::new(), Vec::new()),
        };
        let mut buf = buf;
        buf.clear();
        buf.reserve(size + carry.len());
        buf.append(&mut carry);
        let eof = fill(&mut reader, &mut buf, size).map_err(ReadError::Io)?;
        size = (size * 2).min(CHUNK);
        let cut = if eof {
            buf.len()
        } else {
            match memchr::memrchr(b'\n', &buf) {
                Some(i) => i + 1,
                // No newline yet: a longer line; read on.
                None => {
                    carry = buf;
                    continue;
                }
            }
        };
        carry.extend_from_slice(&buf[cut..]);
        buf.truncate(cut);
        let first_line = line;
        line += memchr::memchr_iter(b'\n', &buf).count() as u64;
        if bad_utf8.is_none() {
            match String::from_utf8(buf) {
                Ok(text) if listening && !text.is_empty() => {
                    lines.clear();
                    // The receiver has work waiting: scan this chunk here.
                    let scanned = queued.load(Ordering::Relaxed) > 0;
                    if scanned {
                        scan(&text, first_line, &mut lines);
                    }
                    queued.fetch_add(1, Ordering::Relaxed);
                    let chunk = Chunk {
                        text,
                        first_line,
                        lines,
                        scanned,
                    };
                    listening = tx.send(chunk).is_ok();
                }
                Ok(_) => {}
                Err(e) => {
                    let upto = e.utf8_error().valid_up_to();
                    let before = &e.as_bytes()[..upto];
                    bad_utf8 = Some(first_line + memchr::memchr_iter(b'\n', before).count() as u64);
                }
            }
        }
        if eof {
            break;
        }
    }
    match bad_utf8 {
        Some(line) => Err(ReadError::NotUtf8 { line }),
        None => Ok(()),
    }
}

/// Reads into `buf` until it holds `size` more bytes or the input ends; true at the end.
fn fill(reader: &mut dyn Read, buf: &mut Vec<u8>, size: usize) -> std::io::Result<bool> {
    let mut filled = buf.len();
    buf.resize(filled + size, 0);
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => {
                buf.truncate(filled);
                return Ok(true);
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                buf.truncate(filled);
                return Err(e);
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor};

    /// Splits a chunk into its numbered lines.
    fn split(text: &str, first: u64, out: &mut Vec<(u64, String)>) {
        for (i, l) in text.split_terminator('\n').enumerate() {
            out.push((first + i as u64, l.to_string()));
        }
    }

    /// The lines `for_each_chunk` hands over, with their numbers.
    fn lines_of(bytes: Vec<u8>) -> Result<Vec<(u64, String)>, TraceError> {
        let mut out = Vec::new();
        for_each_chunk(
            Box::new(BufReader::new(Cursor::new(bytes))),
            Path::new("t"),
            split,
            |_, lines| {
                out.append(lines);
                Ok(())
            },
        )?;
        Ok(out)
    }

    #[test]
    fn every_line_once_in_order_across_chunks() {
        let mut text = String::new();
        let mut want = Vec::new();
        for i in 0..200_000u64 {
            // Lines of many lengths, one longer than a chunk.
            let l = if i == 77_777 {
                "y".repeat(CHUNK + 10)
            } else {
                "x".repeat((i % 23) as usize)
            };
            text.push_str(&l);
            text.push('\n');
            want.push((i + 1, l));
        }
        text.push_str("last, no newline");
        want.push((200_001, "last, no newline".to_string()));
        assert_eq!(lines_of(text.into_bytes()).unwrap(), want);
        assert_eq!(lines_of(Vec::new()).unwrap(), Vec::new());
    }

    #[test]
    fn the_reader_scans_when_the_caller_is_behind_and_the_lines_are_the_same() {
        let text = "x y z\n".repeat(3_000_000);
        let main = std::thread::current().id();
        let elsewhere = AtomicUsize::new(0);
        let mut got = Vec::new();
        for_each_chunk(
            Box::new(BufReader::new(Cursor::new(text.clone().into_bytes()))),
            Path::new("t"),
            |text, first, out| {
                if std::thread::current().id() != main {
                    elsewhere.fetch_add(1, Ordering::Relaxed);
                }
                split(text, first, out);
            },
            |_, lines| {
                // A slow caller: the reader gets ahead.
                std::thread::sleep(std::time::Duration::from_millis(20));
                got.append(lines);
                Ok(())
            },
        )
        .unwrap();
        assert!(elsewhere.load(Ordering::Relaxed) > 0);
        let want: Vec<(u64, String)> = (1..=3_000_000).map(|i| (i, "x y z".to_string())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn utf8_errors_name_their_line_and_win_over_parse_errors() {
        let mut text = "ok\n".repeat(700_000).into_bytes();
        text.extend_from_slice(b"bad \xff\n");
        let e = lines_of(text.clone()).unwrap_err();
        assert_eq!(e.to_string(), "t:700001: not valid UTF-8 text");
        // A parse error on line 2 still gives way to the invalid UTF-8 further down.
        let e = for_each_chunk(
            Box::new(BufReader::new(Cursor::new(text))),
            Path::new("t"),
            split,
            |_, _| {
                Err(TraceError::new(
                    Path::new("t"),
                    Some(2),
                    TraceErrorKind::Empty,
                ))
            },
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "t:700001: not valid UTF-8 text");
    }

    #[test]
    fn parse_errors_stop_the_parsing() {
        let text = "a\n".repeat(2_000_000).into_bytes();
        let mut calls = 0;
        let e = for_each_chunk(
            Box::new(BufReader::new(Cursor::new(text))),
            Path::new("t"),
            split,
            |_, lines| {
                calls += 1;
                let first = lines.first().map_or(0, |l| l.0);
                Err(TraceError::new(
                    Path::new("t"),
                    Some(first),
                    TraceErrorKind::Empty,
                ))
            },
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "t:1: the trace holds no job");
        assert_eq!(calls, 1);
    }
}
