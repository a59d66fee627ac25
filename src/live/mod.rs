//! Live mode: the same engine and driver loop as the simulator, with a wall clock, a process
//! executor and an SQLite store, running real jobs on this machine.
//!
//! Everything lives in one directory, `$MINI_SLURM_HOME` (default `~/.mini_slurm`): the
//! database `jobs.db`, the per-job logs `logs/job_<id>.out|.err`, the daemon's socket
//! `daemon.sock` (clients send it a datagram after each change, so the daemon acts at once),
//! its lock `daemon.lock` (one daemon per home) and its log `daemon.log`.
//!
//! Each job runs under a small supervisor, `mini-slurm job-runner` (Slurm's slurmstepd, in
//! miniature): it starts the job in its own process group with its limits, waits for it,
//! records its exit status and resource usage in the database, and forwards signals from the
//! daemon to the job's whole group. Because the runner writes the result itself, a daemon
//! killed with SIGKILL loses nothing: on restart it re-adopts jobs whose runner still runs and
//! finalizes those that ended meanwhile.

pub mod daemon;
pub mod db;
pub mod machine;
pub mod runner;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// The state directory.
#[derive(Clone, Debug)]
pub struct Home {
    pub dir: PathBuf,
    /// `~/.mini_slurm` (no `$MINI_SLURM_HOME`): the seeds' paths `~/.mini_slurm_logs` and
    /// `~/.mini_slurm.db` are kept as symbolic links into it.
    legacy: Option<PathBuf>,
}

impl Home {
    /// `$MINI_SLURM_HOME`, else `~/.mini_slurm`.
    pub fn from_env() -> Home {
        match std::env::var_os("MINI_SLURM_HOME").filter(|v| !v.is_empty()) {
            Some(d) => Home::at(d),
            None => {
                let home =
                    std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
                Home {
                    dir: home.join(".mini_slurm"),
                    legacy: Some(home),
                }
            }
        }
    }
    pub fn at(dir: impl Into<PathBuf>) -> Home {
        Home {
            dir: dir.into(),
            legacy: None,
        }
    }
    pub fn db(&self) -> PathBuf {
        self.dir.join("jobs.db")
    }
    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }
    pub fn out_log(&self, id: i64) -> PathBuf {
        self.logs().join(format!("job_{id}.out"))
    }
    pub fn err_log(&self, id: i64) -> PathBuf {
        self.logs().join(format!("job_{id}.err"))
    }
    /// An elastic job's allocation file (`MINI_SLURM_ALLOC_FILE`), rewritten on every resize.
    pub fn alloc_file(&self, id: i64) -> PathBuf {
        self.logs().join(format!("job_{id}.alloc"))
    }
    pub fn socket(&self) -> PathBuf {
        self.dir.join("daemon.sock")
    }
    pub fn lock(&self) -> PathBuf {
        self.dir.join("daemon.lock")
    }
    pub fn daemon_log(&self) -> PathBuf {
        self.dir.join("daemon.log")
    }

    /// Creates the directory tree and opens the database.
    pub fn open(&self) -> Result<db::Db, LiveError> {
        std::fs::create_dir_all(self.logs()).map_err(|e| LiveError::io(&self.dir, e))?;
        let db = db::Db::open(&self.db())?;
        if let Some(home) = &self.legacy {
            // Best effort: the seeds' documents `cat ~/.mini_slurm_logs/job_1.out`.
            for (link, target) in [
                (home.join(".mini_slurm_logs"), self.logs()),
                (home.join(".mini_slurm.db"), self.db()),
            ] {
                if std::fs::symlink_metadata(&link).is_err() {
                    let _ = std::os::unix::fs::symlink(target, link);
                }
            }
        }
        Ok(db)
    }

    /// Wakes the daemon, if one listens (best effort).
    pub fn notify(&self) {
        if let Ok(s) = UnixDatagram::unbound() {
            let _ = s.send_to(b"w", self.socket());
        }
    }

    /// Whether a daemon holds this home's lock.
    pub fn daemon_running(&self) -> bool {
        let Ok(f) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.lock())
        else {
            return false;
        };
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockSharedNonblock).is_err()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("{path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

impl LiveError {
    pub fn db(path: &Path, source: rusqlite::Error) -> LiveError {
        LiveError::Db {
            path: path.to_path_buf(),
            source,
        }
    }
    pub fn io(path: &Path, source: std::io::Error) -> LiveError {
        LiveError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A dependency kind, as Slurm's `--dependency`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DepKind {
    /// The other job has started.
    After,
    /// The other job has ended, however.
    AfterAny,
    /// The other job completed successfully.
    AfterOk,
    /// The other job ended unsuccessfully.
    AfterNotOk,
}

/// Parses `afterok:12:13,afterany:7` into (kind, job id) pairs.
pub fn parse_dependency(s: &str) -> Result<Vec<(DepKind, i64)>, String> {
    let mut out = Vec::new();
    for part in s.split([',', '?']).filter(|p| !p.is_empty()) {
        let mut it = part.split(':');
        let kind = match it.next().unwrap_or("") {
            "after" => DepKind::After,
            "afterany" => DepKind::AfterAny,
            "afterok" => DepKind::AfterOk,
            "afternotok" => DepKind::AfterNotOk,
            other => {
                return Err(format!(
                    "unknown dependency type '{other}' (expected after, afterany, afterok or afternotok)"
                ));
            }
        };
        let mut any = false;
        for id in it {
            let id: i64 = id
                .parse()
                .ok()
                .filter(|&i| i > 0)
                .ok_or_else(|| format!("invalid job id '{id}' in dependency '{part}'"))?;
            out.push((kind, id));
            any = true;
        }
        if !any {
            return Err(format!(
                "dependency '{part}' names no job (expected e.g. afterok:12)"
            ));
        }
    }
    if out.is_empty() {
        return Err("empty dependency (expected e.g. afterok:12)".into());
    }
    Ok(out)
}

/// Parses Slurm's `--array`: `0-15`, `1,3,5-7`, `0-99%4`, `0-10:2`. Returns the task ids and
/// the limit of simultaneously running tasks.
pub fn parse_array(s: &str) -> Result<(Vec<i64>, Option<i64>), String> {
    let bad =
        || format!("invalid array spec '{s}' (expected e.g. 0-15, 1,3,5-7, 0-99%4 or 0-10:2)");
    let (body, limit) = match s.split_once('%') {
        Some((b, l)) => (
            b,
            Some(l.parse::<i64>().ok().filter(|&l| l > 0).ok_or_else(bad)?),
        ),
        None => (s, None),
    };
    let mut ids = Vec::new();
    for part in body.split(',') {
        let (range, step) = match part.split_once(':') {
            Some((r, st)) => (
                r,
                st.parse::<i64>().ok().filter(|&x| x > 0).ok_or_else(bad)?,
            ),
            None => (part, 1),
        };
        let (a, b) = range.split_once('-').unwrap_or((range, range));
        let a: i64 = a.trim().parse().ok().filter(|&x| x >= 0).ok_or_else(bad)?;
        let b: i64 = b.trim().parse().ok().filter(|&x| x >= a).ok_or_else(bad)?;
        if b - a > 100_000 {
            return Err(format!("array spec '{s}' has more than 100000 tasks"));
        }
        ids.extend((a..=b).step_by(step as usize));
    }
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Err(bad());
    }
    Ok((ids, limit))
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Slurm's exit code display, `code:signal`.
pub fn exit_code_str(code: Option<i32>, signal: Option<i32>) -> String {
    format!("{}:{}", code.unwrap_or(0), signal.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies() {
        assert_eq!(
            parse_dependency("afterok:12:13,afterany:7").unwrap(),
            [
                (DepKind::AfterOk, 12),
                (DepKind::AfterOk, 13),
                (DepKind::AfterAny, 7)
            ]
        );
        assert!(parse_dependency("afterwards:1").is_err());
        assert!(parse_dependency("afterok").is_err());
        assert!(parse_dependency("afterok:x").is_err());
    }

    #[test]
    fn arrays() {
        assert_eq!(
            parse_array("1-10%2").unwrap(),
            ((1..=10).collect(), Some(2))
        );
        assert_eq!(parse_array("1,3,5-7").unwrap(), (vec![1, 3, 5, 6, 7], None));
        assert_eq!(parse_array("0-10:5").unwrap(), (vec![0, 5, 10], None));
        for bad in ["", "a-b", "5-1", "1-3%0", "1-3%x", "1:0"] {
            assert!(parse_array(bad).is_err(), "{bad}");
        }
    }
}
