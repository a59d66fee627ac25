//! The data model: what a user asks for ([`JobSpec`]) and, in simulation only, what really
//! happens ([`JobTruth`]); and the cluster jobs run on ([`cluster::Cluster`]). Spec and truth
//! are separate types so that the engine and the policies, which only ever receive a
//! `JobSpec`, cannot read a job's true run time (Batsim's "hidden truth"). Also: job states and
//! pending reasons with Slurm's names ([`state`]) and accounts data ([`accounts`]).

pub mod accounts;
pub mod cluster;
pub mod elastic;
pub mod hostlist;
pub mod job;
pub mod state;

pub use accounts::{Assoc, AssocConfig, AssocTree};
pub use cluster::{Avail, Cluster, Node, Partition, Request, Slice, Switch};
pub use elastic::{ElasticRange, Speedup};
pub use job::{EstimateMode, JobSpec, JobTruth, PreemptMode, parse_mem_mb};
pub use state::{FinalState, JobState, PendingReason};
