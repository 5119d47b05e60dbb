//! Funding a job's offer before any provider works on it: the consumer's `TOKEN_LOCK` of the
//! offer for one job with one provider, signed and stored before the request leaves (so a
//! restarted consumer never signs another entry at its position), sent with the request and
//! gossiped; and the lock's end — the payment (`TOKEN_RELEASE` paying what the receipt makes
//! due, the rest back) or the refund of an attempt that delivered nothing.

use super::Job;
use crate::crypto::{Digest, PublicKey};
use crate::store::{Draft, Records};

impl Job {
    /// Locks `offer` for this job with `provider`: answers the lock's hash and bytes. Refused
    /// when this node's balance (after its other open locks) cannot cover the offer.
    pub(super) async fn lock_offer(
        &self,
        provider: PublicKey,
        offer: u64,
    ) -> Result<(Digest, Vec<u8>), String> {
        let shared = &self.shared;
        let draft = Draft::Lock { to: provider, amount: offer, job: self.id };
        let locked = shared
            .journal
            .author(shared.keypair.clone(), draft, |_| Records::default())
            .await
            .map_err(|e| format!("this node cannot fund the offer of {offer}: {e}"))?;
        let bytes = locked.event.bytes().to_vec();
        shared.outbox.gossip(bytes.clone()).await;
        Ok((locked.event.hash(), bytes))
    }

    /// Ends `lock` paying `paid` of it to its provider (for `receipt`, when one was
    /// delivered); the rest comes back. Stored with `then` in one commit; answers the release's
    /// bytes, which the caller tells the provider and gossips.
    pub(super) async fn release(
        &self,
        lock: Digest,
        paid: u64,
        receipt: Option<Digest>,
        then: impl FnOnce(Digest) -> Records + Send + 'static,
    ) -> Result<Vec<u8>, crate::node::NodeError> {
        let shared = &self.shared;
        let draft = Draft::Release { lock, paid, receipt, evidence: None };
        let released = shared.journal.author(shared.keypair.clone(), draft, move |e| then(e.hash())).await?;
        Ok(released.event.bytes().to_vec())
    }

    /// Gives back a lock whose attempt delivered nothing (`records` stored with the refund);
    /// the refund is gossiped. A failure is logged: the lock then stays open until the
    /// consumer's sweep of stale locks refunds it.
    pub(super) async fn refund(&self, lock: Digest, records: Records) {
        match self.release(lock, 0, None, move |_| records).await {
            Ok(bytes) => self.shared.outbox.gossip(bytes).await,
            Err(e) => tracing::warn!(%lock, "a lock could not be refunded: {e}"),
        }
    }
}
