//! `mini-slurm stop`: stops the home's scheduler, as `scontrol shutdown` stops slurmctld — a
//! SIGTERM to the daemon whose pid its lock file names, then a wait until the lock is free.
//! Jobs still running go on under their runners and are re-adopted when it starts again.
//! Stopping another user's (or root's shared) scheduler is refused by the kernel: EPERM.

use super::{failed, input};
use crate::commands::CliResult;
use anyhow::anyhow;
use mini_slurm::live::Home;
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait for the scheduler to exit
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    timeout: f64,
}

pub fn run(a: StopArgs) -> CliResult {
    if !(a.timeout >= 0.0 && a.timeout.is_finite()) {
        return Err(input(anyhow!("--timeout: expected seconds ≥ 0")));
    }
    let home = Home::from_env();
    let denied = || {
        failed(anyhow!(
            "cannot stop the scheduler of {}: Access/permission denied (it runs as another user)",
            home.dir.display()
        ))
    };
    // A shared scheduler's lock is root's alone: others may not stop it.
    if let Err(e) = std::fs::File::open(home.lock())
        && e.kind() == std::io::ErrorKind::PermissionDenied
    {
        return Err(denied());
    }
    let pid = match home.daemon_pid() {
        Ok(Some(pid)) => pid,
        Ok(None) if !home.daemon_running() => {
            return Err(failed(anyhow!(
                "no scheduler runs for {}",
                home.dir.display()
            )));
        }
        Ok(None) => {
            return Err(failed(anyhow!(
                "the scheduler of {} did not record its pid (an older version): stop it with Ctrl+C or kill",
                home.dir.display()
            )));
        }
        Err(_) => return Err(denied()),
    };
    match kill(Pid::from_raw(pid), Signal::SIGTERM) {
        Ok(()) => {}
        Err(Errno::EPERM) => return Err(denied()),
        Err(Errno::ESRCH) => {}
        Err(e) => {
            return Err(failed(anyhow!(
                "cannot signal the scheduler (pid {pid}): {e}"
            )));
        }
    }
    let deadline = Instant::now() + Duration::from_secs_f64(a.timeout);
    while home.daemon_running() {
        if Instant::now() >= deadline {
            return Err(failed(anyhow!(
                "the scheduler (pid {pid}) is still running after {} s",
                a.timeout
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "Scheduler stopped (pid {pid}); running jobs go on and are re-adopted when it starts again"
    );
    Ok(())
}
