//! `mini-slurm export-trace --out FILE`: the finished jobs (the caller's own; root: all) as a
//! CSV trace the simulator replays, written by the one CSV trace writer
//! (`trace::write::write_csv`), atomically.

use super::{existing_client, failed};
use crate::commands::CliResult;
use anyhow::Context;
use std::io::Write;

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Where to write the CSV trace
    #[arg(long, value_name = "FILE")]
    out: std::path::PathBuf,
}

pub fn run(a: ExportArgs) -> CliResult {
    let workload = match existing_client()? {
        Some(mut c) => c.finished_workload().map_err(failed)?,
        None => mini_slurm::trace::Workload::default(),
    };
    let tmp = a.out.with_extension("csv.tmp");
    let write = || -> anyhow::Result<()> {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(&tmp)
                .with_context(|| format!("cannot write {}", tmp.display()))?,
        );
        mini_slurm::trace::write::write_csv(&mut f, &workload)?;
        f.flush()?;
        std::fs::rename(&tmp, &a.out)?;
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        failed(e)
    })?;
    eprintln!("wrote {} jobs to {}", workload.jobs.len(), a.out.display());
    Ok(())
}
