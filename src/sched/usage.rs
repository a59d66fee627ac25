//! Usage accounting for fair-share: allocated CPU-seconds per user and per account, decayed
//! with a half-life, computed lazily from `now` (no timers).
//!
//! Each accumulator holds its value as of some instant; reading it at `now` decays it by
//! `2^(−(now − as_of)/h)`. A job that ran on [s, e) with c CPUs contributes, at time t ≥ e,
//! `c × ∫ₛᵉ 2^(−(t−x)/h) dx`, which is charged in closed form when it ends; running jobs are
//! added in the same closed form up to `now` when usage is read. Only completed jobs change the
//! accumulators, so reading is a pure function of the ledger and `now`.

use crate::ids::Sym;
use crate::sched::RunningJob;
use crate::time::{Dur, Time};

#[derive(Clone, Copy, Debug, Default)]
struct Acc {
    value: f64,
    as_of: Time,
}

/// Billing weights (Slurm's `TRESBillingWeights`, summed): what one allocated CPU, one GB of
/// memory (per node, times the job's nodes) and one GPU count per second of use.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Billing {
    pub cpu: f64,
    pub mem_gb: f64,
    pub gpu: f64,
}

impl Default for Billing {
    fn default() -> Self {
        Billing {
            cpu: 1.0,
            mem_gb: 0.0,
            gpu: 0.0,
        }
    }
}

impl Billing {
    /// Parses `cpu:1;mem:0.25;gpu:2` (`=` and `,` work too; omitted weights keep their
    /// defaults).
    pub fn parse(s: &str) -> Result<Billing, String> {
        let mut b = Billing::default();
        for kv in s.split([',', ';']).map(str::trim).filter(|x| !x.is_empty()) {
            let (k, v) = kv
                .split_once([':', '='])
                .ok_or_else(|| format!("expected name:weight, found '{kv}'"))?;
            let w: f64 = v
                .parse()
                .ok()
                .filter(|w: &f64| w.is_finite() && *w >= 0.0)
                .ok_or_else(|| format!("weight of {k}: expected a number ≥ 0, found '{v}'"))?;
            match k.to_ascii_lowercase().as_str() {
                "cpu" => b.cpu = w,
                "mem" => b.mem_gb = w,
                "gpu" | "gres/gpu" => b.gpu = w,
                _ => return Err(format!("unknown resource '{k}' (expected cpu, mem, gpu)")),
            }
        }
        Ok(b)
    }

    /// Billing units per second for a job.
    pub fn rate(&self, spec: &crate::model::JobSpec) -> f64 {
        self.rate_on(spec, spec.cpus)
    }

    /// Billing units per second for a job holding `cpus` CPUs (an elastic job's current size).
    pub fn rate_on(&self, spec: &crate::model::JobSpec, cpus: u32) -> f64 {
        let nodes = f64::from(spec.nodes.unwrap_or(1));
        self.cpu * f64::from(cpus)
            + self.mem_gb * spec.mem_mb.unwrap_or(0) as f64 / 1024.0 * nodes
            + self.gpu * f64::from(spec.gpus) * nodes
    }
}

/// Decayed usage per user and account (`Sym` indices), and in total.
#[derive(Clone, Debug)]
pub struct UsageLedger {
    billing: Billing,
    half_life_s: f64,
    users: Vec<Acc>,
    accounts: Vec<Acc>,
    total: Acc,
}

/// Usage as read at one instant.
#[derive(Clone, Debug, Default)]
pub struct UsageSnapshot {
    pub users: Vec<f64>,
    pub accounts: Vec<f64>,
    pub total: f64,
}

impl UsageLedger {
    pub fn new(half_life: Dur) -> UsageLedger {
        UsageLedger::with_billing(half_life, Billing::default())
    }

    pub fn with_billing(half_life: Dur, billing: Billing) -> UsageLedger {
        UsageLedger {
            billing,
            half_life_s: (half_life.0.max(1) as f64) / 1000.0,
            users: Vec::new(),
            accounts: Vec::new(),
            total: Acc::default(),
        }
    }

    fn decay(&self, a: &Acc, now: Time) -> f64 {
        let dt = (now.0 - a.as_of.0) as f64 / 1000.0;
        // Zero decays to zero (0 × 2^x is 0, of the same sign): no exp2 for unused entries.
        if dt <= 0.0 || a.value == 0.0 {
            a.value
        } else {
            a.value * (-dt / self.half_life_s).exp2()
        }
    }

    /// Usage at `rate` billing units per second over [start, end), decayed to `end`.
    fn contribution(&self, rate: f64, start: Time, end: Time) -> f64 {
        let len = ((end.0 - start.0).max(0) as f64) / 1000.0;
        let h = self.half_life_s;
        rate * h / std::f64::consts::LN_2 * (1.0 - (-len / h).exp2())
    }

    fn add(&mut self, which: Option<(bool, usize)>, amount: f64, at: Time) {
        let acc = match which {
            Some((true, i)) => {
                if self.users.len() <= i {
                    self.users.resize(i + 1, Acc::default());
                }
                self.users[i]
            }
            Some((false, i)) => {
                if self.accounts.len() <= i {
                    self.accounts.resize(i + 1, Acc::default());
                }
                self.accounts[i]
            }
            None => self.total,
        };
        let v = self.decay(&acc, at) + amount;
        let new = Acc {
            value: v,
            as_of: at,
        };
        match which {
            Some((true, i)) => self.users[i] = new,
            Some((false, i)) => self.accounts[i] = new,
            None => self.total = new,
        }
    }

    /// Charges a job that ran on [start, end) to its user and account.
    pub fn charge(&mut self, spec: &crate::model::JobSpec, start: Time, end: Time) {
        self.charge_on(spec, spec.cpus, start, end);
    }

    /// Charges a job's run on `cpus` CPUs from `start` to `end` (one segment of an elastic
    /// job between resizes).
    pub fn charge_on(&mut self, spec: &crate::model::JobSpec, cpus: u32, start: Time, end: Time) {
        let (user, account) = (spec.user, spec.account);
        let c = self.contribution(self.billing.rate_on(spec, cpus), start, end);
        self.add(Some((true, user.0 as usize)), c, end);
        self.add(Some((false, account.0 as usize)), c, end);
        self.add(None, c, end);
    }

    /// Completed jobs' usage of `user` at `now` (running jobs not included).
    pub fn user_at(&self, user: Sym, now: Time) -> f64 {
        self.users
            .get(user.0 as usize)
            .map_or(0.0, |a| self.decay(a, now))
    }

    /// Completed jobs' usage of everyone at `now` (running jobs not included).
    pub fn total_at(&self, now: Time) -> f64 {
        self.decay(&self.total, now)
    }

    /// A running job's usage so far.
    pub fn running_contribution(&self, r: &RunningJob, now: Time) -> f64 {
        // Earlier segments of a resized job are charged already.
        self.contribution(
            self.billing.rate_on(&r.spec, r.usage_cpus),
            r.usage_from,
            now,
        )
    }

    /// Usage at `now`, including the running jobs' usage so far.
    pub fn at(&self, now: Time, running: &[RunningJob]) -> UsageSnapshot {
        let mut s = UsageSnapshot {
            users: self.users.iter().map(|a| self.decay(a, now)).collect(),
            accounts: self.accounts.iter().map(|a| self.decay(a, now)).collect(),
            total: self.decay(&self.total, now),
        };
        for r in running {
            let c = self.running_contribution(r, now);
            let (u, a) = (r.spec.user.0 as usize, r.spec.account.0 as usize);
            if s.users.len() <= u {
                s.users.resize(u + 1, 0.0);
            }
            if s.accounts.len() <= a {
                s.accounts.resize(a + 1, 0.0);
            }
            s.users[u] += c;
            s.accounts[a] += c;
            s.total += c;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_halves_every_half_life() {
        let day = Dur::from_secs(86_400);
        let mut l = UsageLedger::new(day);
        // 10 CPUs for one second, ending at t = 1 s: ≈ 10 CPU-seconds.
        let job = |procs| crate::model::JobSpec {
            user: Sym(1),
            account: Sym(2),
            ..crate::model::JobSpec::new(crate::ids::JobId(1), Time(0), procs, Dur(1))
        };
        l.charge(&job(10), Time(0), Time(1000));
        let now = |t: Time| l.at(t, &[]);
        let u0 = now(Time(1000)).users[1];
        assert!((u0 - 10.0).abs() < 1e-3, "{u0}");
        let u1 = now(Time(1000) + day).users[1];
        assert!((u1 / u0 - 0.5).abs() < 1e-12);
        assert!((now(Time(1000) + day).accounts[2] - u1).abs() < 1e-12);
        assert!((now(Time(1000) + day).total - u1).abs() < 1e-12);
        // Charging in two halves gives the same as once.
        let mut m = UsageLedger::new(day);
        m.charge(&job(10), Time(0), Time(500));
        m.charge(&job(10), Time(500), Time(1000));
        // Billing weights: 2 GPUs at weight 5 bill like 10 CPUs.
        let mut g = UsageLedger::with_billing(day, Billing::parse("cpu:0;gpu:5").unwrap());
        let gpu_job = crate::model::JobSpec { gpus: 2, ..job(4) };
        g.charge(&gpu_job, Time(0), Time(1000));
        assert!((g.at(Time(5000), &[]).users[1] - l.at(Time(5000), &[]).users[1]).abs() < 1e-9);
        assert!(Billing::parse("disk:1").is_err());
        assert!((m.at(Time(5000), &[]).users[1] - l.at(Time(5000), &[]).users[1]).abs() < 1e-9);
    }
}
