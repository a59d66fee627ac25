//! The scheduling engine: plain state and a step function, with no IO.
//!
//! The engine owns the pending queue, the running jobs and the free processors. The driver
//! calls [`Engine::step`] once per decision round with the current time and the events of that
//! instant; the engine applies them (completions first, then submissions), runs exactly one pass
//! of its policy, validates the policy's decisions and returns the commands for the executor.
//! It reads no clock, does no IO, spawns nothing and draws no random numbers, so the same code
//! serves the simulator and the live daemon, and any sequence of steps can be replayed in a test.
//!
//! Queue order is arrival order: each submitted job gets the next sequence number, and the
//! driver hands submissions over in queue order (submit time, then position in the trace).
//! Policies that order differently (priority, fair-share) sort their own view.

mod commit;
mod events;
mod invariants;
mod ledger;
mod queue;

pub use events::{Command, EngineError, Event};

use crate::ids::{FastMap, JobId};
use crate::model::{
    AssocConfig, Avail, Cluster, FinalState, JobSpec, PendingReason, PreemptMode, Request, Slice,
};
use crate::sched::limits::{LimitState, Limits, PassUsage};
use crate::sched::placement::Placement;
use crate::sched::usage::UsageLedger;
use crate::sched::{Decisions, PendingJob, Policy, RunningJob, admission, ceil_div};
use crate::time::{Dur, Time};
use commit::Staged;
use ledger::{Ledger, Scratch};
use std::sync::Arc;

/// The engine's state.
pub struct Engine {
    cluster: Cluster,
    placement: Box<dyn Placement>,
    /// Free resources per node.
    ledger: Ledger,
    /// The copy-on-write scratch a pass is validated on.
    scratch: Scratch,
    /// What the current pass will change (kept to reuse its buffers).
    staged: Option<Box<Staged>>,
    pending: queue::Queue,
    running: Vec<RunningJob>,
    /// Decayed usage per user and account, kept when the policy asks for it (fair-share).
    usage: Option<UsageLedger>,
    limits: LimitState,
    /// The fair-share association tree, when one was configured.
    assoc: Option<Arc<AssocConfig>>,
    policy: Box<dyn Policy>,
    policy_name: String,
    next_seq: u64,
    next_start_seq: u64,
    wake: Option<Time>,
    /// Reservations of the last pass: (job, planned start).
    plan: Vec<(JobId, Time)>,
    decisions: Decisions,
    want_plan: bool,
    /// Some job asked for a leaf-switch limit (`--switches`): passes must also run when such
    /// a wait ends.
    leaf_limited: bool,
    submitted: Vec<Arc<JobSpec>>,
    /// Submission checks by job shape: (partition, request, time limit) → verdict.
    runnable: FastMap<(u32, Request, Option<Dur>), Result<(), String>>,
    passes: u64,
    /// Elastic jobs pending or running (the elastic layer's fast path skips passes without).
    elastic_jobs: usize,
}

impl Engine {
    pub fn new(
        cluster: Cluster,
        placement: Box<dyn Placement>,
        policy: Box<dyn Policy>,
        policy_name: &str,
    ) -> Engine {
        let usage = policy
            .usage_half_life()
            .map(|h| UsageLedger::with_billing(h, policy.usage_billing()));
        Engine {
            usage,
            limits: LimitState::default(),
            assoc: None,
            ledger: Ledger::new(&cluster),
            scratch: Scratch::default(),
            staged: None,
            cluster,
            placement,
            pending: queue::Queue::default(),
            running: Vec::new(),
            policy,
            policy_name: policy_name.to_string(),
            next_seq: 0,
            next_start_seq: 0,
            wake: None,
            plan: Vec::new(),
            decisions: Decisions::default(),
            want_plan: false,
            leaf_limited: false,
            submitted: Vec::new(),
            runnable: FastMap::default(),
            passes: 0,
            elastic_jobs: 0,
        }
    }

    pub fn total_procs(&self) -> u64 {
        self.ledger.total()
    }
    /// Free CPUs over all nodes.
    pub fn free_procs(&self) -> u64 {
        self.ledger.free()
    }
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }
    /// Free resources per node.
    pub fn avail(&self) -> &[Avail] {
        self.ledger.avail()
    }
    pub fn placement(&self) -> &dyn Placement {
        self.placement.as_ref()
    }
    pub fn pending(&self) -> &[PendingJob] {
        &self.pending
    }
    pub fn running(&self) -> &[RunningJob] {
        &self.running
    }
    /// The fair-share association tree (accounts and users with shares).
    pub fn set_associations(&mut self, assoc: AssocConfig) {
        self.assoc = Some(Arc::new(assoc));
    }

    /// Per-user and per-account limits on running jobs (quotas).
    pub fn set_limits(&mut self, limits: Limits) {
        let mut st = LimitState::new(limits);
        for r in &self.running {
            st.start(&r.spec);
        }
        self.limits = st;
    }

    pub fn limits(&self) -> &LimitState {
        &self.limits
    }

    /// Ask policies to report their reservations in every pass, even where computing them
    /// changes no start (for showing expected start times; off in simulation).
    pub fn set_want_plan(&mut self, on: bool) {
        self.want_plan = on;
    }

    /// The reservations the policy reported in its last pass.
    pub fn plan(&self) -> &[(JobId, Time)] {
        &self.plan
    }
    /// A wake-up the policy asked for, if any.
    pub fn next_wake(&self) -> Option<Time> {
        self.wake
    }
    pub fn policy_name(&self) -> &str {
        &self.policy_name
    }
    pub fn passes(&self) -> u64 {
        self.passes
    }
    /// Nothing pending and nothing running.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.running.is_empty()
    }

    /// Applies the events of instant `now` (completions first, then submissions, each in the
    /// order given), runs one scheduling pass and appends the resulting commands to `out`.
    pub fn step(
        &mut self,
        now: Time,
        events: impl IntoIterator<Item = Event>,
        out: &mut Vec<Command>,
    ) -> Result<(), EngineError> {
        if self.wake.is_some_and(|w| w <= now) {
            self.wake = None;
        }
        let mut submitted = std::mem::take(&mut self.submitted);
        submitted.clear();
        for ev in events {
            match ev {
                Event::Ended { job, state } => {
                    let i = self
                        .running
                        .iter()
                        .position(|r| r.spec.id == job)
                        .ok_or(EngineError::NotRunning(job))?;
                    let r = self.running.swap_remove(i);
                    self.ledger.release(&r.alloc, r.spec.mem_mb.unwrap_or(0));
                    self.limits.end(&r.spec);
                    if let Some(u) = &mut self.usage {
                        u.charge_on(&r.spec, r.usage_cpus, r.usage_from, now);
                    }
                    let elastic = r.spec.elastic.is_some();
                    if state == FinalState::Preempted && self.requeue(r, now) {
                        continue;
                    }
                    self.elastic_jobs -= usize::from(elastic);
                }
                Event::Submitted(spec) => submitted.push(spec),
                Event::CancelRequested { job } => {
                    if let Some(i) = self.pending.iter().position(|p| p.spec.id == job) {
                        let p = self.pending.remove(i);
                        self.elastic_jobs -= usize::from(p.spec.elastic.is_some());
                        out.push(Command::Cancel {
                            job,
                            running: false,
                        });
                    } else if let Some(r) = self.running.iter_mut().find(|r| r.spec.id == job) {
                        r.stopping = true;
                        out.push(Command::Cancel { job, running: true });
                    }
                }
            }
        }
        for spec in submitted.drain(..) {
            self.submit(spec)?;
        }
        self.submitted = submitted;
        self.pass(now, out)
    }

    /// Takes back a job that was already running when the engine started (a live daemon
    /// restarting): its resources are held again as `alloc` says.
    pub fn adopt_running(
        &mut self,
        spec: Arc<JobSpec>,
        start: Time,
        alloc: Arc<[Slice]>,
    ) -> Result<(), EngineError> {
        self.scratch.begin(&self.ledger);
        if let Err(why) = self.check_fit(&spec, &alloc, &PassUsage::default()) {
            return Err(EngineError::Invariant(format!(
                "cannot adopt job {}: {why}",
                spec.id
            )));
        }
        self.ledger.hold(&alloc, spec.mem_mb.unwrap_or(0));
        let job = RunningJob::new(spec, start, self.next_start_seq, alloc);
        self.limits.start(&job.spec);
        self.elastic_jobs += usize::from(job.spec.elastic.is_some());
        self.running.push(job);
        self.next_start_seq += 1;
        Ok(())
    }

    /// A preempted job goes back to the queue (requeue: as it was; suspend: with the estimate
    /// of its remaining work), or ends (cancel: nothing to do). Whether it went back.
    fn requeue(&mut self, r: RunningJob, now: Time) -> bool {
        let spec = match r.preempting {
            Some(PreemptMode::Requeue) => r.spec,
            Some(PreemptMode::Suspend) => {
                // The estimated work left, at the requested size.
                let left = r.est_work_at(now);
                Arc::new(JobSpec {
                    estimate: Dur(ceil_div(left, i64::from(r.spec.cpus.max(1)))),
                    ..(*r.spec).clone()
                })
            }
            _ => return false,
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.push(PendingJob {
            spec,
            seq,
            reason: PendingReason::None,
        });
        true
    }

    fn submit(&mut self, spec: Arc<JobSpec>) -> Result<(), EngineError> {
        if spec.cpus == 0 {
            return Err(EngineError::NoProcessors(spec.id));
        }
        // Over a limit on its own (not just because of what runs now): it could never start.
        if let Some(r) = admission::exceeds_limits_alone(&self.limits.limits, &spec) {
            return Err(EngineError::CannotRun {
                job: spec.id,
                partition: String::new(),
                why: format!("it alone exceeds its limit ({r})"),
            });
        }
        if let Err(why) = self.can_ever_run(&spec) {
            return Err(EngineError::CannotRun {
                job: spec.id,
                partition: self
                    .cluster
                    .partitions
                    .get(spec.partition as usize)
                    .map_or_else(|| format!("#{}", spec.partition), |p| p.name.clone()),
                why,
            });
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.leaf_limited |= spec.switches.is_some();
        self.elastic_jobs += usize::from(spec.elastic.is_some());
        self.pending.push(PendingJob {
            spec,
            seq,
            reason: PendingReason::None,
        });
        Ok(())
    }

    /// Whether the job could run on its partition if the partition were empty; the reason if
    /// not. Jobs that fail this never start, so the engine refuses them at submission. Decided
    /// once per job shape.
    pub fn can_ever_run(&mut self, spec: &JobSpec) -> Result<(), String> {
        let key = (spec.partition, spec.request(), spec.requested_time);
        if let Some(r) = self.runnable.get(&key) {
            return r.clone();
        }
        let r = admission::can_ever_run(&self.cluster, self.placement.as_ref(), spec);
        self.runnable.insert(key, r.clone());
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::View;
    use crate::sched::placement::BestFit;

    fn spec(id: u64, procs: u32) -> JobSpec {
        JobSpec::new(JobId(id), Time::ZERO, procs, Dur(10))
    }

    fn engine(cpus: u32, policy: Box<dyn Policy>, name: &str) -> Engine {
        let cluster = Cluster::uniform(1, cpus, 0, 0).unwrap();
        Engine::new(cluster, Box::new(BestFit), policy, name)
    }

    /// Starts every pending job on node 0, fitting or not.
    struct Greedy;
    impl Policy for Greedy {
        fn schedule(&mut self, view: &View<'_>, out: &mut Decisions) {
            for (i, j) in view.pending.iter().enumerate() {
                let one = [Slice::new(0, j.spec.cpus, 0)];
                out.start(i as u32, j.spec.id, &one);
            }
        }
    }

    #[test]
    fn over_allocation_is_refused_and_changes_nothing() {
        let mut e = engine(4, Box::new(Greedy), "greedy");
        let mut out = Vec::new();
        let events = vec![
            Event::Submitted(spec(1, 3).into()),
            Event::Submitted(spec(2, 2).into()),
        ];
        let err = e.step(Time::ZERO, events, &mut out).unwrap_err();
        assert_eq!(
            err,
            EngineError::InvalidDecision {
                policy: "greedy".into(),
                why: "job 2 does not fit on node n0: asks 2 CPUs, 0 MB, 0 GPUs; free 1 CPUs, 0 MB, 0 GPUs".into()
            }
        );
        assert!(out.is_empty());
        assert_eq!(e.free_procs(), 4);
        assert_eq!(e.avail()[0].cpus, 4);
        assert_eq!(e.pending().len(), 2);
        assert!(e.running().is_empty());
        e.check_invariants().unwrap();
    }

    #[test]
    fn completions_release_before_submissions_join() {
        let (p, _) = crate::policy::build("fcfs").unwrap();
        let mut e = engine(4, p, "fcfs");
        let mut out = Vec::new();
        e.step(
            Time::ZERO,
            vec![Event::Submitted(spec(1, 4).into())],
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        out.clear();
        // The submission comes first in the list, the completion is still applied first.
        let events = vec![
            Event::Submitted(spec(2, 4).into()),
            Event::Ended {
                job: JobId(1),
                state: FinalState::Completed,
            },
        ];
        e.step(Time(10), events, &mut out).unwrap();
        assert_eq!(
            out,
            [Command::Start {
                job: JobId(2),
                cpus: 4,
                time_limit: None,
                alloc: vec![Slice::new(0, 4, 0)].into(),
                leaf_switches: 0,
                waited_for: PendingReason::Priority,
            }]
        );
        e.check_invariants().unwrap();
    }

    #[test]
    fn gpus_get_distinct_indices() {
        let cluster = Cluster::uniform(1, 8, 1000, 4).unwrap();
        let (p, _) = crate::policy::build("fcfs").unwrap();
        let mut e = Engine::new(cluster, Box::new(BestFit), p, "fcfs");
        let mut out = Vec::new();
        let gpu_job = |id, gpus| JobSpec {
            gpus,
            mem_mb: Some(100),
            ..spec(id, 1)
        };
        let events = vec![
            Event::Submitted(gpu_job(1, 1).into()),
            Event::Submitted(gpu_job(2, 2).into()),
            Event::Submitted(gpu_job(3, 2).into()),
        ];
        e.step(Time::ZERO, events, &mut out).unwrap();
        let masks: Vec<Vec<u64>> = out
            .iter()
            .map(|c| match c {
                Command::Start { alloc, .. } => alloc.iter().map(|s| s.gpu_mask).collect(),
                _ => Vec::new(),
            })
            .collect();
        // 1 takes GPU 0, 2 takes GPUs 1-2; 3 needs two but one is left: it waits.
        assert_eq!(masks, [vec![0b1], vec![0b110]]);
        assert_eq!(e.avail()[0].gpus, 1);
        assert_eq!(e.avail()[0].mem_mb, 800);
        e.step(
            Time(5),
            vec![Event::Ended {
                job: JobId(1),
                state: FinalState::Completed,
            }],
            &mut out,
        )
        .unwrap();
        match &out[2] {
            Command::Start { job, alloc, .. } => {
                assert_eq!(*job, JobId(3));
                assert_eq!(alloc[0].gpu_mask, 0b1001);
            }
            other => panic!("unexpected command {other:?}"),
        }
        e.check_invariants().unwrap();
    }

    /// Resizes the running job `job` to `cpus` CPUs on node 0 and starts nothing.
    struct ResizeTo(u64, u32);
    impl Policy for ResizeTo {
        fn schedule(&mut self, view: &View<'_>, out: &mut Decisions) {
            if view.running.iter().any(|r| r.spec.id.0 == self.0) {
                out.resize(JobId(self.0), &[Slice::new(0, self.1, 0)]);
            }
        }
    }

    #[test]
    fn bad_resizes_are_refused_and_change_nothing() {
        let elastic = |id, procs, min, max| JobSpec {
            elastic: Some(crate::model::ElasticRange { min, max }),
            ..spec(id, procs)
        };
        for (policy, why) in [
            (ResizeTo(1, 3), "resize of job 1, which is not elastic"),
            (
                ResizeTo(2, 5),
                "resize of job 2 to 5 CPUs, outside its range 1-4",
            ),
            (ResizeTo(2, 4), "resize of job 2 does not fit on node n0"),
        ] {
            let (fcfs, _) = crate::policy::build("fcfs[elastic=off]").unwrap();
            let mut e = engine(6, fcfs, "fcfs");
            let mut out = Vec::new();
            let events = vec![
                Event::Submitted(spec(1, 2).into()),
                Event::Submitted(elastic(2, 2, 1, 4).into()),
                Event::Submitted(spec(3, 1).into()),
            ];
            e.step(Time::ZERO, events, &mut out).unwrap();
            assert_eq!(e.free_procs(), 1);
            e.policy = Box::new(policy);
            let err = e.step(Time(5), vec![], &mut out).unwrap_err();
            assert_eq!(
                err,
                EngineError::InvalidDecision {
                    policy: "fcfs".into(),
                    why: why.into()
                }
            );
            assert_eq!(e.free_procs(), 1);
            assert_eq!(e.avail()[0].cpus, 1);
            assert!(
                e.running()
                    .iter()
                    .all(|r| r.cpus == r.spec.cpus && r.resizes == 0)
            );
            e.check_invariants().unwrap();
        }
        // A valid shrink frees CPUs at once and moves the expected end: 2 ran 5 ms of its
        // 20 CPU-ms estimate on 2 CPUs; 10 left on 1 CPU end at 15.
        let (fcfs, _) = crate::policy::build("fcfs[elastic=off]").unwrap();
        let mut e = engine(6, fcfs, "fcfs");
        let mut out = Vec::new();
        e.step(
            Time::ZERO,
            vec![Event::Submitted(elastic(2, 2, 1, 4).into())],
            &mut out,
        )
        .unwrap();
        e.policy = Box::new(ResizeTo(2, 1));
        out.clear();
        e.step(Time(5), vec![], &mut out).unwrap();
        assert_eq!(
            out,
            [Command::Resize {
                job: JobId(2),
                cpus: 1,
                alloc: vec![Slice::new(0, 1, 0)].into()
            }]
        );
        assert_eq!(e.free_procs(), 5);
        assert_eq!(e.running()[0].expected_end(Time(5)), Time(15));
        e.check_invariants().unwrap();
    }

    /// Preempts job `.0`, then (if `.1`) starts every pending job on node 0, fitting or not.
    struct PreemptThenGreedy(u64, bool);
    impl Policy for PreemptThenGreedy {
        fn schedule(&mut self, view: &View<'_>, out: &mut Decisions) {
            out.preempt(JobId(self.0), PreemptMode::Requeue, Dur(0));
            if self.1 {
                Greedy.schedule(view, out);
            }
        }
    }

    #[test]
    fn a_refused_pass_undoes_its_preemptions_too() {
        let (fcfs, _) = crate::policy::build("fcfs").unwrap();
        let mut e = engine(4, fcfs, "fcfs");
        let mut out = Vec::new();
        e.step(
            Time::ZERO,
            vec![Event::Submitted(spec(1, 3).into())],
            &mut out,
        )
        .unwrap();
        out.clear();
        // Preempting job 1 is valid on its own; starting job 2 (4 CPUs, 1 free) is not.
        e.policy = Box::new(PreemptThenGreedy(1, true));
        let err = e
            .step(Time(1), vec![Event::Submitted(spec(2, 4).into())], &mut out)
            .unwrap_err();
        assert!(
            matches!(&err, EngineError::InvalidDecision { why, .. } if why.contains("job 2 does not fit")),
            "{err}"
        );
        assert!(out.is_empty(), "no command from a refused pass: {out:?}");
        assert_eq!(e.running()[0].preempting, None, "the preemption was undone");
        assert_eq!(e.free_procs(), 1);
        e.check_invariants().unwrap();
        // The same preemption in a valid pass does take effect.
        e.policy = Box::new(PreemptThenGreedy(1, false));
        e.step(Time(2), vec![], &mut out).unwrap();
        assert_eq!(
            out,
            [Command::Preempt {
                job: JobId(1),
                mode: PreemptMode::Requeue,
                at: Time(2)
            }]
        );
        assert_eq!(e.running()[0].preempting, Some(PreemptMode::Requeue));
        e.check_invariants().unwrap();
    }

    #[test]
    fn bad_events_are_errors() {
        let (p, _) = crate::policy::build("fcfs").unwrap();
        let mut e = engine(4, p, "fcfs");
        let mut out = Vec::new();
        let ended = Event::Ended {
            job: JobId(9),
            state: FinalState::Completed,
        };
        assert_eq!(
            e.step(Time::ZERO, vec![ended], &mut out),
            Err(EngineError::NotRunning(JobId(9)))
        );
        assert!(matches!(
            e.step(
                Time::ZERO,
                vec![Event::Submitted(spec(1, 5).into())],
                &mut out
            ),
            Err(EngineError::CannotRun { .. })
        ));
    }
}
