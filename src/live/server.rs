//! The daemon's socket: a Unix stream socket in the home (`daemon.sock`) on which clients send
//! one [`Request`] per connection and read one [`Response`].
//!
//! The daemon learns who asks from the kernel (`SO_PEERCRED`: the uid and gid of the process
//! that connected), never from the request. A personal scheduler's socket is its owner's
//! (0600, and other uids are refused); a shared one's (`--multi-user`) is world-connectable
//! (0666), in a home users may traverse but not list or write ([`prepare_home`]).
//!
//! A fixed pool of [`WORKERS`] threads accepts and serves connections, each with its own
//! database connection and a bounded request size. A connection has [`IO_TIMEOUT`] in all for
//! the client's part, sending its request and reading the answer (`Deadline`: what is left
//! of it is the socket's timeout before every read and write, so a client that sends one byte
//! at a time is cut off as surely as a silent one), and a user other than root holds at most
//! [`PER_UID`] workers at once on a shared scheduler (a further connection is closed
//! unanswered, which the client takes as a daemon that went away and tries again): a slow or
//! malicious client holds one worker for at most [`IO_TIMEOUT`] of its own, leaves workers to
//! other users, and never holds the scheduling loop, which only hears "wake up" from a worker
//! after a submission or a cancellation.

use super::client::Owner;
use super::clock::Waker;
use super::protocol::{
    Failure, FailureKind, MAX_REQUEST, Request, Response, read_frame, write_frame,
};
use super::service::{Access, QosGrants, Service};
use super::store::Db;
use super::{Home, LiveError};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connections served at once.
pub const WORKERS: usize = 8;
/// The longest a client may take, in all, to send its request and read the answer.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The connections one user other than root may have served at once (shared scheduler).
pub const PER_UID: usize = WORKERS / 2;

/// The running server; dropping it stops accepting and removes the socket.
pub struct Server {
    listener: Arc<UnixListener>,
    stop: Arc<AtomicBool>,
    path: PathBuf,
}

/// What every worker shares.
struct Ctx {
    home: Home,
    access: Access,
    qos: QosGrants,
    waker: Waker,
    /// The daemon's own uid: the only caller of a personal scheduler.
    me: u32,
    /// The client's time per connection ([`IO_TIMEOUT`]).
    budget: Duration,
    /// Connections being served, by uid.
    busy: PerUid,
}

/// Binds the home's socket (replacing a stale one: the caller holds the home's lock) and
/// starts the workers.
pub fn start(
    home: &Home,
    access: Access,
    qos: QosGrants,
    waker: Waker,
) -> Result<Server, LiveError> {
    start_with(home, access, qos, waker, IO_TIMEOUT)
}

/// [`start`], with `budget` as the client's time per connection.
fn start_with(
    home: &Home,
    access: Access,
    qos: QosGrants,
    waker: Waker,
    budget: Duration,
) -> Result<Server, LiveError> {
    let path = home.socket();
    let io = |e| LiveError::io(&path, e);
    if std::fs::symlink_metadata(&path).is_ok() {
        std::fs::remove_file(&path).map_err(io)?;
    }
    let listener = Arc::new(UnixListener::bind(&path).map_err(io)?);
    let mode = if access.multi_user { 0o666 } else { 0o600 };
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(io)?;
    let ctx = Arc::new(Ctx {
        home: home.clone(),
        access,
        qos,
        waker,
        me: nix::unistd::geteuid().as_raw(),
        budget,
        busy: PerUid::new(PER_UID),
    });
    let stop = Arc::new(AtomicBool::new(false));
    for _ in 0..WORKERS {
        let (l, c, s) = (Arc::clone(&listener), Arc::clone(&ctx), Arc::clone(&stop));
        std::thread::spawn(move || worker(&l, &c, &s));
    }
    Ok(Server {
        listener,
        stop,
        path,
    })
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the workers blocked in accept(2) (Linux: EINVAL once the socket is shut down).
        let _ =
            nix::sys::socket::shutdown(self.listener.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        let _ = std::fs::remove_file(&self.path);
    }
}

fn worker(listener: &UnixListener, ctx: &Ctx, stop: &AtomicBool) {
    let mut db: Option<Db> = None;
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => serve(ctx, &mut db, stream),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                live_log!("mini-slurm: socket: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Serves one connection: who, what, the answer, the client's part within `ctx.budget`.
fn serve(ctx: &Ctx, db: &mut Option<Db>, stream: UnixStream) {
    let began = Instant::now();
    let who = caller(&stream);
    // A shared scheduler's user holds at most PER_UID workers; a connection over that is
    // closed unanswered (the client tries again shortly, as after a daemon's restart).
    let _slot = match &who {
        Ok((uid, _)) if ctx.access.multi_user && *uid != 0 => match ctx.busy.enter(*uid) {
            Some(slot) => Some(slot),
            None => return,
        },
        _ => None,
    };
    let mut conn = Deadline {
        stream: &stream,
        until: began + ctx.budget,
    };
    let answer = match who {
        Err(e) => Response::Failed(Failure::new(FailureKind::Failed, e)),
        Ok((uid, _)) if !ctx.access.multi_user && uid != ctx.me => Response::Failed(Failure::new(
            FailureKind::Denied,
            format!(
                "this scheduler is personal to uid {} (start a shared one with --multi-user): Access/permission denied",
                ctx.me
            ),
        )),
        Ok((uid, gid)) => match read_frame::<Request>(&mut conn, MAX_REQUEST) {
            Ok(req) => match open(ctx, db) {
                Ok(db) => {
                    // A runner's records need no name (the user database is read per request).
                    let who = match req {
                        Request::Runner(_) => Owner {
                            user: String::new(),
                            uid,
                            gid,
                        },
                        _ => Owner::of(uid, gid),
                    };
                    dispatch(ctx, db, &who, req)
                }
                Err(e) => Response::Failed(e.into()),
            },
            Err(super::protocol::FrameError::Closed) => return,
            Err(e) => Response::Failed(Failure::new(FailureKind::Invalid, e.to_string())),
        },
    };
    // The answer gets what the request left of the client's time (the daemon's own time in
    // between is not the client's).
    let spent = Instant::now()
        .min(conn.until)
        .saturating_duration_since(began);
    conn.until = Instant::now() + ctx.budget.saturating_sub(spent);
    let _ = write_frame(&mut conn, &answer);
}

/// A connection whose reads and writes must all end by `until`: before each, what is left is
/// set as the socket's timeout (a timeout per call alone lets a client send one byte every
/// few seconds for ever).
struct Deadline<'a> {
    stream: &'a UnixStream,
    until: Instant,
}

impl Deadline<'_> {
    fn left(&self) -> std::io::Result<Duration> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the client took over {} s", IO_TIMEOUT.as_secs()),
            ));
        }
        Ok(left)
    }
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stream.set_read_timeout(Some(self.left()?))?;
        (&mut &*self.stream).read(buf)
    }
}

impl Write for Deadline<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stream.set_write_timeout(Some(self.left()?))?;
        (&mut &*self.stream).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How many connections each uid has being served, capped.
struct PerUid {
    busy: Mutex<BTreeMap<u32, usize>>,
    cap: usize,
}

/// One connection of a uid being served; counted until dropped.
struct Slot<'a> {
    of: &'a PerUid,
    uid: u32,
}

impl PerUid {
    fn new(cap: usize) -> PerUid {
        PerUid {
            busy: Mutex::new(BTreeMap::new()),
            cap,
        }
    }
    /// A slot for `uid`, unless it holds `cap` already.
    fn enter(&self, uid: u32) -> Option<Slot<'_>> {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        let n = busy.entry(uid).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(Slot { of: self, uid })
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut busy = self.of.busy.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = busy.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                busy.remove(&self.uid);
            }
        }
    }
}

/// The identity (uid, gid) of the process at the other end, from the kernel.
fn caller(stream: &UnixStream) -> Result<(u32, u32), String> {
    let cred = nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(|e| format!("cannot tell who is asking (SO_PEERCRED): {e}"))?;
    Ok((cred.uid(), cred.gid()))
}

/// The worker's database connection, opened on first use.
fn open<'a>(ctx: &Ctx, db: &'a mut Option<Db>) -> Result<&'a mut Db, LiveError> {
    if db.is_none() {
        *db = Some(Db::open(&ctx.home.db())?);
    }
    db.as_mut()
        .ok_or_else(|| LiveError::Other("no database".into()))
}

/// The one dispatch of a request.
fn dispatch(ctx: &Ctx, db: &mut Db, who: &Owner, req: Request) -> Response {
    let mut svc = Service {
        db,
        home: &ctx.home,
        access: ctx.access,
        qos: &ctx.qos,
        daemon: true,
    };
    let failed = |e: LiveError| Response::Failed(e.into());
    match req {
        Request::Submit(s) => match svc.submit(who, *s) {
            Ok(x) => {
                let _ = ctx.waker.send(());
                Response::Submitted(x)
            }
            Err(e) => Response::Failed(e.into()),
        },
        Request::Queue(f) => svc.queue(who, &f).map_or_else(failed, Response::Jobs),
        Request::Show(id) => svc
            .job(who, id)
            .map_or_else(failed, |j| Response::Job(j.map(Box::new))),
        Request::Cancel(ids) => {
            let r = svc.cancel(who, &ids);
            let _ = ctx.waker.send(());
            r.map_or_else(failed, Response::Cancelled)
        }
        Request::Stats => svc
            .stats()
            .map_or_else(failed, |s| Response::Stats(Box::new(s))),
        Request::Finished => svc.finished(who).map_or_else(failed, Response::Jobs),
        Request::Runner(call) if who.uid == ctx.me => {
            let wake = call.wakes_the_daemon();
            let r = super::runner::answer(svc.db, call);
            if wake {
                let _ = ctx.waker.send(());
            }
            r.map_or_else(failed, Response::Runner)
        }
        Request::Runner(_) => Response::Failed(Failure::new(
            FailureKind::Denied,
            "only the scheduler's runners record jobs: Access/permission denied",
        )),
    }
}

/// Checks a home against the scheduler's mode before anything in it is trusted, and makes a
/// shared scheduler's home: it must run as root; the home (created if missing) must be root's
/// and writable by root alone, and is made `0711` with `logs/` (users reach the socket and an
/// elastic job's allocation file by name, and can list, read or write nothing else there: the
/// database and the logs are `0600`); the marker `multi-user` tells clients never to open the
/// database themselves. A personal scheduler refuses a shared scheduler's home.
pub fn prepare_home(home: &Home, access: &Access) -> Result<(), LiveError> {
    if !access.multi_user {
        if home.is_multi_user() {
            return Err(LiveError::Other(format!(
                "{} is a shared scheduler's home: start it with --multi-user",
                home.dir.display()
            )));
        }
        return Ok(());
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(LiveError::Denied(
            "--multi-user: the scheduler must run as root (it starts each job as its owner)".into(),
        ));
    }
    // Modes are then what this module says, whatever umask the service manager gave us, and
    // jobs inherit 022 as from a login shell. Files that hold secrets never rely on it: the
    // database is created 0600 before SQLite opens it (`Home::open`), the lock and logs with
    // mode 0600.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let logs = home.logs();
    for d in [&home.dir, &logs] {
        if std::fs::symlink_metadata(d).is_err() {
            std::fs::create_dir_all(d).map_err(|e| LiveError::io(d, e))?;
        }
    }
    for p in [home.dir.clone(), logs.clone(), home.db(), home.lock()] {
        check_root_owned(&p)?;
    }
    check_parents(&home.dir)?;
    for d in [&home.dir, &logs] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711))
            .map_err(|e| LiveError::io(d, e))?;
    }
    // The lock too is root's alone: a user holding a shared lock on it would keep the daemon
    // from starting.
    let lock = home.lock();
    std::fs::OpenOptions::new()
        .mode(0o600)
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .and_then(|_| std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o600)))
        .map_err(|e| LiveError::io(&lock, e))?;
    let marker = home.multi_user_marker();
    std::fs::write(
        &marker,
        "The home of a shared mini-slurm scheduler (scheduler --multi-user).\n",
    )
    .map_err(|e| LiveError::io(&marker, e))
}

/// Refuses a home whose parent directories, up to `/`, are not all root's and closed to
/// others' writes (a sticky directory such as `/tmp` excepted, where others cannot rename or
/// remove what is root's): a user who may write a parent could put a home of theirs in its
/// place. The path is resolved first, so a symbolic link leads to the directories checked.
fn check_parents(dir: &Path) -> Result<(), LiveError> {
    let real = std::fs::canonicalize(dir).map_err(|e| LiveError::io(dir, e))?;
    for p in real.ancestors().skip(1) {
        let m = std::fs::metadata(p).map_err(|e| LiveError::io(p, e))?;
        let sticky = m.mode() & 0o1000 != 0;
        if m.uid() != 0 || (m.mode() & 0o022 != 0 && !sticky) {
            return Err(LiveError::Other(format!(
                "{}: a shared scheduler's home must be in directories root's and writable by root alone (found uid {}, mode {:o}, above the home {})",
                p.display(),
                m.uid(),
                m.mode() & 0o7777,
                dir.display()
            )));
        }
    }
    Ok(())
}

/// Refuses a path (if it exists) that is a link, not root's, or writable by others: a shared
/// scheduler trusts what its home holds (it runs each job as the uid its row records).
fn check_root_owned(p: &Path) -> Result<(), LiveError> {
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return Ok(());
    };
    if m.file_type().is_symlink() || m.uid() != 0 || m.mode() & 0o022 != 0 {
        return Err(LiveError::Other(format!(
            "{}: a shared scheduler's home must be root's and writable by root alone (found uid {}, mode {:o}{})",
            p.display(),
            m.uid(),
            m.mode() & 0o7777,
            if m.file_type().is_symlink() {
                ", a symbolic link"
            } else {
                ""
            }
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::clock::WallClock;
    use crate::live::remote;

    /// Clients that send a request one byte at a time are cut off once their time is spent,
    /// however often they send; others are served meanwhile.
    #[test]
    fn a_slow_client_is_cut_off_and_others_are_served() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        let (_clock, waker) = WallClock::new(Duration::from_secs(1), Arc::default());
        let budget = Duration::from_millis(800);
        let _server = start_with(&home, Access::default(), QosGrants::NONE, waker, budget).unwrap();
        let slow: Vec<_> = (0..WORKERS - 1)
            .map(|_| {
                let path = home.socket();
                std::thread::spawn(move || {
                    let began = Instant::now();
                    let mut s = UnixStream::connect(path).unwrap();
                    s.write_all(&1000u32.to_be_bytes()).unwrap();
                    // A byte every 100 ms: well within any per-call timeout.
                    while began.elapsed() < Duration::from_secs(5) {
                        if s.write_all(b" ").is_err() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    began.elapsed()
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let asked = Instant::now();
        let answer = remote::exchange(remote::connect(&home).unwrap(), &Request::Stats).unwrap();
        assert!(matches!(answer, Response::Stats(_)), "{answer:?}");
        assert!(
            asked.elapsed() < budget,
            "served meanwhile: {:?}",
            asked.elapsed()
        );
        for t in slow {
            let held = t.join().unwrap();
            assert!(held < budget + Duration::from_millis(700), "held {held:?}");
        }
    }

    /// Only the daemon's own user may send a runner's records: a shared scheduler's users
    /// cannot claim, pin or end jobs through it.
    #[test]
    fn only_the_daemons_user_records_for_runners() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        let (_clock, waker) = WallClock::new(Duration::from_secs(1), Arc::default());
        let access = Access {
            multi_user: true,
            max_priority: None,
        };
        let ctx = Ctx {
            home: home.clone(),
            access,
            qos: QosGrants::NONE,
            waker,
            me: 0,
            budget: IO_TIMEOUT,
            busy: PerUid::new(PER_UID),
        };
        let mut db = Db::open(&home.db()).unwrap();
        let call = || Request::Runner(super::super::protocol::RunnerCall::TimedOut { job: 1 });
        let user = Owner::of(1000, 1000);
        assert!(matches!(
            dispatch(&ctx, &mut db, &user, call()),
            Response::Failed(f) if f.kind == FailureKind::Denied
        ));
        assert!(matches!(
            dispatch(&ctx, &mut db, &Owner::of(0, 0), call()),
            Response::Runner(super::super::protocol::RunnerAnswer::Done)
        ));
    }

    #[test]
    fn a_uid_holds_at_most_its_share_of_the_workers() {
        let busy = PerUid::new(2);
        let (a1, _a2) = (busy.enter(7).unwrap(), busy.enter(7).unwrap());
        assert!(busy.enter(7).is_none());
        assert!(busy.enter(8).is_some());
        drop(a1);
        assert!(busy.enter(7).is_some());
    }

    /// A home below a directory that is not root's, or that others may write without the
    /// sticky bit, is refused, naming that directory; a sticky one (as /tmp) is accepted.
    #[test]
    fn a_home_below_a_directory_others_may_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        if !nix::unistd::geteuid().is_root() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI runs as root: this test must run there"
            );
            eprintln!("skipped: needs root (directories of root's and of another uid)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("top");
        let home = top.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mode = |p: &Path, m| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
        mode(dir.path(), 0o755).unwrap();
        mode(&top, 0o755).unwrap();
        check_parents(&home).unwrap();
        for m in [0o775, 0o757] {
            mode(&top, m).unwrap();
            let e = check_parents(&home).unwrap_err().to_string();
            assert!(e.starts_with(&format!("{}: ", top.display())), "{e}");
        }
        // The daemon's start refuses it so (the test runs as root).
        let shared = Access {
            multi_user: true,
            max_priority: Some(0),
        };
        let e = prepare_home(&Home::at(&home), &shared)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(&format!("{}: ", top.display())), "{e}");
        mode(&top, 0o1777).unwrap();
        check_parents(&home).unwrap();
        mode(&top, 0o755).unwrap();
        std::os::unix::fs::chown(&top, Some(65534), None).unwrap();
        let e = check_parents(&home).unwrap_err().to_string();
        assert!(e.contains("found uid 65534"), "{e}");
        // Through a symbolic link: the directories of its target are checked.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&home, &link).unwrap();
        assert!(check_parents(&link).is_err());
    }
}
