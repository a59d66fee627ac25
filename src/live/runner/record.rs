//! Where a runner's records go: to the daemon that launched it, which writes them with its open
//! connection, or — when no daemon answers — into the database by the runner itself.
//!
//! Why: opening the database was a large share of a trivial job's runner (the schema read and
//! parsed, every statement compiled, a page cache and its heap faulted in), and the claim sits between a start's decision and the job's first instruction. Through the daemon a
//! record is one request on its socket ([`RunnerCall`], the daemon's own user only). A daemon
//! that is gone, stopped (no answer within [`PATIENCE`]), or of another version leaves the
//! runner on the direct path for the rest of its job, as before: what only the runner knows is
//! still recorded before it exits, whether or not a daemon runs. Every record is idempotent (a
//! claim sent again by the same runner finds the job claimed by it), so one whose answer was
//! lost may be made again.

use super::super::protocol::{
    ClaimedJob, FailureKind, Request, Response, RunnerAnswer, RunnerCall,
};
use super::super::store::{self, Claimed, Db, JobRow, Reason, RunnerResult};
use super::super::{Home, LiveError, remote};
use std::cell::{Cell, OnceCell};
use std::time::Duration;

/// How long a runner waits for the daemon to take a record before it writes the record itself:
/// a daemon that is stopped or stuck must not hold jobs up (a record it takes late is the same
/// record again).
const PATIENCE: Duration = Duration::from_secs(2);

/// What a claim found.
pub(super) enum Claim {
    /// Not the job's current launch, or no longer CONFIGURING: run nothing.
    NotCurrent,
    /// Claimed: the job, with its environment.
    Job(Box<JobRow>),
    /// Claimed, but its row does not decode: the job fails, with why.
    Damaged(String),
}

/// A runner's way to its records.
pub(super) struct Recorder<'a> {
    home: &'a Home,
    /// Records go to the daemon (until one is not answered).
    daemon: Cell<bool>,
    db: OnceCell<Db>,
}

impl<'a> Recorder<'a> {
    /// Records through the daemon first when `through_daemon`, else in the database.
    pub fn new(home: &'a Home, through_daemon: bool) -> Recorder<'a> {
        Recorder {
            home,
            daemon: Cell::new(through_daemon),
            db: OnceCell::new(),
        }
    }

    pub fn home(&self) -> &Home {
        self.home
    }

    /// Whether the daemon took the last record (and was woken by it, if it was a result).
    pub fn through_daemon(&self) -> bool {
        self.daemon.get()
    }

    /// The database, opened on first use (without the daemon's pragma and schema checks).
    pub fn db(&self) -> Result<&Db, LiveError> {
        if let Some(db) = self.db.get() {
            return Ok(db);
        }
        let db = self.home.open_for_runner()?;
        Ok(self.db.get_or_init(|| db))
    }

    /// One record: through the daemon while it answers, else `direct` on the database. An
    /// answer of the wrong kind, a refusal or an unknown request (a daemon of another
    /// version) also sends this runner to the database; a failure to write (the daemon's
    /// database busy or full) is returned, for the caller to try again.
    fn record<T>(
        &self,
        call: RunnerCall,
        from: impl FnOnce(RunnerAnswer) -> Option<T>,
        direct: impl FnOnce(&Db) -> store::Result<T>,
    ) -> Result<T, String> {
        if self.daemon.get() {
            let asked = remote::connect_now(self.home)
                .map_err(remote::Lost::Io)
                .and_then(|s| remote::exchange_within(s, &Request::Runner(call), PATIENCE));
            match asked {
                Ok(Response::Runner(a)) => {
                    if let Some(v) = from(a) {
                        return Ok(v);
                    }
                }
                Ok(Response::Failed(f)) if f.kind == FailureKind::Failed => {
                    return Err(f.message);
                }
                _ => {}
            }
            self.daemon.set(false);
        }
        let db = self.db().map_err(|e| e.to_string())?;
        direct(db).map_err(|e| e.to_string())
    }

    /// Claims launch `launch` of job `id` for this runner (`pid`, started at `start`),
    /// recording the cgroups it made already.
    pub fn claim(
        &self,
        id: i64,
        launch: i64,
        (pid, start): (i32, Option<i64>),
        cgroups: Option<&[String]>,
    ) -> Result<Claim, String> {
        let call = RunnerCall::Claim {
            job: id,
            launch,
            pid,
            start,
            cgroups: cgroups.map(<[String]>::to_vec),
        };
        let from = |a| match a {
            RunnerAnswer::Claimed(j) => Some(Claim::Job(Box::new(j.into_row()))),
            RunnerAnswer::NotCurrent => Some(Claim::NotCurrent),
            RunnerAnswer::Damaged(why) => Some(Claim::Damaged(why)),
            _ => None,
        };
        self.record(call, from, |db| {
            Ok(match db.claim_and_read(id, launch, pid, start, cgroups)? {
                Claimed::NotCurrent => Claim::NotCurrent,
                Claimed::Job(j) => Claim::Job(j),
                Claimed::Damaged(e) => Claim::Damaged(e.to_string()),
            })
        })
    }

    pub fn cgroups(&self, id: i64, dirs: &[String]) -> Result<(), String> {
        let call = RunnerCall::Cgroups {
            job: id,
            dirs: dirs.to_vec(),
        };
        self.record(call, done, |db| db.record_job_cgroups(id, dirs))
    }

    pub fn pin_error(&self, id: i64, error: &str) -> Result<(), String> {
        let call = RunnerCall::PinError {
            job: id,
            error: error.to_string(),
        };
        self.record(call, done, |db| db.record_pin_error(id, error))
    }

    pub fn launch_failed(&self, id: i64, why: &str) -> Result<(), String> {
        let call = RunnerCall::LaunchFailed {
            job: id,
            why: why.to_string(),
        };
        self.record(call, done, |db| {
            db.set_reason(id, &Reason::launch_failed(why))
        })
    }

    /// Records the job's process group; the job's CPU list now.
    pub fn group(&self, id: i64, pgid: i32) -> Result<String, String> {
        let from = |a| match a {
            RunnerAnswer::CpuList(c) => Some(c),
            _ => None,
        };
        let call = RunnerCall::Group { job: id, pgid };
        self.record(call, from, |db| db.record_job_group(id, pgid))
    }

    pub fn timed_out(&self, id: i64) -> Result<(), String> {
        let call = RunnerCall::TimedOut { job: id };
        self.record(call, done, |db| db.record_timed_out(id))
    }

    pub fn result(&self, id: i64, result: &RunnerResult) -> Result<(), String> {
        let call = RunnerCall::Result {
            job: id,
            result: *result,
        };
        self.record(call, done, |db| db.record_runner_result(id, result))
    }
}

fn done(a: RunnerAnswer) -> Option<()> {
    matches!(a, RunnerAnswer::Done).then_some(())
}

impl RunnerCall {
    /// Whether the daemon's loop must look at the job after this record (its end).
    pub fn wakes_the_daemon(&self) -> bool {
        matches!(self, RunnerCall::Result { .. })
    }
}

/// The daemon's side: writes a runner's record with the worker's connection.
pub fn answer(db: &Db, call: RunnerCall) -> Result<RunnerAnswer, LiveError> {
    let done = RunnerAnswer::Done;
    Ok(match call {
        RunnerCall::Claim {
            job,
            launch,
            pid,
            start,
            cgroups,
        } => match db.claim_and_read(job, launch, pid, start, cgroups.as_deref())? {
            Claimed::NotCurrent => RunnerAnswer::NotCurrent,
            Claimed::Job(j) => RunnerAnswer::Claimed(Box::new(ClaimedJob::of(*j))),
            Claimed::Damaged(e) => RunnerAnswer::Damaged(e.to_string()),
        },
        RunnerCall::Cgroups { job, dirs } => {
            db.record_job_cgroups(job, &dirs)?;
            done
        }
        RunnerCall::PinError { job, error } => {
            db.record_pin_error(job, &error)?;
            done
        }
        RunnerCall::LaunchFailed { job, why } => {
            db.set_reason(job, &Reason::launch_failed(why))?;
            done
        }
        RunnerCall::Group { job, pgid } => RunnerAnswer::CpuList(db.record_job_group(job, pgid)?),
        RunnerCall::TimedOut { job } => {
            db.record_timed_out(job)?;
            done
        }
        RunnerCall::Result { job, result } => {
            db.record_runner_result(job, &result)?;
            done
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::protocol::{MAX_RESPONSE, read_frame, write_frame};
    use crate::live::store::Launch;
    use crate::live::store::tests::job;
    use crate::model::JobState;

    #[test]
    fn the_daemon_claims_for_its_runner_once_and_records_what_it_sends() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("jobs.db")).unwrap();
        db.insert_jobs(&job("a"), None).unwrap();
        let l = Launch {
            cpu_list: "0",
            gpu_list: "",
            cpus: 1,
            kill_wait_ms: 10,
            rlimit_as: true,
            at_ms: 7,
        };
        let n = db.record_launch(1, &l).unwrap().launch;
        let claim = |pid, start| {
            let call = RunnerCall::Claim {
                job: 1,
                launch: n,
                pid,
                start,
                cgroups: None,
            };
            answer(&db, call).unwrap()
        };
        // What the runner reads back over the socket keeps what a row's wire form leaves out.
        let mut wire = Vec::new();
        write_frame(&mut wire, &Response::Runner(claim(9, Some(3)))).unwrap();
        match read_frame(&mut wire.as_slice(), MAX_RESPONSE).unwrap() {
            Response::Runner(RunnerAnswer::Claimed(j)) => {
                let row = j.into_row();
                assert_eq!(
                    (
                        row.state,
                        row.runner_pid,
                        row.env,
                        row.kill_wait_ms,
                        row.rlimit_as
                    ),
                    (JobState::Running, Some(9), job("a").env, Some(10), true)
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(claim(9, Some(3)), RunnerAnswer::Claimed(_)),
            "the same runner's claim again (its answer lost)"
        );
        assert!(matches!(claim(10, Some(3)), RunnerAnswer::NotCurrent));
        let group = answer(&db, RunnerCall::Group { job: 1, pgid: 44 }).unwrap();
        assert!(matches!(group, RunnerAnswer::CpuList(c) if c == "0"));
        let result = RunnerResult {
            exit_code: Some(3),
            signal: None,
            end_ms: 99,
            usage: Some((1, 2, 3)),
            oom: false,
        };
        let call = RunnerCall::Result { job: 1, result };
        assert!(call.wakes_the_daemon());
        assert!(matches!(answer(&db, call).unwrap(), RunnerAnswer::Done));
        let row = db.job(1).unwrap().unwrap();
        assert_eq!(
            (row.job_pgid, row.exit_code, row.end_ms, row.runner_done),
            (Some(44), Some(3), Some(99), true)
        );
    }
}
