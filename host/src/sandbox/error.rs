//! The typed outcomes of loading and running a job: every way a job can fail has its own kind.

use std::fmt;

/// Why a job did not produce a result. Each kind is a class a user (or a peer) can act on;
/// the kebab-case name is part of the stable JSON output of `cue run --json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum FailureKind {
    /// The job used its whole fuel budget.
    OutOfFuel,
    /// The job ran past its wall-clock deadline.
    Timeout,
    /// The job tried to grow its linear memory past the limit.
    MemoryLimit,
    /// The job tried to grow a table past the limit.
    TableLimit,
    /// The job exhausted the wasm stack.
    StackOverflow,
    /// The job trapped (a panic, `unreachable`, an out-of-bounds access, …).
    Trap,
    /// The component imports something the host does not grant.
    ForbiddenImport,
    /// The bytes are not a valid WebAssembly component this host can run.
    InvalidComponent,
    /// The call does not name an export, or its arguments do not match the export's types.
    BadArguments,
    /// The result or the job's log exceeded its bound.
    TooLarge,
}

impl FailureKind {
    /// The stable kebab-case name (`out-of-fuel`, `timeout`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::OutOfFuel => "out-of-fuel",
            FailureKind::Timeout => "timeout",
            FailureKind::MemoryLimit => "memory-limit",
            FailureKind::TableLimit => "table-limit",
            FailureKind::StackOverflow => "stack-overflow",
            FailureKind::Trap => "trap",
            FailureKind::ForbiddenImport => "forbidden-import",
            FailureKind::InvalidComponent => "invalid-component",
            FailureKind::BadArguments => "bad-arguments",
            FailureKind::TooLarge => "too-large",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job that did not produce a result: its kind and a message a user understands.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{kind}: {message}")]
pub struct JobError {
    /// The class of failure.
    pub kind: FailureKind,
    /// What happened, in words (for a trap, the guest's panic message when there is one).
    pub message: String,
}

impl JobError {
    pub(crate) fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        JobError { kind, message: message.into() }
    }
}

/// Errors setting up the sandbox itself (not the fault of any job).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// The wasmtime engine could not be configured.
    #[error("cannot configure the WebAssembly engine: {0}")]
    Engine(String),
    /// The compiled-code cache directory could not be prepared.
    #[error("cannot prepare the compiled-code cache at {path}: {source}")]
    Cache {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Raised from inside a running job (by a limiter or a host capability) to stop it with a
/// precise outcome; the invoker turns it back into a [`JobError`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Stop(pub JobError);
