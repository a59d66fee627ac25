//! Live mode: the same engine and driver loop as the simulator, with a wall clock, a process
//! executor and an SQLite store, running real jobs on this machine.
//!
//! Everything lives in one directory, the home: `$MINI_SLURM_HOME`, else `~/.mini_slurm` for
//! a personal scheduler and [`SYSTEM_HOME`] for the shared one (`scheduler --multi-user`). It
//! holds the database `jobs.db`, the per-job logs `logs/job_<id>.out|.err`, the daemon's
//! socket `daemon.sock` (clients send it requests, [`protocol`]), its wake-up socket
//! `daemon.wake` (runners and direct clients send it a datagram after each change, so the
//! daemon acts at once), its lock `daemon.lock` (one daemon per home) and its log `daemon.log`.
//!
//! The parts, each in its own file:
//! - [`client`]: the typed client API (submit, queue, show, cancel, stats, export) that the
//!   command line calls: through the daemon's socket when one runs ([`remote`]), else on the
//!   database directly (a personal home only).
//! - [`service`]: what each request does, for a caller whose identity is known, with the
//!   authorization rules (owners and root); [`server`]: the daemon's socket, which learns each
//!   caller's identity from the kernel and answers one [`protocol::Request`] per connection.
//! - [`store`]: the SQLite store, the only place that knows SQL (typed rows and queries).
//! - [`clock`]: the wall clock, which sleeps until a deadline or an outside event (a request,
//!   a job's end).
//! - [`executor`]: the process executor, which starts a runner per job, picks CPUs
//!   ([`slots`]: slots on the real CPU ids of the daemon's mask) and GPU names, relays
//!   cancellations and backs up time limits; what it needs recorded goes through its
//!   [`executor::Ledger`], which the daemon implements over the store.
//! - [`sqlite_store`]: the `driver::Store` over the database (hand-over of pending jobs with
//!   their dependencies, array limits and admission; starts, ends, cancellations) and the
//!   executor's ledger.
//! - [`daemon`]: `run(config)`, the wiring; `recovery.rs`: what a restarted daemon does with
//!   the jobs recorded running.
//! - [`publish`]: the snapshot the loop publishes after each step (queue, running jobs,
//!   plan, counters) and the plan writer that stores expected starts; [`http`]: the
//!   dashboard, Prometheus metrics and JSON API served from those snapshots and the store.
//! - [`runner`]: the per-job supervisor (it starts the job as its owner, [`output`]: where
//!   the job writes); [`contain`]: how a job's processes are kept together and all killed at
//!   its end; [`machine`]: what this machine offers; [`syntax`]: dependencies, arrays, CPU
//!   lists, signals.
//!
//! Lifecycle of a job: the daemon (or, with none running, a client of a personal home) inserts
//! it PENDING; the store hands it to
//! the engine once its dependencies and array limit allow (with its reason recorded while it
//! is held back); the engine starts it; the executor records its CPUs and GPUs and starts
//! `mini-slurm job-runner` (Slurm's slurmstepd, in miniature), which starts the job in its own
//! process group with its limits, waits for it, records its exit status and resource usage,
//! forwards signals from the daemon to the job's whole group, and wakes the daemon; the
//! executor's reaper thread learns of the runner's exit and the store records the final state.
//!
//! Crash safety: because the runner writes the result itself, a daemon killed with SIGKILL
//! loses nothing: on restart it re-adopts jobs whose runner still runs (same pid and start
//! time) and finalizes those that ended meanwhile; a job whose runner vanished without a record
//! ends FAILED with reason `NodeFail`. A submission is acknowledged once committed, and one
//! whose acknowledgement was lost is sent again with the same token and stored once.

/// Writes one line on stderr, never failing: the daemon and the runners keep working when
/// their log cannot be written (a full disk), where `eprintln!` would panic. (Defined before
/// the submodules, which use it by name.)
macro_rules! live_log {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod client;
pub mod clock;
pub mod contain;
pub mod daemon;
pub mod directives;
pub mod executor;
pub mod failpoint;
pub mod http;
pub mod machine;
pub mod output;
pub mod protocol;
pub mod publish;
mod recovery;
pub mod remote;
pub mod runner;
pub mod server;
pub mod service;
pub mod slots;
pub mod slurm;
mod spawn;
pub mod spawner;
pub mod sqlite_store;
pub mod store;
pub mod syntax;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// The home of the shared scheduler (`scheduler --multi-user`) when `$MINI_SLURM_HOME` does
/// not name one; clients use it when it exists and `$MINI_SLURM_HOME` is not set.
pub const SYSTEM_HOME: &str = "/var/lib/mini-slurm";

/// The state directory.
#[derive(Clone, Debug)]
pub struct Home {
    pub dir: PathBuf,
    /// `~/.mini_slurm` (no `$MINI_SLURM_HOME`): the seeds' paths `~/.mini_slurm_logs` and
    /// `~/.mini_slurm.db` are kept as symbolic links into it.
    legacy: Option<PathBuf>,
}

impl Home {
    /// The home clients use: `$MINI_SLURM_HOME`, else the shared scheduler's
    /// ([`SYSTEM_HOME`]) if this machine has one, else `~/.mini_slurm`.
    pub fn from_env() -> Home {
        if std::env::var_os("MINI_SLURM_HOME").is_none_or(|v| v.is_empty())
            && Path::new(SYSTEM_HOME).is_dir()
        {
            return Home::at(SYSTEM_HOME);
        }
        Home::personal_from_env()
    }

    /// A personal scheduler's home: `$MINI_SLURM_HOME`, else `~/.mini_slurm`.
    pub fn personal_from_env() -> Home {
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

    /// The shared scheduler's home: `$MINI_SLURM_HOME`, else [`SYSTEM_HOME`].
    pub fn system_from_env() -> Home {
        match std::env::var_os("MINI_SLURM_HOME").filter(|v| !v.is_empty()) {
            Some(d) => Home::at(d),
            None => Home::at(SYSTEM_HOME),
        }
    }
    /// The home in `dir`. `~/.mini_slurm` named explicitly (as the daemon passes it to its
    /// runners and jobs in `MINI_SLURM_HOME`) is the default home, with its seed-era paths.
    pub fn at(dir: impl Into<PathBuf>) -> Home {
        let dir = dir.into();
        let legacy = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .filter(|h| h.join(".mini_slurm") == dir);
        Home { dir, legacy }
    }
    /// The database: `~/.mini_slurm.db` for the default home (the seeds' path, a real file, so
    /// that their clean-up step `rm ~/.mini_slurm.db` empties the queue), else `jobs.db` in the
    /// home.
    pub fn db(&self) -> PathBuf {
        match &self.legacy {
            Some(h) => h.join(".mini_slurm.db"),
            None => self.dir.join("jobs.db"),
        }
    }
    /// The jobs' output folder: `~/.mini_slurm_logs` for the default home (the seeds' path),
    /// else `logs` in the home.
    pub fn logs(&self) -> PathBuf {
        match &self.legacy {
            Some(h) => h.join(".mini_slurm_logs"),
            None => self.dir.join("logs"),
        }
    }
    /// A file next to the database (`-wal`, `-shm`).
    fn db_side(&self, suffix: &str) -> PathBuf {
        let mut p = self.db().into_os_string();
        p.push(suffix);
        PathBuf::from(p)
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
    /// The daemon's request socket (a Unix stream socket; world-connectable for a shared
    /// scheduler, whose home users may traverse but not list).
    pub fn socket(&self) -> PathBuf {
        self.dir.join("daemon.sock")
    }
    /// The daemon's wake-up socket (Unix datagrams, from runners and direct clients).
    pub fn wake_socket(&self) -> PathBuf {
        self.dir.join("daemon.wake")
    }
    /// Present in the home of a shared scheduler (`scheduler --multi-user`): clients never
    /// write its database themselves.
    pub fn multi_user_marker(&self) -> PathBuf {
        self.dir.join("multi-user")
    }
    /// Whether this is a shared scheduler's home.
    pub fn is_multi_user(&self) -> bool {
        self.multi_user_marker().exists()
    }
    pub fn lock(&self) -> PathBuf {
        self.dir.join("daemon.lock")
    }
    pub fn daemon_log(&self) -> PathBuf {
        self.dir.join("daemon.log")
    }

    /// Makes the database 0600 before SQLite opens it: created so when missing, narrowed when
    /// an older version left it wider (with its `-wal` and `-shm`). SQLite gives the `-wal`
    /// and `-shm` files it creates the database's mode, so none of them is ever readable by
    /// others, not even while the first daemon's migrations run in a home users may traverse.
    fn private_db_files(&self) -> Result<(), LiveError> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let db = self.db();
        if std::fs::symlink_metadata(&db).is_err() {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&db)
                .or_else(|e| match e.kind() {
                    // Another process made it meanwhile: narrowed below.
                    std::io::ErrorKind::AlreadyExists => Ok(std::fs::File::open(&db)?),
                    _ => Err(e),
                })
                .map_err(|e| LiveError::io(&db, e))?;
        }
        for f in [db, self.db_side("-wal"), self.db_side("-shm")] {
            if let Ok(m) = std::fs::metadata(&f)
                && m.permissions().mode() & 0o077 != 0
            {
                std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| LiveError::io(&f, e))?;
            }
        }
        Ok(())
    }

    /// Creates the directory tree (owner only: 0700) and opens the database (0600: it holds
    /// every job's environment).
    pub fn open(&self) -> Result<store::Db, LiveError> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        self.move_legacy_links();
        if !self.db().exists() {
            // A database removed by hand (the seeds' `rm ~/.mini_slurm.db`) must not come back
            // from the write-ahead log it left: SQLite would replay it into the new file.
            for f in [self.db_side("-wal"), self.db_side("-shm")] {
                let _ = std::fs::remove_file(f);
            }
        }
        for d in [&self.dir, &self.logs()] {
            if !d.is_dir() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(d)
                    .map_err(|e| LiveError::io(d, e))?;
            }
        }
        if self.legacy.is_some() {
            // The default home is ours by construction: tighten one an older version made 0755.
            for d in [&self.dir, &self.logs()] {
                if let Ok(m) = std::fs::metadata(d)
                    && m.permissions().mode() & 0o077 != 0
                {
                    let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700));
                }
            }
        }
        self.private_db_files()?;
        let db = store::Db::open(&self.db())?;
        Ok(db)
    }

    /// An older version kept the default home's database and logs in `~/.mini_slurm` with
    /// symbolic links at the seeds' paths: the files move to those paths (best effort), so the
    /// seeds' clean-up removes the real ones.
    fn move_legacy_links(&self) {
        let Some(_) = &self.legacy else { return };
        let is_link =
            |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
        let old_db = self.dir.join("jobs.db");
        if is_link(&self.db()) && old_db.exists() {
            // rename() replaces the link in one step; the -wal and -shm files follow.
            if std::fs::rename(&old_db, self.db()).is_ok() {
                for suffix in ["-wal", "-shm"] {
                    let mut from = old_db.clone().into_os_string();
                    from.push(suffix);
                    let _ = std::fs::rename(from, self.db_side(suffix));
                }
            }
        }
        let old_logs = self.dir.join("logs");
        if is_link(&self.logs()) && old_logs.is_dir() && std::fs::remove_file(self.logs()).is_ok() {
            let _ = std::fs::rename(&old_logs, self.logs());
        }
    }

    /// Opens the database if this home has one, creating nothing (read-only commands).
    /// The database of the running daemon, for a job's runner ([`store::Db::open_runner`]).
    pub fn open_for_runner(&self) -> Result<store::Db, LiveError> {
        Ok(store::Db::open_runner(&self.db())?)
    }

    pub fn open_existing(&self) -> Result<Option<store::Db>, LiveError> {
        Ok(store::Db::open_existing(&self.db())?)
    }

    /// Wakes the daemon, if one listens (best effort).
    pub fn notify(&self) {
        if let Ok(s) = UnixDatagram::unbound() {
            let _ = s.send_to(b"w", self.wake_socket());
        }
    }

    /// The pid of the daemon that holds this home's lock (it writes it there), if one does
    /// and the lock file can be read.
    pub fn daemon_pid(&self) -> Result<Option<i32>, LiveError> {
        if !self.daemon_running() {
            return Ok(None);
        }
        let text =
            std::fs::read_to_string(self.lock()).map_err(|e| LiveError::io(&self.lock(), e))?;
        Ok(text.trim().parse().ok())
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

/// A failure of live mode.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Another daemon holds this home's lock.
    #[error("a scheduler already runs for {} (lock {})", home.display(), lock.display())]
    AlreadyRunning { home: PathBuf, lock: PathBuf },
    /// The caller may not do this (another user's job, a root-only setting).
    #[error("{0}")]
    Denied(String),
    /// A shared scheduler's home, and its daemon does not answer.
    #[error("the scheduler is not running ({} does not answer)", socket.display())]
    NotRunning { socket: PathBuf },
    #[error("{0}")]
    Other(String),
}

impl LiveError {
    pub fn io(path: &Path, source: std::io::Error) -> LiveError {
        LiveError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// The database and its `-wal` and `-shm` are never readable by others, not even while the
    /// first open creates and migrates them (a watcher stats them all along).
    #[test]
    fn the_store_files_are_private_from_their_creation() {
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let home = Home::at(dir.path().join("home"));
            let files = ["jobs.db", "jobs.db-wal", "jobs.db-shm"].map(|f| home.dir.join(f));
            let done = AtomicBool::new(false);
            let seen = std::thread::scope(|s| {
                let watcher = s.spawn(|| {
                    let mut seen = Vec::new();
                    while !done.load(Ordering::SeqCst) {
                        for f in &files {
                            if let Ok(m) = std::fs::symlink_metadata(f)
                                && m.permissions().mode() & 0o077 != 0
                            {
                                seen.push((f.clone(), m.permissions().mode() & 0o777));
                            }
                        }
                    }
                    seen
                });
                let db = home.open().unwrap();
                drop(db);
                done.store(true, Ordering::SeqCst);
                watcher.join().unwrap()
            });
            assert!(seen.is_empty(), "readable by others: {:?}", &seen[..1]);
            for f in &files[..1] {
                let mode = std::fs::metadata(f).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{}", f.display());
            }
        }
    }
}
