//! The job runner (`mini-slurm job-runner --job ID`): the supervisor the daemon starts for each
//! job, as Slurm's slurmstepd.
//!
//! It starts the job in its own process group (its own session is the runner's), with the
//! job's environment, working directory, log files, CPU affinity and memory limit, and waits
//! for it. SIGTERM or SIGINT to the runner is forwarded to the job's whole process group. A
//! memory limit is a cgroup of the job's own (v2 `memory.max`, or v1 `memory.limit_in_bytes`)
//! where the machine lets us create one — a kernel OOM kill there is reported OUT_OF_MEMORY;
//! elsewhere the runner polls the group's resident memory every 100 ms and kills the group
//! past the limit (also OUT_OF_MEMORY), with RLIMIT_AS as a backstop. When the job ends it kills whatever is left of the group
//! (so no process outlives its job), records the exit status and resource usage in the
//! database, and wakes the daemon.

use super::store::{Db, JobRow, RunnerResult};
use super::syntax::parse_cpu_list;
use super::{Home, LiveError, machine, now_ms};
use nix::sched::{CpuSet, sched_setaffinity};
use nix::sys::resource::{Resource, UsageWho, getrusage, setrlimit};
use nix::sys::signal::{self, SigHandler, Signal, killpg};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{Gid, Pid, Uid, setgid, setpgid, setsid, setuid};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

/// The job's process group, for the signal handler (0 until the job is started).
static JOB_PGID: AtomicI32 = AtomicI32::new(0);
/// A termination request that arrived before the job was started.
static TERM_PENDING: AtomicBool = AtomicBool::new(false);

extern "C" fn forward(_sig: i32) {
    let pgid = JOB_PGID.load(Ordering::SeqCst);
    if pgid > 0 {
        // kill(2) is async-signal-safe.
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
    } else {
        TERM_PENDING.store(true, Ordering::SeqCst);
    }
}

/// Runs job `id` to its end and records the result. Returns the runner's exit status.
pub fn run(home: &Home, id: i64) -> Result<i32, LiveError> {
    // Our own session: the daemon's terminal or death does not reach us.
    let _ = setsid();
    let db = home.open()?;
    let job = db
        .job_with_env(id)?
        .ok_or_else(|| LiveError::Other(format!("job {id} does not exist")))?;
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: the handler only reads and writes atomics and calls kill(2).
        unsafe {
            let _ = signal::signal(sig, SigHandler::Handler(forward));
        }
    }
    // A memory cgroup of its own when the machine offers one; else RLIMIT_AS and polling.
    let cgroup = (job.mem_mb > 0)
        .then(|| machine::JobCgroup::create(&machine::mem_enforcement(), id, job.mem_mb << 20))
        .flatten();
    let procs = match &cgroup {
        Some(cg) => Some(
            std::fs::OpenOptions::new()
                .write(true)
                .open(cg.procs())
                .map_err(|e| LiveError::io(&cg.procs(), e))?,
        ),
        None => None,
    };
    let mut cmd = build_command(home, &job, procs.as_ref().map(|f| f.as_raw_fd()))?;
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("mini-slurm: job {id}: cannot run {:?}: {e}\n", job.argv);
            let _ = std::fs::write(home.err_log(id), msg);
            record(&db, id, Some(127), None, None, false)?;
            home.notify();
            return Ok(0);
        }
    };
    let pid = Pid::from_raw(child.id() as i32);
    JOB_PGID.store(pid.as_raw(), Ordering::SeqCst);
    if TERM_PENDING.load(Ordering::SeqCst) {
        let _ = killpg(pid, Signal::SIGTERM);
    }
    // The group is recorded, then the CPU list read again: an elastic job resized since this
    // runner read its row is pinned here (the daemon pins it itself once it sees the group).
    let now_cpus = until_recorded(id, "its process group", || {
        db.record_job_group(id, pid.as_raw())
    });
    if now_cpus != job.cpu_list {
        machine::set_group_affinity(pid.as_raw(), &parse_cpu_list(&now_cpus));
    }
    drop(procs);
    // Memory watcher, where no cgroup limits the job.
    let done = Arc::new(AtomicBool::new(false));
    let oom = Arc::new(AtomicBool::new(false));
    let watcher = (job.mem_mb > 0 && cgroup.is_none()).then(|| {
        let (done, oom) = (Arc::clone(&done), Arc::clone(&oom));
        let limit_kb = job.mem_mb * 1024;
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                if machine::group_rss_kb(pid.as_raw()) > limit_kb {
                    oom.store(true, Ordering::SeqCst);
                    let _ = killpg(pid, Signal::SIGKILL);
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    });
    let status = loop {
        match waitpid(pid, None) {
            Ok(s) => break s,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(LiveError::Other(format!("waiting for job {id}: {e}"))),
        }
    };
    done.store(true, Ordering::SeqCst);
    // Nothing of the job outlives it.
    let _ = killpg(pid, Signal::SIGKILL);
    if let Some(w) = watcher {
        let _ = w.join();
    }
    if let Some(cg) = &cgroup {
        if cg.oom_killed() {
            oom.store(true, Ordering::SeqCst);
        }
        cg.remove();
    }
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
    record(&db, id, code, sig, usage, oom.load(Ordering::SeqCst))?;
    home.notify();
    Ok(0)
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
                    eprintln!("mini-slurm: job {id}: {what} recorded");
                }
                return v;
            }
            Err(e) => {
                if !told {
                    eprintln!("mini-slurm: job {id}: cannot record {what} yet: {e} (retrying)");
                    told = true;
                }
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn build_command(
    home: &Home,
    job: &JobRow,
    cgroup_procs: Option<RawFd>,
) -> Result<Command, LiveError> {
    let mut cmd = if job.shell {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(job.argv.first().map_or("", String::as_str));
        c
    } else {
        let mut c = Command::new(job.argv.first().map_or("true", String::as_str));
        c.args(job.argv.iter().skip(1));
        c
    };
    let out_path = home.out_log(job.id);
    let err_path = home.err_log(job.id);
    let out = std::fs::File::create(&out_path).map_err(|e| LiveError::io(&out_path, e))?;
    let err = std::fs::File::create(&err_path).map_err(|e| LiveError::io(&err_path, e))?;
    let held = job.alloc_cpus.unwrap_or(job.cpus).to_string();
    cmd.env_clear()
        .envs(job.env.iter().map(|(k, v)| (k, v)))
        .env("MINI_SLURM_JOB_ID", job.id.to_string())
        .env("SLURM_JOB_ID", job.id.to_string())
        .env("MINI_SLURM_JOB_NAME", &job.name)
        .env("MINI_SLURM_CPUS", &job.cpu_list)
        .env("MINI_SLURM_CPUS_ON_NODE", &held)
        .env("OMP_NUM_THREADS", &held)
        .env("MINI_SLURM_HOME", &home.dir)
        .current_dir(&job.cwd)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    if let (Some(lo), Some(hi)) = (job.min_cpus, job.max_cpus) {
        cmd.env("MINI_SLURM_ALLOC_FILE", home.alloc_file(job.id))
            .env("MINI_SLURM_MIN_CPUS", lo.to_string())
            .env("MINI_SLURM_MAX_CPUS", hi.to_string());
    }
    if job.gpus > 0 {
        cmd.env("CUDA_VISIBLE_DEVICES", &job.gpu_list)
            .env("MINI_SLURM_GPUS", &job.gpu_list);
    }
    if let (Some(a), Some(t)) = (job.array_job_id, job.array_task_id) {
        cmd.env("MINI_SLURM_ARRAY_JOB_ID", a.to_string())
            .env("MINI_SLURM_ARRAY_TASK_ID", t.to_string())
            .env("SLURM_ARRAY_TASK_ID", t.to_string());
    }
    let cpus = parse_cpu_list(&job.cpu_list);
    let mem_bytes = job.mem_mb.saturating_mul(1024 * 1024);
    let (uid, gid) = (job.uid, job.gid);
    // SAFETY: the closure runs in the child between fork and exec and only makes system calls
    // (no allocation beyond the CpuSet on the stack, no locks).
    unsafe {
        cmd.pre_exec(move || {
            setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
            if !cpus.is_empty() {
                let mut set = CpuSet::new();
                for &c in &cpus {
                    let _ = set.set(c);
                }
                let _ = sched_setaffinity(Pid::from_raw(0), &set);
            }
            if let Some(fd) = cgroup_procs {
                // Join the job's memory cgroup: write our pid (formatted without allocating).
                let mut buf = [0u8; 20];
                let mut n = nix::unistd::getpid().as_raw() as u64;
                let mut i = buf.len();
                loop {
                    i -= 1;
                    buf[i] = b'0' + (n % 10) as u8;
                    n /= 10;
                    if n == 0 {
                        break;
                    }
                }
                nix::unistd::write(BorrowedFd::borrow_raw(fd), &buf[i..])?;
            } else if mem_bytes > 0 {
                let cap = mem_bytes.saturating_mul(2).saturating_add(512 << 20);
                setrlimit(Resource::RLIMIT_AS, cap, cap)?;
            }
            if Uid::effective().is_root() && uid != 0 {
                setgid(Gid::from_raw(gid))?;
                setuid(Uid::from_raw(uid))?;
            }
            // Default signal handling for the job, whatever the runner installed.
            for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
                let _ = signal::signal(sig, SigHandler::SigDfl);
            }
            Ok(())
        });
    }
    Ok(cmd)
}
