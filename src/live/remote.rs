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

/// Sends `req` on a fresh connection and reads the answer.
pub fn exchange(mut s: UnixStream, req: &Request) -> Result<Response, Lost> {
    s.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    s.set_write_timeout(Some(ANSWER_TIMEOUT))?;
    write_frame(&mut s, req)?;
    Ok(read_frame(&mut s, MAX_RESPONSE)?)
}
