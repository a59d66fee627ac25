//! The live daemon: `run(config)` plugs a wall clock, an executor (processes on this machine,
//! or jobs on Slurm) and the SQLite store into the same engine and driver loop as the
//! simulator, and publishes a snapshot after each step for the plan writer and the HTTP side.
//! Wiring only: each part lives in its own file (`clock.rs`, `executor/`, `slurm/`,
//! `sqlite_store.rs`, `recovery.rs`, `server.rs`, `publish.rs`, `http/`).

use super::clock::{WallClock, listen};
use super::contain::containment;
use super::executor::ProcessExecutor;
use super::http::{self, HttpOptions};
use super::machine::{cpu_ids, mem_enforcement};
use super::publish::{PlanScope, Published, Publisher, Static, write_plans};
use super::recovery::recover;
use super::server;
use super::service::{Access, QosGrants};
use super::slurm::cli::Cli;
use super::slurm::executor::SlurmExecutor;
use super::slurm::recovery::recover as slurm_recover;
use super::slurm::{NO_ELASTIC, SlurmConfig};
use super::sqlite_store::{DbLedger, PLACEMENT, SqliteStore};
use super::store::{DaemonMeta, Db};
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
    /// Who runs the jobs.
    pub executor: ExecutorKind,
}

/// Who runs the jobs the engine starts.
#[derive(Clone, Debug)]
pub enum ExecutorKind {
    /// Processes on this machine, each under a `job-runner` (the cluster is one node).
    Process,
    /// Batch jobs on a Slurm cluster (the cluster is read from Slurm).
    Slurm(SlurmConfig),
}

impl ExecutorKind {
    pub fn name(&self) -> &'static str {
        match self {
            ExecutorKind::Process => "process",
            ExecutorKind::Slurm(_) => "slurm",
        }
    }
}

impl DaemonConfig {
    /// CPUs, memory (MB) and GPUs of the whole cluster.
    pub fn capacity(&self) -> (u32, u64, usize) {
        let n = &self.cluster.nodes;
        let cpus = n.iter().map(|n| n.cpus).sum();
        let gpus = n.iter().map(|n| n.gpus as usize).sum();
        (cpus, n.iter().map(|n| n.mem_mb).sum(), gpus)
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

/// The engine of `cfg`: its cluster, policy, limits and accounts; the names it interns.
fn engine(cfg: &DaemonConfig) -> Result<(Engine, Names, String, QosGrants), LiveError> {
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
    let mut qos = QosGrants::NONE;
    if let Some((path, text)) = &cfg.accounts {
        let assoc = crate::config::accounts::parse(text, path, &mut names)
            .map_err(|e| LiveError::Other(e.to_string()))?;
        qos = QosGrants::of(&assoc, &names);
        engine.set_associations(assoc);
    }
    Ok((engine, names, spec.canonical(), qos))
}

/// A home's jobs recorded started by another executor cannot be taken over by this one (read
/// only: the daemon records its executor with the rest of its configuration).
fn check_executor(db: &Db, kind: &ExecutorKind) -> Result<(), LiveError> {
    let before = db
        .daemon_meta()?
        .executor
        .unwrap_or_else(|| "process".into());
    if before != kind.name() && !db.started_jobs()?.0.is_empty() {
        return Err(LiveError::Other(format!(
            "jobs of this home were started by the {before} executor and still run: start the scheduler with --executor {before} until they end"
        )));
    }
    Ok(())
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

/// Runs the daemon until `shutdown` is set. Jobs still running then go on under their runners
/// (process executor) or in Slurm.
pub fn run(cfg: &DaemonConfig, shutdown: Arc<AtomicBool>) -> Result<(), LiveError> {
    let home = &cfg.home;
    server::prepare_home(home, &cfg.access)?;
    let db = home.open()?;
    let _lock = lock(home)?;
    if let ExecutorKind::Slurm(slurm) = &cfg.executor {
        return run_slurm(cfg, slurm, db, shutdown);
    }
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
    // The configuration is recorded first: a client that sees the daemon's lock held finds it.
    let (mut engine, names, policy, qos) = engine(cfg)?;
    let (cpus, mem_mb, _) = cfg.capacity();
    check_executor(&db, &cfg.executor)?;
    let published = published(cfg, &policy, cfg.gpus.clone());
    db.set_daemon_meta(&DaemonMeta {
        cpus: Some(cpus),
        mem_mb: Some(mem_mb),
        gpus: Some(cfg.gpus.clone()),
        policy: Some(policy),
        pid: Some(std::process::id()),
        started_ms: Some(now_ms()),
        enforcement: Some(mem_description(cfg.rlimit_as)),
        executor: Some(cfg.executor.name().into()),
        plan: Some(published.fixed().scope.name().to_string()),
        http: Some(String::new()),
        ..Default::default()
    })?;
    let ids = cpu_ids();
    db.record_containment(&containment().describe(), &cpu_list(&ids))?;
    let (mut clock, waker) = WallClock::new(cfg.max_sleep, Arc::clone(&shutdown));
    let sock_path = home.wake_socket();
    listen(&sock_path, waker.clone())?;
    let _server = server::start(home, cfg.access, qos, waker.clone())?;
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
    let mut store = SqliteStore::new(db, cfg.cluster.clone(), cfg.limits, names, shutdown);
    recover(&mut store, &mut exec, &mut engine)?;
    drive(
        cfg,
        &mut engine,
        &mut clock,
        &mut exec,
        &mut store,
        &published,
    )
}

/// What the daemon publishes for the plan writer and the HTTP side: its fixed part.
fn published(cfg: &DaemonConfig, policy: &str, gpus: Vec<String>) -> Published {
    Published::new(Static {
        cluster: cfg.cluster.clone(),
        policy: policy.to_string(),
        scope: PlanScope::of_policy(policy),
        gpus,
    })
}

/// Starts the HTTP side and the plan writer, runs the driver loop until it stops, then stops
/// them and removes the daemon's wake-up socket.
fn drive<E: driver::Executor>(
    cfg: &DaemonConfig,
    engine: &mut Engine,
    clock: &mut WallClock,
    exec: &mut E,
    store: &mut SqliteStore,
    published: &Published,
) -> Result<(), LiveError> {
    let home = &cfg.home;
    // Only now (still before any job starts): the daemon's meta, CPU ids and recovery come as
    // soon as it holds its lock, as clients and tests expect.
    let server = serve_http(cfg, store.db(), published)?;
    let plans_stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, p, stop) = (home.open()?, published.clone(), Arc::clone(&plans_stop));
        std::thread::Builder::new()
            .name("plan-writer".into())
            .spawn(move || write_plans(db, p, stop))
            .map_err(|e| LiveError::Other(format!("cannot start the plan writer: {e}")))?
    };
    let result = driver::run(
        engine,
        clock,
        exec,
        store,
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
    let _ = std::fs::remove_file(home.wake_socket());
    result.map_err(|e| LiveError::Other(format!("scheduler stopped: {e}")))
}

/// The daemon with the Slurm executor: the same engine, store and loop; jobs go to Slurm.
fn run_slurm(
    cfg: &DaemonConfig,
    slurm: &SlurmConfig,
    db: Db,
    shutdown: Arc<AtomicBool>,
) -> Result<(), LiveError> {
    let home = &cfg.home;
    let (mut engine, names, policy, qos) = engine(cfg)?;
    let (cpus, mem_mb, gpus) = cfg.capacity();
    let partition = cfg.cluster.partitions[0].name.clone();
    check_executor(&db, &cfg.executor)?;
    // Clients check GPU requests against the count (Slurm picks the devices).
    let gpu_names: Vec<String> = (0..gpus).map(|i| i.to_string()).collect();
    let published = published(cfg, &policy, gpu_names.clone());
    db.set_daemon_meta(&DaemonMeta {
        cpus: Some(cpus),
        mem_mb: Some(mem_mb),
        gpus: Some(gpu_names),
        policy: Some(policy),
        pid: Some(std::process::id()),
        started_ms: Some(now_ms()),
        enforcement: Some(format!(
            "by Slurm (partition {partition}, {} nodes): its own CPU, memory and time limits",
            cfg.cluster.nodes.len()
        )),
        executor: Some(cfg.executor.name().into()),
        plan: Some(published.fixed().scope.name().to_string()),
        http: Some(String::new()),
        ..Default::default()
    })?;
    let (mut clock, waker) = WallClock::new(cfg.max_sleep, Arc::clone(&shutdown));
    listen(&home.wake_socket(), waker.clone())?;
    let _server = server::start(home, cfg.access, qos, waker)?;
    let ms = |d: Duration| Dur(d.as_millis() as i64);
    let mut exec = SlurmExecutor::new(
        home.clone(),
        home.open()?,
        Cli::from_path(slurm.timeout),
        cfg.cluster.clone(),
        partition,
        ms(cfg.max_sleep),
        ms(slurm.lost_after),
    )
    .with_time_base(clock.base());
    let mut store = SqliteStore::new(db, cfg.cluster.clone(), cfg.limits, names, shutdown)
        .refuse_elastic(NO_ELASTIC);
    slurm_recover(&mut store, &mut exec, &mut engine)?;
    drive(
        cfg,
        &mut engine,
        &mut clock,
        &mut exec,
        &mut store,
        &published,
    )
}
