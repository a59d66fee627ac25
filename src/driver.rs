//! The one driver loop, shared by the simulator and the live daemon.
//!
//! The loop asks the [`Executor`] which jobs have ended and the [`Store`] which jobs have
//! arrived by `now`, hands both to the engine as one decision round, and applies the engine's
//! commands. When nothing is due it asks the [`Clock`] to wait until the next known deadline
//! (the next simulated completion or trace arrival, or a wake-up a policy asked for). A
//! virtual clock jumps there; a wall clock sleeps until then or until an outside event (a
//! submission, a child exit) arrives. The modes differ only in these three implementations.
//!
//! Event order at one instant (semantics §4): completions release their processors, then
//! arrivals join the queue, then exactly one pass runs. A job started with a zero run time
//! ends at the same instant; the loop sees that completion on its next turn, still at `now`,
//! and runs one more pass.

use crate::engine::{Command, Engine, EngineError, Event};
use crate::ids::JobId;
use crate::model::{FinalState, JobSpec, PreemptMode};
use crate::time::Time;
use std::sync::Arc;

/// A source of time.
pub trait Clock {
    fn now(&self) -> Time;
    /// Advances to `deadline` (virtual), or blocks until `deadline` or an outside event,
    /// whichever comes first (wall). `None`: no deadline, wait for an event.
    fn wait_until(&mut self, deadline: Option<Time>);
}

/// A job that ended, as the executor reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    pub job: JobId,
    pub at: Time,
    pub state: FinalState,
    /// For a preempted job, how: requeued and suspended jobs are not over.
    pub preempted: Option<PreemptMode>,
}

/// Runs jobs: simulated (knows each job's true run time) or real processes.
pub trait Executor {
    type Error: std::error::Error + Send + Sync + 'static;
    fn apply(&mut self, now: Time, cmd: &Command) -> Result<(), Self::Error>;
    /// Jobs that ended at or before `now`, in a deterministic order.
    fn take_completions(&mut self, now: Time, out: &mut Vec<Completion>);
    /// The next instant a running job will end, when known in advance (simulation).
    fn next_completion(&self) -> Option<Time>;
}

/// Where jobs come from and where their history goes.
pub trait Store {
    type Error: std::error::Error + Send + Sync + 'static;
    /// Jobs submitted at or before `now` not yet handed over, in queue order.
    fn take_arrivals(&mut self, now: Time, out: &mut Vec<Arc<JobSpec>>) -> Result<(), Self::Error>;
    /// The next known arrival time (a trace's next submit; `None` in live mode).
    fn next_arrival(&self) -> Option<Time>;
    /// No arrival will ever come again (trace exhausted, or the daemon was asked to stop).
    fn exhausted(&self) -> bool;
    /// A job started: `cmd` is the `Start` command the executor received.
    fn record_start(&mut self, now: Time, cmd: &Command) -> Result<(), Self::Error>;
    fn record_end(&mut self, c: &Completion) -> Result<(), Self::Error>;
    /// A running elastic job was resized: `cmd` is the `Resize` command the executor received.
    fn record_resize(&mut self, now: Time, cmd: &Command) -> Result<(), Self::Error>;
    /// Jobs users asked to cancel since the last call (live mode).
    fn take_cancellations(&mut self, _now: Time, _out: &mut Vec<JobId>) -> Result<(), Self::Error> {
        Ok(())
    }
    /// Stop the loop now, whatever still runs (a live daemon asked to exit; its jobs go on
    /// under their runners and are re-adopted on restart).
    fn shutdown_requested(&self) -> bool {
        false
    }
}

/// Watches the loop (progress bars, invariant checks in tests, the live daemon's published
/// snapshots). Called around every step.
pub trait Observer {
    /// Just before the engine's step at `now` (its events are known, nothing is applied yet).
    fn before_step(&mut self, _now: Time) {}
    /// After the step and after its commands were applied.
    fn after_step(&mut self, _now: Time, _engine: &Engine, _commands: &[Command]) {}
}

/// An observer that does nothing.
pub struct NoObserver;
impl Observer for NoObserver {}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("executor: {0}")]
    Executor(Box<dyn std::error::Error + Send + Sync>),
    #[error("store: {0}")]
    Store(Box<dyn std::error::Error + Send + Sync>),
    #[error("livelock at {now}: {steps} decision rounds without time advancing (policy {policy})")]
    Livelock {
        now: Time,
        steps: u64,
        policy: String,
    },
    #[error(
        "stalled at {now}: {pending} jobs wait, nothing runs and nothing will arrive (policy {policy} never starts them)"
    )]
    Stalled {
        now: Time,
        pending: usize,
        policy: String,
    },
}

/// Decision rounds allowed at one instant (zero-length jobs chain rounds legitimately).
pub const MAX_STEPS_PER_INSTANT: u64 = 1_000_000;

/// Runs the loop until the store is exhausted and the engine is idle.
pub fn run<C, E, S>(
    engine: &mut Engine,
    clock: &mut C,
    exec: &mut E,
    store: &mut S,
    observer: &mut dyn Observer,
) -> Result<(), DriverError>
where
    C: Clock,
    E: Executor,
    S: Store,
{
    let exec_err = |e: E::Error| DriverError::Executor(Box::new(e));
    let store_err = |e: S::Error| DriverError::Store(Box::new(e));
    let mut ended = Vec::new();
    let mut arrived = Vec::new();
    let mut commands = Vec::new();
    let mut events = Vec::new();
    let mut cancels = Vec::new();
    // A guard against policies that undo each other's decisions at one instant forever.
    let (mut last, mut same) = (Time(i64::MIN), 0u64);
    loop {
        if store.shutdown_requested() {
            return Ok(());
        }
        let now = clock.now();
        ended.clear();
        arrived.clear();
        cancels.clear();
        exec.take_completions(now, &mut ended);
        store.take_arrivals(now, &mut arrived).map_err(store_err)?;
        store
            .take_cancellations(now, &mut cancels)
            .map_err(store_err)?;
        let wake_due = engine.next_wake().is_some_and(|w| w <= now);
        if ended.is_empty() && arrived.is_empty() && cancels.is_empty() && !wake_due {
            if store.exhausted() && engine.is_idle() {
                return Ok(());
            }
            let deadline = [
                exec.next_completion(),
                store.next_arrival(),
                engine.next_wake(),
            ]
            .into_iter()
            .flatten()
            .min();
            if deadline.is_none() && store.exhausted() && engine.running().is_empty() {
                return Err(DriverError::Stalled {
                    now,
                    pending: engine.pending().len(),
                    policy: engine.policy_name().to_string(),
                });
            }
            clock.wait_until(deadline);
            continue;
        }
        events.clear();
        for c in &ended {
            store.record_end(c).map_err(store_err)?;
            events.push(Event::Ended {
                job: c.job,
                state: c.state,
            });
        }
        events.extend(arrived.drain(..).map(Event::Submitted));
        events.extend(cancels.drain(..).map(|job| Event::CancelRequested { job }));
        if now == last {
            same += 1;
            if same > MAX_STEPS_PER_INSTANT {
                return Err(DriverError::Livelock {
                    now,
                    steps: same,
                    policy: engine.policy_name().to_string(),
                });
            }
        } else {
            (last, same) = (now, 0);
        }
        commands.clear();
        observer.before_step(now);
        engine.step(now, events.drain(..), &mut commands)?;
        for cmd in &commands {
            exec.apply(now, cmd).map_err(exec_err)?;
            match *cmd {
                Command::Start { .. } => store.record_start(now, cmd).map_err(store_err)?,
                Command::Resize { .. } => store.record_resize(now, cmd).map_err(store_err)?,
                Command::Cancel {
                    job,
                    running: false,
                } => store
                    .record_end(&Completion {
                        job,
                        at: now,
                        state: FinalState::Cancelled,
                        preempted: None,
                    })
                    .map_err(store_err)?,
                // A running job's end is reported by the executor.
                Command::Cancel { .. } | Command::Preempt { .. } => {}
            }
        }
        observer.after_step(now, engine, &commands);
    }
}
