//! Queries a job's runner makes: its job (with the environment), its process group, and the
//! result it records when the job has ended, which is what makes a daemon crash harmless.

use super::Cached;
use super::row::{JobRow, RunnerResult};
use super::{Db, Result, StoreError};
use rusqlite::{OptionalExtension, params};

/// What a runner's claim of its launch found ([`Db::claim_and_read`]).
#[derive(Debug)]
pub enum Claimed {
    /// Not the job's current launch, or no longer CONFIGURING: run nothing.
    NotCurrent,
    /// Claimed (RUNNING now): the job, with its environment.
    Job(Box<JobRow>),
    /// Claimed, but its row does not decode: the job must fail, not run with a guess.
    Damaged(StoreError),
}

impl Db {
    /// A job with the environment it was submitted with.
    pub fn job_with_env(&self, id: i64) -> Result<Option<JobRow>> {
        let Some(mut job) = self.job(id)? else {
            return Ok(None);
        };
        let text: Option<String> = self
            .conn
            .row("SELECT env FROM jobs WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        // An environment that does not decode is a damaged row: the job must not run with a
        // guessed one.
        job.env = match text.as_deref().map(super::row::decode_env) {
            Some(Some(env)) => env,
            _ => return Err(self.env_error(id, &text.unwrap_or_default())),
        };
        Ok(Some(job))
    }

    /// The runner claims launch `launch` of job `id` (its own pid and start time), turning it
    /// RUNNING, and reads the job with its environment, in one statement (`UPDATE ...
    /// RETURNING`, parsed once). [`Claimed::NotCurrent`] if that launch is not the job's
    /// current one, or no longer CONFIGURING (the daemon restarted and queued the job again,
    /// or it was cancelled): such a runner exits without running anything, so a job never
    /// runs twice. A claim made again by the same runner (its answer was lost on the way
    /// from the daemon) finds the job as that runner left it. `cgroups`: the cgroups the
    /// runner already made for the job, recorded with the claim.
    pub fn claim_and_read(
        &self,
        id: i64,
        launch: i64,
        pid: i32,
        start: Option<i64>,
        cgroups: Option<&[String]>,
    ) -> Result<Claimed> {
        const SQL: &str = concat!(
            "UPDATE jobs SET state = ?1, runner_pid = ?2, runner_start = ?3,
                cgroups = COALESCE(?7, cgroups)
             WHERE id = ?4 AND launch = ?5
               AND (state = ?6 OR (state = ?1 AND runner_pid = ?2 AND runner_start IS ?3))
             RETURNING ",
            super::row::job_columns!(),
            ", env"
        );
        let mut st = self.conn.prepare_cached(SQL).map_err(|e| self.err(e))?;
        let mut rows = st
            .query(params![
                crate::model::JobState::Running.name(),
                pid,
                start,
                id,
                launch,
                crate::model::JobState::Configuring.name(),
                cgroups.map(|c| c.join("\n"))
            ])
            .map_err(|e| self.err(e))?;
        let Some(r) = rows.next().map_err(|e| self.err(e))? else {
            return Ok(Claimed::NotCurrent);
        };
        let text: std::result::Result<String, _> = r.get(super::row::ENV_COLUMN);
        let claimed = match super::row::job_row(r) {
            Err(e) => Claimed::Damaged(self.err(e)),
            Ok(mut job) => match text.ok().as_deref().and_then(super::row::decode_env) {
                Some(env) => {
                    job.env = env;
                    Claimed::Job(Box::new(job))
                }
                None => Claimed::Damaged(self.env_error(id, "")),
            },
        };
        // One row at most (ids are unique); stepping to the end finishes the statement.
        while rows.next().map_err(|e| self.err(e))?.is_some() {}
        Ok(claimed)
    }

    fn env_error(&self, id: i64, text: &str) -> StoreError {
        StoreError::Decode {
            path: self.path.clone(),
            source: super::DecodeError {
                id,
                column: "env",
                text: text.chars().take(80).collect(),
            },
        }
    }

    /// The job's process group, once started. Returns the job's CPU list as it is now: an
    /// elastic job resized since the runner read its row is pinned again by the runner (see
    /// [`record_resized`](Db::record_resized)).
    pub fn record_job_group(&self, id: i64, pgid: i32) -> Result<String> {
        self.conn
            .row(
                "UPDATE jobs SET job_pgid = ?1 WHERE id = ?2 RETURNING cpu_list",
                params![pgid, id],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// How the job ended, as its runner saw it.
    pub fn record_runner_result(&self, id: i64, r: &RunnerResult) -> Result<()> {
        self.exec(
            "UPDATE jobs SET exit_code = ?1, signal = ?2, end_ms = ?3, user_cpu_ms = ?4,
                sys_cpu_ms = ?5, max_rss_kb = ?6, oom = ?7, runner_done = 1 WHERE id = ?8",
            params![
                r.exit_code,
                r.signal,
                r.end_ms,
                r.usage.map(|u| u.0),
                r.usage.map(|u| u.1),
                r.usage.map(|u| u.2),
                r.oom,
                id
            ],
        )?;
        Ok(())
    }
}
