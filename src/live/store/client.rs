//! Queries the clients make (`submit`, `queue`, `show`, `cancel`, `stats`, `export-trace`).

use super::Cached;
use super::row::{DaemonMeta, JobCounts, JobFilter, JobRow, NewJob};
use super::{Db, Result, StoreError, select_jobs};
use crate::model::JobState;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

impl Db {
    /// Inserts a job in one transaction; with `array = Some((tasks, limit))` the jobs are the
    /// tasks of one array whose id is the first task's. Returns the ids. A job whose token
    /// is already stored for the same uid (the same submission, sent again after its reply
    /// was lost) is not stored again: the ids stored then are returned.
    pub fn insert_jobs(
        &mut self,
        job: &NewJob,
        array: Option<(&[i64], Option<i64>)>,
    ) -> Result<Vec<i64>> {
        let argv = serde_json::to_string(&job.argv).unwrap_or_default();
        let env = super::row::encode_env(&job.env);
        let tasks: Vec<Option<i64>> = match array {
            Some((t, _)) => t.iter().map(|&x| Some(x)).collect(),
            None => vec![None],
        };
        let limit = array.and_then(|a| a.1);
        let run = |conn: &mut rusqlite::Connection| -> rusqlite::Result<Vec<i64>> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if let Some(token) = &job.token {
                // The same user's: a token is the client's, and another user's client may pick
                // the same one (it must never return someone else's job ids).
                // Sorted here: with an ORDER BY, SQLite (STAT4) would compile the statement
                // again at every run, as the token is bound anew.
                let mut st =
                    tx.prepare_cached("SELECT id FROM jobs WHERE token = ?1 AND uid = ?2")?;
                let mut known: Vec<i64> = st
                    .query_map(params![token, job.uid], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                known.sort_unstable();
                drop(st);
                if !known.is_empty() {
                    return Ok(known);
                }
            }
            let mut ids = Vec::with_capacity(tasks.len());
            for task in tasks {
                tx.run(
                    "INSERT INTO jobs (name, user, uid, gid, argv, shell, cwd, env, cpus, mem_mb,
                        gpus, priority, time_limit_ms, partition, dependency, array_task_id,
                        array_limit, state, reason, submit_ms, nice, qos, min_cpus, max_cpus,
                        resize_signal, stdout, stderr, token)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                        ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28)",
                    params![
                        job.name,
                        job.user,
                        job.uid,
                        job.gid,
                        argv,
                        job.shell,
                        job.cwd,
                        env,
                        job.cpus,
                        job.mem_mb as i64,
                        job.gpus,
                        job.priority,
                        job.time_limit_ms,
                        job.partition,
                        job.dependency,
                        task,
                        limit,
                        JobState::Pending.name(),
                        super::Reason::NONE.to_string(),
                        job.submit_ms,
                        job.nice,
                        job.qos,
                        job.elastic.map(|e| e.0),
                        job.elastic.map(|e| e.1),
                        job.resize_signal,
                        job.stdout,
                        job.stderr,
                        job.token
                    ],
                )?;
                ids.push(tx.last_insert_rowid());
            }
            if let (Some(_), Some(first), Some(last)) = (array, ids.first(), ids.last()) {
                tx.run(
                    "UPDATE jobs SET array_job_id = ?1 WHERE id >= ?1 AND id <= ?2",
                    params![first, last],
                )?;
            }
            tx.commit()?;
            Ok(ids)
        };
        run(&mut self.conn).map_err(|e| self.err(e))
    }

    /// The jobs a filter selects, by id.
    pub fn jobs(&self, f: &JobFilter) -> Result<Vec<JobRow>> {
        let states = f.states.as_ref().map(|s| {
            serde_json::to_string(&s.iter().map(|s| s.name()).collect::<Vec<_>>())
                .unwrap_or_default()
        });
        self.rows(
            select_jobs!(
                "(?1 IS NULL OR state IN (SELECT value FROM json_each(?1)))
                 AND (?2 IS NULL OR user = ?2)
                 AND (?3 IS NULL OR array_job_id = ?3)"
            ),
            params![states, f.user, f.array],
        )
    }

    pub fn exists(&self, id: i64) -> Result<bool> {
        let found = self
            .conn
            .row("SELECT 1 FROM jobs WHERE id = ?1", [id], |_| Ok(()))
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(found.is_some())
    }

    /// Runs `f` in one write transaction (`BEGIN IMMEDIATE` ... `COMMIT`), rolled back if it
    /// fails: a request of many small writes (a cancellation of many jobs) commits once.
    pub fn in_transaction<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce() -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.err(e))?;
        let done = f().and_then(|v| {
            self.conn
                .execute_batch("COMMIT")
                .map_err(|e| E::from(self.err(e)))?;
            Ok(v)
        });
        if done.is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        done
    }

    /// Asks the daemon to cancel a job (it relays the request on its next look).
    pub fn request_cancel(&self, id: i64) -> Result<()> {
        self.exec("UPDATE jobs SET cancel_requested = 1 WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Cancels a pending job at once (no daemon runs to do it); false if it was no longer
    /// pending.
    pub fn cancel_pending_now(&self, id: i64, now_ms: i64) -> Result<bool> {
        let n = self.exec(
            "UPDATE jobs SET state = ?1, end_ms = ?2, cancel_requested = 1
             WHERE id = ?3 AND state = ?4",
            params![
                JobState::Cancelled.name(),
                now_ms,
                id,
                JobState::Pending.name()
            ],
        )?;
        Ok(n > 0)
    }

    /// What the daemon last recorded about itself.
    pub fn daemon_meta(&self) -> Result<DaemonMeta> {
        let run = || -> rusqlite::Result<Vec<(String, String)>> {
            let mut st = self.conn.prepare_cached("SELECT key, value FROM meta")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        };
        let mut m = DaemonMeta::default();
        for (k, v) in run().map_err(|e| self.err(e))? {
            match k.as_str() {
                "cpus" => m.cpus = v.parse().ok(),
                "mem_mb" => m.mem_mb = v.parse().ok(),
                "gpus" => {
                    m.gpus = Some(
                        v.split(',')
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect(),
                    )
                }
                "policy" => m.policy = Some(v),
                "pid" => m.pid = v.parse().ok(),
                "started_ms" => m.started_ms = v.parse().ok(),
                "enforcement" => m.enforcement = Some(v),
                "last_fault" => m.last_fault = Some(v),
                "executor" => m.executor = Some(v),
                "slurm" => m.slurm = Some(v),
                "plan" => m.plan = Some(v),
                "http" => m.http = Some(v),
                _ => {}
            }
        }
        Ok(m)
    }

    /// Counts per state, what running jobs hold, and the waits and run times of finished jobs.
    pub fn job_counts(&self) -> Result<JobCounts> {
        let per = self.state_rows()?;
        let run = || -> rusqlite::Result<JobCounts> {
            let mut c = JobCounts {
                total: per.iter().map(|p| p.1.max(0) as u64).sum(),
                by_state: super::plan::by_state(&per),
                ..JobCounts::default()
            };
            c.running = self.conn.row(
                "SELECT COALESCE(SUM(cpus), 0), COALESCE(SUM(MAX(mem_mb, 0)), 0),
                    COALESCE(SUM(gpus), 0) FROM jobs WHERE state = ?1",
                [JobState::Running.name()],
                |r| {
                    let n = |i| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
                    Ok((n(0)?, n(1)?, n(2)?))
                },
            )?;
            (c.finished, c.wait_ms, c.run_ms) = self.conn.row(
                "SELECT COUNT(*), COALESCE(SUM(start_ms - submit_ms), 0),
                    COALESCE(SUM(end_ms - start_ms), 0)
                 FROM jobs WHERE start_ms IS NOT NULL AND end_ms IS NOT NULL",
                [],
                |r| Ok((r.get::<_, i64>(0)?.max(0) as u64, r.get(1)?, r.get(2)?)),
            )?;
            Ok(c)
        };
        run().map_err(|e| self.err(e))
    }

    /// Jobs that ran and ended (a start and an end time), by id: what `export-trace` writes.
    pub fn finished_jobs(&self) -> Result<Vec<JobRow>> {
        self.rows(
            select_jobs!("start_ms IS NOT NULL AND end_ms IS NOT NULL"),
            [],
        )
    }
}
