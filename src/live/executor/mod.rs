//! The process executor: runs each job on this machine under a `mini-slurm job-runner`.
//!
//! On `Start` it picks the job's CPUs and GPU names, has them recorded with how the runner is
//! to supervise the job (the runner reads them), starts the runner and a reaper thread blocked
//! in `waitpid` that wakes the daemon when the runner exits. A resize re-pins an elastic job's
//! threads, rewrites its allocation file and signals it. A job whose runner survived a daemon
//! restart is adopted and polled.
//!
//! CPUs: the executor hands out CPU slots, each on a real CPU id of the daemon's own affinity
//! mask ([`CpuSlots`]); what is recorded (and shown) is the real ids.
//!
//! Limits: the runner enforces the time limit itself (so it holds while the daemon is down);
//! the executor's deadline is a backstop at limit + grace + [`BACKSTOP_MARGIN`] on the
//! daemon's monotonic time base. A backstop, a cancellation or a preemption is a SIGTERM to the
//! runner (which signals every process of the job) and a SIGKILL to the job's group after the
//! grace period. A runner that ended without recording a result (killed, crashed) may have left
//! the job running: before its CPUs are given to another job, what is left of the job is
//! killed ([`contain::kill_remains`]: its cgroups, its process group, its environment marker).
//!
//! The executor keeps no database: what it needs written down or read back (the allocation,
//! the runner's pid, the job's process group, what the runner recorded at the end) goes
//! through its [`Ledger`], which the daemon implements over the store.

use super::clock::{TimeBase, Waker};
use super::contain;
use super::failpoint;
use super::machine::{same_process_alive, set_group_affinity};
use super::slots::CpuSlots;
use super::store::{Allocated, Launch, Reason, ReasonCode};
use super::syntax::cpu_list;
use super::{Home, LiveError};
use crate::driver::{Completion, Executor};
use crate::engine::Command;
use crate::ids::JobId;
use crate::model::{FinalState, Node, PreemptMode};
use crate::time::{Dur, Time};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

mod launch;

/// What the executor needs recorded about the processes it runs, and read back.
pub trait Ledger {
    /// `job` is about to be launched (CONFIGURING), recorded before its runner is forked: its
    /// CPU ids, GPU names and supervision, which the runner reads, and the launch number the
    /// runner must claim.
    fn launching(&mut self, job: JobId, launch: &Launch<'_>) -> Result<Allocated, LiveError>;
    /// A running job's new CPU ids; its process group if its runner has recorded it (the two
    /// in one step, so the runner, which records the group and then reads the CPU ids, never
    /// misses a resize).
    fn resized(&mut self, job: JobId, cpus: &[usize]) -> Result<Option<i32>, LiveError>;
    /// The job's process group, as its runner recorded it.
    fn process_group(&self, job: JobId) -> Option<i32>;
    /// What the job's runner recorded when the job ended (`None`: nothing can be read).
    fn runner_report(&self, job: JobId) -> Option<RunnerReport>;
    /// A preemption of `job` begins (recorded before it is stopped, so that a restart
    /// finishes it).
    fn preempting(&mut self, job: JobId, mode: PreemptMode) -> Result<(), LiveError>;
    /// A job the engine does not hold (adopted beyond this daemon's CPUs after a restart)
    /// ended: its end is recorded here, since no completion goes to the engine.
    fn unmanaged_ended(&mut self, job: JobId, state: FinalState, reason: &Reason);
    /// Whether a client asked to cancel `job` (read for jobs the engine does not hold, whose
    /// cancellations the engine cannot relay).
    fn cancel_requested(&self, job: JobId) -> bool;
    /// The cgroups `job`'s runner made for it, as the runner recorded them.
    fn job_cgroups(&self, job: JobId) -> Vec<PathBuf>;
    /// `job`'s processes could not be pinned to their CPUs (recorded for `stats`; best effort).
    fn pin_failed(&mut self, job: JobId, error: &str);
}

/// How long after a job's time limit and grace the executor stops a job whose runner has not
/// (the runner enforces the limit itself; this is the backstop).
pub const BACKSTOP_MARGIN: Dur = Dur(2000);

/// What a runner recorded about its job's end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunnerReport {
    /// The runner recorded a result at all.
    pub done: bool,
    pub oom: bool,
    /// The runner stopped the job at its time limit.
    pub timeout: bool,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
}

/// The final state of a job whose runner has ended, from what the runner recorded and why the
/// daemon was stopping it (`stop`), and the reason to record with it.
pub fn outcome(report: &RunnerReport, stop: Option<FinalState>) -> (FinalState, Reason) {
    let none = || Reason::NONE;
    if !report.done {
        return (FinalState::Failed, Reason::runner_lost());
    }
    if let Some(r) = stop {
        return (r, none());
    }
    if report.timeout {
        return (FinalState::Timeout, none());
    }
    if report.oom {
        return (FinalState::OutOfMemory, none());
    }
    if report.signal.unwrap_or(0) != 0 || report.exit_code.unwrap_or(0) != 0 {
        let code = ReasonCode::NonZeroExitCode;
        return (FinalState::Failed, Reason { code, detail: None });
    }
    (FinalState::Completed, none())
}

/// The completion of a job whose end was learnt (a failpoint of the crash tests comes first).
pub fn reaped(
    job: JobId,
    at: Time,
    state: FinalState,
    preempted: Option<PreemptMode>,
) -> Completion {
    failpoint::hit(if preempted.is_some() {
        "requeue:reaped"
    } else {
        "end:reaped"
    });
    Completion {
        job,
        at,
        state,
        preempted,
    }
}

struct Proc {
    runner_pid: i32,
    runner_start: Option<i64>,
    /// When the backstop of the time limit expires (limit + grace + margin).
    deadline: Option<Time>,
    /// When to SIGKILL the job's group after SIGTERM.
    kill_at: Option<Time>,
    /// Why the daemon is stopping it (TIMEOUT, CANCELLED).
    reason: Option<FinalState>,
    /// The CPU slots it holds (see the module header).
    cpus: Vec<usize>,
    /// Not our child (re-adopted after a restart): polled instead of waited for.
    adopted: bool,
    /// Forked by the runner spawner, which reports its end (polled if the spawner goes away).
    spawned: bool,
    /// Preempted by the policy, and how.
    preempt: Option<PreemptMode>,
    /// An elastic job: its allocation file is kept current; the signal it asked for on resizes.
    elastic: bool,
    resize_signal: Option<i32>,
    /// Resizes so far (the allocation file's `generation`).
    generation: u32,
    /// Held by the engine (false: adopted after a restart beyond this daemon's CPUs; it runs
    /// on, over-committing the machine, and its end is recorded without the engine).
    managed: bool,
}

/// A job whose runner survived a daemon restart, as recorded.
#[derive(Clone, Debug)]
pub struct Adopted {
    pub job: JobId,
    pub runner_pid: i32,
    pub runner_start: Option<i64>,
    /// The real CPU ids it runs on, as recorded.
    pub cpus: Vec<usize>,
    /// When its time limit expires (the executor adds the grace and its margin: the runner
    /// enforces the limit).
    pub deadline: Option<Time>,
    pub elastic: bool,
    pub resize_signal: Option<i32>,
    /// Resizes so far.
    pub generation: u32,
    /// Held by the engine (see `Proc`'s field of the same name).
    pub managed: bool,
}

/// Writes an elastic job's allocation file through a temporary name, so a job never reads a
/// half-written one.
fn write_alloc_file(path: &Path, job: JobId, cpus: &[usize], generation: u32) {
    let tmp = path.with_extension("alloc.tmp");
    let text = format!(
        "# mini-slurm: the CPUs job {job} holds now; rewritten on every resize\ncpus={}\ncpu_list={}\ngeneration={generation}\n",
        cpus.len(),
        cpu_list(cpus)
    );
    if std::fs::write(&tmp, text).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}

/// Runs each job under a `job-runner` and learns of its end from a reaper thread.
pub struct ProcessExecutor<L: Ledger> {
    home: Home,
    ledger: L,
    runner: PathBuf,
    running: BTreeMap<JobId, Proc>,
    cpus: CpuSlots,
    gpu_names: Vec<String>,
    /// Runners that ended, reported by their watcher: the job and the runner's pid (a report
    /// about an earlier runner of a job launched again is ignored).
    finished: Arc<Mutex<Vec<(JobId, i32)>>>,
    wake: Waker,
    kill_wait: Dur,
    time: TimeBase,
    rlimit_as: bool,
    /// Starts not carried out yet (see `launch.rs`), by job.
    retries: BTreeMap<JobId, launch::Retry>,
    /// Jobs stopped before their launch succeeded: their completions, due now.
    stopped_unlaunched: Vec<Completion>,
    /// The process that forks runners (`spawner.rs`), started at the first launch; `None`
    /// after it could not be started (runners are then executed one by one).
    spawner: Option<super::spawner::Spawner>,
    /// Whether to use a spawner at all (`MINI_SLURM_NO_SPAWNER=1`: no).
    use_spawner: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("job {job}: cannot start its runner: {source}")]
    Spawn {
        job: JobId,
        #[source]
        source: std::io::Error,
    },
    #[error("recording: {0}")]
    Ledger(#[from] LiveError),
}

impl<L: Ledger> ProcessExecutor<L> {
    /// An executor for `node` (this machine), whose GPUs are named `gpu_names` (job GPU `i`
    /// is `gpu_names[i]`); `runner` is the `mini-slurm` binary; `kill_wait` the grace between
    /// SIGTERM and SIGKILL.
    pub fn new(
        home: Home,
        ledger: L,
        runner: PathBuf,
        node: &Node,
        gpu_names: Vec<String>,
        wake: Waker,
        kill_wait: Dur,
    ) -> ProcessExecutor<L> {
        ProcessExecutor {
            home,
            ledger,
            runner,
            running: BTreeMap::new(),
            cpus: CpuSlots::new(node.cpus as usize),
            gpu_names,
            finished: Arc::new(Mutex::new(Vec::new())),
            wake,
            kill_wait,
            time: TimeBase::new(),
            rlimit_as: false,
            retries: BTreeMap::new(),
            stopped_unlaunched: Vec::new(),
            spawner: None,
            use_spawner: std::env::var_os("MINI_SLURM_NO_SPAWNER").is_none_or(|v| v != "1"),
        }
    }

    /// The real CPU ids the slots run on (the daemon's affinity mask, [`machine::cpu_ids`]);
    /// by default slot `i` is CPU `i`.
    ///
    /// [`machine::cpu_ids`]: super::machine::cpu_ids
    pub fn with_cpu_ids(mut self, ids: Vec<usize>) -> Self {
        self.cpus.set_ids(ids);
        self
    }

    /// The time base of deadlines: the daemon clock's (`WallClock::base`).
    pub fn with_time_base(mut self, time: TimeBase) -> Self {
        self.time = time;
        self
    }

    /// Runners cap their jobs' address space (`scheduler --rlimit-as`).
    pub fn with_rlimit_as(mut self, on: bool) -> Self {
        self.rlimit_as = on;
        self
    }

    /// The GPU mask of a recorded GPU list (names as this executor hands them out).
    pub fn gpu_mask(&self, gpu_list: &str) -> u64 {
        gpu_list
            .split(',')
            .filter_map(|g| self.gpu_names.iter().position(|n| n == g))
            .fold(0u64, |m, b| m | (1 << b))
    }

    /// Resizes a running elastic job to `n` CPUs: a shrink keeps its lowest slots on distinct
    /// real CPUs, a growth takes the lowest free ones on CPUs it does not run on yet
    /// ([`CpuSlots`]). The ledger learns the new CPU list first, then every thread of the job
    /// is pinned to it, the allocation file is rewritten and the job's signal (if it asked for
    /// one) is sent to its main process.
    fn resize(&mut self, job: JobId, n: u32) -> Result<(), ExecError> {
        let Some(p) = self.running.get_mut(&job) else {
            return Ok(());
        };
        let n = n as usize;
        if n > p.cpus.len() {
            let more = self.cpus.take(n - p.cpus.len(), &p.cpus);
            p.cpus.extend(more);
            p.cpus.sort_unstable();
        } else {
            self.cpus.shrink(&mut p.cpus, n);
        }
        p.generation += 1;
        let real_ids = self.cpus.real_ids(&p.cpus);
        let pgid = self.ledger.resized(job, &real_ids)?;
        // Before the runner recorded the group, the runner applies the new list itself. A job
        // being stopped (time limit, cancellation) keeps its bookkeeping but is not disturbed.
        let pgid = pgid.filter(|&g| g > 0 && p.reason.is_none());
        if let Some(g) = pgid
            && let Err(e) = set_group_affinity(g, &real_ids)
        {
            self.ledger.pin_failed(job, &e);
        }
        if p.elastic {
            write_alloc_file(
                &self.home.alloc_file(job.0 as i64),
                job,
                &real_ids,
                p.generation,
            );
        }
        if let (Some(sig), Some(g)) = (p.resize_signal, pgid)
            && let Ok(sig) = Signal::try_from(sig)
        {
            let _ = kill(Pid::from_raw(g), sig);
        }
        Ok(())
    }

    /// Takes over a job whose runner survived a daemon restart: each recorded real CPU id
    /// takes the lowest free slot that runs on it (none where all are taken, as when the
    /// daemon restarts with fewer CPUs).
    pub fn adopt(&mut self, a: Adopted) {
        // A job the engine does not hold takes no slot: the engine schedules the daemon's
        // CPUs as if it were not there (the machine is over-committed until it ends).
        let slots = if a.managed {
            self.cpus.adopt(&a.cpus)
        } else {
            Vec::new()
        };
        self.running.insert(
            a.job,
            Proc {
                runner_pid: a.runner_pid,
                runner_start: a.runner_start,
                deadline: a.deadline.map(|d| d + self.kill_wait + BACKSTOP_MARGIN),
                kill_at: None,
                reason: None,
                cpus: slots,
                adopted: true,
                spawned: false,
                preempt: None,
                elastic: a.elastic,
                resize_signal: a.resize_signal,
                generation: a.generation,
                managed: a.managed,
            },
        );
    }

    /// Kills what is left of `job` whose runner ended without recording a result (also at a
    /// restart that finds it so): its cgroups, its process group, its environment marker.
    pub fn kill_remains(&self, job: JobId) {
        let pgid = self.ledger.process_group(job);
        let cgroups = self.ledger.job_cgroups(job);
        let n = contain::kill_remains(&self.home.dir, job.0 as i64, pgid, &cgroups);
        if n > 0 {
            live_log!("mini-slurm: job {job}: its runner died; killed {n} processes left of it");
        }
    }

    /// SIGTERM to the runner (forwarded to the job's group), SIGKILL to the group later. A
    /// job whose launch is still being retried just ends (it never ran).
    fn stop(&mut self, now: Time, job: JobId, reason: FinalState, preempt: Option<PreemptMode>) {
        if let Some(r) = self.retries.remove(&job) {
            self.cpus.release(&r.slots);
            self.stopped_unlaunched.push(Completion {
                job,
                at: now,
                state: reason,
                preempted: preempt,
            });
            return;
        }
        let kill_wait = self.kill_wait;
        if let Some(p) = self.running.get_mut(&job) {
            if p.reason.is_none() {
                p.reason = Some(reason);
            }
            let _ = kill(Pid::from_raw(p.runner_pid), Signal::SIGTERM);
            p.kill_at = Some(now + kill_wait);
        }
    }
}

impl<L: Ledger> Executor for ProcessExecutor<L> {
    type Error = ExecError;

    fn apply(&mut self, now: Time, cmd: &Command) -> Result<(), ExecError> {
        match cmd {
            Command::Start {
                job,
                alloc,
                time_limit,
                ..
            } => {
                self.start(now, *job, alloc, *time_limit);
                Ok(())
            }
            Command::Cancel { job, running: true } => {
                self.stop(now, *job, FinalState::Cancelled, None);
                failpoint::hit("cancel:signalled");
                Ok(())
            }
            Command::Cancel { .. } => Ok(()),
            Command::Resize { job, cpus, .. } => self.resize(*job, *cpus),
            Command::Preempt { job, mode, .. } => {
                if let Some(p) = self.running.get_mut(job) {
                    p.preempt = Some(*mode);
                }
                // Recorded before the job is stopped: a restart finishes the preemption.
                if let Err(e) = self.ledger.preempting(*job, *mode) {
                    live_log!("mini-slurm: job {job}: cannot record its preemption: {e}");
                }
                failpoint::hit("requeue:marked");
                self.stop(now, *job, FinalState::Preempted, Some(*mode));
                Ok(())
            }
        }
    }

    fn take_completions(&mut self, now: Time, out: &mut Vec<Completion>) {
        out.append(&mut self.stopped_unlaunched);
        self.retry_launches(now);
        // Cancellations of jobs the engine does not hold come straight from the ledger.
        let unmanaged: Vec<JobId> = self
            .running
            .iter()
            .filter(|(_, p)| !p.managed && p.reason.is_none())
            .map(|(j, _)| *j)
            .collect();
        for j in unmanaged {
            if self.ledger.cancel_requested(j) {
                self.stop(now, j, FinalState::Cancelled, None);
            }
        }
        // Time limits, and SIGKILL after the grace period.
        let due: Vec<JobId> = self
            .running
            .iter()
            .filter(|(_, p)| p.reason.is_none() && p.deadline.is_some_and(|d| d <= now))
            .map(|(j, _)| *j)
            .collect();
        for j in due {
            self.stop(now, j, FinalState::Timeout, None);
        }
        for (job, p) in self.running.iter_mut() {
            if p.kill_at.is_some_and(|k| k <= now) {
                p.kill_at = None;
                if let Some(pg) = self.ledger.process_group(*job).filter(|&g| g > 0) {
                    let _ = killpg(Pid::from_raw(pg), Signal::SIGKILL);
                }
            }
        }
        let reported: Vec<(JobId, i32)> = match self.finished.lock() {
            Ok(mut f) => std::mem::take(&mut *f),
            Err(_) => Vec::new(),
        };
        let mut ended: Vec<JobId> = reported
            .into_iter()
            .filter(|(j, pid)| self.running.get(j).is_some_and(|p| p.runner_pid == *pid))
            .map(|(j, _)| j)
            .collect();
        if self.spawner.as_ref().is_some_and(|s| s.is_dead()) {
            // Its runners' ends will not be reported: they are polled from now on.
            for p in self.running.values_mut().filter(|p| p.spawned) {
                p.adopted = true;
            }
        }
        for (job, p) in &self.running {
            if p.adopted && !same_process_alive(p.runner_pid, p.runner_start) {
                ended.push(*job);
            }
        }
        ended.sort_unstable();
        ended.dedup();
        for job in ended {
            let Some(p) = self.running.remove(&job) else {
                continue;
            };
            let report = self.ledger.runner_report(job);
            // A runner that recorded no result may have died with the job still running: what
            // is left of it goes before its CPUs go to another job.
            if !report.is_some_and(|r| r.done) {
                self.kill_remains(job);
            }
            self.cpus.release(&p.cpus);
            let (state, reason) = match report {
                Some(report) => outcome(&report, p.reason),
                None => (FinalState::Failed, Reason::runner_lost()),
            };
            if !p.managed {
                self.ledger.unmanaged_ended(job, state, &reason);
                continue;
            }
            out.push(reaped(job, now, state, p.preempt));
        }
    }

    fn next_completion(&self) -> Option<Time> {
        let now = self.time.now();
        let retries = self.retries.values().map(|r| r.at);
        let stopped = (!self.stopped_unlaunched.is_empty()).then_some(now);
        self.running
            .values()
            .flat_map(|p| {
                [
                    p.deadline.filter(|_| p.reason.is_none()),
                    p.kill_at,
                    p.adopted.then_some(now + Dur(500)),
                ]
            })
            .flatten()
            .chain(retries)
            .chain(stopped)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes() {
        let done = RunnerReport {
            done: true,
            ..RunnerReport::default()
        };
        assert_eq!(outcome(&done, None), (FinalState::Completed, Reason::NONE));
        assert_eq!(
            outcome(&RunnerReport::default(), Some(FinalState::Timeout)),
            (FinalState::Failed, Reason::runner_lost())
        );
        assert_eq!(
            outcome(&done, Some(FinalState::Timeout)).0,
            FinalState::Timeout
        );
        let failed = RunnerReport {
            exit_code: Some(3),
            ..done
        };
        assert_eq!(outcome(&failed, None).1.to_string(), "NonZeroExitCode");
        let oom = RunnerReport {
            oom: true,
            ..failed
        };
        assert_eq!(outcome(&oom, None).0, FinalState::OutOfMemory);
        // The runner stopped it at its time limit (the daemon may have been down).
        let timed_out = RunnerReport {
            timeout: true,
            signal: Some(15),
            ..done
        };
        assert_eq!(outcome(&timed_out, None).0, FinalState::Timeout);
        assert_eq!(
            outcome(&timed_out, Some(FinalState::Cancelled)).0,
            FinalState::Cancelled
        );
    }
}
