//! The two schedulers of Slurm 22.05's `slurmctld`, as one pass of the `slurm` policy runs
//! them on a scratch copy of the cluster state: the **main scheduler** (`_schedule` in
//! `src/slurmctld/job_scheduler.c`) and one **backfill cycle** (`_attempt_backfill` in
//! `src/plugins/sched/backfill/backfill.c`, with the start-time estimate of
//! `_will_run_test` in `src/plugins/select/cons_common/job_test.c`). *When* they run is the
//! policy's business (`policy/slurm.rs`); this file is *what* each run does.
//!
//! Both see the jobs in priority order and the resources free now per node (CPUs, memory,
//! GPUs), with Slurm's memory default applied to jobs that asked for none ([`MemDefault`]).
//! Jobs started by one run are running jobs for the next (ending at start + their limit).
//! Time limits are Slurm's: whole minutes, rounded up ([`Config::limit`]).

use super::node_space::{NodeSpace, Nodes, floor_to};
use super::{Order, drop_limited};
use crate::model::{Avail, Cluster, JobSpec, Request, Slice};
use crate::sched::limits::PassUsage;
use crate::sched::{Decisions, View, ceil_div};
use crate::time::{Dur, Time};

/// Memory of a job that asked for none (Slurm's `DefMemPerCPU` with a memory-aware
/// `SelectTypeParameters`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MemDefault {
    /// Memory is what the job asked for; none means none (mini-slurm's reading, and Slurm's
    /// when memory is not a consumable resource).
    #[default]
    AsRequested,
    /// `DefMemPerCPU` unset with `CR_*_Memory`: the job takes all the memory of its nodes, so
    /// no other job fits beside it (`pn_min_memory == 0` means "the whole node").
    WholeNode,
    /// `DefMemPerCPU=N`: N MB per allocated CPU.
    PerCpu(u64),
}

/// The scheduling parameters one run needs.
#[derive(Clone, Debug)]
pub struct Config {
    pub bf_resolution: Dur,
    pub bf_window: Dur,
    pub bf_max_job_test: usize,
    pub bf_node_space_size: usize,
    pub default_queue_depth: usize,
    pub kill_wait: Dur,
    pub mem_default: MemDefault,
}

const MINUTE: i64 = 60_000;

impl Config {
    /// A job's time limit as Slurm enforces it: the estimate in whole minutes rounded up (at
    /// least one); a job without a requested time gets its partition's `DefaultTime`, else
    /// its `MaxTime`, else its estimate; never above `MaxTime`.
    pub fn limit(&self, cluster: &Cluster, spec: &JobSpec) -> Dur {
        let part = cluster.partitions.get(spec.partition as usize);
        let max = part.and_then(|p| p.max_time);
        let given = match (spec.requested_time, part.and_then(|p| p.default_time), max) {
            (None, Some(d), _) | (None, None, Some(d)) => d,
            _ => spec.estimate,
        };
        let minutes = ceil_div(given.0.max(0), MINUTE).max(1);
        let limit = Dur(minutes.saturating_mul(MINUTE));
        match max {
            Some(m) => limit.min(Dur(ceil_div(m.0.max(0), MINUTE).max(1) * MINUTE)),
            None => limit,
        }
    }

    /// Memory a job holds on one node of its allocation.
    fn mem_on(&self, cluster: &Cluster, spec: &JobSpec, s: &Slice) -> u64 {
        match (spec.mem_mb, self.mem_default) {
            (Some(m), _) => m,
            (None, MemDefault::AsRequested) => 0,
            (None, MemDefault::WholeNode) => cluster.nodes[s.node as usize].mem_mb,
            (None, MemDefault::PerCpu(n)) => n.saturating_mul(u64::from(s.cpus)),
        }
    }
}

/// A job holding resources, as the schedulers see it.
#[derive(Clone, Copy, Debug)]
struct Run {
    /// Start + limit (Slurm's `end_time`).
    end: Time,
    /// Its allocation: `Pass::run_slices[from..from + len]`.
    from: usize,
    len: usize,
    /// Index in `View::running`, or `usize::MAX - pos` for a job started in this pass.
    who: usize,
}

/// Scratch state of one pass; buffers are kept between passes.
#[derive(Default)]
pub struct Pass {
    /// Free resources now, with the memory default applied.
    avail: Vec<Avail>,
    running: Vec<Run>,
    run_slices: Vec<Slice>,
    /// Started in this pass, by queue position.
    started: Vec<bool>,
    usage: PassUsage,
    future: Vec<Avail>,
    cands: Vec<u32>,
    slices: Vec<Slice>,
    map: NodeSpace,
    /// Nodes of each partition.
    part_nodes: Vec<Nodes>,
    mask: Nodes,
    chosen: Nodes,
    /// The priority order of this pass.
    pub order: Vec<u32>,
    /// Requests found not to fit now: (partition, no memory asked, request).
    unfit: Vec<(u32, bool, Request)>,
    /// Start estimates of this cycle since its last start: (request key, nodes, estimate,
    /// range of `memo_slices`).
    memo: Vec<(Key, Nodes, Option<Time>, usize, usize)>,
    memo_slices: Vec<Slice>,
}

/// What a start estimate depends on besides the state: partition, no memory asked, request.
type Key = (u32, bool, Request);

/// Estimates remembered per cycle at most (then forgotten and started afresh).
const MEMO: usize = 64;

/// What a main-scheduler run did.
#[derive(Clone, Copy, Debug, Default)]
pub struct MainRun {
    pub started: usize,
    /// It stopped at `default_queue_depth` with jobs left to test.
    pub cut: bool,
}

impl Pass {
    /// Prepares a pass at `view.now`: the free resources (less the memory default of running
    /// jobs that asked for none), the running jobs with their Slurm end times, and the
    /// priority order.
    pub fn begin(&mut self, view: &View<'_>, cfg: &Config, order: &Order) {
        let cluster = view.cluster;
        if self.part_nodes.len() != cluster.partitions.len() {
            self.part_nodes = cluster
                .partitions
                .iter()
                .map(|p| Nodes::of(cluster.nodes.len(), p.nodes.iter().copied()))
                .collect();
        }
        self.free_now(view, cfg);
        self.running.clear();
        self.run_slices.clear();
        for (i, r) in view.running.iter().enumerate() {
            let end = if r.spec.elastic.is_some() {
                r.end_est
            } else {
                r.start + cfg.limit(cluster, &r.spec)
            };
            self.running.push(Run {
                end,
                from: self.run_slices.len(),
                len: r.alloc.len(),
                who: i,
            });
            self.run_slices.extend_from_slice(&r.alloc);
        }
        self.running.sort_by_key(|r| r.end);
        order.arrange(view, &mut self.order);
        drop_limited(view, &mut self.order);
    }

    /// The free resources now, less the memory default of running jobs that asked for none;
    /// nothing started yet.
    fn free_now(&mut self, view: &View<'_>, cfg: &Config) {
        self.avail.clear();
        self.avail.extend_from_slice(view.avail);
        for r in view.running.iter().filter(|r| r.spec.mem_mb.is_none()) {
            for s in r.alloc.iter() {
                let a = &mut self.avail[s.node as usize];
                a.mem_mb = a
                    .mem_mb
                    .saturating_sub(cfg.mem_on(view.cluster, &r.spec, s));
            }
        }
        self.started.clear();
        self.started.resize(view.pending.len(), false);
        self.usage = PassUsage::default();
    }

    /// Whether some job still waiting would fit the resources free now, plans aside. When none
    /// does, a backfill cycle can start nothing (it starts only jobs that fit now). `begun`:
    /// this pass ran [`Pass::begin`] (the free resources are those after its starts).
    pub fn any_fits(&mut self, view: &View<'_>, cfg: &Config, begun: bool) -> bool {
        if !begun {
            self.free_now(view, cfg);
        }
        self.unfit.clear();
        (0..view.pending.len() as u32).any(|pos| self.fits_now(view, cfg, pos))
    }

    /// Whether the waiting job at `pos` fits the free resources now, plans aside. Requests
    /// found not to fit are remembered in `self.unfit` (clear it when resources change).
    fn fits_now(&mut self, view: &View<'_>, cfg: &Config, pos: u32) -> bool {
        let spec = &view.pending[pos as usize].spec;
        if !self.is_pending(pos) || view.limits.blocked(spec, &self.usage).is_some() {
            return false;
        }
        let key = (
            spec.partition,
            spec.mem_mb.is_none(),
            spec.request_at(view.now),
        );
        if self.unfit.contains(&key) {
            return false;
        }
        let free: u64 = self.avail.iter().map(|a| u64::from(a.cpus)).sum();
        if u64::from(spec.cpus) <= free && self.place(view, cfg, false, None, spec) {
            return true;
        }
        self.unfit.push(key);
        false
    }

    /// One past the last position of `order` whose job fits now, plans aside: no job after it
    /// can start in this cycle (a cycle only starts jobs that fit now, and starts only take
    /// resources), so planning can stop there.
    fn fitting_end(&mut self, view: &View<'_>, cfg: &Config, order: &[u32]) -> usize {
        self.unfit.clear();
        (0..order.len())
            .rev()
            .find(|&k| self.fits_now(view, cfg, order[k]))
            .map_or(0, |k| k + 1)
    }

    /// Whether the job at queue position `pos` is still pending in this pass.
    pub fn is_pending(&self, pos: u32) -> bool {
        !self.started[pos as usize]
    }

    fn spec<'v>(&self, view: &'v View<'_>, who: usize) -> &'v JobSpec {
        if who >= usize::MAX / 2 {
            &view.pending[usize::MAX - who].spec
        } else {
            &view.running[who].spec
        }
    }

    /// Places `spec` on its partition's nodes in `state`, restricted to `mask`; the slices
    /// are left in `self.slices`.
    fn place(
        &mut self,
        view: &View<'_>,
        cfg: &Config,
        future: bool,
        mask: Option<&Nodes>,
        spec: &JobSpec,
    ) -> bool {
        let cluster = view.cluster;
        let state = if future { &self.future } else { &self.avail };
        let mut req = spec.request_at(view.now);
        let whole = spec.mem_mb.is_none() && cfg.mem_default == MemDefault::WholeNode;
        if let (None, MemDefault::PerCpu(n)) = (spec.mem_mb, cfg.mem_default) {
            let per_node = req.cpus.div_ceil(req.nodes.unwrap_or(1).max(1));
            req.mem_mb = n.saturating_mul(u64::from(per_node));
        }
        self.cands.clear();
        self.cands
            .extend(view.nodes_of_spec(spec).iter().copied().filter(|&n| {
                mask.is_none_or(|m| m.contains(n))
                    && (!whole || state[n as usize].mem_mb >= cluster.nodes[n as usize].mem_mb)
            }));
        self.slices.clear();
        view.placement
            .place(cluster, state, &self.cands, &req, &mut self.slices)
    }

    /// Starts the job at `pos` on `self.slices`: resources taken, a running job until now +
    /// its limit.
    fn start(&mut self, view: &View<'_>, cfg: &Config, pos: u32, out: &mut Decisions) {
        let spec = &view.pending[pos as usize].spec;
        for s in &self.slices {
            let mem = cfg.mem_on(view.cluster, spec, s);
            let a = &mut self.avail[s.node as usize];
            a.cpus = a.cpus.saturating_sub(s.cpus);
            a.mem_mb = a.mem_mb.saturating_sub(mem);
            a.gpus = a.gpus.saturating_sub(s.gpus);
        }
        let end = view.now + cfg.limit(view.cluster, spec);
        let at = self.running.partition_point(|r| r.end <= end);
        self.running.insert(
            at,
            Run {
                end,
                from: self.run_slices.len(),
                len: self.slices.len(),
                who: usize::MAX - pos as usize,
            },
        );
        self.run_slices.extend_from_slice(&self.slices);
        self.started[pos as usize] = true;
        self.forget();
        self.usage.take(spec);
        out.start(pos, spec.id, &self.slices);
    }

    /// The main scheduler: jobs in priority order start while they fit now; the first job of
    /// a partition that does not fit fails the partition (nothing later in it starts in this
    /// run, and its nodes are taken from jobs of other partitions). An event-triggered run
    /// (`full` false) tests at most `default_queue_depth + 1` jobs.
    pub fn main(
        &mut self,
        view: &View<'_>,
        cfg: &Config,
        full: bool,
        out: &mut Decisions,
    ) -> MainRun {
        let cluster = view.cluster;
        let mut failed = vec![false; cluster.partitions.len()];
        let mut usable = Nodes::all(cluster.nodes.len());
        let mut run = MainRun::default();
        let mut depth = 0;
        let order = std::mem::take(&mut self.order);
        for &pos in &order {
            if !self.is_pending(pos) {
                continue;
            }
            if !full {
                if depth > cfg.default_queue_depth {
                    run.cut = true;
                    break;
                }
                depth += 1;
            }
            let spec = &view.pending[pos as usize].spec;
            let part = spec.partition as usize;
            if failed[part] || view.limits.blocked(spec, &self.usage).is_some() {
                continue;
            }
            if self.place(view, cfg, false, Some(&usable), spec) {
                self.start(view, cfg, pos, out);
                run.started += 1;
            } else {
                failed[part] = true;
                usable.and_not(&self.part_nodes[part]);
                out.blocked(pos, spec.id);
            }
        }
        self.order = order;
        run
    }

    /// One backfill cycle at `view.now`; returns how many jobs it started. With `plan`, the
    /// planned start of every job that got a reservation is reported.
    pub fn backfill(
        &mut self,
        view: &View<'_>,
        cfg: &Config,
        plan: bool,
        out: &mut Decisions,
    ) -> usize {
        let now = view.now;
        let cluster = view.cluster;
        let up = Nodes::all(cluster.nodes.len());
        self.map.reset(now, cfg.bf_window, cfg.bf_resolution, &up);
        self.forget();
        let mut tested = 0;
        let mut started = 0;
        let order = std::mem::take(&mut self.order);
        // Plans after the last job that fits now change no start; they are made only when
        // asked for.
        let end = if plan {
            order.len()
        } else {
            self.fitting_end(view, cfg, &order)
        };
        'jobs: for &pos in &order[..end] {
            if !self.is_pending(pos) {
                continue;
            }
            if tested >= cfg.bf_max_job_test {
                break;
            }
            let spec = &view.pending[pos as usize].spec;
            if view.limits.blocked(spec, &self.usage).is_some() {
                continue;
            }
            let limit = cfg.limit(cluster, spec);
            let min_nodes = spec.nodes.unwrap_or(1);
            let part = spec.partition as usize;
            let mut counted = false;
            let mut later = Some(now);
            while let Some(start_res) = later {
                let end = start_res.max(now) + limit;
                self.mask.copy_from(&self.part_nodes[part]);
                // The probe only ever looks forward (`later` > `start_res`), so this ends.
                later = self
                    .map
                    .usable(start_res, end, &self.part_nodes[part], &mut self.mask);
                if self.mask.count() < min_nodes {
                    continue;
                }
                if !counted {
                    tested += 1;
                    counted = true;
                }
                let mask = std::mem::take(&mut self.mask);
                let t = self.estimate(view, cfg, &mask, spec);
                self.mask = mask;
                let Some(t) = t else {
                    continue;
                };
                let start_time = t.max(start_res);
                if start_time <= now {
                    // It fits now on nodes no plan needs before its limit: `self.slices`
                    // holds the placement the estimate found, the one a start now gets.
                    self.start(view, cfg, pos, out);
                    started += 1;
                    continue 'jobs;
                }
                if later.is_some_and(|l| start_time > l) {
                    continue;
                }
                if start_time > now + cfg.bf_window {
                    continue 'jobs;
                }
                let start_q = floor_to(start_time, cfg.bf_resolution);
                let end_q = floor_to(start_time + limit, cfg.bf_resolution);
                self.chosen = Nodes::empty(cluster.nodes.len());
                for s in &self.slices {
                    self.chosen.insert(s.node);
                }
                if self.map.overlaps(&self.chosen, start_q, end_q) {
                    // Conflicts past the interval tested: try again from the planned start.
                    later = Some(start_time).filter(|&l| l > start_res);
                    continue;
                }
                if self.map.records() >= cfg.bf_node_space_size {
                    break 'jobs;
                }
                self.map.reserve(start_q, end_q, &self.chosen);
                if plan {
                    out.reserve(pos, spec.id, start_time);
                }
                continue 'jobs;
            }
        }
        self.order = order;
        started
    }

    /// [`Pass::will_run`], remembered: within a cycle and between two starts the estimate
    /// depends only on the request and the nodes, and jobs of one size ask it again and again.
    fn estimate(
        &mut self,
        view: &View<'_>,
        cfg: &Config,
        mask: &Nodes,
        spec: &JobSpec,
    ) -> Option<Time> {
        let key = (
            spec.partition,
            spec.mem_mb.is_none(),
            spec.request_at(view.now),
        );
        if let Some(&(_, _, t, from, len)) = self.memo.iter().find(|m| m.0 == key && m.1 == *mask) {
            self.slices.clear();
            self.slices
                .extend_from_slice(&self.memo_slices[from..from + len]);
            return t;
        }
        let t = self.will_run(view, cfg, mask, spec);
        if self.memo.len() >= MEMO {
            self.forget();
        }
        self.memo.push((
            key,
            mask.clone(),
            t,
            self.memo_slices.len(),
            self.slices.len(),
        ));
        self.memo_slices.extend_from_slice(&self.slices);
        t
    }

    /// Forgets the remembered estimates (the running jobs changed).
    fn forget(&mut self) {
        self.memo.clear();
        self.memo_slices.clear();
    }

    /// Slurm's start-time estimate (`_will_run_test`) on the nodes in `mask`: now if the job
    /// fits now; otherwise running jobs are taken away in order of end time, in batches
    /// whose time window starts at 30 s (aligned on 30 s after the first one's end) and
    /// doubles, and the job is tested after each batch. The answer is the end of the last job
    /// of the first batch after which it fits — which can be later than the true earliest
    /// time. The nodes it would get are left in `self.slices`.
    fn will_run(
        &mut self,
        view: &View<'_>,
        cfg: &Config,
        mask: &Nodes,
        spec: &JobSpec,
    ) -> Option<Time> {
        let now = view.now;
        if self.place(view, cfg, false, Some(mask), spec) {
            return Some(now);
        }
        const WINDOW: i64 = 30_000;
        self.future.clear();
        self.future.extend_from_slice(&self.avail);
        let mut window = WINDOW;
        let mut anchor: Option<Time> = None;
        let mut it = 0;
        let mut more = true;
        while more {
            let mut last: Option<Time> = None;
            let mut next: Option<Time> = None;
            let mut removed = 0;
            let mut skip_test = false;
            loop {
                let Some(r) = self.running.get(it).copied() else {
                    more = false;
                    break;
                };
                it += 1;
                let nodes = &self.run_slices[r.from..r.from + r.len];
                if !nodes.iter().any(|s| mask.contains(s.node)) {
                    continue;
                }
                let a = *anchor.get_or_insert(Time((r.end.0.div_euclid(WINDOW) + 1) * WINDOW));
                last = Some(r.end);
                let spec_r = self.spec(view, r.who);
                for s in nodes {
                    let mem = cfg.mem_on(view.cluster, spec_r, s);
                    let f = &mut self.future[s.node as usize];
                    f.cpus += s.cpus;
                    f.mem_mb += mem;
                    f.gpus += s.gpus;
                }
                match self.running.get(it) {
                    None => {
                        more = false;
                        break;
                    }
                    Some(n) => {
                        next = Some(n.end);
                        if n.end.0 > a.0 + window {
                            break;
                        }
                    }
                }
                removed += 1;
                if removed > 201 {
                    skip_test = true;
                    break;
                }
            }
            let Some(last) = last else {
                break;
            };
            if skip_test {
                continue;
            }
            let a = anchor.unwrap_or(last);
            loop {
                window *= 2;
                if next.is_none_or(|n| n.0 <= a.0 + window) {
                    break;
                }
            }
            if self.place(view, cfg, true, Some(mask), spec) {
                let t = if last <= now {
                    (last + cfg.kill_wait).max(Time(now.0 + 1000))
                } else {
                    last
                };
                return Some(t);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::JobId;
    use crate::model::{Node, Partition};

    #[test]
    fn limits_are_minutes_with_partition_defaults_and_caps() {
        let node = Node {
            name: "n0".into(),
            cpus: 4,
            mem_mb: 0,
            gpus: 0,
        };
        let part = |default_time, max_time| Partition {
            name: "p".into(),
            nodes: vec![0],
            max_time,
            default_time,
            max_nodes: None,
            default: true,
        };
        let cfg = Config {
            bf_resolution: Dur::from_secs(60),
            bf_window: Dur::from_secs(86_400),
            bf_max_job_test: 500,
            bf_node_space_size: 500,
            default_queue_depth: 100,
            kill_wait: Dur::from_secs(30),
            mem_default: MemDefault::AsRequested,
        };
        let mins = |c: &Cluster, est: i64, requested: bool| {
            let mut s = JobSpec::new(JobId(1), Time::ZERO, 1, Dur::from_secs(est));
            s.requested_time = requested.then_some(Dur::from_secs(est));
            cfg.limit(c, &s).0 / 60_000
        };
        let c = Cluster::new(vec![node.clone()], vec![part(None, None)], vec![]).unwrap();
        assert_eq!(
            [
                mins(&c, 0, true),
                mins(&c, 30, true),
                mins(&c, 60, true),
                mins(&c, 61, true)
            ],
            [1, 1, 1, 2]
        );
        assert_eq!(
            mins(&c, 300, false),
            5,
            "no DefaultTime or MaxTime: the estimate"
        );
        let c = Cluster::new(
            vec![node],
            vec![part(Some(Dur::from_secs(600)), Some(Dur::from_secs(3600)))],
            vec![],
        )
        .unwrap();
        assert_eq!(mins(&c, 300, false), 10, "DefaultTime");
        assert_eq!(mins(&c, 7200, true), 60, "MaxTime caps");
    }
}
