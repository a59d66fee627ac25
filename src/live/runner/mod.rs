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
//! A monitor thread keeps the job's limits on the monotonic clock, so they hold while the
//! daemon is down: at the time limit SIGTERM to every process of the job and SIGKILL after the
//! grace (`--kill-wait`), recorded as TIMEOUT; SIGTERM, SIGINT or SIGHUP to the runner (a
//! cancellation, a preemption) starts the same sequence. When the job's main process ends the
//! runner kills and reaps whatever is left of the job (no process outlives its job), removes
//! its cgroups, records the exit status and resource usage in the database, and wakes the
//! daemon.

use super::contain::{JobContainer, Join};
use super::store::{Claimed, Db, JobRow, Reason, RunnerResult};
use super::syntax::{cpu_list, parse_cpu_list};
use super::{Home, LiveError, machine, now_ms};

mod start;

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::signal::{self, SigHandler, Signal, killpg};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{Pid, setsid};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// The job's process group, for the signal handler (0 until the job is started).
static JOB_PGID: AtomicI32 = AtomicI32::new(0);
/// A termination request (SIGTERM, SIGINT or SIGHUP to the runner), acted on by the monitor.
static TERM_REQUESTED: AtomicBool = AtomicBool::new(false);

/// The grace between SIGTERM and SIGKILL when the job's row has none (the scheduler's default).
const DEFAULT_KILL_WAIT_MS: i64 = 5000;
/// How often the monitor polls memory and termination requests.
const TICK: Duration = Duration::from_millis(100);

extern "C" fn forward(_sig: i32) {
    TERM_REQUESTED.store(true, Ordering::SeqCst);
    let pgid = JOB_PGID.load(Ordering::SeqCst);
    if pgid > 0 {
        // kill(2) is async-signal-safe; the monitor signals the job's other processes.
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
    }
}

/// Runs job `id` to its end and records the result. Returns the runner's exit status.
pub fn run(home: &Home, id: i64, launch: Option<i64>) -> Result<i32, LiveError> {
    // Our own session: the daemon's terminal or death does not reach us.
    let _ = setsid();
    let db = home.open_for_runner()?;
    let Some(job) = claim(&db, home, id, launch)? else {
        return Ok(0);
    };
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: the handler only reads and writes atomics and calls kill(2).
        unsafe {
            let _ = signal::signal(sig, SigHandler::Handler(forward));
        }
    }
    // Subreaper, cgroups (recorded before the job starts, for the daemon if we die), CPUs.
    let container = Arc::new(JobContainer::create(id, job.mem_mb << 20));
    let joins = container.joins();
    let dirs: Vec<String> = joins.iter().map(|j| j.dir.display().to_string()).collect();
    db.record_job_cgroups(id, &dirs)?;
    if let Err(e) = pin_self(&parse_cpu_list(&job.cpu_list)) {
        pin_failed(&db, id, &e);
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
            until_recorded(id, "why it did not start", || {
                db.set_reason(id, &Reason::launch_failed(e.clone()))
            });
            record(&db, id, Some(127), None, None, false)?;
            home.notify();
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
    let now_cpus = until_recorded(id, "its process group", || {
        db.record_job_group(id, pid.as_raw())
    });
    if now_cpus != job.cpu_list
        && let Err(e) = machine::set_group_affinity(pid.as_raw(), &parse_cpu_list(&now_cpus))
    {
        pin_failed(&db, id, &e);
    }
    drop(procs);
    let limits = Limits {
        deadline: job
            .time_limit_ms
            .map(|l| started + Duration::from_millis(l.max(0) as u64)),
        grace: Duration::from_millis(job.kill_wait_ms.unwrap_or(DEFAULT_KILL_WAIT_MS).max(0) as u64),
        mem_kb: (job.mem_mb > 0 && !container.has_memory_cgroup()).then_some(job.mem_mb * 1024),
    };
    let flags = Arc::new(Flags::default());
    let (ended, ended_rx) = channel::<()>();
    let monitor = {
        let (c, f) = (Arc::clone(&container), Arc::clone(&flags));
        std::thread::spawn(move || monitor(&c, pid.as_raw(), &limits, &f, &ended_rx))
    };
    let status = loop {
        match waitpid(pid, None) {
            Ok(s) => break s,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(LiveError::Other(format!("waiting for job {id}: {e}"))),
        }
    };
    drop(ended);
    let _ = monitor.join();
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
        db.record_timed_out(id)?;
    }
    record(&db, id, code, sig, usage, oom)?;
    home.notify();
    Ok(0)
}

/// Claims the launch (a runner of a launch the daemon has given up on — it died before this
/// claim, and a restart queued the job again — runs nothing) and reads the job with its
/// environment; `None`: nothing to run (not current, or a row that does not decode, which
/// fails the job with why).
fn claim(db: &Db, home: &Home, id: i64, launch: Option<i64>) -> Result<Option<JobRow>, LiveError> {
    let read = match launch {
        Some(launch) => {
            let me = std::process::id() as i32;
            let start = machine::process_start(me);
            match until_recorded(id, "its launch", || {
                db.claim_and_read(id, launch, me, start)
            }) {
                Claimed::NotCurrent => {
                    live_log!(
                        "mini-slurm: job {id}: launch {launch} is not current; not running it"
                    );
                    return Ok(None);
                }
                Claimed::Job(job) => Ok(Some(*job)),
                Claimed::Damaged(e) => Err(e),
            }
        }
        None => db.job_with_env(id),
    };
    match read {
        Ok(Some(job)) => Ok(Some(job)),
        Ok(None) => Err(LiveError::Other(format!("job {id} does not exist"))),
        Err(e) => {
            // A row this runner cannot read (a damaged environment): the job fails with why.
            let msg = format!("mini-slurm: job {id}: cannot read the job: {e}\n");
            let _ = std::fs::write(home.err_log(id), msg);
            record(db, id, Some(127), None, None, false)?;
            home.notify();
            Ok(None)
        }
    }
}

/// The limits the monitor keeps.
struct Limits {
    /// When the time limit expires (monotonic).
    deadline: Option<Instant>,
    /// Between SIGTERM and SIGKILL.
    grace: Duration,
    /// The memory limit, where no cgroup enforces it (PSS, kB).
    mem_kb: Option<u64>,
}

/// What the monitor found.
#[derive(Default)]
struct Flags {
    oom: AtomicBool,
    timed_out: AtomicBool,
}

/// Keeps the job's limits until its main process has ended (`ended` disconnects): the time
/// limit and termination requests (SIGTERM to every process of the job, SIGKILL after the
/// grace) and, where no cgroup does, the memory limit (SIGKILL past it).
fn monitor(c: &JobContainer, pgid: i32, lim: &Limits, flags: &Flags, ended: &Receiver<()>) {
    let mut kill_at: Option<Instant> = None;
    let mut stopping = false;
    let mut killed = false;
    loop {
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
        match ended.recv_timeout(next) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
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
fn pin_failed(db: &Db, id: i64, error: &str) {
    live_log!("mini-slurm: job {id}: {error}");
    let _ = db.record_pin_error(id, error);
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

/// Records how the job ended, with the time now.
fn record(
    db: &Db,
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
    until_recorded(id, "its result", || db.record_runner_result(id, &result));
    Ok(())
}

/// Retries a write the database refuses (locked past its timeout, disk full, an I/O error)
/// until it lands, with back-off up to 5 s: the runner outlives the fault rather than lose what
/// only it knows; the daemon sees the job running until then.
fn until_recorded<T>(
    id: i64,
    what: &str,
    mut write: impl FnMut() -> crate::live::store::Result<T>,
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
