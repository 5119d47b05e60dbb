//! The sandbox: the only module that imports wasmtime.
//!
//! A job's life here: [`verify`] reads the component without running it (sha256, imports
//! against the policy), [`Sandbox::load`] compiles it (or loads the authenticated cached
//! code) and pre-links it once, and [`LoadedComponent::invoke`] runs one typed call on a
//! fresh instance under [`Limits`], metered with fuel, bounded in time, memory, tables,
//! instances, stack, result and log; its clocks are virtual and its waits take no real time
//! (a job cannot hold the host past its limit by sleeping or polling). Every way a job can end is an [`Outcome`] whose error,
//! if any, is one [`FailureKind`].
//!
//! Deny by default: a job reaches exactly `cue:job/host` and a closed or virtualised WASI
//! 0.2 (see [`caps`]); any other import is refused before anything is compiled.

mod cache;
mod caps;
pub mod differential;
mod engine;
mod error;
pub mod floats;
mod invoke;
mod json;
mod limits;
mod policy;
mod preinit;
mod rewrite;
pub mod unroll;
mod verify;
mod wit;

pub use cache::CodeSource;
pub use caps::{
    CLOCK_READ_STEP_NS, EventSink, HOST_CALL_FUEL, JOB_EPOCH_UNIX_SECS, JobEvent, LogLevel, LogLine,
    LogSource, MAX_WASI_RESOURCES, POLL_FUEL, READINESS_CHECK_STEP_NS,
};
pub use engine::{EngineFingerprint, Sandbox, SandboxConfig, WASMTIME_VERSION};
pub use error::{FailureKind, JobError, SandboxError};
pub use floats::NanCanonicalization;
pub use invoke::{Call, Cancel, Export, Invocation, JobOutput, LoadedComponent, Outcome};
pub use limits::{LIFT_BYTES_PER_LIMIT_BYTE, Limits, human_bytes, parse_bytes, parse_duration};
pub use policy::{ImportKind, ImportVerdict, judge_import};
pub use verify::{VerifiedComponent, component_imports, sha256_hex, verify};
pub use wit::{ComponentReport, inspect};
