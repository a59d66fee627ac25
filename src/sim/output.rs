//! Writing a run's outputs: `jobs.csv` and `summary.json` (docs/output-schema.md), and any other
//! report file, through temporary names renamed into place, so a failure never leaves a
//! half-written file where a finished one is expected. The summary can be computed on a second
//! thread while `jobs.csv` is written ([`write_run_with`]), and `jobs.csv` begun while the
//! simulation runs ([`OutDir`]).

use super::SimError;
use super::setup::{Prepared, Run};
use crate::metrics::{RowStream, SimResult, Summary, write_jobs_csv_header, write_jobs_csv_rows};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `run`'s `jobs.csv` and `summary.json` into `dir` (created if needed). Both go through
/// temporary names and are renamed into place; on failure neither is left half-written, and the
/// directories this call created are removed.
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
    OutDir::create(dir)?.write_run(prepared, result, None, summary)
}

/// A run's output directory while its files are written: until [`OutDir::write_run`] has
/// renamed them into place, dropping it removes the temporary files, and the directories
/// [`OutDir::create`] created (the outermost one that was missing, with what is in it). Opened before a simulation, it takes `jobs.csv` while the
/// simulation runs ([`OutDir::jobs_csv`], [`crate::sim::Setup::simulate_streamed_to`]).
pub struct OutDir {
    dir: PathBuf,
    /// The outermost directory `create` made, if any.
    created: Option<PathBuf>,
    done: bool,
}

impl OutDir {
    /// Creates `dir` (and its parents) if needed.
    pub fn create(dir: &Path) -> Result<OutDir, SimError> {
        let created = dir
            .ancestors()
            .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
            .last()
            .map(Path::to_path_buf);
        create_dir(dir)?;
        Ok(OutDir {
            dir: dir.to_path_buf(),
            created,
            done: false,
        })
    }

    fn jobs_tmp(&self) -> PathBuf {
        self.dir.join(".jobs.csv.tmp")
    }

    fn summary_tmp(&self) -> PathBuf {
        self.dir.join(".summary.json.tmp")
    }

    /// `jobs.csv`'s temporary file, created empty, buffered.
    pub fn jobs_csv(&self) -> Result<Box<dyn Write + Send>, SimError> {
        let path = self.jobs_tmp();
        match std::fs::File::create(&path) {
            Ok(f) => Ok(Box::new(std::io::BufWriter::new(f))),
            Err(source) => Err(SimError::Write { path, source }),
        }
    }

    /// Writes `jobs.csv` and `summary.json` and renames them into place. `rows` is the writer
    /// of a simulation that wrote the header and the first rows of `jobs.csv` while it ran:
    /// the rest follow them; without it, the file is written whole. `summary` is computed on
    /// another thread meanwhile, and returned.
    pub fn write_run(
        mut self,
        prepared: &Prepared,
        result: &SimResult,
        rows: Option<RowStream>,
        summary: impl FnOnce() -> Summary + Send,
    ) -> Result<Summary, SimError> {
        let (jobs_tmp, summary_tmp) = (self.jobs_tmp(), self.summary_tmp());
        let cannot_write = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SimError::Write { path, source }
        };
        let (names, cluster) = (&prepared.names, &prepared.jobs.cluster);
        let summary = std::thread::scope(|s| {
            let summary = s.spawn(summary);
            let written = match self.rows_written(rows, result) {
                Ok((mut w, from)) => {
                    write_jobs_csv_rows(&mut w, &result.jobs[from..], names, cluster)
                        .and_then(|()| w.flush())
                        .map_err(cannot_write(&jobs_tmp))
                }
                Err(e) => Err(e),
            };
            // A panic computing the summary is a bug: carry it on.
            let summary = summary
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            written.map(|()| summary)
        })?;
        std::fs::write(&summary_tmp, summary.to_json()).map_err(cannot_write(&summary_tmp))?;
        std::fs::rename(&jobs_tmp, self.dir.join("jobs.csv"))?;
        std::fs::rename(&summary_tmp, self.dir.join("summary.json"))?;
        self.done = true;
        Ok(summary)
    }

    /// The writer of `jobs.csv` after its header and the rows `rows` wrote, and how many rows
    /// that is: those rows must be the first of `result`'s (they are, for a streamed trace:
    /// its ids increase), else the file is written afresh.
    fn rows_written(
        &self,
        rows: Option<RowStream>,
        result: &SimResult,
    ) -> Result<(Box<dyn Write + Send>, usize), SimError> {
        let jobs_tmp = self.jobs_tmp();
        if let Some(rows) = rows {
            let (n, last) = rows.taken();
            let first_rows =
                n <= result.jobs.len() && (n == 0 || Some(result.jobs[n - 1].spec.id) == last);
            let written = rows.finish().map_err(|source| SimError::Write {
                path: jobs_tmp.clone(),
                source,
            })?;
            if first_rows {
                return Ok(written);
            }
        }
        let mut w = self.jobs_csv()?;
        write_jobs_csv_header(&mut w).map_err(|source| SimError::Write {
            path: jobs_tmp,
            source,
        })?;
        Ok((w, 0))
    }
}

impl Drop for OutDir {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(self.jobs_tmp());
            let _ = std::fs::remove_file(self.summary_tmp());
            if let Some(top) = &self.created {
                let _ = std::fs::remove_dir_all(top);
            }
        }
    }
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
