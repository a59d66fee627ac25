//! One scheduling pass: ask the policy, validate its decisions on a scratch copy of the state,
//! and apply them at once.
//!
//! Validation ([`Engine::validate`]) reads the engine's state and writes only the
//! [`Staged`] record and the ledger's [`Scratch`](super::ledger::Scratch): resizes are checked
//! as one batch first (every resized job gives back its old allocation, then takes its new
//! one), then starts and preemptions in decision order, each start against what the earlier
//! ones left. A refused decision refuses the whole pass and nothing has changed — no resources
//! taken, no job marked preempted or resized, no command issued. Only a pass that validated
//! reaches [`Engine::apply`], which cannot fail.

use super::{Command, Engine, EngineError};
use crate::ids::JobId;
use crate::model::{JobSpec, PendingReason, PreemptMode, Slice};
use crate::sched::limits::PassUsage;
use crate::sched::{Decision, Decisions, RunningJob, View};
use crate::time::Time;
use std::sync::Arc;

/// What a validated pass will change.
#[derive(Debug, Default)]
pub(super) struct Staged {
    /// (index in `running`, new allocation), in decision order.
    resized: Vec<(usize, Arc<[Slice]>)>,
    /// (queue position, allocation with GPU indices), in decision order.
    started: Vec<(u32, Arc<[Slice]>)>,
    /// (index in `running`, mode, when it stops), in decision order.
    preempted: Vec<(usize, PreemptMode, Time)>,
    /// Reservations reported: (job, planned start).
    reserved: Vec<(JobId, Time)>,
    /// Queue positions started by this pass, in decision order.
    started_pos: Vec<u32>,
    /// `started_mask[p]`: position p is started by this pass. At least as long as the queue,
    /// and all false between passes (only the entries set are cleared: no O(queue) per pass).
    started_mask: Vec<bool>,
    /// What the pass's starts hold against the limits so far.
    pass_usage: PassUsage,
}

impl Staged {
    fn clear(&mut self, pending: usize) {
        self.resized.clear();
        self.started.clear();
        self.preempted.clear();
        self.reserved.clear();
        if self.started_mask.len() < pending {
            self.started_mask.resize(pending, false);
        }
        self.pass_usage.clear();
    }

    /// Unmarks the started positions (the mask is all false again).
    fn unmark(&mut self) {
        for p in self.started_pos.drain(..) {
            self.started_mask[p as usize] = false;
        }
    }
}

impl Engine {
    /// One scheduling pass: ask the policy, validate, apply. A pass with an invalid decision
    /// changes nothing.
    pub(super) fn pass(&mut self, now: Time, out: &mut Vec<Command>) -> Result<(), EngineError> {
        self.passes += 1;
        self.plan.clear();
        // Without waiting jobs a pass can only grow elastic jobs.
        if self.pending.is_empty() && self.elastic_jobs == 0 {
            return Ok(());
        }
        let mut decisions = std::mem::take(&mut self.decisions);
        decisions.clear();
        let view = View {
            now,
            cluster: &self.cluster,
            placement: self.placement.as_ref(),
            avail: self.ledger.avail(),
            free: self.ledger.free(),
            pending: &self.pending,
            running: &self.running,
            want_plan: self.want_plan,
            usage: self.usage.as_ref(),
            limits: &self.limits,
            assoc: self.assoc.as_deref(),
            elastic_jobs: self.elastic_jobs,
        };
        self.policy.schedule(&view, &mut decisions);
        // Boxed and taken out for the pass (no copy of its buffers per pass).
        let mut staged = self.staged.take().unwrap_or_default();
        staged.clear(self.pending.len());
        self.scratch.begin(&self.ledger);
        let result = self.validate(now, &decisions, &mut staged);
        if result.is_ok() {
            self.apply(now, &decisions, &mut staged, out);
        } else {
            self.scratch.reset();
        }
        staged.unmark();
        self.staged = Some(staged);
        self.decisions = decisions;
        result
    }

    fn invalid(&self, why: String) -> EngineError {
        EngineError::InvalidDecision {
            policy: self.policy_name.clone(),
            why,
        }
    }

    /// Checks every decision against the state and stages its effect (see the module header).
    fn validate(
        &mut self,
        now: Time,
        d: &Decisions,
        staged: &mut Staged,
    ) -> Result<(), EngineError> {
        if d.list.iter().any(|x| matches!(x, Decision::Resize { .. })) {
            self.validate_resizes(d, staged)?;
        }
        for dec in &d.list {
            match *dec {
                Decision::Start {
                    pos,
                    job,
                    from,
                    len,
                } => {
                    let slices = self.allocation(job, d, from, len)?;
                    self.validate_start(pos, job, slices, staged)?;
                }
                Decision::Preempt { job, mode, grace } => {
                    let i = self.running.iter().position(|r| r.spec.id == job);
                    match i {
                        Some(i)
                            if self.running[i].preempting.is_none()
                                && !staged.preempted.iter().any(|p| p.0 == i) =>
                        {
                            staged.preempted.push((i, mode, now + grace));
                        }
                        _ => {
                            return Err(self.invalid(format!(
                                "preemption of job {job}, which is not running or already preempted"
                            )));
                        }
                    }
                }
                Decision::Reserve { job, at, .. } => staged.reserved.push((job, at)),
                Decision::Resize { .. } | Decision::WakeAt(_) | Decision::Blocked { .. } => {}
            }
        }
        Ok(())
    }

    /// The allocation a decision names.
    fn allocation<'d>(
        &self,
        job: JobId,
        d: &'d Decisions,
        from: u32,
        len: u32,
    ) -> Result<&'d [Slice], EngineError> {
        let (from, len) = (from as usize, len as usize);
        d.slices
            .get(from..from + len)
            .ok_or_else(|| self.invalid(format!("job {job}: allocation out of range")))
    }

    /// A pass's resizes as one batch: every resized job gives back its old allocation, then
    /// takes its new one. Refused if a job is not running, not elastic, being preempted or
    /// cancelled, holds GPUs, is resized twice, or a new allocation leaves its range or does
    /// not fit.
    fn validate_resizes(&mut self, d: &Decisions, staged: &mut Staged) -> Result<(), EngineError> {
        let mut todo: Vec<(usize, &[Slice])> = Vec::new();
        for dec in &d.list {
            let Decision::Resize { job, from, len } = *dec else {
                continue;
            };
            let Some(i) = self.running.iter().position(|r| r.spec.id == job) else {
                return Err(self.invalid(format!("resize of job {job}, which is not running")));
            };
            let r = &self.running[i];
            let Some(range) = r.spec.elastic else {
                return Err(self.invalid(format!("resize of job {job}, which is not elastic")));
            };
            if r.preempting.is_some()
                || r.stopping
                || r.spec.gpus > 0
                || todo.iter().any(|t| t.0 == i)
            {
                return Err(self.invalid(format!(
                    "resize of job {job}: being preempted or cancelled, holding GPUs or resized twice"
                )));
            }
            let slices = self.allocation(job, d, from, len)?;
            let total: u32 = slices.iter().map(|s| s.cpus).sum();
            if slices.is_empty() || !range.contains(total) {
                return Err(self.invalid(format!(
                    "resize of job {job} to {total} CPUs, outside its range {}-{}",
                    range.min, range.max
                )));
            }
            todo.push((i, slices));
        }
        for &(i, _) in &todo {
            let r = &self.running[i];
            self.scratch
                .release(&self.ledger, &r.alloc, r.spec.mem_mb.unwrap_or(0));
        }
        for &(i, slices) in &todo {
            let spec = &self.running[i].spec;
            let part = &self.cluster.partitions[spec.partition as usize];
            let mem = spec.mem_mb.unwrap_or(0);
            let bad = slices.iter().enumerate().find_map(|(k, s)| {
                let a = self.scratch.avail(&self.ledger, s.node);
                let ok = part.nodes.binary_search(&s.node).is_ok()
                    && !slices[..k].iter().any(|t| t.node == s.node)
                    && s.cpus > 0
                    && s.gpus == 0
                    && s.cpus <= a.cpus
                    && mem <= a.mem_mb;
                (!ok).then_some(s.node)
            });
            if let Some(node) = bad {
                return Err(self.invalid(format!(
                    "resize of job {} does not fit on node {}",
                    spec.id, self.cluster.nodes[node as usize].name
                )));
            }
            let alloc = self.scratch.take(&self.ledger, slices, mem);
            staged.resized.push((i, alloc));
        }
        Ok(())
    }

    /// Checks one start against the queue and what the pass has left free, and stages it.
    fn validate_start(
        &mut self,
        pos: u32,
        job: JobId,
        slices: &[Slice],
        staged: &mut Staged,
    ) -> Result<(), EngineError> {
        let p = pos as usize;
        let Some(pj) = self.pending.get(p) else {
            return Err(self.invalid(format!("start of queue position {p} out of range")));
        };
        if pj.spec.id != job {
            return Err(self.invalid(format!(
                "start of job {job} at queue position {p}, which holds job {}",
                pj.spec.id
            )));
        }
        if staged.started_mask[p] {
            return Err(self.invalid(format!("job {job} started twice")));
        }
        let spec = Arc::clone(&pj.spec);
        if let Err(why) = self.check_fit(&spec, slices, &staged.pass_usage) {
            return Err(self.invalid(why));
        }
        if !self.limits.is_unlimited() {
            staged.pass_usage.take(&spec);
        }
        let alloc = self
            .scratch
            .take(&self.ledger, slices, spec.mem_mb.unwrap_or(0));
        staged.started_mask[p] = true;
        staged.started_pos.push(pos);
        staged.started.push((pos, alloc));
        Ok(())
    }

    /// Whether `slices` can hold `spec` now: the job's limits, its CPU count (or elastic
    /// range) and node count, its partition, and each node's free CPUs, memory and GPUs as
    /// the pass left them. The reason if not.
    pub(super) fn check_fit(
        &self,
        spec: &JobSpec,
        slices: &[Slice],
        extra: &PassUsage,
    ) -> Result<(), String> {
        let req = spec.request();
        let part = &self.cluster.partitions[spec.partition as usize];
        if slices.is_empty() {
            return Err(format!("job {} started on no node", spec.id));
        }
        if let Some(r) = self.limits.blocked(spec, extra) {
            return Err(format!("job {} would exceed a limit ({r})", spec.id));
        }
        let total: u64 = slices.iter().map(|s| u64::from(s.cpus)).sum();
        match spec.elastic {
            Some(e) if !(u64::from(e.min)..=u64::from(e.max)).contains(&total) => {
                return Err(format!(
                    "elastic job {} runs on {}-{} CPUs, the allocation gives {total}",
                    spec.id, e.min, e.max
                ));
            }
            None if total != u64::from(req.cpus) => {
                return Err(format!(
                    "job {} needs {} CPUs, the allocation gives {total}",
                    spec.id, req.cpus
                ));
            }
            _ => {}
        }
        if let Some(n) = req.nodes
            && slices.len() != n as usize
        {
            return Err(format!(
                "job {} needs {n} nodes, the allocation has {}",
                spec.id,
                slices.len()
            ));
        }
        for (i, s) in slices.iter().enumerate() {
            if slices[..i].iter().any(|t| t.node == s.node) {
                return Err(format!("job {} given node {} twice", spec.id, s.node));
            }
            if part.nodes.binary_search(&s.node).is_err() {
                return Err(format!(
                    "job {} placed on node {} outside partition {}",
                    spec.id, s.node, part.name
                ));
            }
            let a = self.scratch.avail(&self.ledger, s.node);
            if s.cpus == 0
                || s.cpus > a.cpus
                || req.mem_mb > a.mem_mb
                || s.gpus != req.gpus
                || s.gpus > a.gpus
            {
                return Err(format!(
                    "job {} does not fit on node {}: asks {} CPUs, {} MB, {} GPUs; free {} CPUs, {} MB, {} GPUs",
                    spec.id,
                    self.cluster.nodes[s.node as usize].name,
                    s.cpus,
                    req.mem_mb,
                    s.gpus,
                    a.cpus,
                    a.mem_mb,
                    a.gpus
                ));
            }
        }
        Ok(())
    }

    /// Applies a validated pass: resources, running jobs, the queue, reasons, wake-ups, the
    /// plan and the commands (resizes first, then preemptions, then starts, each in decision
    /// order).
    fn apply(&mut self, now: Time, d: &Decisions, staged: &mut Staged, out: &mut Vec<Command>) {
        self.scratch.commit(&mut self.ledger);
        // Resizes: charge fair-share usage up to now at the old size, then resize.
        for (i, alloc) in staged.resized.drain(..) {
            let old = &self.running[i];
            if let Some(usage) = &mut self.usage {
                usage.charge_on(&old.spec, old.usage_cpus, old.usage_from, now);
            }
            self.running[i] = old.resized(now, Arc::clone(&alloc));
            let r = &self.running[i];
            out.push(Command::Resize {
                job: r.spec.id,
                cpus: r.cpus,
                alloc,
            });
        }
        for (i, mode, at) in staged.preempted.drain(..) {
            let r = &mut self.running[i];
            r.preempting = Some(mode);
            out.push(Command::Preempt {
                job: r.spec.id,
                mode,
                at,
            });
        }
        let started = staged.started.len();
        for (k, (pos, alloc)) in staged.started.drain(..).enumerate() {
            let pj = &self.pending[pos as usize];
            let waited_for = if now > pj.spec.submit {
                match pj.reason {
                    PendingReason::None => PendingReason::Priority,
                    other => other,
                }
            } else {
                PendingReason::None
            };
            let r = RunningJob::new(
                Arc::clone(&pj.spec),
                now,
                self.next_start_seq + k as u64,
                alloc,
            );
            self.limits.start(&r.spec);
            out.push(Command::Start {
                waited_for,
                job: r.spec.id,
                cpus: r.cpus,
                time_limit: r.spec.time_limit,
                leaf_switches: self.cluster.leaves_spanned(&r.alloc),
                alloc: Arc::clone(&r.alloc),
            });
            self.running.push(r);
        }
        self.next_start_seq += started as u64;
        self.wake_after(now, d, &staged.started_mask);
        self.update_reasons(d, &staged.started_mask);
        self.plan.append(&mut staged.reserved);
        self.pending.remove_started(&staged.started_pos);
    }
}

impl Engine {
    /// The next wake-up: the earliest future `WakeAt` of the pass, and the end of a waiting
    /// job's `--switches` wait (its request relaxes then, so a pass must run).
    fn wake_after(&mut self, now: Time, d: &Decisions, started: &[bool]) {
        let mut wake: Option<Time> = d
            .list
            .iter()
            .filter_map(|x| match *x {
                Decision::WakeAt(t) if t > now => Some(t),
                _ => None,
            })
            .min();
        if self.leaf_limited {
            let ends = self
                .pending
                .iter()
                .enumerate()
                .filter(|(i, _)| !started[*i])
                .filter_map(|(_, p)| p.spec.switches.map(|(_, w)| p.spec.submit + w))
                .filter(|&t| t > now)
                .min();
            wake = wake.into_iter().chain(ends).min();
        }
        if let Some(t) = wake {
            self.wake = Some(self.wake.map_or(t, |w| w.min(t)));
        }
    }

    /// Reasons of the jobs still waiting: a reservation or a block means `Resources`; a job a
    /// limit holds back gets that limit's reason.
    fn update_reasons(&mut self, d: &Decisions, started: &[bool]) {
        for x in &d.list {
            if let Decision::Reserve { pos, .. } | Decision::Blocked { pos, .. } = *x {
                let p = pos as usize;
                if p < self.pending.len() && !started[p] {
                    self.pending[p].reason = PendingReason::Resources;
                }
            }
        }
        if !self.limits.is_unlimited() {
            let none = PassUsage::default();
            for (p, pj) in self.pending.iter_mut().enumerate() {
                if let (false, Some(r)) = (started[p], self.limits.blocked(&pj.spec, &none)) {
                    pj.reason = r;
                }
            }
        }
    }
}
