//! The daemon's socket: a Unix stream socket in the home (`daemon.sock`) on which clients send
//! one [`Request`] per connection and read one [`Response`].
//!
//! The daemon learns who asks from the kernel (`SO_PEERCRED`: the uid and gid of the process
//! that connected), never from the request. A personal scheduler's socket is its owner's
//! (0600, and other uids are refused); a shared one's (`--multi-user`) is world-connectable
//! (0666), in a home users may traverse but not list or write ([`prepare_home`]).
//!
//! A fixed pool of [`WORKERS`] threads accepts and serves connections, each with its own
//! database connection, a read and write timeout and a bounded request size: a slow or
//! malicious client holds one worker for at most [`IO_TIMEOUT`] and never the scheduling
//! loop, which only hears "wake up" from a worker after a submission or a cancellation.

use super::client::Owner;
use super::clock::Waker;
use super::protocol::{
    Failure, FailureKind, MAX_REQUEST, Request, Response, read_frame, write_frame,
};
use super::service::{Access, Service};
use super::store::Db;
use super::{Home, LiveError};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Connections served at once.
pub const WORKERS: usize = 8;
/// The longest a client may take to send its request, or to read the answer.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

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
    waker: Waker,
    /// The daemon's own uid: the only caller of a personal scheduler.
    me: u32,
}

/// Binds the home's socket (replacing a stale one: the caller holds the home's lock) and
/// starts the workers.
pub fn start(home: &Home, access: Access, waker: Waker) -> Result<Server, LiveError> {
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
        waker,
        me: nix::unistd::geteuid().as_raw(),
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

/// Serves one connection: who, what, the answer.
fn serve(ctx: &Ctx, db: &mut Option<Db>, mut stream: UnixStream) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let answer = match caller(&stream) {
        Err(e) => Response::Failed(Failure::new(FailureKind::Failed, e)),
        Ok(who) if !ctx.access.multi_user && who.uid != ctx.me => Response::Failed(Failure::new(
            FailureKind::Denied,
            format!(
                "this scheduler is personal to uid {} (start a shared one with --multi-user): Access/permission denied",
                ctx.me
            ),
        )),
        Ok(who) => match read_frame::<Request>(&mut stream, MAX_REQUEST) {
            Ok(req) => match open(ctx, db) {
                Ok(db) => dispatch(ctx, db, &who, req),
                Err(e) => Response::Failed(e.into()),
            },
            Err(super::protocol::FrameError::Closed) => return,
            Err(e) => Response::Failed(Failure::new(FailureKind::Invalid, e.to_string())),
        },
    };
    let _ = write_frame(&mut stream, &answer);
}

/// The identity of the process at the other end, from the kernel.
fn caller(stream: &UnixStream) -> Result<Owner, String> {
    let cred = nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(|e| format!("cannot tell who is asking (SO_PEERCRED): {e}"))?;
    Ok(Owner::of(cred.uid(), cred.gid()))
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
    // Modes are then what this module says, whatever umask the service manager gave us.
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
    for d in [&home.dir, &logs] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711))
            .map_err(|e| LiveError::io(d, e))?;
    }
    // The lock too is root's alone: a user holding a shared lock on it would keep the daemon
    // from starting.
    let lock = home.lock();
    std::fs::OpenOptions::new()
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
