//! What a daemon restarted with the Slurm executor does with the jobs recorded started
//! (CONFIGURING or RUNNING), so that each job is submitted once:
//!
//! - its Slurm id is recorded: adopted (engine, executor, store); the next poll tells whether
//!   it still runs or ended while no daemon watched, and how;
//! - no id recorded (the daemon died between recording the launch and recording the id): its
//!   launch's token is looked up in `squeue` and `sacct`; found, the id is recorded and the job
//!   adopted; not found, Slurm never received that launch, and the job waits in the queue again
//!   (a late `sbatch` of the old launch cannot happen: the daemon that ran it is gone).
//!
//! A job whose recorded nodes this daemon's cluster no longer has (another `--partition`)
//! runs on unmanaged: followed and cancellable, its end recorded, outside the engine. A
//! preemption in progress is forgotten (the policy decides again), as in process mode.

use super::executor::{SlurmExecutor, Tracked};
use super::token;
use crate::engine::Engine;
use crate::ids::JobId;
use crate::live::sqlite_store::SqliteStore;
use crate::live::store::{JobRow, Reason, SlurmRecord};
use crate::live::{LiveError, now_ms};
use crate::model::{FinalState, JobState, Slice};
use crate::time::Time;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Adopts or queues again every job recorded started.
pub(in crate::live) fn recover(
    store: &mut SqliteStore,
    exec: &mut SlurmExecutor,
    engine: &mut Engine,
) -> Result<(), LiveError> {
    let mut started: Vec<(JobRow, SlurmRecord)> = Vec::new();
    for row in crate::live::recovery::started_rows(store)? {
        if let Some(rec) = exec.db().slurm_record(row.id)? {
            started.push((row, rec));
        }
    }
    let found = lookup_tokens(exec, &started)?;
    for (row, rec) in started {
        let id = row.id;
        let slurm_id = match rec.slurm_job_id {
            Some(s) => s,
            None => match found.get(&id) {
                Some(&s) => {
                    exec.db().record_slurm_id(id, rec.launch, s)?;
                    s
                }
                None if row.state == JobState::Configuring => {
                    store.db().relaunch_later(id)?;
                    continue;
                }
                None => {
                    let why = Reason::runner_lost();
                    store
                        .db()
                        .record_end(id, FinalState::NodeFail, now_ms(), &why)?;
                    continue;
                }
            },
        };
        adopt(store, exec, engine, &row, &rec, slurm_id)?;
    }
    Ok(())
}

/// The Slurm ids of the launches whose id was never recorded, found by their tokens.
fn lookup_tokens(
    exec: &SlurmExecutor,
    started: &[(JobRow, SlurmRecord)],
) -> Result<BTreeMap<i64, u64>, LiveError> {
    let wanted: BTreeMap<String, i64> = started
        .iter()
        .filter(|(_, r)| r.slurm_job_id.is_none())
        .map(|(row, r)| (token(&exec.tag, row.id, r.launch), row.id))
        .collect();
    let mut found = BTreeMap::new();
    if wanted.is_empty() {
        return Ok(found);
    }
    let names: Vec<String> = wanted.keys().cloned().collect();
    let unreachable =
        |e: super::cli::SlurmError| LiveError::Other(format!("re-adopting jobs from Slurm: {e}"));
    let mut listed = exec.cli.squeue_names(&names).map_err(unreachable)?;
    if let Some(acct) = exec
        .cli
        .sacct(&[format!("--name={}", names.join(","))])
        .map_err(unreachable)?
    {
        listed.extend(acct);
    }
    for j in listed {
        if let Some(&id) = wanted.get(&j.name) {
            found.insert(id, j.id);
        }
    }
    Ok(found)
}

/// The recorded allocation (`node:cpus:gpus:gpu_mask,...`) on this cluster; `None` if a node
/// is not in it any more.
fn slices(engine: &Engine, alloc: &str) -> Option<Vec<Slice>> {
    alloc
        .split(',')
        .map(|part| {
            let mut f = part.split(':');
            let node = engine.cluster().node_by_name(f.next()?)?;
            let cpus = f.next()?.parse().ok()?;
            let gpus = f.next()?.parse().ok()?;
            let gpu_mask = f.next()?.parse().ok()?;
            Some(Slice {
                gpu_mask,
                ..Slice::new(node, cpus, gpus)
            })
        })
        .collect()
}

fn adopt(
    store: &mut SqliteStore,
    exec: &mut SlurmExecutor,
    engine: &mut Engine,
    row: &JobRow,
    rec: &SlurmRecord,
    slurm_id: u64,
) -> Result<(), LiveError> {
    let job = JobId(row.id as u64);
    if row.preempting.is_some() {
        store.db().record_preempting(row.id, None)?;
    }
    let spec = Arc::new(store.spec_of(row));
    let start = Time(row.start_ms.unwrap_or_else(now_ms));
    let managed = match slices(engine, &rec.alloc) {
        Some(alloc) => match engine.adopt_running(spec, start, alloc.into()) {
            Ok(()) => true,
            Err(e) => {
                live_log!(
                    "mini-slurm: job {job} (Slurm job {slurm_id}) runs on outside this scheduler's cluster ({e})"
                );
                false
            }
        },
        None => {
            live_log!(
                "mini-slurm: job {job} (Slurm job {slurm_id}) runs on nodes outside this scheduler's cluster ({})",
                rec.alloc
            );
            false
        }
    };
    let mut t = Tracked::new(slurm_id, rec.launch, managed);
    t.last = rec.state.clone();
    exec.adopt(job, t);
    if managed {
        store.handed_over(row);
    }
    Ok(())
}
