//! Failpoints: named places in the daemon where a debug build can be told to die at once, as
//! a crash (`kill -9`) there would — `MINI_SLURM_FAILPOINT=start:configured mini-slurm
//! scheduler`. The crash tests (tests/it/live_crash.rs) stop the daemon at each of them and
//! check that a restart resolves every job: each runs exactly once and leaves no process
//! behind. Release builds compile them to nothing and never read the variable.
//!
//! The points, in the order a job meets them (docs/live.md lists what each leaves behind):
//! - `start:configured`: the launch is recorded (CONFIGURING), the runner not yet forked;
//! - `start:forked`: the runner is forked, its pid not yet recorded by the daemon;
//! - `start:recorded`: the start is recorded;
//! - `end:reaped`: the runner has exited, the daemon has not recorded the end;
//! - `end:recorded`: the end is recorded;
//! - `cancel:relayed`: a cancellation reached the engine, the job is not yet signalled;
//! - `cancel:signalled`: the job's runner is signalled, the end not yet recorded;
//! - `requeue:marked`: a preemption is recorded, the job not yet signalled;
//! - `requeue:reaped`: the preempted job's runner has exited, the requeue is not recorded.

/// Every failpoint, for tests and docs.
pub const ALL: [&str; 9] = [
    "start:configured",
    "start:forked",
    "start:recorded",
    "end:reaped",
    "end:recorded",
    "cancel:relayed",
    "cancel:signalled",
    "requeue:marked",
    "requeue:reaped",
];

/// Dies here (SIGKILL to this process) if `$MINI_SLURM_FAILPOINT` names this point, in debug
/// builds only.
#[inline]
pub fn hit(name: &str) {
    #[cfg(debug_assertions)]
    {
        static ARMED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        let armed = ARMED.get_or_init(|| std::env::var("MINI_SLURM_FAILPOINT").ok());
        if armed.as_deref() == Some(name) {
            live_log!("mini-slurm: failpoint {name}: dying here");
            let _ =
                nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL);
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}

/// Whether an injected fault named `name` should happen now: `$MINI_SLURM_FAULT=name:N` makes
/// the first N calls return true (debug builds only), e.g. `fork:3` makes three forks of a
/// runner fail with EAGAIN, as a machine out of processes would.
pub fn fault(name: &str) -> bool {
    #[cfg(debug_assertions)]
    {
        use std::sync::atomic::{AtomicU32, Ordering};
        static LEFT: std::sync::OnceLock<Option<(String, AtomicU32)>> = std::sync::OnceLock::new();
        let armed = LEFT.get_or_init(|| {
            let v = std::env::var("MINI_SLURM_FAULT").ok()?;
            let (n, count) = v.split_once(':')?;
            Some((n.to_string(), AtomicU32::new(count.parse().ok()?)))
        });
        if let Some((n, left)) = armed
            && n == name
        {
            return left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| l.checked_sub(1))
                .is_ok();
        }
        false
    }
    #[cfg(not(debug_assertions))]
    {
        let _ = name;
        false
    }
}
