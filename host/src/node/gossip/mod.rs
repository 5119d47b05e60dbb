//! What peers gossip to this node, checked and kept: ledger entries ([`ledger`]: applied,
//! with a catch-up on the sender's chain when one comes early), outcome attestations
//! ([`attestations`]: weighed by the reputation book, logged in batches; and the attester,
//! which signs this node's own verdicts), equivocation proofs ([`equivocations`]: kept, the
//! account flagged; and the spreader, which publishes the proofs this node holds), and
//! component manifests ([`components`]). Publishing
//! ledger entries is the outbox's (`node/outbox.rs`).

pub(super) mod attestations;
pub(super) mod components;
pub(super) mod equivocations;
pub(super) mod ledger;

pub(super) use attestations::UnloggedAttestations;

use super::topics::{COMPONENTS_TOPIC, EQUIVOCATIONS_TOPIC, LEDGER_TOPIC, REPUTATION_TOPIC};
use super::{NodeError, Shared};

/// Subscribes to every topic this node reads (the ledger's only when it keeps a ledger).
pub(super) async fn subscribe(shared: &Shared) -> Result<(), NodeError> {
    shared.client.subscribe(COMPONENTS_TOPIC).await?;
    shared.client.subscribe(REPUTATION_TOPIC).await?;
    if shared.journal.is_kept() {
        shared.client.subscribe(LEDGER_TOPIC).await?;
        shared.client.subscribe(EQUIVOCATIONS_TOPIC).await?;
    }
    Ok(())
}
