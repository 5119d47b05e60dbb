//! What the store's caps must never evict: the components (by SHA-256) a node still needs,
//! asked for only when something has to go. The store defines the question; the node answers
//! it (its own publications, from the registry, and what its live contracts name, from the
//! log), as a lower layer asks an upper one through a trait.

use std::collections::HashSet;

use super::{LedgerStore, StoreError};
use crate::crypto::Digest;

/// The components that must stay whatever the caps say.
///
/// Asked by [`BlobStore`](super::BlobStore) and [`Registry`](super::Registry) when a cap is
/// reached, never on their fast paths. An error is taken as "everything is needed": nothing is
/// evicted and the new item is refused.
///
/// ```
/// use std::collections::HashSet;
/// use cue_host::crypto::Digest;
/// use cue_host::store::{Keep, StoreError};
///
/// let pinned = Digest::of(b"published here");
/// let keep = move || -> Result<HashSet<Digest>, StoreError> { Ok(HashSet::from([pinned])) };
/// assert!(keep.components().unwrap().contains(&pinned));
/// ```
pub trait Keep: Send + Sync {
    /// SHA-256s of the components to keep.
    fn components(&self) -> Result<HashSet<Digest>, StoreError>;
}

impl<F> Keep for F
where
    F: Fn() -> Result<HashSet<Digest>, StoreError> + Send + Sync,
{
    fn components(&self) -> Result<HashSet<Digest>, StoreError> {
        self()
    }
}

/// The ledger store keeps what its live contracts need: the component of every contract still
/// accepted or delivered, on either side (a provider's job not yet paid, a consumer's job
/// whose replicas may still fetch the component from it).
impl Keep for LedgerStore {
    fn components(&self) -> Result<HashSet<Digest>, StoreError> {
        self.reader()?.live_components()
    }
}
