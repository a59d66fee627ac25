//! What each client request does, on the database, for a caller whose identity is known: the
//! daemon's socket server calls it with the identity the kernel reports (`SO_PEERCRED`), a
//! client without a daemon with its own. One implementation, so both agree.
//!
//! Authorization (Slurm's, with `PrivateData=jobs` for the details):
//! - everyone sees every job's queue line (id, name, user, state, resources, times, reason);
//!   the command, working directory and output paths only of their own jobs
//!   ([`JobRow::hide_details`]); the environment never leaves the daemon;
//! - a user cancels their own jobs only ("Access/permission denied" otherwise); root any;
//! - a submission's owner is the caller, so a job runs as whoever submitted it (a uid 0 job
//!   only if root submitted it); negative `--nice` is root's (as in Slurm), and so is a
//!   `--priority` above the scheduler's ceiling ([`Access::max_priority`]), and so is a
//!   `--qos` the accounts file does not grant the caller ([`QosGrants`]; Slurm's "Invalid qos
//!   specification") on a shared scheduler;
//! - `export-trace` exports the caller's own finished jobs (root: all).

use super::client::{
    CancelOutcome, ExpectedStarts, Owner, Submission, SubmitError, Submitted, invalid,
};
pub use super::protocol::MAX_CANCEL;
use super::publish::PlanScope;
use super::store::{ContainStats, DaemonMeta, Db, JobCounts, JobFilter, JobRow, NewJob};
use super::syntax::parse_dependency;
use super::{Home, LiveError, machine, now_ms, output};
use crate::ids::{JobId, Names};
use crate::model::{AssocConfig, ElasticRange, JobState};
use crate::time::{Dur, Time};
use crate::trace::{TraceJob, Workload};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The access rules of a scheduler.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// A shared scheduler (`scheduler --multi-user`, as root): any local user may connect;
    /// jobs write Slurm's `slurm-%j.out` in their submit directory by default.
    pub multi_user: bool,
    /// The highest `--priority` a user other than root may give (`None`: any).
    pub max_priority: Option<i64>,
}

/// Who may use which QOS, from the accounts file (`user`/`account` lines' `qos=`): a user
/// listed in the file gets their association's grant; one not listed, the grant of the account
/// named like their primary group (as fair-share places them); anyone else, none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QosGrants {
    users: BTreeMap<String, Vec<String>>,
    accounts: BTreeMap<String, Vec<String>>,
}

impl QosGrants {
    /// No grants (no accounts file): only root names a QOS.
    pub const NONE: QosGrants = QosGrants {
        users: BTreeMap::new(),
        accounts: BTreeMap::new(),
    };

    /// The grants of an accounts file (`names` resolves its symbols).
    pub fn of(assoc: &AssocConfig, names: &Names) -> QosGrants {
        let resolve = |nodes: &crate::ids::FastMap<crate::ids::Sym, usize>| {
            nodes
                .iter()
                .map(|(&s, &n)| (names.get(s).to_string(), assoc.qos_granted(n).to_vec()))
                .collect()
        };
        QosGrants {
            users: resolve(&assoc.user_node),
            accounts: resolve(&assoc.account_node),
        }
    }

    /// The QOS levels `user` (primary group `group`) may name.
    pub fn of_user(&self, user: &str, group: Option<&str>) -> &[String] {
        self.users
            .get(user)
            .or_else(|| group.and_then(|g| self.accounts.get(g)))
            .map_or(&[], Vec::as_slice)
    }
}

/// The requests of one caller, carried out on a database.
pub struct Service<'a> {
    pub db: &'a mut Db,
    pub home: &'a Home,
    pub access: Access,
    /// Who may name which `--qos` (checked on a shared scheduler).
    pub qos: &'a QosGrants,
    /// Whether a daemon runs for this home (always, when the daemon serves the request).
    pub daemon: bool,
}

fn denied(what: impl std::fmt::Display) -> String {
    format!("{what}: Access/permission denied")
}

impl Service<'_> {
    /// Checks and stores a submission by `who` (its owner, whatever the submission says).
    pub fn submit(&mut self, who: &Owner, mut s: Submission) -> Result<Submitted, SubmitError> {
        s.owner = who.clone();
        if let Some(ceiling) = self.access.max_priority
            && s.priority > ceiling
            && !who.is_root()
        {
            return Err(SubmitError::Live(LiveError::Denied(denied(format!(
                "--priority {}: only root may give a priority above {ceiling}",
                s.priority
            )))));
        }
        if self.access.multi_user && !s.qos.is_empty() && !who.is_root() {
            let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(who.gid))
                .ok()
                .flatten()
                .map(|g| g.name);
            let granted = self.qos.of_user(&who.user, group.as_deref());
            if !granted.contains(&s.qos) {
                return Err(SubmitError::Invalid(format!(
                    "--qos {}: Invalid qos specification (user {} may use: {})",
                    s.qos,
                    who.user,
                    if granted.is_empty() {
                        "none".to_string()
                    } else {
                        granted.join(", ")
                    }
                )));
            }
        }
        if self.access.multi_user && s.output.is_none() {
            s.output = Some(output::slurm_default(s.array.is_some()).to_string());
        }
        let v = s.validate()?;
        let meta = self.db.daemon_meta()?;
        let warnings = Capacity::of(&meta).check(&v.job)?;
        if v.job.elastic.is_some() && meta.executor.as_deref() == Some("slurm") {
            return Err(SubmitError::Invalid(format!(
                "--elastic: {}",
                crate::live::slurm::NO_ELASTIC
            )));
        }
        let mut job = v.job.clone();
        if let Some(d) = &v.dependency {
            let deps = parse_dependency(d)
                .map_err(|e| SubmitError::Invalid(format!("--dependency: {e}")))?;
            for (_, id) in &deps {
                if !self.db.exists(*id)? {
                    return Err(SubmitError::Invalid(format!(
                        "--dependency: job {id} does not exist"
                    )));
                }
            }
            job.dependency = d.clone();
        }
        job.submit_ms = now_ms();
        let array = v.array.as_ref().map(|(t, l)| (t.as_slice(), *l));
        let ids = self.db.insert_jobs(&job, array)?;
        Ok(Submitted { ids, warnings })
    }

    /// The jobs a filter selects, by id, with the details of others' withheld.
    pub fn queue(&self, who: &Owner, filter: &JobFilter) -> Result<Vec<JobRow>, LiveError> {
        let mut rows = self.db.jobs(filter)?;
        self.expected_starts()?.apply(&mut rows);
        for r in rows.iter_mut().filter(|r| !who.may_touch(r)) {
            r.hide_details();
        }
        Ok(rows)
    }

    /// One job, its details withheld unless it is the caller's.
    pub fn job(&self, who: &Owner, id: i64) -> Result<Option<JobRow>, LiveError> {
        let mut row = self.db.job(id)?;
        if let Some(r) = row.as_mut() {
            self.expected_starts()?.apply(std::slice::from_mut(r));
        }
        if let Some(r) = row.as_mut().filter(|r| !who.may_touch(r)) {
            r.hide_details();
        }
        Ok(row)
    }

    /// Cancels the caller's jobs (root: any): a pending job at once when no daemon runs,
    /// otherwise through the daemon; a running job without a daemon through its runner (which
    /// records how it ended). At most [`MAX_CANCEL`] ids, each done once (in the order first
    /// given), in one transaction.
    pub fn cancel(&self, who: &Owner, ids: &[i64]) -> Result<Vec<(i64, CancelOutcome)>, LiveError> {
        if ids.len() > MAX_CANCEL {
            return Err(LiveError::Other(format!(
                "cancel: at most {MAX_CANCEL} job ids at once, {} given",
                ids.len()
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        let ids: Vec<i64> = ids.iter().copied().filter(|id| seen.insert(*id)).collect();
        self.db.in_transaction(|| {
            ids.iter()
                .map(|&id| Ok((id, self.cancel_one(who, id)?)))
                .collect()
        })
    }

    fn cancel_one(&self, who: &Owner, id: i64) -> Result<CancelOutcome, LiveError> {
        let Some(r) = self.db.job(id)? else {
            return Ok(CancelOutcome::NoSuchJob);
        };
        if !who.may_touch(&r) {
            return Ok(CancelOutcome::Denied);
        }
        Ok(match r.state {
            JobState::Pending if !self.daemon => {
                self.db.cancel_pending_now(id, now_ms())?;
                CancelOutcome::Cancelled
            }
            JobState::Pending | JobState::Configuring | JobState::Running => {
                self.db.request_cancel(id)?;
                // Without a daemon, the runner is told directly — only if the recorded pid
                // is still that runner (same start time), never a process that reused it.
                if r.state.is_started()
                    && !self.daemon
                    && let Some(pid) = r.runner_pid
                    && r.runner_start.is_some()
                    && machine::same_process_alive(pid, r.runner_start)
                {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGTERM,
                    );
                }
                CancelOutcome::Cancelling
            }
            other => CancelOutcome::AlreadyEnded(other),
        })
    }

    /// Capacity, usage, enforcement and job counts (the same for everyone).
    /// What the stored expected starts are worth: only a running daemon's plan holds.
    fn expected_starts(&self) -> Result<ExpectedStarts, LiveError> {
        let meta = self.db.daemon_meta()?;
        Ok(ExpectedStarts {
            daemon_running: self.daemon,
            scope: meta.plan.as_deref().and_then(PlanScope::from_name),
        })
    }

    pub fn stats(&self) -> Result<Stats, LiveError> {
        let meta = self.db.daemon_meta()?;
        Ok(Stats {
            daemon_running: self.daemon,
            http: meta.http.clone().filter(|h| self.daemon && !h.is_empty()),
            plan: meta.plan.clone(),
            capacity: Capacity::of(&meta),
            enforcement: meta
                .enforcement
                .clone()
                .unwrap_or_else(|| machine::mem_enforcement().describe()),
            last_fault: meta.last_fault.clone(),
            executor: meta.executor.clone(),
            slurm: meta.slurm.clone(),
            policy: meta.policy,
            contain: self.db.contain_stats()?,
            counts: self.db.job_counts()?,
        })
    }

    /// The jobs that ran and ended: the caller's, all for root.
    pub fn finished(&self, who: &Owner) -> Result<Vec<JobRow>, LiveError> {
        let mut rows = self.db.finished_jobs()?;
        rows.retain(|r| who.may_touch(r));
        Ok(rows)
    }
}

/// The machine submissions are checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    pub cpus: u32,
    pub mem_mb: u64,
    pub gpus: u32,
}

impl Capacity {
    /// The daemon's last configuration, else what this machine has.
    pub(super) fn of(meta: &DaemonMeta) -> Capacity {
        let detected = || machine::detect();
        let (cpus, mem_mb, gpus) = match (meta.cpus, meta.mem_mb, &meta.gpus) {
            (Some(c), Some(m), Some(g)) => (c, m, g.len() as u32),
            _ => {
                let m = detected();
                (
                    meta.cpus.unwrap_or(m.cpus),
                    meta.mem_mb.unwrap_or(m.mem_mb),
                    meta.gpus.as_ref().unwrap_or(&m.gpus).len() as u32,
                )
            }
        };
        Capacity { cpus, mem_mb, gpus }
    }

    /// Whether a job of this size fits this scheduler. An elastic job's `--max-cpus` above
    /// the machine is refused (the message names the flag); a job larger than the machine is
    /// kept — it waits, `ReqNodeNotAvail`, until a scheduler with more starts (the seeds'
    /// guide submits one and expects it pending) — and the returned warnings say so.
    pub(super) fn check(&self, job: &NewJob) -> Result<Vec<String>, SubmitError> {
        let Capacity { cpus, mem_mb, gpus } = *self;
        if let Some((_, hi)) = job.elastic
            && hi > cpus
        {
            return Err(invalid(format!(
                "--max-cpus {hi}: the machine has {cpus} CPUs"
            )));
        }
        let mut over = Vec::new();
        if job.cpus > cpus {
            over.push(format!("--cpus {}: the machine has {cpus} CPUs", job.cpus));
        }
        if job.mem_mb > mem_mb && mem_mb > 0 {
            over.push(format!(
                "--mem {} MB: the machine has {mem_mb} MB",
                job.mem_mb
            ));
        }
        if job.gpus > gpus {
            over.push(format!("--gpus {}: the machine has {gpus} GPUs", job.gpus));
        }
        Ok(over
            .into_iter()
            .map(|o| {
                format!(
                    "{o}: the job stays pending (ReqNodeNotAvail) until a scheduler with more starts"
                )
            })
            .collect())
    }
}

/// Capacity, usage and job counts, for `stats`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Stats {
    pub daemon_running: bool,
    /// The policy the daemon last ran.
    pub policy: Option<String>,
    pub capacity: Capacity,
    /// How memory limits are enforced, in words.
    pub enforcement: String,
    /// Containment, CPU ids and pinning failures.
    pub contain: ContainStats,
    pub counts: JobCounts,
    /// The last fault of the database the daemon recovered from.
    pub last_fault: Option<String>,
    /// The executor the daemon last ran (`process`, `slurm`).
    #[serde(default)]
    pub executor: Option<String>,
    /// The Slurm executor's state in words (cluster as last seen, command failures).
    #[serde(default)]
    pub slurm: Option<String>,
    /// Where the running daemon serves its dashboard, metrics and API (`scheduler --http`).
    #[serde(default)]
    pub http: Option<String>,
    /// Whose start the daemon's policy plans (`PlanScope`'s name).
    #[serde(default)]
    pub plan: Option<String>,
}

impl Stats {
    /// What `stats` says of a home without a database (no job was ever submitted there).
    pub fn without_database() -> Stats {
        Stats {
            daemon_running: false,
            policy: None,
            capacity: Capacity::of(&DaemonMeta::default()),
            enforcement: machine::mem_enforcement().describe(),
            contain: ContainStats::default(),
            counts: JobCounts::default(),
            last_fault: None,
            executor: None,
            slurm: None,
            http: None,
            plan: None,
        }
    }

    /// Mean wait and run time of finished jobs, in seconds.
    pub fn means_s(&self) -> Option<(f64, f64)> {
        let c = &self.counts;
        (c.finished > 0).then(|| {
            let n = c.finished as f64;
            (c.wait_ms as f64 / n / 1000.0, c.run_ms as f64 / n / 1000.0)
        })
    }
}

/// Finished jobs as a workload the simulator replays.
pub fn workload_of(rows: &[JobRow], source: std::path::PathBuf) -> Workload {
    let mut names = Names::default();
    let none = names.intern("");
    let jobs = rows
        .iter()
        .enumerate()
        .map(|(i, r)| TraceJob {
            id: JobId(r.id as u64),
            submit: Time(r.submit_ms),
            runtime: Dur((r.end_ms.unwrap_or(0) - r.start_ms.unwrap_or(0)).max(0)),
            procs: i64::from(r.cpus),
            requested: r.time_limit_ms.map(Dur),
            priority: r.priority,
            user: names.intern(&r.user),
            group: none,
            queue: none,
            partition: none,
            nodes: None,
            mem_mb: (r.mem_mb > 0).then_some(r.mem_mb),
            gpus: r.gpus,
            qos: names.intern(&r.qos),
            nice: r.nice,
            elastic: match (r.min_cpus, r.max_cpus) {
                (Some(min), Some(max)) => Some(ElasticRange { min, max }),
                _ => None,
            },
            speedup: None,
            line: i as u64 + 2,
        })
        .collect();
    Workload {
        source,
        jobs,
        names,
        ..Workload::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A shared scheduler's service on a fresh database, with `accounts` as its accounts file.
    fn submit_qos(accounts: &str, who: &Owner, qos: &str) -> Result<Submitted, SubmitError> {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        let mut db = Db::open(&home.db()).unwrap();
        let mut names = Names::default();
        let assoc =
            crate::config::accounts::parse(accounts, Path::new("acct"), &mut names).unwrap();
        let grants = QosGrants::of(&assoc, &names);
        let mut svc = Service {
            db: &mut db,
            home: &home,
            access: Access {
                multi_user: true,
                max_priority: Some(0),
            },
            qos: &grants,
            daemon: true,
        };
        svc.submit(
            who,
            Submission {
                command: vec!["true".into()],
                cpus: 1,
                qos: qos.into(),
                cwd: "/".into(),
                ..Submission::default()
            },
        )
    }

    #[test]
    fn a_user_names_only_a_granted_qos() {
        let file = "qos high priority=100\nqos low priority=1\naccount lab qos=low\n\
                    user ann account=lab\nuser bo account=lab qos=high,low\n";
        let owner = |user: &str, uid| Owner {
            user: user.into(),
            uid,
            gid: 987_654,
        };
        let (ann, bo, cy) = (owner("ann", 5001), owner("bo", 5002), owner("cy", 5003));
        let refused = |r: Result<Submitted, SubmitError>| match r {
            Err(SubmitError::Invalid(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        };
        let m = refused(submit_qos(file, &ann, "high"));
        assert_eq!(
            m,
            "--qos high: Invalid qos specification (user ann may use: low)"
        );
        assert!(submit_qos(file, &ann, "low").is_ok());
        assert!(submit_qos(file, &ann, "").is_ok());
        assert!(submit_qos(file, &bo, "high").is_ok());
        // Not in the file (and no account named like their group): no QOS at all.
        let m = refused(submit_qos(file, &cy, "low"));
        assert!(m.ends_with("(user cy may use: none)"), "{m}");
        refused(submit_qos("", &ann, "low"));
        // Root names any QOS, even one the file does not define.
        assert!(submit_qos("", &owner("root", 0), "high").is_ok());
    }

    #[test]
    fn a_cancellation_is_bounded_deduplicated_and_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        let mut db = home.open().unwrap();
        let mut svc = Service {
            db: &mut db,
            home: &home,
            access: Access::default(),
            qos: &QosGrants::NONE,
            daemon: true,
        };
        let me = Owner::current();
        let job = Submission {
            command: vec!["true".into()],
            cpus: 1,
            cwd: "/".into(),
            array: Some("1-200".into()),
            ..Submission::default()
        };
        let ids = svc.submit(&me, job).unwrap().ids;
        let wal = || {
            std::fs::metadata(dir.path().join("jobs.db-wal"))
                .unwrap()
                .len()
        };
        let before = wal();
        let mut asked: Vec<i64> = ids.iter().chain(&ids).copied().collect();
        asked.push(999_999);
        let out = svc.cancel(&me, &asked).unwrap();
        assert_eq!(out.len(), ids.len() + 1, "each id once");
        assert_eq!(out[0], (ids[0], CancelOutcome::Cancelling));
        assert_eq!(out[ids.len()], (999_999, CancelOutcome::NoSuchJob));
        // One commit writes each changed page once; one commit per id would write ~200 frames.
        let grown = wal() - before;
        assert!(grown < 64 * 1024, "the WAL grew by {grown} bytes");
        let e = svc.cancel(&me, &vec![1; MAX_CANCEL + 1]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "cancel: at most {MAX_CANCEL} job ids at once, {} given",
                MAX_CANCEL + 1
            )
        );
    }
}
