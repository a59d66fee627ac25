//! The wall clock of live mode and its wake-up channel.
//!
//! Its time is [`TimeBase`]: the wall time when the daemon started plus the monotonic time
//! elapsed since, so a step of the system clock (NTP, an admin's `date -s`) neither stretches
//! nor shortens a time limit or a grace period. Recorded times are in the same milliseconds
//! since the Unix epoch as before, and drift from the system clock only by its steps since the
//! daemon started.
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
use std::time::{Duration, Instant};

/// What wakes the daemon: send `()` on it.
pub type Waker = Sender<()>;

/// Milliseconds since the Unix epoch that advance with the monotonic clock: the wall time at
/// creation plus the monotonic time elapsed since.
#[derive(Clone, Copy, Debug)]
pub struct TimeBase {
    wall0_ms: i64,
    mono0: Instant,
}

impl TimeBase {
    /// A base anchored at the wall time now.
    pub fn new() -> TimeBase {
        TimeBase {
            wall0_ms: now_ms(),
            mono0: Instant::now(),
        }
    }
    /// The time now on this base.
    pub fn now(&self) -> Time {
        let ms = i64::try_from(self.mono0.elapsed().as_millis()).unwrap_or(i64::MAX / 4);
        Time(self.wall0_ms.saturating_add(ms))
    }
}

impl Default for TimeBase {
    fn default() -> TimeBase {
        TimeBase::new()
    }
}

/// A clock on the wall: waits for a deadline, a client's datagram or a job's end.
pub struct WallClock {
    rx: Receiver<()>,
    max_sleep: Duration,
    shutdown: Arc<AtomicBool>,
    base: TimeBase,
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
                base: TimeBase::new(),
            },
            tx,
        )
    }

    /// The time base of this clock (the executor's deadlines must use the same).
    pub fn base(&self) -> TimeBase {
        self.base
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
        self.base.now()
    }
    fn wait_until(&mut self, deadline: Option<Time>) {
        if self.shutdown.load(Ordering::SeqCst) {
            return;
        }
        let mut wait = self.max_sleep;
        if let Some(d) = deadline {
            let ms = (d.0 - self.base.now().0).max(0) as u64;
            wait = wait.min(Duration::from_millis(ms));
        }
        if self.rx.recv_timeout(wait).is_ok() {
            while self.rx.try_recv().is_ok() {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_base_starts_at_the_wall_clock_and_never_goes_back() {
        let b = TimeBase::new();
        let t0 = b.now();
        assert!((t0.0 - now_ms()).abs() < 1000, "{t0:?}");
        std::thread::sleep(Duration::from_millis(20));
        let t1 = b.now();
        assert!(t1.0 - t0.0 >= 20, "{t0:?} {t1:?}");
    }
}
