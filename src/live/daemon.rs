//! The live daemon: `run(config)` plugs a wall clock, a process executor and the SQLite store
//! into the same engine and driver loop as the simulator, and publishes a snapshot after each
//! step for the plan writer and the HTTP side. Wiring only: each part lives in its own file
//! (`clock.rs`, `executor.rs`, `sqlite_store.rs`, `recovery.rs`, `server.rs`, `publish.rs`,
//! `http/`).

use super::clock::{WallClock, listen};
use super::contain::containment;
use super::executor::ProcessExecutor;
use super::http::{self, HttpOptions};
use super::machine::{cpu_ids, mem_enforcement};
use super::publish::{PlanScope, Published, Publisher, Static, write_plans};
use super::recovery::recover;
use super::server;
use super::service::Access;
use super::sqlite_store::{DbLedger, PLACEMENT, SqliteStore};
use super::store::DaemonMeta;
use super::syntax::cpu_list;
use super::{Home, LiveError, now_ms};
use crate::driver;
use crate::engine::Engine;
use crate::ids::Names;
use crate::model::Cluster;
use crate::policy;
use crate::sched::limits::Limits;
use crate::time::Dur;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How the daemon runs.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    pub home: Home,
    /// What the engine schedules on. The process executor runs jobs on this machine, so today
    /// it is one node (`machine::local_cluster`).
    pub cluster: Cluster,
    /// GPU names (nvidia-smi indices) the daemon hands out; job GPU i is `gpus[i]`.
    pub gpus: Vec<String>,
    pub policy: String,
    /// Grace between SIGTERM and SIGKILL for time limits and cancellations.
    pub kill_wait: Duration,
    /// The `mini-slurm` binary, whose `job-runner` supervises each job.
    pub runner: PathBuf,
    /// Upper bound on how long the daemon sleeps without looking at the database.
    pub max_sleep: Duration,
    /// Per-user and per-account quotas on running jobs.
    pub limits: Limits,
    /// An accounts file (fair-share tree, QOS levels): its path and text.
    pub accounts: Option<(PathBuf, String)>,
    /// Cap each job's address space (RLIMIT_AS = 2 × its memory + 512 MB) where no memory
    /// cgroup limits it (`scheduler --rlimit-as`).
    pub rlimit_as: bool,
    /// Serve the dashboard, metrics and JSON API (`scheduler --http`).
    pub http: Option<HttpOptions>,
    /// Who may connect and do what (`scheduler --multi-user`, `--max-priority`).
    pub access: Access,
}

impl DaemonConfig {
    /// CPUs, memory (MB) and GPUs of the whole cluster.
    pub fn capacity(&self) -> (u32, u64, usize) {
        let n = &self.cluster.nodes;
        let cpus = n.iter().map(|n| n.cpus).sum();
        (cpus, n.iter().map(|n| n.mem_mb).sum(), self.gpus.len())
    }
}

/// How memory limits are enforced, in words (with `--rlimit-as`, the address-space cap too).
pub fn mem_description(rlimit_as: bool) -> String {
    let mut s = mem_enforcement().describe();
    if rlimit_as {
        s.push_str(
            "; RLIMIT_AS = 2 × limit + 512 MB where no memory cgroup limits the job (--rlimit-as)",
        );
    }
    s
}

/// Holds this home's lock for the daemon's lifetime: one daemon per home.
fn lock(home: &Home) -> Result<nix::fcntl::Flock<std::fs::File>, LiveError> {
    let path = home.lock();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| LiveError::io(&path, e))?;
    let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(
        |_| LiveError::AlreadyRunning {
            home: home.dir.clone(),
            lock: path.clone(),
        },
    )?;
    // The lock file names its holder, for `mini-slurm stop`.
    {
        use std::io::Write;
        let mut f: &std::fs::File = &lock;
        let _ = f.set_len(0);
        let _ = writeln!(f, "{}", std::process::id());
    }
    Ok(lock)
}

/// Voids the last run's plan and, with `--http`, starts the HTTP side (before any job starts)
/// and records its address.
fn serve_http(
    cfg: &DaemonConfig,
    db: &super::store::Db,
    published: &Published,
) -> Result<Option<http::HttpServer>, LiveError> {
    db.clear_expected_starts()?;
    let Some(opts) = &cfg.http else {
        return Ok(None);
    };
    let opts = HttpOptions {
        hide_details: cfg.access.multi_user,
        ..opts.clone()
    };
    let server = http::start(&opts, &cfg.home, published.clone())?;
    eprintln!(
        "[mini-slurm] dashboard, metrics and JSON API at http://{}/",
        server.addr()
    );
    db.set_daemon_meta(&DaemonMeta {
        http: Some(server.addr().to_string()),
        ..DaemonMeta::default()
    })?;
    Ok(Some(server))
}

/// Runs the daemon until `shutdown` is set. Jobs still running then go on under their runners.
pub fn run(cfg: &DaemonConfig, shutdown: Arc<AtomicBool>) -> Result<(), LiveError> {
    let home = &cfg.home;
    server::prepare_home(home, &cfg.access)?;
    let db = home.open()?;
    let _lock = lock(home)?;
    let [node] = cfg.cluster.nodes.as_slice() else {
        return Err(LiveError::Other(format!(
            "the process executor runs jobs on this machine: one node expected, the cluster has {}",
            cfg.cluster.nodes.len()
        )));
    };
    if node.gpus as usize != cfg.gpus.len() {
        return Err(LiveError::Other(format!(
            "node {} has {} GPUs but {} GPU names are given",
            node.name,
            node.gpus,
            cfg.gpus.len()
        )));
    }
    let (mut clock, waker) = WallClock::new(cfg.max_sleep, Arc::clone(&shutdown));
    let sock_path = home.wake_socket();
    listen(&sock_path, waker.clone())?;
    let _server = server::start(home, cfg.access, waker.clone())?;
    let (policy, spec) =
        policy::build(&cfg.policy).map_err(|e| LiveError::Other(format!("--policy: {e}")))?;
    let mut engine = Engine::new(
        cfg.cluster.clone(),
        Box::new(PLACEMENT),
        policy,
        &spec.canonical(),
    );
    engine.set_limits(cfg.limits);
    // Expected starts are shown (`queue --start`, `show`, the dashboard).
    engine.set_want_plan(true);
    let mut names = Names::default();
    if let Some((path, text)) = &cfg.accounts {
        let assoc = crate::config::accounts::parse(text, path, &mut names)
            .map_err(|e| LiveError::Other(e.to_string()))?;
        engine.set_associations(assoc);
    }
    let (cpus, mem_mb, _) = cfg.capacity();
    let published = Published::new(Static {
        cluster: cfg.cluster.clone(),
        policy: spec.canonical(),
        scope: PlanScope::of_policy(&spec.canonical()),
        gpus: cfg.gpus.clone(),
    });
    // Recorded first, as soon as the daemon holds its lock: clients and tests read it.
    db.set_daemon_meta(&DaemonMeta {
        cpus: Some(cpus),
        mem_mb: Some(mem_mb),
        gpus: Some(cfg.gpus.clone()),
        policy: Some(spec.canonical()),
        pid: Some(std::process::id()),
        started_ms: Some(now_ms()),
        enforcement: Some(mem_description(cfg.rlimit_as)),
        last_fault: None,
        plan: Some(published.fixed().scope.name().to_string()),
        http: Some(String::new()),
    })?;
    let ids = cpu_ids();
    db.record_containment(&containment().describe(), &cpu_list(&ids))?;
    let mut exec = ProcessExecutor::new(
        home.clone(),
        DbLedger(home.open()?),
        cfg.runner.clone(),
        node,
        cfg.gpus.clone(),
        waker,
        Dur(cfg.kill_wait.as_millis() as i64),
    )
    .with_cpu_ids(ids)
    .with_time_base(clock.base())
    .with_rlimit_as(cfg.rlimit_as);
    let mut store = SqliteStore::new(
        db,
        cfg.cluster.clone(),
        cfg.limits,
        names,
        Arc::clone(&shutdown),
    );
    recover(&mut store, &mut exec, &mut engine)?;
    // Only now (still before any job starts): the daemon's meta, CPU ids and recovery come as
    // soon as it holds its lock, as clients and tests expect.
    let server = serve_http(cfg, store.db(), &published)?;
    let plans_stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, p, stop) = (home.open()?, published.clone(), Arc::clone(&plans_stop));
        std::thread::Builder::new()
            .name("plan-writer".into())
            .spawn(move || write_plans(db, p, stop))
            .map_err(|e| LiveError::Other(format!("cannot start the plan writer: {e}")))?
    };
    let result = driver::run(
        &mut engine,
        &mut clock,
        &mut exec,
        &mut store,
        &mut Publisher::new(published.clone()),
    );
    plans_stop.store(true, Ordering::SeqCst);
    published.nudge();
    let _ = writer.join();
    if server.is_some() {
        let _ = store.db().set_daemon_meta(&DaemonMeta {
            http: Some(String::new()),
            ..DaemonMeta::default()
        });
    }
    drop(server);
    let _ = std::fs::remove_file(&sock_path);
    result.map_err(|e| LiveError::Other(format!("scheduler stopped: {e}")))
}
