//! Queries the Slurm executor makes: a launch recorded before `sbatch` runs, the Slurm job id
//! recorded as soon as `sbatch` returns it, the state Slurm reports, and how the job ended.

use super::Cached;
use super::row::Reason;
use super::{Db, Result};
use crate::model::JobState;
use rusqlite::{OptionalExtension, params};

/// What the Slurm executor recorded about a job's current launch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlurmRecord {
    pub launch: i64,
    pub slurm_job_id: Option<u64>,
    /// Where the engine placed it: `node:cpus:gpus:gpu_mask` per node, comma-separated.
    pub alloc: String,
    /// The state Slurm last reported, as Slurm prints it.
    pub state: Option<String>,
}

impl Db {
    /// A job about to be submitted to Slurm, in one statement before `sbatch` runs:
    /// CONFIGURING on `alloc`, no Slurm id yet, the next launch number (part of the name it is
    /// submitted under); forgets what an earlier launch recorded. Returns the launch number.
    pub fn record_slurm_launch(&self, id: i64, alloc: &str, cpus: u32, at_ms: i64) -> Result<i64> {
        self.conn
            .row(
                "UPDATE jobs SET state = ?1, slurm_alloc = ?2, alloc_cpus = ?3, start_ms = ?4,
                    reason = ?5, slurm_job_id = NULL, slurm_state = NULL, cpu_list = '',
                    gpu_list = '', runner_pid = NULL, runner_start = NULL, job_pgid = NULL,
                    timed_out = 0, runner_done = 0, exit_code = NULL, signal = NULL,
                    end_ms = NULL, oom = 0, launch = launch + 1
                 WHERE id = ?6 RETURNING launch",
                params![
                    JobState::Configuring.name(),
                    alloc,
                    cpus,
                    at_ms,
                    Reason::NONE.to_string(),
                    id
                ],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// The Slurm id of launch `launch` of job `id` (ignored if that launch is no longer
    /// current).
    pub fn record_slurm_id(&self, id: i64, launch: i64, slurm_id: u64) -> Result<()> {
        self.exec(
            "UPDATE jobs SET slurm_job_id = ?1 WHERE id = ?2 AND launch = ?3",
            params![slurm_id as i64, id, launch],
        )?;
        Ok(())
    }

    /// The state Slurm reports for a job not over; `running`: it runs now, so a CONFIGURING
    /// row turns RUNNING with its start at `at_ms` (when Slurm was seen running it: the row's
    /// start is the job's real start, which `export-trace` replays).
    pub fn record_slurm_state(
        &self,
        id: i64,
        state: &str,
        running: bool,
        at_ms: i64,
    ) -> Result<()> {
        self.exec(
            "UPDATE jobs SET slurm_state = ?1,
                start_ms = CASE WHEN ?2 AND state = ?3 THEN ?5 ELSE start_ms END,
                state = CASE WHEN ?2 AND state = ?3 THEN ?4 ELSE state END
             WHERE id = ?6",
            params![
                state,
                running,
                JobState::Configuring.name(),
                JobState::Running.name(),
                at_ms,
                id
            ],
        )?;
        Ok(())
    }

    /// How Slurm says the job ended (the runner's record, in process mode): its exit code and
    /// signal, the state as Slurm printed it, and a reason for an end that needs one (a
    /// launch that failed, a job Slurm lost). The final state follows through the store.
    pub fn record_slurm_end(
        &self,
        id: i64,
        state: &str,
        exit: (Option<i32>, Option<i32>),
        reason: Option<&Reason>,
        at_ms: i64,
    ) -> Result<()> {
        self.exec(
            "UPDATE jobs SET runner_done = 1, slurm_state = ?1, exit_code = ?2, signal = ?3,
                end_ms = ?4, reason = COALESCE(?5, reason)
             WHERE id = ?6",
            params![
                state,
                exit.0,
                exit.1,
                at_ms,
                reason.map(Reason::to_string),
                id
            ],
        )?;
        Ok(())
    }

    /// The Slurm executor's state in words (the cluster as last seen, command failures), for
    /// `stats`.
    pub fn set_slurm_status(&self, text: &str) -> Result<()> {
        self.set_meta("slurm", text)
    }

    /// What the Slurm executor recorded about job `id`.
    pub fn slurm_record(&self, id: i64) -> Result<Option<SlurmRecord>> {
        self.conn
            .row(
                "SELECT launch, slurm_job_id, slurm_alloc, slurm_state FROM jobs WHERE id = ?1",
                [id],
                |r| {
                    Ok(SlurmRecord {
                        launch: r.get(0)?,
                        slurm_job_id: r.get::<_, Option<i64>>(1)?.map(|v| v as u64),
                        alloc: r.get(2)?,
                        state: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}
