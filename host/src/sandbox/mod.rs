//! The sandbox: the only module that imports wasmtime.
//!
//! A job's life here: [`verify`] reads the component without running it (sha256, imports
//! against the policy), [`Sandbox::load`] compiles it (or loads the authenticated cached
//! code) and pre-links it once, and [`LoadedComponent::invoke`] runs one typed call on a
//! fresh instance under [`Limits`], metered with fuel, bounded in time, memory, tables,
//! instances, stack, result and log. Every way a job can end is an [`Outcome`] whose error,
//! if any, is one [`FailureKind`].
//!
//! Deny by default: a job reaches exactly `cue:job/host` and a closed or virtualised WASI
//! 0.2 (see [`caps`]); any other import is refused before anything is compiled.

mod cache;
mod caps;
mod engine;
mod error;
mod invoke;
mod json;
mod limits;
mod policy;
mod verify;
mod wit;

pub use cache::CodeSource;
pub use caps::{EventSink, HOST_CALL_FUEL, JobEvent, LogLevel, LogLine, LogSource};
pub use engine::{EngineFingerprint, Sandbox, SandboxConfig, WASMTIME_VERSION};
pub use error::{FailureKind, JobError, SandboxError};
pub use invoke::{Call, Cancel, Export, Invocation, JobOutput, LoadedComponent, Outcome};
pub use limits::{Limits, human_bytes, parse_bytes, parse_duration};
pub use policy::{ImportKind, ImportVerdict, judge_import};
pub use verify::{VerifiedComponent, component_imports, sha256_hex, verify};
pub use wit::{ComponentReport, inspect};
