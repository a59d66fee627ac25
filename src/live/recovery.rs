//! What a restarted daemon does with the jobs recorded RUNNING: a job whose runner still runs
//! (same pid and start time) and has recorded no result is adopted again, by the engine (its
//! resources held as recorded), the executor (polled instead of waited for) and the store; a
//! job that ended meanwhile is finalized from what its runner recorded; a job whose runner
//! vanished without a record has what is left of it killed and ends FAILED with reason
//! `NodeFail`.

use super::executor::{Adopted, Ledger, ProcessExecutor};
use super::machine::same_process_alive;
use super::sqlite_store::{SqliteStore, final_of};
use super::syntax::parse_cpu_list;
use super::{LiveError, now_ms};
use crate::engine::Engine;
use crate::ids::JobId;
use crate::model::Slice;
use crate::time::{Dur, Time};
use std::sync::Arc;

/// Adopts or finalizes every job recorded running.
pub(super) fn recover<L: Ledger>(
    store: &mut SqliteStore,
    exec: &mut ProcessExecutor<L>,
    engine: &mut Engine,
) -> Result<(), LiveError> {
    let (rows, bad) = store.db().started_jobs()?;
    for b in &bad {
        eprintln!("mini-slurm: job {}: {}: failing it", b.id, b.why);
        store.db().fail_bad_row(b, now_ms())?;
    }
    for row in rows {
        let alive = row
            .runner_pid
            .is_some_and(|p| same_process_alive(p, row.runner_start));
        if row.runner_done || !alive {
            if !row.runner_done {
                exec.kill_remains(JobId(row.id as u64));
            }
            let (state, reason) = final_of(&row);
            store.db().record_end(row.id, state, now_ms(), &reason)?;
            continue;
        }
        let spec = Arc::new(store.spec_of(&row));
        let alloc: Arc<[Slice]> = vec![Slice {
            gpu_mask: exec.gpu_mask(&row.gpu_list),
            ..Slice::new(0, row.alloc_cpus.unwrap_or(row.cpus), row.gpus)
        }]
        .into();
        let start = Time(row.start_ms.unwrap_or_else(now_ms));
        engine
            .adopt_running(spec, start, alloc)
            .map_err(|e| LiveError::Other(e.to_string()))?;
        exec.adopt(Adopted {
            job: JobId(row.id as u64),
            runner_pid: row.runner_pid.unwrap_or(0),
            runner_start: row.runner_start,
            cpus: parse_cpu_list(&row.cpu_list),
            deadline: row.time_limit_ms.map(|l| start + Dur(l)),
            elastic: row.min_cpus.is_some(),
            resize_signal: row.resize_signal,
            generation: row.resizes.max(0) as u32,
        });
        store.handed_over(&row);
    }
    Ok(())
}
