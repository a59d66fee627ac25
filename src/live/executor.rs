//! The process executor: runs each job on this machine under a `mini-slurm job-runner`.
//!
//! On `Start` it picks the job's CPU ids (the lowest free ones) and GPU names, has them
//! recorded (the runner reads them), starts the runner and a reaper thread blocked in
//! `waitpid` that wakes the daemon when the runner exits. Time limits and cancellations are a
//! SIGTERM to the runner (forwarded to the job's group) and a SIGKILL to the group after the
//! grace period. A resize re-pins an elastic job's threads, rewrites its allocation file and
//! signals it. A job whose runner survived a daemon restart is adopted and polled.
//!
//! The executor keeps no database: what it needs written down or read back (the allocation,
//! the runner's pid, the job's process group, what the runner recorded at the end) goes
//! through its [`Ledger`], which the daemon implements over the store.

use super::clock::Waker;
use super::machine::{process_start, same_process_alive, set_group_affinity};
use super::store::{Allocated, Reason, ReasonCode};
use super::syntax::cpu_list;
use super::{Home, LiveError, now_ms};
use crate::driver::{Completion, Executor};
use crate::engine::Command;
use crate::ids::JobId;
use crate::model::{FinalState, Node, PreemptMode, Slice};
use crate::time::{Dur, Time};
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

/// What the executor needs recorded about the processes it runs, and read back.
pub trait Ledger {
    /// The CPU ids and GPU names `job` is about to start on, recorded before its runner starts
    /// (the runner reads them).
    fn allocated(
        &mut self,
        job: JobId,
        cpus: &[usize],
        gpus: &[String],
    ) -> Result<Allocated, LiveError>;
    /// The runner started for `job`: its pid and start time.
    fn runner_started(&mut self, job: JobId, pid: i32, start: Option<i64>)
    -> Result<(), LiveError>;
    /// A running job's new CPU ids; its process group if its runner has recorded it (the two
    /// in one step, so the runner, which records the group and then reads the CPU ids, never
    /// misses a resize).
    fn resized(&mut self, job: JobId, cpus: &[usize]) -> Result<Option<i32>, LiveError>;
    /// The job's process group, as its runner recorded it.
    fn process_group(&self, job: JobId) -> Option<i32>;
    /// What the job's runner recorded when the job ended (`None`: nothing can be read).
    fn runner_report(&self, job: JobId) -> Option<RunnerReport>;
}

/// What a runner recorded about its job's end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunnerReport {
    /// The runner recorded a result at all.
    pub done: bool,
    pub oom: bool,
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
    if report.oom {
        return (FinalState::OutOfMemory, none());
    }
    if report.signal.unwrap_or(0) != 0 || report.exit_code.unwrap_or(0) != 0 {
        let code = ReasonCode::NonZeroExitCode;
        return (FinalState::Failed, Reason { code, detail: None });
    }
    (FinalState::Completed, none())
}

struct Proc {
    runner_pid: i32,
    runner_start: Option<i64>,
    /// When the time limit expires.
    deadline: Option<Time>,
    /// When to SIGKILL the job's group after SIGTERM.
    kill_at: Option<Time>,
    /// Why the daemon is stopping it (TIMEOUT, CANCELLED).
    reason: Option<FinalState>,
    cpus: Vec<usize>,
    /// Not our child (re-adopted after a restart): polled instead of waited for.
    adopted: bool,
    /// Preempted by the policy, and how.
    preempt: Option<PreemptMode>,
    /// An elastic job: its allocation file is kept current; the signal it asked for on resizes.
    elastic: bool,
    resize_signal: Option<i32>,
    /// Resizes so far (the allocation file's `generation`).
    generation: u32,
}

/// A job whose runner survived a daemon restart, as recorded.
#[derive(Clone, Debug)]
pub struct Adopted {
    pub job: JobId,
    pub runner_pid: i32,
    pub runner_start: Option<i64>,
    pub cpus: Vec<usize>,
    /// When its time limit expires.
    pub deadline: Option<Time>,
    pub elastic: bool,
    pub resize_signal: Option<i32>,
    /// Resizes so far.
    pub generation: u32,
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
    cpu_free: Vec<bool>,
    gpu_names: Vec<String>,
    finished: Arc<Mutex<Vec<JobId>>>,
    wake: Waker,
    kill_wait: Dur,
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
            cpu_free: vec![true; node.cpus as usize],
            gpu_names,
            finished: Arc::new(Mutex::new(Vec::new())),
            wake,
            kill_wait,
        }
    }

    fn take_cpus(&mut self, n: u32) -> Vec<usize> {
        let mut got = Vec::with_capacity(n as usize);
        for (i, f) in self.cpu_free.iter_mut().enumerate() {
            if got.len() == n as usize {
                break;
            }
            if *f {
                *f = false;
                got.push(i);
            }
        }
        got
    }

    /// The GPU mask of a recorded GPU list (names as this executor hands them out).
    pub fn gpu_mask(&self, gpu_list: &str) -> u64 {
        gpu_list
            .split(',')
            .filter_map(|g| self.gpu_names.iter().position(|n| n == g))
            .fold(0u64, |m, b| m | (1 << b))
    }

    fn spawn(
        &mut self,
        now: Time,
        job: JobId,
        alloc: &[Slice],
        limit: Option<Dur>,
    ) -> Result<(), ExecError> {
        let cpus_n: u32 = alloc.iter().map(|s| s.cpus).sum();
        let cpus = self.take_cpus(cpus_n);
        let gpus: Vec<String> = alloc
            .iter()
            .flat_map(|s| (0..64).filter(move |b| s.gpu_mask & (1u64 << b) != 0))
            .map(|b| {
                self.gpu_names
                    .get(b as usize)
                    .cloned()
                    .unwrap_or_else(|| b.to_string())
            })
            .collect();
        let id = job.0 as i64;
        let Allocated {
            elastic,
            resize_signal,
        } = self.ledger.allocated(job, &cpus, &gpus)?;
        if elastic {
            write_alloc_file(&self.home.alloc_file(id), job, &cpus, 0);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.home.daemon_log())
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null());
        let child = std::process::Command::new(&self.runner)
            .args(["job-runner", "--job", &id.to_string()])
            .env("MINI_SLURM_HOME", &self.home.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|source| ExecError::Spawn { job, source })?;
        let pid = child.id() as i32;
        drop(child);
        let start = process_start(pid);
        self.ledger.runner_started(job, pid, start)?;
        let (finished, wake) = (Arc::clone(&self.finished), self.wake.clone());
        std::thread::spawn(move || {
            while let Err(nix::errno::Errno::EINTR) = waitpid(Pid::from_raw(pid), None) {}
            if let Ok(mut f) = finished.lock() {
                f.push(job);
            }
            let _ = wake.send(());
        });
        self.running.insert(
            job,
            Proc {
                runner_pid: pid,
                runner_start: start,
                deadline: limit.map(|l| now + l),
                kill_at: None,
                reason: None,
                cpus,
                adopted: false,
                preempt: None,
                elastic,
                resize_signal,
                generation: 0,
            },
        );
        Ok(())
    }

    /// Resizes a running elastic job to `n` CPUs: a shrink gives back its highest CPU ids, a
    /// growth takes the lowest free ones. The ledger learns the new CPU list first, then
    /// every thread of the job is pinned to it, the allocation file is rewritten and the
    /// job's signal (if it asked for one) is sent to its main process.
    fn resize(&mut self, job: JobId, n: u32) -> Result<(), ExecError> {
        let Some(have) = self.running.get(&job).map(|p| p.cpus.len()) else {
            return Ok(());
        };
        let n = n as usize;
        let more = if n > have {
            self.take_cpus((n - have) as u32)
        } else {
            Vec::new()
        };
        let Some(p) = self.running.get_mut(&job) else {
            return Ok(());
        };
        for c in p.cpus.drain(n.min(have)..) {
            if let Some(f) = self.cpu_free.get_mut(c) {
                *f = true;
            }
        }
        p.cpus.extend(more);
        p.cpus.sort_unstable();
        p.generation += 1;
        let pgid = self.ledger.resized(job, &p.cpus)?;
        // Before the runner recorded the group, the runner applies the new list itself. A job
        // being stopped (time limit, cancellation) keeps its bookkeeping but is not disturbed.
        let pgid = pgid.filter(|&g| g > 0 && p.reason.is_none());
        if let Some(g) = pgid {
            set_group_affinity(g, &p.cpus);
        }
        if p.elastic {
            write_alloc_file(
                &self.home.alloc_file(job.0 as i64),
                job,
                &p.cpus,
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

    /// Takes over a job whose runner survived a daemon restart.
    pub fn adopt(&mut self, a: Adopted) {
        for &c in &a.cpus {
            if let Some(f) = self.cpu_free.get_mut(c) {
                *f = false;
            }
        }
        self.running.insert(
            a.job,
            Proc {
                runner_pid: a.runner_pid,
                runner_start: a.runner_start,
                deadline: a.deadline,
                kill_at: None,
                reason: None,
                cpus: a.cpus,
                adopted: true,
                preempt: None,
                elastic: a.elastic,
                resize_signal: a.resize_signal,
                generation: a.generation,
            },
        );
    }

    /// SIGTERM to the runner (forwarded to the job's group), SIGKILL to the group later.
    fn stop(&mut self, now: Time, job: JobId, reason: FinalState) {
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
            } => self.spawn(now, *job, alloc, *time_limit),
            Command::Cancel { job, running: true } => {
                self.stop(now, *job, FinalState::Cancelled);
                Ok(())
            }
            Command::Cancel { .. } => Ok(()),
            Command::Resize { job, cpus, .. } => self.resize(*job, *cpus),
            Command::Preempt { job, mode, .. } => {
                if let Some(p) = self.running.get_mut(job) {
                    p.preempt = Some(*mode);
                }
                self.stop(now, *job, FinalState::Preempted);
                Ok(())
            }
        }
    }

    fn take_completions(&mut self, now: Time, out: &mut Vec<Completion>) {
        // Time limits, and SIGKILL after the grace period.
        let due: Vec<JobId> = self
            .running
            .iter()
            .filter(|(_, p)| p.reason.is_none() && p.deadline.is_some_and(|d| d <= now))
            .map(|(j, _)| *j)
            .collect();
        for j in due {
            self.stop(now, j, FinalState::Timeout);
        }
        for (job, p) in self.running.iter_mut() {
            if p.kill_at.is_some_and(|k| k <= now) {
                p.kill_at = None;
                if let Some(pg) = self.ledger.process_group(*job).filter(|&g| g > 0) {
                    let _ = killpg(Pid::from_raw(pg), Signal::SIGKILL);
                }
            }
        }
        let mut ended: Vec<JobId> = match self.finished.lock() {
            Ok(mut f) => std::mem::take(&mut *f),
            Err(_) => Vec::new(),
        };
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
            for c in &p.cpus {
                if let Some(f) = self.cpu_free.get_mut(*c) {
                    *f = true;
                }
            }
            let state = match self.ledger.runner_report(job) {
                Some(report) => outcome(&report, p.reason).0,
                None => FinalState::Failed,
            };
            out.push(Completion {
                job,
                at: now,
                state,
                preempted: p.preempt,
            });
        }
    }

    fn next_completion(&self) -> Option<Time> {
        let now = Time(now_ms());
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
    }
}
