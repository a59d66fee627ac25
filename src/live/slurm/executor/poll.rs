//! The executor's view of Slurm: one poll per interval (`squeue` for every job followed,
//! `sacct` for those it no longer lists), what each state means for the job, jobs Slurm
//! forgot, the periodic re-read of the nodes, and the count of failed commands for `stats`.

use super::{FIRST_WAIT, MAX_WAIT, SlurmExecutor};
use crate::driver::Completion;
use crate::ids::JobId;
use crate::live::executor::reaped;
use crate::live::slurm::REFRESH;
use crate::live::slurm::cli::SlurmError;
use crate::live::slurm::parse::{JobStatus, SlurmState};
use crate::live::store::{Reason, ReasonCode};
use crate::model::FinalState;
use crate::time::{Dur, Time};
use std::collections::BTreeMap;

/// Failures of Slurm's commands, for `stats`.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Per command: failures so far and the latest one's text.
    per_cmd: BTreeMap<&'static str, (u64, String)>,
    pub(super) changed: bool,
}

impl Faults {
    pub(super) fn failed(&mut self, e: &SlurmError) {
        let entry = self.per_cmd.entry(e.cmd()).or_default();
        if entry.0 == 0 || entry.1 != e.to_string() {
            live_log!("mini-slurm: {e} (retrying)");
        }
        entry.0 += 1;
        entry.1 = e.to_string();
        self.changed = true;
    }
    /// One line for `stats`: `squeue: 3 failures (latest: ...)`, or `no failures`.
    pub fn describe(&self) -> String {
        if self.per_cmd.is_empty() {
            return "no command failures".into();
        }
        self.per_cmd
            .iter()
            .map(|(cmd, (n, last))| format!("{cmd}: {n} failures (latest: {last})"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}
impl SlurmExecutor {
    /// One poll: squeue for every tracked job, sacct for those squeue no longer lists.
    pub(super) fn poll(&mut self, now: Time, out: &mut Vec<Completion>) {
        self.scancel_due();
        self.record_unrecorded();
        let ids: Vec<u64> = self.jobs.values().map(|t| t.slurm_id).collect();
        let listed = match self.cli.squeue_ids(&ids) {
            Ok(l) => l,
            Err(e) => return self.poll_failed(now, &e),
        };
        let mut by_id: BTreeMap<u64, JobStatus> = listed.into_iter().map(|j| (j.id, j)).collect();
        let missing: Vec<u64> = ids
            .iter()
            .filter(|i| !by_id.contains_key(i))
            .copied()
            .collect();
        if !missing.is_empty() {
            let list = missing.iter().map(u64::to_string).collect::<Vec<_>>();
            match self.cli.sacct(&["-j".into(), list.join(",")]) {
                Ok(Some(acct)) => by_id.extend(acct.into_iter().map(|j| (j.id, j))),
                Ok(None) => {}
                Err(e) => self.faults.failed(&e),
            }
        }
        let jobs: Vec<(JobId, u64)> = self.jobs.iter().map(|(j, t)| (*j, t.slurm_id)).collect();
        for (job, sid) in jobs {
            match by_id.get(&sid) {
                Some(status) => self.observe(now, job, status, out),
                None => self.missing(now, job, out),
            }
        }
        self.poll_wait = FIRST_WAIT;
        self.next_poll = now + self.poll_every;
    }

    fn poll_failed(&mut self, now: Time, e: &SlurmError) {
        self.faults.failed(e);
        self.next_poll = now + self.poll_wait;
        self.poll_wait = Dur((self.poll_wait.0 * 2).min(MAX_WAIT.0));
    }

    /// Slurm ids the database refused before.
    fn record_unrecorded(&mut self) {
        for (job, t) in self.jobs.iter_mut().filter(|(_, t)| t.unrecorded) {
            if self
                .db
                .record_slurm_id(job.0 as i64, t.launch, t.slurm_id)
                .is_ok()
            {
                t.unrecorded = false;
            }
        }
    }

    /// What a poll says of one job.
    fn observe(&mut self, now: Time, job: JobId, s: &JobStatus, out: &mut Vec<Completion>) {
        let id = job.0 as i64;
        let Some(t) = self.jobs.get_mut(&job) else {
            return;
        };
        t.missing_since = None;
        let shown = match s.state {
            SlurmState::Waiting if s.reason != "None" => format!("{} ({})", s.state_text, s.reason),
            _ => s.state_text.clone(),
        };
        match &s.state {
            SlurmState::Ended(fs) => {
                let state = match (*fs, t.stop) {
                    // Cancelled by mini-slurm: for a preemption, or as asked.
                    (FinalState::Cancelled, Some(why)) => why,
                    (fs, _) => fs,
                };
                let exit = (s.exit.code, s.exit.signal);
                let r = self.db.record_slurm_end(id, &shown, exit, None, now.0);
                if let Err(e) = r {
                    live_log!("mini-slurm: job {job}: cannot record its end yet: {e}");
                    return;
                }
                self.finish(now, job, state, out);
            }
            SlurmState::Unknown(text) => {
                if self.unknown_seen.insert((s.id, text.clone())) {
                    live_log!(
                        "mini-slurm: job {job}: Slurm job {} is in a state this version does not know ('{text}'); asking again",
                        s.id
                    );
                }
            }
            active => {
                if t.last.as_deref() != Some(shown.as_str()) {
                    let running = *active == SlurmState::Running;
                    if self
                        .db
                        .record_slurm_state(id, &shown, running, now.0)
                        .is_ok()
                    {
                        t.last = Some(shown);
                    }
                }
            }
        }
    }

    /// A job neither squeue nor sacct knows: failed only once it has been so for
    /// `lost_after` (a controller restarting may briefly forget nothing, but lists nothing).
    fn missing(&mut self, now: Time, job: JobId, out: &mut Vec<Completion>) {
        let lost_after = self.lost_after;
        let Some(t) = self.jobs.get_mut(&job) else {
            return;
        };
        let since = *t.missing_since.get_or_insert(now);
        if now - since < lost_after {
            return;
        }
        let why = Reason {
            code: ReasonCode::NodeFail,
            detail: Some(format!(
                "Slurm job {} is in neither squeue nor sacct",
                t.slurm_id
            )),
        };
        let id = job.0 as i64;
        let state = t.stop.unwrap_or(FinalState::NodeFail);
        if let Err(e) = self
            .db
            .record_slurm_end(id, "UNKNOWN", (None, None), Some(&why), now.0)
        {
            live_log!("mini-slurm: job {job}: cannot record its end yet: {e}");
            return;
        }
        live_log!("mini-slurm: job {job}: {}", why);
        self.finish(now, job, state, out);
    }

    /// A job is over: to the engine, or recorded directly for a job the engine does not hold.
    fn finish(&mut self, now: Time, job: JobId, state: FinalState, out: &mut Vec<Completion>) {
        let Some(t) = self.jobs.remove(&job) else {
            return;
        };
        if !t.managed {
            let _ = self
                .db
                .record_end(job.0 as i64, state, now.0, &Reason::NONE);
            return;
        }
        out.push(reaped(job, now, state, t.preempt));
    }

    /// Reads the nodes again: logs those that went down or came back and what jobs outside
    /// mini-slurm hold, for `stats`.
    pub(super) fn refresh(&mut self, now: Time) {
        self.next_refresh = now + REFRESH;
        let nodes = match self.cli.nodes() {
            Ok(n) => n,
            Err(e) => return self.faults.failed(&e),
        };
        let ours: BTreeMap<&str, u32> = self
            .cluster
            .nodes
            .iter()
            .map(|n| (n.name.as_str(), 0))
            .collect();
        let mine: Vec<_> = nodes
            .iter()
            .filter(|n| ours.contains_key(n.name.as_str()))
            .collect();
        let down: Vec<&str> = mine
            .iter()
            .filter(|n| !n.usable())
            .map(|n| n.name.as_str())
            .collect();
        let alloc: u32 = mine.iter().map(|n| n.cpus_alloc).sum();
        let text = format!(
            "{} nodes in partition {}, {} not usable{}; {} CPUs allocated by Slurm",
            mine.len(),
            self.partition,
            down.len(),
            if down.is_empty() {
                String::new()
            } else {
                format!(" ({})", down.join(","))
            },
            alloc
        );
        if text != self.nodes_seen {
            if !down.is_empty() {
                live_log!("mini-slurm: Slurm nodes not usable now: {}", down.join(","));
            }
            self.nodes_seen = text;
            self.faults.changed = true;
        }
    }
}
