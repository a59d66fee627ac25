//! The client side of the daemon's socket: connect, send one [`Request`], read one
//! [`Response`]. No database is opened on this path, which is what makes a submission through
//! a running daemon cheap (see docs/performance.md).

use super::Home;
use super::protocol::{FrameError, MAX_RESPONSE, Request, Response, read_frame, write_frame};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// How long a client waits for the daemon's answer (it may wait on a locked database for the
/// store's busy timeout, 30 s by default).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(90);

/// The request could not be carried to the daemon, or its answer back.
#[derive(Debug, thiserror::Error)]
pub enum Lost {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Frame(#[from] FrameError),
}

/// Connects to the daemon of `home`.
pub fn connect(home: &Home) -> std::io::Result<UnixStream> {
    UnixStream::connect(home.socket())
}

/// Connects to the daemon of `home` without waiting: a daemon whose queue of connections is
/// full (stopped, stuck) is an error at once, as one that does not listen.
pub fn connect_now(home: &Home) -> std::io::Result<UnixStream> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    connect(fd.as_raw_fd(), &UnixAddr::new(&home.socket())?)?;
    let s = UnixStream::from(fd);
    s.set_nonblocking(false)?;
    Ok(s)
}

/// Sends `req` on a fresh connection and reads the answer.
pub fn exchange(s: UnixStream, req: &Request) -> Result<Response, Lost> {
    exchange_within(s, req, ANSWER_TIMEOUT)
}

/// [`exchange`], giving up on a daemon that takes longer than `wait` to read or answer.
pub fn exchange_within(mut s: UnixStream, req: &Request, wait: Duration) -> Result<Response, Lost> {
    s.set_read_timeout(Some(wait))?;
    s.set_write_timeout(Some(wait))?;
    write_frame(&mut s, req)?;
    Ok(read_frame(&mut s, MAX_RESPONSE)?)
}
