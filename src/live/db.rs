//! The SQLite store of live mode: one database in `$MINI_SLURM_HOME/jobs.db`, in WAL mode so
//! clients read and submit while the daemon writes. The schema is versioned
//! (`PRAGMA user_version`) and migrated forward on open.

use super::LiveError;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::time::Duration;

/// Schema migrations, applied in order; `user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    // 1: jobs and a key-value table for the daemon's state.
    "CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        user TEXT NOT NULL,
        uid INTEGER NOT NULL,
        gid INTEGER NOT NULL,
        argv TEXT NOT NULL,          -- JSON array
        shell INTEGER NOT NULL,      -- 1: argv[0] is a shell command line
        cwd TEXT NOT NULL,
        env TEXT NOT NULL,           -- JSON array of [key, value]
        cpus INTEGER NOT NULL,
        mem_mb INTEGER NOT NULL,
        gpus INTEGER NOT NULL,
        priority INTEGER NOT NULL,
        time_limit_ms INTEGER,
        partition TEXT NOT NULL,
        dependency TEXT NOT NULL,    -- e.g. afterok:3:4,afterany:7
        array_job_id INTEGER,
        array_task_id INTEGER,
        array_limit INTEGER,
        state TEXT NOT NULL,
        reason TEXT NOT NULL,
        submit_ms INTEGER NOT NULL,
        start_ms INTEGER,
        end_ms INTEGER,
        exit_code INTEGER,
        signal INTEGER,
        runner_pid INTEGER,
        runner_start INTEGER,        -- the runner's start time in clock ticks (/proc/PID/stat)
        job_pgid INTEGER,
        cpu_list TEXT NOT NULL DEFAULT '',
        gpu_list TEXT NOT NULL DEFAULT '',
        user_cpu_ms INTEGER,
        sys_cpu_ms INTEGER,
        max_rss_kb INTEGER,
        oom INTEGER NOT NULL DEFAULT 0,
        runner_done INTEGER NOT NULL DEFAULT 0,
        cancel_requested INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX jobs_state ON jobs(state);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    // 2: find cancellation requests without scanning the table.
    "CREATE INDEX jobs_cancel ON jobs(cancel_requested) WHERE cancel_requested = 1;",
    // 3: Slurm's --nice (subtracted from the multifactor priority).
    "ALTER TABLE jobs ADD COLUMN nice INTEGER NOT NULL DEFAULT 0;",
    // 4: quality of service by name (levels come from the scheduler's --accounts file).
    "ALTER TABLE jobs ADD COLUMN qos TEXT NOT NULL DEFAULT '';",
    // 5: times a job was requeued by preemption (Slurm's Restarts).
    "ALTER TABLE jobs ADD COLUMN restarts INTEGER NOT NULL DEFAULT 0;",
    // 6: elastic jobs: their range, the signal that tells them of a resize, the CPUs they hold
    // now and how often they were resized.
    "ALTER TABLE jobs ADD COLUMN min_cpus INTEGER;
     ALTER TABLE jobs ADD COLUMN max_cpus INTEGER;
     ALTER TABLE jobs ADD COLUMN resize_signal INTEGER;
     ALTER TABLE jobs ADD COLUMN alloc_cpus INTEGER;
     ALTER TABLE jobs ADD COLUMN resizes INTEGER NOT NULL DEFAULT 0;",
];

pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Job states, with Slurm's names.
pub const ACTIVE: [&str; 2] = ["PENDING", "RUNNING"];

pub struct Db {
    pub conn: Connection,
}

/// A job as stored.
#[derive(Clone, Debug, serde::Serialize)]
pub struct JobRow {
    pub id: i64,
    pub name: String,
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    pub argv: Vec<String>,
    pub shell: bool,
    pub cwd: String,
    /// Not loaded with the row (it is large); see [`Db::env`].
    #[serde(skip)]
    pub env: Vec<(String, String)>,
    pub cpus: u32,
    pub mem_mb: u64,
    pub gpus: u32,
    pub priority: i64,
    pub nice: i32,
    pub qos: String,
    /// Times requeued by preemption.
    pub restarts: i64,
    /// Elastic range (both set for an elastic job).
    pub min_cpus: Option<u32>,
    pub max_cpus: Option<u32>,
    /// Signal sent to an elastic job when it is resized (none by default).
    pub resize_signal: Option<i32>,
    /// CPUs held now (set when it starts; changes with resizes).
    pub alloc_cpus: Option<u32>,
    pub resizes: i64,
    pub time_limit_ms: Option<i64>,
    pub partition: String,
    pub dependency: String,
    pub array_job_id: Option<i64>,
    pub array_task_id: Option<i64>,
    pub array_limit: Option<i64>,
    pub state: String,
    pub reason: String,
    pub submit_ms: i64,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub runner_pid: Option<i32>,
    pub runner_start: Option<i64>,
    pub job_pgid: Option<i32>,
    pub cpu_list: String,
    pub gpu_list: String,
    pub user_cpu_ms: Option<i64>,
    pub sys_cpu_ms: Option<i64>,
    pub max_rss_kb: Option<i64>,
    pub oom: bool,
    pub runner_done: bool,
    pub cancel_requested: i64,
}

/// A job to insert.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub name: String,
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    pub argv: Vec<String>,
    pub shell: bool,
    pub cwd: String,
    pub env: Vec<(String, String)>,
    pub cpus: u32,
    pub mem_mb: u64,
    pub gpus: u32,
    pub priority: i64,
    pub nice: i32,
    pub qos: String,
    pub time_limit_ms: Option<i64>,
    pub partition: String,
    pub dependency: String,
    pub submit_ms: i64,
    /// Elastic range, when elastic.
    pub elastic: Option<(u32, u32)>,
    pub resize_signal: Option<i32>,
}

const COLUMNS: &str = "id, name, user, uid, gid, argv, shell, cwd, '[]', cpus, mem_mb, gpus, priority, \
    time_limit_ms, partition, dependency, array_job_id, array_task_id, array_limit, state, reason, \
    submit_ms, start_ms, end_ms, exit_code, signal, runner_pid, runner_start, job_pgid, cpu_list, \
    gpu_list, user_cpu_ms, sys_cpu_ms, max_rss_kb, oom, runner_done, cancel_requested, nice, qos, restarts, \
    min_cpus, max_cpus, resize_signal, alloc_cpus, resizes";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRow> {
    let json = |i: usize| -> rusqlite::Result<String> { r.get(i) };
    Ok(JobRow {
        id: r.get(0)?,
        name: r.get(1)?,
        user: r.get(2)?,
        uid: r.get(3)?,
        gid: r.get(4)?,
        argv: serde_json::from_str(&json(5)?).unwrap_or_default(),
        shell: r.get(6)?,
        cwd: r.get(7)?,
        env: serde_json::from_str(&json(8)?).unwrap_or_default(),
        cpus: r.get(9)?,
        mem_mb: r.get::<_, i64>(10)?.max(0) as u64,
        gpus: r.get(11)?,
        priority: r.get(12)?,
        time_limit_ms: r.get(13)?,
        partition: r.get(14)?,
        dependency: r.get(15)?,
        array_job_id: r.get(16)?,
        array_task_id: r.get(17)?,
        array_limit: r.get(18)?,
        state: r.get(19)?,
        reason: r.get(20)?,
        submit_ms: r.get(21)?,
        start_ms: r.get(22)?,
        end_ms: r.get(23)?,
        exit_code: r.get(24)?,
        signal: r.get(25)?,
        runner_pid: r.get(26)?,
        runner_start: r.get(27)?,
        job_pgid: r.get(28)?,
        cpu_list: r.get(29)?,
        gpu_list: r.get(30)?,
        user_cpu_ms: r.get(31)?,
        sys_cpu_ms: r.get(32)?,
        max_rss_kb: r.get(33)?,
        oom: r.get(34)?,
        runner_done: r.get(35)?,
        cancel_requested: r.get(36)?,
        nice: r.get(37)?,
        qos: r.get(38)?,
        restarts: r.get(39)?,
        min_cpus: r.get(40)?,
        max_cpus: r.get(41)?,
        resize_signal: r.get(42)?,
        alloc_cpus: r.get(43)?,
        resizes: r.get(44)?,
    })
}

impl Db {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Db, LiveError> {
        let conn = Connection::open(path).map_err(|e| LiveError::db(path, e))?;
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(|e| LiveError::db(path, e))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| LiveError::db(path, e))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| LiveError::db(path, e))?;
        let mut db = Db { conn };
        db.migrate().map_err(|e| LiveError::db(path, e))?;
        Ok(db)
    }

    fn migrate(&mut self) -> rusqlite::Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
        }
        tx.commit()
    }

    /// Inserts jobs in one transaction; with `array = Some((tasks, limit))` the jobs are the
    /// tasks of one array whose id is the first task's. Returns the ids.
    pub fn submit(
        &mut self,
        job: &NewJob,
        array: Option<(&[i64], Option<i64>)>,
    ) -> rusqlite::Result<Vec<i64>> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let argv = serde_json::to_string(&job.argv).unwrap_or_default();
        let env = serde_json::to_string(&job.env).unwrap_or_default();
        let mut ids = Vec::new();
        let tasks: Vec<Option<i64>> = match array {
            Some((t, _)) => t.iter().map(|&x| Some(x)).collect(),
            None => vec![None],
        };
        let limit = array.and_then(|a| a.1);
        for task in tasks {
            tx.execute(
                "INSERT INTO jobs (name, user, uid, gid, argv, shell, cwd, env, cpus, mem_mb, gpus,
                    priority, time_limit_ms, partition, dependency, array_task_id, array_limit,
                    state, reason, submit_ms, nice, qos, min_cpus, max_cpus, resize_signal)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                    'PENDING', 'None', ?18, ?19, ?20, ?21, ?22, ?23)",
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
                    job.submit_ms,
                    job.nice,
                    job.qos,
                    job.elastic.map(|e| e.0),
                    job.elastic.map(|e| e.1),
                    job.resize_signal
                ],
            )?;
            ids.push(tx.last_insert_rowid());
        }
        if array.is_some() {
            tx.execute(
                "UPDATE jobs SET array_job_id = ?1 WHERE id >= ?1 AND id <= ?2",
                params![ids[0], ids[ids.len() - 1]],
            )?;
        }
        tx.commit()?;
        Ok(ids)
    }

    pub fn job(&self, id: i64) -> rusqlite::Result<Option<JobRow>> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"),
                [id],
                row,
            )
            .optional()
    }

    /// Jobs matching `where_sql` (with `?1` bound to `arg` when given), by id.
    pub fn jobs_where(&self, where_sql: &str) -> rusqlite::Result<Vec<JobRow>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE {where_sql} ORDER BY id"
        ))?;
        let rows = st.query_map([], row)?;
        rows.collect()
    }

    /// The environment a job was submitted with.
    pub fn env(&self, id: i64) -> rusqlite::Result<Vec<(String, String)>> {
        let text: Option<String> = self
            .conn
            .query_row("SELECT env FROM jobs WHERE id = ?1", [id], |r| r.get(0))
            .optional()?;
        Ok(text
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default())
    }

    pub fn exists(&self, id: i64) -> rusqlite::Result<bool> {
        Ok(self
            .conn
            .query_row("SELECT 1 FROM jobs WHERE id = ?1", [id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    pub fn set_meta(&self, key: &str, value: &str) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    pub fn meta(&self, key: &str) -> rusqlite::Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
    }

    pub fn execute(&self, sql: &str, p: impl rusqlite::Params) -> rusqlite::Result<usize> {
        self.conn.execute(sql, p)
    }
}
