//! Queries about the daemon's plan and what its HTTP server reads: expected starts (written by
//! the daemon's plan writer, only the rows that changed, in one transaction), a read-only
//! connection for the server's threads, per-state counts, and the jobs of a recent window.

use super::row::JobRow;
use super::{Db, Result, StoreError, select_jobs};
use crate::model::JobState;
use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};
use std::path::Path;

impl Db {
    /// Opens an existing database read-only (no migration, no write of any kind): what the
    /// HTTP server's threads read through. Fails if its schema is not this build's.
    pub fn open_read_only(path: &Path) -> Result<Db> {
        let sqlite = |source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags).map_err(sqlite)?;
        super::wait_when_busy(&mut conn).map_err(sqlite)?;
        conn.set_prepared_statement_cache_capacity(super::STATEMENT_CACHE);
        conn.pragma_update(None, "query_only", true)
            .map_err(sqlite)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(sqlite)?;
        if version != super::SCHEMA_VERSION as i64 {
            return Err(StoreError::Schema {
                path: path.to_path_buf(),
                found: version,
            });
        }
        Ok(Db {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Writes expected starts in one transaction: `(job, Some(ms))` sets a pending job's,
    /// `(job, None)` clears a job's whatever its state.
    pub fn record_expected_starts(&mut self, changes: &[(i64, Option<i64>)]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let run = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut set = tx.prepare_cached(
                    "UPDATE jobs SET expected_start_ms = ?1 WHERE id = ?2 AND state = ?3",
                )?;
                let mut clear =
                    tx.prepare_cached("UPDATE jobs SET expected_start_ms = NULL WHERE id = ?1")?;
                for &(id, at) in changes {
                    match at {
                        Some(ms) => set.execute(params![ms, id, JobState::Pending.name()])?,
                        None => clear.execute([id])?,
                    };
                }
            }
            tx.commit()
        };
        run(&mut self.conn).map_err(|e| self.err(e))
    }

    /// Forgets every expected start (a daemon starting or stopping: its plan is void).
    pub fn clear_expected_starts(&self) -> Result<()> {
        self.exec(
            "UPDATE jobs SET expected_start_ms = NULL WHERE expected_start_ms IS NOT NULL",
            [],
        )?;
        Ok(())
    }

    /// Jobs per state, in [`JobState::ALL`]'s order, states without jobs left out (counted on
    /// the state index alone).
    pub fn state_counts(&self) -> Result<Vec<(JobState, u64)>> {
        Ok(by_state(&self.state_rows()?))
    }

    /// Rows per stored state text (`SELECT state, COUNT(*) ... GROUP BY state`).
    pub(super) fn state_rows(&self) -> Result<Vec<(String, i64)>> {
        let run = || -> rusqlite::Result<Vec<(String, i64)>> {
            let mut st = self
                .conn
                .prepare_cached("SELECT state, COUNT(*) FROM jobs GROUP BY state")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        };
        run().map_err(|e| self.err(e))
    }

    /// Jobs not over (pending, configuring, running) and those that ended at or after
    /// `since_ms`, by id; of the ended ones only the `limit` that ended last.
    pub fn jobs_since(&self, since_ms: i64, limit: usize) -> Result<Vec<JobRow>> {
        let active = [JobState::Pending, JobState::Configuring, JobState::Running];
        let mut rows = self.rows(
            select_jobs!("state IN (?1, ?2, ?3)"),
            params![active[0].name(), active[1].name(), active[2].name()],
        )?;
        let mut ended = self.rows(
            concat!(
                "SELECT * FROM (SELECT ",
                super::row::job_columns!(),
                " FROM jobs WHERE end_ms >= ?1 AND state NOT IN (?2, ?3, ?4)
                 ORDER BY end_ms DESC, id DESC LIMIT ?5) ORDER BY id"
            ),
            params![
                since_ms,
                active[0].name(),
                active[1].name(),
                active[2].name(),
                limit as i64
            ],
        )?;
        rows.append(&mut ended);
        rows.sort_by_key(|r| r.id);
        Ok(rows)
    }
}

/// Counts per known state, in [`JobState::ALL`]'s order, of `state_rows`' texts.
pub(super) fn by_state(per: &[(String, i64)]) -> Vec<(JobState, u64)> {
    JobState::ALL
        .iter()
        .filter_map(|s| {
            per.iter()
                .find(|p| p.0 == s.name())
                .map(|p| (*s, p.1.max(0) as u64))
        })
        .collect()
}
