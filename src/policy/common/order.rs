//! Queue orderings. A policy that takes an `order` parameter arranges the pending jobs with one
//! of these before it applies its start-time discipline.
//!
//! `multifactor` is Slurm's `priority/multifactor`: a weighted sum of factors in [0, 1] —
//! age (saturating at `max_age`), classic fair-share (`2^(−U/S)` over decayed usage, see
//! [`super::fairshare`]), job size, partition (1 for every job: one priority tier) and QOS (the
//! job's QOS priority over the largest defined in the accounts file) — minus the job's nice.
//! Larger runs first; ties by submit time, then job id.

use crate::ids::Sym;
use crate::model::{AssocTree, JobSpec};
use crate::policy::{ParamInfo, Params, PolicyError};
use crate::sched::PendingJob;
use crate::sched::View;
use crate::time::{Dur, parse_duration};
use std::cmp::Reverse;

/// The `order` parameter shared by policies.
pub const ORDER_PARAM: ParamInfo = ParamInfo {
    name: "order",
    default: "queue",
    help: "`queue`: submit time, then arrival (trace position); `priority`: priority descending, then submit time, then job id; `multifactor`: Slurm's multifactor priority (weights below)",
};

/// The parameters of the multifactor ordering (Slurm's names in parentheses).
pub const MULTIFACTOR_PARAMS: [ParamInfo; 8] = [
    ParamInfo {
        name: "age",
        default: "1000",
        help: "weight of the age factor (PriorityWeightAge)",
    },
    ParamInfo {
        name: "fairshare",
        default: "10000",
        help: "weight of the fair-share factor (PriorityWeightFairshare)",
    },
    ParamInfo {
        name: "jobsize",
        default: "0",
        help: "weight of the job-size factor (PriorityWeightJobSize)",
    },
    ParamInfo {
        name: "partition",
        default: "0",
        help: "weight of the partition factor, 1 for every job (PriorityWeightPartition)",
    },
    ParamInfo {
        name: "qos",
        default: "0",
        help: "weight of the QOS factor: the job's QOS priority over the largest, from the accounts file's `qos NAME priority=N` lines (PriorityWeightQOS); the job's nice is subtracted from the sum",
    },
    ParamInfo {
        name: "max_age",
        default: "7-0",
        help: "age at which the age factor reaches 1, Slurm time (PriorityMaxAge)",
    },
    ParamInfo {
        name: "favor_small",
        default: "no",
        help: "job size factor favours small jobs (PriorityFavorSmall)",
    },
    ParamInfo {
        name: "half_life",
        default: "7-0",
        help: "usage half-life, Slurm time; `tree=accounts` charges users under their group as account (PriorityDecayHalfLife)",
    },
];

/// The fair-share association tree used by `multifactor`.
pub const TREE_PARAM: ParamInfo = ParamInfo {
    name: "tree",
    default: "flat",
    help: "`flat`: every user an equal share; `accounts`: accounts (SWF group, CSV group) equal, users equal within their account; an `--accounts` file overrides both. `fairtree` (see `algo`) ranks over the same tree",
};

/// Billing weights for usage.
pub const BILLING_PARAM: ParamInfo = ParamInfo {
    name: "billing",
    default: "cpu:1",
    help: "usage weights per CPU, GB of memory and GPU, e.g. `cpu:1;mem:0.25;gpu:4` (TRESBillingWeights, summed)",
};

/// The fair-share algorithm.
pub const ALGO_PARAM: ParamInfo = ParamInfo {
    name: "algo",
    default: "classic",
    help: "`classic`: F = 2^(−U/S) with effective usage; `fairtree`: Slurm's Fair Tree ranking (rank / users)",
};

/// A policy's parameter list with the multifactor ordering's parameters in the middle:
/// `params_with_multifactor!(BEFORE, ...; AFTER, ...)`.
macro_rules! params_with_multifactor {
    ($($before:expr),* ; $($after:expr),*) => {
        &[
            $($before,)*
            $crate::policy::common::order::MULTIFACTOR_PARAMS[0],
            $crate::policy::common::order::MULTIFACTOR_PARAMS[1],
            $crate::policy::common::order::MULTIFACTOR_PARAMS[2],
            $crate::policy::common::order::MULTIFACTOR_PARAMS[3],
            $crate::policy::common::order::MULTIFACTOR_PARAMS[4],
            $crate::policy::common::order::MULTIFACTOR_PARAMS[5],
            $crate::policy::common::order::MULTIFACTOR_PARAMS[6],
            $crate::policy::common::order::MULTIFACTOR_PARAMS[7],
            $crate::policy::common::order::TREE_PARAM,
            $crate::policy::common::order::ALGO_PARAM,
            $crate::policy::common::order::BILLING_PARAM,
            $($after,)*
        ]
    };
}
pub(crate) use params_with_multifactor;

/// Multifactor weights.
#[derive(Clone, Debug, PartialEq)]
pub struct Multifactor {
    pub w_age: f64,
    pub w_fairshare: f64,
    pub w_jobsize: f64,
    pub w_partition: f64,
    pub w_qos: f64,
    pub max_age: Dur,
    pub favor_small: bool,
    pub half_life: Dur,
    pub accounts: bool,
    pub fair_tree: bool,
    pub billing: crate::sched::usage::Billing,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub enum Order {
    /// Submit time, then arrival order: the engine's own queue order.
    #[default]
    Queue,
    /// Priority descending, then submit time, then job id.
    Priority,
    /// Slurm's multifactor priority.
    Multifactor(Box<Multifactor>),
}

fn number(params: &mut Params, name: &str, default: f64) -> Result<f64, PolicyError> {
    match params.take(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .ok_or_else(|| params.bad(name, format!("expected a number ≥ 0, found '{v}'"))),
    }
}

fn duration(params: &mut Params, name: &str, default: &str) -> Result<Dur, PolicyError> {
    let v = params.take(name).unwrap_or_else(|| default.to_string());
    parse_duration(&v, 60_000)
        .ok()
        .filter(|d| d.0 > 0)
        .ok_or_else(|| params.bad(name, format!("expected a positive Slurm time, found '{v}'")))
}

impl Order {
    /// Reads the `order` parameter (default `queue`) and, for `multifactor`, its weights.
    pub fn from_params(params: &mut Params) -> Result<Order, PolicyError> {
        match params.take("order").as_deref() {
            None | Some("queue") | Some("fcfs") | Some("submit") => Ok(Order::Queue),
            Some("priority") => Ok(Order::Priority),
            Some("multifactor") => Order::multifactor(params),
            Some(other) => Err(params.bad(
                "order",
                format!("unknown ordering '{other}' (expected queue, priority or multifactor)"),
            )),
        }
    }

    /// The multifactor ordering from its parameters.
    pub fn multifactor(params: &mut Params) -> Result<Order, PolicyError> {
        let favor_small = match params.take("favor_small").as_deref() {
            None | Some("no") | Some("false") => false,
            Some("yes") | Some("true") => true,
            Some(v) => {
                return Err(params.bad("favor_small", format!("expected yes or no, found '{v}'")));
            }
        };
        let fair_tree = match params.take("algo").as_deref() {
            None | Some("classic") => false,
            Some("fairtree") | Some("fair_tree") => true,
            Some(v) => {
                return Err(
                    params.bad("algo", format!("expected classic or fairtree, found '{v}'"))
                );
            }
        };
        let accounts = match params.take("tree").as_deref() {
            None | Some("flat") => false,
            Some("accounts") => true,
            Some(v) => {
                return Err(params.bad("tree", format!("expected flat or accounts, found '{v}'")));
            }
        };
        Ok(Order::Multifactor(Box::new(Multifactor {
            w_age: number(params, "age", 1000.0)?,
            w_fairshare: number(params, "fairshare", 10000.0)?,
            w_jobsize: number(params, "jobsize", 0.0)?,
            w_partition: number(params, "partition", 0.0)?,
            w_qos: number(params, "qos", 0.0)?,
            max_age: duration(params, "max_age", "7-0")?,
            favor_small,
            half_life: duration(params, "half_life", "7-0")?,
            accounts,
            fair_tree,
            billing: match params.take("billing") {
                None => Default::default(),
                Some(v) => {
                    crate::sched::usage::Billing::parse(&v).map_err(|e| params.bad("billing", e))?
                }
            },
        })))
    }

    /// The billing weights usage is charged with.
    pub fn billing(&self) -> crate::sched::usage::Billing {
        match self {
            Order::Multifactor(m) => m.billing,
            _ => Default::default(),
        }
    }

    /// The usage half-life the engine must account with, for fair-share orderings.
    pub fn half_life(&self) -> Option<Dur> {
        match self {
            Order::Multifactor(m) => Some(m.half_life),
            _ => None,
        }
    }

    /// Fills `out` with the positions of `view.pending` in this order.
    pub fn arrange(&self, view: &View<'_>, out: &mut Vec<u32>) {
        let pending = view.pending;
        out.clear();
        out.extend(0..pending.len() as u32);
        match self {
            Order::Queue => {}
            Order::Priority => out.sort_unstable_by_key(|&i| {
                let s = &pending[i as usize].spec;
                (Reverse(s.priority), s.submit, s.id, pending[i as usize].seq)
            }),
            Order::Multifactor(_) if pending.len() < 2 => {}
            Order::Multifactor(m) => {
                let prio = multifactor_priorities(m, view);
                out.sort_unstable_by(|&a, &b| {
                    let (ja, jb) = (&pending[a as usize], &pending[b as usize]);
                    prio[b as usize]
                        .total_cmp(&prio[a as usize])
                        .then(ja.spec.submit.cmp(&jb.spec.submit))
                        .then(ja.spec.id.cmp(&jb.spec.id))
                        .then(ja.seq.cmp(&jb.seq))
                });
            }
        }
    }
}

/// Fair-share factors of `users` (user, account), from the usage in the view: completed jobs'
/// decayed usage plus the running jobs' usage so far. `slot[user]` is a user's position in
/// `users` (`u32::MAX` or beyond the table for others), as [`known_users`] gives it.
pub fn fair_share_factors(
    m: &Multifactor,
    view: &View<'_>,
    users: &[(Sym, Sym)],
    slot: &[u32],
) -> Vec<f64> {
    fair_share_factors_in(m, view, users, slot, Vec::new())
}

/// [`fair_share_factors`] into `buf` (cleared first), so that a pass need not allocate.
fn fair_share_factors_in(
    m: &Multifactor,
    view: &View<'_>,
    users: &[(Sym, Sym)],
    slot: &[u32],
    mut own: Vec<f64>,
) -> Vec<f64> {
    own.clear();
    let Some(ledger) = view.usage else {
        own.resize(users.len(), 1.0);
        return own;
    };
    let now = view.now;
    own.extend(users.iter().map(|(u, _)| ledger.user_at(*u, now)));
    let mut total = ledger.total_at(now);
    for r in view.running {
        let c = ledger.running_contribution(r, now);
        total += c;
        // The user's first (and only) position in `users`.
        let i = slot
            .get(r.spec.user.0 as usize)
            .copied()
            .unwrap_or(u32::MAX);
        if let Some(v) = own.get_mut(i as usize) {
            *v += c;
        }
    }
    // Normalised in place (the usage of each user over everyone's).
    let mut norm = own;
    for v in &mut norm {
        *v = if total > 0.0 { *v / total } else { 0.0 };
    }
    // A file with only `qos` lines configures no tree: `tree` decides as without a file.
    if let Some(cfg) = view.assoc.filter(|c| c.has_tree()) {
        // The configured tree; users it does not list are added as AssocConfig says.
        let mut tree = cfg.tree.clone();
        let mut unlisted = None;
        let nodes: Vec<usize> = users
            .iter()
            .map(|&(u, g)| cfg.node_of(&mut tree, u, g, &mut unlisted))
            .collect();
        let mut own = vec![0.0; tree.nodes.len()];
        for (k, &n) in nodes.iter().enumerate() {
            own[n] += norm[k];
        }
        let rolled = tree.rolled_up(&own);
        let f = if m.fair_tree {
            tree.fair_tree(&rolled)
        } else {
            tree.factors(&rolled)
        };
        return nodes.iter().map(|&n| f[n]).collect();
    }
    if m.fair_tree && !m.accounts {
        let mut tree = AssocTree::default();
        let mut own = vec![0.0];
        for &u in &norm {
            tree.add("", 0, 1.0);
            own.push(u);
        }
        let f = tree.fair_tree(&own);
        return (1..=users.len()).map(|i| f[i]).collect();
    }
    if !m.accounts {
        // Flat: every known user holds an equal share, S = 1/N; F = 2^(−U/S).
        let n = users.len().max(1) as f64;
        for u in &mut norm {
            // 2^(−0) is exactly 1: no need to call exp2 for users without usage.
            *u = if *u == 0.0 { 1.0 } else { (-*u * n).exp2() };
        }
        return norm;
    }
    // Accounts under the root with equal shares; users equal within their account.
    let mut tree = AssocTree::default();
    let mut acct_idx: Vec<(Sym, usize)> = Vec::new();
    let mut user_idx = Vec::with_capacity(users.len());
    let mut usage = vec![0.0];
    for (k, &(_, a)) in users.iter().enumerate() {
        let ai = match acct_idx.iter().find(|x| x.0 == a) {
            Some(x) => x.1,
            None => {
                let i = tree.add("", 0, 1.0);
                usage.push(0.0);
                acct_idx.push((a, i));
                i
            }
        };
        user_idx.push(tree.add("", ai, 1.0));
        usage.push(norm[k]);
    }
    let rolled = tree.rolled_up(&usage);
    let f = if m.fair_tree {
        tree.fair_tree(&rolled)
    } else {
        tree.factors(&rolled)
    };
    user_idx.iter().map(|&i| f[i]).collect()
}

/// What a pass's multifactor priorities share: the fair-share factor of every known user (by
/// `slot[user]`), the machine size and the QOS normalisation.
pub struct PassFactors<'v> {
    pub fs: Vec<f64>,
    pub slot: Vec<u32>,
    pub total: f64,
    pub qos: Option<(&'v crate::model::AssocConfig, u32)>,
}

impl<'v> PassFactors<'v> {
    /// The factors of a pass: `users` are the known users (user, account) in order of first
    /// appearance — running jobs first, then pending ones in queue order —, `slot[sym]` a
    /// user's position in it (`u32::MAX` for others).
    pub fn new(
        m: &Multifactor,
        view: &View<'v>,
        users: &[(Sym, Sym)],
        slot: Vec<u32>,
    ) -> PassFactors<'v> {
        PassFactors::with_buffer(m, view, users, slot, Vec::new())
    }

    /// [`PassFactors::new`] with the factors computed into `fs` (a buffer kept between passes).
    pub fn with_buffer(
        m: &Multifactor,
        view: &View<'v>,
        users: &[(Sym, Sym)],
        slot: Vec<u32>,
        mut fs: Vec<f64>,
    ) -> PassFactors<'v> {
        if m.w_fairshare > 0.0 {
            fs = fair_share_factors_in(m, view, users, &slot, fs);
        } else {
            fs.clear();
            fs.resize(users.len(), 0.0);
        }
        PassFactors {
            fs,
            slot,
            total: view.cluster.total_cpus().max(1) as f64,
            // QOS levels, normalised by the largest, when the QOS factor counts.
            qos: view
                .assoc
                .filter(|_| m.w_qos > 0.0)
                .map(|a| (a, a.qos_max())),
        }
    }

    /// The multifactor priority of a pending job at `now` (one formula for every caller, so
    /// that each computes the very same number).
    pub fn priority(&self, m: &Multifactor, now: crate::time::Time, s: &JobSpec) -> f64 {
        let age = ((now - s.submit).0.max(0) as f64 / m.max_age.0 as f64).min(1.0);
        let f = self.fs[self.slot[s.user.0 as usize] as usize];
        let size = if m.favor_small {
            1.0 - (f64::from(s.cpus) - 1.0) / self.total
        } else {
            f64::from(s.cpus) / self.total
        };
        let q = self.qos.map_or(0.0, |(a, max)| a.qos_factor(s.qos, max));
        m.w_age * age + m.w_fairshare * f + m.w_jobsize * size + m.w_partition + m.w_qos * q
            - f64::from(s.nice)
    }
}

/// The known users: those with a job running or waiting, in order of first appearance
/// (running jobs, then the queue), with their account there; and `slot[sym]`, a user's
/// position among them (`u32::MAX` for others).
pub fn known_users(view: &View<'_>) -> (Vec<(Sym, Sym)>, Vec<u32>) {
    let mut users: Vec<(Sym, Sym)> = Vec::new();
    let mut slot: Vec<u32> = Vec::new();
    let specs = view
        .running
        .iter()
        .map(|r| &r.spec)
        .chain(view.pending.iter().map(|p: &PendingJob| &p.spec));
    for s in specs {
        let u = s.user.0 as usize;
        if slot.len() <= u {
            slot.resize(u + 1, u32::MAX);
        }
        if slot[u] == u32::MAX {
            slot[u] = users.len() as u32;
            users.push((s.user, s.account));
        }
    }
    (users, slot)
}

/// The multifactor priority of every pending job.
fn multifactor_priorities(m: &Multifactor, view: &View<'_>) -> Vec<f64> {
    let (users, slot) = known_users(view);
    let factors = PassFactors::new(m, view, &users, slot);
    view.pending
        .iter()
        .map(|p| factors.priority(m, view.now, &p.spec))
        .collect()
}
