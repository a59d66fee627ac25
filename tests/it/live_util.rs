//! The harness of the live-mode tests: a daemon per test in its own temporary home, driven
//! through the real binary.

use mini_slurm::live::Home;
use mini_slurm::live::store::{Db, JobFilter, JobRow};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_mini-slurm");

/// The policy the live tests run under unless they name one: EASY in priority order starts a
/// job the moment it fits, which their timing assumes. The daemon's default, `slurm`, starts
/// jobs at Slurm's scheduler cycles (after `batch_sched_delay`, 3 s by default); the tests that
/// need it say so.
pub const TEST_POLICY: &str = "easy[order=priority]";

pub struct Live {
    /// The temporary directory that holds the home (none for a home given by the test).
    _dir: Option<tempfile::TempDir>,
    home: std::path::PathBuf,
    pub daemon: Option<Child>,
}

impl Live {
    pub fn new() -> Live {
        let dir = tempfile::tempdir().unwrap();
        Live {
            home: dir.path().to_path_buf(),
            _dir: Some(dir),
            daemon: None,
        }
    }
    /// A harness on an existing directory as the home (left in place when dropped).
    pub fn at(home: &Path) -> Live {
        Live {
            _dir: None,
            home: home.to_path_buf(),
            daemon: None,
        }
    }
    pub fn home(&self) -> &Path {
        &self.home
    }
    pub fn cmd(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("MINI_SLURM_HOME", self.home())
            .current_dir(self.home())
            .output()
            .unwrap()
    }
    /// Submits and returns the job id.
    pub fn submit(&self, args: &[&str]) -> i64 {
        let mut a = vec!["submit", "--parsable"];
        a.extend_from_slice(args);
        let o = self.cmd(&a);
        assert!(
            o.status.success(),
            "submit {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
    }
    pub fn start(&mut self, args: &[&str]) {
        self.start_with(args, &[]);
    }
    /// Starts the daemon with `args` under [`TEST_POLICY`] unless they name a `--policy`.
    pub fn start_with(&mut self, args: &[&str], env: &[(&str, &str)]) {
        let mut a = args.to_vec();
        if !a.contains(&"--policy") {
            a.extend(["--policy", TEST_POLICY]);
        }
        self.start_as_given(&a, env);
    }
    /// Starts the daemon with exactly `args` (and a fast poll): the daemon's own defaults.
    pub fn start_as_given(&mut self, args: &[&str], env: &[(&str, &str)]) {
        let mut a = vec!["scheduler", "--poll-interval", "0.2", "--kill-wait", "1"];
        a.extend_from_slice(args);
        let child = Command::new(BIN)
            .args(&a)
            .envs(env.iter().copied())
            .env("MINI_SLURM_HOME", self.home())
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.home().join("daemon-stderr.log"))
                    .map_or_else(|_| Stdio::null(), Stdio::from),
            )
            .spawn()
            .unwrap();
        self.daemon = Some(child);
        let h = Home::at(self.home());
        let t = Instant::now();
        while !h.daemon_running() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "timed out waiting for the daemon to start: {}",
                self.daemon_stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    pub fn stop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(d.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = d.wait();
        }
    }
    pub fn kill9(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
    /// The stored state and reason of a job, as text (readable even when its row is damaged).
    pub fn job_state_text(&self, id: i64) -> String {
        let conn = rusqlite::Connection::open(self.home().join("jobs.db")).unwrap();
        conn.query_row(
            "SELECT state || ' ' || reason FROM jobs WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap()
    }
    /// What the daemons of this test wrote on stderr.
    pub fn daemon_stderr(&self) -> String {
        std::fs::read_to_string(self.home().join("daemon-stderr.log")).unwrap_or_default()
    }
    /// Whether the daemon process is still alive.
    pub fn daemon_alive(&mut self) -> bool {
        self.daemon
            .as_mut()
            .is_some_and(|d| d.try_wait().is_ok_and(|s| s.is_none()))
    }
    pub fn db(&self) -> Db {
        Db::open(&Home::at(self.home()).db()).unwrap()
    }
    pub fn array_tasks(&self) -> Vec<JobRow> {
        let all = self.db().jobs(&JobFilter::default()).unwrap();
        all.into_iter()
            .filter(|r| r.array_job_id.is_some())
            .collect()
    }
    pub fn job(&self, id: i64) -> JobRow {
        self.db().job(id).unwrap().unwrap()
    }
    pub fn wait_state(&self, id: i64, secs: u64) -> JobRow {
        wait_for(
            || !self.job(id).state.is_active(),
            secs,
            &format!("job {id} to end"),
        );
        self.job(id)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits for the jobs to complete and checks they started in the given order.
pub fn assert_completed_in_order(l: &Live, ids: &[i64], what: &str) {
    let starts: Vec<i64> = ids
        .iter()
        .map(|&id| {
            let r = l.wait_state(id, 20);
            assert_eq!(r.state.name(), "COMPLETED", "{r:?}");
            r.start_ms.unwrap()
        })
        .collect();
    assert!(
        starts.windows(2).all(|w| w[0] < w[1]),
        "start times by {what}: {starts:?}"
    );
}

/// Whether this test runs as root; when not, it is skipped (saying `what` needs root), except
/// under CI=true, which runs as root: there it fails.
pub fn root_or_skip(what: &str) -> bool {
    let root = nix::unistd::Uid::effective().is_root();
    if !root {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs as root: {what} must work there"
        );
        eprintln!("skipped: {what} needs root");
    }
    root
}

/// Unmounts its path when dropped (lazily: whatever still has a file open there).
pub struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Mounts a tmpfs of `size` (mount's syntax: `8m`) on the existing directory `at` (needs
/// root); unmounted when the guard is dropped.
pub fn mount_tmpfs(at: &Path, size: &str) -> Unmount {
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .status()
        .is_ok_and(|s| s.success());
    assert!(mounted, "mount a tmpfs on {}", at.display());
    Unmount(at.to_path_buf())
}

pub fn wait_for(mut f: impl FnMut() -> bool, secs: u64, what: &str) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The name the queue records for the user running the tests.
pub fn me() -> String {
    let uid = nix::unistd::getuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}
