//! The wall clock of live mode and its wake-up channel.
//!
//! The daemon sleeps in [`WallClock::wait_until`] until the next deadline the driver knows (a
//! time limit, a kill after the grace period, a policy's wake-up), at most `max_sleep`, or
//! until something outside happens: a client's datagram on the daemon's socket (a submission,
//! a cancellation) or a job's end (the executor's reaper threads). Both send on one channel;
//! a burst of events wakes the daemon once.

use super::{LiveError, now_ms};
use crate::driver::Clock;
use crate::time::Time;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

/// What wakes the daemon: send `()` on it.
pub type Waker = Sender<()>;

/// A clock on the wall: waits for a deadline, a client's datagram or a job's end.
pub struct WallClock {
    rx: Receiver<()>,
    max_sleep: Duration,
    shutdown: Arc<AtomicBool>,
}

impl WallClock {
    /// A clock that never sleeps longer than `max_sleep` and not at all once `shutdown` is
    /// set, and the sender that wakes it.
    pub fn new(max_sleep: Duration, shutdown: Arc<AtomicBool>) -> (WallClock, Waker) {
        let (tx, rx) = channel();
        (
            WallClock {
                rx,
                max_sleep,
                shutdown,
            },
            tx,
        )
    }
}

/// Binds the daemon's socket at `path` (replacing a stale one) and wakes the clock on every
/// datagram, from a thread of its own.
pub fn listen(path: &Path, waker: Waker) -> Result<(), LiveError> {
    let _ = std::fs::remove_file(path);
    let sock = UnixDatagram::bind(path).map_err(|e| LiveError::io(path, e))?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while sock.recv(&mut buf).is_ok() {
            if waker.send(()).is_err() {
                break;
            }
        }
    });
    Ok(())
}

impl Clock for WallClock {
    fn now(&self) -> Time {
        Time(now_ms())
    }
    fn wait_until(&mut self, deadline: Option<Time>) {
        if self.shutdown.load(Ordering::SeqCst) {
            return;
        }
        let mut wait = self.max_sleep;
        if let Some(d) = deadline {
            let ms = (d.0 - now_ms()).max(0) as u64;
            wait = wait.min(Duration::from_millis(ms));
        }
        if self.rx.recv_timeout(wait).is_ok() {
            while self.rx.try_recv().is_ok() {}
        }
    }
}
