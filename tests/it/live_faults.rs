//! Live mode under faults and bad input (issue 13): a database another process holds locked, a
//! damaged row, environments and paths that are not UTF-8, unknown job ids, read-only commands
//! that must create nothing, and the owner-only permissions of the state directory.

use crate::live_util::{BIN, Live, wait_for};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

/// An outside writer holds the database's write lock while the daemon must record a job's end
/// and start the next: the daemon, told to give up on a lock after 200 ms, logs the fault,
/// keeps running, and catches up once the lock is released — both jobs complete and are
/// recorded. (The daemon is paused with SIGSTOP while the first job ends, so that the lock is
/// taken exactly between the runner's record and the daemon's.)
#[test]
fn a_locked_database_is_waited_out() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let mut l = Live::new();
    l.start_with(&["--cpus", "1"], &[("MINI_SLURM_BUSY_TIMEOUT_MS", "200")]);
    let first = l.submit(&["--", "sleep", "1"]);
    let second = l.submit(&["--", "true"]);
    wait_for(
        || l.job(first).state.name() == "RUNNING",
        10,
        "the first job to start",
    );
    let daemon = Pid::from_raw(l.daemon.as_ref().unwrap().id() as i32);
    kill(daemon, Signal::SIGSTOP).unwrap();
    // The runner records the end itself; then the database is locked and the daemon resumed.
    wait_for(|| l.job(first).runner_done, 10, "the first job's runner");
    let conn = rusqlite::Connection::open(l.home().join("jobs.db")).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    kill(daemon, Signal::SIGCONT).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(l.daemon_alive(), "the daemon died: {}", l.daemon_stderr());
    conn.execute_batch("COMMIT").unwrap();
    drop(conn);
    for id in [first, second] {
        assert_eq!(l.wait_state(id, 20).state.name(), "COMPLETED", "job {id}");
    }
    assert!(l.daemon_alive());
    let log = l.daemon_stderr();
    assert!(log.contains("database is locked"), "{log}");
    assert!(log.contains("works again"), "{log}");
    let stats = l.cmd(&["stats"]);
    let text = String::from_utf8_lossy(&stats.stdout);
    assert!(text.contains("Last database fault: "), "{text}");
}

/// A row that does not decode fails that job with a clear reason, and nothing else: the
/// daemon keeps running the other jobs, now and after a restart.
#[test]
fn a_damaged_row_fails_its_job_only() {
    let mut l = Live::new();
    let bad = l.submit(&["--", "echo", "never"]);
    let good = l.submit(&["--", "echo", "fine"]);
    let conn = rusqlite::Connection::open(l.home().join("jobs.db")).unwrap();
    conn.execute("UPDATE jobs SET argv = 'not json' WHERE id = ?1", [bad])
        .unwrap();
    drop(conn);
    l.start(&["--cpus", "1"]);
    assert_eq!(l.wait_state(good, 20).state.name(), "COMPLETED");
    wait_for(
        || !l.job_state_text(bad).starts_with("PENDING"),
        10,
        "the bad job",
    );
    let text = l.job_state_text(bad);
    assert!(
        text.starts_with("FAILED JobLaunchFailure (") && text.contains("argv"),
        "{text}"
    );
    assert!(
        !std::fs::read_to_string(l.home().join(format!("logs/job_{bad}.out")))
            .unwrap_or_default()
            .contains("never"),
        "the damaged job never ran"
    );
    // A restart reads past it too.
    l.stop();
    l.start(&["--cpus", "1"]);
    let after = l.submit(&["--", "true"]);
    assert_eq!(l.wait_state(after, 20).state.name(), "COMPLETED");
    assert!(l.daemon_alive());
}

/// An environment that is not UTF-8 reaches the job byte for byte; a working directory that
/// is not UTF-8 is refused (exit 2) instead of running the job elsewhere.
#[test]
fn environments_are_bytes_and_odd_paths_are_refused() {
    let mut l = Live::new();
    l.start(&["--cpus", "1"]);
    let value = std::ffi::OsStr::from_bytes(b"caf\xe9");
    let o = Command::new(BIN)
        .args([
            "submit",
            "--parsable",
            "--",
            "sh",
            "-c",
            "printf %s \"$LATIN1\" > latin1.out",
        ])
        .env("MINI_SLURM_HOME", l.home())
        .env("LATIN1", value)
        .current_dir(l.home())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let id: i64 = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap();
    assert_eq!(l.wait_state(id, 20).state.name(), "COMPLETED");
    assert_eq!(
        std::fs::read(l.home().join("latin1.out")).unwrap(),
        b"caf\xe9"
    );
    let odd = l.home().join(std::ffi::OsStr::from_bytes(b"dir\xff"));
    std::fs::create_dir(&odd).unwrap();
    let o = Command::new(BIN)
        .args(["submit", "--", "true"])
        .env("MINI_SLURM_HOME", l.home())
        .current_dir(&odd)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("working directory") && err.contains("UTF-8"),
        "{err}"
    );
}

/// Unknown job ids are bad input (exit 2); read-only commands on a home without jobs create
/// nothing; a home made by mini-slurm is private to its owner.
#[test]
fn unknown_ids_read_only_commands_and_permissions() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("state");
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env("MINI_SLURM_HOME", &home)
            .output()
            .unwrap()
    };
    for args in [&["queue"][..], &["queue", "--json"], &["stats"]] {
        let o = run(args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    for args in [&["show", "7"][..], &["cancel", "7"]] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("job 7 does not exist"));
    }
    assert!(
        !home.exists(),
        "read-only commands created {}",
        home.display()
    );
    let o = run(&["submit", "--parsable", "--", "true"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&home), 0o700);
    assert_eq!(mode(&home.join("logs")), 0o700);
    assert_eq!(mode(&home.join("jobs.db")), 0o600);
    let o = run(&["show", "99"]);
    assert_eq!(o.status.code(), Some(2));
    // The job's logs are private too, once a scheduler has run it.
    let mut l = crate::live_util::Live::at(&home);
    l.start(&["--cpus", "1"]);
    crate::live_util::wait_for(|| !l.job(1).state.is_active(), 20, "the job");
    assert_eq!(mode(&home.join("logs/job_1.out")), 0o600);
    assert_eq!(mode(&home.join("logs/job_1.err")), 0o600);
    assert_eq!(mode(&home.join("daemon.log")), 0o600);
    l.stop();
    let o = run(&["cancel", "1", "99"]);
    assert_eq!(o.status.code(), Some(2), "one unknown id among known ones");
}
