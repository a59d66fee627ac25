//! A shared machine (issue 14): `scheduler --multi-user` as root, real users made for the test
//! (`useradd`), their clients run with `runuser`. Each job runs as its owner (uid, gid and
//! supplementary groups, working directory, environment, output files 0600 of theirs); a
//! user cannot cancel, or read the details or output of, another's job; no user can write the
//! store; root cancels anyone's job; `--user-limit` counts by the real identity; a user's
//! client says "the scheduler is not running" when it is not. Root only: skipped elsewhere,
//! never under CI=true (CI runs as root).

use crate::live_util::{BIN, Live, wait_for};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Whether this test can make users (root, with useradd and runuser); panics under CI if not.
fn can_make_users() -> bool {
    let tools = ["useradd", "userdel", "groupadd", "runuser"]
        .iter()
        .all(|t| {
            Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let ok = nix::unistd::Uid::effective().is_root() && tools;
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs as root with useradd and runuser: the multi-user tests must run there"
        );
        eprintln!("skipped: making users needs root, useradd and runuser");
    }
    ok
}

/// Users and a group made for one test, and everything of theirs removed when dropped (also
/// when the test fails): their processes, then the users, then the group.
struct Users {
    names: Vec<String>,
    group: Option<String>,
}

impl Users {
    /// Users `<prefix>a`, `<prefix>b`, ... (no home, no group of their own).
    fn new(prefix: &str, n: usize) -> Users {
        let tag = std::process::id() % 100_000;
        let mut u = Users {
            names: Vec::new(),
            group: None,
        };
        for i in 0..n {
            let name = format!("ms{prefix}{tag}{}", (b'a' + i as u8) as char);
            run_ok("useradd", &["-M", "-N", "-s", "/bin/sh", &name]);
            u.names.push(name);
        }
        u
    }
    fn name(&self, i: usize) -> &str {
        &self.names[i]
    }
    fn uid(&self, i: usize) -> u32 {
        nix::unistd::User::from_name(self.name(i))
            .unwrap()
            .unwrap()
            .uid
            .as_raw()
    }
    /// A supplementary group for user `i`.
    fn add_group(&mut self, i: usize) -> String {
        let g = format!("{}g", self.names[i]);
        run_ok("groupadd", &[&g]);
        self.group = Some(g.clone());
        run_ok("usermod", &["-aG", &g, &self.names[i]]);
        g
    }
    /// A directory of user `i`'s own under `parent`.
    fn dir(&self, i: usize, parent: &Path) -> PathBuf {
        let d = parent.join(self.name(i));
        std::fs::create_dir(&d).unwrap();
        let uid = nix::unistd::Uid::from_raw(self.uid(i));
        nix::unistd::chown(&d, Some(uid), None).unwrap();
        d
    }
}

impl Drop for Users {
    fn drop(&mut self) {
        for n in &self.names {
            if let Ok(Some(u)) = nix::unistd::User::from_name(n) {
                kill_processes_of(u.uid.as_raw());
            }
            let _ = Command::new("userdel").arg(n).output();
        }
        if let Some(g) = &self.group {
            let _ = Command::new("groupdel").arg(g).output();
        }
    }
}

fn run_ok(cmd: &str, args: &[&str]) {
    let o = Command::new(cmd).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// SIGKILL to every process of `uid` (a test's own user: its jobs).
fn kill_processes_of(uid: u32) {
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if std::fs::metadata(e.path()).is_ok_and(|m| m.uid() == uid) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// The binary where every user can run it: the build's own if all its directories let them
/// through, else a copy (0755) in `dir`.
fn runnable_binary(dir: &Path) -> PathBuf {
    let bin = Path::new(BIN);
    let open = bin
        .ancestors()
        .skip(1)
        .all(|d| std::fs::metadata(d).is_ok_and(|m| m.mode() & 0o001 != 0));
    if open && std::fs::metadata(bin).is_ok_and(|m| m.mode() & 0o005 == 0o005) {
        return bin.to_path_buf();
    }
    let copy = dir.join("mini-slurm");
    std::fs::copy(bin, &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

/// A shared scheduler's test bed: a world-traversable directory holding the home, the binary
/// users run, and one directory per user.
struct Shared {
    _dir: tempfile::TempDir,
    root: PathBuf,
    bin: PathBuf,
    live: Live,
}

impl Shared {
    fn new() -> Shared {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = runnable_binary(&root);
        let live = Live::at(&root.join("home"));
        Shared {
            _dir: dir,
            root,
            bin,
            live,
        }
    }
    /// `mini-slurm ARGS` as `user`, in `dir`, with `env` added.
    fn as_user(&self, user: &str, dir: &Path, env: &[&str], args: &[&str]) -> Output {
        let home = format!("MINI_SLURM_HOME={}", self.live.home().display());
        Command::new("runuser")
            .args(["-u", user, "--", "env", &home])
            .args(env)
            .arg(&self.bin)
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap()
    }
    fn submit_as(&self, user: &str, dir: &Path, env: &[&str], args: &[&str]) -> i64 {
        let mut a = vec!["submit", "--parsable"];
        a.extend_from_slice(args);
        let o = self.as_user(user, dir, env, &a);
        assert!(
            o.status.success(),
            "{user}: submit {args:?}: {}",
            text(&o.stderr)
        );
        text(&o.stdout).trim().parse().unwrap()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The group ids `id -G` prints for `user` as root sees them (initgroups' list).
fn groups_of(user: &str) -> Vec<u32> {
    let o = Command::new("id").args(["-G", user]).output().unwrap();
    let mut g: Vec<u32> = text(&o.stdout)
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    g.sort_unstable();
    g
}

/// What a job's `id -u; id -g; id -G; pwd; echo $MS_TAG` wrote: uid, gid, groups, directory,
/// the variable.
fn identity_of(out: &str) -> (u32, u32, Vec<u32>, String, String) {
    let lines: Vec<&str> = out.lines().collect();
    let num = |i: usize| lines[i].trim().parse::<u32>().unwrap();
    let mut groups: Vec<u32> = lines[2]
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    groups.sort_unstable();
    (
        num(0),
        num(1),
        groups,
        lines[3].to_string(),
        lines[4].to_string(),
    )
}

/// Exits 1 if the file is readable, 2 if writable, 3 if neither.
const PROBE: &str =
    "cat \"$1\" >/dev/null 2>&1 && exit 1; echo x 2>/dev/null >> \"$1\" && exit 2; exit 3";

const WHO: &str = "id -u; id -g; id -G; pwd; echo $MS_TAG; sleep 60";

/// Two users' jobs run as their owners; the other's cancel is refused and the job keeps
/// running; details and output stay private; root cancels anyone's job; the store is root's.
#[test]
fn shared_scheduler_runs_each_job_as_its_owner() {
    if !can_make_users() {
        return;
    }
    let mut users = Users::new("o", 2);
    let extra = users.add_group(0);
    let mut s = Shared::new();
    s.live.start(&["--multi-user", "--cpus", "2"]);
    let (a, b) = (users.name(0).to_string(), users.name(1).to_string());
    let (da, db) = (users.dir(0, &s.root), users.dir(1, &s.root));
    let ja = s.submit_as(&a, &da, &["MS_TAG=from-a"], &[WHO]);
    let jb = s.submit_as(&b, &db, &["MS_TAG=from-b"], &[WHO]);
    let (out_a, out_b) = (
        da.join(format!("slurm-{ja}.out")),
        db.join(format!("slurm-{jb}.out")),
    );
    for (f, id) in [(&out_a, ja), (&out_b, jb)] {
        wait_for(
            || std::fs::read_to_string(f).is_ok_and(|t| t.lines().count() >= 5),
            20,
            &format!("job {id}'s output"),
        );
    }
    // Each job is its owner's: uid, primary gid, the owner's supplementary groups only (a's
    // extra group, none of root's), the submit directory, the submitted environment.
    for (user, out, dir, tag, i) in [
        (&a, &out_a, &da, "from-a", 0),
        (&b, &out_b, &db, "from-b", 1),
    ] {
        let (uid, gid, groups, pwd, var) = identity_of(&std::fs::read_to_string(out).unwrap());
        let pw = nix::unistd::User::from_name(user).unwrap().unwrap();
        assert_eq!((uid, gid), (pw.uid.as_raw(), pw.gid.as_raw()), "{user}");
        assert_eq!(groups, groups_of(user), "{user}'s groups");
        assert!(!groups.contains(&0), "{user} kept root's group: {groups:?}");
        assert_eq!((pwd.as_str(), var.as_str()), (dir.to_str().unwrap(), tag));
        let m = std::fs::metadata(out).unwrap();
        assert_eq!(
            (m.uid(), m.mode() & 0o777),
            (users.uid(i), 0o600),
            "{}",
            out.display()
        );
    }
    let extra_gid = nix::unistd::Group::from_name(&extra)
        .unwrap()
        .unwrap()
        .gid
        .as_raw();
    assert!(groups_of(&a).contains(&extra_gid) && !groups_of(&b).contains(&extra_gid));
    // b cannot cancel a's job (Slurm's words, exit 1); it keeps running.
    let o = s.as_user(&b, &db, &[], &["cancel", &ja.to_string()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("Access/permission denied"),
        "{}",
        text(&o.stderr)
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(s.live.job(ja).state.name(), "RUNNING");
    // b sees a's queue line, not its command, directory or output, nor its output file.
    let q = text(
        &s.as_user(&b, &db, &[], &["queue", "--format", "%i %u %T %o"])
            .stdout,
    );
    assert!(q.contains(&format!("{ja} {a} RUNNING (hidden)")), "{q}");
    assert!(q.contains(&format!("{jb} {b} RUNNING id -u")), "{q}");
    let show = text(&s.as_user(&b, &db, &[], &["show", &ja.to_string()]).stdout);
    assert!(
        show.contains("Command=(hidden)") && !show.contains("sleep"),
        "{show}"
    );
    assert!(show.contains(&format!("UserId={a}(")), "{show}");
    let own = text(&s.as_user(&a, &da, &[], &["show", &ja.to_string()]).stdout);
    assert!(
        own.contains(&format!("StdOut={}", out_a.display())),
        "{own}"
    );
    let json = text(&s.as_user(&b, &db, &[], &["queue", "--json"]).stdout);
    assert!(
        !json.contains("from-a") && !json.contains(da.to_str().unwrap()),
        "{json}"
    );
    let read = Command::new("runuser")
        .args(["-u", &b, "--", "cat"])
        .arg(&out_a)
        .output()
        .unwrap();
    assert!(!read.status.success(), "b read a's output");
    // No user can write (or read) the store; the home is root's, traversable only.
    let home = s.live.home().to_path_buf();
    let m = std::fs::metadata(&home).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o777), (0, 0o711));
    for f in ["jobs.db", "jobs.db-wal", "daemon.lock"] {
        let p = home.join(f);
        let o = Command::new("runuser")
            .args(["-u", &a, "--", "sh", "-c", PROBE, "sh"])
            .arg(&p)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(3), "{a} reads {}", p.display());
    }
    // Root cancels anyone's job.
    for id in [ja, jb] {
        assert!(s.live.cmd(&["cancel", &id.to_string()]).status.success());
        assert_eq!(s.live.wait_state(id, 20).state.name(), "CANCELLED");
    }
    s.live.stop();
}

/// A user may not go above the priority ceiling or below nice 0; `--user-limit` counts by the
/// real identity; `export-trace` exports a user's own jobs; without its daemon a shared home
/// says so (exit 1), and a personal scheduler refuses it.
#[test]
fn shared_scheduler_rules_and_absence() {
    if !can_make_users() {
        return;
    }
    let users = Users::new("r", 2);
    let mut s = Shared::new();
    s.live
        .start(&["--multi-user", "--cpus", "2", "--user-limit", "jobs=1"]);
    let (a, b) = (users.name(0).to_string(), users.name(1).to_string());
    let (da, db) = (users.dir(0, &s.root), users.dir(1, &s.root));
    let o = s.as_user(&a, &da, &[], &["submit", "--priority", "5", "--", "true"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("Access/permission denied"),
        "{}",
        text(&o.stderr)
    );
    let o = s.as_user(&a, &da, &[], &["submit", "--nice", "-1", "--", "true"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    // a's second job waits for a's first (one job each), b's runs meanwhile.
    let a1 = s.submit_as(&a, &da, &[], &["--", "sleep", "2"]);
    let a2 = s.submit_as(&a, &da, &[], &["--", "true"]);
    let b1 = s.submit_as(&b, &db, &[], &["--", "true"]);
    assert_eq!(s.live.wait_state(b1, 20).state.name(), "COMPLETED");
    assert_eq!(s.live.job(a1).state.name(), "RUNNING");
    assert_eq!(s.live.job(a2).state.name(), "PENDING");
    let (r1, r2) = (s.live.wait_state(a1, 20), s.live.wait_state(a2, 20));
    assert_eq!(r2.state.name(), "COMPLETED");
    assert!(
        r2.start_ms >= r1.end_ms,
        "a's jobs one at a time: {r1:?} {r2:?}"
    );
    let rows = s.live.job(a1);
    assert_eq!((rows.user.as_str(), rows.uid), (a.as_str(), users.uid(0)));
    // export-trace: a's own jobs.
    let csv = da.join("mine.csv");
    let o = s.as_user(
        &a,
        &da,
        &[],
        &["export-trace", "--out", csv.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let t = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(t.lines().count(), 3, "a header and a's two jobs: {t}");
    assert!(!t.contains(&b), "{t}");
    s.live.stop();
    // No daemon: a user's client says so and touches nothing.
    for args in [&["queue"][..], &["submit", "--", "true"]] {
        let o = s.as_user(&b, &db, &[], args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(
            text(&o.stderr).contains("the scheduler is not running"),
            "{}",
            text(&o.stderr)
        );
    }
    let o = s.live.cmd(&["scheduler", "--cpus", "1"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("start it with --multi-user"),
        "{}",
        text(&o.stderr)
    );
}
