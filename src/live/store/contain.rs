//! Queries about containment, limits and CPU pinning: what the daemon records before a runner
//! starts (the grace and the address-space cap the runner applies), what the runner records
//! (its job's cgroups, a pinning failure, a time limit it enforced), the daemon's containment
//! and CPU ids, and their summary for `stats`.

use super::Cached;
use super::row::ContainStats;
use super::{Db, Result};
use rusqlite::{OptionalExtension, params};

impl Db {
    /// The cgroups a runner made for its job, before the job starts.
    pub fn record_job_cgroups(&self, id: i64, dirs: &[String]) -> Result<()> {
        self.exec(
            "UPDATE jobs SET cgroups = ?1 WHERE id = ?2",
            params![dirs.join("\n"), id],
        )?;
        Ok(())
    }

    /// The job could not be pinned to its CPUs, and why.
    pub fn record_pin_error(&self, id: i64, error: &str) -> Result<()> {
        self.exec(
            "UPDATE jobs SET pin_error = ?1 WHERE id = ?2",
            params![error, id],
        )?;
        Ok(())
    }

    /// The runner stopped the job at its time limit (written before its result).
    pub fn record_timed_out(&self, id: i64) -> Result<()> {
        self.exec("UPDATE jobs SET timed_out = 1 WHERE id = ?1", [id])?;
        Ok(())
    }

    /// The daemon's containment (in words) and the CPU ids it hands out.
    pub fn record_containment(&self, containment: &str, cpu_ids: &str) -> Result<()> {
        self.set_meta("containment", containment)?;
        self.set_meta("cpu_ids", cpu_ids)
    }

    /// Containment and pinning, for `stats`.
    pub fn contain_stats(&self) -> Result<ContainStats> {
        let run = || -> rusqlite::Result<ContainStats> {
            let meta = |key: &str| {
                self.conn
                    .row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                    .optional()
            };
            let pin_failures: i64 = self.conn.row(
                "SELECT COUNT(*) FROM jobs WHERE pin_error IS NOT NULL",
                [],
                |r| r.get(0),
            )?;
            let last_pin_error = self
                .conn
                .row(
                    "SELECT id, pin_error FROM jobs WHERE pin_error IS NOT NULL
                     ORDER BY COALESCE(start_ms, submit_ms) DESC, id DESC LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            Ok(ContainStats {
                containment: meta("containment")?,
                cpu_ids: meta("cpu_ids")?,
                pin_failures: pin_failures.max(0) as u64,
                last_pin_error,
            })
        };
        run().map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containment_records_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("jobs.db")).unwrap();
        assert_eq!(db.contain_stats().unwrap(), ContainStats::default());
        for id in 1..=3 {
            db.exec(
                "INSERT INTO jobs (name, user, uid, gid, argv, shell, cwd, env, cpus, mem_mb,
                    gpus, priority, partition, dependency, state, reason, submit_ms)
                 VALUES ('j', 'u', 0, 0, '[\"true\"]', 0, '/', '[]', 1, 0, 0, 0, 'all', '',
                    'RUNNING', 'None', ?1)",
                [id],
            )
            .unwrap();
        }
        let launch = |rlimit_as| super::super::Launch {
            cpu_list: "0",
            gpu_list: "",
            cpus: 1,
            kill_wait_ms: 1500,
            rlimit_as,
            at_ms: 0,
        };
        assert_eq!(db.record_launch(1, &launch(true)).unwrap().launch, 1);
        db.record_job_cgroups(1, &["/a".into(), "/b".into()])
            .unwrap();
        db.record_pin_error(1, "one").unwrap();
        db.record_pin_error(2, "two").unwrap();
        db.record_timed_out(1).unwrap();
        db.record_containment("cgroup v2", "1").unwrap();
        let r = db.job(1).unwrap().unwrap();
        assert_eq!(
            (r.kill_wait_ms, r.rlimit_as, r.cgroups.clone(), r.timed_out),
            (
                Some(1500),
                true,
                vec!["/a".to_string(), "/b".to_string()],
                true
            )
        );
        let s = db.contain_stats().unwrap();
        assert_eq!(s.pin_failures, 2);
        assert_eq!(s.last_pin_error, Some((2, "two".into())));
        assert_eq!(
            (s.containment.as_deref(), s.cpu_ids.as_deref()),
            (Some("cgroup v2"), Some("1"))
        );
        // A new launch forgets what the last one recorded.
        assert_eq!(db.record_launch(1, &launch(false)).unwrap().launch, 2);
        let r = db.job(1).unwrap().unwrap();
        assert!(r.cgroups.is_empty() && r.pin_error.is_none() && !r.timed_out);
    }
}
