//! The SQLite store of live mode, and the only place in the crate that knows SQL: one database
//! in `$MINI_SLURM_HOME/jobs.db`, in WAL mode so clients read and submit while the daemon
//! writes. The schema is versioned and migrated forward on open (`schema.rs`).
//!
//! Everything else reads and writes through typed calls on [`Db`], grouped by who makes them:
//! `client.rs` (submit, list, cancel, stats, export), `daemon.rs` (hand-over of pending jobs,
//! starts, ends, cancellations, allocations), `runner.rs` (the per-job supervisor's own
//! records), `slurm.rs` (the Slurm executor's records), `contain.rs` (what containment and
//! pinning record, for all three) and `plan.rs` (expected starts, and the HTTP server's
//! read-only connection and queries). Values always travel as parameters; the SQL texts are
//! constants.

mod client;
mod contain;
mod daemon;
mod plan;
mod row;
mod runner;
mod schema;
mod slurm;

pub use daemon::{Allocated, Launch};
pub use row::{
    ContainStats, DaemonMeta, DecodeError, Env, JobCounts, JobFilter, JobRow, NewJob, Reason,
    ReasonCode, RunnerResult, by_name,
};
pub use runner::Claimed;
pub use schema::SCHEMA_VERSION;
pub use slurm::SlurmRecord;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Params, params};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// An open database.
pub struct Db {
    conn: Connection,
    path: PathBuf,
}

/// A failed store operation, with the database's path.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{path}: {source}")]
    Decode {
        path: PathBuf,
        #[source]
        source: DecodeError,
    },
    /// A read-only connection found a schema other than this build's (it cannot migrate).
    #[error("{path}: schema version {found}, this build reads {}", SCHEMA_VERSION)]
    Schema { path: PathBuf, found: i64 },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// How long a statement waits for another connection's lock before it fails with "database is
/// locked": 30 s, or `$MINI_SLURM_BUSY_TIMEOUT_MS` (the daemon retries what fails, so a short
/// wait only makes it retry sooner).
fn busy_timeout() -> Duration {
    static TIMEOUT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *TIMEOUT.get_or_init(|| {
        std::env::var("MINI_SLURM_BUSY_TIMEOUT_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(Duration::from_secs(30), Duration::from_millis)
    })
}

/// Makes a connection wait out another's lock for up to [`busy_timeout`], trying again after
/// 20 µs, doubling up to 1 ms. SQLite's own waiting sleeps 1, 2, 5, 10... ms between tries,
/// so a write queued behind another (which holds the lock for tens of microseconds) lost a
/// millisecond or more: the daemon's workers and its loop write the same database.
pub(super) fn wait_when_busy(conn: &mut Connection) -> rusqlite::Result<()> {
    thread_local! {
        static SINCE: std::cell::Cell<Option<std::time::Instant>> =
            const { std::cell::Cell::new(None) };
    }
    fn on_busy(tries: i32) -> bool {
        let now = std::time::Instant::now();
        let since = SINCE.with(|s| {
            if tries == 0 || s.get().is_none() {
                s.set(Some(now));
            }
            s.get().unwrap_or(now)
        });
        if now.duration_since(since) >= busy_timeout() {
            return false;
        }
        let pause = Duration::from_micros(20 << tries.clamp(0, 6)).min(Duration::from_millis(1));
        std::thread::sleep(pause);
        true
    }
    conn.busy_handler(Some(on_busy))
}

/// A stored job whose row does not decode: its id, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRow {
    pub id: i64,
    pub why: String,
}

/// `SELECT` of whole job rows; `$where` is a constant condition on parameters.
macro_rules! select_jobs {
    ($where:literal) => {
        concat!(
            "SELECT ",
            $crate::live::store::row::job_columns!(),
            " FROM jobs WHERE ",
            $where,
            " ORDER BY id"
        )
    };
}
use select_jobs;

/// Statements through the connection's cache of compiled statements: compiling a statement
/// costs more than running it (the daemon runs the same few dozen for every job), so every
/// statement of the store goes through [`Connection::prepare_cached`].
pub(crate) trait Cached {
    /// The first row of `sql`, mapped by `f` (as [`Connection::query_row`]).
    fn row<T, P: Params, F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>>(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T>;
    /// Runs `sql` (as [`Connection::execute`]).
    fn run<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
}

impl Cached for Connection {
    fn row<T, P: Params, F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>>(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }

    fn run<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }
}

/// Distinct statements kept compiled per connection (rusqlite's default is 16, fewer than the
/// daemon's statements, which made it compile them again for every job).
const STATEMENT_CACHE: usize = 128;

impl Db {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Db> {
        Db::open_with(path, OpenFlags::default())
    }

    /// Opens the database at `path` if it exists (migrating it if needed); `None` if there is
    /// none: read-only commands create nothing.
    pub fn open_existing(path: &Path) -> Result<Option<Db>> {
        if !path.exists() {
            return Ok(None);
        }
        let flags = OpenFlags::default() - OpenFlags::SQLITE_OPEN_CREATE;
        Db::open_with(path, flags).map(Some)
    }

    /// Opens the database of a running daemon for a job's runner: the daemon created, migrated
    /// and switched it to write-ahead logging before it started any runner, so the runner only
    /// sets what belongs to its connection (no schema check, no journal mode: a runner starts
    /// per job and compiles every statement it runs).
    pub fn open_runner(path: &Path) -> Result<Db> {
        let sqlite = |source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let flags = OpenFlags::default() - OpenFlags::SQLITE_OPEN_CREATE;
        let mut conn = Connection::open_with_flags(path, flags).map_err(sqlite)?;
        wait_when_busy(&mut conn).map_err(sqlite)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sqlite)?;
        Ok(Db {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn open_with(path: &Path, flags: OpenFlags) -> Result<Db> {
        let sqlite = |source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = Connection::open_with_flags(path, flags).map_err(sqlite)?;
        wait_when_busy(&mut conn).map_err(sqlite)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sqlite)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sqlite)?;
        schema::migrate(&mut conn).map_err(sqlite)?;
        Ok(Db {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The store error of a SQLite error: a row this build cannot decode, or SQLite's own.
    fn err(&self, e: rusqlite::Error) -> StoreError {
        if let rusqlite::Error::FromSqlConversionFailure(_, _, inner) = &e
            && let Some(d) = inner.downcast_ref::<DecodeError>()
        {
            return StoreError::Decode {
                path: self.path.clone(),
                source: d.clone(),
            };
        }
        StoreError::Sqlite {
            path: self.path.clone(),
            source: e,
        }
    }

    /// Job rows of a `select_jobs!` query.
    fn rows(&self, sql: &str, params: impl Params) -> Result<Vec<JobRow>> {
        let run = || -> rusqlite::Result<Vec<JobRow>> {
            let mut st = self.conn.prepare_cached(sql)?;
            let rows = st.query_map(params, row::job_row)?;
            rows.collect()
        };
        run().map_err(|e| self.err(e))
    }

    /// Job rows of a `select_jobs!` query, each on its own: a row that does not decode is
    /// returned apart (its id and why) instead of failing the whole query, so one damaged row
    /// cannot stop the daemon or hide the other jobs.
    fn rows_each(&self, sql: &str, params: impl Params) -> Result<(Vec<JobRow>, Vec<BadRow>)> {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        let mut st = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let mut rows = st.query(params).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            match row::job_row(r) {
                Ok(j) => good.push(j),
                Err(e) => {
                    let id = r.get::<_, i64>(0).unwrap_or(-1);
                    bad.push(BadRow {
                        id,
                        why: self.err(e).to_string(),
                    });
                }
            }
        }
        Ok((good, bad))
    }

    /// Fails a job whose row does not decode, with the reason: its state and reason are
    /// rewritten (the only columns needed to see it ended), the rest is left for inspection.
    pub fn fail_bad_row(&self, bad: &BadRow, at_ms: i64) -> Result<()> {
        self.exec(
            "UPDATE jobs SET state = ?1, reason = ?2, end_ms = COALESCE(end_ms, ?3)
             WHERE id = ?4",
            params![
                crate::model::JobState::Failed.name(),
                Reason::bad_row(&bad.why).to_string(),
                at_ms,
                bad.id
            ],
        )?;
        Ok(())
    }

    /// One job.
    pub fn job(&self, id: i64) -> Result<Option<JobRow>> {
        self.conn
            .row(select_jobs!("id = ?1"), [id], row::job_row)
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Sets one key of the daemon's key-value state (the `meta` table).
    fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.exec(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            rusqlite::params![key, value],
        )?;
        Ok(())
    }

    /// Runs one statement (a constant text) with its parameters.
    fn exec(&self, sql: &str, params: impl Params) -> Result<usize> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut st| st.execute(params))
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{FinalState, JobState, PendingReason};

    /// A job of user `ann` (uid 1000) running `true`, with the environment `K=V`.
    pub(crate) fn job(name: &str) -> NewJob {
        NewJob {
            name: name.into(),
            user: "ann".into(),
            uid: 1000,
            gid: 1000,
            argv: vec!["true".into()],
            shell: false,
            cwd: "/".into(),
            env: vec![("K".into(), "V".into())],
            cpus: 1,
            mem_mb: 0,
            gpus: 0,
            priority: 0,
            nice: 0,
            qos: String::new(),
            time_limit_ms: None,
            partition: "all".into(),
            dependency: String::new(),
            submit_ms: 5,
            elastic: None,
            resize_signal: None,
            stdout: None,
            stderr: None,
            token: None,
        }
    }

    #[test]
    fn typed_queries_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("jobs.db")).unwrap();
        let a = db.insert_jobs(&job("a"), None).unwrap();
        let tasks = db
            .insert_jobs(&job("t"), Some((&[1, 2, 3], Some(2))))
            .unwrap();
        assert_eq!((a, tasks.len()), (vec![1], 3));
        assert!(db.exists(1).unwrap() && !db.exists(9).unwrap());
        let t = db.job(tasks[2]).unwrap().unwrap();
        assert_eq!((t.array_job_id, t.array_task_id), (Some(2), Some(3)));
        assert_eq!(
            (t.state, t.reason.clone()),
            (JobState::Pending, Reason::NONE)
        );
        // The daemon's hand-over: newer than the cursor, or held back before.
        let ids = |rows: Vec<JobRow>| rows.iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(db.pending_arrivals(2, &[1]).unwrap().0), [1, 3, 4]);
        assert_eq!(ids(db.pending_arrivals(4, &[]).unwrap().0), [] as [i64; 0]);
        db.record_start(1, 100).unwrap();
        db.set_reason(2, &Reason::with(PendingReason::ReqNodeNotAvail, "why"))
            .unwrap();
        db.record_end(1, FinalState::Completed, 200, &Reason::NONE)
            .unwrap();
        let filter = JobFilter {
            states: Some(vec![JobState::Pending, JobState::Running]),
            user: Some("ann".into()),
            array: None,
        };
        assert_eq!(ids(db.jobs(&filter).unwrap()), [2, 3, 4]);
        assert_eq!(
            db.job(2).unwrap().unwrap().reason.to_string(),
            "ReqNodeNotAvail (why)"
        );
        let none = JobFilter {
            user: Some("o'brien".into()),
            ..JobFilter::default()
        };
        assert!(db.jobs(&none).unwrap().is_empty());
        let c = db.job_counts().unwrap();
        assert_eq!((c.total, c.finished, c.wait_ms, c.run_ms), (4, 1, 95, 100));
        assert_eq!(
            c.by_state,
            [(JobState::Pending, 3), (JobState::Completed, 1)]
        );
        assert_eq!(db.job_with_env(1).unwrap().unwrap().env, job("a").env);
    }

    #[test]
    fn a_runner_claims_its_launch_and_reads_its_job_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("jobs.db")).unwrap();
        db.insert_jobs(&job("a"), None).unwrap();
        let launch = |db: &Db| {
            let l = Launch {
                cpu_list: "0",
                gpu_list: "",
                cpus: 1,
                kill_wait_ms: 10,
                rlimit_as: false,
                at_ms: 7,
            };
            db.record_launch(1, &l).unwrap().launch
        };
        let n = launch(&db);
        assert!(matches!(
            db.claim_and_read(1, n + 1, 9, None, None).unwrap(),
            Claimed::NotCurrent
        ));
        match db
            .claim_and_read(1, n, 9, Some(3), Some(&["/cg/a".into()]))
            .unwrap()
        {
            Claimed::Job(j) => {
                assert_eq!(
                    (j.state, j.runner_pid, j.env.clone(), j.cgroups.clone()),
                    (
                        JobState::Running,
                        Some(9),
                        job("a").env,
                        vec!["/cg/a".to_string()]
                    )
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(
                db.claim_and_read(1, n, 9, None, None).unwrap(),
                Claimed::NotCurrent
            ),
            "claimed once"
        );
        assert!(
            matches!(
                db.claim_and_read(1, n, 9, Some(3), None).unwrap(),
                Claimed::Job(_)
            ),
            "the same runner's claim, sent again, finds the job claimed by it"
        );
        db.exec("UPDATE jobs SET env = 'oops'", []).unwrap();
        let n = launch(&db);
        assert!(matches!(
            db.claim_and_read(1, n, 9, None, None).unwrap(),
            Claimed::Damaged(_)
        ));
        assert_eq!(
            db.job(1).unwrap().unwrap().state,
            JobState::Running,
            "claimed all the same"
        );
    }

    /// A write waits for another connection's write lock and goes through once it is
    /// released (the handler tries again until the busy timeout).
    #[test]
    fn a_write_waits_out_another_connections_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.db");
        let db = Db::open(&path).unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let holder = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            other.execute_batch("COMMIT").unwrap();
        });
        db.set_meta("k", "v").unwrap();
        holder.join().unwrap();
        let v: String = db
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'k'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, "v");
    }

    #[test]
    fn a_submission_sent_twice_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("jobs.db")).unwrap();
        let once = NewJob {
            token: Some("t1".into()),
            stdout: Some("slurm-%j.out".into()),
            ..job("a")
        };
        let first = db.insert_jobs(&once, Some((&[1, 2], None))).unwrap();
        let again = db.insert_jobs(&once, Some((&[1, 2], None))).unwrap();
        assert_eq!((first.clone(), again), (vec![1, 2], vec![1, 2]));
        let other = NewJob {
            token: Some("t2".into()),
            ..job("b")
        };
        assert_eq!(db.insert_jobs(&other, None).unwrap(), [3]);
        assert_eq!(db.insert_jobs(&job("c"), None).unwrap(), [4]);
        assert_eq!(
            db.insert_jobs(&job("c"), None).unwrap(),
            [5],
            "no token: no dedup"
        );
        let r = db.job(2).unwrap().unwrap();
        assert_eq!(
            (r.stdout.as_deref(), r.stderr),
            (Some("slurm-%j.out"), None)
        );
        // Tokens are per user: another user's submission with the same token is its own job.
        let bob = NewJob {
            token: Some("t1".into()),
            user: "bob".into(),
            uid: 1001,
            ..job("bob's")
        };
        assert_eq!(db.insert_jobs(&bob, None).unwrap(), [6]);
        assert_eq!(db.insert_jobs(&bob, None).unwrap(), [6]);
        assert_eq!(db.insert_jobs(&once, None).unwrap(), [1, 2]);
    }

    #[test]
    fn a_row_that_does_not_decode_is_set_apart_and_failed() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("jobs.db")).unwrap();
        for n in ["a", "b", "c"] {
            db.insert_jobs(&job(n), None).unwrap();
        }
        // A damaged argv (job 2) and an unknown state (job 3).
        db.exec("UPDATE jobs SET argv = '{oops' WHERE id = 2", [])
            .unwrap();
        db.exec("UPDATE jobs SET state = 'PENDING ' WHERE id = 3", [])
            .unwrap();
        let (good, bad) = db.pending_arrivals(0, &[]).unwrap();
        assert_eq!(good.iter().map(|r| r.id).collect::<Vec<_>>(), [1]);
        assert_eq!(bad.iter().map(|b| b.id).collect::<Vec<_>>(), [2]);
        assert!(bad[0].why.contains("argv"), "{bad:?}");
        db.fail_bad_row(&bad[0], 9).unwrap();
        let (_, bad_after) = db.pending_arrivals(0, &[]).unwrap();
        assert!(bad_after.is_empty(), "failed rows leave the queue");
        // The failed row is FAILED with the reason, though its argv still does not decode.
        let state: String = db
            .conn
            .row(
                "SELECT state || ' ' || reason FROM jobs WHERE id = 2",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(state.starts_with("FAILED JobLaunchFailure ("), "{state}");
        // An empty command is no command: never replaced by a default.
        db.exec("UPDATE jobs SET argv = '[]' WHERE id = 1", [])
            .unwrap();
        assert!(db.job(1).is_err());
    }

    #[test]
    fn unknown_state_is_a_decode_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("jobs.db")).unwrap();
        db.insert_jobs(&job("a"), None).unwrap();
        db.exec("UPDATE jobs SET state = 'LIMBO'", []).unwrap();
        let e = db.job(1).unwrap_err().to_string();
        assert!(e.contains("job 1: unknown state 'LIMBO'"), "{e}");
    }
}
