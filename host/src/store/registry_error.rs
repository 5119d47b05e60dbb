//! Why the registry refused a manifest or failed: [`RegistryError`], shared by the registry,
//! its caps and its peers.

use semver::Version;

use super::StoreError;
use crate::crypto::{Digest, PeerId};
use crate::protocol::ComponentError;

/// Why the registry refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The database failed, or holds data that does not check.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The manifest does not verify (signature, publisher, fields).
    #[error(transparent)]
    Invalid(#[from] ComponentError),
    /// The name is pinned to another publisher.
    #[error("the name {name:?} belongs to {owner}")]
    NameTaken {
        /// The name.
        name: String,
        /// Its owner here.
        owner: PeerId,
    },
    /// This name and version are already another component (the refused manifest's `sha256`
    /// differs from `existing`).
    #[error("{name}@{version} is already the component {existing}; publish a new version instead")]
    VersionConflict {
        /// The name.
        name: String,
        /// The version.
        version: Version,
        /// SHA-256 of the component already known.
        existing: Digest,
    },
    /// The name already has [`MAX_VERSIONS_PER_NAME`] versions.
    #[error("{name} already has {limit} versions, the most this registry keeps")]
    TooManyVersions {
        /// The name.
        name: String,
        /// The limit.
        limit: usize,
    },
    /// The registry is at a cap and may forget none of what it holds (this node's own names,
    /// those live contracts need): see `registry_cap`.
    #[error("the registry holds its most {what} ({limit}) and may forget none of them")]
    Full {
        /// Which cap: names, manifests, bytes of manifests.
        what: &'static str,
        /// Its value.
        limit: u64,
    },
    /// A resource manifest bigger than any event can be.
    #[error("a resource manifest of {size} bytes exceeds the event limit of {limit}")]
    ManifestTooLarge {
        /// Bytes given.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

impl From<rusqlite::Error> for RegistryError {
    fn from(error: rusqlite::Error) -> RegistryError {
        RegistryError::Store(StoreError::Database(error))
    }
}
