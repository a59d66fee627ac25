//! Live-mode commands: `scheduler`, `submit`, `queue`, `show`, `cancel`, `stats`,
//! `export-trace`, and the hidden `job-runner`.

use super::{CliError, CliResult};
use anyhow::{Context, anyhow};
use mini_slurm::live::daemon::{DaemonConfig, run as run_daemon};
use mini_slurm::live::db::{ACTIVE, Db, JobRow, NewJob};
use mini_slurm::live::{Home, exit_code_str, machine, now_ms, parse_array, parse_dependency};
use mini_slurm::model::parse_mem_mb;
use mini_slurm::time::{Dur, fmt_slurm_duration, parse_duration};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn input(e: impl Into<anyhow::Error>) -> CliError {
    CliError::Input(e.into())
}
fn failed(e: impl Into<anyhow::Error>) -> CliError {
    CliError::Failed(e.into())
}

fn open(home: &Home) -> Result<Db, CliError> {
    home.open().map_err(failed)
}

// ---------------------------------------------------------------- scheduler

#[derive(clap::Args, Debug)]
#[command(
    after_help = "The daemon runs until SIGINT or SIGTERM; jobs still running then go on and are re-adopted when it starts again.\nState lives in $MINI_SLURM_HOME (default ~/.mini_slurm)."
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
    #[arg(long, default_value = "easy[order=priority]", value_name = "SPEC")]
    policy: String,
    /// Longest sleep between looks at the database, in seconds (submissions and job exits wake the daemon at once)
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    poll_interval: f64,
    /// Seconds between SIGTERM and SIGKILL when a job hits its time limit or is cancelled
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    kill_wait: f64,
    /// Quota for every user's running jobs, e.g. cpus=8,mem=32G,gpus=1,jobs=4; jobs over it wait (AssocGrpCpuLimit, ...)
    #[arg(long, value_name = "LIMITS", value_parser = mini_slurm::sched::limits::Limit::parse)]
    user_limit: Option<mini_slurm::sched::limits::Limit>,
    /// Accounts file: fair-share tree and QOS levels (`qos NAME priority=N`), as for `sim --accounts`
    #[arg(long, value_name = "FILE")]
    accounts: Option<std::path::PathBuf>,
}

static SHUTDOWN: AtomicBool = AtomicBool::new(false);
extern "C" fn on_signal(_: i32) {
    SHUTDOWN.store(true, Ordering::SeqCst);
}

pub fn scheduler(a: SchedulerArgs) -> CliResult {
    let home = Home::from_env();
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
    let cfg = DaemonConfig {
        accounts,
        home: home.clone(),
        cpus: a.cpus.unwrap_or(detected.cpus),
        mem_mb: a.mem.unwrap_or(detected.mem_mb),
        gpus,
        policy: a.policy,
        kill_wait: Duration::from_secs_f64(a.kill_wait),
        runner: std::env::current_exe().map_err(failed)?,
        max_sleep: Duration::from_secs_f64(a.poll_interval),
        limits: mini_slurm::sched::limits::Limits {
            user: a.user_limit.unwrap_or_default(),
            account: Default::default(),
        },
    };
    for sig in [
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGTERM,
    ] {
        // SAFETY: the handler only stores to an atomic.
        unsafe {
            let _ = nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::Handler(on_signal));
        }
    }
    eprintln!(
        "[mini-slurm] Starting scheduler with {} CPUs, {} MB memory, {} GPUs, policy {} (home {})",
        cfg.cpus,
        cfg.mem_mb,
        cfg.gpus.len(),
        cfg.policy,
        home.dir.display()
    );
    eprintln!(
        "[mini-slurm] memory enforcement: {}",
        machine::mem_enforcement().describe()
    );
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
        mini_slurm::live::LiveError::Other(m) if m.contains("already runs") => input(anyhow!(m)),
        other => failed(other),
    })?;
    eprintln!("[mini-slurm] scheduler stopped");
    Ok(())
}

// ---------------------------------------------------------------- submit

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  mini-slurm submit --cpus 2 --mem 4GB --priority 5 -- python train.py --epochs 10\n  mini-slurm submit --cpus 1 --time 0:30 \"echo hello && sleep 3\"\n  mini-slurm submit --array 1-10%2 --dependency afterok:12 -- ./sweep.sh"
)]
pub struct SubmitArgs {
    /// CPUs
    #[arg(long, default_value_t = 1, value_name = "N")]
    cpus: u32,
    /// Memory limit, e.g. 4GB, 512M (default: none)
    #[arg(long, value_name = "SIZE")]
    mem: Option<String>,
    /// Priority: higher runs earlier
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    priority: i64,
    /// Slurm's --nice: subtracted from the priority under order=multifactor (negative: root only)
    #[arg(
        long,
        default_value_t = 0,
        allow_negative_numbers = true,
        value_name = "N"
    )]
    nice: i32,
    /// Quality of service; its priority comes from the scheduler's --accounts file (order=multifactor, preempt_by=qos)
    #[arg(long, default_value = "", value_name = "NAME")]
    qos: String,
    /// Time limit: minutes, MM:SS, HH:MM:SS or D-HH:MM:SS (Slurm syntax); TIMEOUT past it
    #[arg(long, short = 't', value_name = "TIME")]
    time: Option<String>,
    /// GPUs
    #[arg(long, default_value_t = 0, value_name = "N")]
    gpus: u32,
    /// Start only after other jobs: after|afterany|afterok|afternotok:ID[:ID...][,...]
    #[arg(long, short = 'd', value_name = "SPEC")]
    dependency: Option<String>,
    /// A job array: 0-15, 1,3,5-7, 0-99%4 (at most 4 running at once)
    #[arg(long, short = 'a', value_name = "SPEC")]
    array: Option<String>,
    /// Partition (this machine has one, `all`)
    #[arg(long, short = 'p', value_name = "NAME")]
    partition: Option<String>,
    /// Job name (default: the command's first word)
    #[arg(long, short = 'J', value_name = "NAME")]
    name: Option<String>,
    /// Print only the job id
    #[arg(long)]
    parsable: bool,
    /// Elastic job: the scheduler may resize it between --min-cpus and --max-cpus while it runs (it starts anywhere in the range); see docs/elastic.md for the contract
    #[arg(long)]
    elastic: bool,
    /// Elastic: fewest CPUs (default --cpus)
    #[arg(long, value_name = "N")]
    min_cpus: Option<u32>,
    /// Elastic: most CPUs (default --cpus)
    #[arg(long, value_name = "N")]
    max_cpus: Option<u32>,
    /// Elastic: signal sent to the job after each resize, e.g. USR1 (default: none; the job reads $MINI_SLURM_ALLOC_FILE)
    #[arg(long, value_name = "SIG", value_parser = parse_signal)]
    resize_signal: Option<i32>,
    /// The command: several words run as given; one word with spaces runs under /bin/sh -c
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<String>,
}

/// The machine size submissions are checked against: the daemon's last configuration, else
/// this machine's.
fn capacity(db: &Db) -> (u32, u64, u32) {
    let meta = |k: &str| db.meta(k).ok().flatten();
    let m = machine::detect();
    let cpus = meta("cpus").and_then(|v| v.parse().ok()).unwrap_or(m.cpus);
    let mem = meta("mem_mb")
        .and_then(|v| v.parse().ok())
        .unwrap_or(m.mem_mb);
    let gpus = match meta("gpus") {
        Some(g) => g.split(',').filter(|s| !s.is_empty()).count() as u32,
        None => m.gpus.len() as u32,
    };
    (cpus, mem, gpus)
}

/// A signal by name (`USR1`, `SIGUSR1`) or number.
fn parse_signal(s: &str) -> Result<i32, String> {
    let t = s.trim().to_ascii_uppercase();
    if let Ok(n) = t.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n)
            .map(|sig| sig as i32)
            .map_err(|_| format!("unknown signal number {n}"));
    }
    let name = if t.starts_with("SIG") {
        t
    } else {
        format!("SIG{t}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|sig| sig as i32)
        .map_err(|_| format!("unknown signal '{s}' (expected e.g. USR1, SIGUSR2 or 10)"))
}

pub fn submit(a: SubmitArgs) -> CliResult {
    let home = Home::from_env();
    if a.cpus == 0 {
        return Err(input(anyhow!("--cpus: must be at least 1")));
    }
    if a.nice < 0 && !nix::unistd::getuid().is_root() {
        return Err(input(anyhow!(
            "--nice: only root may give a negative adjustment (as in Slurm), found {}",
            a.nice
        )));
    }
    let mem_mb = match &a.mem {
        None => 0,
        Some(m) => parse_mem_mb(m).map_err(|e| input(anyhow!("--mem: {e}")))?,
    };
    let time_limit_ms = match &a.time {
        None => None,
        Some(t) => {
            let d = parse_duration(t, 60_000).map_err(|e| input(anyhow!("--time: {e}")))?;
            if d.0 <= 0 {
                return Err(input(anyhow!("--time: must be positive")));
            }
            Some(d.0)
        }
    };
    let elastic = if a.elastic || a.min_cpus.is_some() || a.max_cpus.is_some() {
        let lo = a.min_cpus.unwrap_or(a.cpus);
        let hi = a.max_cpus.unwrap_or(a.cpus);
        if !(lo >= 1 && lo <= a.cpus && a.cpus <= hi) {
            return Err(input(anyhow!(
                "--min-cpus {lo} ≤ --cpus {} ≤ --max-cpus {hi} does not hold",
                a.cpus
            )));
        }
        if a.gpus > 0 {
            return Err(input(anyhow!(
                "--gpus: an elastic job cannot hold GPUs (its CPUs are resized, GPUs are not)"
            )));
        }
        Some((lo, hi))
    } else {
        if a.resize_signal.is_some() {
            return Err(input(anyhow!(
                "--resize-signal: only an elastic job is resized (add --elastic)"
            )));
        }
        None
    };
    let partition = a.partition.clone().unwrap_or_else(|| "all".into());
    if partition != "all" {
        return Err(input(anyhow!(
            "--partition: unknown partition '{partition}' (this machine has: all)"
        )));
    }
    let array = match &a.array {
        None => None,
        Some(s) => Some(parse_array(s).map_err(|e| input(anyhow!("--array: {e}")))?),
    };
    let mut db = open(&home)?;
    let (cpus, mem, gpus) = capacity(&db);
    if a.cpus > cpus {
        return Err(input(anyhow!(
            "--cpus {}: the machine has {cpus} CPUs",
            a.cpus
        )));
    }
    if let Some((_, hi)) = elastic
        && hi > cpus
    {
        return Err(input(anyhow!(
            "--max-cpus {hi}: the machine has {cpus} CPUs"
        )));
    }
    if mem_mb > mem && mem > 0 {
        return Err(input(anyhow!(
            "--mem {mem_mb} MB: the machine has {mem} MB"
        )));
    }
    if a.gpus > gpus {
        return Err(input(anyhow!(
            "--gpus {}: the machine has {gpus} GPUs",
            a.gpus
        )));
    }
    let dependency = match &a.dependency {
        None => String::new(),
        Some(d) => {
            let deps = parse_dependency(d).map_err(|e| input(anyhow!("--dependency: {e}")))?;
            for (_, id) in &deps {
                if !db.exists(*id).map_err(failed)? {
                    return Err(input(anyhow!("--dependency: job {id} does not exist")));
                }
            }
            d.clone()
        }
    };
    let shell = a.command.len() == 1
        && a.command[0]
            .chars()
            .any(|c| c.is_whitespace() || "|&;<>()$`\\\"'*?[]#~=%{}".contains(c));
    let name = a.name.clone().unwrap_or_else(|| {
        let first = a.command[0].split_whitespace().next().unwrap_or("job");
        first.rsplit('/').next().unwrap_or(first).to_string()
    });
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map_or_else(|| nix::unistd::getuid().to_string(), |u| u.name);
    let job = NewJob {
        name,
        user,
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        argv: a.command.clone(),
        shell,
        cwd: std::env::current_dir()
            .map_err(failed)?
            .display()
            .to_string(),
        env: std::env::vars().collect(),
        cpus: a.cpus,
        mem_mb,
        gpus: a.gpus,
        priority: a.priority,
        nice: a.nice,
        qos: a.qos.clone(),
        time_limit_ms,
        partition,
        dependency,
        submit_ms: now_ms(),
        elastic,
        resize_signal: a.resize_signal,
    };
    let ids = db
        .submit(&job, array.as_ref().map(|(t, l)| (t.as_slice(), *l)))
        .map_err(failed)?;
    home.notify();
    let id = ids[0];
    if a.parsable {
        println!("{id}");
    } else {
        match &array {
            Some((tasks, _)) => println!(
                "Submitted job {id} (array of {} tasks, ids {id}-{})",
                tasks.len(),
                ids[ids.len() - 1]
            ),
            None => println!("Submitted job {id}"),
        }
        println!(
            "  cpus={}, mem={}MB, priority={}",
            a.cpus, mem_mb, a.priority
        );
        if let Some((lo, hi)) = elastic {
            println!("  elastic: {lo}-{hi} CPUs");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- queue

#[derive(clap::Args, Debug)]
pub struct QueueArgs {
    /// Only jobs in these states (comma-separated: PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, OUT_OF_MEMORY)
    #[arg(long, short = 's', alias = "state", value_name = "STATES")]
    status: Option<String>,
    /// Only this user's jobs
    #[arg(long, short = 'u', value_name = "USER")]
    user: Option<String>,
    /// All jobs, finished ones too (default: pending and running)
    #[arg(long)]
    all: bool,
    /// JSON output
    #[arg(long)]
    json: bool,
}

const STATES: [&str; 8] = [
    "PENDING",
    "RUNNING",
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "OUT_OF_MEMORY",
    "PREEMPTED",
];

fn sql_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub fn queue(a: QueueArgs) -> CliResult {
    let home = Home::from_env();
    let mut clauses = Vec::new();
    match &a.status {
        Some(s) => {
            let mut states = Vec::new();
            for st in s.split(',').map(|x| x.trim().to_ascii_uppercase()) {
                if !STATES.contains(&st.as_str()) {
                    return Err(input(anyhow!(
                        "--status: unknown state '{st}' (expected {})",
                        STATES.join(", ")
                    )));
                }
                states.push(sql_quote(&st));
            }
            clauses.push(format!("state IN ({})", states.join(",")));
        }
        None if !a.all => clauses.push(format!(
            "state IN ({})",
            ACTIVE
                .iter()
                .map(|s| sql_quote(s))
                .collect::<Vec<_>>()
                .join(",")
        )),
        None => {}
    }
    if let Some(u) = &a.user {
        clauses.push(format!("user = {}", sql_quote(u)));
    }
    let db = open(&home)?;
    let where_sql = if clauses.is_empty() {
        "1".to_string()
    } else {
        clauses.join(" AND ")
    };
    let rows = db.jobs_where(&where_sql).map_err(failed)?;
    if a.json {
        let s = serde_json::to_string_pretty(&rows).map_err(failed)?;
        println!("{s}");
        return Ok(());
    }
    print!("{}", queue_table(&rows, now_ms()));
    Ok(())
}

fn job_label(r: &JobRow) -> String {
    match (r.array_job_id, r.array_task_id) {
        (Some(a), Some(t)) => format!("{a}_{t}"),
        _ => r.id.to_string(),
    }
}

fn secs(ms: i64) -> String {
    format!("{:.1}", ms.max(0) as f64 / 1000.0)
}

/// The queue table: squeue's columns plus the seeds' (memory, wait, run time).
pub fn queue_table(rows: &[JobRow], now: i64) -> String {
    let top = rows
        .iter()
        .filter(|r| r.state == "PENDING" && r.reason == "None")
        .max_by_key(|r| (r.priority, std::cmp::Reverse(r.id)))
        .map(|r| r.id);
    let mut out = String::new();
    out.push_str(&format!(
        "{:>8} {:<12} {:<10} {:<13} {:>4} {:>8} {:>4} {:>4} {:>9} {:<20} {:>9} {:>9} {:>11} {:<24} {}\n",
        "JOBID",
        "NAME",
        "USER",
        "STATE",
        "CPUS",
        "MEM(MB)",
        "GPUS",
        "PRI",
        "ELASTIC",
        "SUBMIT",
        "WAIT(s)",
        "RUN(s)",
        "TIME_LIMIT",
        "REASON/EXIT",
        "COMMAND"
    ));
    for r in rows {
        let wait = r.start_ms.unwrap_or(if r.state == "PENDING" {
            now
        } else {
            r.end_ms.unwrap_or(now)
        }) - r.submit_ms;
        let run = match r.start_ms {
            Some(s) => r.end_ms.unwrap_or(now) - s,
            None => 0,
        };
        let reason = match r.state.as_str() {
            "PENDING" if r.reason == "None" => {
                if Some(r.id) == top {
                    "Resources".to_string()
                } else {
                    "Priority".to_string()
                }
            }
            "PENDING" | "RUNNING" => r.reason.clone(),
            _ => exit_code_str(r.exit_code, r.signal),
        };
        let limit = r
            .time_limit_ms
            .map_or("UNLIMITED".to_string(), |l| fmt_slurm_duration(Dur(l)));
        // A running elastic job shows the CPUs it holds now.
        let cpus = match (r.state.as_str(), r.alloc_cpus) {
            ("RUNNING", Some(n)) => n,
            _ => r.cpus,
        };
        let elastic = match (r.min_cpus, r.max_cpus) {
            (Some(lo), Some(hi)) => format!("{lo}-{hi}"),
            _ => "-".to_string(),
        };
        out.push_str(&format!(
            "{:>8} {:<12} {:<10} {:<13} {:>4} {:>8} {:>4} {:>4} {:>9} {:<20} {:>9} {:>9} {:>11} {:<24} {}\n",
            job_label(r),
            truncate(&r.name, 12),
            truncate(&r.user, 10),
            r.state,
            cpus,
            r.mem_mb,
            r.gpus,
            r.priority,
            elastic,
            utc(r.submit_ms),
            secs(wait),
            secs(run),
            limit,
            truncate(&reason, 24),
            r.argv.join(" ")
        ));
    }
    out
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

// ---------------------------------------------------------------- show

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// The job id
    #[arg(value_name = "JOB_ID")]
    id: i64,
}

pub fn show(a: ShowArgs) -> CliResult {
    let home = Home::from_env();
    let db = open(&home)?;
    let Some(r) = db.job(a.id).map_err(failed)? else {
        return Err(failed(anyhow!("job {} does not exist", a.id)));
    };
    print!("{}", show_text(&home, &r, now_ms()));
    Ok(())
}

pub fn show_text(home: &Home, r: &JobRow, now: i64) -> String {
    let t = |ms: Option<i64>| ms.map_or("Unknown".to_string(), utc);
    let run = r.start_ms.map_or(0, |s| r.end_ms.unwrap_or(now) - s);
    let wait = r.start_ms.unwrap_or(now) - r.submit_ms;
    let mut s = format!("JobId={} JobName={}\n", r.id, r.name);
    if let (Some(a), Some(tk)) = (r.array_job_id, r.array_task_id) {
        s.push_str(&format!(
            "   ArrayJobId={a} ArrayTaskId={tk}{}\n",
            r.array_limit
                .map_or(String::new(), |l| format!(" ArrayTaskThrottle={l}"))
        ));
    }
    s.push_str(&format!(
        "   UserId={}({}) GroupId={} Priority={} Nice={} QOS={} Partition={}\n",
        r.user,
        r.uid,
        r.gid,
        r.priority,
        r.nice,
        if r.qos.is_empty() { "(null)" } else { &r.qos },
        r.partition
    ));
    s.push_str(&format!(
        "   JobState={} Reason={} Dependency={} Restarts={} ExitCode={}\n",
        r.state,
        r.reason,
        if r.dependency.is_empty() {
            "(null)"
        } else {
            &r.dependency
        },
        r.restarts,
        exit_code_str(r.exit_code, r.signal)
    ));
    s.push_str(&format!(
        "   SubmitTime={} StartTime={} EndTime={} (UTC)\n",
        utc(r.submit_ms),
        t(r.start_ms),
        t(r.end_ms)
    ));
    s.push_str(&format!(
        "   WaitTime={} RunTime={} TimeLimit={}\n",
        fmt_slurm_duration(Dur(wait.max(0))),
        fmt_slurm_duration(Dur(run.max(0))),
        r.time_limit_ms
            .map_or("UNLIMITED".into(), |l| fmt_slurm_duration(Dur(l)))
    ));
    if let (Some(lo), Some(hi)) = (r.min_cpus, r.max_cpus) {
        s.push_str(&format!(
            "   Elastic=yes MinCPUs={lo} MaxCPUs={hi} ReqCPUs={} Resizes={} ResizeSignal={}\n",
            r.cpus,
            r.resizes,
            r.resize_signal
                .and_then(|n| nix::sys::signal::Signal::try_from(n).ok())
                .map_or("(null)", |sig| sig.as_str())
        ));
    }
    s.push_str(&format!(
        "   NumCPUs={} CPU_IDs={} Mem={}M Gres=gpu:{}{}\n",
        r.alloc_cpus
            .filter(|_| r.start_ms.is_some())
            .unwrap_or(r.cpus),
        if r.cpu_list.is_empty() {
            "-"
        } else {
            &r.cpu_list
        },
        r.mem_mb,
        r.gpus,
        if r.gpu_list.is_empty() {
            String::new()
        } else {
            format!("(IDX:{})", r.gpu_list)
        }
    ));
    if let Some(u) = r.user_cpu_ms {
        s.push_str(&format!(
            "   UserCPU={:.3}s SystemCPU={:.3}s MaxRSS={}K\n",
            u as f64 / 1000.0,
            r.sys_cpu_ms.unwrap_or(0) as f64 / 1000.0,
            r.max_rss_kb.unwrap_or(0)
        ));
    }
    s.push_str(&format!("   Command={}\n", r.argv.join(" ")));
    s.push_str(&format!("   WorkDir={}\n", r.cwd));
    s.push_str(&format!("   StdOut={}\n", home.out_log(r.id).display()));
    s.push_str(&format!("   StdErr={}\n", home.err_log(r.id).display()));
    s
}

// ---------------------------------------------------------------- cancel

#[derive(clap::Args, Debug)]
pub struct CancelArgs {
    /// Job ids
    #[arg(required = true, value_name = "JOB_ID")]
    ids: Vec<i64>,
}

pub fn cancel(a: CancelArgs) -> CliResult {
    let home = Home::from_env();
    let db = open(&home)?;
    let daemon = home.daemon_running();
    let mut bad = 0;
    for id in a.ids {
        let Some(r) = db.job(id).map_err(failed)? else {
            eprintln!("error: job {id} does not exist");
            bad += 1;
            continue;
        };
        match r.state.as_str() {
            "PENDING" if !daemon => {
                db.execute(
                    "UPDATE jobs SET state = 'CANCELLED', end_ms = ?1, cancel_requested = 2 WHERE id = ?2 AND state = 'PENDING'",
                    rusqlite::params![now_ms(), id],
                )
                .map_err(failed)?;
                println!("Cancelled job {id}");
            }
            "PENDING" | "RUNNING" => {
                db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?1", [id])
                    .map_err(failed)?;
                if r.state == "RUNNING" && !daemon {
                    // No daemon: stop the job through its runner, which records how it ended.
                    if let Some(pid) = r.runner_pid {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGTERM,
                        );
                    }
                }
                println!("Cancelling job {id}");
            }
            other => {
                eprintln!("error: job {id} already ended ({other})");
                bad += 1;
            }
        }
    }
    home.notify();
    if bad > 0 {
        return Err(failed(anyhow!("{bad} job(s) could not be cancelled")));
    }
    Ok(())
}

// ---------------------------------------------------------------- stats

#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    /// Show capacity as this many CPUs (default: the scheduler's)
    #[arg(long, value_name = "N")]
    total_cpus: Option<u32>,
    /// Show capacity as this much memory (default: the scheduler's)
    #[arg(long, value_name = "SIZE", value_parser = parse_mem_mb)]
    total_mem: Option<u64>,
}

pub fn stats(a: StatsArgs) -> CliResult {
    let home = Home::from_env();
    let db = open(&home)?;
    let (cpus, mem, gpus) = capacity(&db);
    let (cpus, mem) = (a.total_cpus.unwrap_or(cpus), a.total_mem.unwrap_or(mem));
    let rows = db.jobs_where("1").map_err(failed)?;
    let running: Vec<&JobRow> = rows.iter().filter(|r| r.state == "RUNNING").collect();
    let used_cpus: u32 = running.iter().map(|r| r.cpus).sum();
    let used_mem: u64 = running.iter().map(|r| r.mem_mb).sum();
    let used_gpus: u32 = running.iter().map(|r| r.gpus).sum();
    let mut out = String::new();
    let daemon = home.daemon_running();
    out.push_str(&format!(
        "Scheduler: {}{}\n",
        if daemon { "running" } else { "not running" },
        db.meta("policy")
            .ok()
            .flatten()
            .map_or(String::new(), |p| format!(", policy {p}"))
    ));
    out.push_str(&format!("Home: {}\n\n", home.dir.display()));
    out.push_str(&format!("CPUs:    {used_cpus} / {cpus} in use\n"));
    out.push_str(&format!("Memory:  {used_mem} / {mem} MB reserved\n"));
    out.push_str(&format!("GPUs:    {used_gpus} / {gpus} in use\n"));
    out.push_str(&format!(
        "Enforcement: CPU affinity (sched_setaffinity) per job; memory: {}\n\n",
        db.meta("enforcement")
            .ok()
            .flatten()
            .unwrap_or_else(|| machine::mem_enforcement().describe())
    ));
    out.push_str(&format!("Jobs: {} total\n", rows.len()));
    for st in STATES {
        let n = rows.iter().filter(|r| r.state == st).count();
        if n > 0 {
            out.push_str(&format!("  {st:<14} {n}\n"));
        }
    }
    let done: Vec<&JobRow> = rows
        .iter()
        .filter(|r| r.start_ms.is_some() && r.end_ms.is_some())
        .collect();
    if !done.is_empty() {
        let n = done.len() as f64;
        let wait: f64 = done
            .iter()
            .map(|r| (r.start_ms.unwrap_or(0) - r.submit_ms) as f64)
            .sum::<f64>()
            / n
            / 1000.0;
        let run: f64 = done
            .iter()
            .map(|r| (r.end_ms.unwrap_or(0) - r.start_ms.unwrap_or(0)) as f64)
            .sum::<f64>()
            / n
            / 1000.0;
        out.push_str(&format!(
            "\nFinished jobs: {}\n  average wait:    {wait:.2} s\n  average runtime: {run:.2} s\n",
            done.len()
        ));
    }
    print!("{out}");
    Ok(())
}

// ---------------------------------------------------------------- export-trace

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Where to write the CSV trace
    #[arg(long, value_name = "FILE")]
    out: std::path::PathBuf,
}

pub fn export_trace(a: ExportArgs) -> CliResult {
    let home = Home::from_env();
    let db = open(&home)?;
    let rows = db
        .jobs_where("start_ms IS NOT NULL AND end_ms IS NOT NULL")
        .map_err(failed)?;
    let tmp = a.out.with_extension("csv.tmp");
    let write = || -> anyhow::Result<()> {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(&tmp)
                .with_context(|| format!("cannot write {}", tmp.display()))?,
        );
        writeln!(
            f,
            "id,submit,runtime,cpus,walltime,user,priority,mem,gpus,nice,qos,min_cpus,max_cpus"
        )?;
        for r in &rows {
            let run = r.end_ms.unwrap_or(0) - r.start_ms.unwrap_or(0);
            writeln!(
                f,
                "{},{},{},{},{},{},{},{},{},{},{},{},{}",
                r.id,
                mini_slurm::time::fmt_millis(r.submit_ms),
                mini_slurm::time::fmt_millis(run.max(0)),
                r.cpus,
                r.time_limit_ms
                    .map_or(String::new(), mini_slurm::time::fmt_millis),
                r.user,
                r.priority,
                r.mem_mb,
                r.gpus,
                r.nice,
                r.qos,
                r.min_cpus.map_or(String::new(), |v| v.to_string()),
                r.max_cpus.map_or(String::new(), |v| v.to_string())
            )?;
        }
        f.flush()?;
        std::fs::rename(&tmp, &a.out)?;
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        failed(e)
    })?;
    eprintln!("wrote {} jobs to {}", rows.len(), a.out.display());
    Ok(())
}

// ---------------------------------------------------------------- job-runner

#[derive(clap::Args, Debug)]
pub struct RunnerArgs {
    #[arg(long)]
    job: i64,
}

pub fn job_runner(a: RunnerArgs) -> CliResult {
    let home = Home::from_env();
    mini_slurm::live::runner::run(&home, a.job).map_err(failed)?;
    Ok(())
}
