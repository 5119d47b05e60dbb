//! Durable storage — the only importer of rusqlite: the schemas and their migrations, the
//! event log (every accepted signed event, whole and indexed), the materialised ledger, the
//! component registry and the blob store.
//!
//! The ledger: one writer thread owns the only write connection and the in-memory [`Ledger`];
//! callers send it commands over a bounded queue and get a [`Pending`] answer back once the
//! batch holding their command is committed (group commit). Readers use their own connections
//! ([`LogReader`]); WAL mode lets them read while the writer writes.
//!
//! The [`Registry`] is a second SQLite file, needing no genesis: component manifests, the owner
//! of each name, and the peers seen. The [`BlobStore`] keeps component bytes in files named by
//! their SHA-256.
//!
//! Each has a total cap and a rule at it, so that what strangers send cannot fill the disk:
//! the blob store evicts the least recently used blobs (`blob_space.rs`), the registry forgets
//! the least recently used names (`registry_cap.rs`), the log is pruned by age and count
//! (`prune.rs`, a writer command). None drops what a live contract or this node's own
//! publication needs ([`Keep`]) nor a ledger entry; when only such things are left, the new
//! item is refused.

mod blob_space;
mod blobs;
mod command;
mod contracts;
mod keep;
mod locks;
mod peers;
mod prune;
mod reader;
mod registry;
mod registry_cap;
mod registry_error;
mod replay;
mod schema;
mod walbuf;
mod writer;
mod writer_thread;

pub use blobs::{BlobError, BlobStore, BlobWriter, DEFAULT_MAX_BLOB_STORE_BYTES};
pub use command::{Accepted, Admission, AuthorRecords, Draft, Pending, Records};
pub use contracts::{ContractRow, ContractState, ProtocolEvent, Role};
pub use keep::Keep;
pub use peers::{KnownPeer, MAX_ADDRESS_LEN, MAX_PEER_ADDRESSES, MAX_PEERS};
pub use prune::{LOG_RETENTION, MAX_PROTOCOL_EVENTS, PRUNE_BATCH, PruneRule, Pruned};
pub use reader::{HistoryEntry, LogReader, MAX_IDLE_READERS, PooledReader};
pub use registry::{Added, MAX_VERSIONS_PER_NAME, PinnedName, Registry};
pub use registry_cap::{MAX_MANIFEST_BYTES, MAX_MANIFESTS, MAX_NAMES, USE_GRANULARITY_MS};
pub use registry_error::RegistryError;
pub use replay::Replay;
pub use writer::{LedgerStore, QUEUE_CAPACITY};
pub use writer_thread::{MAX_BATCH, MAX_HELD, REORDER_WINDOW};

use crate::crypto::Digest;
use crate::ledger::{Genesis, LedgerError};
use crate::protocol::EventError;

/// What can go wrong in the store itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed (I/O, corruption, locking).
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// The database was made by a newer build.
    #[error("database schema version {found} is newer than this build knows ({known})")]
    SchemaTooNew {
        /// The database's version.
        found: u32,
        /// The newest this build knows.
        known: u32,
    },
    /// The database belongs to another network.
    #[error("this data directory belongs to network {stored}, not to the given genesis {given}")]
    GenesisMismatch {
        /// The genesis id stored.
        stored: Digest,
        /// The genesis id given.
        given: Digest,
    },
    /// The genesis given for a new database does not check.
    #[error("invalid genesis")]
    InvalidGenesis(#[source] LedgerError),
    /// An operating-system operation around the database failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A new database needs a genesis.
    #[error("no ledger in this data directory yet: give a genesis file (--genesis or CUE_GENESIS)")]
    NoGenesis,
    /// Stored data that does not check.
    #[error("store is corrupt: {0}")]
    Corrupt(String),
    /// A database error in a batch: nothing of the batch was stored.
    #[error("batch not stored: {0}")]
    BatchFailed(String),
    /// The writer thread has stopped (after a fatal error or at shutdown).
    #[error("the ledger writer has stopped")]
    Closed,
}

/// Why a submitted event was not stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// The envelope was refused (expired, replayed, ...).
    #[error(transparent)]
    Event(#[from] EventError),
    /// The ledger rules refused it.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The store failed; nothing from the batch was stored.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn stored_genesis(conn: &rusqlite::Connection) -> Result<Option<Genesis>, StoreError> {
    use rusqlite::OptionalExtension as _;
    let text: Option<Vec<u8>> =
        conn.query_row("SELECT value FROM meta WHERE key = 'genesis'", [], |row| row.get(0)).optional()?;
    text.map(|bytes| {
        let text =
            String::from_utf8(bytes).map_err(|_| StoreError::Corrupt("genesis is not UTF-8".into()))?;
        Genesis::from_toml(&text).map_err(|e| StoreError::Corrupt(e.to_string()))
    })
    .transpose()
}

fn key_from_blob(blob: Vec<u8>) -> Result<crate::crypto::PublicKey, StoreError> {
    let bytes: [u8; 32] =
        blob.try_into().map_err(|_| StoreError::Corrupt("account key is not 32 bytes".into()))?;
    crate::crypto::PublicKey::from_bytes(bytes).map_err(|_| StoreError::Corrupt("invalid account key".into()))
}

fn digest_from_blob(blob: Vec<u8>) -> Result<Digest, StoreError> {
    blob.try_into().map(Digest).map_err(|_| StoreError::Corrupt("hash is not 32 bytes".into()))
}
