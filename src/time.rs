//! Time as exact integers.
//!
//! Virtual time is a count of milliseconds ([`Time`]) and spans are counts of milliseconds
//! ([`Dur`]). Nothing in the engine or the policies ever compares floating-point times: two
//! events are simultaneous exactly when their integers are equal, which is what makes a
//! simulation a pure function of its inputs. Output files print seconds with three decimals
//! ([`Time::secs_str`]), which is exact for a millisecond clock.

use std::fmt;
use std::ops::{Add, Sub};

/// An instant, in milliseconds since the origin of the workload (sim) or the Unix epoch (live).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub i64);

/// A span of time in milliseconds. May be negative only where a trace says so (a run time of
/// `-1` means "unknown" in SWF); the engine only ever sees non-negative spans.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dur(pub i64);

pub const MS_PER_SEC: i64 = 1000;

impl Time {
    pub const ZERO: Time = Time(0);
    pub const MAX: Time = Time(i64::MAX);

    pub fn from_secs(s: i64) -> Time {
        Time(s.saturating_mul(MS_PER_SEC))
    }
    pub fn millis(self) -> i64 {
        self.0
    }
    /// Seconds with exactly three decimals, e.g. `12.500`.
    pub fn secs_str(self) -> String {
        fmt_millis(self.0)
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / MS_PER_SEC as f64
    }
}

impl Dur {
    pub const ZERO: Dur = Dur(0);

    pub fn from_secs(s: i64) -> Dur {
        Dur(s.saturating_mul(MS_PER_SEC))
    }
    pub fn millis(self) -> i64 {
        self.0
    }
    pub fn secs_str(self) -> String {
        fmt_millis(self.0)
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / MS_PER_SEC as f64
    }
}

impl Add<Dur> for Time {
    type Output = Time;
    fn add(self, d: Dur) -> Time {
        Time(self.0.saturating_add(d.0))
    }
}

impl Sub<Time> for Time {
    type Output = Dur;
    fn sub(self, t: Time) -> Dur {
        Dur(self.0 - t.0)
    }
}

impl Add for Dur {
    type Output = Dur;
    fn add(self, d: Dur) -> Dur {
        Dur(self.0.saturating_add(d.0))
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&fmt_millis(self.0))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&fmt_millis(self.0))
    }
}

/// Milliseconds as seconds with exactly three decimals.
pub fn fmt_millis(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let a = ms.unsigned_abs();
    format!("{sign}{}.{:03}", a / 1000, a % 1000)
}

/// Slurm's time format: `[D-]HH:MM:SS`, e.g. `1-00:00:00`, `02:30:00`.
pub fn fmt_slurm_duration(d: Dur) -> String {
    let total = d.0.max(0) / 1000;
    let (days, rest) = (total / 86400, total % 86400);
    let (h, m, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
    if days > 0 {
        format!("{days}-{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// Parses a decimal number of seconds (`"12"`, `"-1"`, `"0.25"`, `"1e3"`) into milliseconds.
/// Plain decimals are converted exactly (digits past the third decimal are rounded half away
/// from zero); exponent forms go through `f64`. Returns `None` for anything non-numeric.
pub fn parse_secs_to_millis(s: &str) -> Option<i64> {
    parse_trimmed_secs(s.trim())
}

/// [`parse_secs_to_millis`] for text known to have no surrounding whitespace (split fields).
#[inline]
pub fn parse_trimmed_secs(s: &str) -> Option<i64> {
    // Fast path: a plain integer such as `-1` or `86400`, most fields of a trace.
    let b = s.as_bytes();
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        _ => (false, b),
    };
    if !digits.is_empty() && digits.len() <= 15 {
        let mut v: i64 = 0;
        let mut plain = true;
        for &c in digits {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                plain = false;
                break;
            }
            v = v * 10 + i64::from(d);
        }
        if plain {
            return Some(if neg { -v * 1000 } else { v * 1000 });
        }
    }
    parse_decimal_secs(s)
}

/// The general case of [`parse_trimmed_secs`]: signs, decimals, exponents.
fn parse_decimal_secs(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let (neg, mut i) = match b.first() {
        Some(b'-') => (true, 1),
        Some(b'+') => (false, 1),
        Some(_) => (false, 0),
        None => return None,
    };
    // One pass over `digits[.digits]`; anything else goes through f64.
    let mut int: i64 = 0;
    let mut frac: i64 = 0;
    let mut frac_digits = 0;
    let mut round_up = false;
    let mut digits = 0;
    let mut seen_dot = false;
    while i < b.len() {
        match b[i] {
            c @ b'0'..=b'9' => {
                let d = i64::from(c - b'0');
                digits += 1;
                if !seen_dot {
                    int = int.checked_mul(10)?.checked_add(d)?;
                } else if frac_digits < 3 {
                    frac = frac * 10 + d;
                    frac_digits += 1;
                } else if frac_digits == 3 {
                    round_up = d >= 5;
                    frac_digits += 1;
                }
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => return parse_float_secs(s),
        }
        i += 1;
    }
    if digits == 0 {
        return None;
    }
    let scale = [1000, 100, 10, 1][frac_digits.min(3)];
    let ms = int
        .checked_mul(1000)?
        .checked_add(frac * scale + i64::from(round_up))?;
    Some(if neg { -ms } else { ms })
}

fn parse_float_secs(s: &str) -> Option<i64> {
    let v: f64 = s.parse().ok()?;
    if !v.is_finite() || v.abs() > 9.0e15 {
        return None;
    }
    Some((v * 1000.0).round() as i64)
}

/// Parses a span of time: a plain number in `plain_unit_ms` units (seconds in traces, minutes
/// on a Slurm command line), or Slurm's forms `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`,
/// `D-HH:MM:SS`. Returns a message saying what was expected on failure.
pub fn parse_duration(s: &str, plain_unit_ms: i64) -> Result<Dur, String> {
    let t = s.trim();
    let bad = || format!("invalid time '{s}': expected seconds, MM:SS, HH:MM:SS or D-HH:MM:SS");
    if !t.contains(':') && !t.contains('-') {
        let ms = parse_secs_to_millis(t).ok_or_else(bad)?;
        if ms < 0 {
            return Err(bad());
        }
        // ms is "value × 1000"; scale to the plain unit
        return ms
            .checked_mul(plain_unit_ms)
            .map(|v| Dur(v / 1000))
            .ok_or_else(bad);
    }
    let num = |x: &str| -> Result<i64, String> {
        if x.is_empty() || !x.bytes().all(|b| b.is_ascii_digit()) || x.len() > 12 {
            return Err(bad());
        }
        x.parse::<i64>().map_err(|_| bad())
    };
    let (days, rest, has_days) = match t.split_once('-') {
        Some((d, r)) => (num(d)?, r, true),
        None => (0, t, false),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (h, m, sec) = match (has_days, parts.as_slice()) {
        (false, [m, s]) => (0, num(m)?, num(s)?),
        (_, [h, m, s]) => (num(h)?, num(m)?, num(s)?),
        (true, [h]) => (num(h)?, 0, 0),
        (true, [h, m]) => (num(h)?, num(m)?, 0),
        _ => return Err(bad()),
    };
    let total = ((days * 24 + h) * 60 + m) * 60 + sec;
    Ok(Dur::from_secs(total))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_parse_exactly() {
        assert_eq!(parse_secs_to_millis("12"), Some(12_000));
        assert_eq!(parse_secs_to_millis("-1"), Some(-1_000));
        assert_eq!(parse_secs_to_millis("0.25"), Some(250));
        assert_eq!(parse_secs_to_millis("1.0005"), Some(1_001));
        assert_eq!(parse_secs_to_millis("3."), Some(3_000));
        assert_eq!(parse_secs_to_millis("1e3"), Some(1_000_000));
        assert_eq!(parse_secs_to_millis("abc"), None);
        assert_eq!(parse_secs_to_millis(""), None);
        assert_eq!(parse_secs_to_millis("-"), None);
    }

    #[test]
    fn formats_three_decimals() {
        assert_eq!(fmt_millis(0), "0.000");
        assert_eq!(fmt_millis(12_345), "12.345");
        assert_eq!(fmt_millis(-1_500), "-1.500");
        assert_eq!(fmt_slurm_duration(Dur::from_secs(86400)), "1-00:00:00");
        assert_eq!(fmt_slurm_duration(Dur::from_secs(9000)), "02:30:00");
    }

    #[test]
    fn slurm_durations() {
        let s = |x| parse_duration(x, MS_PER_SEC).map(|d| d.0 / 1000);
        assert_eq!(s("90"), Ok(90));
        assert_eq!(s("1:30"), Ok(90));
        assert_eq!(s("1:00:00"), Ok(3600));
        assert_eq!(s("2-0"), Ok(2 * 86400));
        assert_eq!(s("1-2:03"), Ok(86400 + 2 * 3600 + 180));
        assert_eq!(s("1-00:00:01"), Ok(86401));
        assert!(s("x").is_err());
        assert!(s("1:2:3:4").is_err());
        assert!(s("-5").is_err());
        // a plain number in minutes, as on Slurm's command line
        assert_eq!(parse_duration("5", 60_000), Ok(Dur(300_000)));
    }
}
