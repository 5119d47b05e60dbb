//! The protocol: event kinds, the `Signed<T>` envelope and its canonical encoding, replay
//! protection, and the event bodies. Pure: no I/O, no clock (callers pass the time in).
//!
//! See `docs/ledger.md` for the byte-level specification, and `docs/market.md` for the
//! component manifest and component references.

pub(crate) mod codec;
mod component;
mod compute;
mod envelope;
mod escrow;
mod event;
mod kind;
mod nonce;
mod token;

pub use component::{
    ComponentError, ComponentManifest, ComponentRef, MAX_NAME_LEN, MAX_WORLD_BYTES, NameError, RefError,
    check_name, open_component_manifest, verify_component_manifest,
};
pub use compute::{
    ComputeAccept, ComputeReject, ComputeRequest, JobId, JobInput, MAX_ATTESTATIONS_PER_SET, MAX_CALL_BYTES,
    MAX_EVIDENCE, MAX_MESSAGE_BYTES, MAX_STREAMED_CALL_BYTES, OutcomeAttestation, OutcomeAttestations,
    Receipt, RejectReason, RunOutcome, Verdict,
};
pub use envelope::{
    EventBody, Header, MAX_CLOCK_SKEW_MS, MAX_EVENT_BYTES, MAX_LIFETIME_MS, PROTOCOL_VERSION, Signed,
    Validity,
};
pub use escrow::{ClaimEvidence, Lock, Release};
pub use event::{
    Event, LedgerEntry, MAX_ENTRIES_PER_BATCH, Verified, decode_entry_batch, encode_entry_batch,
};
pub use kind::EventKind;
pub use nonce::{DEFAULT_NONCE_CAPACITY, DEFAULT_SIGNER_NONCES, SeenNonces};
pub use token::{ChainLink, Mint, PaymentReference, ReferenceParseError, Transfer};

/// Why an event was refused. Each verification failure has its own variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// Not the canonical CBOR shape of an event.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// Decodes, but is not the one canonical encoding of what it contains.
    #[error("event is not canonically encoded")]
    NonCanonical,
    /// Bigger than [`MAX_EVENT_BYTES`].
    #[error("event of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Bytes given.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A kind tag no version of this protocol defines.
    #[error("unknown event kind {0:?}")]
    UnknownKind(String),
    /// A kind whose body this build does not have yet.
    #[error("event kind {0} is not supported by this build")]
    UnsupportedKind(EventKind),
    /// A protocol major version this build does not speak.
    #[error("unknown protocol major version {found} (this build speaks {supported}.x)")]
    UnknownMajorVersion {
        /// The version in the header.
        found: semver::Version,
        /// The major version understood.
        supported: u64,
    },
    /// An event of another kind than the one expected here.
    #[error("wrong domain: expected a {expected} event, found {found}")]
    WrongDomain {
        /// The kind expected.
        expected: EventKind,
        /// The kind in the header.
        found: EventKind,
    },
    /// The signer field is not a valid ed25519 public key.
    #[error("the signer is not a valid ed25519 public key")]
    InvalidSigner,
    /// The signature does not verify (forged or altered).
    #[error("bad signature: the event was not signed by its signer, or was altered")]
    BadSignature,
    /// Expired before it reached us.
    #[error("expired at {expires_ms} ms (now {now_ms} ms)")]
    Expired {
        /// The header's expiry.
        expires_ms: u64,
        /// The receiver's clock.
        now_ms: u64,
    },
    /// Timestamped further ahead than the allowed clock skew.
    #[error("timestamp {timestamp_ms} ms is in the future (now {now_ms} ms)")]
    FromTheFuture {
        /// The header's timestamp.
        timestamp_ms: u64,
        /// The receiver's clock.
        now_ms: u64,
    },
    /// Expiry before the timestamp, or a lifetime beyond [`MAX_LIFETIME_MS`].
    #[error("bad lifetime: timestamp {timestamp_ms} ms, expiry {expires_ms} ms")]
    BadLifetime {
        /// The header's timestamp.
        timestamp_ms: u64,
        /// The header's expiry.
        expires_ms: u64,
    },
    /// This signer's nonce was already seen: a replay.
    #[error("replay: this event (signer and nonce) was already accepted")]
    Replay,
    /// The seen-nonce window is full of live nonces; retry later.
    #[error("replay window full ({capacity} live nonces); retry later")]
    ReplayWindowFull {
        /// The window's capacity.
        capacity: usize,
    },
    /// This signer holds its whole share of the seen-nonce window; retry when some of its
    /// events expire (other signers are still served).
    #[error("too many live events from this signer ({per_signer}); retry later")]
    SignerWindowFull {
        /// The most live nonces one signer may hold.
        per_signer: usize,
    },
    /// The operating system could not supply a nonce.
    #[error("cannot sign: {0}")]
    Signing(String),
}
