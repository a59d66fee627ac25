//! Writing a run's outputs: `jobs.csv` and `summary.json` (docs/output-schema.md), and any other
//! report file, through temporary names renamed into place, so a failure never leaves a
//! half-written file where a finished one is expected. The summary can be computed on a second
//! thread while `jobs.csv` is written ([`write_run_with`]).

use super::SimError;
use super::setup::{Prepared, Run};
use crate::metrics::{SimResult, Summary, write_jobs_csv};
use std::io::Write;
use std::path::Path;

/// Writes `run`'s `jobs.csv` and `summary.json` into `dir` (created if needed). Both go through
/// temporary names and are renamed into place; on failure neither is left half-written, and a
/// directory this call created is removed.
pub fn write_run(dir: &Path, prepared: &Prepared, run: &Run) -> Result<(), SimError> {
    write_run_with(dir, prepared, &run.result, || run.summary.clone()).map(|_| ())
}

/// [`write_run`] for a result whose summary is still to be computed: `summary` computes it on
/// another thread while `jobs.csv` is written (the summary of a 1M-job run is a tenth of a
/// second), and the summary is returned.
pub fn write_run_with(
    dir: &Path,
    prepared: &Prepared,
    result: &SimResult,
    summary: impl FnOnce() -> Summary + Send,
) -> Result<Summary, SimError> {
    let created = !dir.exists();
    create_dir(dir)?;
    let jobs_tmp = dir.join(".jobs.csv.tmp");
    let summary_tmp = dir.join(".summary.json.tmp");
    let cannot_write = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SimError::Write { path, source }
    };
    let r = std::thread::scope(|s| {
        let summary = s.spawn(summary);
        let f = std::fs::File::create(&jobs_tmp).map_err(cannot_write(&jobs_tmp))?;
        let mut w = std::io::BufWriter::new(f);
        let written = write_jobs_csv(&mut w, result, &prepared.names, &prepared.jobs.cluster)
            .and_then(|()| w.flush())
            .map_err(cannot_write(&jobs_tmp));
        // A panic computing the summary is a bug: carry it on.
        let summary = summary
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        written?;
        std::fs::write(&summary_tmp, summary.to_json()).map_err(cannot_write(&summary_tmp))?;
        std::fs::rename(&jobs_tmp, dir.join("jobs.csv"))?;
        std::fs::rename(&summary_tmp, dir.join("summary.json"))?;
        Ok(summary)
    });
    if r.is_err() {
        let _ = std::fs::remove_file(&jobs_tmp);
        let _ = std::fs::remove_file(&summary_tmp);
        if created {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    r
}

/// Writes `text` to `path` through a temporary file (`path` with the extension `tmp`).
pub fn write_file(path: &Path, text: &str) -> Result<(), SimError> {
    let tmp = path.with_extension("tmp");
    let cannot_write = |source| SimError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, text).map_err(cannot_write)?;
    std::fs::rename(&tmp, path).map_err(cannot_write)
}

/// Writes `bytes` to `path` directly (a PNG beside its SVG).
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), SimError> {
    std::fs::write(path, bytes).map_err(|source| SimError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Creates `dir` and its parents; `SimError::Create` names it on failure.
pub fn create_dir(dir: &Path) -> Result<(), SimError> {
    std::fs::create_dir_all(dir).map_err(|source| SimError::Create {
        path: dir.to_path_buf(),
        source,
    })
}
