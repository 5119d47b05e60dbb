//! The gossipsub topics a node publishes and subscribes to (docs/protocol.md, "Gossip"). The
//! network layer scopes each to the node's network (`<topic>/<network tag>`).

/// Signed component manifests (`cue publish`).
pub const COMPONENTS_TOPIC: &str = "cue/components/1";
/// Signed ledger entries, in batches (`protocol::encode_entry_batch`).
pub const LEDGER_TOPIC: &str = "cue/ledger/2";
/// Signed outcome attestations: sets, or single ones from older nodes.
pub const REPUTATION_TOPIC: &str = "cue/reputation/1";
/// Equivocation proofs (`ledger::EquivocationProof`), one per message.
pub const EQUIVOCATIONS_TOPIC: &str = "cue/equivocations/1";
