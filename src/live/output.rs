//! Where a job's stdout and stderr go: sbatch's `--output`/`--error` file name patterns.
//!
//! A pattern is a path, relative to the job's working directory unless absolute, in which
//! `%j` is the job id, `%A` the array's id (the job id outside an array), `%a` the array task id
//! (Slurm's `4294967294` outside an array), `%u` the owner's name, `%x` the job name, `%N` this
//! machine's name and `%%` a percent sign; digits after `%` zero-pad the number (`%4a` →
//! `0007`). As in sbatch, stderr goes where stdout goes unless `--error` is given; the default
//! is the home's `logs/job_<id>.out|.err` for a personal scheduler, Slurm's own `slurm-%j.out`
//! (`slurm-%A_%a.out` for an array task) in the submit directory for a shared one
//! (`scheduler --multi-user`), whose home its users cannot read.
//!
//! The runner opens these files in the job's process after it has become the job's owner, so
//! a file is created (mode 0600) only where its owner may create it, and a link planted there
//! cannot make the scheduler write through someone else's permissions.

use super::Home;
use super::store::JobRow;
use std::path::{Path, PathBuf};

/// Slurm's value of `%a` for a job that is not an array task (`NO_VAL - 1`).
const NOT_AN_ARRAY: &str = "4294967294";

/// The default stdout pattern of a shared scheduler (sbatch's).
pub fn slurm_default(array: bool) -> &'static str {
    if array {
        "slurm-%A_%a.out"
    } else {
        "slurm-%j.out"
    }
}

/// Checks a pattern given with `--output` or `--error` (`flag`): not empty, no NUL, known
/// `%` codes only.
pub fn check_pattern(flag: &str, pattern: &str) -> Result<(), String> {
    if pattern.is_empty() || pattern.contains('\0') {
        return Err(format!(
            "{flag}: a file name is expected, found '{pattern}'"
        ));
    }
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            continue;
        }
        let code = chars.by_ref().find(|c| !c.is_ascii_digit());
        match code {
            Some('j' | 'A' | 'a' | 'u' | 'x' | 'N' | '%') => {}
            Some(c) => {
                return Err(format!(
                    "{flag}: unknown '%{c}' in '{pattern}' (known: %j %A %a %u %x %N %%)"
                ));
            }
            None => return Err(format!("{flag}: '{pattern}' ends after '%'")),
        }
    }
    Ok(())
}

/// A pattern with its `%` codes replaced for job `r` on machine `node`.
pub fn expand(pattern: &str, r: &JobRow, node: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut width = String::new();
        while let Some(d) = chars.next_if(char::is_ascii_digit) {
            width.push(d);
        }
        let width: usize = width.parse().unwrap_or(0).min(64);
        let value = match chars.next() {
            Some('j') => r.id.to_string(),
            Some('A') => r.array_job_id.unwrap_or(r.id).to_string(),
            Some('a') => r
                .array_task_id
                .map_or(NOT_AN_ARRAY.to_string(), |t| t.to_string()),
            Some('u') => r.user.clone(),
            Some('x') => r.name.clone(),
            Some('N') => node.to_string(),
            Some('%') => "%".to_string(),
            Some(other) => format!("%{other}"),
            None => "%".to_string(),
        };
        if value.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("{value:0>width$}"));
        } else {
            out.push_str(&value);
        }
    }
    out
}

/// Where job `r` writes: its stdout and stderr files (the same file when only `--output` was
/// given), absolute.
pub fn paths(home: &Home, r: &JobRow, node: &str) -> (PathBuf, PathBuf) {
    let resolve = |p: &str| -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            Path::new(&r.cwd).join(p)
        }
    };
    let out = r
        .stdout
        .as_deref()
        .map_or_else(|| home.out_log(r.id), |p| resolve(&expand(p, r, node)));
    let err = match (&r.stderr, &r.stdout) {
        (Some(e), _) => resolve(&expand(e, r, node)),
        (None, Some(_)) => out.clone(),
        (None, None) => home.err_log(r.id),
    };
    (out, err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> JobRow {
        let mut r: JobRow = serde_json::from_str(
            r#"{"id": 12, "name": "train", "user": "ann", "uid": 1000, "gid": 1000,
            "argv": ["true"], "shell": false, "cwd": "/home/ann/run", "cpus": 1, "mem_mb": 0,
            "gpus": 0, "priority": 0, "nice": 0, "qos": "", "restarts": 0, "min_cpus": null,
            "max_cpus": null, "resize_signal": null, "alloc_cpus": null, "resizes": 0,
            "time_limit_ms": null, "partition": "all", "dependency": "", "array_job_id": null,
            "array_task_id": null, "array_limit": null, "state": "PENDING", "reason": "None",
            "submit_ms": 0, "start_ms": null, "end_ms": null, "exit_code": null, "signal": null,
            "runner_pid": null, "runner_start": null, "job_pgid": null, "cpu_list": "",
            "gpu_list": "", "user_cpu_ms": null, "sys_cpu_ms": null, "max_rss_kb": null,
            "oom": false, "runner_done": false, "cancel_requested": 0, "pin_error": null,
            "timed_out": false, "launch": 0, "preempting": null}"#,
        )
        .unwrap();
        r.stdout = Some("slurm-%j.out".into());
        r
    }

    #[test]
    fn patterns_expand_as_sbatch() {
        let mut r = row();
        assert_eq!(expand("slurm-%j.out", &r, "box"), "slurm-12.out");
        assert_eq!(expand("%x-%u@%N.%%.log", &r, "box"), "train-ann@box.%.log");
        assert_eq!(expand("a%A_%a", &r, "box"), "a12_4294967294");
        (r.array_job_id, r.array_task_id) = (Some(10), Some(7));
        assert_eq!(expand("o-%A_%3a-%5j", &r, "box"), "o-10_007-00012");
        assert_eq!(check_pattern("--output", "x-%j-%4a"), Ok(()));
        assert!(
            check_pattern("--output", "x-%q")
                .unwrap_err()
                .contains("'%q'")
        );
        assert!(check_pattern("--error", "x%").is_err());
        assert!(check_pattern("--error", "").is_err());
    }

    #[test]
    fn stderr_follows_stdout_unless_given() {
        let home = Home::at("/h");
        let mut r = row();
        let (o, e) = paths(&home, &r, "box");
        assert_eq!(
            (o.clone(), e),
            (PathBuf::from("/home/ann/run/slurm-12.out"), o)
        );
        r.stderr = Some("/tmp/%j.err".into());
        assert_eq!(paths(&home, &r, "box").1, PathBuf::from("/tmp/12.err"));
        r.stdout = None;
        r.stderr = None;
        assert_eq!(
            paths(&home, &r, "box"),
            (home.out_log(12), home.err_log(12))
        );
    }
}
