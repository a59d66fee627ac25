//! Elastic (malleable) jobs: the range a job may run in, and how fast it progresses at each size.
//!
//! **Work model.** A job's work is its run time at its requested size `p`. On `n` CPUs it
//! progresses at rate `S(n) / S(p)` (one unit of run time per millisecond at the requested
//! size), where `S` is the job's speedup model:
//!
//! - `linear` (default): `S(n) = n`.
//! - `amdahl:F` with serial fraction `F` in [0, 1): `S(n) = 1 / (F + (1 − F) / n)`.
//! - `downey:A:SIGMA` (Downey 1997) with average parallelism `A ≥ 1` and variance `σ ≥ 0`:
//!   for σ ≤ 1, `S(n) = A·n / (A + σ(n − 1)/2)` for n ≤ A, `A·n / (σ(A − 1/2) + n(1 − σ/2))`
//!   for A ≤ n ≤ 2A − 1, `A` beyond; for σ ≥ 1, `S(n) = n·A(σ + 1) / (σ(n + A − 1) + A)` for
//!   n ≤ A + Aσ − σ, `A` beyond.
//!
//! **Exact arithmetic.** Work is counted in integer units: `W = run time (ms) × D` and the rate
//! on `n` CPUs is an integer `R(n)` units per millisecond with `R(p) = D`. For `linear`,
//! `D = p` and `R(n) = n` — exact. For `amdahl` and `downey`, `D = 1 000 000` and
//! `R(n) = round(D · S(n) / S(p))`: the speedup curve is rounded to a millionth of the rate at
//! the requested size (IEEE double arithmetic, no transcendental functions, so the same on
//! every machine), and from there on everything is integer. A resize after `t` ms on `n` CPUs
//! subtracts exactly `R(n) · t` units; the job ends `ceil(left / R(n))` ms after the last
//! resize. Nothing drifts, and the work delivered over all segments equals `W` exactly.

use std::fmt;

/// The processors an elastic job may run on: any count in `min..=max` (the requested count,
/// `JobSpec::procs`, lies in the range and is where the job's work is defined).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ElasticRange {
    pub min: u32,
    pub max: u32,
}

impl ElasticRange {
    /// Checks `1 ≤ min ≤ procs ≤ max`; the reason if not.
    pub fn check(&self, procs: u32) -> Result<(), String> {
        if self.min == 0 {
            return Err("min CPUs must be at least 1".into());
        }
        if self.min > procs || procs > self.max {
            return Err(format!(
                "expected min ≤ cpus ≤ max, found min {} cpus {} max {}",
                self.min, procs, self.max
            ));
        }
        Ok(())
    }
    pub fn contains(&self, n: u32) -> bool {
        (self.min..=self.max).contains(&n)
    }
}

/// Fixed-point scale of the non-linear rates.
pub const RATE_SCALE: i64 = 1_000_000;

/// How a job's progress rate depends on its CPU count (simulation truth).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Speedup {
    #[default]
    Linear,
    /// Serial fraction in millionths.
    Amdahl { serial_ppm: u32 },
    /// Average parallelism and variance, in thousandths.
    Downey { a_milli: u32, sigma_milli: u32 },
}

impl Speedup {
    /// `linear`, `amdahl:F` (0 ≤ F < 1) or `downey:A:SIGMA` (A ≥ 1, SIGMA ≥ 0).
    pub fn parse(s: &str) -> Result<Speedup, String> {
        let bad = || {
            format!(
                "invalid speedup model '{s}': expected linear, amdahl:F (0 ≤ F < 1) or downey:A:SIGMA (A ≥ 1, SIGMA ≥ 0)"
            )
        };
        let t = s.trim().to_ascii_lowercase();
        let mut parts = t.split(':');
        let num = |p: Option<&str>| -> Result<f64, String> {
            p.and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite())
                .ok_or_else(bad)
        };
        let m = match parts.next() {
            Some("linear") => Speedup::Linear,
            Some("amdahl") => {
                let f = num(parts.next())?;
                if !(0.0..1.0).contains(&f) {
                    return Err(bad());
                }
                Speedup::Amdahl {
                    serial_ppm: (f * 1e6).round() as u32,
                }
            }
            Some("downey") => {
                let a = num(parts.next())?;
                let sigma = num(parts.next())?;
                if !(1.0..=1e6).contains(&a) || !(0.0..=1e6).contains(&sigma) {
                    return Err(bad());
                }
                Speedup::Downey {
                    a_milli: (a * 1e3).round() as u32,
                    sigma_milli: (sigma * 1e3).round() as u32,
                }
            }
            _ => return Err(bad()),
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(m)
    }

    /// The speedup on `n` CPUs relative to one CPU.
    pub fn speedup(&self, n: u32) -> f64 {
        let n = f64::from(n.max(1));
        match *self {
            Speedup::Linear => n,
            Speedup::Amdahl { serial_ppm } => {
                let f = f64::from(serial_ppm) / 1e6;
                1.0 / (f + (1.0 - f) / n)
            }
            Speedup::Downey {
                a_milli,
                sigma_milli,
            } => {
                let a = f64::from(a_milli) / 1e3;
                let s = f64::from(sigma_milli) / 1e3;
                if s <= 1.0 {
                    if n <= a {
                        a * n / (a + s * (n - 1.0) / 2.0)
                    } else if n <= 2.0 * a - 1.0 {
                        a * n / (s * (a - 0.5) + n * (1.0 - s / 2.0))
                    } else {
                        a
                    }
                } else if n <= a + a * s - s {
                    n * a * (s + 1.0) / (s * (n + a - 1.0) + a)
                } else {
                    a
                }
            }
        }
    }

    /// Work units per millisecond of run time at the requested size `procs` (`D`).
    pub fn scale(&self, procs: u32) -> i64 {
        match self {
            Speedup::Linear => i64::from(procs.max(1)),
            _ => RATE_SCALE,
        }
    }

    /// Work units per millisecond on `n` CPUs for a job whose work is defined at `procs` CPUs
    /// (`R(n)`; `R(procs) = scale(procs)`, always ≥ 1).
    pub fn rate(&self, procs: u32, n: u32) -> i64 {
        match self {
            Speedup::Linear => i64::from(n.max(1)),
            _ if n == procs => RATE_SCALE,
            _ => {
                let r = (RATE_SCALE as f64) * self.speedup(n) / self.speedup(procs);
                (r.round() as i64).max(1)
            }
        }
    }
}

impl fmt::Display for Speedup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Speedup::Linear => f.write_str("linear"),
            Speedup::Amdahl { serial_ppm } => write!(f, "amdahl:{}", f64::from(serial_ppm) / 1e6),
            Speedup::Downey {
                a_milli,
                sigma_milli,
            } => write!(
                f,
                "downey:{}:{}",
                f64::from(a_milli) / 1e3,
                f64::from(sigma_milli) / 1e3
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_models() {
        assert_eq!(Speedup::parse("linear"), Ok(Speedup::Linear));
        assert_eq!(
            Speedup::parse("amdahl:0.05"),
            Ok(Speedup::Amdahl { serial_ppm: 50_000 })
        );
        assert_eq!(
            Speedup::parse("Downey:64:0.5"),
            Ok(Speedup::Downey {
                a_milli: 64_000,
                sigma_milli: 500
            })
        );
        for bad in [
            "",
            "amdahl",
            "amdahl:1",
            "amdahl:-0.1",
            "downey:0.5:1",
            "cubic",
            "linear:2",
        ] {
            assert!(Speedup::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Speedup::parse("amdahl:0.25").unwrap().to_string(),
            "amdahl:0.25"
        );
    }

    #[test]
    fn rates_are_relative_to_the_requested_size() {
        // Amdahl with F = 1/2: S(n) = 2n / (n + 1); relative to p = 2 (S = 4/3):
        // R(4) = (8/5) / (4/3) = 1.2, R(1) = 1 / (4/3) = 0.75.
        let m = Speedup::Amdahl {
            serial_ppm: 500_000,
        };
        assert_eq!(m.rate(2, 2), 1_000_000);
        assert_eq!(m.rate(2, 4), 1_200_000);
        assert_eq!(m.rate(2, 1), 750_000);
        assert_eq!(Speedup::Linear.rate(4, 6), 6);
        assert_eq!(Speedup::Linear.scale(4), 4);
    }

    #[test]
    fn downey_is_monotone_and_capped_at_a() {
        for sigma in [0, 500, 1000, 2000] {
            let m = Speedup::Downey {
                a_milli: 16_000,
                sigma_milli: sigma,
            };
            assert!((m.speedup(1) - 1.0).abs() < 1e-9, "S(1) = 1 (σ {sigma})");
            let mut last = 0.0;
            for n in 1..200 {
                let s = m.speedup(n);
                assert!(s + 1e-9 >= last, "monotone at {n} (σ {sigma})");
                assert!(s <= 16.0 + 1e-9);
                last = s;
            }
            assert!((m.speedup(1000) - 16.0).abs() < 1e-9);
        }
    }
}
