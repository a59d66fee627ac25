//! What a restarted daemon does with the jobs recorded started (CONFIGURING or RUNNING). Every
//! point at which the previous daemon may have died leaves a row this resolves, so that each
//! job runs exactly once and nothing of it is left behind (the crash tests stop a daemon at
//! each failpoint, see `failpoint.rs`):
//!
//! - its runner recorded a result: the job ended while no daemon watched, and is finalized
//!   from that record — CANCELLED if its cancellation was asked for, requeued (PENDING again)
//!   if a requeue or suspension was in progress;
//! - its runner still runs (same pid and start time): adopted again by the engine (its
//!   resources held as recorded), the executor (polled instead of waited for) and the store;
//!   a job that no longer fits this daemon's CPUs (restarted with fewer `--cpus`) runs on
//!   unmanaged — the machine is over-committed until it ends, and the daemon says so;
//! - CONFIGURING without a live runner: the launch was recorded but the runner never claimed
//!   it (or was never forked), so the job never started: it waits in the queue again, and a
//!   late runner of that launch finds it no longer CONFIGURING and exits;
//! - RUNNING without a live runner and without a record: what is left of the job is killed
//!   (cgroups, process group, environment marker) and it ends FAILED with reason `NodeFail`
//!   (requeued instead if a preemption was in progress).

use super::executor::{Adopted, Ledger, ProcessExecutor};
use super::machine::same_process_alive;
use super::sqlite_store::{SqliteStore, final_of};
use super::store::JobRow;
use super::syntax::parse_cpu_list;
use super::{LiveError, now_ms};
use crate::engine::Engine;
use crate::ids::JobId;
use crate::model::{JobState, Slice};
use crate::time::{Dur, Time};
use std::sync::Arc;

/// Adopts, finalizes, requeues or queues again every job recorded started.
pub(super) fn recover<L: Ledger>(
    store: &mut SqliteStore,
    exec: &mut ProcessExecutor<L>,
    engine: &mut Engine,
) -> Result<(), LiveError> {
    let (rows, bad) = store.db().started_jobs()?;
    for b in &bad {
        live_log!("mini-slurm: job {}: {}: failing it", b.id, b.why);
        store.db().fail_bad_row(b, now_ms())?;
    }
    for row in rows {
        let job = JobId(row.id as u64);
        let requeue = matches!(row.preempting.as_deref(), Some("requeue" | "suspend"));
        let alive = row
            .runner_pid
            .is_some_and(|p| same_process_alive(p, row.runner_start));
        if alive && !row.runner_done {
            adopt(store, exec, engine, &row)?;
            continue;
        }
        if row.state == JobState::Configuring && !row.runner_done {
            store.db().relaunch_later(row.id)?;
            continue;
        }
        if !row.runner_done {
            exec.kill_remains(job);
        }
        if requeue {
            store.db().record_requeue(row.id)?;
            continue;
        }
        let (state, reason) = final_of(&row);
        store.db().record_end(row.id, state, now_ms(), &reason)?;
    }
    Ok(())
}

/// Takes a job whose runner survived back: into the engine if it fits, else unmanaged.
fn adopt<L: Ledger>(
    store: &mut SqliteStore,
    exec: &mut ProcessExecutor<L>,
    engine: &mut Engine,
    row: &JobRow,
) -> Result<(), LiveError> {
    let job = JobId(row.id as u64);
    // A preemption the previous daemon began but did not carry out is forgotten: the policy
    // decides again.
    if row.preempting.is_some() {
        store.db().record_preempting(row.id, None)?;
    }
    let spec = Arc::new(store.spec_of(row));
    let cpus = row.alloc_cpus.unwrap_or(row.cpus);
    let alloc: Arc<[Slice]> = vec![Slice {
        gpu_mask: exec.gpu_mask(&row.gpu_list),
        ..Slice::new(0, cpus, row.gpus)
    }]
    .into();
    let start = Time(row.start_ms.unwrap_or_else(now_ms));
    let managed = match engine.adopt_running(spec, start, alloc) {
        Ok(()) => true,
        Err(e) => {
            live_log!(
                "mini-slurm: job {job} ({cpus} CPUs) keeps running but no longer fits this \
                 scheduler ({e}): the machine is over-committed until it ends"
            );
            false
        }
    };
    exec.adopt(Adopted {
        job,
        runner_pid: row.runner_pid.unwrap_or(0),
        runner_start: row.runner_start,
        cpus: parse_cpu_list(&row.cpu_list),
        deadline: row.time_limit_ms.map(|l| start + Dur(l)),
        elastic: row.min_cpus.is_some(),
        resize_signal: row.resize_signal,
        generation: row.resizes.max(0) as u32,
        managed,
    });
    if managed {
        store.handed_over(row);
    }
    Ok(())
}
