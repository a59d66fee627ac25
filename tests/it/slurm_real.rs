//! The Slurm executor against a real Slurm (the local single-node one `.ci/run` starts; see
//! docs/slurm.md): jobs run through mini-slurm onto Slurm complete, fail with their exit code,
//! are cancelled (and gone from Slurm's running jobs), see Slurm's `SLURM_JOB_ID`, show in
//! Slurm's own `squeue`, and a backfill under `easy` starts them in the order the policy
//! gives. Skipped where Slurm is absent, never under `CI=true`. Every test holds an exclusive
//! lock on `/tmp/mini-slurm-real-slurm.lock` (other branches' real-Slurm tests take it too),
//! and cancels only its own jobs.

use crate::live_util::{Live, wait_for};
use std::process::Command;

const LOCK: &str = "/tmp/mini-slurm-real-slurm.lock";

/// The lock on the local Slurm, or `None` (skip) when there is no Slurm here.
fn real_slurm() -> Option<nix::fcntl::Flock<std::fs::File>> {
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%t"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    if !up {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but no Slurm answers (sinfo): .ci/run should have started it"
        );
        eprintln!("skipped: no Slurm here (sinfo fails)");
        return None;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK)
        .unwrap();
    Some(nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).unwrap())
}

/// Slurm's own view of one job: its state as `squeue` prints it (empty once purged).
fn squeue_state(slurm_id: u64) -> String {
    let o = Command::new("squeue")
        .args(["-h", "-t", "all", "-o", "%T", "-j", &slurm_id.to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The Slurm id mini-slurm recorded for job `id`.
fn slurm_id(l: &Live, id: i64) -> u64 {
    let c = mini_slurm::live::client::Client::open(&mini_slurm::live::Home::at(l.home())).unwrap();
    c.slurm_record(id).unwrap().unwrap().slurm_job_id.unwrap()
}

/// Cancels what is left of this test's jobs in Slurm (only its own).
struct Cleanup(Vec<u64>);
impl Drop for Cleanup {
    fn drop(&mut self) {
        for id in &self.0 {
            let _ = Command::new("scancel").arg(id.to_string()).status();
        }
    }
}

#[test]
fn jobs_complete_fail_and_cancel_on_real_slurm() {
    let Some(_lock) = real_slurm() else { return };
    let mut l = Live::new();
    l.start(&["--executor", "slurm"]);
    let ok = l.submit(&["echo slurm=$SLURM_JOB_ID mini=$MINI_SLURM_JOB_ID"]);
    let bad = l.submit(&["--", "sh", "-c", "echo oops >&2; exit 3"]);
    let long = l.submit(&["--time", "1", "--", "sleep", "120"]);
    wait_for(
        || l.job(long).state.name() == "RUNNING",
        30,
        "the long job to run",
    );
    let mut cleanup = Cleanup(vec![slurm_id(&l, long)]);
    assert_eq!(
        squeue_state(cleanup.0[0]),
        "RUNNING",
        "Slurm's squeue lists it"
    );
    let r = l.wait_state(ok, 30);
    assert_eq!(r.state.name(), "COMPLETED");
    let sid = slurm_id(&l, ok);
    let out = std::fs::read_to_string(l.home().join(format!("logs/job_{ok}.out"))).unwrap();
    assert_eq!(out.trim(), format!("slurm={sid} mini={ok}"));
    let r = l.wait_state(bad, 30);
    assert_eq!((r.state.name(), r.exit_code), ("FAILED", Some(3)));
    let err = std::fs::read_to_string(l.home().join(format!("logs/job_{bad}.err"))).unwrap();
    assert_eq!(err, "oops\n");
    assert!(l.cmd(&["cancel", &long.to_string()]).status.success());
    assert_eq!(l.wait_state(long, 30).state.name(), "CANCELLED");
    let st = squeue_state(cleanup.0[0]);
    assert!(st.is_empty() || st == "CANCELLED", "gone from Slurm: {st}");
    cleanup.0.clear();
}

#[test]
fn easy_backfills_on_real_slurm() {
    let Some(_lock) = real_slurm() else { return };
    let mut l = Live::new();
    l.start(&["--executor", "slurm", "--policy", "easy"]);
    // 4 CPUs: a 3-CPU job for 2 minutes (it ends after 4 s); a 4-CPU job must wait for it;
    // a 1-CPU job of 1 minute fits beside it and ends before the wide job's reservation.
    let blocker = l.submit(&["--cpus", "3", "--time", "2", "--", "sleep", "4"]);
    wait_for(
        || l.job(blocker).state.name() == "RUNNING",
        30,
        "the blocker to run",
    );
    let wide = l.submit(&["--cpus", "4", "--time", "1", "--", "true"]);
    let short = l.submit(&["--time", "1", "--", "sleep", "1"]);
    let (b, s, w) = (
        l.wait_state(blocker, 60),
        l.wait_state(short, 60),
        l.wait_state(wide, 60),
    );
    for r in [&b, &s, &w] {
        assert_eq!(r.state.name(), "COMPLETED", "{r:?}");
    }
    assert!(
        s.start_ms < w.start_ms,
        "the short job backfilled: {s:?} {w:?}"
    );
    assert!(s.start_ms < b.end_ms, "beside the blocker: {s:?} {b:?}");
    assert!(
        w.start_ms >= b.end_ms,
        "the wide job waited for the blocker"
    );
}
