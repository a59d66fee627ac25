//! The elastic layer: resizes malleable jobs around any policy.
//!
//! Every policy is wrapped in this layer (parameters `elastic` and `resize_every`). In a pass
//! with no elastic job pending or running it only calls the policy. Otherwise:
//!
//! 1. **Reclaimable CPUs count as free.** A running elastic job is *resizable* when it is not
//!    being preempted and its last resize (or start) is at least `resize_every` ago. The policy
//!    sees every resizable job shrunk to its minimum — its CPUs above `min` are free, taken
//!    from its last slices first, and its expected end is recomputed at `min` CPUs (linear
//!    speedup from its estimate: a policy never sees the true model) — and every pending
//!    elastic job at its minimum size, with its estimate scaled to
//!    `ceil(estimate × cpus / min)`. The policy decides as usual: its reservations and
//!    backfilling account for the CPUs that shrinking can give back, and a waiting job starts
//!    when shrinking lets it.
//! 2. **Growth.** Into what is still idle after the policy's starts: each resizable job first
//!    takes back its own CPUs, then, in start order (running jobs, then the jobs started in
//!    this pass), each elastic job grows up to its `max` — on its own nodes first, then on the
//!    other nodes of its partition in node order (where its memory per node fits).
//! 3. Jobs whose final allocation differs from what they hold are resized (the engine applies
//!    resizes before starts); elastic jobs started in this pass start at their grown size.
//!    A pass is requested at the time the next not-yet-resizable job becomes resizable, while
//!    jobs wait or CPUs sit idle.
//!
//! With per-user or per-account limits (`--user-limit`, `--account-limit`) elastic jobs start
//! at their requested size and never grow beyond it (limits count requested CPUs); they still
//! shrink and regrow up to it. `elastic=off` runs elastic jobs as rigid ones.

use super::take;
use crate::ids::{FastMap, JobId};
use crate::model::{Avail, JobSpec, Slice};
use crate::policy::{ParamInfo, Params, PolicyError};
use crate::sched::{Decision, Decisions, Policy, View};
use crate::sched::{PendingJob, RunningJob, ceil_div};
use crate::time::{Dur, Time};
use std::sync::Arc;

pub const ELASTIC_PARAM: ParamInfo = ParamInfo {
    name: "elastic",
    default: "on",
    help: "`on`: resize elastic jobs (the elastic layer); `off`: run them rigid at their requested size",
};
pub const RESIZE_EVERY_PARAM: ParamInfo = ParamInfo {
    name: "resize_every",
    default: "60",
    help: "a running elastic job is resized at most once per this many seconds (its start counts)",
};
/// Parameters every policy takes (the layer's).
pub const LAYER_PARAMS: [ParamInfo; 2] = [ELASTIC_PARAM, RESIZE_EVERY_PARAM];

/// Reads the layer's parameters; `None` with `elastic=off`.
pub fn from_params(params: &mut Params) -> Result<Option<Dur>, PolicyError> {
    let on = match params.take("elastic").as_deref() {
        None | Some("on") => true,
        Some("off") => false,
        Some(v) => return Err(params.bad("elastic", format!("expected on or off, found '{v}'"))),
    };
    let every = match params.take("resize_every") {
        None => Dur::from_secs(60),
        Some(v) => match crate::time::parse_secs_to_millis(&v) {
            Some(ms) if ms >= 0 => Dur(ms),
            _ => {
                return Err(
                    params.bad("resize_every", format!("expected seconds ≥ 0, found '{v}'"))
                );
            }
        },
    };
    Ok(on.then_some(every))
}

/// A policy with the elastic layer around it.
pub struct ElasticLayer {
    inner: Box<dyn Policy>,
    every: Dur,
    running: Vec<RunningJob>,
    pending: Vec<PendingJob>,
    /// Pending elastic jobs as the policy sees them: (the engine's spec, the spec at min).
    shrunk: FastMap<JobId, (Arc<JobSpec>, Arc<JobSpec>)>,
    avail: Vec<Avail>,
    idle: Vec<Avail>,
    /// Indices (in `View::running`) of the resizable jobs.
    resizable: Vec<usize>,
    slices: Vec<Slice>,
}

impl ElasticLayer {
    pub fn new(inner: Box<dyn Policy>, every: Dur) -> ElasticLayer {
        ElasticLayer {
            inner,
            every,
            running: Vec::new(),
            pending: Vec::new(),
            shrunk: FastMap::default(),
            avail: Vec::new(),
            idle: Vec::new(),
            resizable: Vec::new(),
            slices: Vec::new(),
        }
    }
}

/// `alloc` with `by` CPUs fewer, taken from the last slices first (a slice left with none is
/// dropped). Appends to `out`.
fn shrink(alloc: &[Slice], by: u32, out: &mut Vec<Slice>) {
    let start = out.len();
    out.extend_from_slice(alloc);
    let mut left = by;
    while left > 0 {
        let Some(s) = out[start..].last_mut() else {
            break;
        };
        let k = s.cpus.min(left);
        s.cpus -= k;
        left -= k;
        if s.cpus == 0 {
            out.pop();
        }
    }
}

/// Grows `alloc` by up to `by` CPUs from `idle`: on its own nodes first, then on `nodes` in
/// order where `mem` fits. Returns the CPUs added.
fn grow(alloc: &mut Vec<Slice>, by: u32, idle: &mut [Avail], nodes: &[u32], mem: u64) -> u32 {
    let mut left = by;
    for s in alloc.iter_mut() {
        let a = &mut idle[s.node as usize];
        let k = a.cpus.min(left);
        a.cpus -= k;
        s.cpus += k;
        left -= k;
    }
    for &n in nodes {
        if left == 0 {
            break;
        }
        let a = &mut idle[n as usize];
        if a.cpus == 0 || a.mem_mb < mem || alloc.iter().any(|s| s.node == n) {
            continue;
        }
        let k = a.cpus.min(left);
        a.cpus -= k;
        a.mem_mb -= mem;
        alloc.push(Slice::new(n, k, 0));
        left -= k;
    }
    by - left
}

impl Policy for ElasticLayer {
    fn usage_half_life(&self) -> Option<Dur> {
        self.inner.usage_half_life()
    }
    fn usage_billing(&self) -> crate::sched::usage::Billing {
        self.inner.usage_billing()
    }

    fn schedule(&mut self, view: &View<'_>, out: &mut Decisions) {
        if view.elastic_jobs == 0 {
            return self.inner.schedule(view, out);
        }
        let unlimited = view.limits.is_unlimited();
        // 1. The view with resizable jobs at their minimum.
        let (free, next_resizable) = self.shrink_running(view);
        self.shrink_pending(view, unlimited);
        // Reservations are wanted: growth must not take CPUs a waiting job is planned to get
        // before the grown job may be shrunk again.
        let inner_view = View {
            avail: &self.avail,
            free,
            pending: &self.pending,
            running: &self.running,
            want_plan: view.want_plan || self.every.0 > 0,
            ..*view
        };
        self.inner.schedule(&inner_view, out);

        // 2. What stays idle after the policy's starts, and growth into it.
        let (started, n_started) = self.idle_after_starts(view, out);
        let cap = GrowthCap {
            unlimited,
            may_grow: may_grow(out, view.now + self.every),
        };
        let mut finals = self.take_back(view);
        self.grow_resizable(view, &mut finals, cap);
        self.grow_started(view, out, &started, cap);
        // 3. Resizes where the final allocation differs.
        for (i, alloc) in &finals {
            let r = &view.running[*i];
            let same = alloc.len() == r.alloc.len()
                && alloc
                    .iter()
                    .zip(r.alloc.iter())
                    .all(|(a, b)| a.node == b.node && a.cpus == b.cpus);
            if !same {
                out.resize(r.spec.id, alloc);
            }
        }
        let idle_cpus = self.idle.iter().any(|a| a.cpus > 0);
        if let Some(t) = next_resizable
            && (view.pending.len() > n_started || idle_cpus)
        {
            out.list.push(Decision::WakeAt(t));
        }
        self.forget_shrunk(view, &started);
    }
}

/// How far an elastic job may grow in this pass.
#[derive(Clone, Copy)]
struct GrowthCap {
    /// No user or account limit: a job may grow up to its `max` (else up to its request).
    unlimited: bool,
    /// Growth beyond what a job holds is allowed (see [`may_grow`]).
    may_grow: bool,
}

impl GrowthCap {
    /// The CPUs a job of `spec` that holds `have` may end the pass with.
    fn of(self, spec: &JobSpec, have: u32) -> u32 {
        let e = spec.elastic.map_or(spec.cpus, |e| e.max);
        let e = if self.unlimited { e } else { e.min(spec.cpus) };
        if self.may_grow { e } else { e.min(have) }
    }
}

/// Growth beyond what a job holds is allowed unless the policy preempted in this pass (it
/// counted on the victims' CPUs), or a waiting job is planned to start before `horizon`, when
/// a job grown now could be shrunk again. (Policies without plans, such as FCFS, promise an
/// order, not a time: their blocked head may wait up to `resize_every` longer.)
fn may_grow(out: &Decisions, horizon: Time) -> bool {
    let mut reserved = false;
    let mut preempted = false;
    for d in &out.list {
        match *d {
            Decision::Preempt { .. } => preempted = true,
            Decision::Reserve { at, .. } if at < horizon => reserved = true,
            _ => {}
        }
    }
    !preempted && !reserved
}

impl ElasticLayer {
    /// The running jobs as the policy sees them (`self.running`, in `View::running` order):
    /// each resizable job at its minimum, its CPUs above it counted free in `self.avail`.
    /// Records the resizable jobs; returns the free CPUs and when the next not-yet-resizable
    /// job becomes resizable.
    fn shrink_running(&mut self, view: &View<'_>) -> (u64, Option<Time>) {
        let now = view.now;
        self.avail.clear();
        self.avail.extend_from_slice(view.avail);
        self.running.clear();
        self.resizable.clear();
        let mut free = view.free;
        let mut next_resizable: Option<Time> = None;
        for (i, r) in view.running.iter().enumerate() {
            let Some(e) = r
                .spec
                .elastic
                .filter(|_| r.preempting.is_none() && !r.stopping)
            else {
                self.running.push(r.clone());
                continue;
            };
            let at = r.resizable_at(self.every);
            if at > now {
                next_resizable = Some(next_resizable.map_or(at, |t| t.min(at)));
                self.running.push(r.clone());
                continue;
            }
            self.resizable.push(i);
            if r.cpus == e.min {
                self.running.push(r.clone());
                continue;
            }
            self.slices.clear();
            shrink(&r.alloc, r.cpus - e.min, &mut self.slices);
            let mem = r.spec.mem_mb.unwrap_or(0);
            for s in r.alloc.iter() {
                let kept = self
                    .slices
                    .iter()
                    .find(|k| k.node == s.node)
                    .map_or(0, |k| k.cpus);
                let a = &mut self.avail[s.node as usize];
                a.cpus += s.cpus - kept;
                if kept == 0 {
                    a.mem_mb += mem;
                }
            }
            free += u64::from(r.cpus - e.min);
            let work = r.est_work_at(now);
            self.running.push(RunningJob {
                cpus: e.min,
                est_work: work,
                seg_start: now,
                end_est: RunningJob::end_after(now, work, e.min),
                alloc: self.slices.as_slice().into(),
                ..r.clone()
            });
        }
        (free, next_resizable)
    }

    /// The pending jobs as the policy sees them (`self.pending`): without limits, each elastic
    /// job at its minimum with its estimate scaled to `ceil(estimate × cpus / min)`. The shrunk
    /// specs are kept across passes (one `Arc` per job while its spec is unchanged).
    fn shrink_pending(&mut self, view: &View<'_>, unlimited: bool) {
        self.pending.clear();
        for p in view.pending {
            match p.spec.elastic {
                Some(e) if unlimited && e.min < p.spec.cpus => {
                    let entry = self
                        .shrunk
                        .entry(p.spec.id)
                        .or_insert_with(|| (Arc::clone(&p.spec), Arc::clone(&p.spec)));
                    if !Arc::ptr_eq(&entry.0, &p.spec) || entry.1.cpus != e.min {
                        let estimate = Dur(ceil_div(
                            p.spec.estimate.0.saturating_mul(i64::from(p.spec.cpus)),
                            i64::from(e.min),
                        ));
                        *entry = (
                            Arc::clone(&p.spec),
                            Arc::new(JobSpec {
                                cpus: e.min,
                                estimate,
                                ..(*p.spec).clone()
                            }),
                        );
                    }
                    self.pending.push(PendingJob {
                        spec: Arc::clone(&entry.1),
                        ..p.clone()
                    });
                }
                _ => self.pending.push(p.clone()),
            }
        }
    }

    /// `self.idle`: what stays idle in the shrunk view after the policy's starts. Returns the
    /// elastic starts (index in `out.list`, position in `View::pending`) and how many jobs
    /// start.
    fn idle_after_starts(
        &mut self,
        view: &View<'_>,
        out: &Decisions,
    ) -> (Vec<(usize, u32)>, usize) {
        self.idle.clear();
        self.idle.extend_from_slice(&self.avail);
        let mut started: Vec<(usize, u32)> = Vec::new();
        let mut n_started = 0;
        for (k, d) in out.list.iter().enumerate() {
            if let Decision::Start { pos, from, len, .. } = *d {
                n_started += 1;
                let spec = &view.pending[pos as usize].spec;
                let (from, len) = (from as usize, len as usize);
                take(
                    &mut self.idle,
                    &out.slices[from..from + len],
                    spec.mem_mb.unwrap_or(0),
                );
                if spec.elastic.is_some() {
                    started.push((k, pos));
                }
            }
        }
        (started, n_started)
    }

    /// Resizable jobs take back their own CPUs first, in start order, as far as they are still
    /// idle (on a node the shrunk job left, where its memory fits). Returns each resizable
    /// job's allocation so far (index in `View::running`, slices).
    fn take_back(&mut self, view: &View<'_>) -> Vec<(usize, Vec<Slice>)> {
        self.resizable.sort_by_key(|&i| view.running[i].start_seq);
        let mut finals: Vec<(usize, Vec<Slice>)> = Vec::with_capacity(self.resizable.len());
        for &i in &self.resizable {
            let (r, v) = (&view.running[i], &self.running[i]);
            let mem = r.spec.mem_mb.unwrap_or(0);
            let mut alloc: Vec<Slice> = v.alloc.to_vec();
            for s in r.alloc.iter() {
                let a = &mut self.idle[s.node as usize];
                match alloc.iter_mut().find(|k| k.node == s.node) {
                    Some(k) => {
                        let add = (s.cpus - k.cpus).min(a.cpus);
                        a.cpus -= add;
                        k.cpus += add;
                    }
                    None if a.mem_mb >= mem && a.cpus > 0 => {
                        let add = s.cpus.min(a.cpus);
                        a.cpus -= add;
                        a.mem_mb -= mem;
                        alloc.push(Slice::new(s.node, add, 0));
                    }
                    None => {}
                }
            }
            finals.push((i, alloc));
        }
        finals
    }

    /// Then every resizable job grows, in start order, up to its cap.
    fn grow_resizable(
        &mut self,
        view: &View<'_>,
        finals: &mut [(usize, Vec<Slice>)],
        cap: GrowthCap,
    ) {
        for (i, alloc) in finals {
            let r = &view.running[*i];
            let have: u32 = alloc.iter().map(|s| s.cpus).sum();
            let want = cap.of(&r.spec, r.cpus).saturating_sub(have);
            let spec = &r.spec;
            if want > 0 {
                grow(
                    alloc,
                    want,
                    &mut self.idle,
                    view.nodes_of_spec(spec),
                    spec.mem_mb.unwrap_or(0),
                );
            }
        }
    }

    /// Then the elastic jobs started in this pass grow, in start order, up to their cap: a
    /// grown start gets its new slices appended to `out.slices`.
    fn grow_started(
        &mut self,
        view: &View<'_>,
        out: &mut Decisions,
        started: &[(usize, u32)],
        cap: GrowthCap,
    ) {
        for &(k, pos) in started {
            let spec = &view.pending[pos as usize].spec;
            let Decision::Start { from, len, .. } = out.list[k] else {
                continue;
            };
            let (from, len) = (from as usize, len as usize);
            let have: u32 = out.slices[from..from + len].iter().map(|s| s.cpus).sum();
            // Without growth, a job starts at the size the policy gave it.
            let want = cap.of(spec, have).saturating_sub(have);
            if want == 0 {
                continue;
            }
            self.slices.clear();
            self.slices.extend_from_slice(&out.slices[from..from + len]);
            let added = grow(
                &mut self.slices,
                want,
                &mut self.idle,
                view.nodes_of_spec(spec),
                spec.mem_mb.unwrap_or(0),
            );
            if added > 0 {
                let new_from = out.slices.len() as u32;
                out.slices.extend_from_slice(&self.slices);
                if let Decision::Start { from, len, .. } = &mut out.list[k] {
                    *from = new_from;
                    *len = self.slices.len() as u32;
                }
            }
        }
    }

    /// Forgets the shrunk specs of jobs that started; and, now and then, of jobs that left the
    /// queue otherwise (cancelled), so a long-running daemon does not keep them.
    fn forget_shrunk(&mut self, view: &View<'_>, started: &[(usize, u32)]) {
        for &(_, pos) in started {
            self.shrunk.remove(&view.pending[pos as usize].spec.id);
        }
        if self.shrunk.len() > 2 * view.pending.len() + 64 {
            let waiting: std::collections::BTreeSet<JobId> =
                view.pending.iter().map(|p| p.spec.id).collect();
            self.shrunk.retain(|id, _| waiting.contains(id));
        }
    }
}
