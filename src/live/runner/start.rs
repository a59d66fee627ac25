//! Starting the job, as its owner: who it runs as and where it writes ([`Setup`], resolved
//! before the fork), its environment, and what its process does between fork and exec.

use crate::live::spawn::{self, Program};
use crate::live::store::JobRow;
use crate::live::{Home, machine, output, syntax};
use nix::fcntl::OFlag;
use nix::libc;
use nix::sys::resource::{Resource, setrlimit};
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Pid, Uid, User, dup2_stderr, dup2_stdout, getgrouplist, setpgid};
use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Who a job runs as and where it writes, resolved before the fork: between fork and exec
/// nothing is looked up or allocated.
pub(super) struct Setup {
    /// The owner to become (uid, gid, supplementary groups): when the runner is root and the
    /// job is not root's.
    identity: Option<(libc::uid_t, libc::gid_t, Vec<libc::gid_t>)>,
    cwd: CString,
    /// The output files the job opens as its owner: stdout, and stderr where it goes
    /// elsewhere (`None`: the home's logs, opened by the runner).
    files: Option<(CString, Option<CString>)>,
}

impl Setup {
    pub(super) fn of(home: &Home, job: &JobRow) -> Result<Setup, String> {
        let c = |p: &Path| {
            CString::new(p.as_os_str().as_bytes())
                .map_err(|_| format!("{}: a NUL byte", p.display()))
        };
        if !Path::new(&job.cwd).is_dir() {
            return Err(format!("working directory {}: not a directory", job.cwd));
        }
        let identity = if Uid::effective().is_root() && job.uid != 0 {
            let (uid, gid) = (Uid::from_raw(job.uid), Gid::from_raw(job.gid));
            // The owner's groups, as initgroups(3) sets them; a uid without an entry in the
            // user database gets its primary group alone.
            let groups = match User::from_uid(uid) {
                Ok(Some(u)) => {
                    let name = CString::new(u.name.clone()).map_err(|e| e.to_string())?;
                    getgrouplist(&name, gid)
                        .map_err(|e| format!("the groups of user {}: {e}", u.name))?
                }
                _ => vec![gid],
            };
            let groups = groups.iter().map(|g| g.as_raw()).collect();
            Some((uid.as_raw(), gid.as_raw(), groups))
        } else {
            None
        };
        let files = if job.stdout.is_some() || job.stderr.is_some() {
            let (out, err) = output::paths(home, job, &machine::hostname());
            Some((c(&out)?, if err == out { None } else { Some(c(&err)?) }))
        } else {
            None
        };
        Ok(Setup {
            identity,
            cwd: c(Path::new(&job.cwd))?,
            files,
        })
    }

    /// As whom and where, for a message.
    pub(super) fn describe(&self, job: &JobRow) -> String {
        let who = match &self.identity {
            Some((uid, ..)) => format!("as uid {uid}"),
            None => "as the scheduler's user".to_string(),
        };
        match &self.files {
            Some((out, _)) => format!("{who} in {}, output {}", job.cwd, out.to_string_lossy()),
            None => format!("{who} in {}", job.cwd),
        }
    }
}

/// A cgroup the job joins, opened by the runner.
pub(super) struct Joining {
    pub(super) procs: File,
    pub(super) required: bool,
    /// The directory, for a cgroup v2 (the job can be born in it).
    pub(super) v2_dir: Option<OwnedFd>,
}

/// The directory `dir`, opened, if it is a cgroup v2.
pub(super) fn cgroup2_dir(dir: &Path) -> Option<OwnedFd> {
    let v2 = nix::sys::statfs::statfs(dir)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    v2.then(|| nix::fcntl::open(dir, flags, Mode::empty()).ok())
        .flatten()
}

/// Starts the job: its argv (or `/bin/sh -c`), environment and log files; born in its cgroup
/// v2 where it has one ([`spawn`]); between fork and exec it takes its own process group,
/// joins its other cgroups (`joins`), caps its address space if `rlimit_as`, becomes its owner
/// ([`Setup`]), enters its working directory and opens its output files.
pub(super) fn start(
    home: &Home,
    job: &JobRow,
    joins: &[Joining],
    rlimit_as: bool,
    setup: Setup,
) -> Result<Pid, String> {
    let argv: Vec<OsString> = if job.shell {
        let line = job.argv.first().map_or("", String::as_str);
        vec!["/bin/sh".into(), "-c".into(), line.into()]
    } else {
        job.argv.iter().map(OsString::from).collect()
    };
    let program = Program::new(&argv, &job_env(home, job))?;
    let null = File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
    // The home's logs are its owner's alone (0600), like the database; files elsewhere are
    // opened by the job's process itself, as its owner (see below).
    let logs = match setup.files {
        Some(_) => None,
        None => {
            let create = |p: &Path| {
                use std::os::unix::fs::OpenOptionsExt;
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(p)
                    .map_err(|e| format!("{}: {e}", p.display()))
            };
            Some((
                create(&home.out_log(job.id))?,
                create(&home.err_log(job.id))?,
            ))
        }
    };
    let stdio = match &logs {
        Some((o, e)) => [null.as_raw_fd(), o.as_raw_fd(), e.as_raw_fd()],
        None => [null.as_raw_fd(); 3],
    };
    // Born in the first cgroup v2 (a process is in one v2 cgroup); the others are joined.
    let born = joins.iter().position(|j| j.v2_dir.is_some());
    let into = born.and_then(|i| {
        let j = &joins[i];
        j.v2_dir.as_ref().map(|d| spawn::Into {
            dir: d.as_fd(),
            procs: j.procs.as_raw_fd(),
            required: j.required,
        })
    });
    let others: Vec<(RawFd, bool)> = joins
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != born)
        .map(|(_, j)| (j.procs.as_raw_fd(), j.required))
        .collect();
    let mem_bytes = job.mem_mb.saturating_mul(1024 * 1024);
    let umask = submitted_umask(job);
    let limits = submitted_limits(job);
    let spawned = spawn::spawn(&program, into.as_ref(), stdio, || {
        let at = |step: u8| move |e: nix::errno::Errno| (step, e);
        setpgid(Pid::from_raw(0), Pid::from_raw(0)).map_err(at(GROUP))?;
        if let Some(m) = umask {
            nix::sys::stat::umask(m);
        }
        for &(res, soft, hard) in &limits {
            // Best effort, as slurmstepd: a limit the kernel refuses leaves the runner's.
            let _ = setrlimit(res, soft, hard);
        }
        for &(fd, required) in &others {
            let joined = spawn::join(fd);
            if required {
                joined.map_err(at(JOIN))?;
            }
        }
        if rlimit_as && mem_bytes > 0 {
            let cap = mem_bytes.saturating_mul(2).saturating_add(512 << 20);
            let own = limits
                .iter()
                .find(|l| l.0 == Resource::RLIMIT_AS)
                .map(|l| l.1);
            let soft = own.map_or(cap, |s| s.min(cap));
            setrlimit(Resource::RLIMIT_AS, soft, cap).map_err(at(RLIMIT))?;
        }
        if let Some((uid, gid, groups)) = &setup.identity {
            // Raw system calls: libc's wrappers would also try to change the ids of other
            // threads, which a process forked by clone3 has not (see `spawn`).
            let raw = |r: libc::c_long| nix::errno::Errno::result(r).map(drop).map_err(at(OWNER));
            // SAFETY: plain system calls on memory prepared before the fork.
            unsafe {
                raw(libc::syscall(
                    libc::SYS_setgroups,
                    groups.len(),
                    groups.as_ptr(),
                ))?;
                raw(libc::syscall(libc::SYS_setgid, *gid))?;
                raw(libc::syscall(libc::SYS_setuid, *uid))?;
            }
        }
        nix::unistd::chdir(setup.cwd.as_c_str()).map_err(at(CWD))?;
        if let Some((out, err)) = &setup.files {
            let open = |p: &CString| {
                let flags = OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_TRUNC
                    | OFlag::O_CLOEXEC
                    | OFlag::O_NOCTTY;
                nix::fcntl::open(p.as_c_str(), flags, Mode::from_bits_truncate(0o600))
            };
            let fd = open(out).map_err(at(OUTPUT))?;
            dup2_stdout(&fd).map_err(at(OUTPUT))?;
            match err {
                Some(e) => dup2_stderr(open(e).map_err(at(ERROR))?).map_err(at(ERROR))?,
                None => dup2_stderr(&fd).map_err(at(OUTPUT))?,
            }
        }
        Ok(())
    });
    match spawned {
        Ok((pid, _)) => Ok(pid),
        Err(spawn::SpawnError::Setup(step, e)) => Err(setup.failed(job, step, &e)),
        Err(e) => Err(e.to_string()),
    }
}

/// The steps of a job's setup between fork and exec, as [`spawn::spawn`] reports them.
const GROUP: u8 = 1;
const JOIN: u8 = 2;
const RLIMIT: u8 = 3;
const OWNER: u8 = 4;
const CWD: u8 = 5;
const OUTPUT: u8 = 6;
const ERROR: u8 = 7;

impl Setup {
    /// What failed, naming the path or identity involved.
    fn failed(&self, job: &JobRow, step: u8, e: &std::io::Error) -> String {
        let files = self.files.as_ref();
        match step {
            CWD => format!("working directory {}: {e}", job.cwd),
            OUTPUT => match files {
                Some((out, _)) => format!("output file {}: {e}", out.to_string_lossy()),
                None => format!("output file: {e}"),
            },
            ERROR => match files.and_then(|(_, err)| err.as_ref()) {
                Some(err) => format!("error file {}: {e}", err.to_string_lossy()),
                None => format!("error file: {e}"),
            },
            OWNER => format!("becoming uid {} gid {}: {e}", job.uid, job.gid),
            GROUP => format!("its own process group: {e}"),
            JOIN => format!("joining its cgroup: {e}"),
            RLIMIT => format!("capping its address space: {e}"),
            _ => format!("preparing its process: {e}"),
        }
    }
}

/// The value of `key` in the environment the job was submitted with (the last one, as the
/// job's environment takes it), if it is UTF-8.
fn submitted<'a>(job: &'a JobRow, key: &str) -> Option<&'a str> {
    job.env.iter().rev().find(|(k, _)| k == key)?.1.to_str()
}

/// The umask the job was submitted with (`SLURM_UMASK`, octal, as sbatch records it), if its
/// environment holds a valid one; else the job keeps the runner's.
fn submitted_umask(job: &JobRow) -> Option<nix::sys::stat::Mode> {
    let bits = u32::from_str_radix(submitted(job, "SLURM_UMASK")?, 8)
        .ok()
        .filter(|&b| b <= 0o777)?;
    Some(nix::sys::stat::Mode::from_bits_truncate(
        bits as nix::libc::mode_t,
    ))
}

/// The resource limits the job was submitted with (`SLURM_RLIMIT_<name>`, the soft values
/// `submit` records), as `(resource, soft, hard)` to set: the soft value capped by the
/// runner's hard limit, which is kept — a job never gets more than the runner itself may have,
/// even from a runner that runs as root.
fn submitted_limits(job: &JobRow) -> Vec<(Resource, u64, u64)> {
    let value = |name: &str| syntax::parse_rlimit(submitted(job, &format!("SLURM_RLIMIT_{name}"))?);
    syntax::PROPAGATED_LIMITS
        .iter()
        .filter_map(|&(name, res)| {
            let soft = value(name)?;
            let (_, hard) = nix::sys::resource::getrlimit(res).ok()?;
            Some((res, soft.min(hard), hard))
        })
        .collect()
}

/// The job's environment: as submitted, and what the scheduler tells it (by name, the last
/// value of a name winning, as std's `Command` orders it).
fn job_env(home: &Home, job: &JobRow) -> Vec<(OsString, OsString)> {
    let mut env: BTreeMap<OsString, OsString> = job.env.iter().cloned().collect();
    let mut set = |k: &str, v: &dyn AsRef<OsStr>| {
        env.insert(k.into(), v.as_ref().to_os_string());
    };
    let held = job.alloc_cpus.unwrap_or(job.cpus).to_string();
    set("MINI_SLURM_JOB_ID", &job.id.to_string());
    set("SLURM_JOB_ID", &job.id.to_string());
    set("MINI_SLURM_JOB_NAME", &job.name);
    set("MINI_SLURM_CPUS", &job.cpu_list);
    set("MINI_SLURM_CPUS_ON_NODE", &held);
    set("OMP_NUM_THREADS", &held);
    set("MINI_SLURM_HOME", &home.dir);
    if let (Some(lo), Some(hi)) = (job.min_cpus, job.max_cpus) {
        set("MINI_SLURM_ALLOC_FILE", &home.alloc_file(job.id));
        set("MINI_SLURM_MIN_CPUS", &lo.to_string());
        set("MINI_SLURM_MAX_CPUS", &hi.to_string());
    }
    if job.gpus > 0 {
        set("CUDA_VISIBLE_DEVICES", &job.gpu_list);
        set("MINI_SLURM_GPUS", &job.gpu_list);
    }
    if let (Some(a), Some(t)) = (job.array_job_id, job.array_task_id) {
        set("MINI_SLURM_ARRAY_JOB_ID", &a.to_string());
        set("MINI_SLURM_ARRAY_TASK_ID", &t.to_string());
        set("SLURM_ARRAY_TASK_ID", &t.to_string());
    }
    env.into_iter().collect()
}
