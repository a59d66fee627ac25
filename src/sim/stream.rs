//! A simulation that starts before its trace is read to the end: the jobs are parsed and
//! prepared on a second thread (while a third gunzips, [`crate::trace::swf`]) and handed to the
//! running simulation in batches through a [`JobFeed`], so that reading overlaps simulating.
//!
//! Only a plain run streams: an SWF trace, no whole-workload transform (load scaling, shaking,
//! elastic fraction) and no accounts file (whose names are interned after the trace's). It
//! streams only while the trace is as most are — job ids increasing, the kept jobs in submit
//! order, no header after the first job, no error: at the first sign of anything else the
//! stream gives up, and the caller runs the whole-workload path ([`Setup::prepare`]), which
//! gives the same outputs, or the same error, as ever. Notices are held back until the stream
//! has succeeded, so they are never told twice.

use super::setup::{Notice, Prepared, Setup, drop_memory, machine_notes, memory_note};
use super::store::{FinishedJobs, JobBatch, JobFeed, JobTable};
use super::{SimConfig, SimError, simulate_table_with};
use crate::config::build_cluster;
use crate::driver::Observer;
use crate::ids::Names;
use crate::metrics::{BLOCK_ROWS, JobResult, NameSender, RowStream, SimResult};
use crate::model::Cluster;
use crate::policy::PolicySpec;
use crate::sched::limits::{LimitState, PassUsage};
use crate::sched::placement;
use crate::time::Time;
use crate::trace::swf::{self, Item};
use crate::trace::{
    JobPreparer, PrepareOptions, SimJobs, SkipReason, TraceError, TraceErrorKind, TraceFormat,
};
use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// Jobs per batch handed to the simulation.
const BATCH: usize = 2048;

/// Jobs in the first batch; each next batch holds twice as many, up to [`BATCH`]: the
/// simulation starts once it has the first.
const FIRST_BATCH: usize = 256;

/// Batches in flight between the reading thread and the simulation.
const IN_FLIGHT: usize = 32;

/// A run that streamed its trace: the workload (its jobs are in the result), the result, the
/// policy's canonical spec and the notices held back; and, when it was given a `jobs.csv` to
/// write while it ran ([`Setup::simulate_streamed_to`]), the rows written so far.
pub struct Streamed {
    pub prepared: Prepared,
    pub result: SimResult,
    pub canonical: String,
    pub notices: Vec<Notice>,
    pub rows: Option<RowStream>,
}

/// What the reading thread sends.
enum Msg {
    /// The machine, once the trace's header has been read.
    Machine(Box<Machine>),
    /// Jobs, and the names interned since the last batch (the ones these jobs use among them).
    Jobs(JobBatch, Vec<String>),
    /// Every job was sent.
    End,
}

struct Machine {
    cluster: Cluster,
    scheduler: Vec<(String, String)>,
    notices: Vec<Notice>,
}

/// What the reading thread found besides the jobs.
struct Tail {
    names: Names,
    skipped: BTreeMap<SkipReason, u64>,
    skip_examples: BTreeMap<SkipReason, String>,
    kept: usize,
    /// Jobs whose memory request was dropped (the machine has none).
    memory_dropped: usize,
}

/// The feed of a streamed simulation: batches until the end, an error if the reader gave up.
/// The names each batch brings go on to the `jobs.csv` writer, if any, before any of its jobs
/// can end.
struct Feed(Receiver<Msg>, Option<NameSender>);

impl JobFeed for Feed {
    fn next_jobs(&mut self) -> Result<Option<JobBatch>, String> {
        match self.0.recv() {
            Ok(Msg::Jobs(jobs, names)) => {
                if let Some(to) = self.1.as_ref().filter(|_| !names.is_empty()) {
                    to.send(names);
                }
                Ok(Some(jobs))
            }
            Ok(Msg::End) => Ok(None),
            Ok(Msg::Machine(_)) | Err(_) => Err("the trace is read the whole way instead".into()),
        }
    }
}

impl Setup {
    /// Whether a run of this setup can stream its trace (see the module's comment).
    pub fn streams(&self) -> bool {
        self.load.is_none()
            && self.shake.is_none()
            && self.elastic_fraction.is_none()
            && self.accounts.is_none()
            && TraceFormat::from_path(&self.trace) == TraceFormat::Swf
    }

    /// Simulates the policy `spec` while the trace is read; `None` when the run does not
    /// stream or the stream gave up (then nothing was told: run [`Setup::prepare`]). `observer`
    /// sees the engine after every step.
    pub fn simulate_streamed(
        &self,
        spec: &str,
        observer: &mut dyn Observer,
    ) -> Result<Option<Streamed>, SimError> {
        self.simulate_streamed_to(spec, observer, None)
    }

    /// [`Setup::simulate_streamed`], writing `jobs.csv` to `jobs_csv` (from its header on) on
    /// another thread while the simulation runs, as blocks of jobs finish: the rest is written
    /// from the result's jobs after the rows of [`Streamed::rows`]. When the run does not
    /// stream, `jobs_csv` is dropped unwritten; when the stream gives up, part of it may have
    /// been written.
    pub fn simulate_streamed_to(
        &self,
        spec: &str,
        observer: &mut dyn Observer,
        jobs_csv: Option<Box<dyn std::io::Write + Send>>,
    ) -> Result<Option<Streamed>, SimError> {
        if !self.streams() {
            return Ok(None);
        }
        let placement_name = self.placement_name()?;
        let canonical = PolicySpec::parse(spec)
            .map_err(SimError::Policy)?
            .canonical();
        let (tx, rx) = sync_channel(IN_FLIGHT);
        std::thread::scope(|s| {
            let reading = s.spawn(|| self.read_streamed(&placement_name, tx));
            let simulated = match rx.recv() {
                Ok(Msg::Machine(m)) => {
                    let rows = jobs_csv.and_then(|w| RowStream::start(w, m.cluster.clone()).ok());
                    self.simulate_fed(spec, &canonical, &placement_name, m, rx, observer, rows)
                }
                _ => Err(None),
            };
            let tail = reading
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            let (result, machine, rows) = match simulated {
                Ok(done) => done,
                Err(Some(e)) => return Err(e),
                Err(None) => return Ok(None),
            };
            let Some(tail) = tail else {
                return Ok(None);
            };
            let mut notices = machine.notices;
            if tail.memory_dropped > 0 {
                notices.push(memory_note(tail.memory_dropped));
            }
            let jobs = SimJobs {
                cluster: machine.cluster,
                jobs: Vec::new(),
                skipped: tail.skipped,
                skip_examples: tail.skip_examples,
            };
            notices.extend(self.skipped_notice(&jobs, tail.kept)?);
            let prepared = Prepared {
                setup: self.clone(),
                jobs,
                names: tail.names,
                assoc: None,
                placement: placement_name.clone(),
                scheduler: machine.scheduler,
            };
            Ok(Some(Streamed {
                prepared,
                result,
                canonical: canonical.clone(),
                notices,
                rows,
            }))
        })
    }

    /// The simulation of a streamed run on `machine`, fed from `rx`, handing finished jobs to
    /// `rows`: `Err(None)` when the stream gave up or the simulation failed (the whole-workload
    /// path tells why), `Err(Some)` for a bad policy spec.
    #[allow(clippy::too_many_arguments)]
    fn simulate_fed(
        &self,
        spec: &str,
        canonical: &str,
        placement_name: &str,
        machine: Box<Machine>,
        rx: Receiver<Msg>,
        observer: &mut dyn Observer,
        mut rows: Option<RowStream>,
    ) -> SimulatedFed {
        let effective = Prepared::spec_with(spec, &machine.scheduler).map_err(Some)?;
        let (policy, _) =
            crate::policy::build(&effective).map_err(|e| Some(SimError::Policy(e)))?;
        let placement = placement::by_name(placement_name).ok_or(None)?;
        let cfg = SimConfig {
            policy,
            policy_name: canonical,
            placement,
            span_penalty_permille: self.topology_penalty_permille,
            limits: self.limits,
            assoc: None,
        };
        let names = rows.as_ref().and_then(RowStream::names);
        let table = JobTable::fed(Box::new(Feed(rx, names)));
        let finished = rows.as_mut().map(|r| r as &mut dyn FinishedJobs);
        let result = simulate_table_with(&machine.cluster, &table, cfg, observer, finished)
            .map_err(|_| None)?;
        Ok((result, machine, rows))
    }

    /// The reading thread: reads the trace, prepares its jobs and sends them in batches, after
    /// the machine. `None` when it gave up (the trace is not one to stream, or has an error,
    /// or the simulation stopped listening).
    fn read_streamed(&self, placement_name: &str, tx: SyncSender<Msg>) -> Option<Tail> {
        let mut reader = crate::trace::open(&self.trace).ok()?;
        if crate::trace::detect_format(&mut reader, &self.trace).ok()? != TraceFormat::Swf {
            return None;
        }
        let placement = placement::by_name(placement_name)?;
        let opts = PrepareOptions {
            estimate: self.estimate,
            kill_at_limit: self.kill_at_limit,
            switches: self.switches,
            speedup: self.speedup,
        };
        let limits = LimitState::new(self.limits);
        let mut st = ReadState::default();
        // The machine, and whether its nodes lack memory, once the header has been read.
        let mut cluster: Option<(Cluster, bool)> = None;
        let mut p = JobPreparer::new(&opts, false);
        let mut batch_size = FIRST_BATCH;
        let mut batch = Vec::with_capacity(batch_size);
        let give_up = || TraceError::new(&self.trace, None, TraceErrorKind::Empty);
        // SWF jobs all go to the default partition: the preparer needs no names.
        let no_names = Names::default();
        // Names are numbered from 1 (0 is the empty name, in every table).
        let mut names_sent = 1;
        let names = swf::read_each(reader, &self.trace, |item, names| {
            let mut job = match item {
                Item::Header { procs, nodes } if st.jobs == 0 => {
                    st.max_procs = procs.or(st.max_procs);
                    st.max_nodes = nodes.or(st.max_nodes);
                    return Ok(());
                }
                Item::Malformed(_, _) if self.lenient => {
                    st.malformed += 1;
                    return Ok(());
                }
                Item::Job(job) => job,
                Item::Header { .. } | Item::Malformed(_, _) => return Err(give_up()),
            };
            if st.last_id.is_some_and(|id| job.id <= id) {
                return Err(give_up());
            }
            st.last_id = Some(job.id);
            st.jobs += 1;
            if cluster.is_none() {
                let declared = st.max_procs.or(st.max_nodes);
                let built = build_cluster(&self.machine, |procs| match procs.or(declared) {
                    Some(p) if p > 0 => Ok(p),
                    _ => Err(String::new()),
                })
                .map_err(|_| give_up())?;
                let no_memory = !built.cluster.nodes.iter().any(|n| n.mem_mb > 0);
                let machine = Machine {
                    cluster: built.cluster.clone(),
                    notices: machine_notes(&self.machine, &built.notes, &built.scheduler),
                    scheduler: built.scheduler,
                };
                tx.send(Msg::Machine(Box::new(machine)))
                    .map_err(|_| give_up())?;
                cluster = Some((built.cluster, no_memory));
            }
            let Some((cluster, no_memory)) = &cluster else {
                return Err(give_up());
            };
            if *no_memory && drop_memory(&mut job) {
                st.memory_dropped += 1;
            }
            let Some((spec, truth)) = p.prepare(cluster, placement.as_ref(), &job, &no_names)
            else {
                return Ok(());
            };
            if limits.blocked(&spec, &PassUsage::default()).is_some() {
                p.skip(SkipReason::ExceedsLimit, 1);
                return Ok(());
            }
            if st.last_submit.is_some_and(|t| spec.submit < t) {
                return Err(give_up());
            }
            st.last_submit = Some(spec.submit);
            st.kept += 1;
            batch.push((spec, truth));
            if batch.len() == batch_size {
                batch_size = (batch_size * 2).min(BATCH);
                let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_size));
                let new = names.since(names_sent).to_vec();
                names_sent = names.len();
                tx.send(Msg::Jobs(full, new)).map_err(|_| give_up())?;
            }
            Ok(())
        })
        .ok()?;
        if st.kept == 0 {
            return None;
        }
        p.skip(SkipReason::MalformedLine, st.malformed);
        if !batch.is_empty() {
            tx.send(Msg::Jobs(batch, names.since(names_sent).to_vec()))
                .ok()?;
        }
        tx.send(Msg::End).ok()?;
        Some(Tail {
            names,
            skipped: p.skipped,
            skip_examples: p.skip_examples,
            kept: st.kept,
            memory_dropped: st.memory_dropped,
        })
    }
}

/// What [`Setup::simulate_fed`] gives back.
type SimulatedFed = Result<(SimResult, Box<Machine>, Option<RowStream>), Option<SimError>>;

/// The `jobs.csv` writer takes blocks of its own length.
impl FinishedJobs for RowStream {
    fn block_len(&self) -> usize {
        BLOCK_ROWS
    }
    fn offer(&mut self, jobs: &[JobResult]) -> bool {
        RowStream::offer(self, jobs)
    }
}

/// The reading thread's counts so far.
#[derive(Default)]
struct ReadState {
    max_procs: Option<u32>,
    max_nodes: Option<u32>,
    /// Job lines read.
    jobs: u64,
    last_id: Option<crate::ids::JobId>,
    last_submit: Option<Time>,
    kept: usize,
    malformed: u64,
    memory_dropped: usize,
}
