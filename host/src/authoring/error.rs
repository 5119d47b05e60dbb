//! What can go wrong while scaffolding or building a job crate.

use std::path::PathBuf;

use crate::sandbox::JobError;

/// An authoring step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthoringError {
    /// `cue new` refuses to write into a directory that already has files.
    #[error("{0} already exists and is not empty")]
    NotEmpty(PathBuf),
    /// The crate name is not a valid Rust package name.
    #[error(
        "`{0}` is not a valid crate name: use ASCII letters, digits, `-` and `_`, starting with a letter"
    )]
    InvalidName(String),
    /// The guest SDK is not where the scaffold would point its dependency.
    #[error("the guest SDK is not at {0} (pass --sdk <path to guest-sdk>)")]
    SdkNotFound(PathBuf),
    /// There is no `Cargo.toml` where a crate was expected.
    #[error("no Cargo.toml in {0}")]
    NotACrate(PathBuf),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A tool (`cargo`, `rustup`) could not be started or failed.
    #[error("{0}")]
    Tool(String),
    /// The build succeeded but produced no component.
    #[error("cargo built no .wasm for {0}: is it a `cdylib` crate?")]
    NoComponent(PathBuf),
    /// What was built is not a valid component.
    #[error("the built component is invalid: {0}")]
    Invalid(JobError),
}

impl AuthoringError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| AuthoringError::Io { path, source }
    }
}
