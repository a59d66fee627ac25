//! The Slurm executor against a fake Slurm on `PATH` (`tests/data/fake_slurm.py`): every
//! Slurm state, exit codes, command failures and hangs, jobs that leave squeue, restarts at
//! each step of a submission (nothing submitted twice), cancellation, refused submissions.
//! Fast and deterministic: each squeue poll moves a fake job one step of the life its
//! command names (`SEQ=...`).

use crate::live_util::{Live, wait_for};
use std::path::{Path, PathBuf};

const FAKE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/fake_slurm.py");

/// A fake Slurm: its commands in `bin/`, its state in `state/`.
pub struct Fake {
    _dir: tempfile::TempDir,
    bin: PathBuf,
    state: PathBuf,
}

impl Fake {
    pub fn new() -> Fake {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&state).unwrap();
        for cmd in ["sbatch", "squeue", "sacct", "scancel", "scontrol"] {
            let p = bin.join(cmd);
            let text = format!(
                "#!/bin/sh\nexec /usr/bin/python3 {FAKE} {} {cmd} \"$@\"\n",
                state.display()
            );
            std::fs::write(&p, text).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Fake {
            _dir: dir,
            bin,
            state,
        }
    }
    fn path(&self) -> String {
        format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }
    /// Steers faults (see the fake's docstring).
    pub fn control(&self, json: &str) {
        std::fs::write(self.state.join("control.json"), json).unwrap();
    }
    pub fn calls(&self) -> String {
        std::fs::read_to_string(self.state.join("calls.log")).unwrap_or_default()
    }
    /// The sbatch calls that submitted mini-slurm job `id` (any launch).
    pub fn sbatches_of(&self, id: i64) -> usize {
        self.calls()
            .lines()
            .filter(|l| l.starts_with("sbatch ") && is_job_token(l, id))
            .count()
    }
    /// The jobs the fake holds for mini-slurm job `id`.
    pub fn jobs_of(&self, id: i64) -> usize {
        let text = std::fs::read_to_string(self.state.join("jobs.json")).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        v.as_object().map_or(0, |o| {
            o.values()
                .filter(|j| is_job_token(j["name"].as_str().unwrap_or(""), id))
                .count()
        })
    }
    /// Starts the daemon of `l` with the Slurm executor on this fake.
    pub fn start(&self, l: &mut Live, args: &[&str], env: &[(&str, &str)]) {
        let mut a = vec!["--executor", "slurm"];
        a.extend_from_slice(args);
        let path = self.path();
        let mut e = vec![("PATH", path.as_str())];
        e.extend_from_slice(env);
        l.start_with(&a, &e);
    }
}

/// Whether `text` holds mini-slurm's token of job `id` (`ms.TAG.ID.LAUNCH`).
fn is_job_token(text: &str, id: i64) -> bool {
    text.split(['=', ' ']).any(|w| {
        let p: Vec<&str> = w.split('.').collect();
        p.len() == 4 && p[0] == "ms" && p[2] == id.to_string()
    })
}

fn state_exit(l: &Live, id: i64) -> (String, Option<i32>, Option<i32>) {
    let r = l.wait_state(id, 30);
    (r.state.name().to_string(), r.exit_code, r.signal)
}

fn log_has(home: &Path, what: &str) -> bool {
    std::fs::read_to_string(home.join("daemon-stderr.log")).is_ok_and(|t| t.contains(what))
}

#[test]
fn every_slurm_state_and_exit_code() {
    let f = Fake::new();
    let mut l = Live::new();
    let cases = [
        (
            "PENDING,CONFIGURING,RUNNING,COMPLETING,COMPLETED",
            "COMPLETED",
            Some(0),
        ),
        ("RUNNING,FAILED:3", "FAILED", Some(3)),
        ("RUNNING,TIMEOUT:0:15", "TIMEOUT", Some(0)),
        ("RUNNING,OUT_OF_MEMORY:0:9", "OUT_OF_MEMORY", Some(0)),
        ("RUNNING,NODE_FAIL", "NODE_FAIL", Some(0)),
        ("BOOT_FAIL", "NODE_FAIL", Some(0)),
        ("RUNNING,PREEMPTED", "PREEMPTED", Some(0)),
        ("RUNNING,DEADLINE", "TIMEOUT", Some(0)),
        (
            "RUNNING,SUSPENDED,RUNNING,CANCELLED:0:15",
            "CANCELLED",
            Some(0),
        ),
        (
            "REQUEUED,PENDING,RUNNING,STAGE_OUT,COMPLETED",
            "COMPLETED",
            Some(0),
        ),
        // A state this version does not know: logged, asked again, never fatal.
        (
            "RUNNING,MYSTERY_STATE,MYSTERY_STATE,COMPLETED",
            "COMPLETED",
            Some(0),
        ),
    ];
    let ids: Vec<i64> = cases
        .iter()
        .map(|(seq, _, _)| l.submit(&["--cpus", "2", &format!("echo SEQ={seq}")]))
        .collect();
    f.start(&mut l, &[], &[]);
    for (id, (seq, state, code)) in ids.iter().zip(cases) {
        let (s, c, _) = state_exit(&l, *id);
        assert_eq!((s.as_str(), c), (state, code), "job {id} {seq}");
        assert_eq!(f.sbatches_of(*id), 1, "job {id} submitted once");
    }
    assert_eq!(state_exit(&l, ids[8]).2, Some(15));
    assert!(log_has(l.home(), "MYSTERY_STATE"), "{}", l.daemon_stderr());
    // The sbatch arguments place the job exactly where the engine did.
    let calls = f.calls();
    let first = calls.lines().find(|c| c.starts_with("sbatch")).unwrap();
    for want in [
        "--parsable",
        "--partition=batch",
        "--nodes=1",
        "--nodelist=n",
        "--ntasks-per-node=1",
        "--cpus-per-task=2",
        "--no-requeue",
        "--export=ALL",
    ] {
        assert!(first.contains(want), "{want} in {first}");
    }
    let show = l.cmd(&["show", &ids[1].to_string()]);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        text.contains("ExitCode=3:0") && text.contains("SlurmJobId=10"),
        "{text}"
    );
    let stats = String::from_utf8_lossy(&l.cmd(&["stats"]).stdout).into_owned();
    assert!(stats.contains("Executor: Slurm"), "{stats}");
}

#[test]
fn command_failures_and_hangs_are_retried() {
    let f = Fake::new();
    let mut l = Live::new();
    f.control(r#"{"fail": {"sbatch": 2, "squeue": 2}, "hang": {"squeue": 1}, "down": ["n2"]}"#);
    let a = l.submit(&["echo SEQ=RUNNING,COMPLETED"]);
    let b = l.submit(&["echo SEQ=RUNNING,FAILED:2"]);
    f.start(&mut l, &["--slurm-timeout", "0.5"], &[]);
    assert_eq!(state_exit(&l, a,).0, "COMPLETED");
    assert_eq!(state_exit(&l, b).1, Some(2));
    assert_eq!((f.jobs_of(a), f.jobs_of(b)), (1, 1));
    let stats = String::from_utf8_lossy(&l.cmd(&["stats"]).stdout).into_owned();
    assert!(
        stats.contains("sbatch: 2 failures") && stats.contains("squeue: 3 failures"),
        "{stats}"
    );
    assert!(
        log_has(l.home(), "squeue: no answer within 0.5 s"),
        "{}",
        l.daemon_stderr()
    );
    assert!(l.daemon_alive());
}

#[test]
fn a_submission_that_reached_slurm_despite_failing_is_not_repeated() {
    let f = Fake::new();
    let mut l = Live::new();
    f.control(r#"{"accept_then_fail": 1}"#);
    let a = l.submit(&["echo SEQ=RUNNING,COMPLETED"]);
    f.start(&mut l, &[], &[]);
    assert_eq!(state_exit(&l, a).0, "COMPLETED");
    assert_eq!(f.jobs_of(a), 1, "{}", f.calls());
    assert!(
        f.calls().contains("squeue -h -t all -O"),
        "the token was looked up"
    );
}

#[test]
fn jobs_gone_from_squeue_are_asked_of_sacct_and_never_assumed_done() {
    let f = Fake::new();
    let mut l = Live::new();
    // Leaves squeue as soon as it ended: accounting says FAILED 4.
    let a = l.submit(&["echo SEQ=RUNNING,FAILED:4 LINGER=0"]);
    f.start(&mut l, &["--slurm-lost-after", "1"], &[]);
    let (s, c, _) = state_exit(&l, a);
    assert_eq!((s.as_str(), c), ("FAILED", Some(4)));
    // Without accounting, a job Slurm forgot is failed NODE_FAIL after --slurm-lost-after.
    f.control(r#"{"sacct": "off"}"#);
    let b = l.submit(&["echo SEQ=COMPLETED LINGER=0"]);
    let r = l.wait_state(b, 30);
    assert_eq!(r.state.name(), "NODE_FAIL");
    assert!(
        r.reason.to_string().contains("neither squeue nor sacct"),
        "{r:?}"
    );
}

#[test]
fn cancel_is_scancel() {
    let f = Fake::new();
    let mut l = Live::new();
    let a = l.submit(&["echo SEQ=PENDING,RUNNING"]);
    f.start(&mut l, &[], &[]);
    wait_for(|| l.job(a).state.name() == "RUNNING", 20, "job to run");
    assert!(l.cmd(&["cancel", &a.to_string()]).status.success());
    assert_eq!(state_exit(&l, a).0, "CANCELLED");
    assert!(
        f.calls().lines().any(|c| c.starts_with("scancel 10")),
        "{}",
        f.calls()
    );
}

#[test]
fn restart_after_sbatch_before_the_id_was_recorded_adopts_by_token() {
    let f = Fake::new();
    let mut l = Live::new();
    f.start(&mut l, &[], &[("MINI_SLURM_FAILPOINT", "slurm:submitted")]);
    let a = l.submit(&["echo SEQ=RUNNING,RUNNING,RUNNING,FAILED:5"]);
    wait_for(
        || !l.daemon_alive(),
        20,
        "the daemon to die at the failpoint",
    );
    assert_eq!(l.job(a).state.name(), "CONFIGURING");
    f.start(&mut l, &[], &[]);
    assert_eq!(state_exit(&l, a).1, Some(5));
    assert_eq!((f.sbatches_of(a), f.jobs_of(a)), (1, 1), "{}", f.calls());
}

#[test]
fn restart_before_sbatch_submits_once() {
    let f = Fake::new();
    let mut l = Live::new();
    f.start(&mut l, &[], &[("MINI_SLURM_FAILPOINT", "start:configured")]);
    let a = l.submit(&["echo SEQ=RUNNING,COMPLETED"]);
    wait_for(
        || !l.daemon_alive(),
        20,
        "the daemon to die at the failpoint",
    );
    assert_eq!(f.jobs_of(a), 0);
    f.start(&mut l, &[], &[]);
    assert_eq!(state_exit(&l, a).0, "COMPLETED");
    assert_eq!((f.sbatches_of(a), f.jobs_of(a)), (1, 1), "{}", f.calls());
}

#[test]
fn restart_while_running_adopts_and_finishes() {
    let f = Fake::new();
    let mut l = Live::new();
    let a =
        l.submit(&["echo SEQ=RUNNING,RUNNING,RUNNING,RUNNING,RUNNING,RUNNING,RUNNING,COMPLETED"]);
    f.start(&mut l, &[], &[]);
    wait_for(|| l.job(a).state.name() == "RUNNING", 20, "job to run");
    l.kill9();
    f.start(&mut l, &[], &[]);
    assert_eq!(state_exit(&l, a).0, "COMPLETED");
    assert_eq!(f.jobs_of(a), 1);
}

#[test]
fn refused_submissions_fail_the_job_and_elastic_jobs_are_refused() {
    let f = Fake::new();
    let mut l = Live::new();
    f.control(r#"{"refuse": "Invalid account or account/partition combination specified"}"#);
    let a = l.submit(&["echo hi"]);
    f.start(&mut l, &[], &[]);
    let r = l.wait_state(a, 30);
    assert_eq!(r.state.name(), "FAILED");
    assert!(r.reason.to_string().contains("Invalid account"), "{r:?}");
    let o = l.cmd(&[
        "submit",
        "--elastic",
        "--min-cpus",
        "1",
        "--max-cpus",
        "2",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Slurm cannot resize"));
}

#[test]
fn scheduler_flags_for_slurm_are_checked() {
    let f = Fake::new();
    let l = Live::new();
    let run = |args: &[&str]| {
        let mut a = vec!["scheduler", "--executor", "slurm"];
        a.extend_from_slice(args);
        std::process::Command::new(crate::live_util::BIN)
            .args(&a)
            .env("MINI_SLURM_HOME", l.home())
            .env("PATH", f.path())
            .output()
            .unwrap()
    };
    let o = run(&["--partition", "nosuch"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--partition nosuch") && err.contains("batch, other"),
        "{err}"
    );
    let o = run(&["--cpus", "2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--cpus"));
    // Slurm jobs run as the scheduler's user: no shared daemon.
    let o = run(&["--multi-user"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--multi-user"));
}

#[test]
fn jobs_of_the_other_executor_are_not_taken_over() {
    let f = Fake::new();
    let mut l = Live::new();
    l.start(&["--cpus", "1"]);
    let a = l.submit(&["--", "sleep", "30"]);
    wait_for(|| l.job(a).state.name() == "RUNNING", 20, "job to run");
    l.kill9();
    let o = std::process::Command::new(crate::live_util::BIN)
        .args(["scheduler", "--executor", "slurm"])
        .env("MINI_SLURM_HOME", l.home())
        .env("PATH", f.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("started by the process executor"), "{err}");
    assert_eq!(f.jobs_of(a), 0);
    l.start(&["--cpus", "1"]);
    assert!(l.cmd(&["cancel", &a.to_string()]).status.success());
    assert_eq!(l.wait_state(a, 20).state.name(), "CANCELLED");
}

#[test]
fn preemption_by_requeue_is_scancel_then_a_new_submission() {
    let f = Fake::new();
    let mut l = Live::new();
    f.start(&mut l, &["--policy", "priority[preempt=requeue]"], &[]);
    // Both nodes, one part each: --nodes=2, --ntasks-per-node=1 --cpus-per-task=4.
    let low = l.submit(&["--cpus", "8", "--priority", "1", "echo SEQ=RUNNING"]);
    wait_for(
        || l.job(low).state.name() == "RUNNING",
        20,
        "the low job to run",
    );
    let high = l.submit(&[
        "--cpus",
        "8",
        "--priority",
        "9",
        "echo SEQ=RUNNING,COMPLETED",
    ]);
    assert_eq!(state_exit(&l, high).0, "COMPLETED");
    wait_for(
        || l.job(low).restarts == 1 && l.job(low).state.name() == "RUNNING",
        30,
        "the low job to run again",
    );
    assert_eq!(
        (f.sbatches_of(low), f.jobs_of(low)),
        (2, 2),
        "{}",
        f.calls()
    );
    let calls = f.calls();
    assert!(calls.contains("--nodes=2 --nodelist=n1,n2"), "{calls}");
    assert!(calls.contains("--cpus-per-task=4"), "{calls}");
    assert!(l.cmd(&["cancel", &low.to_string()]).status.success());
    assert_eq!(state_exit(&l, low).0, "CANCELLED");
}
