//! The store's typed rows: a job as stored ([`JobRow`]), a job to insert ([`NewJob`]), the
//! `reason` column ([`Reason`]), what a runner records ([`RunnerResult`]), the daemon's
//! key-value state ([`DaemonMeta`]) and the filter of a listing ([`JobFilter`]).
//!
//! States and reasons are stored as Slurm's names, as every earlier version wrote them; a text
//! this build does not know is a [`DecodeError`] naming the job and the column, never a panic.

use crate::model::{JobState, PendingReason};
use rusqlite::types::Type;
use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// A job's environment, as it was submitted: any bytes (Unix environments need not be UTF-8).
pub type Env = Vec<(OsString, OsString)>;

/// The `env` column: a JSON array of `[name, value]` pairs, each a string when it is UTF-8
/// (what every earlier version wrote) and an array of byte values otherwise.
pub fn encode_env(env: &Env) -> String {
    serde_json::to_string(&EnvJson(env)).unwrap_or_default()
}

/// Reads the `env` column back; `None` if it is not what [`encode_env`] writes.
pub fn decode_env(text: &str) -> Option<Env> {
    let pairs: Vec<(EnvPart, EnvPart)> = serde_json::from_str(text).ok()?;
    Some(pairs.into_iter().map(|(k, v)| (k.0, v.0)).collect())
}

/// An environment as [`encode_env`] writes it, serialized straight from the pairs (also how
/// the client protocol carries it): the daemon reads one with every submission.
struct EnvJson<'a>(&'a Env);

impl serde::Serialize for EnvJson<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeSeq, SerializeTuple};
        struct Part<'a>(&'a OsString);
        impl serde::Serialize for Part<'_> {
            fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
                match self.0.to_str() {
                    Some(t) => ser.serialize_str(t),
                    None => ser.collect_seq(self.0.as_bytes()),
                }
            }
        }
        let mut seq = ser.serialize_seq(Some(self.0.len()))?;
        for (k, v) in self.0 {
            seq.serialize_element(&{
                struct Pair<'a>(&'a OsString, &'a OsString);
                impl serde::Serialize for Pair<'_> {
                    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
                        let mut t = ser.serialize_tuple(2)?;
                        t.serialize_element(&Part(self.0))?;
                        t.serialize_element(&Part(self.1))?;
                        t.end()
                    }
                }
                Pair(k, v)
            })?;
        }
        seq.end()
    }
}

/// One name or value of an environment: a string, or an array of byte values.
struct EnvPart(OsString);

impl<'de> serde::Deserialize<'de> for EnvPart {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = EnvPart;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of byte values")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<EnvPart, E> {
                Ok(EnvPart(OsString::from(s)))
            }
            fn visit_string<E: serde::de::Error>(self, s: String) -> Result<EnvPart, E> {
                Ok(EnvPart(OsString::from(s)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<EnvPart, A::Error> {
                let mut b = Vec::with_capacity(a.size_hint().unwrap_or(0));
                while let Some(x) = a.next_element::<u8>()? {
                    b.push(x);
                }
                Ok(EnvPart(OsString::from_vec(b)))
            }
        }
        de.deserialize_any(V)
    }
}

/// Serde by Slurm's names for job states (the store's and the client protocol's text), and
/// for environments (as `env_value` writes them).
pub mod by_name {
    use crate::model::JobState;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    fn parse<E: serde::de::Error>(s: &str) -> Result<JobState, E> {
        JobState::from_name(s).ok_or_else(|| E::custom(format!("unknown job state '{s}'")))
    }

    /// One state.
    pub mod state {
        use super::*;
        pub fn serialize<S: Serializer>(s: &JobState, ser: S) -> Result<S::Ok, S::Error> {
            ser.serialize_str(s.name())
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<JobState, D::Error> {
            parse(&String::deserialize(de)?)
        }
    }

    /// A list of states, or none.
    pub mod states {
        use super::*;
        pub fn serialize<S: Serializer>(
            s: &Option<Vec<JobState>>,
            ser: S,
        ) -> Result<S::Ok, S::Error> {
            s.as_ref()
                .map(|v| v.iter().map(|s| s.name()).collect::<Vec<_>>())
                .serialize(ser)
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(
            de: D,
        ) -> Result<Option<Vec<JobState>>, D::Error> {
            Option::<Vec<String>>::deserialize(de)?
                .map(|v| v.iter().map(|s| parse(s)).collect())
                .transpose()
        }
    }

    /// Counts per state.
    pub mod counts {
        use super::*;
        pub fn serialize<S: Serializer>(c: &[(JobState, u64)], ser: S) -> Result<S::Ok, S::Error> {
            c.iter()
                .map(|(s, n)| (s.name(), *n))
                .collect::<Vec<_>>()
                .serialize(ser)
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(
            de: D,
        ) -> Result<Vec<(JobState, u64)>, D::Error> {
            Vec::<(String, u64)>::deserialize(de)?
                .into_iter()
                .map(|(s, n)| Ok((parse(&s)?, n)))
                .collect()
        }
    }

    /// An environment, as `encode_env` writes it.
    pub mod env {
        use super::*;
        use crate::live::store::row::{Env, EnvJson, EnvPart};
        pub fn serialize<S: Serializer>(e: &Env, ser: S) -> Result<S::Ok, S::Error> {
            EnvJson(e).serialize(ser)
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Env, D::Error> {
            let pairs = Vec::<(EnvPart, EnvPart)>::deserialize(de)?;
            Ok(pairs.into_iter().map(|(k, v)| (k.0, v.0)).collect())
        }
    }
}

/// A job as stored. What `queue --json` prints, and what the daemon sends its clients (with
/// the details of other users' jobs withheld, see [`JobRow::hide_details`]).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct JobRow {
    pub id: i64,
    pub name: String,
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    pub argv: Vec<String>,
    pub shell: bool,
    pub cwd: String,
    /// Not loaded with the row (it is large); the runner reads it with its job.
    #[serde(skip)]
    pub env: Env,
    pub cpus: u32,
    pub mem_mb: u64,
    pub gpus: u32,
    pub priority: i64,
    pub nice: i32,
    pub qos: String,
    /// Times requeued by preemption.
    pub restarts: i64,
    /// Elastic range (both set for an elastic job).
    pub min_cpus: Option<u32>,
    pub max_cpus: Option<u32>,
    /// Signal sent to an elastic job when it is resized (none by default).
    pub resize_signal: Option<i32>,
    /// CPUs held now (set when it starts; changes with resizes).
    pub alloc_cpus: Option<u32>,
    pub resizes: i64,
    pub time_limit_ms: Option<i64>,
    pub partition: String,
    pub dependency: String,
    pub array_job_id: Option<i64>,
    pub array_task_id: Option<i64>,
    pub array_limit: Option<i64>,
    #[serde(with = "by_name::state")]
    pub state: JobState,
    pub reason: Reason,
    pub submit_ms: i64,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub runner_pid: Option<i32>,
    pub runner_start: Option<i64>,
    pub job_pgid: Option<i32>,
    pub cpu_list: String,
    pub gpu_list: String,
    pub user_cpu_ms: Option<i64>,
    pub sys_cpu_ms: Option<i64>,
    pub max_rss_kb: Option<i64>,
    pub oom: bool,
    pub runner_done: bool,
    /// 0: none; 1: asked by a client (kept until the job's end is recorded; 2, written by
    /// versions before 0.1 once the daemon had relayed it, means the same).
    pub cancel_requested: i64,
    /// Grace between SIGTERM and SIGKILL the runner gives the job at its time limit.
    #[serde(skip)]
    pub kill_wait_ms: Option<i64>,
    /// The runner caps the job's address space (scheduler `--rlimit-as`).
    #[serde(skip)]
    pub rlimit_as: bool,
    /// The cgroups the runner made for the job (emptied and removed when it ends).
    #[serde(skip)]
    pub cgroups: Vec<String>,
    /// Why the job could not be pinned to its CPUs, if it could not.
    pub pin_error: Option<String>,
    /// The runner stopped the job at its time limit.
    pub timed_out: bool,
    /// The number of the job's current launch: its runner runs the job only if it claims
    /// this launch while the job is CONFIGURING.
    pub launch: i64,
    /// A preemption in progress (`requeue`, `suspend`, `cancel`), recorded before the job is
    /// stopped.
    pub preempting: Option<String>,
    /// Where the job's stdout and stderr go: sbatch's `--output`/`--error` patterns
    /// (`slurm-%j.out`), relative to its working directory; `None`: the home's `logs/`
    /// (see `live::output`).
    #[serde(default)]
    pub stdout: Option<String>,
    #[serde(default)]
    pub stderr: Option<String>,
    /// Another user's job: its command, working directory and output paths are withheld.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub details_hidden: bool,
    /// A pending job's expected start (epoch ms) from the daemon's last plan; `None` when the
    /// policy does not plan it (see `store::plan`).
    pub expected_start_ms: Option<i64>,
}

impl JobRow {
    /// Withholds what only the job's owner (and root) may see: the command, the working
    /// directory and the output paths (the environment never leaves the daemon). What
    /// `squeue` shows everyone stays: id, name, user, state, resources, times, reason.
    pub fn hide_details(&mut self) {
        self.argv.clear();
        self.cwd.clear();
        self.stdout = None;
        self.stderr = None;
        self.details_hidden = true;
    }
}

/// A job to insert.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub name: String,
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    pub argv: Vec<String>,
    pub shell: bool,
    pub cwd: String,
    pub env: Env,
    pub cpus: u32,
    pub mem_mb: u64,
    pub gpus: u32,
    pub priority: i64,
    pub nice: i32,
    pub qos: String,
    pub time_limit_ms: Option<i64>,
    pub partition: String,
    pub dependency: String,
    pub submit_ms: i64,
    /// Elastic range, when elastic.
    pub elastic: Option<(u32, u32)>,
    pub resize_signal: Option<i32>,
    /// sbatch's `--output` and `--error` patterns (`None`: the home's `logs/`).
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    /// The client's submission token: a submission sent again with the same token (its reply
    /// was lost) is stored once.
    pub token: Option<String>,
}

/// The code of a [`Reason`]: a pending reason, or what a finished job's end was put down to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReasonCode {
    /// Why a job waits; `None` also for a job that does not (or no longer) wait.
    Pending(PendingReason),
    /// A job found ended at a daemon restart had exited non-zero or was killed by a signal.
    NonZeroExitCode,
    /// The job's runner ended without recording a result (shown as `NodeFail: why`).
    NodeFail,
    /// The job could not be launched: its stored row does not decode (a damaged or
    /// hand-edited database), so it is failed rather than run with a guessed command; or its
    /// runner could not set its process up (an output file that cannot be opened...).
    JobLaunchFailure,
}

impl ReasonCode {
    /// Slurm's name.
    pub fn name(self) -> &'static str {
        match self {
            ReasonCode::Pending(r) => r.name(),
            ReasonCode::NonZeroExitCode => "NonZeroExitCode",
            ReasonCode::NodeFail => "NodeFail",
            ReasonCode::JobLaunchFailure => "JobLaunchFailure",
        }
    }
    pub fn from_name(s: &str) -> Option<ReasonCode> {
        match s {
            "NonZeroExitCode" => Some(ReasonCode::NonZeroExitCode),
            "NodeFail" => Some(ReasonCode::NodeFail),
            "JobLaunchFailure" => Some(ReasonCode::JobLaunchFailure),
            _ => PendingReason::from_name(s).map(ReasonCode::Pending),
        }
    }
}

/// The `reason` column: a code and an optional detail, stored as `Code`, `Code (detail)` or,
/// for [`ReasonCode::NodeFail`], `NodeFail: detail`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason {
    pub code: ReasonCode,
    pub detail: Option<String>,
}

impl Reason {
    /// No reason (`None`).
    pub const NONE: Reason = Reason::pending(PendingReason::None);

    pub const fn pending(r: PendingReason) -> Reason {
        Reason {
            code: ReasonCode::Pending(r),
            detail: None,
        }
    }
    /// A pending reason with its detail, e.g. `ReqNodeNotAvail (why)`.
    pub fn with(r: PendingReason, detail: impl Into<String>) -> Reason {
        Reason {
            code: ReasonCode::Pending(r),
            detail: Some(detail.into()),
        }
    }
    /// A job whose runner ended without recording how the job ended.
    pub fn runner_lost() -> Reason {
        Reason {
            code: ReasonCode::NodeFail,
            detail: Some("the job's runner ended without recording it".into()),
        }
    }
    /// A job whose stored row could not be read.
    pub fn bad_row(why: impl Into<String>) -> Reason {
        Reason {
            code: ReasonCode::JobLaunchFailure,
            detail: Some(why.into()),
        }
    }
    /// A job whose process could not be set up or started (an output file that cannot be
    /// opened, a working directory gone), recorded by its runner.
    pub fn launch_failed(why: impl Into<String>) -> Reason {
        Reason::bad_row(why)
    }
    pub fn is_none(&self) -> bool {
        *self == Reason::NONE
    }
    /// The reason of a stored text, `None` for a code this build does not know.
    pub fn parse(text: &str) -> Option<Reason> {
        let Some(i) = text.find([' ', ':']) else {
            return ReasonCode::from_name(text).map(|code| Reason { code, detail: None });
        };
        let (name, rest) = text.split_at(i);
        let detail = rest
            .strip_prefix(": ")
            .or_else(|| rest.strip_prefix(" (").and_then(|d| d.strip_suffix(')')))?;
        Some(Reason {
            code: ReasonCode::from_name(name)?,
            detail: Some(detail.to_string()),
        })
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.detail, self.code) {
            (None, c) => f.write_str(c.name()),
            (Some(d), ReasonCode::NodeFail) => write!(f, "NodeFail: {d}"),
            (Some(d), c) => write!(f, "{} ({d})", c.name()),
        }
    }
}

impl serde::Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Reason {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Reason, D::Error> {
        use serde::de::Error as _;
        let text = String::deserialize(de)?;
        Reason::parse(&text).ok_or_else(|| D::Error::custom(format!("unknown reason '{text}'")))
    }
}

/// What a job's runner records when the job has ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunnerResult {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub end_ms: i64,
    /// User and system CPU milliseconds and the largest resident set (KiB) of the job.
    pub usage: Option<(i64, i64, i64)>,
    /// Killed for exceeding its memory limit.
    pub oom: bool,
}

/// The daemon's recorded configuration (the `meta` table); what clients check submissions
/// against and `stats` shows. Fields not recorded (no daemon ever ran) are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DaemonMeta {
    pub cpus: Option<u32>,
    pub mem_mb: Option<u64>,
    /// GPU names (nvidia-smi indices).
    pub gpus: Option<Vec<String>>,
    pub policy: Option<String>,
    pub pid: Option<u32>,
    pub started_ms: Option<i64>,
    /// How memory limits are enforced, in words.
    pub enforcement: Option<String>,
    /// The last fault of the database the daemon recovered from, in words.
    pub last_fault: Option<String>,
    /// The executor: `process` (this machine) or `slurm`.
    pub executor: Option<String>,
    /// The Slurm executor's state in words: the cluster as last seen, command failures.
    pub slurm: Option<String>,
    /// Whose expected start the daemon's policy plans (`live::plan::PlanScope`'s name).
    pub plan: Option<String>,
    /// Where the daemon serves its dashboard, metrics and JSON API (`scheduler --http`), e.g.
    /// `127.0.0.1:8080`; empty when it does not.
    pub http: Option<String>,
}

/// What `stats` shows about containment and CPU pinning.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContainStats {
    /// How the daemon contains each job's processes, in words.
    pub containment: Option<String>,
    /// The CPU ids the daemon hands out (its affinity mask), e.g. `0-1`.
    pub cpu_ids: Option<String>,
    /// Jobs that could not be pinned to their CPUs.
    pub pin_failures: u64,
    /// The latest of them: its id and why.
    pub last_pin_error: Option<(i64, String)>,
}

/// Which jobs a listing returns.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobFilter {
    /// Only jobs in these states (`None`: any).
    #[serde(with = "by_name::states")]
    pub states: Option<Vec<JobState>>,
    /// Only this user's jobs.
    pub user: Option<String>,
    /// Only the tasks of this array (by its first task's id).
    #[serde(default)]
    pub array: Option<i64>,
}

/// Counts and sums over the whole table, for `stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobCounts {
    pub total: u64,
    /// Jobs per state, in [`JobState::ALL`]'s order, states without jobs left out.
    #[serde(with = "by_name::counts")]
    pub by_state: Vec<(JobState, u64)>,
    /// What running jobs asked for: CPUs, memory (MB), GPUs.
    pub running: (u64, u64, u64),
    /// Jobs with a start and an end, and the sums of their waits and run times (ms).
    pub finished: u64,
    pub wait_ms: i64,
    pub run_ms: i64,
}

/// A stored text this build cannot read.
#[derive(Clone, Debug, thiserror::Error)]
#[error("job {id}: unknown {column} '{text}' (written by a newer mini-slurm?)")]
pub struct DecodeError {
    pub id: i64,
    pub column: &'static str,
    pub text: String,
}

/// The columns of [`JobRow`], in [`job_row`]'s order (the environment is read separately).
macro_rules! job_columns {
    () => {
        "id, name, user, uid, gid, argv, shell, cwd, cpus, mem_mb, gpus, priority, \
         time_limit_ms, partition, dependency, array_job_id, array_task_id, array_limit, state, \
         reason, submit_ms, start_ms, end_ms, exit_code, signal, runner_pid, runner_start, \
         job_pgid, cpu_list, gpu_list, user_cpu_ms, sys_cpu_ms, max_rss_kb, oom, runner_done, \
         cancel_requested, nice, qos, restarts, min_cpus, max_cpus, resize_signal, alloc_cpus, \
         resizes, kill_wait_ms, rlimit_as, cgroups, pin_error, timed_out, launch, preempting, \
         stdout, stderr, expected_start_ms"
    };
}
pub(super) use job_columns;

/// The index of a column selected after [`job_columns`] (the environment, by the runner):
/// the number of those columns, counted so that a column added there cannot shift it.
pub(super) const ENV_COLUMN: usize = {
    let list = job_columns!().as_bytes();
    let (mut i, mut commas) = (0, 0);
    while i < list.len() {
        if list[i] == b',' {
            commas += 1;
        }
        i += 1;
    }
    commas + 1
};

fn decode_error(idx: usize, id: i64, column: &'static str, text: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        idx,
        Type::Text,
        Box::new(DecodeError { id, column, text }),
    )
}

/// Reads a row selected with [`job_columns`].
pub(super) fn job_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRow> {
    let id: i64 = r.get(0)?;
    let argv: String = r.get(5)?;
    let state: String = r.get(18)?;
    let state = JobState::from_name(&state).ok_or_else(|| decode_error(18, id, "state", state))?;
    let reason: String = r.get(19)?;
    let reason = Reason::parse(&reason).ok_or_else(|| decode_error(19, id, "reason", reason))?;
    Ok(JobRow {
        id,
        name: r.get(1)?,
        user: r.get(2)?,
        uid: r.get(3)?,
        gid: r.get(4)?,
        argv: match serde_json::from_str::<Vec<String>>(&argv) {
            Ok(a) if !a.is_empty() => a,
            _ => return Err(decode_error(5, id, "argv", argv)),
        },
        shell: r.get(6)?,
        cwd: r.get(7)?,
        env: Vec::new(),
        cpus: r.get(8)?,
        mem_mb: r.get::<_, i64>(9)?.max(0) as u64,
        gpus: r.get(10)?,
        priority: r.get(11)?,
        time_limit_ms: r.get(12)?,
        partition: r.get(13)?,
        dependency: r.get(14)?,
        array_job_id: r.get(15)?,
        array_task_id: r.get(16)?,
        array_limit: r.get(17)?,
        state,
        reason,
        submit_ms: r.get(20)?,
        start_ms: r.get(21)?,
        end_ms: r.get(22)?,
        exit_code: r.get(23)?,
        signal: r.get(24)?,
        runner_pid: r.get(25)?,
        runner_start: r.get(26)?,
        job_pgid: r.get(27)?,
        cpu_list: r.get(28)?,
        gpu_list: r.get(29)?,
        user_cpu_ms: r.get(30)?,
        sys_cpu_ms: r.get(31)?,
        max_rss_kb: r.get(32)?,
        oom: r.get(33)?,
        runner_done: r.get(34)?,
        cancel_requested: r.get(35)?,
        nice: r.get(36)?,
        qos: r.get(37)?,
        restarts: r.get(38)?,
        min_cpus: r.get(39)?,
        max_cpus: r.get(40)?,
        resize_signal: r.get(41)?,
        alloc_cpus: r.get(42)?,
        resizes: r.get(43)?,
        kill_wait_ms: r.get(44)?,
        rlimit_as: r.get(45)?,
        cgroups: r
            .get::<_, String>(46)?
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
        pin_error: r.get(47)?,
        timed_out: r.get(48)?,
        launch: r.get(49)?,
        preempting: r.get(50)?,
        stdout: r.get(51)?,
        stderr: r.get(52)?,
        details_hidden: false,
        expected_start_ms: r.get(53)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environments_keep_their_bytes() {
        let env: Env = vec![
            ("PATH".into(), "/bin".into()),
            ("LATIN1".into(), OsString::from_vec(vec![b'c', 0xe9])),
            (OsString::from_vec(vec![0xff]), "".into()),
        ];
        let text = encode_env(&env);
        // The bytes every version writes and reads (strings where UTF-8, else byte values).
        assert_eq!(text, r#"[["PATH","/bin"],["LATIN1",[99,233]],[[255],""]]"#);
        assert_eq!(decode_env(&text), Some(env));
        // What earlier versions wrote reads back too.
        assert_eq!(
            decode_env(r#"[["K","V"]]"#),
            Some(vec![("K".into(), "V".into())])
        );
        assert_eq!(decode_env("[[1]]"), None);
        assert_eq!(decode_env(r#"[["K","V","W"]]"#), None);
        assert_eq!(decode_env(r#"[["K",[256]]]"#), None);
        assert_eq!(decode_env(r#"{"K":"V"}"#), None);
        assert_eq!(decode_env("not json"), None);
    }

    #[test]
    fn reasons_read_back_as_written() {
        for text in [
            "None",
            "Dependency",
            "DependencyNeverSatisfied (job 3 ended FAILED)",
            "JobArrayTaskLimit",
            "ReqNodeNotAvail (no set of its nodes holds 9 CPUs (of 8))",
            "AssocGrpCpuLimit (the job alone exceeds it)",
            "Requeued",
            "NonZeroExitCode",
            "NodeFail: the job's runner ended without recording it",
            "JobLaunchFailure (cannot decode job 4's argv)",
        ] {
            let r = Reason::parse(text).unwrap();
            assert_eq!(r.to_string(), text);
        }
        assert_eq!(
            Reason::runner_lost(),
            Reason::parse(&Reason::runner_lost().to_string()).unwrap()
        );
        for bad in ["", "Nonsense", "Priority [x]", "Dependency (open"] {
            assert_eq!(Reason::parse(bad), None, "{bad}");
        }
        assert!(Reason::NONE.is_none());
    }
}
