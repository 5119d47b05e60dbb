//! `/cue-rpc/1.0.0`: the control messages peers exchange with request-response (CBOR), and the
//! size limit of each direction.
//!
//! Every message that carries a claim (a manifest, a component manifest) carries it as the
//! signed event's canonical bytes: the receiver verifies the signature itself and never trusts
//! the peer that relayed it. See `docs/protocol.md` for every message and field.

use serde::{Deserialize, Serialize};

/// The protocol name of the control channel.
pub const RPC_PROTOCOL: &str = "/cue-rpc/1.0.0";
/// Largest request accepted, in bytes: requests are small; bigger input is refused unread.
pub const MAX_REQUEST_BYTES: u64 = 64 * 1024;
/// Largest response accepted, in bytes: at most [`MAX_COMPONENT_VERSIONS`] signed manifests.
pub const MAX_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;
/// Most component manifests one response carries (the newest versions first).
pub const MAX_COMPONENT_VERSIONS: usize = 64;
/// Most ledger entries one response carries.
pub const MAX_CHAIN_ENTRIES: u32 = 256;

/// A request on `/cue-rpc/1.0.0`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RpcRequest {
    /// "Send me your signed resource manifest" (providers answer [`RpcResponse::Manifest`]).
    GetManifest,
    /// "Send me the signed component manifests you hold for this name."
    GetComponents {
        /// The component name.
        name: String,
    },
    /// "Run this job": a signed `COMPUTE_REQUEST`, canonical bytes. Answered `Accepted` (the
    /// signed contract) or `Rejected` (a signed reject with a typed reason).
    Compute(#[serde(with = "serde_bytes")] Vec<u8>),
    /// "Here is my payment": a signed ledger entry — a `TOKEN_RELEASE` of a contract's lock, a
    /// `TOKEN_TRANSFER` that references a receipt, or any other entry the provider should hold
    /// (a `TOKEN_LOCK` sent ahead of a `Compute`). Answered `Paid` once applied to the
    /// provider's ledger.
    Pay(#[serde(with = "serde_bytes")] Vec<u8>),
    /// "Send me this account's ledger entries from `from_seq` on" (catching up on a chain
    /// after a gossiped entry arrived out of order).
    GetChain {
        /// The account (ed25519 public key).
        #[serde(with = "serde_bytes")]
        account: Vec<u8>,
        /// The first sequence number wanted.
        from_seq: u64,
    },
}

/// An answer on `/cue-rpc/1.0.0`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RpcResponse {
    /// The provider's signed `ResourceManifest`, canonical bytes.
    Manifest(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Signed `ComponentManifest`s, canonical bytes each, newest version first.
    Components(Vec<serde_bytes::ByteBuf>),
    /// Signed ledger entries, canonical bytes each, in chain order (at most
    /// [`MAX_CHAIN_ENTRIES`]; ask again from the next sequence for more).
    Chain(Vec<serde_bytes::ByteBuf>),
    /// A signed `COMPUTE_ACCEPT` (the contract), canonical bytes.
    Accepted(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A signed `COMPUTE_REJECT`, canonical bytes.
    Rejected(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The payment is in the provider's ledger.
    Paid,
    /// The request was understood and refused.
    Refused {
        /// Why, for programs.
        reason: RefusalReason,
        /// Why, for people.
        message: String,
    },
}

/// Why a peer refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RefusalReason {
    /// This node does not provide compute (asked for a manifest).
    NotAProvider,
    /// Nothing is known under that name.
    NotFound,
    /// The request was malformed or out of bounds.
    BadRequest,
    /// The node is overloaded; try later or elsewhere.
    Busy,
}

impl RpcResponse {
    /// A refusal with a message.
    pub fn refused(reason: RefusalReason, message: impl Into<String>) -> RpcResponse {
        RpcResponse::Refused { reason, message: message.into() }
    }
}
