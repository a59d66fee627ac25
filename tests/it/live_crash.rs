//! Crash windows of live mode (issue 13): a daemon killed at every failpoint of a job's start,
//! end, cancellation and requeue (`MINI_SLURM_FAILPOINT`, debug builds), kill -9 in a loop
//! while jobs stream in, a full disk, runners that cannot be forked. After a restart every job
//! ran exactly as often as it should (once; twice for a requeued one), and no process of the
//! home is left.

use crate::live_util::{BIN, Live, mount_tmpfs, root_or_skip, wait_for};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A job that appends its id to `runs.log` (one line per run), then sleeps.
fn marked(secs: &str) -> String {
    format!("echo $MINI_SLURM_JOB_ID >> runs.log; sleep {secs}")
}

/// How many times each job ran, from `runs.log`.
fn runs(home: &Path) -> BTreeMap<i64, usize> {
    let mut n = BTreeMap::new();
    for l in std::fs::read_to_string(home.join("runs.log"))
        .unwrap_or_default()
        .lines()
    {
        if let Ok(id) = l.trim().parse() {
            *n.entry(id).or_insert(0) += 1;
        }
    }
    n
}

/// Pids of the processes (other than a daemon) whose environment names this home: runners and
/// jobs.
fn processes_of(home: &Path) -> Vec<i32> {
    let needle = format!("MINI_SLURM_HOME={}", home.display());
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let daemon = cmd.windows(9).any(|w| w == b"scheduler");
        if !daemon && env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes()) {
            out.push(pid);
        }
    }
    out
}

/// Waits for the daemon to die by its failpoint, then starts a clean one.
fn crash_and_restart(l: &mut Live, args: &[&str], what: &str) {
    wait_for(
        || !l.daemon_alive(),
        30,
        &format!("the daemon to die at {what}"),
    );
    assert!(
        l.daemon_stderr()
            .contains(&format!("failpoint {what}: dying here")),
        "{what}: {}",
        l.daemon_stderr()
    );
    l.daemon = None;
    l.start(args);
}

fn assert_clean(l: &mut Live, what: &str) {
    l.stop();
    wait_for(
        || processes_of(l.home()).is_empty(),
        10,
        &format!(
            "{what}: no process of the home left: {:?}",
            processes_of(l.home())
        ),
    );
}

/// A daemon killed at each point of a start or an end: after a restart the three jobs complete
/// and each ran exactly once.
#[test]
fn crashes_at_starts_and_ends_run_each_job_once() {
    for point in [
        "start:configured",
        "start:forked",
        "start:recorded",
        "end:reaped",
        "end:recorded",
    ] {
        let mut l = Live::new();
        l.start_with(&["--cpus", "1"], &[("MINI_SLURM_FAILPOINT", point)]);
        let ids: Vec<i64> = (0..3).map(|_| l.submit(&[&marked("0.3")])).collect();
        crash_and_restart(&mut l, &["--cpus", "1"], point);
        for &id in &ids {
            let r = l.wait_state(id, 30);
            assert_eq!(r.state.name(), "COMPLETED", "{point}: {r:?}");
        }
        let n = runs(l.home());
        assert!(
            ids.iter().all(|id| n.get(id) == Some(&1)),
            "{point}: runs {n:?}"
        );
        assert_clean(&mut l, point);
    }
}

/// A daemon killed while it cancels a running job: after a restart the job ends CANCELLED and
/// nothing of it is left; a job queued behind it runs once.
#[test]
fn crashes_while_cancelling_leave_the_job_cancelled() {
    for point in ["cancel:relayed", "cancel:signalled"] {
        let mut l = Live::new();
        l.start_with(&["--cpus", "1"], &[("MINI_SLURM_FAILPOINT", point)]);
        let long = l.submit(&[&marked("60")]);
        let next = l.submit(&[&marked("0.2")]);
        wait_for(
            || runs(l.home()).contains_key(&long),
            20,
            "the long job to run",
        );
        let o = l.cmd(&["cancel", &long.to_string()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        crash_and_restart(&mut l, &["--cpus", "1"], point);
        let r = l.wait_state(long, 30);
        assert_eq!(r.state.name(), "CANCELLED", "{point}: {r:?}");
        assert_eq!(l.wait_state(next, 30).state.name(), "COMPLETED");
        let n = runs(l.home());
        assert_eq!(
            (n.get(&long), n.get(&next)),
            (Some(&1), Some(&1)),
            "{point}"
        );
        assert_clean(&mut l, point);
    }
}

/// A daemon killed during a preemption by requeue: after a restart the high-priority job runs
/// once and the preempted one runs again to completion — twice in all, never three times.
#[test]
fn crashes_while_requeueing_finish_the_requeue() {
    let policy = ["--cpus", "1", "--policy", "priority[preempt=requeue]"];
    for point in ["requeue:marked", "requeue:reaped"] {
        let mut l = Live::new();
        l.start_with(&policy, &[("MINI_SLURM_FAILPOINT", point)]);
        let low = l.submit(&["--priority", "1", &marked("3")]);
        wait_for(
            || runs(l.home()).contains_key(&low),
            20,
            "the low job to run",
        );
        let high = l.submit(&["--priority", "9", &marked("0.2")]);
        crash_and_restart(&mut l, &policy, point);
        assert_eq!(l.wait_state(high, 30).state.name(), "COMPLETED", "{point}");
        let r = l.wait_state(low, 40);
        assert_eq!(r.state.name(), "COMPLETED", "{point}: {r:?}");
        let n = runs(l.home());
        assert_eq!((n.get(&high), n.get(&low)), (Some(&1), Some(&2)), "{point}");
        assert_clean(&mut l, point);
    }
}

/// `kill -9` of the daemon, five times, while jobs stream in: none is lost, none runs twice.
#[test]
fn kill_9_loops_during_a_stream_of_submissions() {
    let mut l = Live::new();
    l.start(&["--cpus", "2"]);
    let home = l.home().to_path_buf();
    let submitter = std::thread::spawn(move || {
        (0..20)
            .map(|_| {
                std::thread::sleep(Duration::from_millis(120));
                let o = Command::new(BIN)
                    .args(["submit", "--parsable"])
                    .arg(marked("0.2"))
                    .env("MINI_SLURM_HOME", &home)
                    .current_dir(&home)
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<i64>()
                    .unwrap()
            })
            .collect::<Vec<i64>>()
    });
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(450));
        l.kill9();
        l.start(&["--cpus", "2"]);
    }
    let ids = submitter.join().unwrap();
    for &id in &ids {
        assert_eq!(l.wait_state(id, 60).state.name(), "COMPLETED", "job {id}");
    }
    let n = runs(l.home());
    assert!(ids.iter().all(|id| n.get(id) == Some(&1)), "runs {n:?}");
    assert_clean(&mut l, "kill -9 loop");
}

/// Runners that cannot be forked (EAGAIN, injected three times) delay a job, they do not stop
/// the daemon or lose the job.
#[test]
fn a_failing_fork_is_retried() {
    let mut l = Live::new();
    l.start_with(&["--cpus", "1"], &[("MINI_SLURM_FAULT", "fork:3")]);
    let id = l.submit(&[&marked("0.1")]);
    assert_eq!(l.wait_state(id, 30).state.name(), "COMPLETED");
    assert!(l.daemon_alive());
    assert!(
        l.daemon_stderr().contains("cannot start it yet"),
        "{}",
        l.daemon_stderr()
    );
    assert_eq!(runs(l.home()).get(&id), Some(&1));
}

/// A full disk (a small tmpfs as the home): the job ends while nothing can be written; its
/// runner and the daemon keep their records and write them once space returns — the job is
/// COMPLETED, not a silent NodeFail.
#[test]
fn a_full_disk_is_waited_out() {
    if !root_or_skip("mounting a tmpfs") {
        return;
    }
    let l = Live::new();
    let mnt = l.home().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let _unmount = mount_tmpfs(&mnt, "8m");
    let mut m = Live::at(&mnt);
    m.start(&["--cpus", "1"]);
    let id = m.submit(&["--", "sleep", "2"]);
    wait_for(|| m.job(id).state.name() == "RUNNING", 20, "the job to run");
    // Fill the disk while the job runs.
    let filler = mnt.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", filler.display()))
        .output();
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        m.daemon_alive(),
        "the daemon survived: {}",
        m.daemon_stderr()
    );
    std::fs::remove_file(&filler).unwrap();
    let r = m.wait_state(id, 30);
    assert_eq!(
        (r.state.name(), r.exit_code),
        ("COMPLETED", Some(0)),
        "{r:?}"
    );
    m.stop();
    drop(l);
}

/// A daemon restarted with fewer CPUs than a running job holds keeps the job (the machine is
/// over-committed until it ends), says so, schedules its own CPUs meanwhile, and still
/// cancels that job when asked.
#[test]
fn a_restart_with_fewer_cpus_keeps_the_wide_job() {
    let mut l = Live::new();
    l.start(&["--cpus", "2"]);
    let wide = l.submit(&["--cpus", "2", &marked("60")]);
    wait_for(
        || runs(l.home()).contains_key(&wide),
        20,
        "the wide job to run",
    );
    l.kill9();
    l.start(&["--cpus", "1"]);
    // Said while it recovers, just after it takes its lock.
    wait_for(
        || l.daemon_stderr().contains("no longer fits this scheduler"),
        20,
        "the daemon to say the wide job no longer fits",
    );
    // The daemon's one CPU is free for others while the wide job runs on (over-committed).
    let small = l.submit(&[&marked("0.2")]);
    assert_eq!(l.wait_state(small, 20).state.name(), "COMPLETED");
    assert_eq!(l.job(wide).state.name(), "RUNNING");
    let another = l.submit(&["--", "true"]);
    assert_eq!(l.wait_state(another, 20).state.name(), "COMPLETED");
    assert!(l.cmd(&["cancel", &wide.to_string()]).status.success());
    assert_eq!(l.wait_state(wide, 20).state.name(), "CANCELLED");
    assert_eq!(runs(l.home()).get(&wide), Some(&1));
    assert_clean(&mut l, "fewer CPUs");
}

/// The parent of process `pid` (`PPid:` of its status).
fn parent_of(pid: i32) -> Option<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|p| p.trim().parse().ok())
}

/// The runner spawner of the home's daemon (`job-runner --spawner`), if one runs.
fn spawner_of(home: &Path) -> Option<i32> {
    processes_of(home).into_iter().find(|p| {
        std::fs::read(format!("/proc/{p}/cmdline"))
            .is_ok_and(|c| c.windows(9).any(|w| w == b"--spawner"))
    })
}

/// Runners are forked by the runner spawner, not executed by the daemon. A spawner killed
/// while a job runs loses nothing: the job's end is still recorded (its runner is polled), the
/// next job starts under a new spawner, and nothing of the home is left after a stop.
#[test]
fn a_killed_runner_spawner_loses_no_job() {
    let mut l = Live::new();
    l.start(&["--cpus", "2"]);
    let a = l.submit(&[&marked("2")]);
    wait_for(|| l.job(a).runner_pid.is_some(), 20, "job a's runner");
    let runner = l.job(a).runner_pid.unwrap();
    let spawner = spawner_of(l.home()).expect("a runner spawner");
    assert_eq!(parent_of(runner), Some(spawner), "the runner's parent");
    kill(Pid::from_raw(spawner), Signal::SIGKILL).unwrap();
    assert_eq!(l.wait_state(a, 30).state.name(), "COMPLETED");
    let b = l.submit(&[&marked("0.1")]);
    assert_eq!(l.wait_state(b, 30).state.name(), "COMPLETED");
    let again = spawner_of(l.home()).expect("a new runner spawner");
    assert_ne!(again, spawner);
    assert_eq!(runs(l.home()), BTreeMap::from([(a, 1), (b, 1)]));
    assert_clean(&mut l, "after a killed spawner");
}

/// `MINI_SLURM_NO_SPAWNER=1`: the daemon executes each runner itself, as before.
#[test]
fn without_the_spawner_the_daemon_executes_runners() {
    let mut l = Live::new();
    l.start_with(&["--cpus", "1"], &[("MINI_SLURM_NO_SPAWNER", "1")]);
    let daemon = l.daemon.as_ref().unwrap().id() as i32;
    let a = l.submit(&[&marked("1")]);
    wait_for(|| l.job(a).runner_pid.is_some(), 20, "job a's runner");
    assert_eq!(parent_of(l.job(a).runner_pid.unwrap()), Some(daemon));
    assert_eq!(spawner_of(l.home()), None);
    assert_eq!(l.wait_state(a, 30).state.name(), "COMPLETED");
    assert_clean(&mut l, "without a spawner");
}

/// How many descriptors of process `pid` are open on the home's database.
fn open_databases(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter(|t| t.to_string_lossy().contains("jobs.db"))
                .count()
        })
        .unwrap_or(0)
}

/// A runner's records (its claim, cgroups, process group and result) go through the daemon:
/// the runner has no database open while the daemon answers. With the daemon killed, the
/// runner records the job's end in the database itself.
#[test]
fn runners_record_through_the_daemon_and_without_it() {
    let mut l = Live::new();
    l.start(&["--cpus", "1"]);
    let a = l.submit(&[&marked("2")]);
    wait_for(|| l.job(a).job_pgid.is_some(), 20, "job a's process group");
    let runner = l.job(a).runner_pid.unwrap();
    assert!(std::fs::metadata(format!("/proc/{runner}")).is_ok());
    assert_eq!(open_databases(runner), 0, "the runner opened the database");
    l.kill9();
    wait_for(
        || l.job(a).runner_done,
        20,
        "job a's result, recorded by its runner",
    );
    assert_eq!(l.job(a).exit_code, Some(0));
    assert_eq!(runs(l.home()), BTreeMap::from([(a, 1)]));
}

/// A runner without a daemon to answer records in the database itself, in either order of its
/// first steps: told the job's memory with the launch (`--mem-mb`, as the daemon does) it makes
/// the cgroups first and records them with its claim; told only the launch (an older daemon)
/// it claims first and records the cgroups after. Either way the job runs once and its cgroups
/// and result are recorded.
#[test]
fn a_runner_alone_records_its_cgroups_with_or_after_its_claim() {
    use mini_slurm::live::store::Launch;
    let mut l = Live::new();
    l.start(&["--cpus", "1"]);
    l.stop();
    let with_mem = l.submit(&[&marked("0")]);
    let without = l.submit(&[&marked("0")]);
    for (id, mem) in [(with_mem, Some("0")), (without, None)] {
        let launch = Launch {
            cpu_list: "",
            gpu_list: "",
            cpus: 1,
            kill_wait_ms: 1000,
            rlimit_as: false,
            at_ms: 1,
        };
        let n = l.db().record_launch(id, &launch).unwrap().launch;
        let mut cmd = Command::new(BIN);
        cmd.args([
            "job-runner",
            "--job",
            &id.to_string(),
            "--launch",
            &n.to_string(),
        ])
        .env("MINI_SLURM_HOME", l.home());
        if let Some(m) = mem {
            cmd.args(["--mem-mb", m]);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let row = l.job(id);
        assert_eq!(
            (row.runner_done, row.exit_code),
            (true, Some(0)),
            "job {id}"
        );
        let stats = l.db().contain_stats().unwrap();
        if stats.containment.is_some_and(|c| c.starts_with("a cgroup")) {
            assert!(!row.cgroups.is_empty(), "job {id}: no cgroups recorded");
        }
    }
    assert_eq!(
        runs(l.home()),
        BTreeMap::from([(with_mem, 1), (without, 1)])
    );
}
