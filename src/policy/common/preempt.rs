//! Preemption by priority (Slurm's `PreemptType=preempt/...` with `PreemptMode`): when the job
//! next in line cannot start, running jobs of strictly lower priority (the job's `priority`)
//! are preempted — lowest priority first, then the most recently started — until it can be
//! placed. Jobs already being preempted count as freed, so a job waiting out a grace time does
//! not preempt more. The preempted jobs stop after `grace`; then, by mode, they are requeued
//! (restart from scratch), suspended (resume with their remaining work) or cancelled.
//!
//! With `preempt_by=qos` (Slurm's `PreemptType=preempt/qos`, simplified to "a higher QOS
//! preempts a lower one") jobs are ranked by their QOS priority from the accounts file's `qos`
//! lines instead of by `priority`; without QOS levels nothing is preempted. QOS ranks are fixed
//! per job, so preemption by QOS works under any queue order.

use super::give;
use crate::model::{Avail, PreemptMode, Slice};
use crate::policy::{ParamInfo, Params, PolicyError};
use crate::sched::PendingJob;
use crate::sched::{Decisions, View};
use crate::time::{Dur, parse_secs_to_millis};

pub const PREEMPT_PARAM: ParamInfo = ParamInfo {
    name: "preempt",
    default: "off",
    help: "`requeue`, `suspend` or `cancel`: a job that cannot start preempts running jobs of lower priority (PreemptMode)",
};

pub const PREEMPT_BY_PARAM: ParamInfo = ParamInfo {
    name: "preempt_by",
    default: "priority",
    help: "what a preempting job must exceed: `priority` (the job's priority) or `qos` (its QOS priority from the accounts file; PreemptType=preempt/qos)",
};

/// What ranks jobs for preemption.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreemptBy {
    Priority,
    Qos,
}

pub const GRACE_PARAM: ParamInfo = ParamInfo {
    name: "grace",
    default: "0",
    help: "seconds a preempted job runs on before it stops (GraceTime)",
};

/// A policy's preemption setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preemption {
    pub mode: PreemptMode,
    pub grace: Dur,
    pub by: PreemptBy,
}

impl Preemption {
    /// Reads `preempt` and `grace`; `None` when preemption is off.
    pub fn from_params(params: &mut Params) -> Result<Option<Preemption>, PolicyError> {
        let grace = match params.take("grace") {
            None => Dur::ZERO,
            Some(v) => match parse_secs_to_millis(&v) {
                Some(ms) if ms >= 0 => Dur(ms),
                _ => return Err(params.bad("grace", format!("expected seconds ≥ 0, found '{v}'"))),
            },
        };
        let by = match params.take("preempt_by").as_deref() {
            None | Some("priority") => PreemptBy::Priority,
            Some("qos") => PreemptBy::Qos,
            Some(v) => {
                return Err(params.bad(
                    "preempt_by",
                    format!("expected priority or qos, found '{v}'"),
                ));
            }
        };
        match params.take("preempt").as_deref() {
            None | Some("off") | Some("no") => Ok(None),
            Some(m) => match PreemptMode::parse(m) {
                Some(mode) => Ok(Some(Preemption { mode, grace, by })),
                None => Err(params.bad(
                    "preempt",
                    format!("unknown mode '{m}' (expected off, requeue, suspend or cancel)"),
                )),
            },
        }
    }

    /// Tries to make room for `head`, which does not fit in `avail` (the free resources as the
    /// pass left them). Returns whether `head` will fit once the preemptions (new or pending)
    /// take effect.
    pub fn make_room(
        &self,
        view: &View<'_>,
        head: &PendingJob,
        avail: &[Avail],
        out: &mut Decisions,
    ) -> bool {
        let req = head.spec.request_at(view.now);
        let nodes = view.nodes_of(head);
        let mut free: Vec<Avail> = avail.to_vec();
        let mut scratch: Vec<Slice> = Vec::new();
        let fits = |free: &[Avail], scratch: &mut Vec<Slice>| {
            scratch.clear();
            view.placement
                .place(view.cluster, free, nodes, &req, scratch)
        };
        // Jobs already on their way out.
        for r in view.running.iter().filter(|r| r.preempting.is_some()) {
            give(&mut free, &r.alloc, r.spec.mem_mb.unwrap_or(0));
        }
        if fits(&free, &mut scratch) {
            return true;
        }
        let rank = |s: &crate::model::JobSpec| -> i64 {
            match self.by {
                PreemptBy::Priority => s.priority,
                PreemptBy::Qos => view
                    .assoc
                    .map_or(0, |a| i64::from(a.qos_priority_of(s.qos))),
            }
        };
        let head_rank = rank(&head.spec);
        let mut victims: Vec<_> = view
            .running
            .iter()
            .filter(|r| r.preempting.is_none() && rank(&r.spec) < head_rank)
            .collect();
        victims.sort_by_key(|r| (rank(&r.spec), std::cmp::Reverse(r.start), r.spec.id));
        for (k, v) in victims.iter().enumerate() {
            give(&mut free, &v.alloc, v.spec.mem_mb.unwrap_or(0));
            if fits(&free, &mut scratch) {
                for v in &victims[..=k] {
                    out.preempt(v.spec.id, self.mode, self.grace);
                }
                return true;
            }
        }
        false
    }
}
