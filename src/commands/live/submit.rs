//! `mini-slurm submit`: queue a job (or a job array).

use super::{client, failed, input};
use crate::commands::{CliError, CliResult};
use mini_slurm::live::LiveError;
use mini_slurm::live::client::{Owner, Submission, SubmitError, Submitted};
use mini_slurm::live::directives;
use mini_slurm::live::syntax::parse_signal;
use std::ffi::OsString;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  mini-slurm submit --cpus 2 --mem 4GB --priority 5 -- python train.py --epochs 10\n  mini-slurm submit --cpus 1 --time 0:30 \"echo hello && sleep 3\"\n  mini-slurm submit --array 1-10%2 --dependency afterok:12 -- ./sweep.sh"
)]
pub struct SubmitArgs {
    /// CPUs (sbatch's -c/--cpus-per-task: this machine runs one task per job)
    #[arg(
        long,
        short = 'c',
        visible_alias = "cpus-per-task",
        default_value_t = 1,
        value_name = "N"
    )]
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
    /// GPUs (sbatch's -G/--gpus)
    #[arg(long, short = 'G', default_value_t = 0, value_name = "N")]
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
    #[arg(long, short = 'J', visible_alias = "job-name", value_name = "NAME")]
    name: Option<String>,
    /// Print only the job id
    #[arg(long)]
    parsable: bool,
    /// Where the job's stdout goes, as sbatch: a file name pattern (%j job id, %A array id, %a task id, %u user, %x job name, %N node), relative to the submit directory (default: the home's logs/, or slurm-%j.out for a shared scheduler)
    #[arg(long, short = 'o', value_name = "PATTERN")]
    output: Option<String>,
    /// Where the job's stderr goes (default: with stdout when --output is given)
    #[arg(long, short = 'e', value_name = "PATTERN")]
    error: Option<String>,
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
    /// sbatch's tasks: the job gets --ntasks × --cpus CPUs (one task per job on one machine)
    #[arg(long, short = 'n', alias = "ntasks-per-node", value_name = "N")]
    ntasks: Option<u32>,
    /// Memory per CPU (sbatch's): --mem is this × the job's CPUs
    #[arg(long, value_name = "SIZE", conflicts_with = "mem")]
    mem_per_cpu: Option<String>,
    /// Nodes (sbatch's -N): 1, the machine
    #[arg(long, short = 'N', value_name = "N")]
    nodes: Option<String>,
    /// Generic resources (sbatch's): gpu[:TYPE][:N] for GPUs
    #[arg(long, value_name = "LIST", conflicts_with = "gpus")]
    gres: Option<String>,
    /// sbatch's account, mail options: accepted and passed over (nothing to do on this machine)
    #[arg(long, short = 'A', value_name = "NAME")]
    account: Option<String>,
    #[arg(long, value_name = "TYPE", hide = true)]
    mail_type: Option<String>,
    #[arg(long, value_name = "ADDRESS", hide = true)]
    mail_user: Option<String>,
    /// The command as one string, run under /bin/sh -c (sbatch's --wrap)
    #[arg(long, value_name = "COMMAND", conflicts_with = "command")]
    wrap: Option<String>,
    /// The command: several words run as given; one word with spaces runs under /bin/sh -c
    #[arg(
        required_unless_present = "wrap",
        trailing_var_arg = true,
        value_name = "COMMAND"
    )]
    command: Vec<String>,
}

/// The working directory, which the job runs in; refused (exit 2) if it is not UTF-8, since
/// the store keeps it as text.
fn current_dir() -> Result<String, CliError> {
    let dir = std::env::current_dir()
        .map_err(|e| failed(anyhow::anyhow!("cannot read the working directory: {e}")))?;
    dir.to_str().map(String::from).ok_or_else(|| {
        input(anyhow::anyhow!(
            "the working directory {} is not valid UTF-8; submit from a directory whose path is",
            dir.display()
        ))
    })
}

fn submit_error(e: SubmitError) -> CliError {
    match e {
        SubmitError::Invalid(m) => input(anyhow::anyhow!(m)),
        // sbatch's words for a refused submission.
        SubmitError::Live(LiveError::Denied(m)) => {
            failed(anyhow::anyhow!("Batch job submission failed: {m}"))
        }
        SubmitError::Live(e) => failed(e),
    }
}

/// `sbatch script.sh`: a command whose first word is a script (a file in the submit
/// directory or at a path, starting with `#!`) takes its `#SBATCH` directives as options,
/// which the command line overrides; the arguments are parsed again with them in front. A
/// script that is not executable runs under the interpreter its `#!` line names, as sbatch
/// runs any script. Anything else is left as it was.
fn with_directives(a: SubmitArgs) -> Result<SubmitArgs, CliError> {
    let Some(first) = a.command.first().cloned() else {
        return Ok(a);
    };
    let Some(bytes) = script_head(std::path::Path::new(&first)) else {
        return Ok(a);
    };
    let text = String::from_utf8_lossy(&bytes);
    let d = directives::parse(&text, &first).map_err(|e| input(anyhow::anyhow!("{e}")))?;
    for n in &d.notes {
        eprintln!("note: {n}");
    }
    let mut again = a;
    if !d.args.is_empty() {
        use clap::{Args, FromArgMatches};
        let given = std::env::args_os().skip_while(|w| w != "submit").skip(1);
        let words = std::iter::once(OsString::from("mini-slurm submit"))
            .chain(d.args.iter().map(OsString::from))
            .chain(given);
        let cmd = SubmitArgs::augment_args(clap::Command::new("mini-slurm submit"))
            .args_override_self(true);
        // clap's message without its "error: " and its help lines.
        let bad = |e: clap::Error| {
            let text = e.to_string();
            let line = text.lines().next().unwrap_or_default();
            let line = line.strip_prefix("error: ").unwrap_or(line).to_string();
            input(anyhow::anyhow!("{first}'s #SBATCH directives: {line}"))
        };
        let m = cmd.try_get_matches_from(words).map_err(bad)?;
        again = SubmitArgs::from_arg_matches(&m).map_err(bad)?;
        if let Some(w) = again.wrap.take() {
            again.command = vec![w];
        }
    }
    again.command = script_command(&text, again.command);
    Ok(again)
}

/// The first MiB of a script (a regular file starting with `#!`): enough for its directives,
/// which sbatch reads from the top. `None` for anything else, of which two bytes are read.
fn script_head(path: &std::path::Path) -> Option<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking: opening a FIFO named as the command must not wait for a writer.
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
        .ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut head = vec![0u8; 2];
    f.read_exact(&mut head).ok()?;
    if head != b"#!" {
        return None;
    }
    f.take((1 << 20) - 2).read_to_end(&mut head).ok()?;
    Some(head)
}

/// A script's command line: `./` before a bare file name (the submit directory, not `PATH`),
/// and the `#!` interpreter in front when the script is not executable.
fn script_command(text: &str, mut command: Vec<String>) -> Vec<String> {
    let Some(first) = command.first_mut() else {
        return command;
    };
    if !first.contains('/') {
        *first = format!("./{first}");
    }
    let executable = nix::unistd::access(first.as_str(), nix::unistd::AccessFlags::X_OK).is_ok();
    if executable {
        return command;
    }
    let shebang = text
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("#!")
        .trim();
    let mut front: Vec<String> = match shebang.split_once(char::is_whitespace) {
        Some((interp, arg)) => vec![interp.to_string(), arg.trim().to_string()],
        None if !shebang.is_empty() => vec![shebang.to_string()],
        None => vec!["/bin/sh".to_string()],
    };
    front.extend(command);
    front
}

pub fn run(mut a: SubmitArgs) -> CliResult {
    if let Some(w) = a.wrap.take() {
        a.command = vec![w];
    }
    let a = with_directives(a)?;
    let (cpus, mem, gpus) = directives::resources(&directives::Requested {
        cpus: a.cpus,
        ntasks: a.ntasks,
        mem: a.mem.as_deref(),
        mem_per_cpu: a.mem_per_cpu.as_deref(),
        nodes: a.nodes.as_deref(),
        gpus: a.gpus,
        gres: a.gres.as_deref(),
    })
    .map_err(|e| input(anyhow::anyhow!("{e}")))?;
    for (flag, given) in [
        ("--account", &a.account),
        ("--mail-type", &a.mail_type),
        ("--mail-user", &a.mail_user),
    ] {
        if let Some(v) = given {
            eprintln!("note: {flag} {v} is passed over (nothing to do on this machine)");
        }
    }
    let request = Submission {
        command: a.command,
        cpus,
        mem,
        priority: a.priority,
        nice: a.nice,
        qos: a.qos,
        time: a.time,
        gpus,
        dependency: a.dependency,
        array: a.array,
        partition: a.partition,
        name: a.name,
        elastic: a.elastic,
        min_cpus: a.min_cpus,
        max_cpus: a.max_cpus,
        resize_signal: a.resize_signal,
        output: a.output,
        error: a.error,
        // Checked here for a quick answer; whoever stores the job sets it (the daemon from
        // the kernel's word), so the user's name is not looked up.
        owner: Owner {
            user: String::new(),
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
        },
        cwd: current_dir()?,
        // Any bytes: a Unix environment need not be UTF-8, and the job gets it as it was.
        env: with_sbatch_records(std::env::vars_os().collect()),
        token: None,
    };
    let job = request.clone().validate().map_err(submit_error)?;
    let mut c = client()?;
    let Submitted { ids, warnings } = c.submit(request).map_err(submit_error)?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    if !c.via_daemon() && !c.home().daemon_running() {
        eprintln!(
            "warning: no scheduler runs for {}: the job waits until one starts (mini-slurm scheduler)",
            c.home().dir.display()
        );
    }
    let (Some(&id), Some(&last)) = (ids.first(), ids.last()) else {
        return Err(failed(anyhow::anyhow!("no job was stored")));
    };
    if a.parsable {
        println!("{id}");
        return Ok(());
    }
    match &job.array {
        Some((tasks, _)) => println!(
            "Submitted job {id} (array of {} tasks, ids {id}-{last})",
            tasks.len()
        ),
        None => println!("Submitted job {id}"),
    }
    let j = &job.job;
    println!(
        "  cpus={}, mem={}MB, priority={}",
        j.cpus, j.mem_mb, j.priority
    );
    if let Some((lo, hi)) = j.elastic {
        println!("  elastic: {lo}-{hi} CPUs");
    }
    Ok(())
}

/// The environment with what sbatch records of the submitting process: `SLURM_UMASK` (the
/// umask, `0` and three octal digits) and `SLURM_RLIMIT_<NAME>` (each propagated resource
/// limit's soft value, or `unlimited`), which the job's runner applies before the job starts —
/// a shared scheduler's jobs would otherwise run with the daemon's. Values the user set stay.
fn with_sbatch_records(mut env: Vec<(OsString, OsString)>) -> Vec<(OsString, OsString)> {
    let mut add = |k: &str, v: String| {
        if !env.iter().any(|(n, _)| n == k) {
            env.push((k.into(), v.into()));
        }
    };
    let mask = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    nix::sys::stat::umask(mask);
    add("SLURM_UMASK", format!("{:04o}", mask.bits()));
    for (name, res) in mini_slurm::live::syntax::PROPAGATED_LIMITS {
        if let Ok((soft, _)) = nix::sys::resource::getrlimit(*res) {
            add(
                &format!("SLURM_RLIMIT_{name}"),
                mini_slurm::live::syntax::rlimit_text(soft),
            );
        }
    }
    env
}
