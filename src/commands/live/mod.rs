//! Live-mode commands, one file per verb: `scheduler`, `submit`, `queue`, `show`, `cancel`,
//! `stats`, `export-trace`, and the hidden `job-runner`. Each turns its arguments into a typed
//! request, calls `mini_slurm::live::client` (which asks the daemon through its socket, or
//! works on a personal home's database when no daemon runs) and prints the result; the times
//! and durations they print are formatted here, in one place.

pub mod cancel;
pub mod export_trace;
pub mod format;
pub mod history;
pub mod job_runner;
pub mod queue;
pub mod scheduler;
pub mod show;
pub mod stats;
pub mod stop;
pub mod submit;

use super::CliError;
use mini_slurm::live::Home;
use mini_slurm::live::client::Client;
use mini_slurm::time::{Dur, fmt_slurm_duration};

fn input(e: impl Into<anyhow::Error>) -> CliError {
    CliError::Input(e.into())
}
fn failed(e: impl Into<anyhow::Error>) -> CliError {
    CliError::Failed(e.into())
}

/// The client of the home (`$MINI_SLURM_HOME`, the shared scheduler's, or `~/.mini_slurm`),
/// creating a personal home if needed: for commands that change something (`submit`).
fn client() -> Result<Client, CliError> {
    Client::open(&Home::from_env()).map_err(failed)
}

/// The client of the home if a daemon serves it or it has a database: read-only commands (and
/// `cancel`, which has nothing to cancel without one) create nothing.
fn existing_client() -> Result<Option<Client>, CliError> {
    Client::open_existing(&Home::from_env()).map_err(failed)
}

/// What `show` and `queue` print for a detail withheld from another user.
const HIDDEN: &str = "(hidden)";

/// Slurm's exit code display, `code:signal`.
fn exit_code_str(code: Option<i32>, signal: Option<i32>) -> String {
    format!("{}:{}", code.unwrap_or(0), signal.unwrap_or(0))
}

/// Milliseconds as seconds with one decimal (negative: 0).
fn secs(ms: i64) -> String {
    format!("{:.1}", ms.max(0) as f64 / 1000.0)
}

/// A time limit in Slurm's format, `UNLIMITED` without one.
fn time_limit(ms: Option<i64>) -> String {
    ms.map_or("UNLIMITED".to_string(), |l| fmt_slurm_duration(Dur(l)))
}

/// Slurm's time format, `YYYY-MM-DDTHH:MM:SS` (UTC), which scripts split on `T`.
fn iso_time(ms: i64) -> String {
    utc(ms).replacen(' ', "T", 1)
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The name of the user running the command, as the queue records it (`--me`).
fn my_name() -> String {
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    mini_slurm::live::client::Owner::of(uid.as_raw(), gid.as_raw()).user
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(iso_time(0), "1970-01-01T00:00:00");
        assert_eq!(utc(951_782_400_000 + 3_723_000), "2000-02-29 01:02:03");
        assert_eq!(secs(-5), "0.0");
        assert_eq!(exit_code_str(Some(1), None), "1:0");
        assert_eq!(time_limit(None), "UNLIMITED");
    }
}
