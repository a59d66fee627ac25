//! The job runner (`mini-slurm job-runner --job ID`): the supervisor the daemon starts for each
//! job, as Slurm's slurmstepd.
//!
//! It makes itself a child subreaper and creates the job's cgroups ([`super::contain`]), pins
//! itself to the job's CPUs so that the job inherits them (a failure, or a mask the kernel
//! narrowed, is recorded in the job's row and counted by `stats`), and starts the job in its
//! own process group (its own session is the runner's) with the job's environment, working
//! directory and log files, born in its cgroup v2 (`spawn.rs`) or joining a v1 cgroup between
//! fork and exec.
//!
//! A runner started as root (a shared scheduler's) starts a job as its owner: between fork
//! and exec the job's process takes the owner's supplementary groups (those `initgroups`
//! would give: `getgrouplist` of the owner's name and the job's gid, looked up before the
//! fork, since nothing may be looked up or allocated after it), its gid and uid, then enters
//! the job's working directory and opens the job's output files (`output.rs`) with the
//! owner's permissions, mode 0600. A job recorded as root's stays root's (only root can
//! submit one to a shared scheduler). A memory limit is a
//! cgroup of the job's own where the machine lets us create one — a kernel OOM kill there is
//! reported OUT_OF_MEMORY; elsewhere the runner sums the PSS of all the job's processes every
//! 100 ms and kills the job past the limit (also OUT_OF_MEMORY). No address-space limit is set
//! unless the scheduler was started with `--rlimit-as`.
//!
//! While the job runs, the runner (one thread, waiting on a pidfd of the job) keeps its limits
//! on the monotonic clock, so they hold while the daemon is down: at the time limit SIGTERM to
//! every process of the job and SIGKILL after the grace (`--kill-wait`), recorded as TIMEOUT;
//! SIGTERM, SIGINT or SIGHUP to the runner (a cancellation, a preemption) starts the same
//! sequence. When the job's main process ends the runner kills and reaps whatever is left of
//! the job (no process outlives its job), removes its cgroups, and records the exit status and
//! resource usage. Its records (the claim, cgroups, process group, result) go through the
//! daemon that launched it, or into the database where no daemon answers (`record.rs`).

use super::contain::{JobContainer, Join};
use super::store::{JobRow, RunnerResult};
use super::syntax::{cpu_list, parse_cpu_list};
use super::{Home, LiveError, machine, now_ms};

mod record;
mod start;

pub use record::answer;
use record::{Claim, Recorder};

use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::signal::{self, SigHandler, Signal, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, setsid};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// The job's process group, for the signal handler (0 until the job is started).
static JOB_PGID: AtomicI32 = AtomicI32::new(0);
/// A termination request (SIGTERM, SIGINT or SIGHUP to the runner), acted on by [`supervise`].
static TERM_REQUESTED: AtomicBool = AtomicBool::new(false);

/// The grace between SIGTERM and SIGKILL when the job's row has none (the scheduler's default).
const DEFAULT_KILL_WAIT_MS: i64 = 5000;
/// How often [`supervise`] polls memory and termination requests (at the longest).
const TICK: Duration = Duration::from_millis(100);

extern "C" fn forward(_sig: i32) {
    TERM_REQUESTED.store(true, Ordering::SeqCst);
    let pgid = JOB_PGID.load(Ordering::SeqCst);
    if pgid > 0 {
        // kill(2) is async-signal-safe; `supervise` signals the job's other processes.
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
    }
}

/// Runs job `id` to its end and records the result. Returns the runner's exit status.
/// `launch`: the launch to claim, with the job's memory (MB) where the daemon sent it.
pub fn run(home: &Home, id: i64, launch: Option<(i64, Option<u64>)>) -> Result<i32, LiveError> {
    // Our own session: the daemon's terminal or death does not reach us.
    let _ = setsid();
    // A launched runner records through its daemon; `job-runner --job ID` alone, directly.
    let rec = Recorder::new(home, launch.is_some());
    // Subreaper and cgroups (recorded before the job starts, for the daemon if we die): made
    // first where the job's memory is known, and recorded with the claim.
    let mem_hint = launch.and_then(|(_, mem)| mem);
    let early = mem_hint.map(|mem| JobContainer::create(id, mem << 20));
    let early_dirs = early.as_ref().map(dirs_of);
    let claimed = claim(&rec, home, id, launch.map(|l| l.0), early_dirs.as_deref());
    let (container, job) = match (early, claimed) {
        (Some(c), Ok(Some(job))) if mem_hint == Some(job.mem_mb) => (c, job),
        (early, Ok(Some(job))) => {
            if let Some(c) = early {
                c.remove();
            }
            let c = JobContainer::create(id, job.mem_mb << 20);
            rec.cgroups(id, &dirs_of(&c)).map_err(LiveError::Other)?;
            (c, job)
        }
        (early, other) => {
            if let Some(c) = early {
                c.remove();
            }
            other?;
            return Ok(0);
        }
    };
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: the handler only reads and writes atomics and calls kill(2).
        unsafe {
            let _ = signal::signal(sig, SigHandler::Handler(forward));
        }
    }
    let joins = container.joins();
    if let Err(e) = pin_self(&parse_cpu_list(&job.cpu_list)) {
        pin_failed(&rec, id, &e);
    }
    let procs = open_joins(&joins)?;
    let rlimit = job.rlimit_as && !container.has_memory_cgroup();
    let spawned = start::Setup::of(home, &job).and_then(|setup| {
        let what = setup.describe(&job);
        start::start(home, &job, &procs, rlimit, setup)
            .map_err(|e| format!("cannot run {:?} ({what}): {e}", job.argv))
    });
    let pid = match spawned {
        Ok(pid) => pid,
        Err(e) => {
            // The daemon's log tells the admin; the job's error log its owner, where it is
            // the home's (a shared scheduler's jobs write their own files).
            live_log!("mini-slurm: job {id}: {e}");
            if job.stdout.is_none() && job.stderr.is_none() {
                let _ = std::fs::write(home.err_log(id), format!("mini-slurm: job {id}: {e}\n"));
            }
            container.remove();
            // The reason first: the daemon keeps it when it sees the result.
            until_recorded(id, "why it did not start", || rec.launch_failed(id, &e));
            record(&rec, id, Some(127), None, None, false)?;
            return Ok(0);
        }
    };
    let started = Instant::now();
    JOB_PGID.store(pid.as_raw(), Ordering::SeqCst);
    if TERM_REQUESTED.load(Ordering::SeqCst) {
        let _ = killpg(pid, Signal::SIGTERM);
    }
    // The group is recorded, then the CPU list read again: an elastic job resized since this
    // runner read its row is pinned here (the daemon pins it itself once it sees the group).
    let now_cpus = until_recorded(id, "its process group", || rec.group(id, pid.as_raw()));
    if now_cpus != job.cpu_list
        && let Err(e) = machine::set_group_affinity(pid.as_raw(), &parse_cpu_list(&now_cpus))
    {
        pin_failed(&rec, id, &e);
    }
    drop(procs);
    let limits = Limits {
        deadline: job
            .time_limit_ms
            .map(|l| started + Duration::from_millis(l.max(0) as u64)),
        grace: Duration::from_millis(job.kill_wait_ms.unwrap_or(DEFAULT_KILL_WAIT_MS).max(0) as u64),
        mem_kb: (job.mem_mb > 0 && !container.has_memory_cgroup()).then_some(job.mem_mb * 1024),
    };
    let flags = Flags::default();
    let status = supervise(&container, pid, &limits, &flags)
        .map_err(|e| LiveError::Other(format!("waiting for job {id}: {e}")))?;
    // Nothing of the job outlives it.
    container.kill_all(pid.as_raw());
    let oom = flags.oom.load(Ordering::SeqCst) || container.oom_killed();
    container.remove();
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).ok();
    let (code, sig) = match status {
        WaitStatus::Exited(_, c) => (Some(c), None),
        WaitStatus::Signaled(_, s, _) => (Some(0), Some(s as i32)),
        _ => (Some(0), None),
    };
    let usage = usage.map(|u| {
        let ms = |t: nix::sys::time::TimeVal| t.tv_sec() * 1000 + t.tv_usec() / 1000;
        (ms(u.user_time()), ms(u.system_time()), u.max_rss())
    });
    if flags.timed_out.load(Ordering::SeqCst) {
        rec.timed_out(id).map_err(LiveError::Other)?;
    }
    record(&rec, id, code, sig, usage, oom)?;
    Ok(0)
}

/// Claims the launch (a runner of a launch the daemon has given up on — it died before this
/// claim, and a restart queued the job again — runs nothing) and reads the job with its
/// environment; `None`: nothing to run (not current, or a row that does not decode, which
/// fails the job with why).
fn claim(
    rec: &Recorder,
    home: &Home,
    id: i64,
    launch: Option<i64>,
    cgroups: Option<&[String]>,
) -> Result<Option<JobRow>, LiveError> {
    let read = match launch {
        Some(launch) => {
            let me = std::process::id() as i32;
            let start = machine::process_start(me);
            let claim = || rec.claim(id, launch, (me, start), cgroups);
            match until_recorded(id, "its launch", claim) {
                Claim::NotCurrent => {
                    live_log!(
                        "mini-slurm: job {id}: launch {launch} is not current; not running it"
                    );
                    return Ok(None);
                }
                Claim::Job(job) => Ok(Some(*job)),
                Claim::Damaged(e) => Err(e),
            }
        }
        None => rec.db()?.job_with_env(id).map_err(|e| e.to_string()),
    };
    match read {
        Ok(Some(job)) => Ok(Some(job)),
        Ok(None) => Err(LiveError::Other(format!("job {id} does not exist"))),
        Err(e) => {
            // A row this runner cannot read (a damaged environment): the job fails with why.
            let msg = format!("mini-slurm: job {id}: cannot read the job: {e}\n");
            let _ = std::fs::write(home.err_log(id), msg);
            record(rec, id, Some(127), None, None, false)?;
            Ok(None)
        }
    }
}

/// The cgroups a container made, as recorded.
fn dirs_of(c: &JobContainer) -> Vec<String> {
    c.joins()
        .iter()
        .map(|j| j.dir.display().to_string())
        .collect()
}

/// The limits [`supervise`] keeps.
struct Limits {
    /// When the time limit expires (monotonic).
    deadline: Option<Instant>,
    /// Between SIGTERM and SIGKILL.
    grace: Duration,
    /// The memory limit, where no cgroup enforces it (PSS, kB).
    mem_kb: Option<u64>,
}

/// What [`supervise`] found.
#[derive(Default)]
struct Flags {
    oom: AtomicBool,
    timed_out: AtomicBool,
}

/// Waits for the job's main process to end while keeping its limits: the time limit and
/// termination requests (SIGTERM to every process of the job, SIGKILL after the grace) and,
/// where no cgroup does, the memory limit (SIGKILL past it). The runner's one thread waits on
/// a pidfd of the job (a signal to the runner interrupts the wait), at most [`TICK`] at a time.
fn supervise(
    c: &JobContainer,
    pid: Pid,
    lim: &Limits,
    flags: &Flags,
) -> Result<WaitStatus, nix::errno::Errno> {
    let pgid = pid.as_raw();
    let pidfd = pidfd_open(pid);
    let mut kill_at: Option<Instant> = None;
    let mut stopping = false;
    let mut killed = false;
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::EINTR) => {}
            Ok(s) => return Ok(s),
            Err(e) => return Err(e),
        }
        let now = Instant::now();
        if !stopping {
            let timeout = lim.deadline.is_some_and(|d| now >= d);
            if timeout || TERM_REQUESTED.load(Ordering::SeqCst) {
                flags.timed_out.store(timeout, Ordering::SeqCst);
                stopping = true;
                c.signal(pgid, Signal::SIGTERM);
                kill_at = Some(now + lim.grace);
            }
        }
        if !killed && kill_at.is_some_and(|k| now >= k) {
            killed = true;
            c.signal(pgid, Signal::SIGKILL);
        }
        if !killed && lim.mem_kb.is_some_and(|l| c.pss_kb() > l) {
            killed = true;
            flags.oom.store(true, Ordering::SeqCst);
            c.signal(pgid, Signal::SIGKILL);
        }
        let next = [
            lim.deadline.filter(|_| !stopping),
            kill_at.filter(|_| !killed),
        ]
        .into_iter()
        .flatten()
        .map(|t| t.saturating_duration_since(now))
        .fold(TICK, Duration::min);
        match &pidfd {
            // Readable once the process has ended; a signal ends the wait early (EINTR).
            Some(fd) => {
                let ms = u16::try_from(next.as_millis().max(1)).unwrap_or(u16::MAX);
                let _ = poll(
                    &mut [PollFd::new(fd.as_fd(), PollFlags::POLLIN)],
                    PollTimeout::from(ms),
                );
            }
            // A kernel without pidfds (before 5.3): look again shortly.
            None => std::thread::sleep(next.min(Duration::from_millis(10))),
        }
    }
}

/// A pidfd of the runner's child `pid` (`None` where the kernel has none).
fn pidfd_open(pid: Pid) -> Option<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    // SAFETY: a descriptor the kernel just returned, owned by nothing else.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Pins the runner (and so the job it starts) to `cpus`, and checks that the kernel kept them
/// all (it narrows a mask to the CPUs of the runner's cpuset without an error).
fn pin_self(cpus: &[usize]) -> Result<(), String> {
    if cpus.is_empty() {
        return Ok(());
    }
    let me = Pid::from_raw(0);
    sched_setaffinity(me, &machine::cpu_set(cpus))
        .map_err(|e| format!("cannot pin to CPUs {}: {e}", cpu_list(cpus)))?;
    let got = sched_getaffinity(me).map_err(|e| format!("sched_getaffinity: {e}"))?;
    let got: Vec<usize> = (0..CpuSet::count())
        .filter(|&i| got.is_set(i).unwrap_or(false))
        .collect();
    let mut want = cpus.to_vec();
    want.sort_unstable();
    want.dedup();
    if got != want {
        return Err(format!(
            "asked for CPUs {}, the kernel allows {}",
            cpu_list(&want),
            cpu_list(&got)
        ));
    }
    Ok(())
}

/// Records (and logs to the daemon's log) that the job could not be pinned to its CPUs.
fn pin_failed(rec: &Recorder, id: i64, error: &str) {
    live_log!("mini-slurm: job {id}: {error}");
    let _ = rec.pin_error(id, error);
}

/// The cgroups the job joins, opened: each one's `cgroup.procs` and, for a cgroup v2, the
/// directory the job can be born in ([`spawn`](super::spawn)); a tracking cgroup that cannot
/// be opened is left out (the subreaper still contains the job).
fn open_joins(joins: &[Join]) -> Result<Vec<start::Joining>, LiveError> {
    let mut out = Vec::with_capacity(joins.len());
    for j in joins {
        let path = j.dir.join("cgroup.procs");
        match std::fs::OpenOptions::new().write(true).open(&path) {
            Ok(procs) => out.push(start::Joining {
                procs,
                required: j.required,
                v2_dir: start::cgroup2_dir(&j.dir),
            }),
            Err(e) if j.required => return Err(LiveError::io(&path, e)),
            Err(_) => {}
        }
    }
    Ok(out)
}

/// Records how the job ended, with the time now, and wakes the daemon (the daemon took the
/// record itself when it went through it).
fn record(
    rec: &Recorder,
    id: i64,
    exit_code: Option<i32>,
    signal: Option<i32>,
    usage: Option<(i64, i64, i64)>,
    oom: bool,
) -> Result<(), LiveError> {
    let result = RunnerResult {
        exit_code,
        signal,
        end_ms: now_ms(),
        usage,
        oom,
    };
    until_recorded(id, "its result", || rec.result(id, &result));
    if !rec.through_daemon() {
        rec.home().notify();
    }
    Ok(())
}

/// Retries a write the database refuses (locked past its timeout, disk full, an I/O error)
/// until it lands, with back-off up to 5 s: the runner outlives the fault rather than lose what
/// only it knows; the daemon sees the job running until then.
fn until_recorded<T, E: std::fmt::Display>(
    id: i64,
    what: &str,
    mut write: impl FnMut() -> Result<T, E>,
) -> T {
    let mut wait = Duration::from_millis(50);
    let mut told = false;
    loop {
        match write() {
            Ok(v) => {
                if told {
                    live_log!("mini-slurm: job {id}: {what} recorded");
                }
                return v;
            }
            Err(e) => {
                if !told {
                    live_log!("mini-slurm: job {id}: cannot record {what} yet: {e} (retrying)");
                    told = true;
                }
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}
