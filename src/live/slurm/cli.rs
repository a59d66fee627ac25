//! Slurm's commands, run with a timeout: `sbatch`, `squeue`, `sacct`, `scancel`, `scontrol`.
//!
//! Each program is looked up once, on the daemon's `PATH`, when the executor is made: a job's
//! own environment (which `sbatch` gets, so that the job runs with it) never decides which
//! `sbatch` runs. A command that fails (exit status, a timeout, no such program) is a
//! [`SlurmError`] naming the command; the executor retries it with back-off.

use super::parse::{self, JobStatus, SlurmNode, SlurmPartition};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A failed Slurm command.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("{cmd}: cannot run it: {source}")]
    Spawn {
        cmd: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{cmd}: no answer within {secs:.1} s (killed)")]
    Timeout { cmd: &'static str, secs: f64 },
    #[error("{cmd}: exit status {code}: {stderr}")]
    Failed {
        cmd: &'static str,
        code: i32,
        stderr: String,
    },
    #[error("{cmd}: {source}")]
    Parse {
        cmd: &'static str,
        #[source]
        source: parse::ParseError,
    },
}

impl SlurmError {
    /// The command that failed.
    pub fn cmd(&self) -> &'static str {
        match self {
            SlurmError::Spawn { cmd, .. }
            | SlurmError::Timeout { cmd, .. }
            | SlurmError::Failed { cmd, .. }
            | SlurmError::Parse { cmd, .. } => cmd,
        }
    }
}

/// The columns of every squeue poll (see `parse.rs`).
const SQUEUE_FORMAT: &str = "JobID:|,State:|,Reason:|,exit_code:|,NodeList:|,Name:|";
/// The columns of every sacct query.
const SACCT_FORMAT: &str = "JobID,State,ExitCode,JobName";

/// Where Slurm's programs are, and how long each may take.
#[derive(Clone, Debug)]
pub struct Cli {
    dir: Option<PathBuf>,
    pub timeout: Duration,
}

/// A job to submit: its batch script, the arguments that place it, and the environment it
/// runs with (given to `sbatch`, which exports it to the job).
#[derive(Clone, Debug)]
pub struct Submission {
    pub args: Vec<String>,
    pub script: String,
    pub env: Vec<(OsString, OsString)>,
}

/// The first directory of `PATH` that holds `name`.
fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .and_then(|p| p.parent().map(Path::to_path_buf))
}

impl Cli {
    /// Finds Slurm's programs on this process's `PATH` (by `sbatch`); `timeout` per command.
    pub fn from_path(timeout: Duration) -> Cli {
        Cli {
            dir: find_in_path("sbatch"),
            timeout,
        }
    }

    fn program(&self, name: &str) -> PathBuf {
        match &self.dir {
            Some(d) => d.join(name),
            None => PathBuf::from(name),
        }
    }

    /// Runs `name args`, feeding `stdin`; with `env`, the command gets exactly that
    /// environment. Its stdout on success.
    fn run(
        &self,
        name: &'static str,
        args: &[String],
        stdin: Option<&str>,
        env: Option<&[(OsString, OsString)]>,
    ) -> Result<String, SlurmError> {
        let mut cmd = Command::new(self.program(name));
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(env) = env {
            cmd.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
        }
        let mut child = cmd
            .spawn()
            .map_err(|source| SlurmError::Spawn { cmd: name, source })?;
        // Written by a thread, so a command that does not read its input cannot block us
        // past the timeout.
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            let text = text.to_string();
            std::thread::spawn(move || {
                let _ = pipe.write_all(text.as_bytes());
            });
        }
        let read = |r: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut s = Vec::new();
                if let Some(mut r) = r {
                    let _ = r.read_to_end(&mut s);
                }
                String::from_utf8_lossy(&s).into_owned()
            })
        };
        let out = read(child.stdout.take().map(|p| Box::new(p) as _));
        let err = read(child.stderr.take().map(|p| Box::new(p) as _));
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(SlurmError::Timeout {
                        cmd: name,
                        secs: self.timeout.as_secs_f64(),
                    });
                }
            }
        };
        let (out, err) = (
            out.join().unwrap_or_default(),
            err.join().unwrap_or_default(),
        );
        if !status.success() {
            return Err(SlurmError::Failed {
                cmd: name,
                code: status.code().unwrap_or(-1),
                stderr: err.trim().lines().next().unwrap_or("").to_string(),
            });
        }
        Ok(out)
    }

    /// `sbatch --parsable`: the new job's id.
    pub fn sbatch(&self, s: &Submission) -> Result<u64, SlurmError> {
        let mut args = vec!["--parsable".to_string()];
        args.extend(s.args.iter().cloned());
        let out = self.run("sbatch", &args, Some(&s.script), Some(&s.env))?;
        parse::sbatch_id(&out).map_err(|source| SlurmError::Parse {
            cmd: "sbatch",
            source,
        })
    }

    /// The jobs squeue still knows among `ids` (finished ones too, until Slurm's MinJobAge).
    pub fn squeue_ids(&self, ids: &[u64]) -> Result<Vec<JobStatus>, SlurmError> {
        let list = ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        self.squeue(&["-j".into(), list])
    }

    /// The jobs squeue knows by name (mini-slurm's submission tokens).
    pub fn squeue_names(&self, names: &[String]) -> Result<Vec<JobStatus>, SlurmError> {
        self.squeue(&[format!("--name={}", names.join(","))])
    }

    fn squeue(&self, select: &[String]) -> Result<Vec<JobStatus>, SlurmError> {
        let mut args: Vec<String> = ["-h", "-t", "all", "-O", SQUEUE_FORMAT]
            .map(String::from)
            .to_vec();
        args.extend(select.iter().cloned());
        match self.run("squeue", &args, None, None) {
            Ok(out) => parse::squeue(&out).map_err(|source| SlurmError::Parse {
                cmd: "squeue",
                source,
            }),
            // Every id of the list is unknown to the controller (all purged): none listed.
            Err(SlurmError::Failed { stderr, .. }) if stderr.contains("Invalid job id") => {
                Ok(Vec::new())
            }
            Err(e) => Err(e),
        }
    }

    /// What accounting says of `select` (`-j ids` or `--name=...`); `Ok(None)` when the
    /// cluster keeps no accounting (no slurmdbd, no job completion file either).
    pub fn sacct(&self, select: &[String]) -> Result<Option<Vec<JobStatus>>, SlurmError> {
        let mut args: Vec<String> = ["-X", "-P", "-n", "-S", "2000-01-01", "-o", SACCT_FORMAT]
            .map(String::from)
            .to_vec();
        args.extend(select.iter().cloned());
        let out = match self.run("sacct", &args, None, None) {
            Ok(out) => out,
            // Without slurmdbd, `sacct -c` reads the job completion file (JobCompType).
            Err(SlurmError::Failed { stderr, .. }) if stderr.contains("disabled") => {
                args.insert(0, "-c".into());
                match self.run("sacct", &args, None, None) {
                    Ok(out) => out,
                    Err(SlurmError::Failed { .. }) => return Ok(None),
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        parse::sacct(&out)
            .map(Some)
            .map_err(|source| SlurmError::Parse {
                cmd: "sacct",
                source,
            })
    }

    /// `scancel ID`.
    pub fn scancel(&self, id: u64) -> Result<(), SlurmError> {
        match self.run("scancel", &[id.to_string()], None, None) {
            // Already over: nothing to cancel.
            Err(SlurmError::Failed { stderr, .. })
                if stderr.contains("already completing or completed")
                    || stderr.contains("Invalid job id") =>
            {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    /// `scancel --name=NAME`: a submission whose id was never learnt.
    pub fn scancel_name(&self, name: &str) -> Result<(), SlurmError> {
        self.run("scancel", &[format!("--name={name}")], None, None)
            .map(|_| ())
    }

    /// `scontrol show node -o`.
    pub fn nodes(&self) -> Result<Vec<SlurmNode>, SlurmError> {
        let out = self.run(
            "scontrol",
            &["show".into(), "node".into(), "-o".into()],
            None,
            None,
        )?;
        parse::nodes(&out).map_err(|source| SlurmError::Parse {
            cmd: "scontrol",
            source,
        })
    }

    /// `scontrol show partition -o`.
    pub fn partitions(&self) -> Result<Vec<SlurmPartition>, SlurmError> {
        let args = ["show", "partition", "-o"].map(String::from);
        let out = self.run("scontrol", &args, None, None)?;
        parse::partitions(&out).map_err(|source| SlurmError::Parse {
            cmd: "scontrol",
            source,
        })
    }
}
