//! `mini-slurm show ID`: one job's details, as `scontrol show job`.

use super::{HIDDEN, existing_client, exit_code_str, failed, input, iso_time, time_limit};
use crate::commands::CliResult;
use anyhow::anyhow;
use mini_slurm::live::store::JobRow;
use mini_slurm::live::syntax::JobRef;
use mini_slurm::live::{Home, machine, now_ms, output};
use mini_slurm::time::{Dur, fmt_slurm_duration};

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// The job id: `J` (a job, or every task of array J) or `J_T` (task T of array J)
    #[arg(value_name = "JOB_ID")]
    id: JobRef,
    /// JSON output: a list of jobs with the fields of `queue --json`
    #[arg(long)]
    json: bool,
}

pub fn run(a: ShowArgs) -> CliResult {
    let missing = || input(anyhow!("job {} does not exist", a.id));
    let mut c = existing_client()?.ok_or_else(missing)?;
    let ids = c.resolve(a.id).map_err(failed)?;
    if ids.is_empty() {
        return Err(missing());
    }
    let now = now_ms();
    let mut rows = Vec::new();
    for (id, _) in ids {
        // A job removed between the two reads is simply not shown.
        if let Some(r) = c.job(id).map_err(failed)? {
            rows.push(r);
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows).map_err(failed)?);
        return Ok(());
    }
    let texts: Vec<String> = rows
        .iter()
        .map(|r| show_text(c.home(), r, now) + &slurm_line(&c, r.id))
        .collect();
    print!("{}", texts.join("\n"));
    Ok(())
}

/// A job run by the Slurm executor: its Slurm id, the state Slurm last reported and where the
/// engine placed it (empty for other jobs).
fn slurm_line(c: &mini_slurm::live::client::Client, id: i64) -> String {
    match c.slurm_record(id) {
        Ok(Some(rec)) => rec.slurm_job_id.map_or(String::new(), |sid| {
            let state = rec.state.as_deref().unwrap_or("(not polled yet)");
            format!(
                "   SlurmJobId={sid} SlurmState={state} SlurmAlloc={}\n",
                rec.alloc
            )
        }),
        _ => String::new(),
    }
}

/// The name of group `gid` (its number when the system has no such group), as `scontrol`
/// prints `GroupId=name(gid)`.
fn group_name(gid: u32) -> String {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map_or_else(|| gid.to_string(), |g| g.name)
}

fn show_text(home: &Home, r: &JobRow, now: i64) -> String {
    let t = |ms: Option<i64>| ms.map_or("Unknown".to_string(), iso_time);
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
        "   UserId={}({}) GroupId={}({}) Priority={} Nice={} QOS={} Partition={}\n",
        r.user,
        r.uid,
        group_name(r.gid),
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
    // As scontrol: a pending job's StartTime is its expected start (Unknown without a plan).
    let start = match r.state {
        mini_slurm::model::JobState::Pending => r.expected_start_ms,
        _ => r.start_ms,
    };
    s.push_str(&format!(
        "   SubmitTime={} StartTime={} EndTime={}\n",
        iso_time(r.submit_ms),
        t(start),
        t(r.end_ms)
    ));
    s.push_str(&format!(
        "   WaitTime={} RunTime={} TimeLimit={}\n",
        fmt_slurm_duration(Dur(wait.max(0))),
        fmt_slurm_duration(Dur(run.max(0))),
        time_limit(r.time_limit_ms)
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
        "   NumCPUs={} CPU_IDs={} Mem={} Gres=gpu:{}{}\n",
        r.alloc_cpus
            .filter(|_| r.start_ms.is_some())
            .unwrap_or(r.cpus),
        if r.cpu_list.is_empty() {
            "-"
        } else {
            &r.cpu_list
        },
        // No request: no limit, as scontrol prints a job without --mem on a node without
        // memory accounting.
        if r.mem_mb == 0 {
            "UNLIMITED".to_string()
        } else {
            format!("{}M", r.mem_mb)
        },
        r.gpus,
        if r.gpu_list.is_empty() {
            String::new()
        } else {
            format!("(IDX:{})", r.gpu_list)
        }
    ));
    if let Some(e) = &r.pin_error {
        s.push_str(&format!("   PinError={e}\n"));
    }
    if let Some(u) = r.user_cpu_ms {
        s.push_str(&format!(
            "   UserCPU={:.3}s SystemCPU={:.3}s MaxRSS={}K\n",
            u as f64 / 1000.0,
            r.sys_cpu_ms.unwrap_or(0) as f64 / 1000.0,
            r.max_rss_kb.unwrap_or(0)
        ));
    }
    if r.details_hidden {
        // Another user's job: scontrol's fields, withheld (PrivateData=jobs).
        for f in ["Command", "WorkDir", "StdOut", "StdErr"] {
            s.push_str(&format!("   {f}={HIDDEN}\n"));
        }
        return s;
    }
    let (out, err) = output::paths(home, r, &machine::hostname());
    s.push_str(&format!("   Command={}\n", r.argv.join(" ")));
    s.push_str(&format!("   WorkDir={}\n", r.cwd));
    s.push_str(&format!("   StdOut={}\n", out.display()));
    s.push_str(&format!("   StdErr={}\n", err.display()));
    s
}
