//! Launching a job: the launch is recorded (CONFIGURING, with the launch number its runner
//! must claim) before the runner is forked, and a start that cannot be carried out now — the
//! database refuses the record (locked, disk full), or the fork fails (EAGAIN) — is retried
//! with back-off instead of stopping the daemon. The job holds its CPUs meanwhile, as the
//! engine believes; a cancellation or preemption of it just ends it.

use super::{Ledger, Proc, ProcessExecutor, write_alloc_file};
use crate::ids::JobId;
use crate::live::failpoint;
use crate::live::machine::process_start;
use crate::live::spawner::Spawner;
use crate::live::store::{Allocated, Launch};
use crate::live::syntax::cpu_list;
use crate::model::Slice;
use crate::time::{Dur, Time};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use std::os::unix::fs::OpenOptionsExt;
use std::process::Stdio;
use std::sync::Arc;

/// A start not carried out yet.
pub(super) struct Retry {
    /// The CPU slots and GPU names it holds.
    pub(super) slots: Vec<usize>,
    gpus: Vec<String>,
    limit: Option<Dur>,
    /// The engine's start time.
    started: Time,
    /// When to try again, and the back-off after that.
    pub(super) at: Time,
    wait: Dur,
}

/// The longest wait between two tries of a launch.
const MAX_WAIT: Dur = Dur(5_000);

impl<L: Ledger> ProcessExecutor<L> {
    /// A `Start`: takes the job's CPU slots and GPU names and launches it, now or later.
    pub(super) fn start(&mut self, now: Time, job: JobId, alloc: &[Slice], limit: Option<Dur>) {
        let cpus_n: u32 = alloc.iter().map(|s| s.cpus).sum();
        let slots = self.cpus.take(cpus_n as usize, &[]);
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
        let retry = Retry {
            slots,
            gpus,
            limit,
            started: now,
            at: now,
            wait: Dur(100),
        };
        self.try_launch(now, job, retry);
    }

    /// Tries the launches whose time has come.
    pub(super) fn retry_launches(&mut self, now: Time) {
        let due: Vec<JobId> = self
            .retries
            .iter()
            .filter(|(_, r)| r.at <= now)
            .map(|(j, _)| *j)
            .collect();
        for job in due {
            if let Some(r) = self.retries.remove(&job) {
                self.try_launch(now, job, r);
            }
        }
    }

    /// Records the launch, forks the runner, watches it; on failure keeps the start to retry.
    fn try_launch(&mut self, now: Time, job: JobId, mut r: Retry) {
        match self.launch(job, &r) {
            Ok(p) => {
                self.running.insert(job, p);
            }
            Err(e) => {
                if r.wait == Dur(100) {
                    live_log!("mini-slurm: job {job}: cannot start it yet: {e} (retrying)");
                }
                r.at = now + r.wait;
                r.wait = Dur((r.wait.0 * 2).min(MAX_WAIT.0));
                self.retries.insert(job, r);
            }
        }
    }

    /// One try: the launch recorded before the fork, the runner forked and watched.
    fn launch(&mut self, job: JobId, r: &Retry) -> Result<Proc, String> {
        let real = self.cpus.real_ids(&r.slots);
        let id = job.0 as i64;
        let Allocated {
            elastic,
            resize_signal,
            launch,
            mem_mb,
        } = self
            .ledger
            .launching(
                job,
                &Launch {
                    cpu_list: &cpu_list(&real),
                    gpu_list: &r.gpus.join(","),
                    cpus: real.len() as u32,
                    kill_wait_ms: self.kill_wait.0,
                    rlimit_as: self.rlimit_as,
                    at_ms: r.started.0,
                },
            )
            .map_err(|e| e.to_string())?;
        failpoint::hit("start:configured");
        if elastic {
            write_alloc_file(&self.home.alloc_file(id), job, &real, 0);
        }
        if failpoint::fault("fork") {
            return Err(
                "cannot start its runner: Resource temporarily unavailable (os error 11)".into(),
            );
        }
        let (pid, spawned) = match self.spawner() {
            Some(s) => (s.launch(id, launch, mem_mb)?, true),
            None => (self.exec_runner(job, launch, mem_mb)?, false),
        };
        failpoint::hit("start:forked");
        // The runner records its pid and start time when it claims the launch (a daemon that
        // dies before that queues the job again at its restart; the claim then fails).
        let start = process_start(pid);
        Ok(Proc {
            runner_pid: pid,
            runner_start: start,
            deadline: r
                .limit
                .map(|l| r.started + l + self.kill_wait + super::BACKSTOP_MARGIN),
            kill_at: None,
            reason: None,
            cpus: r.slots.clone(),
            adopted: false,
            spawned,
            preempt: None,
            elastic,
            resize_signal,
            generation: 0,
            managed: true,
        })
    }

    /// The runner spawner, started if there is none yet (or the last one went away); `None`
    /// where it is turned off or cannot be started (then runners are executed one by one).
    fn spawner(&mut self) -> Option<&mut Spawner> {
        if !self.use_spawner {
            return None;
        }
        if self.spawner.as_ref().is_none_or(|s| s.is_dead()) {
            let (finished, wake) = (Arc::clone(&self.finished), self.wake.clone());
            let ended = move |job: i64, pid: i32| {
                if let Ok(mut f) = finished.lock() {
                    f.push((JobId(job as u64), pid));
                }
                let _ = wake.send(());
            };
            match Spawner::start(&self.runner, &self.home, ended) {
                Ok(s) => self.spawner = Some(s),
                Err(e) => {
                    live_log!(
                        "mini-slurm: cannot start the runner spawner: {e} (starting runners one by one)"
                    );
                    self.use_spawner = false;
                    return None;
                }
            }
        }
        self.spawner.as_mut()
    }

    /// Executes `job-runner --job J --launch N --mem-mb M` and waits for it on a thread of its
    /// own.
    fn exec_runner(&self, job: JobId, launch: i64, mem_mb: u64) -> Result<i32, String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(self.home.daemon_log())
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null());
        let child = std::process::Command::new(&self.runner)
            .args(["job-runner", "--job", &job.0.to_string()])
            .args(["--launch", &launch.to_string()])
            .args(["--mem-mb", &mem_mb.to_string()])
            .env("MINI_SLURM_HOME", &self.home.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start its runner: {e}"))?;
        let pid = child.id() as i32;
        drop(child);
        let (finished, wake) = (Arc::clone(&self.finished), self.wake.clone());
        std::thread::spawn(move || {
            while let Err(nix::errno::Errno::EINTR) = waitpid(Pid::from_raw(pid), None) {}
            if let Ok(mut f) = finished.lock() {
                f.push((job, pid));
            }
            let _ = wake.send(());
        });
        Ok(pid)
    }
}
