//! The schema of `jobs.db`, versioned with `PRAGMA user_version` and migrated forward on open.
//!
//! A migration is never edited once released: a change to the schema is a new entry at the end
//! of [`MIGRATIONS`]. Job states and reasons are stored as Slurm's names (text), so a database
//! written by any earlier version reads back (see `row.rs` for the decoding).

use rusqlite::{Connection, TransactionBehavior};

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
    // 7: containment and limits kept by the runner: the grace between SIGTERM and SIGKILL and
    // whether to set RLIMIT_AS (recorded at each start), the cgroups the runner made for the
    // job (newline-separated paths), why it could not be pinned to its CPUs, and whether the
    // runner stopped it at its time limit.
    "ALTER TABLE jobs ADD COLUMN kill_wait_ms INTEGER;
     ALTER TABLE jobs ADD COLUMN rlimit_as INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE jobs ADD COLUMN cgroups TEXT NOT NULL DEFAULT '';
     ALTER TABLE jobs ADD COLUMN pin_error TEXT;
     ALTER TABLE jobs ADD COLUMN timed_out INTEGER NOT NULL DEFAULT 0;",
    // 8: crash safety: the number of the job's current launch (a runner claims its launch, so
    // a stale runner of an earlier one never runs the job), and the preemption in progress
    // (`requeue`, `suspend` or `cancel`), so a restart finishes what it began.
    "ALTER TABLE jobs ADD COLUMN launch INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE jobs ADD COLUMN preempting TEXT;",
    // 9: several users: where the job's output goes (sbatch's --output/--error patterns, e.g.
    // `slurm-%j.out`, relative to its working directory; NULL: the home's logs/), and the
    // client's submission token, so a submission retried after a lost reply is stored once.
    "ALTER TABLE jobs ADD COLUMN stdout TEXT;
     ALTER TABLE jobs ADD COLUMN stderr TEXT;
     ALTER TABLE jobs ADD COLUMN token TEXT;
     CREATE INDEX jobs_token ON jobs(token) WHERE token IS NOT NULL;",
    // 10: the Slurm executor: the job's Slurm id (recorded as soon as sbatch returns it), where
    // the engine placed it (`node:cpus:gpus:gpu_mask` per node, comma-separated) and the state Slurm
    // last reported.
    "ALTER TABLE jobs ADD COLUMN slurm_job_id INTEGER;
     ALTER TABLE jobs ADD COLUMN slurm_alloc TEXT NOT NULL DEFAULT '';
     ALTER TABLE jobs ADD COLUMN slurm_state TEXT;",
    // 11: a pending job's expected start from the policy's plan (epoch ms), written by the
    // daemon when it changes (NULL when the plan does not place the job); the jobs that ended
    // in a recent window found without a scan (the dashboard's history).
    "ALTER TABLE jobs ADD COLUMN expected_start_ms INTEGER;
     CREATE INDEX jobs_end ON jobs(end_ms);",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Applies the migrations the database has not seen, in one transaction. A database already
/// up to date is only read: no write lock is taken (every client, runner and daemon worker
/// opens the database, and the daemon writes meanwhile).
pub(super) fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let seen: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if seen >= SCHEMA_VERSION as i64 {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
    }
    tx.commit()
}
