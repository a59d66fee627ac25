//! Starting a job's process, as std's `Command` does, but born in the job's cgroup: a fork
//! with `clone3(CLONE_INTO_CGROUP)` (Linux ≥ 5.7) where the job has a cgroup v2 of its own,
//! rather than a fork followed by a move into it — a move takes the kernel's cgroup
//! threadgroup lock for writing, which waits for an RCU grace period: 1 to 15 ms on every
//! job's start (docs/performance.md). Where `clone3` is refused (an older kernel, a seccomp
//! filter), a plain fork whose child moves itself, as before.
//!
//! Everything the child uses is prepared before the fork: the program's candidate paths (a
//! name without `/` is searched in the job's `PATH`, as `execvp` does), the argument and
//! environment arrays, the file descriptors. Between fork and exec the child only makes system
//! calls (no allocation, no locks), and reports a failure as its errno on a close-on-exec
//! pipe, so that a job that cannot start is an error of `spawn`, as with std.

use nix::libc;
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, signal, sigprocmask};
use nix::unistd::Pid;
use std::ffi::{CString, OsStr, OsString};
use std::io::Read;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

/// A program to run, ready for `execve`.
pub struct Program {
    /// Where to find it, in order.
    candidates: Vec<CString>,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

/// The default search path where the job's environment has none (glibc's `execvp`'s).
const DEFAULT_PATH: &str = "/bin:/usr/bin";

fn c(s: &[u8]) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("'{}' holds a NUL byte", String::from_utf8_lossy(s)))
}

impl Program {
    /// `argv` (its first word is the program) run with exactly the environment `env`.
    pub fn new(argv: &[OsString], env: &[(OsString, OsString)]) -> Result<Program, String> {
        let Some(name) = argv.first() else {
            return Err("no command".into());
        };
        let name = name.as_bytes();
        let candidates = if name.contains(&b'/') {
            vec![c(name)?]
        } else {
            let path = env
                .iter()
                .rev()
                .find(|(k, _)| k == "PATH")
                .map_or(OsStr::new(DEFAULT_PATH), |(_, v)| v.as_os_str());
            let mut out = Vec::new();
            for dir in path.as_bytes().split(|&b| b == b':') {
                // An empty entry is the working directory, as for execvp.
                let mut p = if dir.is_empty() {
                    b".".to_vec()
                } else {
                    dir.to_vec()
                };
                p.push(b'/');
                p.extend_from_slice(name);
                out.push(c(&p)?);
            }
            out
        };
        let argv = argv
            .iter()
            .map(|a| c(a.as_bytes()))
            .collect::<Result<_, _>>()?;
        let envp = env
            .iter()
            .map(|(k, v)| {
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                c(&kv)
            })
            .collect::<Result<_, _>>()?;
        Ok(Program {
            candidates,
            argv,
            envp,
        })
    }
}

/// A null-terminated array of pointers into `v` (valid while `v` is).
fn pointers(v: &[CString]) -> Vec<*const libc::c_char> {
    v.iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// `struct clone_args` of clone3(2), up to `cgroup` (the same layout on every architecture).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The cgroup v2 a job's process is to be born in: the directory (for `clone3`), its
/// `cgroup.procs` (for a child that must move itself there instead), and whether the job may
/// not run outside it.
pub struct Into<'a> {
    pub dir: BorrowedFd<'a>,
    pub procs: RawFd,
    pub required: bool,
}

/// Forks `program` with `stdio` as its fds 0, 1 and 2; in the child, `setup` runs (it must only
/// make system calls: see the module header), then the exec. Returns the child's pid, and
/// whether it was born in `into`'s cgroup (else it moved itself there).
pub fn spawn(
    program: &Program,
    into: Option<&Into<'_>>,
    stdio: [RawFd; 3],
    mut setup: impl FnMut() -> nix::Result<()>,
) -> std::io::Result<(Pid, bool)> {
    let (argv, envp) = (pointers(&program.argv), pointers(&program.envp));
    let (mut rd, wr) = {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        (std::fs::File::from(r), w)
    };
    let mut born_in = into.is_some();
    // SAFETY: the child (return value 0) only makes system calls before exec or _exit.
    let pid = match into.map(|i| unsafe { clone_into(i.dir.as_raw_fd()) }) {
        Some(Ok(pid)) => pid,
        _ => {
            born_in = false;
            // SAFETY: as above.
            match unsafe { nix::unistd::fork() }? {
                nix::unistd::ForkResult::Parent { child } => child.as_raw(),
                nix::unistd::ForkResult::Child => 0,
            }
        }
    };
    if pid == 0 {
        let moved = if born_in {
            None
        } else {
            into.map(|i| (i.procs, i.required))
        };
        // SAFETY: in the child, between fork and exec.
        unsafe {
            child(
                program,
                &argv,
                &envp,
                stdio,
                moved,
                &mut setup,
                wr.as_raw_fd(),
            )
        }
    }
    drop(wr);
    let mut errno = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match rd.read(&mut errno[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let pid = Pid::from_raw(pid);
    if got == 0 {
        return Ok((pid, born_in));
    }
    // The child could not start the program: reap it, and say why.
    while let Err(nix::errno::Errno::EINTR) = nix::sys::wait::waitpid(pid, None) {}
    Err(std::io::Error::from_raw_os_error(i32::from_ne_bytes(errno)))
}

/// clone3 with `CLONE_INTO_CGROUP`, as a fork: 0 in the child, its pid in the parent.
///
/// # Safety
/// As fork: the child must only make system calls until it execs or exits.
unsafe fn clone_into(cgroup: RawFd) -> Result<i32, nix::errno::Errno> {
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup as u64,
        ..CloneArgs::default()
    };
    // SAFETY: a valid clone_args of the size given; no stack: the child continues on a copy
    // of ours, as after fork.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    nix::errno::Errno::result(r).map(|p| p as i32)
}

/// The child's side: signals as a new process expects them, stdio, the move into the cgroup
/// if it was not born there, `setup`, then each candidate path in turn; on failure, its errno
/// on `report` and exit 127.
///
/// # Safety
/// Only between fork and exec.
unsafe fn child(
    program: &Program,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    stdio: [RawFd; 3],
    moved: Option<(RawFd, bool)>,
    setup: &mut impl FnMut() -> nix::Result<()>,
    report: RawFd,
) -> ! {
    let mut run = || -> nix::Result<()> {
        // The runner ignores SIGPIPE (Rust's default) and handles SIGTERM and friends: the job
        // starts with default dispositions and nothing blocked.
        for sig in [
            Signal::SIGPIPE,
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGHUP,
        ] {
            // SAFETY: resetting a disposition to its default.
            let _ = unsafe { signal(sig, SigHandler::SigDfl) };
        }
        sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
        for (fd, to) in stdio.into_iter().zip(0..) {
            // SAFETY: plain dup2 of fds the parent keeps open across the fork.
            if fd != to && unsafe { libc::dup2(fd, to) } < 0 {
                return Err(nix::errno::Errno::last());
            }
        }
        if let Some((procs, required)) = moved {
            let joined = join(procs);
            if required {
                joined?;
            }
        }
        setup()
    };
    let mut err = match run() {
        Err(e) => e as i32,
        Ok(()) => libc::ENOENT,
    };
    if err == libc::ENOENT {
        for path in &program.candidates {
            // SAFETY: null-terminated arrays of pointers into CStrings the parent keeps.
            unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
            let e = nix::errno::Errno::last_raw();
            // As execvp: a missing file tries the next directory; a file that exists but
            // cannot be run is the answer unless a later one runs.
            if e != libc::ENOENT && e != libc::ENOTDIR {
                err = e;
            }
        }
    }
    let bytes = err.to_ne_bytes();
    // SAFETY: write(2) and _exit(2) only.
    unsafe {
        libc::write(report, bytes.as_ptr().cast(), bytes.len());
        libc::_exit(127)
    }
}

/// Writes our pid (formatted without allocating) to an open `cgroup.procs`: the move into a
/// cgroup.
pub fn join(procs: RawFd) -> nix::Result<()> {
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
    // SAFETY: the fd is an open cgroup.procs of the runner's, alive until after the fork.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(procs) };
    nix::unistd::write(fd, &buf[i..]).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn run(argv: &[&str], env: &[(&str, &str)]) -> std::io::Result<(i32, String)> {
        let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
        let env: Vec<(OsString, OsString)> =
            env.iter().map(|(k, v)| (k.into(), v.into())).collect();
        let p = Program::new(&argv, &env).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = std::fs::File::create(dir.path().join("out")).unwrap();
        let null = std::fs::File::open("/dev/null").unwrap();
        let fd = out.as_raw_fd();
        let (pid, born) = spawn(&p, None, [null.as_raw_fd(), fd, fd], || Ok(()))?;
        assert!(!born);
        let status = nix::sys::wait::waitpid(pid, None).unwrap();
        let code = match status {
            nix::sys::wait::WaitStatus::Exited(_, c) => c,
            other => panic!("{other:?}"),
        };
        Ok((
            code,
            std::fs::read_to_string(dir.path().join("out")).unwrap(),
        ))
    }

    #[test]
    fn spawns_with_the_given_environment_and_path() {
        let (code, out) = run(
            &["sh", "-c", "echo $A; exit 3"],
            &[("PATH", "/nonexistent:/bin:/usr/bin"), ("A", "x")],
        )
        .unwrap();
        assert_eq!((code, out.as_str()), (3, "x\n"));
        let (code, out) = run(&["/usr/bin/env"], &[("B", "y")]).unwrap();
        assert_eq!((code, out.as_str()), (0, "B=y\n"));
        let e = run(&["no-such-program-here"], &[("PATH", "/bin")]).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        let e = run(&["/etc/passwd"], &[]).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EACCES));
    }
}
