//! Quotas: per-user and per-account limits on running CPUs, memory, GPUs and jobs (Slurm's
//! association `GrpTRES` and `MaxJobs`/`GrpJobs`). A job over a limit waits, with Slurm's
//! reason, and does not block the jobs behind it; it is never rejected for it.

use crate::ids::{FastMap, Sym};
use crate::model::{JobSpec, PendingReason};

/// One set of limits; `None` = unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limit {
    pub cpus: Option<u64>,
    pub mem_mb: Option<u64>,
    pub gpus: Option<u64>,
    pub jobs: Option<u64>,
}

impl Limit {
    pub fn is_unlimited(&self) -> bool {
        *self == Limit::default()
    }

    /// Parses `cpus=64,mem=256G,gpus=4,jobs=10` (any subset).
    pub fn parse(s: &str) -> Result<Limit, String> {
        let mut l = Limit::default();
        for kv in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("expected key=value, found '{kv}'"))?;
            let num = || {
                v.parse::<u64>()
                    .map_err(|_| format!("{k}: expected a count, found '{v}'"))
            };
            match k {
                "cpus" | "cpu" => l.cpus = Some(num()?),
                "gpus" | "gpu" => l.gpus = Some(num()?),
                "jobs" => l.jobs = Some(num()?),
                "mem" => l.mem_mb = Some(crate::model::parse_mem_mb(v)?),
                _ => {
                    return Err(format!(
                        "unknown limit '{k}' (expected cpus, mem, gpus, jobs)"
                    ));
                }
            }
        }
        Ok(l)
    }
}

/// The limits every user and every account gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub user: Limit,
    pub account: Limit,
}

/// What a user's or an account's running jobs hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub cpus: u64,
    pub mem_mb: u64,
    pub gpus: u64,
    pub jobs: u64,
}

impl Totals {
    fn of(spec: &JobSpec) -> Totals {
        let nodes = u64::from(spec.nodes.unwrap_or(1));
        Totals {
            cpus: u64::from(spec.cpus),
            mem_mb: spec.mem_mb.unwrap_or(0) * nodes,
            gpus: u64::from(spec.gpus) * nodes,
            jobs: 1,
        }
    }
    fn plus(self, o: Totals) -> Totals {
        Totals {
            cpus: self.cpus + o.cpus,
            mem_mb: self.mem_mb + o.mem_mb,
            gpus: self.gpus + o.gpus,
            jobs: self.jobs + o.jobs,
        }
    }
    fn minus(self, o: Totals) -> Totals {
        Totals {
            cpus: self.cpus.saturating_sub(o.cpus),
            mem_mb: self.mem_mb.saturating_sub(o.mem_mb),
            gpus: self.gpus.saturating_sub(o.gpus),
            jobs: self.jobs.saturating_sub(o.jobs),
        }
    }
    /// The first limit `self` exceeds, as Slurm's pending reason.
    fn over(&self, l: &Limit, user: bool) -> Option<PendingReason> {
        let over = |v: u64, lim: Option<u64>| lim.is_some_and(|m| v > m);
        if over(self.jobs, l.jobs) {
            return Some(if user {
                PendingReason::AssocMaxJobsLimit
            } else {
                PendingReason::AssocGrpJobsLimit
            });
        }
        if over(self.cpus, l.cpus) {
            return Some(PendingReason::AssocGrpCpuLimit);
        }
        if over(self.mem_mb, l.mem_mb) {
            return Some(PendingReason::AssocGrpMemLimit);
        }
        if over(self.gpus, l.gpus) {
            return Some(PendingReason::AssocGrpGRES);
        }
        None
    }
}

/// Limits and what the running jobs hold against them.
#[derive(Clone, Debug)]
pub struct LimitState {
    pub limits: Limits,
    unlimited: bool,
    users: FastMap<Sym, Totals>,
    accounts: FastMap<Sym, Totals>,
}

impl Default for LimitState {
    fn default() -> Self {
        LimitState::new(Limits::default())
    }
}

/// Additions made earlier in the same pass (few: a linear list).
#[derive(Clone, Debug, Default)]
pub struct PassUsage {
    users: Vec<(Sym, Totals)>,
    accounts: Vec<(Sym, Totals)>,
}

fn get(list: &[(Sym, Totals)], s: Sym) -> Totals {
    list.iter()
        .find(|x| x.0 == s)
        .map_or(Totals::default(), |x| x.1)
}

fn bump(list: &mut Vec<(Sym, Totals)>, s: Sym, t: Totals) {
    match list.iter_mut().find(|x| x.0 == s) {
        Some(x) => x.1 = x.1.plus(t),
        None => list.push((s, t)),
    }
}

impl PassUsage {
    pub fn take(&mut self, spec: &JobSpec) {
        let t = Totals::of(spec);
        bump(&mut self.users, spec.user, t);
        bump(&mut self.accounts, spec.account, t);
    }
    pub fn clear(&mut self) {
        self.users.clear();
        self.accounts.clear();
    }
}

impl LimitState {
    pub fn new(limits: Limits) -> LimitState {
        LimitState {
            limits,
            unlimited: limits.user.is_unlimited() && limits.account.is_unlimited(),
            users: FastMap::default(),
            accounts: FastMap::default(),
        }
    }

    pub fn is_unlimited(&self) -> bool {
        self.unlimited
    }

    /// Adds `spec` to what a pass's earlier starts hold (`extra`), when there are limits to
    /// hold it against (without, nothing to count: no allocation in every pass).
    pub fn count(&self, extra: &mut PassUsage, spec: &JobSpec) {
        if !self.unlimited {
            extra.take(spec);
        }
    }

    /// Counts a started job (nothing to count without limits).
    pub fn start(&mut self, spec: &JobSpec) {
        if self.is_unlimited() {
            return;
        }
        let t = Totals::of(spec);
        let u = self.users.entry(spec.user).or_default();
        *u = u.plus(t);
        let a = self.accounts.entry(spec.account).or_default();
        *a = a.plus(t);
    }

    pub fn end(&mut self, spec: &JobSpec) {
        if self.is_unlimited() {
            return;
        }
        let t = Totals::of(spec);
        if let Some(u) = self.users.get_mut(&spec.user) {
            *u = u.minus(t);
        }
        if let Some(a) = self.accounts.get_mut(&spec.account) {
            *a = a.minus(t);
        }
    }

    /// Why `spec` may not start now (Slurm's reason), counting `extra` started earlier in the
    /// pass; `None` if it may.
    pub fn blocked(&self, spec: &JobSpec, extra: &PassUsage) -> Option<PendingReason> {
        if self.is_unlimited() {
            return None;
        }
        let t = Totals::of(spec);
        let u = self
            .users
            .get(&spec.user)
            .copied()
            .unwrap_or_default()
            .plus(get(&extra.users, spec.user))
            .plus(t);
        if let Some(r) = u.over(&self.limits.user, true) {
            return Some(r);
        }
        let a = self
            .accounts
            .get(&spec.account)
            .copied()
            .unwrap_or_default()
            .plus(get(&extra.accounts, spec.account))
            .plus(t);
        a.over(&self.limits.account, false)
    }

    /// What `user` holds now.
    pub fn user_totals(&self, user: Sym) -> Totals {
        self.users.get(&user).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::JobId;
    use crate::time::{Dur, Time};

    #[test]
    fn limits_parse_and_block() {
        let l = Limit::parse("cpus=4,jobs=2,mem=1G").unwrap();
        assert_eq!(
            (l.cpus, l.jobs, l.mem_mb, l.gpus),
            (Some(4), Some(2), Some(1024), None)
        );
        assert!(Limit::parse("cores=4").is_err());
        assert!(Limit::parse("cpus=x").is_err());
        let mut st = LimitState::new(Limits {
            user: l,
            account: Limit::default(),
        });
        let job = |id, procs| JobSpec::new(JobId(id), Time::ZERO, procs, Dur(1));
        st.start(&job(1, 3));
        let mut extra = PassUsage::default();
        assert_eq!(st.blocked(&job(2, 1), &extra), None);
        assert_eq!(
            st.blocked(&job(2, 2), &extra),
            Some(PendingReason::AssocGrpCpuLimit)
        );
        extra.take(&job(2, 1));
        assert_eq!(
            st.blocked(&job(3, 0), &extra),
            Some(PendingReason::AssocMaxJobsLimit)
        );
        st.end(&job(1, 3));
        assert_eq!(st.user_totals(Default::default()), Totals::default());
    }
}
