//! Queries the daemon makes: its own configuration, the hand-over of pending jobs, starts,
//! ends, requeues and cancellations (for `driver::Store`), and what the process executor has
//! recorded about the processes it started (CPU ids, GPU names, the runner's pid).

use super::Cached;
use super::row::{DaemonMeta, JobRow, Reason};
use super::{BadRow, Db, Result, select_jobs};
use crate::model::{FinalState, JobState};
use rusqlite::params;

/// What the executor learns when it records a job's launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allocated {
    /// The job is elastic (it keeps an allocation file).
    pub elastic: bool,
    /// The signal it asked for on resizes.
    pub resize_signal: Option<i32>,
    /// The number of this launch, which its runner must claim.
    pub launch: i64,
    /// The job's memory (MB; 0: no limit), for its runner to make its cgroups before it claims.
    pub mem_mb: u64,
}

/// How a job is to be launched: where, and how its runner supervises it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch<'a> {
    pub cpu_list: &'a str,
    pub gpu_list: &'a str,
    pub cpus: u32,
    /// The grace between SIGTERM and SIGKILL at its time limit.
    pub kill_wait_ms: i64,
    /// Cap its address space (RLIMIT_AS) where no memory cgroup limits it.
    pub rlimit_as: bool,
    /// When the engine started it.
    pub at_ms: i64,
}

/// New pending submissions (see [`Db::pending_arrivals`]).
const PENDING_ARRIVALS: &str =
    select_jobs!("state = 'PENDING' AND cancel_requested = 0 AND id > ?1");

impl Db {
    /// Records the daemon's configuration (the fields that are set).
    pub fn set_daemon_meta(&self, m: &DaemonMeta) -> Result<()> {
        let fields = [
            ("cpus", m.cpus.map(|v| v.to_string())),
            ("mem_mb", m.mem_mb.map(|v| v.to_string())),
            ("gpus", m.gpus.as_ref().map(|g| g.join(","))),
            ("policy", m.policy.clone()),
            ("pid", m.pid.map(|v| v.to_string())),
            ("started_ms", m.started_ms.map(|v| v.to_string())),
            ("enforcement", m.enforcement.clone()),
            ("last_fault", m.last_fault.clone()),
            ("executor", m.executor.clone()),
            ("slurm", m.slurm.clone()),
            ("plan", m.plan.clone()),
            ("http", m.http.clone()),
        ];
        for (key, value) in fields {
            if let Some(v) = value {
                self.set_meta(key, &v)?;
            }
        }
        Ok(())
    }

    /// Pending jobs nobody asked to cancel with an id above `after` (new submissions) or in
    /// `held` (looked at before and held back), by id; rows that do not decode apart.
    pub fn pending_arrivals(&self, after: i64, held: &[i64]) -> Result<(Vec<JobRow>, Vec<BadRow>)> {
        // The state is written into the statements, not bound: SQLite (built with STAT4)
        // compiles a statement again whenever a value it compares with an indexed column is
        // bound anew, and the daemon runs this one for every job.
        if held.is_empty() {
            // The common case in a statement of its own (a `json_each` argument is also
            // compiled again at every run).
            return self.rows_each(PENDING_ARRIVALS, params![after]);
        }
        let held = serde_json::to_string(held).unwrap_or_default();
        self.rows_each(
            select_jobs!(
                "state = 'PENDING' AND cancel_requested = 0
                 AND (id > ?1 OR id IN (SELECT value FROM json_each(?2)))"
            ),
            params![after, held],
        )
    }

    pub fn set_reason(&self, id: i64, reason: &Reason) -> Result<()> {
        self.exec(
            "UPDATE jobs SET reason = ?1 WHERE id = ?2",
            params![reason.to_string(), id],
        )?;
        Ok(())
    }

    /// A job started: its start time and no pending reason. The state is the launch's
    /// (CONFIGURING, then RUNNING once its runner claims it; a quick job's runner may even have
    /// recorded its end already, and the reason it could not start, which is kept).
    pub fn record_start(&self, id: i64, at_ms: i64) -> Result<()> {
        self.exec(
            "UPDATE jobs SET start_ms = ?1,
                reason = CASE WHEN runner_done = 1 THEN reason ELSE ?2 END
             WHERE id = ?3",
            params![at_ms, Reason::NONE.to_string(), id],
        )?;
        Ok(())
    }

    /// A job about to be launched, in one statement before its runner is forked: CONFIGURING
    /// on its CPUs and GPUs, with how its runner supervises it and the next launch number;
    /// forgets what an earlier run recorded (process group, runner, cgroups, pinning failure,
    /// time limit hit, result). A crash after this is resolved on restart: the launch's runner
    /// is adopted if it lives, else the job waits again — it never runs twice.
    pub fn record_launch(&self, id: i64, l: &Launch<'_>) -> Result<Allocated> {
        self.conn
            .row(
                "UPDATE jobs SET state = ?1, cpu_list = ?2, gpu_list = ?3, alloc_cpus = ?4,
                    kill_wait_ms = ?5, rlimit_as = ?6, start_ms = ?7, reason = ?8,
                    job_pgid = NULL, runner_pid = NULL, runner_start = NULL, cgroups = '',
                    pin_error = NULL, timed_out = 0, runner_done = 0, exit_code = NULL,
                    signal = NULL, end_ms = NULL, oom = 0, launch = launch + 1
                 WHERE id = ?9 RETURNING min_cpus IS NOT NULL, resize_signal, launch, mem_mb",
                params![
                    JobState::Configuring.name(),
                    l.cpu_list,
                    l.gpu_list,
                    l.cpus,
                    l.kill_wait_ms,
                    l.rlimit_as,
                    l.at_ms,
                    Reason::NONE.to_string(),
                    id
                ],
                |r| {
                    Ok(Allocated {
                        elastic: r.get(0)?,
                        resize_signal: r.get(1)?,
                        launch: r.get(2)?,
                        mem_mb: r.get::<_, i64>(3)?.max(0) as u64,
                    })
                },
            )
            .map_err(|e| self.err(e))
    }

    /// A launch that never started its job (the daemon died between recording it and the
    /// runner claiming it): the job waits again, from the queue.
    pub fn relaunch_later(&self, id: i64) -> Result<()> {
        self.exec(
            "UPDATE jobs SET state = ?1, reason = ?2, start_ms = NULL, cpu_list = '',
                gpu_list = '', runner_pid = NULL, runner_start = NULL, job_pgid = NULL
             WHERE id = ?3 AND state = ?4",
            params![
                JobState::Pending.name(),
                Reason::pending(crate::model::PendingReason::Requeued).to_string(),
                id,
                JobState::Configuring.name()
            ],
        )?;
        Ok(())
    }

    /// A preemption begins (`mode`: requeue, suspend, cancel) or is forgotten (`None`, for a
    /// job adopted after a restart), recorded before the job is stopped.
    pub fn record_preempting(&self, id: i64, mode: Option<&str>) -> Result<()> {
        self.exec(
            "UPDATE jobs SET preempting = ?1 WHERE id = ?2",
            params![mode, id],
        )?;
        Ok(())
    }

    /// A job requeued by preemption waits again, from scratch: what its last runner recorded
    /// is cleared (the runner has exited); its last start stays.
    pub fn record_requeue(&self, id: i64) -> Result<()> {
        self.exec(
            "UPDATE jobs SET state = ?1, end_ms = NULL, reason = ?2, restarts = restarts + 1,
                runner_done = 0, exit_code = NULL, signal = NULL, job_pgid = NULL,
                preempting = NULL
             WHERE id = ?3",
            params![
                JobState::Pending.name(),
                Reason::pending(crate::model::PendingReason::Requeued).to_string(),
                id
            ],
        )?;
        Ok(())
    }

    /// A job ended: its final state, and its end time unless its runner recorded one.
    pub fn record_end(
        &self,
        id: i64,
        state: FinalState,
        at_ms: i64,
        reason: &Reason,
    ) -> Result<()> {
        self.exec(
            "UPDATE jobs SET state = ?1, end_ms = COALESCE(end_ms, ?2), reason = ?3 WHERE id = ?4",
            params![state.name(), at_ms, reason.to_string(), id],
        )?;
        Ok(())
    }

    /// Jobs not over whose cancellation a client asked for, by id; rows that do not decode
    /// apart. A request stays until the job's end is recorded (the daemon relays it once per
    /// run and again after a restart), so a crash at any point leaves it done or still asked.
    pub fn cancel_requests(&self) -> Result<(Vec<JobRow>, Vec<BadRow>)> {
        self.rows_each(
            select_jobs!("cancel_requested = 1 AND state IN (?1, ?2, ?3)"),
            params![
                JobState::Pending.name(),
                JobState::Configuring.name(),
                JobState::Running.name()
            ],
        )
    }

    /// Cancels a pending job the engine does not hold (one statement: a job that has left
    /// the queue meanwhile is left alone). Whether it was pending.
    pub fn cancel_pending(&self, id: i64, at_ms: i64) -> Result<bool> {
        let n = self.exec(
            "UPDATE jobs SET state = ?1, end_ms = ?2, reason = ?3 WHERE id = ?4 AND state = ?5",
            params![
                JobState::Cancelled.name(),
                at_ms,
                Reason::NONE.to_string(),
                id,
                JobState::Pending.name()
            ],
        )?;
        Ok(n > 0)
    }

    /// Jobs recorded as started (configuring or running), by id: what a restarted daemon
    /// looks at; rows that do not decode apart.
    pub fn started_jobs(&self) -> Result<(Vec<JobRow>, Vec<BadRow>)> {
        self.rows_each(
            select_jobs!("state IN (?1, ?2)"),
            params![JobState::Configuring.name(), JobState::Running.name()],
        )
    }

    /// One more resize in a job's history.
    pub fn count_resize(&self, id: i64) -> Result<()> {
        self.exec("UPDATE jobs SET resizes = resizes + 1 WHERE id = ?1", [id])?;
        Ok(())
    }

    /// A running job's new CPU ids. Returns its process group if its runner has recorded it:
    /// written and read in one statement, so of this and the runner's
    /// [`record_job_group`](Db::record_job_group) the later one sees the other's write.
    pub fn record_resized(&self, id: i64, cpu_list: &str, cpus: u32) -> Result<Option<i32>> {
        self.conn
            .row(
                "UPDATE jobs SET cpu_list = ?1, alloc_cpus = ?2 WHERE id = ?3 RETURNING job_pgid",
                params![cpu_list, cpus, id],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod statement_tests {
    use super::*;

    #[test]
    fn the_pending_state_written_into_the_statements_is_the_models() {
        assert_eq!(JobState::Pending.name(), "PENDING");
    }

    /// The daemon runs `pending_arrivals` for every job: SQLite must compile it once.
    #[test]
    fn pending_arrivals_is_compiled_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("jobs.db")).unwrap();
        let id = db
            .insert_jobs(&super::super::tests::job("a"), None)
            .unwrap()[0];
        for after in [0, 1, 2, 0] {
            let (rows, bad) = db.pending_arrivals(after, &[]).unwrap();
            assert!(bad.is_empty());
            assert_eq!(rows.len(), usize::from(after < id));
        }
        let st = db.conn.prepare_cached(PENDING_ARRIVALS).unwrap();
        assert_eq!(st.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }
}
