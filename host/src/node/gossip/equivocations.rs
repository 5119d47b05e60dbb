//! Equivocation proofs on [`EQUIVOCATIONS_TOPIC`]: a node that detects an account signing two
//! entries at one chain position (or learns of it) spreads the proof, so every node flags the
//! account — its entries refused, its reputation 0, and what it attested forgotten by the
//! reputation book. A received proof is checked (both signatures, same signer, position and
//! network, canonical bytes) before it is kept; a forged one is rejected.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::super::topics::EQUIVOCATIONS_TOPIC;
use super::super::{Shared, wait_for};
use crate::crypto::{Digest, PeerId};
use crate::ledger::EquivocationProof;
use crate::net::{GossipVerdict, Refusal};

/// How often the log is looked at for proofs not yet spread.
const EVERY: Duration = Duration::from_secs(2);
/// Proofs remembered as spread; beyond, the set starts again (a proof spread twice costs a
/// message, nothing more).
const SPREAD: usize = 4_096;

/// Until shutdown: every [`EVERY`], publishes the proofs in the log not yet published by this
/// run, and flags their accounts in the reputation book.
pub(in crate::node) async fn run_spreader(shared: Arc<Shared>, shutdown: watch::Receiver<bool>) {
    if !shared.journal.is_kept() {
        return;
    }
    let mut spread: HashSet<Digest> = HashSet::new();
    loop {
        let proofs = shared.journal.read(|reader| reader.equivocation_proofs()).await.unwrap_or_default();
        for bytes in proofs {
            if spread.len() >= SPREAD {
                spread.clear();
            }
            if !spread.insert(Digest::of(&bytes)) {
                continue;
            }
            if let Ok(proof) = EquivocationProof::decode(&bytes) {
                shared.reputation.flag(proof.account());
            }
            if let Err(e) = shared.client.publish(EQUIVOCATIONS_TOPIC, bytes).await {
                tracing::debug!("equivocation proof not sent: {e}");
            }
        }
        tokio::select! {
            () = wait_for(shutdown.clone()) => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}

/// A gossiped proof: checked, kept (the ledger flags the account) and applied to the book.
pub(in crate::node) async fn on_gossip(shared: &Shared, from: PeerId, bytes: Vec<u8>) -> GossipVerdict {
    let Ok(store) = shared.journal.store() else { return GossipVerdict::Ignore };
    let proof = match EquivocationProof::decode(&bytes) {
        Ok(proof) => proof,
        Err(e) => {
            shared.refusals.count(Refusal::Attestation);
            tracing::info!(%from, "refused a gossiped equivocation proof: {e}");
            return GossipVerdict::Reject;
        }
    };
    let account = proof.account();
    let recorded = match store.record_proof(proof) {
        Ok(pending) => pending.done().await,
        Err(e) => Err(e.into()),
    };
    match recorded {
        Ok(newly) => {
            if newly {
                tracing::warn!(account = %account.peer_id(), "an account is proven to equivocate");
            }
            shared.reputation.flag(account);
            GossipVerdict::Accept
        }
        Err(e) => {
            tracing::info!(%from, "a gossiped equivocation proof was not kept: {e}");
            GossipVerdict::Ignore
        }
    }
}
