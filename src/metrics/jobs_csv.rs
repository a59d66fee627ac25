//! The `jobs.csv` writer (docs/output-schema.md): one row per simulated job, sorted by id.
//!
//! Rows are formatted straight into a byte buffer — integers two digits at a time,
//! milliseconds as seconds with three decimals, the two ratios with six decimals — in blocks of
//! 2,048 rows, which helper threads format in turn with this one (a 1M-job `jobs.csv` is about
//! 170 MB: it is never held whole) and which are written in order, so the bytes do not depend
//! on the threads' timing. `format!` cost about 20,000 instructions a row (two thirds of a
//! 122k-job EASY run); this costs a few hundred. The bytes are the same: the six-decimal
//! ratios are rounded from the exact binary value, ties to even, as `format!("{:.6}")` does
//! (values it cannot do exactly — negative, huge, not finite — go through `format!`), and the
//! tests compare every column with the `format!` rendering.
//!
//! Names (users, groups, partitions, single nodes) are quoted once per name, not once per row.

use super::{BSLD_TAU_SECS, JobResult, SimResult, bounded_slowdown, slowdown};
use crate::ids::{JobId, Names, Sym};
use crate::model::{Cluster, Slice};
use crate::trace::write::csv_field;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

/// The columns of `jobs.csv`, in order (Batsim's names first).
pub const JOBS_CSV_COLUMNS: [&str; 26] = [
    "job_id",
    "submission_time",
    "requested_number_of_resources",
    "requested_time",
    "starting_time",
    "execution_time",
    "finish_time",
    "waiting_time",
    "turnaround_time",
    "stretch",
    "final_state",
    "user",
    "group",
    "estimate",
    "bounded_slowdown",
    "priority",
    "partition",
    "allocated_resources",
    "leaf_switches",
    "allocation",
    "pending_reason",
    "preemptions",
    "lost_cpu_seconds",
    "elastic_range",
    "resizes",
    "cpu_seconds",
];

/// Writes `jobs.csv`: one row per simulated job, sorted by id. `requested_time` is the user's
/// requested time, or the run time when none was given (the `requested` estimate); `estimate`
/// is what the policy planned with under the run's estimate mode.
///
/// Rows are formatted in blocks, by this thread and (on a machine with several cores) helper
/// threads taking the blocks in turn; the blocks are written in order, so the bytes are the same
/// whatever the threads' timing.
pub fn write_jobs_csv(
    w: &mut dyn Write,
    result: &SimResult,
    names: &Names,
    cluster: &Cluster,
) -> std::io::Result<()> {
    write_jobs_csv_header(w)?;
    write_jobs_csv_rows(w, &result.jobs, names, cluster)
}

/// The first line of `jobs.csv`: the column names.
pub fn write_jobs_csv_header(w: &mut dyn Write) -> std::io::Result<()> {
    let mut head = JOBS_CSV_COLUMNS.join(",");
    head.push('\n');
    w.write_all(head.as_bytes())
}

/// The rows of `jobs` (sorted by id), as [`write_jobs_csv`] writes them after the header.
pub fn write_jobs_csv_rows(
    w: &mut dyn Write,
    jobs: &[JobResult],
    names: &Names,
    cluster: &Cluster,
) -> std::io::Result<()> {
    // One block needs no helper (and no look at the cgroup's CPU quota to size them).
    let cores = if jobs.len() <= BLOCK_ROWS {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    write_blocks(
        w,
        jobs,
        names,
        cluster,
        BLOCK_ROWS,
        cores.min(MAX_THREADS) - 1,
    )
}

/// Rows per block (about 170 bytes each).
pub const BLOCK_ROWS: usize = 2048;

/// Threads formatting rows, this one included.
const MAX_THREADS: usize = 4;

/// [`write_jobs_csv_rows`] with blocks of `block_rows` rows and up to `helpers` helper threads.
fn write_blocks(
    w: &mut dyn Write,
    jobs: &[JobResult],
    names: &Names,
    cluster: &Cluster,
    block_rows: usize,
    helpers: usize,
) -> std::io::Result<()> {
    let blocks: Vec<&[JobResult]> = jobs.chunks(block_rows.max(1)).collect();
    let helpers = helpers.min(blocks.len().saturating_sub(1));
    let workers = helpers + 1;
    let capacity = block_rows.min(jobs.len()) * 192;
    std::thread::scope(|s| {
        // Per helper: its formatted blocks, in order, and the spent buffers back to it.
        let mut formatted = Vec::with_capacity(helpers);
        let mut spent = Vec::with_capacity(helpers);
        for h in 1..workers {
            let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(2);
            let (back_tx, back_rx) = mpsc::channel::<Vec<u8>>();
            formatted.push(rx);
            spent.push(back_tx);
            let blocks = &blocks;
            s.spawn(move || {
                let mut rows = Rows::new(names, cluster);
                for block in blocks.iter().skip(h).step_by(workers) {
                    let mut buf = back_rx
                        .try_recv()
                        .unwrap_or_else(|_| Vec::with_capacity(capacity));
                    buf.clear();
                    rows.block(&mut buf, block);
                    if tx.send(buf).is_err() {
                        // The writer stopped (a write failed).
                        return;
                    }
                }
            });
        }
        let mut rows = Rows::new(names, cluster);
        let mut own = Vec::with_capacity(capacity);
        for (b, block) in blocks.iter().enumerate() {
            match b % workers {
                0 => {
                    own.clear();
                    rows.block(&mut own, block);
                    w.write_all(&own)?;
                }
                k => {
                    let buf = formatted[k - 1].recv().map_err(|_| {
                        std::io::Error::other("a thread formatting jobs.csv stopped")
                    })?;
                    w.write_all(&buf)?;
                    // The helper may have finished: then the buffer is simply dropped.
                    let _ = spent[k - 1].send(buf);
                }
            }
        }
        Ok(())
    })
}

/// `jobs.csv` written on a thread of its own while the simulation still runs: the header at
/// once, then the rows of each block of [`BLOCK_ROWS`] finished jobs it is offered — in id
/// order, each block after the one before — and, before any block that uses them, the names
/// the trace added ([`NameSender`]). What is left when the simulation ends is written by
/// [`RowStream::finish`]'s caller with [`write_jobs_csv_rows`]. The bytes are the ones
/// [`write_jobs_csv`] writes: the same rows, formatted by the same code, in the same blocks.
pub struct RowStream {
    tx: Option<mpsc::Sender<Piece>>,
    /// Blocks offered and not yet written.
    queued: Arc<AtomicUsize>,
    rows: usize,
    last_id: Option<JobId>,
    thread: Option<JoinHandle<std::io::Result<Box<dyn Write + Send>>>>,
}

/// What the writing thread is sent.
enum Piece {
    /// Names interned after those sent before (symbols in order, from 1).
    Names(Vec<String>),
    Rows(Vec<JobResult>),
    /// No more: [`RowStream::finish`] (a [`NameSender`] may outlive the stream).
    End,
}

/// Blocks offered and not yet written, at most: a simulation does not wait for the writer,
/// and on a busy machine its blocks wait in the simulation's own records rather than in
/// copies.
const MAX_QUEUED: usize = 4;

/// Sends a [`RowStream`] the names the trace adds as it is read.
pub struct NameSender(mpsc::Sender<Piece>);

impl NameSender {
    /// Names interned since the last ones sent, in symbol order.
    pub fn send(&self, new: Vec<String>) {
        // A writer that stopped has its error to tell at `finish`.
        let _ = self.0.send(Piece::Names(new));
    }
}

impl RowStream {
    /// Starts the thread that writes to `w` for jobs on `cluster`, whose names are interned
    /// in the order [`NameSender::send`] gives them.
    pub fn start(w: Box<dyn Write + Send>, cluster: Cluster) -> std::io::Result<RowStream> {
        let (tx, rx) = mpsc::channel::<Piece>();
        let queued = Arc::new(AtomicUsize::new(0));
        let left = Arc::clone(&queued);
        let thread = std::thread::Builder::new()
            .name("jobs.csv".into())
            .spawn(move || write_pieces(w, &cluster, &rx, &left))?;
        Ok(RowStream {
            tx: Some(tx),
            queued,
            rows: 0,
            last_id: None,
            thread: Some(thread),
        })
    }

    /// A sender of the names the trace adds, for the feed of the simulation.
    pub fn names(&self) -> Option<NameSender> {
        self.tx.as_ref().map(|tx| NameSender(tx.clone()))
    }

    /// Takes the next block of rows (`jobs`, of [`BLOCK_ROWS`] jobs, after every row offered
    /// before in id order); false when the writer has enough waiting.
    pub fn offer(&mut self, jobs: &[JobResult]) -> bool {
        let Some(tx) = &self.tx else {
            return false;
        };
        if self.queued.load(Ordering::Acquire) >= MAX_QUEUED {
            return false;
        }
        self.queued.fetch_add(1, Ordering::AcqRel);
        if tx.send(Piece::Rows(jobs.to_vec())).is_err() {
            return false;
        }
        self.rows += jobs.len();
        self.last_id = jobs.last().map(|j| j.spec.id).or(self.last_id);
        true
    }

    /// Rows taken so far, and the id of the last.
    pub fn taken(&self) -> (usize, Option<JobId>) {
        (self.rows, self.last_id)
    }

    /// Waits for every row taken to be written and gives the writer back, with the number of
    /// rows written after the header, or the first error writing.
    pub fn finish(mut self) -> std::io::Result<(Box<dyn Write + Send>, usize)> {
        let rows = self.rows;
        self.stop().map(|w| (w, rows))
    }

    fn stop(&mut self) -> std::io::Result<Box<dyn Write + Send>> {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Piece::End);
        }
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
            None => Err(std::io::Error::other("jobs.csv was already written")),
        }
    }
}

impl Drop for RowStream {
    /// A stream given up still waits for its thread, so that nothing writes to its file once
    /// the caller has moved on (to write the file afresh, or to remove it).
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.stop();
        }
    }
}

/// The writing thread of a [`RowStream`].
fn write_pieces(
    mut w: Box<dyn Write + Send>,
    cluster: &Cluster,
    rx: &mpsc::Receiver<Piece>,
    queued: &AtomicUsize,
) -> std::io::Result<Box<dyn Write + Send>> {
    let mut failed = write_jobs_csv_header(&mut w).err();
    let mut names = Names::default();
    let mut buf = Vec::with_capacity(BLOCK_ROWS * 192);
    for piece in rx {
        match piece {
            Piece::Names(new) => {
                for n in &new {
                    names.intern(n);
                }
            }
            Piece::Rows(jobs) => {
                if failed.is_none() {
                    buf.clear();
                    Rows::new(&names, cluster).block(&mut buf, &jobs);
                    failed = w.write_all(&buf).err();
                }
                drop(jobs);
                queued.fetch_sub(1, Ordering::AcqRel);
            }
            Piece::End => break,
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(w),
    }
}

/// Formats rows; one per thread (its quoted names are its own).
struct Rows<'a> {
    quoted: Quoted<'a>,
}

impl<'a> Rows<'a> {
    fn new(names: &'a Names, cluster: &'a Cluster) -> Rows<'a> {
        Rows {
            quoted: Quoted::new(names, cluster),
        }
    }

    /// Appends the rows of `jobs` to `buf`.
    fn block(&mut self, buf: &mut Vec<u8>, jobs: &[JobResult]) {
        let quoted = &mut self.quoted;
        for j in jobs {
            let s = &j.spec;
            let requested = s.requested_time.filter(|d| d.0 > 0).unwrap_or(j.runtime);
            push_u64(buf, s.id.0);
            buf.push(b',');
            push_millis(buf, s.submit.0);
            buf.push(b',');
            push_u64(buf, u64::from(s.cpus));
            buf.push(b',');
            push_millis(buf, requested.0);
            buf.push(b',');
            push_millis(buf, j.start.0);
            buf.push(b',');
            push_millis(buf, j.execution().0);
            buf.push(b',');
            push_millis(buf, j.finish.0);
            buf.push(b',');
            push_millis(buf, j.wait().0);
            buf.push(b',');
            push_millis(buf, j.turnaround().0);
            buf.push(b',');
            push_fixed6(buf, slowdown(j));
            buf.push(b',');
            buf.extend_from_slice(j.state.name().as_bytes());
            buf.push(b',');
            buf.extend_from_slice(quoted.name(s.user).as_bytes());
            buf.push(b',');
            buf.extend_from_slice(quoted.name(s.account).as_bytes());
            buf.push(b',');
            push_millis(buf, s.estimate.0);
            buf.push(b',');
            push_fixed6(buf, bounded_slowdown(j, BSLD_TAU_SECS));
            buf.push(b',');
            push_i64(buf, s.priority);
            buf.push(b',');
            buf.extend_from_slice(quoted.partition(s.partition).as_bytes());
            buf.push(b',');
            quoted.allocation(buf, &j.alloc, j.leaf_switches);
            buf.push(b',');
            buf.extend_from_slice(j.pending_reason.name().as_bytes());
            buf.push(b',');
            push_u64(buf, u64::from(j.preemptions));
            buf.push(b',');
            push_millis(buf, j.lost_cpu_ms);
            buf.push(b',');
            if let Some(e) = s.elastic {
                push_u64(buf, u64::from(e.min));
                buf.push(b'-');
                push_u64(buf, u64::from(e.max));
            }
            buf.push(b',');
            push_u64(buf, u64::from(j.resizes));
            buf.push(b',');
            push_millis(buf, j.cpu_ms);
            buf.push(b'\n');
        }
    }
}

/// CSV-quoted names, computed once each.
struct Quoted<'a> {
    names: &'a Names,
    cluster: &'a Cluster,
    syms: Vec<Option<String>>,
    partitions: Vec<String>,
    /// Per node: its name quoted for a one-node `allocated_resources` (a single name is its own
    /// hostlist), and whether `NAME:CPUS` needs no quoting.
    nodes: Vec<Option<(String, bool)>>,
}

impl<'a> Quoted<'a> {
    fn new(names: &'a Names, cluster: &'a Cluster) -> Quoted<'a> {
        Quoted {
            names,
            cluster,
            syms: Vec::new(),
            partitions: cluster
                .partitions
                .iter()
                .map(|p| csv_field(&p.name).into_owned())
                .collect(),
            nodes: vec![None; cluster.nodes.len()],
        }
    }

    fn name(&mut self, s: Sym) -> &str {
        let i = s.0 as usize;
        if self.syms.len() <= i {
            self.syms.resize(i + 1, None);
        }
        self.syms[i].get_or_insert_with(|| csv_field(self.names.get(s)).into_owned())
    }

    fn partition(&self, p: u32) -> &str {
        self.partitions.get(p as usize).map_or("", String::as_str)
    }

    /// `allocated_resources`, `leaf_switches` and `allocation`.
    fn allocation(&mut self, buf: &mut Vec<u8>, alloc: &[Slice], leaf_switches: u32) {
        if let [s] = alloc
            && s.gpus == 0
        {
            let cluster = self.cluster;
            let (host, plain) = self.nodes[s.node as usize].get_or_insert_with(|| {
                let name = cluster.nodes[s.node as usize].name.as_str();
                let host = csv_field(&cluster.hostlist(&[Slice::new(s.node, 1, 0)])).into_owned();
                // `NAME:CPUS` is quoted exactly when the name is: digits and ':' need none.
                let plain = !name.starts_with('#') && !name.contains([',', '"', '\n', '\r']);
                (host, plain)
            });
            if *plain {
                buf.extend_from_slice(host.as_bytes());
                buf.push(b',');
                push_u64(buf, u64::from(leaf_switches));
                buf.push(b',');
                buf.extend_from_slice(cluster.nodes[s.node as usize].name.as_bytes());
                buf.push(b':');
                push_u64(buf, u64::from(s.cpus));
                return;
            }
        }
        buf.extend_from_slice(csv_field(&self.cluster.hostlist(alloc)).as_bytes());
        buf.push(b',');
        push_u64(buf, u64::from(leaf_switches));
        buf.push(b',');
        buf.extend_from_slice(csv_field(&self.cluster.allocation_detail(alloc)).as_bytes());
    }
}

/// The two-digit numbers 00–99, for formatting two digits at a time.
const PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Powers of ten, for counting digits.
const POW10: [u64; 20] = {
    let mut p = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        p[i] = p[i - 1] * 10;
        i += 1;
    }
    p
};

/// The number of decimal digits of `v` (1 for 0): log₁₀ from the bit length (× 1233 / 4096 is
/// just under log₁₀ 2) and one comparison.
#[inline]
fn digits(v: u64) -> usize {
    let v = v | 1;
    let t = (((64 - v.leading_zeros()) * 1233) >> 12) as usize;
    t + usize::from(v >= POW10[t])
}

/// Writes the `n` decimal digits of `v` (`n` = [`digits`]`(v)`) at the start of `tmp`, two at
/// a time.
#[inline]
fn put_digits(tmp: &mut [u8; 32], n: usize, mut v: u64) {
    let mut i = n;
    while v >= 100 {
        let r = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        tmp[i..i + 2].copy_from_slice(&PAIRS[r..r + 2]);
    }
    if v >= 10 {
        let r = v as usize * 2;
        tmp[..2].copy_from_slice(&PAIRS[r..r + 2]);
    } else {
        tmp[0] = b'0' + v as u8;
    }
}

/// Appends the first `n` bytes of `tmp`: the whole fixed-size array is appended and cut to
/// length, two fixed-size moves rather than a copy of variable length.
#[inline]
fn push_first(out: &mut Vec<u8>, tmp: &[u8; 32], n: usize) {
    let len = out.len();
    out.extend_from_slice(tmp);
    out.truncate(len + n);
}

/// Appends `v` in decimal.
#[inline]
pub fn push_u64(out: &mut Vec<u8>, v: u64) {
    if v < 10 {
        out.push(b'0' + v as u8);
        return;
    }
    let n = digits(v);
    let mut tmp = [0u8; 32];
    put_digits(&mut tmp, n, v);
    push_first(out, &tmp, n);
}

/// Appends `v` in decimal, with a `-` when negative.
pub fn push_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    push_u64(out, v.unsigned_abs());
}

/// Appends milliseconds as seconds with three decimals (`fmt_millis`): `-1.500`, `86400.000`.
#[inline]
pub fn push_millis(out: &mut Vec<u8>, ms: i64) {
    if ms < 0 {
        out.push(b'-');
    }
    let a = ms.unsigned_abs();
    let (int, f) = (a / 1000, (a % 1000) as usize);
    let n = digits(int);
    let mut tmp = [0u8; 32];
    put_digits(&mut tmp, n, int);
    let p = f / 10 * 2;
    tmp[n..n + 4].copy_from_slice(&[b'.', PAIRS[p], PAIRS[p + 1], b'0' + (f % 10) as u8]);
    push_first(out, &tmp, n + 4);
}

/// Appends `x` with six decimals, exactly as `format!("{x:.6}")`: the exact binary value times
/// 10⁶, rounded to the nearest integer, ties to even.
pub fn push_fixed6(out: &mut Vec<u8>, x: f64) {
    // Below 2^50, x × 10⁶ < 2^70 and the arithmetic below is exact in u128.
    if !(x.is_finite() && x.is_sign_positive() && x < (1u64 << 50) as f64) {
        let _ = write!(out, "{x:.6}");
        return;
    }
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    // x = m × 2^e exactly.
    let (m, e) = if exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), exp - 1075)
    };
    let n = u128::from(m) * 1_000_000;
    let q: u128 = if e >= 0 {
        n << e
    } else if e <= -120 {
        // n < 2^73, so n × 2^e < 2^-47: rounds to 0.
        0
    } else {
        let s = (-e) as u32;
        let q = n >> s;
        let r = n & ((1u128 << s) - 1);
        let half = 1u128 << (s - 1);
        if r > half || (r == half && q & 1 == 1) {
            q + 1
        } else {
            q
        }
    };
    // Nearly always below 2^64: then no 128-bit division.
    let (int, f) = match u64::try_from(q) {
        Ok(q) => (q / 1_000_000, (q % 1_000_000) as usize),
        Err(_) => ((q / 1_000_000) as u64, (q % 1_000_000) as usize),
    };
    let n = digits(int);
    let mut tmp = [0u8; 32];
    put_digits(&mut tmp, n, int);
    let (a, b, c) = (f / 10_000 * 2, f / 100 % 100 * 2, f % 100 * 2);
    tmp[n..n + 7].copy_from_slice(&[
        b'.',
        PAIRS[a],
        PAIRS[a + 1],
        PAIRS[b],
        PAIRS[b + 1],
        PAIRS[c],
        PAIRS[c + 1],
    ]);
    push_first(out, &tmp, n + 7);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::JobId;
    use crate::metrics::JobResult;
    use crate::model::{ElasticRange, FinalState, JobSpec, PendingReason};
    use crate::time::{Dur, Time, fmt_millis};
    use proptest::prelude::*;
    use std::fmt::Write as _;
    use std::sync::Arc;

    fn fixed6(x: f64) -> String {
        let mut v = Vec::new();
        push_fixed6(&mut v, x);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn six_decimals_round_ties_to_even_like_format() {
        // k/128 are the exact ties at six decimals (x × 10⁶ = n + ½).
        for k in 0..100_000u32 {
            let x = f64::from(k) / 128.0;
            assert_eq!(fixed6(x), format!("{x:.6}"), "{x}");
        }
        assert_eq!(fixed6(1.0 / 128.0), "0.007812");
        assert_eq!(fixed6(3.0 / 128.0), "0.023438");
        for x in [
            0.0,
            -0.0,
            1.0,
            0.1,
            2.0 / 3.0,
            1e-7,
            5e-7,
            4.9999999e-7,
            f64::MIN_POSITIVE,
            5e-324,
            123456.7890125,
            (1u64 << 50) as f64 - 0.5,
            (1u64 << 50) as f64,
            1e300,
            -1.5,
            f64::INFINITY,
            f64::NAN,
        ] {
            assert_eq!(fixed6(x), format!("{x:.6}"), "{x:e}");
        }
    }

    proptest! {
        #[test]
        fn six_decimals_match_format_on_any_double(bits in any::<u64>()) {
            let x = f64::from_bits(bits);
            prop_assert_eq!(fixed6(x), format!("{x:.6}"));
        }

        #[test]
        fn six_decimals_match_format_on_ratios(a in 0i64..10_000_000_000, b in 1i64..100_000_000) {
            let x = a as f64 / b as f64;
            prop_assert_eq!(fixed6(x), format!("{x:.6}"));
        }

        #[test]
        fn unsigned_integers_match_format(v in any::<u64>(), digits in 0u32..20) {
            let small = v % 10u64.pow(digits);
            let mut out = Vec::new();
            for x in [v, small, u64::MAX, 0] {
                out.clear();
                push_u64(&mut out, x);
                prop_assert_eq!(String::from_utf8(out.clone()).unwrap(), x.to_string());
            }
        }

        #[test]
        fn integers_and_millis_match_format(v in any::<i64>()) {
            let mut out = Vec::new();
            push_i64(&mut out, v);
            out.push(b' ');
            push_millis(&mut out, v);
            prop_assert_eq!(String::from_utf8(out).unwrap(), format!("{v} {}", fmt_millis(v)));
        }
    }

    #[test]
    fn digit_counts_at_every_power_of_ten() {
        let mut out = Vec::new();
        for p in 0..20u32 {
            let t = 10u64.pow(p);
            for x in [
                t - 1,
                t,
                t + 1,
                t.saturating_mul(2),
                t.saturating_mul(9).saturating_add(9),
            ] {
                assert_eq!(digits(x), x.to_string().len(), "{x}");
                out.clear();
                push_u64(&mut out, x);
                assert_eq!(String::from_utf8(out.clone()).unwrap(), x.to_string());
                out.clear();
                push_millis(&mut out, x as i64);
                assert_eq!(
                    String::from_utf8(out.clone()).unwrap(),
                    fmt_millis(x as i64)
                );
            }
        }
        assert_eq!(digits(u64::MAX), 20);
    }

    /// The row as the `format!`-based writer this one replaced wrote it.
    fn reference_row(j: &JobResult, names: &Names, cluster: &Cluster) -> String {
        let s = &j.spec;
        let requested = s.requested_time.filter(|d| d.0 > 0).unwrap_or(j.runtime);
        let mut line = String::new();
        let _ = writeln!(
            line,
            "{},{},{},{},{},{},{},{},{},{:.6},{},{},{},{},{:.6},{},{},{},{},{},{},{},{},{},{},{}",
            s.id,
            fmt_millis(s.submit.0),
            s.cpus,
            fmt_millis(requested.0),
            fmt_millis(j.start.0),
            fmt_millis(j.execution().0),
            fmt_millis(j.finish.0),
            fmt_millis(j.wait().0),
            fmt_millis(j.turnaround().0),
            slowdown(j),
            j.state,
            csv_field(names.get(s.user)),
            csv_field(names.get(s.account)),
            fmt_millis(s.estimate.0),
            bounded_slowdown(j, BSLD_TAU_SECS),
            s.priority,
            csv_field(
                cluster
                    .partitions
                    .get(s.partition as usize)
                    .map_or("", |p| p.name.as_str())
            ),
            csv_field(&cluster.hostlist(&j.alloc)),
            j.leaf_switches,
            csv_field(&cluster.allocation_detail(&j.alloc)),
            j.pending_reason,
            j.preemptions,
            fmt_millis(j.lost_cpu_ms),
            s.elastic
                .map_or(String::new(), |e| format!("{}-{}", e.min, e.max)),
            j.resizes,
            fmt_millis(j.cpu_ms),
        );
        line
    }

    #[test]
    fn rows_match_the_format_rendering() {
        let mut cluster = Cluster::uniform(4, 8, 1000, 2).unwrap();
        cluster.nodes[2].name = "odd,name".into();
        cluster.nodes[3].name = "#n3".into();
        let mut names = Names::default();
        let plain = names.intern("alice");
        let comma = names.intern("bob, jr");
        let quote = names.intern("say \"hi\"");
        let allocs: Vec<Arc<[Slice]>> = vec![
            Arc::from(vec![Slice::new(0, 8, 0)]),
            Arc::from(vec![Slice::new(1, 3, 1)]),
            Arc::from(vec![Slice::new(2, 2, 0)]),
            Arc::from(vec![Slice::new(3, 2, 0)]),
            Arc::from(vec![Slice::new(0, 4, 0), Slice::new(1, 4, 0)]),
            Arc::from(vec![Slice {
                gpu_mask: 0b11,
                ..Slice::new(1, 2, 2)
            }]),
            Arc::from(Vec::new()),
        ];
        let mut jobs = Vec::new();
        for (k, alloc) in allocs.into_iter().enumerate() {
            let k = k as i64;
            let spec = JobSpec {
                user: [plain, comma, quote][k as usize % 3],
                account: [quote, plain, comma][k as usize % 3],
                priority: 5 - 3 * k,
                requested_time: (k % 2 == 0).then_some(Dur(7_777 * k)),
                elastic: (k == 2).then_some(ElasticRange { min: 1, max: 4 }),
                ..JobSpec::new(
                    JobId(k as u64 * 1_000_003),
                    Time(-1_500 + k * 999),
                    8,
                    Dur(k),
                )
            };
            jobs.push(JobResult {
                spec: Arc::new(spec),
                runtime: Dur(123_456 * k),
                start: Time(1_000 * k + 7),
                finish: Time(1_000 * k + 7 + 123_456 * k),
                state: FinalState::ALL[k as usize % FinalState::ALL.len()],
                alloc,
                leaf_switches: k as u32 % 2,
                pending_reason: PendingReason::ALL[k as usize % PendingReason::ALL.len()],
                preemptions: k as u32,
                busy: Dur(123_456 * k),
                lost_cpu_ms: -k,
                cpu_ms: 8 * 123_456 * k,
                resizes: 2 * k as u32,
            });
        }
        let result = SimResult {
            procs: 32,
            jobs,
            passes: 0,
            elastic_work: Vec::new(),
        };
        let mut want = JOBS_CSV_COLUMNS.join(",");
        want.push('\n');
        for j in &result.jobs {
            want.push_str(&reference_row(j, &names, &cluster));
        }
        let mut out = Vec::new();
        write_jobs_csv(&mut out, &result, &names, &cluster).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), want);
        // Blocks of one to eight rows, formatted by up to three helper threads in turn.
        for (rows, helpers) in [(1, 1), (2, 1), (1, 3), (3, 2), (8, 3), (2, 0)] {
            let mut out = Vec::new();
            write_jobs_csv_header(&mut out).unwrap();
            write_blocks(&mut out, &result.jobs, &names, &cluster, rows, helpers).unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                want,
                "{rows} rows, {helpers} helpers"
            );
        }
        // Written while a simulation runs: blocks offered (the names sent before them, in
        // two parts), the rest after `finish`; whatever the cut, the same bytes.
        for cut in [0, 1, 3, 7] {
            let (mut stream, file) = shared_stream(cluster.clone());
            let names_to = stream.names().unwrap();
            names_to.send(vec!["alice".into()]);
            names_to.send(vec!["bob, jr".into(), "say \"hi\"".into()]);
            let mut taken = 0;
            for block in result.jobs[..cut].chunks(2) {
                assert!(stream.offer(block));
                taken += block.len();
            }
            assert_eq!(stream.taken().0, taken);
            let (mut w, rows) = stream.finish().unwrap();
            assert_eq!(rows, cut);
            write_jobs_csv_rows(&mut w, &result.jobs[rows..], &names, &cluster).unwrap();
            w.flush().unwrap();
            drop(w);
            let bytes = file.lock().unwrap().clone();
            assert_eq!(String::from_utf8(bytes).unwrap(), want, "cut at {cut}");
        }
    }

    /// A writer into a buffer shared with the test.
    struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn shared_stream(cluster: Cluster) -> (RowStream, Arc<std::sync::Mutex<Vec<u8>>>) {
        let file = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stream = RowStream::start(Box::new(Shared(Arc::clone(&file))), cluster).unwrap();
        (stream, file)
    }

    /// A stream whose file cannot be written reports it at `finish`; one dropped without
    /// `finish` has stopped writing when the drop returns.
    #[test]
    fn a_stream_reports_write_errors_and_stops_when_dropped() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk full"))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let cluster = Cluster::uniform(1, 4, 0, 0).unwrap();
        let stream = RowStream::start(Box::new(Full), cluster.clone()).unwrap();
        let e = stream.finish().err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("disk full"));
        let (mut stream, file) = shared_stream(cluster);
        let spec = Arc::new(JobSpec::new(JobId(1), Time(0), 1, Dur(1)));
        let job = JobResult {
            spec,
            runtime: Dur(1),
            start: Time(0),
            finish: Time(1),
            state: FinalState::Completed,
            alloc: Arc::from(vec![Slice::new(0, 1, 0)]),
            leaf_switches: 1,
            pending_reason: PendingReason::None,
            preemptions: 0,
            busy: Dur(1),
            lost_cpu_ms: 0,
            cpu_ms: 1,
            resizes: 0,
        };
        assert!(stream.offer(std::slice::from_ref(&job)));
        drop(stream);
        let written = file.lock().unwrap().len();
        assert!(
            written > JOBS_CSV_COLUMNS.join(",").len() + 1,
            "the row was written"
        );
        assert_eq!(std::sync::Arc::strong_count(&file), 1, "the thread is gone");
    }
}
