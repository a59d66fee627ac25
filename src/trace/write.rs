//! Writing a [`Workload`] back out: SWF and mini-slurm CSV (what `trace convert` and
//! `trace gen` produce). Reading what was written gives back every field the simulator uses.
//!
//! - **CSV**: `# MaxProcs: N` when the machine size is known, then a header with `id`,
//!   `submit`, `runtime`, `cpus`, `walltime`, `user`, and only those optional columns some job
//!   uses (`group`, `priority`, `mem`, `gpus`, `nodes`, `partition`, `queue`, `qos`, `nice`,
//!   `min_cpus`, `max_cpus`, `speedup`).
//! - **SWF**: a header (`; MaxProcs`, `; MaxJobs`, ...) and 18 fields per job. SWF's user, group,
//!   queue and partition are numbers: names that are numbers are kept, other names get the
//!   numbers no name uses, from 1, in order of first appearance. Fields the simulator does not
//!   read are `-1`. Memory, GPUs, node counts, QOS, nice and elastic ranges have no SWF field:
//!   [`swf_dropped`] says which of them a workload would lose.
//!
//! Times are whole seconds where they are whole, else seconds with three decimals (both
//! readers keep milliseconds).

use super::{TraceJob, Workload};
use crate::ids::{Names, Sym};
use crate::time::fmt_millis;
use std::collections::BTreeSet;
use std::io::{self, Write};

/// Seconds, as short as exact.
fn secs(ms: i64) -> String {
    if ms % 1000 == 0 {
        (ms / 1000).to_string()
    } else {
        fmt_millis(ms)
    }
}

/// A CSV field, quoted when it needs it (RFC 4180; also a leading `#`, which readers of
/// mini-slurm CSV take for a comment). The one CSV quoting rule of the project.
pub fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with('#') {
        std::borrow::Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// Writes `w` as mini-slurm CSV.
pub fn write_csv(out: &mut dyn Write, w: &Workload) -> io::Result<()> {
    let name = |s: Sym| w.names.get(s);
    let any = |f: &dyn Fn(&TraceJob) -> bool| w.jobs.iter().any(f);
    let has_group = any(&|j| !name(j.group).is_empty());
    let has_priority = any(&|j| j.priority != 0);
    let has_mem = any(&|j| j.mem_mb.is_some());
    let has_gpus = any(&|j| j.gpus > 0);
    let has_nodes = any(&|j| j.nodes.is_some());
    // SWF partitions are numbers and sacct's are read as attributes: written, they would name
    // partitions a cluster description does not have, and the jobs would be skipped.
    let has_partition = w.partitions_named && any(&|j| !name(j.partition).is_empty());
    let has_queue = any(&|j| !name(j.queue).is_empty());
    let has_qos = any(&|j| !name(j.qos).is_empty());
    let has_nice = any(&|j| j.nice != 0);
    let has_elastic = any(&|j| j.elastic.is_some());
    let has_speedup = any(&|j| j.speedup.is_some());
    if let Some(p) = w.declared_procs {
        writeln!(out, "# MaxProcs: {p}")?;
    }
    let mut header = String::from("id,submit,runtime,cpus,walltime,user");
    for (on, col) in [
        (has_group, "group"),
        (has_priority, "priority"),
        (has_mem, "mem"),
        (has_gpus, "gpus"),
        (has_nodes, "nodes"),
        (has_partition, "partition"),
        (has_queue, "queue"),
        (has_qos, "qos"),
        (has_nice, "nice"),
        (has_elastic, "min_cpus"),
        (has_elastic, "max_cpus"),
        (has_speedup, "speedup"),
    ] {
        if on {
            header.push(',');
            header.push_str(col);
        }
    }
    writeln!(out, "{header}")?;
    let mut line = String::with_capacity(96);
    for j in &w.jobs {
        use std::fmt::Write as _;
        line.clear();
        let _ = write!(
            line,
            "{},{},{},{},{},{}",
            j.id,
            secs(j.submit.0),
            if j.runtime.0 < 0 {
                "-1".to_string()
            } else {
                secs(j.runtime.0)
            },
            j.procs,
            j.requested.map_or(String::new(), |r| secs(r.0)),
            csv_field(name(j.user)),
        );
        if has_group {
            let _ = write!(line, ",{}", csv_field(name(j.group)));
        }
        if has_priority {
            let _ = write!(line, ",{}", j.priority);
        }
        if has_mem {
            let _ = write!(
                line,
                ",{}",
                j.mem_mb.map_or(String::new(), |m| m.to_string())
            );
        }
        if has_gpus {
            let _ = write!(line, ",{}", j.gpus);
        }
        if has_nodes {
            let _ = write!(
                line,
                ",{}",
                j.nodes.map_or(String::new(), |n| n.to_string())
            );
        }
        for (on, s) in [
            (has_partition, j.partition),
            (has_queue, j.queue),
            (has_qos, j.qos),
        ] {
            if on {
                let _ = write!(line, ",{}", csv_field(name(s)));
            }
        }
        if has_nice {
            let _ = write!(line, ",{}", j.nice);
        }
        if has_elastic {
            match j.elastic {
                Some(e) => {
                    let _ = write!(line, ",{},{}", e.min, e.max);
                }
                None => line.push_str(",,"),
            }
        }
        if has_speedup {
            let _ = write!(
                line,
                ",{}",
                j.speedup.map_or(String::new(), |s| s.to_string())
            );
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

/// Numbers for the names of one SWF field: numeric names keep their number, the others get
/// the smallest unused numbers from 1 in order of first appearance; the empty name is -1.
fn numbering(names: &Names, syms: impl Iterator<Item = Sym> + Clone) -> Vec<i64> {
    let mut out = vec![-1i64; names.len()];
    let mut used: BTreeSet<i64> = BTreeSet::new();
    for s in syms.clone() {
        // Only a name that is exactly a number's spelling keeps it (`007` and `7` stay apart).
        if let Ok(n) = names.get(s).parse::<i64>()
            && n.to_string() == names.get(s)
        {
            used.insert(n);
            if let Some(o) = out.get_mut(s.0 as usize) {
                *o = n;
            }
        }
    }
    let mut next = 1i64;
    let mut done = vec![false; names.len()];
    for s in syms {
        let i = s.0 as usize;
        let name = names.get(s);
        let canonical = name.parse::<i64>().is_ok_and(|n| n.to_string() == name);
        if name.is_empty() || canonical || done.get(i) != Some(&false) {
            continue;
        }
        while used.contains(&next) {
            next += 1;
        }
        used.insert(next);
        out[i] = next;
        done[i] = true;
    }
    out
}

/// The fields of `w` an SWF file cannot hold, by CSV column name.
pub fn swf_dropped(w: &Workload) -> Vec<&'static str> {
    let mut v = Vec::new();
    let any = |f: &dyn Fn(&TraceJob) -> bool| w.jobs.iter().any(f);
    for (on, col) in [
        (any(&|j| j.mem_mb.is_some()), "mem"),
        (any(&|j| j.gpus > 0), "gpus"),
        (any(&|j| j.nodes.is_some()), "nodes"),
        (any(&|j| j.priority != 0), "priority"),
        (any(&|j| !w.names.get(j.qos).is_empty()), "qos"),
        (any(&|j| j.nice != 0), "nice"),
        (any(&|j| j.elastic.is_some()), "min_cpus/max_cpus"),
        (any(&|j| j.speedup.is_some()), "speedup"),
    ] {
        if on {
            v.push(col);
        }
    }
    v
}

/// Writes `w` as SWF.
pub fn write_swf(out: &mut dyn Write, w: &Workload) -> io::Result<()> {
    let users = numbering(&w.names, w.jobs.iter().map(|j| j.user));
    let groups = numbering(&w.names, w.jobs.iter().map(|j| j.group));
    let queues = numbering(&w.names, w.jobs.iter().map(|j| j.queue));
    let parts = numbering(&w.names, w.jobs.iter().map(|j| j.partition));
    writeln!(out, "; Version: 2.2")?;
    writeln!(
        out,
        "; Note: written by mini-slurm from {}",
        w.source.display()
    )?;
    writeln!(out, "; MaxJobs: {}", w.jobs.len())?;
    writeln!(out, "; MaxRecords: {}", w.jobs.len())?;
    if let Some(p) = w.declared_procs {
        writeln!(out, "; MaxProcs: {p}")?;
    }
    let num = |v: &[i64], s: Sym| v.get(s.0 as usize).copied().unwrap_or(-1);
    let mut line = String::with_capacity(96);
    for j in &w.jobs {
        use std::fmt::Write as _;
        line.clear();
        let run = if j.runtime.0 < 0 {
            "-1".to_string()
        } else {
            secs(j.runtime.0)
        };
        let _ = writeln!(
            line,
            "{} {} -1 {} {} -1 -1 {} {} -1 1 {} {} -1 {} {} -1 -1",
            j.id,
            secs(j.submit.0),
            run,
            j.procs,
            j.procs,
            j.requested.map_or("-1".to_string(), |r| secs(r.0)),
            num(&users, j.user),
            num(&groups, j.group),
            num(&queues, j.queue),
            num(&parts, j.partition),
        );
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}
