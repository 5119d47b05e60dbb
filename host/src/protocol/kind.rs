//! The kinds of signed event in the protocol and their domain-separation tags.

use std::fmt;

/// Every kind of signed event in Cue, in one place.
///
/// The tag of a kind is written in the event header and mixed into the signed message, so a
/// signature made for one kind can never be presented as another. Bodies exist today for the
/// ledger kinds ([`TokenMint`](EventKind::TokenMint), [`TokenTransfer`](EventKind::TokenTransfer));
/// the compute and reputation kinds reserve their tags here and get bodies with the contract and
/// reputation issues. Until then an event of such a kind is refused as
/// [`EventError::UnsupportedKind`](super::EventError::UnsupportedKind).
/// [`ResourceManifest`](EventKind::ResourceManifest) has a body but is not a ledger event:
/// [`Event`](super::Event) refuses it, and it is read with `Signed::<ResourceManifest>::decode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum EventKind {
    /// A consumer asks a provider to run a job (negotiation).
    ComputeRequest,
    /// A provider binds itself to run a job (the contract).
    ComputeAccept,
    /// A provider declines a request.
    ComputeReject,
    /// A provider's signed account of a run: hashes and fuel.
    Receipt,
    /// The mint authority creates tokens.
    TokenMint,
    /// An account pays another.
    TokenTransfer,
    /// A peer's verdict on a completed or defaulted contract (reputation).
    OutcomeAttestation,
    /// A provider's measured capacity and prices (the market); body in
    /// [`market::ResourceManifest`](crate::market::ResourceManifest).
    ResourceManifest,
}

impl EventKind {
    /// All kinds, in tag order.
    pub const ALL: [EventKind; 8] = [
        EventKind::ComputeRequest,
        EventKind::ComputeAccept,
        EventKind::ComputeReject,
        EventKind::Receipt,
        EventKind::TokenMint,
        EventKind::TokenTransfer,
        EventKind::OutcomeAttestation,
        EventKind::ResourceManifest,
    ];

    /// The domain-separation tag (ASCII, written in the header and signed).
    pub const fn tag(self) -> &'static str {
        match self {
            EventKind::ComputeRequest => "cue/compute-request",
            EventKind::ComputeAccept => "cue/compute-accept",
            EventKind::ComputeReject => "cue/compute-reject",
            EventKind::Receipt => "cue/receipt",
            EventKind::TokenMint => "cue/token-mint",
            EventKind::TokenTransfer => "cue/token-transfer",
            EventKind::OutcomeAttestation => "cue/outcome-attestation",
            EventKind::ResourceManifest => "cue/resource-manifest",
        }
    }

    /// The kind with this tag, if any.
    pub fn from_tag(tag: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|kind| kind.tag() == tag)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag())
    }
}
