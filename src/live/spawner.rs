//! The runner spawner (`mini-slurm job-runner --spawner`, hidden): one small process the daemon
//! starts once, which forks a job's runner for every launch instead of the daemon executing the
//! `mini-slurm` binary anew for each.
//!
//! Why: a runner started by `exec` pays, for every job, the loading of a multi-megabyte binary
//! (page faults, the dynamic loader, the runtime's start-up) and the teardown of that address
//! space — on a 2-core machine about a third of a trivial job's CPU time. The spawner pays that
//! once; a fork of it costs a copy of a few page tables. It is single-threaded and opens no
//! database, so a fork of it is an ordinary process that may do anything (a fork of the
//! multi-threaded daemon could not: another thread may hold a lock, and SQLite's connections
//! must not cross a fork).
//!
//! Protocol, one line per message on a socket pair (the spawner's standard input):
//! the daemon sends `L <job> <launch> <memory MB>`; the spawner answers `P <job> <pid>` once
//! the runner is forked (or `E <job> <why>`), and `X <job> <pid>` when a runner it forked has
//! ended (it reaps its children). The runner itself is the same code as `job-runner --job ID
//! --launch N --mem-mb M`: it claims its launch (through the daemon, or in the database where
//! none answers), so a runner of a launch the daemon gave up on runs nothing.
//!
//! Crashes: when the daemon goes away the spawner reads end-of-file and exits; the runners it
//! forked run on (as before, a runner outlives the daemon) and a restarted daemon adopts them.
//! When the spawner goes away while the daemon runs, the daemon polls the runners it forked
//! (as it polls adopted ones) and starts a new spawner for the next launch; where none can be
//! started it executes the runner as before.

use super::{Home, LiveError};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, setsid};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, FromRawFd, IntoRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

/// How long the daemon waits for the spawner to answer a launch before it gives up on it.
const ANSWER: Duration = Duration::from_secs(10);

/// The daemon's side of a running spawner.
pub struct Spawner {
    stream: UnixStream,
    answers: Receiver<Answer>,
    dead: Arc<AtomicBool>,
    child: Child,
}

/// The spawner's answer to a launch.
enum Answer {
    Forked(i64, i32),
    Failed(i64, String),
}

impl Spawner {
    /// Starts `runner job-runner --spawner`; `ended(job, pid)` is called (on a thread of its
    /// own) for every runner it forked that has ended.
    pub fn start(
        runner: &Path,
        home: &Home,
        ended: impl Fn(i64, i32) + Send + 'static,
    ) -> std::io::Result<Spawner> {
        let (ours, theirs) = UnixStream::pair()?;
        // SAFETY: `theirs` is a socket we own; the child gets it as its standard input.
        let stdin = unsafe { Stdio::from_raw_fd(theirs.into_raw_fd()) };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(home.daemon_log())
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null());
        let child = Command::new(runner)
            .args(["job-runner", "--spawner"])
            .env("MINI_SLURM_HOME", &home.dir)
            .stdin(stdin)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        ours.set_write_timeout(Some(ANSWER))?;
        let (tx, answers) = channel();
        let dead = Arc::new(AtomicBool::new(false));
        let reader = ours.try_clone()?;
        let flag = Arc::clone(&dead);
        std::thread::spawn(move || read_answers(reader, &tx, &ended, &flag));
        Ok(Spawner {
            stream: ours,
            answers,
            dead,
            child,
        })
    }

    /// Whether the spawner has gone away (its runners must then be polled).
    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    /// Forks the runner of `job`'s launch `launch` (the job's memory: `mem_mb`); its pid.
    pub fn launch(&mut self, job: i64, launch: i64, mem_mb: u64) -> Result<i32, String> {
        if self.is_dead() {
            return Err("the runner spawner has ended".into());
        }
        // Answers of launches given up on earlier are stale.
        while self.answers.try_recv().is_ok() {}
        // The whole line in one write (`writeln!` on the socket makes a system call per part).
        self.stream
            .write_all(format!("L {job} {launch} {mem_mb}\n").as_bytes())
            .map_err(|e| format!("cannot reach the runner spawner: {e}"))?;
        loop {
            match self.answers.recv_timeout(ANSWER) {
                Ok(Answer::Forked(j, pid)) if j == job => return Ok(pid),
                Ok(Answer::Failed(j, why)) if j == job => return Err(why),
                Ok(_) => continue,
                Err(_) => {
                    // Stuck or gone: not used again (a launch it still forks is not current
                    // by the time it claims, since the daemon records a new launch to retry).
                    self.dead.store(true, Ordering::SeqCst);
                    let _ = self.child.kill();
                    return Err("the runner spawner does not answer".into());
                }
            }
        }
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        // End-of-file tells it to exit; its runners run on.
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        let _ = self.child.wait();
    }
}

/// The daemon's reader of the spawner's messages.
fn read_answers(
    stream: UnixStream,
    tx: &Sender<Answer>,
    ended: &dyn Fn(i64, i32),
    dead: &AtomicBool,
) {
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        let mut words = line.splitn(3, ' ');
        let (kind, job) = (words.next(), words.next().and_then(|j| j.parse().ok()));
        let rest = words.next().unwrap_or("");
        match (kind, job) {
            (Some("P"), Some(job)) => match rest.parse() {
                Ok(pid) => {
                    let _ = tx.send(Answer::Forked(job, pid));
                }
                Err(_) => break,
            },
            (Some("E"), Some(job)) => {
                let _ = tx.send(Answer::Failed(job, rest.to_string()));
            }
            (Some("X"), Some(job)) => match rest.parse() {
                Ok(pid) => ended(job, pid),
                Err(_) => break,
            },
            _ => break,
        }
    }
    dead.store(true, Ordering::SeqCst);
}

/// The spawner's loop (`job-runner --spawner`): its standard input is the daemon's socket.
/// Returns when the daemon has gone away.
pub fn serve(home: &Home) -> Result<(), LiveError> {
    let other =
        |what: &str, e: nix::errno::Errno| LiveError::Other(format!("spawner: {what}: {e}"));
    // Terminal signals to the daemon's group are not ours.
    let _ = setsid();
    // Found once here, inherited by every runner.
    super::machine::settle();
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    chld.thread_block()
        .map_err(|e| other("blocking SIGCHLD", e))?;
    let sfd = SignalFd::with_flags(&chld, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| other("signalfd", e))?;
    // SAFETY: standard input is the socket the daemon gave us, and nothing else uses it.
    let mut sock = unsafe { UnixStream::from_raw_fd(0) };
    let mut kids: BTreeMap<i32, i64> = BTreeMap::new();
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let (readable, reaped) = {
            let mut fds = [
                PollFd::new(sock.as_fd(), PollFlags::POLLIN),
                PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(other("poll", e)),
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            (ready(&fds[0]), ready(&fds[1]))
        };
        if reaped {
            while let Ok(Some(_)) = sfd.read_signal() {}
            reap(&mut kids, &mut sock);
        }
        if readable {
            let n = match sock.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return Ok(()),
            };
            pending.extend_from_slice(&buf[..n]);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line[..end]).into_owned();
                let mut w = line.split(' ');
                match (w.next(), w.next().map(str::parse), w.next().map(str::parse)) {
                    (Some("L"), Some(Ok(job)), Some(Ok(launch))) => {
                        // The job's memory (a daemon of an older version leaves it out).
                        let mem_mb = w.next().and_then(|m| m.parse().ok());
                        let answer = fork_runner(home, (job, launch, mem_mb), &chld, &sfd);
                        if let Ok(pid) = answer {
                            kids.insert(pid, job);
                        }
                        let msg = match answer {
                            Ok(pid) => format!("P {job} {pid}\n"),
                            Err(e) => format!("E {job} cannot start its runner: {e}\n"),
                        };
                        if sock.write_all(msg.as_bytes()).is_err() {
                            return Ok(());
                        }
                    }
                    _ => live_log!("mini-slurm: runner spawner: ignoring {line:?}"),
                }
            }
        }
    }
}

/// Reaps ended runners and tells the daemon which jobs they ran.
fn reap(kids: &mut BTreeMap<i32, i64>, sock: &mut UnixStream) {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, _)) | Ok(WaitStatus::Signaled(pid, _, _)) => {
                if let Some(job) = kids.remove(&pid.as_raw()) {
                    let _ = sock.write_all(format!("X {job} {pid}\n").as_bytes());
                }
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Forks the runner of `job`'s launch: the child leaves the spawner's socket, signal mask and
/// signalfd behind and runs [`super::runner::run`], as `job-runner --job J --launch N` would.
fn fork_runner(
    home: &Home,
    (job, launch, mem_mb): (i64, i64, Option<u64>),
    chld: &SigSet,
    sfd: &SignalFd,
) -> Result<i32, nix::errno::Errno> {
    // SAFETY: the spawner is single-threaded, so the child may run any code.
    match unsafe { fork() }? {
        ForkResult::Parent { child } => Ok(child.as_raw()),
        ForkResult::Child => {
            let _ = chld.thread_unblock();
            // Standard input becomes /dev/null; the signalfd is closed (it is close-on-exec,
            // but the runner starts the job with a fork and an exec of its own).
            drop_fds(sfd);
            let code = std::panic::catch_unwind(|| {
                match super::runner::run(home, job, Some((launch, mem_mb))) {
                    Ok(c) => c,
                    Err(e) => {
                        live_log!("mini-slurm: job {job}: runner: {e}");
                        1
                    }
                }
            })
            .unwrap_or(101);
            // SAFETY: `_exit` ends this forked child without running the spawner's exit
            // handlers a second time.
            unsafe { nix::libc::_exit(code) }
        }
    }
}

/// In a forked runner: the spawner's socket (standard input) becomes /dev/null and its
/// signalfd is closed.
fn drop_fds(sfd: &SignalFd) {
    use std::os::fd::AsRawFd;
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = nix::unistd::dup2_stdin(&null);
    }
    // SAFETY: the raw descriptor of the signalfd, closed once in this process, which never
    // uses the signalfd again (it leaves with `_exit`).
    unsafe {
        nix::libc::close(sfd.as_fd().as_raw_fd());
    }
}
