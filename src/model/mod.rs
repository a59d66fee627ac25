//! The data model: what a user asks for ([`JobSpec`]) and, in simulation only, what really
//! happens ([`JobTruth`]). The two are separate types so that the engine and the policies, which
//! only ever receive a `JobSpec`, cannot read a job's true run time (Batsim's "hidden truth").

pub mod job;

pub use job::{EstimateMode, FinalState, JobSpec, JobTruth, parse_mem_mb};
