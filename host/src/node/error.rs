//! Why a node could not start or an operation failed: one typed error for the node's callers.
//! The API maps each variant to an HTTP status and a stable kind (`api::server::error_kind`).

use super::blobs::TransferError;
use crate::net::NetError;
use crate::protocol::EventError;
use crate::store::{BlobError, RegistryError, StoreError, SubmitError};

/// Why a node could not start or an operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// Setting up a part of the node failed.
    #[error("cannot start the node: {0}")]
    Setup(String),
    /// The request was refused: bad input.
    #[error("{0}")]
    Invalid(String),
    /// Nothing matched (a component, a provider, a job).
    #[error("{0}")]
    NotFound(String),
    /// The node keeps no ledger, and the operation needs one.
    #[error("this node has no ledger: start it with --genesis FILE (or CUE_GENESIS)")]
    NoLedger,
    /// The ledger refused an entry: its envelope (expired, replayed) or its rules (an
    /// overdraft, a chain out of order, not the mint authority).
    #[error(transparent)]
    Refused(SubmitError),
    /// No provider may take the job: none was found, or each found is unfit for it (why, per
    /// provider, in `unfit`).
    #[error("{}", no_provider_message(*found, unfit))]
    NoProvider {
        /// Providers found (the named one only, when one was named).
        found: usize,
        /// Each found provider that does not fit, and why.
        unfit: Vec<UnfitProvider>,
    },
    /// No provider delivered the job; every attempt, in words.
    #[error("no provider delivered the job ({0})")]
    Undelivered(String),
    /// The replicas of a job disagree and no strict majority exists; nobody was paid.
    #[error("the {replicas} replicas disagree and no majority exists; nobody was paid")]
    Disagreement {
        /// How many replicas delivered.
        replicas: usize,
    },
    /// The network failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// A blob transfer failed.
    #[error(transparent)]
    Transfer(#[from] TransferError),
    /// The event log and ledger failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The component registry failed.
    #[error("registry: {0}")]
    Registry(#[from] RegistryError),
    /// The blob store failed.
    #[error("blob store: {0}")]
    Blob(#[from] BlobError),
    /// The operating system's randomness or a key failed.
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    /// This node could not sign an event.
    #[error("cannot sign: {0}")]
    Signing(#[source] EventError),
    /// A task doing part of the work panicked or was cancelled.
    #[error("the {what} task failed: {why}")]
    Task {
        /// Which task.
        what: &'static str,
        /// What happened to it.
        why: String,
    },
}

impl From<SubmitError> for NodeError {
    /// A store failure stays one; the ledger's refusals are [`NodeError::Refused`].
    fn from(e: SubmitError) -> NodeError {
        match e {
            SubmitError::Store(e) => NodeError::Store(e),
            refused => NodeError::Refused(refused),
        }
    }
}

impl NodeError {
    /// The error of a blocking task that did not finish.
    pub(super) fn task(what: &'static str, e: tokio::task::JoinError) -> NodeError {
        NodeError::Task { what, why: e.to_string() }
    }
}

/// A provider found that does not fit a job, and why (see `contract::fits`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct UnfitProvider {
    /// Its peer id.
    pub provider: String,
    /// Which rule failed, with the figures.
    pub reason: String,
}

fn no_provider_message(found: usize, unfit: &[UnfitProvider]) -> String {
    if found == 0 {
        return "no provider available for this job: none found on the network".into();
    }
    let why: Vec<String> = unfit.iter().map(|u| format!("{}: {}", u.provider, u.reason)).collect();
    format!("no provider available for this job: {found} found, none fits ({})", why.join("; "))
}
