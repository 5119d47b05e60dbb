//! The gossipsub topics a node publishes and subscribes to (docs/protocol.md, "Gossip").

/// Signed component manifests (`cue publish`).
pub const COMPONENTS_TOPIC: &str = "cue/components/1";
/// Signed ledger entries, in batches (`protocol::encode_entry_batch`).
pub const LEDGER_TOPIC: &str = "cue/ledger/2";
/// One signed ledger entry per message, as nodes before batches gossip them: still subscribed
/// to and accepted, no longer published on.
pub const LEDGER_TOPIC_V1: &str = "cue/ledger/1";
/// Signed outcome attestations: sets, or single ones from older nodes.
pub const REPUTATION_TOPIC: &str = "cue/reputation/1";
