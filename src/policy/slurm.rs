//! `slurm` — Slurm 22.05's sched/backfill: main scheduler and backfill cycles, whole-node plans, minute limits.
//!
//! What `slurmctld` does with `SchedulerType=sched/backfill` and `SelectType=select/cons_tres`,
//! read from the source of Slurm 22.05.8 (`job_scheduler.c`, `backfill.c`, cons_common's
//! `_will_run_test`). `docs/semantics.md` §12 says which behaviours are modelled exactly, which
//! approximately and which not; `docs/slurm-fidelity.md` compares the policy with a real Slurm.
//!
//! **Time limits.** A job's limit is its estimate in whole minutes, rounded up, at least one
//! (`--time=0:30` runs with 1:00); a job without a requested time gets its partition's
//! `DefaultTime`, else its `MaxTime`; no limit exceeds `MaxTime`. Plans use limits, never run
//! times: a running job is expected to end at start + limit.
//!
//! **When the schedulers run** — at whole seconds, as `slurmctld`'s 1 s background loop
//! (backfill cycles `bf_phase` milliseconds later, as its own thread's phase); the policy asks
//! the engine to wake it then:
//! - the main scheduler runs after submissions and job ends, at the first whole second at
//!   which `batch_sched_delay` seconds have passed since its last run (as measured on Slurm
//!   22.05.8: the run its source makes when a node's epilog completes is not the one that
//!   starts the next job);
//! - over the whole queue every `sched_interval` seconds;
//! - a backfill cycle runs every `bf_interval` seconds while anything changed since the last
//!   one (with jobs waiting, that is every `bf_interval`); after a quiet spell, at the first
//!   whole second after a change that is `bf_interval` after the last cycle.
//!
//! At one instant: completions, arrivals, the main scheduler, then backfill. Runs take no
//! time. A cycle is computed only when it could start a job — something changed since the last
//! one, or a waiting job fits the free resources now, plans aside (`skip_idle=no` computes them
//! all; a property test checks that the schedules are the same).
//!
//! **Main scheduler.** Jobs in priority order start while they fit now (CPUs, memory and GPUs
//! free per node, placed by the run's placement strategy). The first job of a partition that
//! does not fit ends that partition's turn: no later job of it starts in this run, and its nodes
//! are off limits for jobs of other partitions. A run triggered by an event tests at most
//! `default_queue_depth` + 1 jobs. It knows nothing of backfill's plans.
//!
//! **Backfill cycle.** A time map from now to now + `bf_window`, both rounded down to
//! `bf_resolution`, holds in each slot the nodes no pending job is planned on. Jobs are taken in
//! priority order; at most `bf_max_job_test` of them reach the start estimate. For each job:
//! 1. its usable nodes are its partition's nodes unplanned in every slot from its candidate start
//!    to start + limit (a plan beginning exactly at its end counts);
//! 2. its start estimate is now if it fits on them now; otherwise running jobs are taken away in
//!    order of end, in batches whose window begins 30 s after the first one's end (aligned to
//!    30 s) and doubles after each batch, and the estimate is the end of the last job of the first
//!    batch after which it fits (a job past its end counts as ending `kill_wait` later);
//! 3. if the estimate is now, the job starts;
//! 4. if a node planned at the candidate start is unplanned before the estimate, the job is tried
//!    again from that instant; otherwise, if the estimate lies within the window and its nodes
//!    are free of plans from estimate to estimate + limit (rounded down to `bf_resolution`), those
//!    **whole nodes** are reserved for it then (else it is tried from its estimate).
//!
//! A plan holds whole nodes: a 2-CPU job planned on a 4-CPU node keeps a 1-CPU job off the other
//! two CPUs for the plan's duration. A job beyond the window, or past `bf_max_job_test`, has no
//! plan and blocks nothing. Plans are rebuilt from nothing at every cycle.
//!
//! **Priority.** `basic` (Slurm's `priority/basic`: submission order), `multifactor` (the
//! multifactor order of `easy[order=multifactor]`, with the weights below, computed at every
//! pass where Slurm recomputes it every `PriorityCalcPeriod`) or `recorded` (the priorities in
//! the trace, larger first).
//!
//! **Memory.** `def_mem_per_cpu=none` (default): a job holds the memory it asked for. `0`:
//! Slurm without `DefMemPerCPU` under `CR_*_Memory` — a job that asked for no memory takes all
//! of its nodes' memory, so nothing else fits beside it. `N`: N MB per CPU.
//!
//! **With `--cluster slurm.conf`** the parameters are read from the file (`SchedulerType`,
//! `SchedulerParameters`, `PriorityType`, `PriorityWeight*`, `PriorityMaxAge`,
//! `PriorityDecayHalfLife`, `PriorityFavorSmall`, `DefMemPerCPU` under `SelectTypeParameters`
//! with memory, `KillWait`; partitions' `DefaultTime` and `MaxTime`); parameters given in the
//! spec win. Not modelled: wall-clock limits on cycles (`bf_max_time`, `max_sched_time`,
//! `bf_yield_*`, so `bf_continue` has no effect), per-user backfill limits, partition
//! `PriorityTier`, reservations, features, licences, preemption.

use super::common::Order;
use super::common::order::params_with_multifactor;
use super::common::slurm_pass::{Config, MemDefault, Pass};
use super::{ParamInfo, Params, PolicyError, PolicyInfo};
use crate::ids::JobId;
use crate::sched::{Decision, Decisions, Policy, View};
use crate::time::{Dur, Time};

pub const INFO: PolicyInfo = PolicyInfo {
    name: "slurm",
    summary: "Slurm 22.05's sched/backfill: main scheduler on events, backfill every bf_interval with whole-node plans, minute-rounded limits.",
    source: include_str!("slurm.rs"),
    params: params_with_multifactor!(PRIORITY; SCHED[0], SCHED[1], SCHED[2], SCHED[3], SCHED[4], SCHED[5], SCHED[6], SCHED[7], SCHED[8], SCHED[9], SCHED[10], SCHED[11]),
    build,
};

const PRIORITY: ParamInfo = ParamInfo {
    name: "priority",
    default: "basic",
    help: "`basic`: submission order (PriorityType=priority/basic); `multifactor`: Slurm's multifactor priority (weights below); `recorded`: the trace's priorities",
};

/// Slurm's scheduling parameters, with their names and defaults.
const SCHED: [ParamInfo; 12] = [
    ParamInfo {
        name: "bf_interval",
        default: "30",
        help: "seconds between backfill cycles; -1: no backfill (SchedulerType=sched/builtin)",
    },
    ParamInfo {
        name: "bf_resolution",
        default: "60",
        help: "seconds; plans begin and end on multiples of it",
    },
    ParamInfo {
        name: "bf_window",
        default: "1440",
        help: "minutes ahead that backfill plans; a job expected to start later gets no plan",
    },
    ParamInfo {
        name: "bf_max_job_test",
        default: "500",
        help: "jobs per backfill cycle that get a start estimate",
    },
    ParamInfo {
        name: "bf_node_space_size",
        default: "bf_max_job_test",
        help: "time-map records per cycle; planning stops when they run out",
    },
    ParamInfo {
        name: "default_queue_depth",
        default: "100",
        help: "jobs an event-triggered main-scheduler run tests, less one",
    },
    ParamInfo {
        name: "sched_interval",
        default: "60",
        help: "seconds between main-scheduler runs over the whole queue; -1: the main scheduler never runs",
    },
    ParamInfo {
        name: "batch_sched_delay",
        default: "3",
        help: "seconds a submission may wait for the main scheduler, at least since its last run",
    },
    ParamInfo {
        name: "kill_wait",
        default: "30",
        help: "seconds a job past its limit is expected to run on (KillWait)",
    },
    ParamInfo {
        name: "def_mem_per_cpu",
        default: "none",
        help: "memory of a job that asked for none: `none`, `0` (all of its nodes' memory, Slurm's default under CR_*_Memory) or MB per CPU (DefMemPerCPU)",
    },
    ParamInfo {
        name: "bf_phase",
        default: "0",
        help: "milliseconds after each whole second at which backfill cycles fall (not a Slurm parameter: Slurm's backfill thread ticks on its own phase within the main loop's second; for replaying a real Slurm's log)",
    },
    ParamInfo {
        name: "skip_idle",
        default: "yes",
        help: "`no`: compute every cycle, even those after which nothing changed (slower, the same schedule; for checking the shortcut)",
    },
];

fn build(params: &mut Params) -> Result<Box<dyn Policy>, PolicyError> {
    let order = match params.take("priority").as_deref() {
        None | Some("basic") | Some("priority/basic") => Order::Queue,
        Some("multifactor") | Some("priority/multifactor") => Order::multifactor(params)?,
        Some("recorded") => Order::Priority,
        Some(v) => {
            return Err(params.bad(
                "priority",
                format!("expected basic, multifactor or recorded, found '{v}'"),
            ));
        }
    };
    let bf_interval = seconds_or_off(params, "bf_interval", 30)?;
    let sched_interval = seconds_or_off(params, "sched_interval", 60)?;
    if bf_interval.is_none() && sched_interval.is_none() {
        return Err(params.bad(
            "sched_interval",
            "with bf_interval=-1 too, nothing would ever start",
        ));
    }
    let bf_max_job_test = count(params, "bf_max_job_test", 500, 1)?;
    let cfg = Config {
        bf_resolution: Dur::from_secs(count(params, "bf_resolution", 60, 1)? as i64),
        bf_window: Dur::from_secs(60 * count(params, "bf_window", 1440, 1)? as i64),
        bf_max_job_test,
        bf_node_space_size: count(params, "bf_node_space_size", bf_max_job_test, 2)?,
        default_queue_depth: count(params, "default_queue_depth", 100, 0)?,
        kill_wait: Dur::from_secs(count(params, "kill_wait", 30, 0)? as i64),
        mem_default: match params.take("def_mem_per_cpu").as_deref() {
            None | Some("none") => MemDefault::AsRequested,
            Some("0") => MemDefault::WholeNode,
            Some(v) => match v.parse::<u64>() {
                Ok(n) => MemDefault::PerCpu(n),
                Err(_) => {
                    return Err(params.bad(
                        "def_mem_per_cpu",
                        format!("expected none or megabytes per CPU, found '{v}'"),
                    ));
                }
            },
        },
    };
    let batch_delay = Dur::from_secs(count(params, "batch_sched_delay", 3, 0)? as i64);
    let skip_idle = yes_no(params, "skip_idle", true)?;
    let bf_phase = match params.take("bf_phase") {
        None => 0,
        Some(v) => parse_int(params, "bf_phase", &v)
            .ok()
            .filter(|ms| (0..SECOND).contains(ms))
            .ok_or_else(|| {
                params.bad(
                    "bf_phase",
                    format!("expected milliseconds 0–999, found '{v}'"),
                )
            })?,
    };
    Ok(Box::new(Slurm {
        reorders: matches!(order, Order::Multifactor(_)),
        order,
        cfg,
        bf_interval,
        sched_interval,
        batch_delay,
        skip_idle,
        bf_phase: Dur(bf_phase),
        clocks: None,
        pass: Pass::default(),
        plan: Vec::new(),
    }))
}

fn parse_int(params: &Params, name: &str, v: &str) -> Result<i64, PolicyError> {
    v.trim()
        .parse::<i64>()
        .map_err(|_| params.bad(name, format!("expected a whole number, found '{v}'")))
}

/// A count ≥ `min`.
fn count(
    params: &mut Params,
    name: &str,
    default: usize,
    min: usize,
) -> Result<usize, PolicyError> {
    let Some(v) = params.take(name) else {
        return Ok(default);
    };
    let n = parse_int(params, name, &v)?;
    usize::try_from(n)
        .ok()
        .filter(|&n| n >= min)
        .ok_or_else(|| {
            params.bad(
                name,
                format!("expected a whole number ≥ {min}, found '{v}'"),
            )
        })
}

/// Seconds ≥ 1, or -1 for "off".
fn seconds_or_off(
    params: &mut Params,
    name: &str,
    default: i64,
) -> Result<Option<Dur>, PolicyError> {
    let n = match params.take(name) {
        None => default,
        Some(v) => parse_int(params, name, &v)?,
    };
    match n {
        -1 => Ok(None),
        n if n >= 1 => Ok(Some(Dur::from_secs(n))),
        _ => Err(params.bad(name, format!("expected seconds ≥ 1 or -1, found {n}"))),
    }
}

fn yes_no(params: &mut Params, name: &str, default: bool) -> Result<bool, PolicyError> {
    match params.take(name).as_deref() {
        None => Ok(default),
        Some("yes") | Some("true") => Ok(true),
        Some("no") | Some("false") => Ok(false),
        Some(v) => Err(params.bad(name, format!("expected yes or no, found '{v}'"))),
    }
}

const SECOND: i64 = 1000;

/// The first whole second at or after `t`.
fn tick_at_or_after(t: Time) -> Time {
    Time(-((-t.0).div_euclid(SECOND)) * SECOND)
}

/// The first whole second after `t`.
fn tick_after(t: Time) -> Time {
    Time((t.0.div_euclid(SECOND) + 1) * SECOND)
}

/// When each scheduler last ran, and what changed since: `slurmctld`'s timers.
#[derive(Clone, Debug)]
struct Clocks {
    /// Last main-scheduler run from the background loop (for `batch_sched_delay`).
    last_sched: Option<Time>,
    /// Last run over the whole queue.
    last_full: Time,
    /// Last backfill cycle, run or skipped.
    last_bf: Option<Time>,
    /// When the next backfill cycle is due.
    bf_next: Time,
    /// Submissions the main scheduler has not seen yet (`job_sched_cnt`).
    submitted: bool,
    /// Something changed since the last cycle (submission, end, start).
    bf_dirty: bool,
    /// After the last pass some waiting job fitted the free resources (plans aside).
    fits_now: bool,
    /// A run over the whole queue could start something an event-triggered run did not (one
    /// was cut at `default_queue_depth`, or priorities were recomputed).
    main_stale: bool,
    /// The latest instant at which something changed.
    last_change: Time,
    /// Jobs waited after the last pass.
    had_pending: bool,
    /// Running jobs after the last pass (fewer now: some ended).
    running: usize,
    /// The newest queue position seen (a larger one: a submission).
    newest: Option<u64>,
}

pub struct Slurm {
    order: Order,
    cfg: Config,
    bf_interval: Option<Dur>,
    sched_interval: Option<Dur>,
    batch_delay: Dur,
    /// The priority order changes with time (multifactor): runs over the whole queue are
    /// never skipped while jobs wait.
    reorders: bool,
    skip_idle: bool,
    /// Backfill cycles fall at whole seconds plus this.
    bf_phase: Dur,
    clocks: Option<Clocks>,
    pass: Pass,
    /// The last cycle's plans, shown again at passes without a cycle (live mode).
    plan: Vec<(JobId, Time)>,
}

impl Policy for Slurm {
    fn usage_half_life(&self) -> Option<Dur> {
        self.order.half_life()
    }
    fn usage_billing(&self) -> crate::sched::usage::Billing {
        self.order.billing()
    }

    fn schedule(&mut self, view: &View<'_>, out: &mut Decisions) {
        let now = view.now;
        let mut c = self.clocks.take().unwrap_or_else(|| Clocks {
            last_sched: None,
            last_full: Time(now.0.div_euclid(SECOND) * SECOND),
            last_bf: None,
            bf_next: self.bf_tick_at_or_after(now),
            submitted: false,
            bf_dirty: false,
            fits_now: false,
            main_stale: false,
            last_change: now,
            had_pending: false,
            running: view.running.len(),
            newest: None,
        });
        self.catch_up(&mut c, now);
        // What happened since the last pass.
        let newest = view.pending.last().map(|p| p.seq);
        let submitted = newest.is_some_and(|s| c.newest.is_none_or(|n| s > n));
        c.newest = c.newest.max(newest);
        // Jobs that ended while the queue was empty were not seen (the engine asks no policy
        // then): nothing could start, so they trigger nothing now.
        let ended = view.running.len() < c.running && c.had_pending;
        let tick = now.0.rem_euclid(SECOND) == 0;
        let full_due = tick
            && self
                .sched_interval
                .is_some_and(|si| now >= c.last_full + si);
        let sched_ok = c.last_sched.is_none_or(|l| now >= l + self.batch_delay);
        let bf_due = self.bf_interval.is_some() && now == c.bf_next;
        // A pass nobody planned (a cancellation, a `--switches` wait running out): handled as
        // an event.
        let unexpected =
            !(submitted || ended || full_due || bf_due || (tick && c.submitted && sched_ok));
        if submitted || ended || unexpected {
            // Slurm counts the event for its background loop (`job_sched_cnt`): submissions,
            // and ends too — measured on Slurm 22.05.8, the run that follows an end is that
            // loop's, gated by `batch_sched_delay` (semantics §12).
            c.submitted = true;
            c.bf_dirty = true;
            c.last_change = now;
        }
        c.main_stale |= self.reorders;
        let batch_due = tick && c.submitted && sched_ok && self.sched_interval.is_some();
        let full_main = full_due && (c.main_stale || c.submitted || !self.skip_idle);
        let cycle = bf_due && (c.bf_dirty || c.fits_now || !self.skip_idle);
        let mut started = 0;
        let mut begun = full_main || batch_due || (cycle && !view.pending.is_empty());
        if begun {
            self.pass.begin(view, &self.cfg, &self.order);
        }
        if full_due {
            if full_main {
                started += self.run_main(&mut c, view, true, out);
                c.main_stale = false;
            }
            c.last_full = now;
            c.last_sched = Some(now);
            c.submitted = false;
        } else if batch_due {
            started += self.run_main(&mut c, view, false, out);
            c.last_sched = Some(now);
            c.submitted = false;
        }
        let waiting = view.pending.len() > started;
        if bf_due && let Some(iv) = self.bf_interval {
            let changed = c.bf_dirty || started > 0;
            if waiting || changed {
                // The cycle runs (after a quiet spell with an empty queue, the agent only polls).
                if waiting && (changed || c.fits_now || !self.skip_idle) {
                    if !begun {
                        self.pass.begin(view, &self.cfg, &self.order);
                        begun = true;
                    }
                    started += self.run_backfill(view, out);
                }
                c.last_bf = Some(now);
                c.bf_next = now + iv;
                c.bf_dirty = false;
            }
        }
        if started > 0 {
            c.bf_dirty = true;
            c.last_change = now;
        }
        if view.want_plan && !(bf_due && waiting) {
            self.show_plan(view, begun, out);
        }
        c.had_pending = view.pending.len() > started;
        c.fits_now = self.skip_idle
            && c.had_pending
            && self.bf_interval.is_some()
            && self.pass.any_fits(view, &self.cfg, begun);
        c.running = view.running.len() + started;
        if let Some(t) = self.next_wake(&c, now) {
            out.list.push(Decision::WakeAt(t));
        }
        self.clocks = Some(c);
    }
}

impl Slurm {
    /// The first backfill tick (whole second plus `bf_phase`) at or after `t`.
    fn bf_tick_at_or_after(&self, t: Time) -> Time {
        tick_at_or_after(Time(t.0 - self.bf_phase.0)) + self.bf_phase
    }

    fn run_main(
        &mut self,
        c: &mut Clocks,
        view: &View<'_>,
        full: bool,
        out: &mut Decisions,
    ) -> usize {
        let run = self.pass.main(view, &self.cfg, full, out);
        c.main_stale |= run.cut;
        run.started
    }

    fn run_backfill(&mut self, view: &View<'_>, out: &mut Decisions) -> usize {
        let from = out.list.len();
        let n = self.pass.backfill(view, &self.cfg, view.want_plan, out);
        if view.want_plan {
            self.plan.clear();
            self.plan
                .extend(out.list[from..].iter().filter_map(|d| match *d {
                    Decision::Reserve { job, at, .. } => Some((job, at)),
                    _ => None,
                }));
        }
        n
    }

    /// Reports the last cycle's plans of jobs still waiting.
    fn show_plan(&self, view: &View<'_>, begun: bool, out: &mut Decisions) {
        if self.plan.is_empty() {
            return;
        }
        let mut ids: Vec<(JobId, u32)> = view
            .pending
            .iter()
            .enumerate()
            .filter(|(p, _)| !begun || self.pass.is_pending(*p as u32))
            .map(|(p, j)| (j.spec.id, p as u32))
            .collect();
        ids.sort_unstable();
        for &(job, at) in &self.plan {
            if let Ok(k) = ids.binary_search_by_key(&job, |x| x.0) {
                out.reserve(ids[k].1, job, at);
            }
        }
    }

    /// Brings the timers to `now`: periodic runs over the whole queue, and backfill cycles,
    /// that fell between the last pass and now and would have changed nothing.
    fn catch_up(&self, c: &mut Clocks, now: Time) {
        if let Some(si) = self.sched_interval
            && now > c.last_full + si
        {
            // Runs at last_full + k·si before now; one exactly at now is due, not caught up.
            let k = (now - c.last_full).0.saturating_sub(1).div_euclid(si.0);
            c.last_full = Time(c.last_full.0 + k * si.0);
            c.last_sched = c.last_sched.max(Some(c.last_full));
        }
        let Some(iv) = self.bf_interval else {
            return;
        };
        if c.bf_next >= now {
            return;
        }
        if c.had_pending {
            // Jobs waited all along: a cycle every interval.
            let k = crate::sched::ceil_div((now - c.bf_next).0, iv.0);
            c.last_bf = Some(Time(c.bf_next.0 + (k - 1) * iv.0));
            c.bf_next = Time(c.bf_next.0 + k * iv.0);
            return;
        }
        // The queue was empty: one more cycle after the last change, then polling every second.
        if c.last_bf.is_none_or(|l| c.last_change >= l) {
            let v = c.bf_next.max(self.bf_tick_at_or_after(c.last_change));
            if v < now {
                c.last_bf = Some(v);
                c.bf_next = v + iv;
            }
        }
        if c.bf_next < now {
            c.bf_next = self.bf_tick_at_or_after(now);
        }
    }

    /// The next instant a scheduler has something to do.
    fn next_wake(&self, c: &Clocks, now: Time) -> Option<Time> {
        let waiting = c.had_pending;
        let mut wake: Option<Time> = None;
        let mut at = |t: Time| {
            if t > now {
                wake = Some(wake.map_or(t, |w| w.min(t)));
            }
        };
        if c.submitted && self.sched_interval.is_some() {
            let mut t = tick_after(now);
            if let Some(l) = c.last_sched {
                t = t.max(l + self.batch_delay);
            }
            if let Some(si) = self.sched_interval {
                t = t.min(c.last_full + si);
            }
            at(t);
        }
        if waiting {
            if let Some(si) = self.sched_interval
                && (c.main_stale || !self.skip_idle)
            {
                at(c.last_full + si);
            }
            if self.bf_interval.is_some() && (c.bf_dirty || c.fits_now || !self.skip_idle) {
                at(c.bf_next);
            }
        }
        wake
    }
}
