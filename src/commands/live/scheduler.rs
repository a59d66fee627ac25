//! `mini-slurm scheduler`: the daemon, in the foreground until `mini-slurm stop`, SIGINT or SIGTERM.

use super::{failed, input};
use crate::commands::CliResult;
use anyhow::anyhow;
use mini_slurm::live::contain::containment;
use mini_slurm::live::daemon::{DaemonConfig, ExecutorKind, mem_description, run as run_daemon};
use mini_slurm::live::service::Access;
use mini_slurm::live::slurm::cli::Cli;
use mini_slurm::live::slurm::{SetupError, SlurmConfig, read_cluster};
use mini_slurm::live::syntax::cpu_list;
use mini_slurm::live::{Home, LiveError, http, machine};
use mini_slurm::model::Cluster;
use mini_slurm::model::parse_mem_mb;
use mini_slurm::sched::limits::{Limit, Limits};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "The daemon runs until `mini-slurm stop`, SIGINT or SIGTERM; jobs still running then go on and are re-adopted when it starts again.\nState lives in $MINI_SLURM_HOME (default ~/.mini_slurm, its database and job logs at ~/.mini_slurm.db and ~/.mini_slurm_logs; with --multi-user, /var/lib/mini-slurm)."
)]
pub struct SchedulerArgs {
    /// CPUs to schedule (default: all detected)
    #[arg(long, alias = "total-cpus", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    cpus: Option<u32>,
    /// Memory to schedule, e.g. 16GB (default: all detected)
    #[arg(long, alias = "total-mem", value_name = "SIZE", value_parser = parse_mem_mb)]
    mem: Option<u64>,
    /// GPUs to schedule (default: those nvidia-smi lists)
    #[arg(long, value_name = "N")]
    gpus: Option<u32>,
    /// Scheduling policy spec (see `mini-slurm policies`)
    #[arg(long, default_value = "slurm[priority=recorded]", value_name = "SPEC")]
    policy: String,
    /// Longest sleep between looks at the database, in seconds (submissions and job exits wake the daemon at once)
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    poll_interval: f64,
    /// Seconds between SIGTERM and SIGKILL when a job hits its time limit or is cancelled
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    kill_wait: f64,
    /// Quota for every user's running jobs, e.g. cpus=8,mem=32G,gpus=1,jobs=4; jobs over it wait (AssocGrpCpuLimit, ...)
    #[arg(long, value_name = "LIMITS", value_parser = Limit::parse)]
    user_limit: Option<Limit>,
    /// Accounts file: fair-share tree and QOS levels (`qos NAME priority=N`), as for `sim --accounts`
    #[arg(long, value_name = "FILE")]
    accounts: Option<std::path::PathBuf>,
    /// Also cap each job's address space (RLIMIT_AS = 2 × its --mem + 512 MB) where no memory cgroup limits it; breaks jobs that reserve address space (CUDA, JVMs)
    #[arg(long)]
    rlimit_as: bool,
    /// Who runs the jobs: `process` (this machine) or `slurm` (sbatch onto a Slurm cluster, whose nodes are read from Slurm)
    #[arg(long, default_value = "process", value_parser = ["process", "slurm"])]
    executor: String,
    /// With --executor slurm: the Slurm partition to run in (default: Slurm's default partition)
    #[arg(long, value_name = "NAME")]
    partition: Option<String>,
    /// With --executor slurm: seconds a Slurm command (sbatch, squeue, ...) may take before it is killed and retried
    #[arg(long, default_value_t = 20.0, value_name = "SECONDS")]
    slurm_timeout: f64,
    /// With --executor slurm: seconds a job may be missing from both squeue and sacct before it is failed (NODE_FAIL)
    #[arg(long, default_value_t = 600.0, value_name = "SECONDS")]
    slurm_lost_after: f64,
    /// Serve a dashboard at /, Prometheus metrics at /metrics and a JSON API at /api/v1/ on ADDR: PORT alone listens on 127.0.0.1; name an address (0.0.0.0:PORT) to be reachable from elsewhere (no authentication: every job is visible)
    #[arg(long, value_name = "ADDR:PORT")]
    http: Option<String>,
    /// A scheduler shared by this machine's users (run as root): each user submits, sees and cancels through its socket, and each job runs as its owner (see docs/live.md, "Shared machine")
    #[arg(long)]
    multi_user: bool,
    /// The highest --priority a user other than root may give (default: any; 0 with --multi-user)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    max_priority: Option<i64>,
}

static SHUTDOWN: AtomicBool = AtomicBool::new(false);
extern "C" fn on_signal(_: i32) {
    SHUTDOWN.store(true, Ordering::SeqCst);
}

/// The daemon's configuration from the arguments and this machine.
fn config(a: SchedulerArgs, home: &Home) -> Result<DaemonConfig, crate::commands::CliError> {
    let detected = machine::detect();
    let gpus: Vec<String> = match a.gpus {
        None => detected.gpus.clone(),
        Some(n) => (0..n as usize)
            .map(|i| {
                detected
                    .gpus
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| i.to_string())
            })
            .collect(),
    };
    if !(a.poll_interval > 0.0 && a.kill_wait >= 0.0) {
        return Err(input(anyhow!(
            "--poll-interval must be > 0 and --kill-wait ≥ 0"
        )));
    }
    let (_, spec) =
        mini_slurm::policy::build(&a.policy).map_err(|e| input(anyhow!("--policy: {e}")))?;
    // A live job's process cannot be parked and resumed on other CPUs yet: suspension would
    // silently be a requeue, so it is refused.
    if spec.params.get("preempt").map(String::as_str) == Some("suspend") {
        return Err(input(anyhow!(
            "--policy: preempt=suspend is simulation-only; live mode supports preempt=requeue and preempt=cancel"
        )));
    }
    // Read and check the accounts file now, so a bad one is a usage error (exit 2).
    let accounts = match &a.accounts {
        None => None,
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| input(anyhow!("--accounts {}: {e}", p.display())))?;
            mini_slurm::config::accounts::parse(&text, p, &mut Default::default())
                .map_err(|e| input(anyhow!("--accounts: {e}")))?;
            Some((p.clone(), text))
        }
    };
    let (cluster, executor) = if a.executor == "slurm" {
        slurm_cluster(&a)?
    } else {
        if a.partition.is_some() {
            return Err(input(anyhow!("--partition needs --executor slurm")));
        }
        (
            local_cluster(&a, &detected, gpus.len() as u32)?,
            ExecutorKind::Process,
        )
    };
    let http = match &a.http {
        None => None,
        Some(v) => {
            let (addr, loopback) =
                http::parse_addr(v).map_err(|e| input(anyhow!("--http: {e}")))?;
            if !loopback {
                eprintln!(
                    "[mini-slurm] warning: --http {addr} is reachable beyond this machine; the dashboard and API have no authentication and show every job"
                );
            }
            Some(http::HttpOptions::new(addr))
        }
    };
    Ok(DaemonConfig {
        accounts,
        home: home.clone(),
        cluster,
        gpus: if matches!(executor, ExecutorKind::Process) {
            gpus
        } else {
            Vec::new()
        },
        policy: a.policy,
        kill_wait: Duration::from_secs_f64(a.kill_wait),
        runner: std::env::current_exe().map_err(failed)?,
        max_sleep: Duration::from_secs_f64(a.poll_interval),
        limits: Limits {
            user: a.user_limit.unwrap_or_default(),
            account: Default::default(),
        },
        rlimit_as: a.rlimit_as,
        http,
        access: Access {
            multi_user: a.multi_user,
            max_priority: a.max_priority.or(a.multi_user.then_some(0)),
        },
        executor,
    })
}

/// This machine as one node (the process executor).
fn local_cluster(
    a: &SchedulerArgs,
    detected: &machine::Machine,
    gpus: u32,
) -> Result<Cluster, crate::commands::CliError> {
    let cpus = a.cpus.unwrap_or(detected.cpus);
    let ids = machine::cpu_ids();
    if cpus as usize > ids.len() {
        eprintln!(
            "[mini-slurm] warning: --cpus {cpus} is more than the {} CPUs this scheduler may use (ids {}): jobs share them, CPU slot i runs on the i-th of them modulo {}",
            ids.len(),
            cpu_list(&ids),
            ids.len()
        );
    }
    let mem_mb = a.mem.unwrap_or(detected.mem_mb);
    machine::local_cluster(cpus, mem_mb, gpus).map_err(|e| input(anyhow!("{e}")))
}

/// The nodes of a Slurm partition, read from Slurm (the Slurm executor).
fn slurm_cluster(a: &SchedulerArgs) -> Result<(Cluster, ExecutorKind), crate::commands::CliError> {
    for (set, flag) in [
        (a.cpus.is_some(), "--cpus"),
        (a.mem.is_some(), "--mem"),
        (a.gpus.is_some(), "--gpus"),
        (a.rlimit_as, "--rlimit-as"),
    ] {
        if set {
            return Err(input(anyhow!(
                "{flag}: not with --executor slurm (the cluster and its limits are Slurm's)"
            )));
        }
    }
    // sbatch runs as the daemon's user: a shared daemon would run everyone's jobs as root.
    if a.multi_user {
        return Err(input(anyhow!(
            "--multi-user: not with --executor slurm (Slurm jobs run as the scheduler's own user)"
        )));
    }
    if !(a.slurm_timeout > 0.0 && a.slurm_lost_after >= 0.0) {
        return Err(input(anyhow!(
            "--slurm-timeout must be > 0 and --slurm-lost-after ≥ 0"
        )));
    }
    let cfg = SlurmConfig {
        partition: a.partition.clone(),
        timeout: Duration::from_secs_f64(a.slurm_timeout),
        lost_after: Duration::from_secs_f64(a.slurm_lost_after),
    };
    let cli = Cli::from_path(cfg.timeout);
    let cluster = read_cluster(&cli, cfg.partition.as_deref()).map_err(|e| match e {
        SetupError::Slurm(_) => failed(anyhow!("--executor slurm: reading the cluster: {e}")),
        _ => input(anyhow!("{e}")),
    })?;
    Ok((cluster, ExecutorKind::Slurm(cfg)))
}

pub fn run(a: SchedulerArgs) -> CliResult {
    let home = if a.multi_user {
        Home::system_from_env()
    } else {
        Home::personal_from_env()
    };
    // Refuse before saying anything else: a second daemon must not print "Starting".
    if home.daemon_running() {
        return Err(input(anyhow!(
            "a scheduler already runs for {} (lock {}); stop it first with 'mini-slurm stop'",
            home.dir.display(),
            home.lock().display()
        )));
    }
    let cfg = config(a, &home)?;
    for sig in [
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGTERM,
    ] {
        // SAFETY: the handler only stores to an atomic.
        unsafe {
            let _ = nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::Handler(on_signal));
        }
    }
    let (cpus, mem_mb, gpus) = cfg.capacity();
    eprintln!(
        "[mini-slurm] Starting scheduler with {cpus} CPUs, {mem_mb} MB memory, {gpus} GPUs, policy {} (home {})",
        cfg.policy,
        home.dir.display()
    );
    if let ExecutorKind::Slurm(_) = &cfg.executor {
        let names: Vec<&str> = cfg.cluster.nodes.iter().map(|n| n.name.as_str()).collect();
        eprintln!(
            "[mini-slurm] executor: Slurm, partition {}, nodes {}",
            cfg.cluster.partitions[0].name,
            names.join(",")
        );
    } else {
        eprintln!(
            "[mini-slurm] CPU ids: {} (the scheduler's affinity mask)",
            cpu_list(&machine::cpu_ids())
        );
        eprintln!(
            "[mini-slurm] memory enforcement: {}",
            mem_description(cfg.rlimit_as)
        );
        eprintln!("[mini-slurm] containment: {}", containment().describe());
    }
    let flag = Arc::new(AtomicBool::new(false));
    let watcher = {
        let flag = Arc::clone(&flag);
        std::thread::spawn(move || {
            while !SHUTDOWN.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
            flag.store(true, Ordering::SeqCst);
        })
    };
    let r = run_daemon(&cfg, flag);
    SHUTDOWN.store(true, Ordering::SeqCst);
    let _ = watcher.join();
    r.map_err(|e| match e {
        LiveError::AlreadyRunning { .. } | LiveError::Denied(_) => input(e),
        other => failed(other),
    })?;
    eprintln!("[mini-slurm] scheduler stopped");
    Ok(())
}
