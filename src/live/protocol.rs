//! The client/daemon contract: one typed [`Request`] per connection to the daemon's socket,
//! one [`Response`] back (pueue's `Request`/`Response` style).
//!
//! Framing: a 4-byte big-endian length, then that many bytes of JSON. A request is at most
//! [`MAX_REQUEST`] bytes (a submission carries its environment, at most a few hundred KB on
//! Linux), a response at most [`MAX_RESPONSE`]. The caller's identity is never part of a
//! request: the daemon reads it from the socket (`SO_PEERCRED`, see `server.rs`).
//!
//! Every verb the command line has is one variant; a daemon of another version that does not
//! know a variant answers [`FailureKind::Invalid`] with serde's message.

use super::LiveError;
use super::client::{CancelOutcome, Stats, Submission, SubmitError, Submitted};
use super::store::{JobFilter, JobRow, RunnerResult, by_name};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};

/// The largest request the daemon reads (bytes of JSON).
pub const MAX_REQUEST: u32 = 8 << 20;
/// The most job ids one cancellation may name (`cancel` refuses more, exit 2).
pub const MAX_CANCEL: usize = 10_001;
/// The largest response a client reads.
pub const MAX_RESPONSE: u32 = 1 << 30;

/// What a client asks of the daemon.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Request {
    /// Store a job (or an array); its owner is the caller.
    Submit(Box<Submission>),
    /// The jobs a filter selects (others' details withheld).
    Queue(JobFilter),
    /// One job (its details withheld unless it is the caller's).
    Show(i64),
    /// Cancel jobs: the caller's own (root: any); at most [`MAX_CANCEL`] ids.
    Cancel(Vec<i64>),
    /// Capacity, usage and job counts.
    Stats,
    /// The jobs that ran and ended: the caller's (root: all), for `export-trace`.
    Finished,
    /// What a job's runner records (the daemon's own user only): the daemon writes it with its
    /// open connection instead of the runner opening the database (see `runner::record`).
    Runner(RunnerCall),
}

/// A runner's record, written by the daemon for it. Each is idempotent: one sent again (its
/// answer lost) changes nothing more.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RunnerCall {
    /// Claim launch `launch` of job `job` for runner `pid` (started at `start`, as
    /// `machine::process_start` reads it), with the cgroups the runner made already, if it
    /// made them first; answered [`RunnerAnswer::Claimed`].
    Claim {
        job: i64,
        launch: i64,
        pid: i32,
        start: Option<i64>,
        #[serde(default)]
        cgroups: Option<Vec<String>>,
    },
    /// The cgroups the runner made for the job.
    Cgroups { job: i64, dirs: Vec<String> },
    /// Why the job could not be pinned to its CPUs.
    PinError { job: i64, error: String },
    /// Why the job could not be started (its reason, before its result).
    LaunchFailed { job: i64, why: String },
    /// The job's process group; answered [`RunnerAnswer::CpuList`] (the CPUs it holds now).
    Group { job: i64, pgid: i32 },
    /// The runner stopped the job at its time limit.
    TimedOut { job: i64 },
    /// How the job ended.
    Result { job: i64, result: RunnerResult },
}

/// The daemon's answer to a [`RunnerCall`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RunnerAnswer {
    /// Recorded.
    Done,
    /// The claim held: the job to run.
    Claimed(Box<ClaimedJob>),
    /// Not the job's current launch, or no longer CONFIGURING: run nothing.
    NotCurrent,
    /// Claimed, but the job's row does not decode: the job must fail, with this why.
    Damaged(String),
    /// The job's CPU list now.
    CpuList(String),
}

/// A claimed job with what its row's wire form leaves out.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClaimedJob {
    pub row: JobRow,
    #[serde(with = "by_name::env")]
    pub env: super::store::Env,
    pub kill_wait_ms: Option<i64>,
    pub rlimit_as: bool,
}

impl ClaimedJob {
    pub fn of(row: JobRow) -> ClaimedJob {
        ClaimedJob {
            env: row.env.clone(),
            kill_wait_ms: row.kill_wait_ms,
            rlimit_as: row.rlimit_as,
            row,
        }
    }

    /// The row with every field the runner reads.
    pub fn into_row(self) -> JobRow {
        let mut row = self.row;
        row.env = self.env;
        row.kill_wait_ms = self.kill_wait_ms;
        row.rlimit_as = self.rlimit_as;
        row
    }
}

/// The daemon's answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Response {
    Submitted(Submitted),
    Jobs(Vec<JobRow>),
    Job(Option<Box<JobRow>>),
    Cancelled(Vec<(i64, CancelOutcome)>),
    Stats(Box<Stats>),
    Runner(RunnerAnswer),
    Failed(Failure),
}

/// A request that failed, and how.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

/// How a request failed (the command line's exit code follows it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureKind {
    /// Malformed or impossible (exit 2): nothing was done.
    Invalid,
    /// Not the caller's to do (Slurm's "Access/permission denied", exit 1).
    Denied,
    /// The daemon could not do it (exit 1).
    Failed,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
        }
    }
}

impl From<LiveError> for Failure {
    fn from(e: LiveError) -> Failure {
        let kind = match e {
            LiveError::Denied(_) => FailureKind::Denied,
            _ => FailureKind::Failed,
        };
        Failure::new(kind, e.to_string())
    }
}

impl From<SubmitError> for Failure {
    fn from(e: SubmitError) -> Failure {
        match e {
            SubmitError::Invalid(m) => Failure::new(FailureKind::Invalid, m),
            SubmitError::Live(e) => e.into(),
        }
    }
}

impl From<Failure> for LiveError {
    fn from(f: Failure) -> LiveError {
        match f.kind {
            FailureKind::Denied => LiveError::Denied(f.message),
            _ => LiveError::Other(f.message),
        }
    }
}

impl From<Failure> for SubmitError {
    fn from(f: Failure) -> SubmitError {
        match f.kind {
            FailureKind::Invalid => SubmitError::Invalid(f.message),
            _ => SubmitError::Live(f.into()),
        }
    }
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The other side closed the connection before a frame began.
    #[error("the connection was closed")]
    Closed,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("a message of {0} bytes is over the limit")]
    TooLarge(u32),
    #[error("malformed message: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// Writes one frame (length, then JSON) in one write.
pub fn write_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> std::io::Result<()> {
    let mut buf = vec![0u8; 4];
    serde_json::to_writer(&mut buf, msg)?;
    let len = u32::try_from(buf.len() - 4).map_err(|_| std::io::ErrorKind::InvalidData)?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    w.write_all(&buf)?;
    w.flush()
}

/// Reads one frame of at most `max` bytes.
pub fn read_frame<T: DeserializeOwned>(r: &mut impl Read, max: u32) -> Result<T, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Err(FrameError::Closed),
            Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = u32::from_be_bytes(len);
    if len > max {
        return Err(FrameError::TooLarge(len));
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body)?;
    Ok(serde_json::from_slice(&body)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::JobState;

    #[test]
    fn frames_round_trip_and_are_bounded() {
        let req = Request::Queue(JobFilter {
            states: Some(vec![JobState::Pending, JobState::Running]),
            user: Some("ann".into()),
            array: None,
        });
        let mut buf = Vec::new();
        write_frame(&mut buf, &req).unwrap();
        let back: Request = read_frame(&mut buf.as_slice(), MAX_REQUEST).unwrap();
        assert!(
            matches!(back, Request::Queue(f) if f.states.as_ref().is_some_and(|s| s.len() == 2))
        );
        assert!(matches!(
            read_frame::<Request>(&mut buf.as_slice(), 3),
            Err(FrameError::TooLarge(_))
        ));
        assert!(matches!(
            read_frame::<Request>(&mut &[][..], MAX_REQUEST),
            Err(FrameError::Closed)
        ));
        assert!(matches!(
            read_frame::<Request>(&mut &buf[..6], MAX_REQUEST),
            Err(FrameError::Io(_))
        ));
        let mut junk = 5u32.to_be_bytes().to_vec();
        junk.extend_from_slice(b"\"Hop\"");
        assert!(matches!(
            read_frame::<Request>(&mut junk.as_slice(), MAX_REQUEST),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn failures_keep_their_kind() {
        let f: Failure = SubmitError::Invalid("--cpus: must be at least 1".into()).into();
        assert_eq!(f.kind, FailureKind::Invalid);
        assert!(matches!(SubmitError::from(f), SubmitError::Invalid(_)));
        let d: Failure = LiveError::Denied("job 3: Access/permission denied".into()).into();
        assert!(matches!(LiveError::from(d), LiveError::Denied(_)));
    }
}
