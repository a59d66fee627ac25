//! Containment, CPUs, memory and limits without the daemon, with real processes (docs/live.md,
//! "What is guaranteed"). Each test owns a temporary home; whatever happens, the home's
//! processes (found by the `MINI_SLURM_HOME` in their environment) and cgroups are removed
//! when it ends. Processes of a job are found by a unique marker: a `sleep` whose duration is
//! unique to the test (`sleep 3000.<pid><n>`).

use crate::live_util::{BIN, Live, TEST_POLICY, wait_for};
use mini_slurm::live::machine::{Cgroups, same_process_alive};
use mini_slurm::live::store::JobRow;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::ops::{Deref, DerefMut};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A live home whose processes and cgroups are all gone when it is dropped, even after a
/// failed assertion: every process whose environment names this home (the daemon, runners,
/// jobs and whatever they started), then the cgroups its jobs recorded and those the test made.
struct Contained {
    l: Live,
    /// Cgroups the test made (removed last).
    cgroups: Vec<PathBuf>,
}

impl Deref for Contained {
    type Target = Live;
    fn deref(&self) -> &Live {
        &self.l
    }
}

impl DerefMut for Contained {
    fn deref_mut(&mut self) -> &mut Live {
        &mut self.l
    }
}

impl Contained {
    fn new() -> Contained {
        Contained {
            l: Live::new(),
            cgroups: Vec::new(),
        }
    }

    /// Starts the daemon behind `prefix` (e.g. `taskset -c 1`, which execs it), with
    /// `--poll-interval 0.2 --kill-wait 1` and `args` (under `TEST_POLICY` unless they name a
    /// `--policy`); its stderr goes to `sched.err`.
    fn start(&mut self, prefix: &[&str], args: &[&str], env: &[(&str, &str)]) {
        let err = std::fs::File::create(self.home().join("sched.err")).unwrap();
        let mut argv: Vec<&str> = prefix.to_vec();
        argv.extend([
            BIN,
            "scheduler",
            "--poll-interval",
            "0.2",
            "--kill-wait",
            "1",
        ]);
        argv.extend_from_slice(args);
        if !args.contains(&"--policy") {
            argv.extend(["--policy", TEST_POLICY]);
        }
        let child = Command::new(argv[0])
            .args(&argv[1..])
            .envs(env.iter().copied())
            .env("MINI_SLURM_HOME", self.home())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap();
        self.l.daemon = Some(child);
        let h = mini_slurm::live::Home::at(self.home());
        wait_for(|| h.daemon_running(), 10, "daemon start");
    }

    /// A v1 cgroup of `controller` made for this test (removed when it ends), and its parent;
    /// `None` where this machine has none or it cannot be made.
    fn v1_cgroup(&mut self, controller: &str) -> Option<(PathBuf, PathBuf)> {
        let base = Cgroups::read().v1_dir(controller)?;
        let dir = base.join(format!("mini_slurm_test_{}", marker().replace('.', "_")));
        std::fs::create_dir(&dir).ok()?;
        self.cgroups.push(dir.clone());
        Some((dir, base))
    }

    /// Starts the daemon (as [`start`](Contained::start)) inside cgroup `dir`.
    fn start_in(&mut self, dir: &Path, args: &[&str]) {
        let join = format!("echo $$ > {}/cgroup.procs && exec \"$@\"", dir.display());
        self.start(&["sh", "-c", &join, "sh"], args, &[]);
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.home().join("sched.err")).unwrap_or_default()
    }

    fn stats(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["stats"]).stdout).into_owned()
    }

    /// Whether this machine contains jobs with cgroups (what `stats` says).
    fn uses_cgroups(&self) -> bool {
        self.stats().contains("containment: a cgroup v")
    }
}

impl Drop for Contained {
    fn drop(&mut self) {
        self.l.stop();
        let home = self.home().to_path_buf();
        for _ in 0..50 {
            let left = processes_with_env("MINI_SLURM_HOME", home.as_os_str().as_bytes());
            if left.is_empty() {
                break;
            }
            for p in left {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let recorded: Vec<PathBuf> = mini_slurm::live::store::Db::open(&home.join("jobs.db"))
            .ok()
            .and_then(|db| db.jobs(&Default::default()).ok())
            .unwrap_or_default()
            .iter()
            .flat_map(|r| r.cgroups.iter().map(PathBuf::from))
            .collect();
        for dir in recorded.iter().chain(self.cgroups.iter().rev()) {
            for _ in 0..50 {
                if !dir.exists() || std::fs::remove_dir(dir).is_ok() {
                    break;
                }
                for p in std::fs::read_to_string(dir.join("cgroup.procs"))
                    .unwrap_or_default()
                    .lines()
                {
                    if let Ok(p) = p.trim().parse::<i32>() {
                        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Live processes (not zombies) other than this one whose environment holds `key=value`.
fn processes_with_env(key: &str, value: &[u8]) -> Vec<i32> {
    let mut want = format!("{key}=").into_bytes();
    want.extend_from_slice(value);
    procs()
        .filter(|&p| {
            std::fs::read(format!("/proc/{p}/environ"))
                .is_ok_and(|e| e.split(|&b| b == 0).any(|v| v == want.as_slice()))
        })
        .collect()
}

/// Live processes (not zombies), this one left out.
fn procs() -> impl Iterator<Item = i32> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(move |&p| p != me && same_process_alive(p, None))
}

/// Live processes whose command line holds `marker`.
fn with_marker(marker: &str) -> Vec<i32> {
    procs()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| {
                c.split(|&b| b == 0)
                    .any(|a| a.windows(marker.len()).any(|w| w == marker.as_bytes()))
            })
        })
        .collect()
}

/// A `sleep` duration no other process uses: the marker of one process of one test.
fn marker() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "3000.{}{:04}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Asserts that no process holds any of `markers`, and that the job's cgroups are gone.
fn assert_nothing_left(job: &JobRow, markers: &[&str], what: &str) {
    for m in markers {
        assert_eq!(
            with_marker(m),
            [] as [i32; 0],
            "{what}: processes of `sleep {m}` remain"
        );
    }
    for c in &job.cgroups {
        assert!(!Path::new(c).exists(), "{what}: cgroup {c} remains");
    }
}

fn wait_running(l: &Live, id: i64, markers: &[&str]) {
    wait_for(
        || {
            l.job(id).state.name() == "RUNNING"
                && markers.iter().all(|m| !with_marker(m).is_empty())
        },
        10,
        &format!("job {id} and its processes to run"),
    );
}

/// The CPU ids this test process may use (a daemon it starts inherits them).
fn my_cpu_ids() -> Vec<usize> {
    mini_slurm::live::machine::cpu_ids()
}

/// `CI=true` turns a skip into a failure.
fn skip(why: &str) {
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "cannot skip on CI: {why}"
    );
    eprintln!("skipped: {why}");
}

/// A job whose child calls `setsid` leaves nothing behind when it completes or is cancelled:
/// with this machine's cgroups and with the subreaper alone.
#[test]
fn setsid_children_end_with_their_job() {
    for env in [&[][..], &[("MINI_SLURM_NO_CGROUP", "1")]] {
        let mut l = Contained::new();
        l.start(&[], &["--cpus", "2"], env);
        let cgroups = l.uses_cgroups();
        assert!(
            env.is_empty() || !cgroups,
            "MINI_SLURM_NO_CGROUP=1: {}",
            l.stats()
        );
        let (m1, m2, m3, m4) = (marker(), marker(), marker(), marker());
        // Completed: the daemonized child (and a double-forked one) end with the job.
        let done = l.submit(&[&format!(
            "setsid sleep {m1} & (setsid sleep {m2} &); while [ ! -e go ]; do sleep 0.05; done"
        )]);
        wait_running(&l, done, &[&m1, &m2]);
        let row = l.job(done);
        assert_eq!(!row.cgroups.is_empty(), cgroups, "{env:?}: {row:?}");
        std::fs::write(l.home().join("go"), "").unwrap();
        let r = l.wait_state(done, 20);
        assert_eq!(r.state.name(), "COMPLETED", "{env:?}: {r:?}");
        assert_nothing_left(&r, &[&m1, &m2], &format!("{env:?} completed"));
        // Cancelled.
        let cancelled = l.submit(&[&format!("setsid sleep {m3} & sleep {m4}")]);
        wait_running(&l, cancelled, &[&m3, &m4]);
        let o = l.cmd(&["cancel", &cancelled.to_string()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let r = l.wait_state(cancelled, 20);
        assert_eq!(r.state.name(), "CANCELLED", "{env:?}: {r:?}");
        assert_nothing_left(&r, &[&m3, &m4], &format!("{env:?} cancelled"));
    }
}

/// `kill -9` of a job's runner: the job's processes (its setsid'd child included) are gone
/// before the next job starts on its CPU, and it ends FAILED with reason NodeFail.
#[test]
fn killed_runner_leaves_nothing_for_the_next_job() {
    for env in [&[][..], &[("MINI_SLURM_NO_CGROUP", "1")]] {
        let mut l = Contained::new();
        l.start(&[], &["--cpus", "1"], env);
        let (m1, m2) = (marker(), marker());
        let victim = l.submit(&[&format!("setsid sleep {m1} & sleep {m2}")]);
        // The next job counts, as it starts, the processes carrying either marker (the
        // markers are assembled at run time so that its own command line holds neither).
        let (h1, t1) = m1.split_at(5);
        let (h2, t2) = m2.split_at(5);
        let next = l.submit(&[&format!(
            "a={h1}; a=${{a}}{t1}; b={h2}; b=${{b}}{t2}; n=0; \
             for p in /proc/[0-9]*; do c=$(tr '\\0' ' ' < $p/cmdline 2>/dev/null); \
             case \"$c\" in *\"$a\"*|*\"$b\"*) n=$((n+1));; esac; done; echo $n > found"
        )]);
        wait_running(&l, victim, &[&m1, &m2]);
        let runner = l.job(victim).runner_pid.unwrap();
        kill(Pid::from_raw(runner), Signal::SIGKILL).unwrap();
        let r = l.wait_state(victim, 20);
        assert_eq!(r.state.name(), "FAILED", "{env:?}: {r:?}");
        assert!(r.reason.to_string().starts_with("NodeFail"), "{r:?}");
        assert_eq!(l.wait_state(next, 20).state.name(), "COMPLETED", "{env:?}");
        let found = std::fs::read_to_string(l.home().join("found")).unwrap();
        assert_eq!(
            found.trim(),
            "0",
            "{env:?}: processes of the killed job seen by the next"
        );
        assert_nothing_left(&r, &[&m1, &m2], &format!("{env:?} runner killed"));
    }
}

/// A daemon started under `taskset -c ID` pins its jobs to CPU ID (not 0), and `show` and
/// `stats` name it.
#[test]
fn taskset_daemon_pins_jobs_to_its_own_cpu() {
    let id = *my_cpu_ids().last().unwrap();
    let mut l = Contained::new();
    l.start(&["taskset", "-c", &id.to_string()], &[], &[]);
    let j = l.submit(&["grep Cpus_allowed_list /proc/self/status"]);
    assert_eq!(l.wait_state(j, 20).state.name(), "COMPLETED");
    let out = std::fs::read_to_string(l.home().join(format!("logs/job_{j}.out"))).unwrap();
    assert_eq!(out, format!("Cpus_allowed_list:\t{id}\n"));
    let show = String::from_utf8_lossy(&l.cmd(&["show", &j.to_string()]).stdout).into_owned();
    assert!(show.contains(&format!("NumCPUs=1 CPU_IDs={id} ")), "{show}");
    let stats = l.stats();
    assert!(stats.contains(&format!("to CPU ids {id} (")), "{stats}");
    assert!(stats.contains("pinning failures: 0"), "{stats}");
}

/// `--cpus` beyond the CPUs the daemon may use warns and runs that many one-CPU jobs at once,
/// spread evenly over the real CPUs.
#[test]
fn more_cpus_than_the_machine_oversubscribe_with_a_warning() {
    let ids = my_cpu_ids();
    let n = 2 * ids.len();
    let mut l = Contained::new();
    l.start(&[], &["--cpus", &n.to_string()], &[]);
    assert!(
        l.stderr().contains(&format!(
            "warning: --cpus {n} is more than the {} CPUs",
            ids.len()
        )),
        "{}",
        l.stderr()
    );
    let jobs: Vec<i64> = (0..n)
        .map(|_| l.submit(&["while [ ! -e go ]; do sleep 0.05; done"]))
        .collect();
    wait_for(
        || jobs.iter().all(|&j| l.job(j).job_pgid.is_some()),
        20,
        "all jobs to run at once",
    );
    let mut per_cpu = vec![0; ids.len()];
    for &j in &jobs {
        let r = l.job(j);
        let pos = ids.iter().position(|i| i.to_string() == r.cpu_list);
        assert!(pos.is_some(), "job {j} on {} of {ids:?}", r.cpu_list);
        per_cpu[pos.unwrap()] += 1;
        let allowed = super::live::cpus_allowed(r.job_pgid.unwrap());
        assert_eq!(allowed, r.cpu_list);
    }
    assert!(per_cpu.iter().all(|&c| c == 2), "{per_cpu:?}");
    assert!(l.stats().contains(&format!(
        "oversubscribed: {n} CPUs scheduled on {}",
        ids.len()
    )));
    std::fs::write(l.home().join("go"), "").unwrap();
    for j in jobs {
        assert_eq!(l.wait_state(j, 20).state.name(), "COMPLETED");
    }
}

/// A time limit holds while the daemon is down: the runner sends SIGTERM at the limit and
/// SIGKILL after the grace (to a job that ignores SIGTERM, and its setsid'd child) and records
/// TIMEOUT, which the daemon reports when it comes back.
#[test]
fn time_limit_holds_with_the_daemon_stopped() {
    let mut l = Contained::new();
    l.start(&[], &["--cpus", "1"], &[]);
    let (m1, m2) = (marker(), marker());
    let j = l.submit(&[
        "--time",
        "0:02",
        &format!("trap '' TERM; setsid sleep {m1} & sleep {m2}"),
    ]);
    wait_running(&l, j, &[&m1, &m2]);
    l.stop();
    let t = Instant::now();
    wait_for(|| l.job(j).runner_done, 10, "the runner to record the end");
    let r = l.job(j);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!((r.state.name(), r.timed_out), ("RUNNING", true), "{r:?}");
    assert_nothing_left(&r, &[&m1, &m2], "timed out without a daemon");
    let ran = r.end_ms.unwrap() - r.start_ms.unwrap();
    assert!(
        (2900..4500).contains(&ran),
        "limit 2 s + grace 1 s, ran {ran} ms"
    );
    l.start(&[], &["--cpus", "1"], &[]);
    let r = l.wait_state(j, 20);
    assert_eq!(r.state.name(), "TIMEOUT", "{r:?}");
    assert_eq!(r.end_ms.unwrap() - r.start_ms.unwrap(), ran);
}

/// Without a memory cgroup (`MINI_SLURM_NO_CGROUP=1`) the limit is on the PSS of all the
/// job's processes, setsid'd ones included: four forked workers sharing 64 MB stay within
/// 200 MB (their RSS sum is ~360 MB), four that each allocate 64 MB more do not.
#[test]
fn pss_fallback_counts_shared_pages_once() {
    let script = "import os, sys, time\n\
        big = b'x' * (64 << 20)\n\
        kids = []\n\
        for i in range(4):\n\
        \x20   pid = os.fork()\n\
        \x20   if pid == 0:\n\
        \x20       os.setsid()\n\
        \x20       own = b'y' * (64 << 20) if sys.argv[1] == 'own' else b''\n\
        \x20       time.sleep(3)\n\
        \x20       os._exit(0)\n\
        \x20   kids.append(pid)\n\
        for k in kids:\n\
        \x20   os.waitpid(k, 0)\n";
    let mut l = Contained::new();
    let shared = l.submit(&["--mem", "200M", "--", "python3", "-c", script, "shared"]);
    let own = l.submit(&["--mem", "200M", "--", "python3", "-c", script, "own"]);
    l.start(&[], &["--cpus", "2"], &[("MINI_SLURM_NO_CGROUP", "1")]);
    assert!(l.stats().contains("PSS polling"), "{}", l.stats());
    let r = l.wait_state(shared, 30);
    assert_eq!(r.state.name(), "COMPLETED", "{r:?}");
    let r = l.wait_state(own, 30);
    assert_eq!(r.state.name(), "OUT_OF_MEMORY", "{r:?}");
}

/// A daemon in a memory cgroup limited to 1 GiB schedules 1024 MB, not the machine's memory.
#[test]
fn total_memory_respects_the_daemons_cgroup_limit() {
    let mut l = Contained::new();
    let Some((dir, _)) = l.v1_cgroup("memory") else {
        return skip("no writable cgroup v1 memory hierarchy");
    };
    std::fs::write(dir.join("memory.limit_in_bytes"), (1u64 << 30).to_string()).unwrap();
    l.start_in(&dir, &[]);
    let meta = l.db().daemon_meta().unwrap();
    assert_eq!(meta.mem_mb, Some(1024));
    assert!(l.stats().contains("Memory:  0 / 1024 MB"), "{}", l.stats());
}

/// A pinning failure is recorded and reported: a daemon whose cpuset shrinks under it after
/// its start (a container resized) starts a two-CPU job that the kernel can only run on one.
#[test]
fn pinning_failures_are_reported() {
    let ids = my_cpu_ids();
    if ids.len() < 2 {
        return skip("needs two CPUs");
    }
    let mut l = Contained::new();
    let Some((dir, base)) = l.v1_cgroup("cpuset") else {
        return skip("no writable cgroup v1 cpuset hierarchy");
    };
    let list = |ids: &[usize]| {
        ids.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mems = std::fs::read_to_string(base.join("cpuset.mems")).unwrap();
    std::fs::write(dir.join("cpuset.mems"), mems.trim()).unwrap();
    std::fs::write(dir.join("cpuset.cpus"), list(&ids[..2])).unwrap();
    l.start_in(&dir, &["--cpus", "2"]);
    // The daemon reads its CPU ids after it takes its lock and before it opens its socket: the
    // cpuset shrinks only once it has read both (else its two slots would both be CPU 0).
    wait_for(
        || l.home().join("daemon.sock").exists(),
        10,
        "the daemon's socket",
    );
    std::fs::write(dir.join("cpuset.cpus"), ids[0].to_string()).unwrap();
    let j = l.submit(&["--cpus", "2", "--", "true"]);
    assert_eq!(l.wait_state(j, 20).state.name(), "COMPLETED");
    let want = format!(
        "asked for CPUs {}, the kernel allows {}",
        mini_slurm::live::syntax::cpu_list(&ids[..2]),
        ids[0]
    );
    assert_eq!(l.job(j).pin_error.as_deref(), Some(want.as_str()));
    let stats = l.stats();
    assert!(
        stats.contains(&format!("pinning failures: 1 (latest: job {j}: {want})")),
        "{stats}"
    );
    let show = String::from_utf8_lossy(&l.cmd(&["show", &j.to_string()]).stdout).into_owned();
    assert!(show.contains(&format!("PinError={want}")), "{show}");
}
