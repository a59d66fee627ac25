//! The `jobs.csv` writer (docs/output-schema.md): one row per simulated job, sorted by id.
//!
//! Rows are formatted straight into a byte buffer — integers digit by digit, milliseconds as
//! seconds with three decimals, the two ratios with six decimals — and handed to the writer in
//! blocks of about 256 KB. `format!` cost about 20,000 instructions a row (two thirds of a
//! 122k-job EASY run); this costs a few hundred. The bytes are the same: the six-decimal
//! ratios are rounded from the exact binary value, ties to even, as `format!("{:.6}")` does
//! (values it cannot do exactly — negative, huge, not finite — go through `format!`), and the
//! tests compare every column with the `format!` rendering.
//!
//! Names (users, groups, partitions, single nodes) are quoted once per name, not once per row.

use super::{BSLD_TAU_SECS, SimResult, bounded_slowdown, slowdown};
use crate::ids::{Names, Sym};
use crate::model::{Cluster, Slice};
use crate::trace::write::csv_field;
use std::io::Write;

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

/// Bytes gathered before a write.
const BLOCK: usize = 256 * 1024;

/// Writes `jobs.csv`: one row per simulated job, sorted by id. `requested_time` is the user's
/// requested time, or the run time when none was given (the `requested` estimate); `estimate`
/// is what the policy planned with under the run's estimate mode.
pub fn write_jobs_csv(
    w: &mut dyn Write,
    result: &SimResult,
    names: &Names,
    cluster: &Cluster,
) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(BLOCK + 1024);
    buf.extend_from_slice(JOBS_CSV_COLUMNS.join(",").as_bytes());
    buf.push(b'\n');
    let mut quoted = Quoted::new(names, cluster);
    for j in &result.jobs {
        let s = &j.spec;
        let requested = s.requested_time.filter(|d| d.0 > 0).unwrap_or(j.runtime);
        push_u64(&mut buf, s.id.0);
        buf.push(b',');
        push_millis(&mut buf, s.submit.0);
        buf.push(b',');
        push_u64(&mut buf, u64::from(s.cpus));
        buf.push(b',');
        push_millis(&mut buf, requested.0);
        buf.push(b',');
        push_millis(&mut buf, j.start.0);
        buf.push(b',');
        push_millis(&mut buf, j.execution().0);
        buf.push(b',');
        push_millis(&mut buf, j.finish.0);
        buf.push(b',');
        push_millis(&mut buf, j.wait().0);
        buf.push(b',');
        push_millis(&mut buf, j.turnaround().0);
        buf.push(b',');
        push_fixed6(&mut buf, slowdown(j));
        buf.push(b',');
        buf.extend_from_slice(j.state.name().as_bytes());
        buf.push(b',');
        buf.extend_from_slice(quoted.name(s.user).as_bytes());
        buf.push(b',');
        buf.extend_from_slice(quoted.name(s.account).as_bytes());
        buf.push(b',');
        push_millis(&mut buf, s.estimate.0);
        buf.push(b',');
        push_fixed6(&mut buf, bounded_slowdown(j, BSLD_TAU_SECS));
        buf.push(b',');
        push_i64(&mut buf, s.priority);
        buf.push(b',');
        buf.extend_from_slice(quoted.partition(s.partition).as_bytes());
        buf.push(b',');
        quoted.allocation(&mut buf, &j.alloc, j.leaf_switches);
        buf.push(b',');
        buf.extend_from_slice(j.pending_reason.name().as_bytes());
        buf.push(b',');
        push_u64(&mut buf, u64::from(j.preemptions));
        buf.push(b',');
        push_millis(&mut buf, j.lost_cpu_ms);
        buf.push(b',');
        if let Some(e) = s.elastic {
            push_u64(&mut buf, u64::from(e.min));
            buf.push(b'-');
            push_u64(&mut buf, u64::from(e.max));
        }
        buf.push(b',');
        push_u64(&mut buf, u64::from(j.resizes));
        buf.push(b',');
        push_millis(&mut buf, j.cpu_ms);
        buf.push(b'\n');
        if buf.len() >= BLOCK {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    w.write_all(&buf)
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

/// Appends `v` in decimal.
pub fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

/// Appends `v` in decimal, with a `-` when negative.
pub fn push_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    push_u64(out, v.unsigned_abs());
}

/// Appends milliseconds as seconds with three decimals (`fmt_millis`): `-1.500`, `86400.000`.
pub fn push_millis(out: &mut Vec<u8>, ms: i64) {
    if ms < 0 {
        out.push(b'-');
    }
    let a = ms.unsigned_abs();
    push_u64(out, a / 1000);
    let f = a % 1000;
    out.extend_from_slice(&[
        b'.',
        b'0' + (f / 100) as u8,
        b'0' + (f / 10 % 10) as u8,
        b'0' + (f % 10) as u8,
    ]);
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
    push_u64(out, (q / 1_000_000) as u64);
    let mut f = (q % 1_000_000) as u32;
    let mut digits = [b'0'; 7];
    digits[0] = b'.';
    for d in digits[1..].iter_mut().rev() {
        *d = b'0' + (f % 10) as u8;
        f /= 10;
    }
    out.extend_from_slice(&digits);
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
        fn integers_and_millis_match_format(v in any::<i64>()) {
            let mut out = Vec::new();
            push_i64(&mut out, v);
            out.push(b' ');
            push_millis(&mut out, v);
            prop_assert_eq!(String::from_utf8(out).unwrap(), format!("{v} {}", fmt_millis(v)));
        }
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
        let mut out = Vec::new();
        write_jobs_csv(&mut out, &result, &names, &cluster).unwrap();
        let mut want = JOBS_CSV_COLUMNS.join(",");
        want.push('\n');
        for j in &result.jobs {
            want.push_str(&reference_row(j, &names, &cluster));
        }
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }
}
