//! What a Slurm user expects of the live verbs (issue 19): array ids `J_T` in `show` and
//! `cancel`, `cancel J` cancelling a whole array, Slurm's time format and ids in `show`,
//! `--json` on the read verbs, `stop`, `history`, and the seeds' clean-up steps.

use crate::live_util::Live;

fn out(o: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn array_ids_in_show_and_cancel_and_cancel_of_a_whole_array() {
    // No daemon: the jobs stay pending and cancels act at once.
    let l = Live::new();
    let j = l.submit(&["--array", "0-3", "--", "sleep", "1"]);
    let other = l.submit(&["--", "true"]);
    assert_eq!(other, j + 4, "tasks take ids {j}..{}", j + 3);
    let o = l.cmd(&["show", &format!("{j}_2")]);
    let (so, se) = out(&o);
    assert!(o.status.success(), "{se}");
    assert!(so.starts_with(&format!("JobId={} ", j + 2)), "{so}");
    assert!(
        so.contains(&format!("ArrayJobId={j} ArrayTaskId=2")),
        "{so}"
    );
    // `show J` shows every task of the array.
    let (so, _) = out(&l.cmd(&["show", &j.to_string()]));
    assert_eq!(so.matches("ArrayTaskId=").count(), 4, "{so}");
    // One task by J_T.
    let o = l.cmd(&["cancel", &format!("{j}_1")]);
    let (so, se) = out(&o);
    assert!(o.status.success(), "{se}");
    assert_eq!(so.trim(), format!("Cancelled job {j}_1"));
    assert_eq!(l.job(j + 1).state.name(), "CANCELLED");
    assert_eq!(l.job(j).state.name(), "PENDING");
    // The whole array by J: the task already cancelled is passed over, as scancel does.
    let o = l.cmd(&["cancel", &j.to_string()]);
    let (so, se) = out(&o);
    assert!(o.status.success(), "{se}");
    assert_eq!(
        so.lines().collect::<Vec<_>>(),
        [
            format!("Cancelled job {j}_0"),
            format!("Cancelled job {j}_2"),
            format!("Cancelled job {j}_3")
        ]
    );
    for id in j..j + 4 {
        assert_eq!(l.job(id).state.name(), "CANCELLED");
    }
    assert_eq!(
        l.job(other).state.name(),
        "PENDING",
        "not part of the array"
    );
    // Ids that name nothing, or that are not ids at all: exit 2, named.
    let o = l.cmd(&["cancel", &format!("{j}_9")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(out(&o).1.contains(&format!("job {j}_9 does not exist")));
    let o = l.cmd(&["show", "4_x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(out(&o).1.contains("invalid job id '4_x'"), "{}", out(&o).1);
}

#[test]
fn show_uses_slurm_time_format_group_names_and_unlimited_memory() {
    let l = Live::new();
    let j = l.submit(&["--", "true"]);
    let (so, _) = out(&l.cmd(&["show", &j.to_string()]));
    let submit = so
        .split_whitespace()
        .find_map(|w| w.strip_prefix("SubmitTime="))
        .unwrap_or_default()
        .to_string();
    // YYYY-MM-DDTHH:MM:SS, nothing after it on the line.
    let b = submit.as_bytes();
    assert!(
        b.len() == 19 && b[4] == b'-' && b[10] == b'T' && b[13] == b':',
        "{so}"
    );
    assert!(so.contains("StartTime=Unknown EndTime=Unknown\n"), "{so}");
    let gid = nix::unistd::getgid();
    let group = nix::unistd::Group::from_gid(gid).unwrap().unwrap().name;
    assert!(so.contains(&format!("GroupId={group}({gid})")), "{so}");
    assert!(so.contains(" Mem=UNLIMITED "), "{so}");
    let j = l.submit(&["--mem", "2G", "--", "true"]);
    let (so, _) = out(&l.cmd(&["show", &j.to_string()]));
    assert!(so.contains(" Mem=2048M "), "{so}");
}

#[test]
fn stop_ends_the_daemon_and_a_second_daemon_refuses_before_starting() {
    let mut l = Live::new();
    let o = l.cmd(&["stop"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(out(&o).1.contains("no scheduler runs for"), "{}", out(&o).1);
    l.start(&["--cpus", "1"]);
    crate::live_util::wait_for(
        || l.home().join("daemon.lock").exists() && l.cmd(&["stats"]).status.success(),
        10,
        "the daemon",
    );
    let o = l.cmd(&["scheduler", "--cpus", "1"]);
    let (_, se) = out(&o);
    assert_eq!(o.status.code(), Some(2), "{se}");
    assert!(se.contains("a scheduler already runs for"), "{se}");
    assert!(!se.contains("Starting"), "refused before starting: {se}");
    let o = l.cmd(&["stop"]);
    let (so, se) = out(&o);
    assert!(o.status.success(), "{se}");
    assert!(so.starts_with("Scheduler stopped (pid "), "{so}");
    // The lock is free once the daemon has let go of everything; it exits right after.
    crate::live_util::wait_for(|| !l.daemon_alive(), 10, "the daemon to exit");
}

#[test]
fn the_seeds_clean_up_steps_empty_the_queue() {
    // The default home (no MINI_SLURM_HOME) under a HOME of the test's own.
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let run = |args: &[&str]| {
        std::process::Command::new(crate::live_util::BIN)
            .args(args)
            .env_remove("MINI_SLURM_HOME")
            .env("HOME", home)
            .current_dir(home)
            .output()
            .unwrap()
    };
    assert!(run(&["submit", "--", "true"]).status.success());
    assert!(
        home.join(".mini_slurm.db").is_file(),
        "a real file at the seeds' path"
    );
    assert!(home.join(".mini_slurm_logs").is_dir());
    let (so, _) = out(&run(&["queue", "-H"]));
    assert_eq!(so.lines().count(), 1, "{so}");
    // rm ~/.mini_slurm.db; rm -rf ~/.mini_slurm_logs
    std::fs::remove_file(home.join(".mini_slurm.db")).unwrap();
    std::fs::remove_dir_all(home.join(".mini_slurm_logs")).unwrap();
    let (so, _) = out(&run(&["queue", "--all", "-H"]));
    assert_eq!(so, "", "the queue is empty");
    // A new submission starts from a new database (not one revived from the old WAL).
    let (so, se) = out(&run(&["submit", "--parsable", "--", "true"]));
    assert_eq!(so.trim(), "1", "{se}");
}

#[test]
fn history_lists_ended_jobs_in_a_window_and_read_verbs_speak_json() {
    let l = Live::new();
    let a = l.submit(&["--", "true"]);
    let b = l.submit(&["--name", "keep", "--", "true"]);
    assert!(l.cmd(&["cancel", &a.to_string()]).status.success());
    // Ended today: listed by default (since midnight UTC), with sacct's columns.
    let o = l.cmd(&["history"]);
    let (so, se) = out(&o);
    assert!(o.status.success(), "{se}");
    let lines: Vec<&str> = so.lines().collect();
    assert!(lines[0].split_whitespace().eq([
        "JobID",
        "JobName",
        "Partition",
        "User",
        "AllocCPUS",
        "Start",
        "End",
        "Elapsed",
        "State",
        "ExitCode"
    ]));
    assert_eq!(lines.len(), 3, "header, rule, one job: {so}");
    assert!(lines[2].trim_start().starts_with(&format!("{a} ")), "{so}");
    assert!(lines[2].contains("CANCELLED"), "{so}");
    // A window before the job ended: nothing; a state filter that excludes it: nothing.
    let (so, _) = out(&l.cmd(&["history", "-n", "-S", "2000-01-01", "-E", "2000-01-02"]));
    assert_eq!(so, "");
    let (so, _) = out(&l.cmd(&["history", "-n", "-S", "now-1hours", "--state", "COMPLETED"]));
    assert_eq!(so, "");
    let o = l.cmd(&["history", "-S", "yesterday"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        out(&o).1.contains("--starttime: invalid time 'yesterday'"),
        "{}",
        out(&o).1
    );
    // --json on history, show and stats.
    let (so, _) = out(&l.cmd(&["history", "--json", "-S", "now-1days"]));
    let v: serde_json::Value = serde_json::from_str(&so).unwrap();
    assert_eq!(v[0]["id"], a);
    assert_eq!(v[0]["state"], "CANCELLED");
    let (so, _) = out(&l.cmd(&["show", "--json", &b.to_string()]));
    let v: serde_json::Value = serde_json::from_str(&so).unwrap();
    assert_eq!(v[0]["name"], "keep");
    assert_eq!(v[0]["state"], "PENDING");
    let (so, _) = out(&l.cmd(&["stats", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&so).unwrap();
    assert_eq!(v["stats"]["daemon_running"], false);
    assert_eq!(v["stats"]["counts"]["total"], 2);
}

/// Submits `job` (a shell command) with `mini-slurm submit` run from `sh` after `setup` (a
/// shell command: the submitting process's umask or limits), with `env` added; the job id.
fn submit_from_shell(l: &Live, setup: &str, env: &[(&str, &str)], job: &str) -> i64 {
    let o = std::process::Command::new("sh")
        .args(["-c", &format!("{setup}; exec \"$0\" \"$@\"")])
        .arg(crate::live_util::BIN)
        .args(["submit", "--parsable", "--", "sh", "-c", job])
        .envs(env.iter().copied())
        .env("MINI_SLURM_HOME", l.home())
        .current_dir(l.home())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o).1);
    out(&o).0.trim().parse().unwrap()
}

/// A job creates files with the umask it was submitted with (`SLURM_UMASK`, as sbatch
/// records it), not the daemon's: the daemon here runs with umask 0022.
#[test]
fn jobs_keep_the_umask_they_were_submitted_with() {
    use std::os::unix::fs::PermissionsExt;
    let mut l = Live::new();
    l.start(&["--cpus", "1"]);
    for (mask, file, mode) in [("0077", "private", 0o600), ("0002", "shared", 0o664)] {
        let j = submit_from_shell(
            &l,
            &format!("umask {mask}"),
            &[],
            &format!("umask; touch {file}"),
        );
        assert_eq!(l.wait_state(j, 30).state.name(), "COMPLETED");
        let log = l.home().join(format!("logs/job_{j}.out"));
        assert_eq!(std::fs::read_to_string(&log).unwrap().trim(), mask);
        let m = std::fs::metadata(l.home().join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(m & 0o777, mode, "{file}");
    }
}

/// A job runs with the soft resource limits it was submitted with (`SLURM_RLIMIT_<name>`, as
/// sbatch propagates them), never above the hard limits of its runner.
#[test]
fn jobs_keep_the_resource_limits_they_were_submitted_with() {
    let mut l = Live::new();
    l.start(&["--cpus", "1"]);
    let submit =
        |setup: &str, env: &[(&str, &str)]| submit_from_shell(&l, setup, env, "ulimit -S -n");
    let printed = |j: i64| {
        assert_eq!(l.wait_state(j, 30).state.name(), "COMPLETED");
        let log = l.home().join(format!("logs/job_{j}.out"));
        std::fs::read_to_string(log).unwrap().trim().to_string()
    };
    // Lowered in the submitting shell: the job has the lower limit, not the daemon's.
    assert_eq!(printed(submit("ulimit -S -n 123", &[])), "123");
    // Asked beyond the hard limit: capped by it.
    let (_, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    let want = if hard == nix::sys::resource::RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        hard.to_string()
    };
    let j = submit("true", &[("SLURM_RLIMIT_NOFILE", "unlimited")]);
    assert_eq!(printed(j), want);
}

/// The seeds' guide, step 5: a job larger than the scheduler "should stay pending", then is
/// found with `queue --status PENDING` and cancelled. It is kept with a warning per flag over
/// the machine, waits with `ReqNodeNotAvail` (not blocking smaller jobs) until cancelled; an
/// elastic job's `--max-cpus` over the machine is still refused.
#[test]
fn a_job_larger_than_the_machine_stays_pending_as_the_seeds_guide_expects() {
    let mut l = Live::new();
    l.start(&["--total-cpus", "2", "--total-mem", "1GB"]);
    let o = l.cmd(&[
        "submit",
        "--cpus",
        "20",
        "--mem",
        "32GB",
        "echo 'This will wait'",
    ]);
    let (so, se) = out(&o);
    assert!(o.status.success(), "{se}");
    assert!(so.starts_with("Submitted job 1"), "{so}");
    for flag in [
        "--cpus 20: the machine has 2 CPUs",
        "--mem 32768 MB: the machine has 1024 MB",
    ] {
        assert!(
            se.contains(&format!(
                "warning: {flag}: the job stays pending (ReqNodeNotAvail)"
            )),
            "{se}"
        );
    }
    let small = l.submit(&["--", "true"]);
    assert_eq!(l.wait_state(small, 20).state.name(), "COMPLETED");
    crate::live_util::wait_for(
        || l.job(1).reason.to_string().starts_with("ReqNodeNotAvail"),
        10,
        "job 1's reason",
    );
    let (so, se) = out(&l.cmd(&["queue", "--status", "PENDING"]));
    let line = so.lines().find(|x| x.trim_start().starts_with("1 "));
    assert!(
        line.is_some_and(|x| x.contains("PD") && x.contains("(ReqNodeNotAvail")),
        "{so}{se}"
    );
    let o = l.cmd(&["cancel", "1"]);
    assert!(o.status.success(), "{}", out(&o).1);
    // Through the daemon a cancellation is a request the scheduling loop carries out.
    assert_eq!(l.wait_state(1, 10).state.name(), "CANCELLED");
    let (so, _) = out(&l.cmd(&["queue", "--status", "PENDING", "--noheader"]));
    assert_eq!(so, "", "nothing pending");
    // A range that leaves the machine is a mistake, not a size to wait for.
    let elastic = "submit --elastic --cpus 1 --min-cpus 1 --max-cpus 8 true";
    let o = l.cmd(&elastic.split(' ').collect::<Vec<_>>());
    let (_, se) = out(&o);
    assert_eq!(o.status.code(), Some(2), "{se}");
    assert!(se.contains("--max-cpus 8: the machine has 2 CPUs"), "{se}");
}

/// `squeue`'s habits: `-t/--states` with its short codes and `all`, `-j/--jobs` with jobs,
/// whole arrays and tasks (any state), `--me`.
#[test]
fn queue_takes_squeues_state_codes_job_lists_and_me() {
    let l = Live::new();
    let array = l.submit(&["--array", "0-2", "true"]);
    let single = l.submit(&["true"]);
    let gone = l.submit(&["true"]);
    assert!(l.cmd(&["cancel", &gone.to_string()]).status.success());
    let ids = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["queue", "--noheader", "--format", "%i"];
        a.extend_from_slice(args);
        let o = l.cmd(&a);
        let (so, se) = out(&o);
        assert!(o.status.success(), "{args:?}: {se}");
        so.split_whitespace().map(str::to_string).collect()
    };
    let (t0, t1, t2) = (
        format!("{array}_0"),
        format!("{array}_1"),
        format!("{array}_2"),
    );
    let s = single.to_string();
    let pending = [t0.clone(), t1.clone(), t2.clone(), s.clone()];
    assert_eq!(ids(&["-t", "pd"]), pending);
    assert_eq!(ids(&["--states", "PD,R"]), pending);
    assert_eq!(ids(&["-t", "CA"]), [gone.to_string()]);
    assert_eq!(ids(&["-t", "all"]).len(), 5);
    assert_eq!(ids(&["--me"]).len(), 4, "pending and running, mine");
    assert_eq!(ids(&["-j", &array.to_string()]), [t0, t1.clone(), t2]);
    assert_eq!(
        ids(&["-j", &format!("{t1},{gone}")]),
        [t1, gone.to_string()]
    );
    assert_eq!(
        ids(&["-j", &gone.to_string(), "-t", "PD"]),
        Vec::<String>::new()
    );
    // A job behind another waits for Priority even when the filter shows it alone.
    let reason = |j: &str| out(&l.cmd(&["queue", "-j", j, "-H", "-o", "%i %r"])).0;
    assert_eq!(
        reason(&format!("{array}_1")),
        format!("{array}_1 Priority\n")
    );
    assert_eq!(
        reason(&format!("{array}_0")),
        format!("{array}_0 Resources\n")
    );
    let o = l.cmd(&["queue", "-t", "XX"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(out(&o).1.contains("unknown state 'XX'"), "{}", out(&o).1);
    let o = l.cmd(&["queue", "-j", "x"]);
    assert_eq!(o.status.code(), Some(2));
}

/// scancel's filters: `-n NAME`, `-t STATES`, `-u USER`/`--me`, and ids narrowed by them;
/// sbatch's `-c/--cpus-per-task` and `-G`.
#[test]
fn cancel_takes_scancels_filters_and_submit_sbatchs_short_flags() {
    let l = Live::new();
    let a1 = l.submit(&["-J", "a", "-c", "2", "true"]);
    let a2 = l.submit(&["--job-name", "a", "--cpus-per-task", "1", "-G", "0", "true"]);
    let b = l.submit(&["-J", "b", "--array", "0-1", "true"]);
    assert_eq!((l.job(a1).cpus, l.job(a2).cpus), (2, 1));
    let run = |args: &[&str]| {
        let mut a = vec!["cancel"];
        a.extend_from_slice(args);
        let o = l.cmd(&a);
        (o.status.code(), out(&o).0, out(&o).1)
    };
    let (code, so, se) = run(&["-n", "a"]);
    assert_eq!(code, Some(0), "{se}");
    assert_eq!(so, format!("Cancelled job {a1}\nCancelled job {a2}\n"));
    // Ids narrowed by the filters; an id that names nothing is still reported.
    let (code, so, se) = run(&["--me", "-t", "PD", &format!("{b}_1"), "999"]);
    assert_eq!(code, Some(2), "{se}");
    assert_eq!(so, format!("Cancelled job {b}_1\n"));
    assert!(se.contains("job 999 does not exist"), "{se}");
    assert_eq!(l.job(b).state.name(), "PENDING", "task 0 untouched");
    let (code, so, _) = run(&["-u", "nobody-here"]);
    assert_eq!(
        (code, so.as_str()),
        (Some(0), ""),
        "nothing selected: no error"
    );
    let (code, _, se) = run(&["-t", "CD"]);
    assert_eq!(code, Some(2), "{se}");
    let (code, so, _) = run(&["-u", &crate::live_util::me()]);
    assert_eq!(code, Some(0));
    assert_eq!(so, format!("Cancelled job {b}_0\n"));
}

/// `sbatch job.sh`: a script's `#SBATCH` directives are its options, the command line
/// overrides them, a script that is not executable runs under its `#!` interpreter from the
/// submit directory; passed-over options are noted, a bad one refused with its line.
#[test]
fn a_batch_scripts_sbatch_directives_are_its_options() {
    let mut l = Live::new();
    l.start(&["--cpus", "2"]);
    std::fs::write(
        l.home().join("job.sh"),
        "#!/bin/bash\n#SBATCH --job-name=train\n#SBATCH --cpus-per-task=2 --mem=1G\n\
         #SBATCH --time=0:10:00\n#SBATCH --account=lab\n#SBATCH -o out.%j\n\n\
         echo \"args: $* cpus=$MINI_SLURM_CPUS_ON_NODE\"\n#SBATCH --mem=9G\n",
    )
    .unwrap();
    let o = l.cmd(&["submit", "--parsable", "job.sh", "a", "b"]);
    let (so, se) = out(&o);
    assert!(o.status.success(), "{se}");
    assert!(se.contains("note: --account lab is passed over"), "{se}");
    let id: i64 = so.trim().parse().unwrap();
    let r = l.wait_state(id, 20);
    assert_eq!(r.state.name(), "COMPLETED", "{:?}", r.reason);
    assert_eq!((r.name.as_str(), r.cpus, r.mem_mb), ("train", 2, 1024));
    assert_eq!(r.time_limit_ms, Some(600_000));
    let text = std::fs::read_to_string(l.home().join(format!("out.{id}"))).unwrap();
    assert_eq!(text, "args: a b cpus=2\n");
    // The command line wins over the script.
    let other = l.submit(&["-c", "1", "-J", "other", "--mem", "100", "job.sh"]);
    let r = l.wait_state(other, 20);
    assert_eq!((r.name.as_str(), r.cpus, r.mem_mb), ("other", 1, 100));
    // Refused with the file and line; nothing stored. `refused(file, directive)`: stderr.
    let refused = |file: &str, directive: &str| {
        let text = format!("#!/bin/sh\n#SBATCH {directive}\ntrue\n");
        std::fs::write(l.home().join(file), text).unwrap();
        let o = l.cmd(&["submit", file]);
        let (_, se) = out(&o);
        assert_eq!(o.status.code(), Some(2), "{se}");
        se
    };
    let se = refused("bad.sh", "--frobnicate=2");
    assert!(
        se.contains("bad.sh:2: unknown sbatch option '--frobnicate'"),
        "{se}"
    );
    // sbatch's resource options on the command line as in a script; one machine.
    let o = l.cmd(&["submit", "-N", "2", "true"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        out(&o)
            .1
            .contains("--nodes 2: this scheduler runs a job on one machine")
    );
    assert_eq!(
        refused("nice.sh", "--nice=abc").trim(),
        "error: nice.sh's #SBATCH directives: invalid value 'abc' for '--nice <N>': invalid digit found in string"
    );
    assert!(l.db().job(other + 1).unwrap().is_none(), "nothing stored");
    // --wrap naming a script: the script, with its directives.
    let w = l.submit(&["--wrap", "job.sh"]);
    assert_eq!(l.job(w).cpus, 2);
    assert_eq!(
        l.job(w).argv,
        ["/bin/bash", "./job.sh"],
        "not executable: its #! interpreter"
    );
    // An executable script runs as given, from the submit directory.
    let script = l.home().join("job.sh");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let x = l.submit(&["job.sh", "z"]);
    assert_eq!(l.job(x).argv, ["./job.sh", "z"]);
    let t = l.submit(&[
        "-n",
        "2",
        "-c",
        "1",
        "--mem-per-cpu",
        "100",
        "--gres",
        "gpu:0",
        "true",
    ]);
    assert_eq!((l.job(t).cpus, l.job(t).mem_mb, l.job(t).gpus), (2, 200, 0));
}

/// sbatch's `--wrap`: the command as one string, under /bin/sh -c; not with a command too.
#[test]
fn submit_wraps_a_command_string_as_sbatch_does() {
    let mut l = Live::new();
    l.start(&["--cpus", "1"]);
    let id = l.submit(&["--wrap", "echo one; echo two"]);
    assert_eq!(l.wait_state(id, 20).state.name(), "COMPLETED");
    let text = std::fs::read_to_string(l.home().join(format!("logs/job_{id}.out"))).unwrap();
    assert_eq!(text, "one\ntwo\n");
    let o = l.cmd(&["submit", "--wrap", "true", "true"]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o).1);
}
