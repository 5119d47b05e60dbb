//! The kinds of signed event in the protocol and their domain-separation tags.

use std::fmt;

/// Every kind of signed event in Cue, in one place.
///
/// The tag of a kind is written in the event header and mixed into the signed message, so a
/// signature made for one kind can never be presented as another. [`Event`](super::Event)
/// decodes the ledger kinds ([`TokenMint`](EventKind::TokenMint),
/// [`TokenTransfer`](EventKind::TokenTransfer), [`TokenLock`](EventKind::TokenLock),
/// [`TokenRelease`](EventKind::TokenRelease)) and refuses the others as
/// [`EventError::UnsupportedKind`](super::EventError::UnsupportedKind): the compute and
/// reputation kinds are read as `Signed<T>` of their bodies where they are expected.
/// [`ResourceManifest`](EventKind::ResourceManifest) and
/// [`ComponentManifest`](EventKind::ComponentManifest) have bodies but are not ledger events:
/// [`Event`](super::Event) refuses them, and they are read with
/// [`open_manifest`](crate::market::open_manifest) and
/// [`open_component_manifest`](super::open_component_manifest).
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
    /// A consumer sets an offer aside for one job with one provider (the escrow).
    TokenLock,
    /// A lock ends: paid to its provider, the rest back to its consumer.
    TokenRelease,
    /// A peer's verdict on a completed or defaulted contract (reputation).
    OutcomeAttestation,
    /// A peer's verdicts on several contracts under one signature (reputation).
    OutcomeAttestations,
    /// A provider's measured capacity and prices (the market); body in
    /// [`market::ResourceManifest`](crate::market::ResourceManifest).
    ResourceManifest,
    /// A publisher's claim that a name and version are a component with a given hash (the
    /// registry); body in [`ComponentManifest`](super::ComponentManifest).
    ComponentManifest,
}

impl EventKind {
    /// All kinds, in tag order.
    pub const ALL: [EventKind; 12] = [
        EventKind::ComputeRequest,
        EventKind::ComputeAccept,
        EventKind::ComputeReject,
        EventKind::Receipt,
        EventKind::TokenMint,
        EventKind::TokenTransfer,
        EventKind::OutcomeAttestation,
        EventKind::ResourceManifest,
        EventKind::ComponentManifest,
        EventKind::OutcomeAttestations,
        EventKind::TokenLock,
        EventKind::TokenRelease,
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
            EventKind::ComponentManifest => "cue/component-manifest",
            EventKind::OutcomeAttestations => "cue/outcome-attestations",
            EventKind::TokenLock => "cue/token-lock",
            EventKind::TokenRelease => "cue/token-release",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_tag_and_is_found_by_it() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::from_tag(kind.tag()), Some(kind));
        }
        let mut tags: Vec<_> = EventKind::ALL.iter().map(|k| k.tag()).collect();
        tags.sort_unstable();
        tags.dedup();
        assert_eq!(tags.len(), EventKind::ALL.len(), "tags are distinct");
        assert_eq!(EventKind::ComponentManifest.tag(), "cue/component-manifest");
    }
}
