//! Outcome attestations: after each contract this node signs its verdict on the other side,
//! keeps it, and gossips it on [`REPUTATION_TOPIC`]; attestations from others are checked and
//! fed to the reputation book (`market::reputation`), which weighs them by this node's trust
//! in their authors.

use super::{Shared, now_ms, provide};
use crate::crypto::{Digest, PeerId, PublicKey};
use crate::market::{Attestation, Recorded};
use crate::net::Refusal;
use crate::protocol::{JobId, MAX_LIFETIME_MS, OutcomeAttestation, Signed, Validity, Verdict};
use crate::store::{ContractRow, ProtocolEvent};

/// Gossip topic of signed outcome attestations.
pub const REPUTATION_TOPIC: &str = "cue/reputation/1";

fn market_verdict(verdict: Verdict) -> crate::market::Verdict {
    match verdict {
        Verdict::Completed => crate::market::Verdict::Completed,
        Verdict::Default => crate::market::Verdict::Default,
        Verdict::InvalidResult => crate::market::Verdict::InvalidResult,
        Verdict::Timeout => crate::market::Verdict::Timeout,
    }
}

/// Signs, keeps and gossips this node's verdict on `subject` for a contract; `rows` (the
/// contract's new state) are stored in the same commit as the attestation.
pub(super) async fn attest(
    shared: &Shared,
    contract: Digest,
    job: JobId,
    subject: PublicKey,
    verdict: Verdict,
    evidence: Vec<Vec<u8>>,
    rows: Vec<ContractRow>,
) {
    let body = OutcomeAttestation { contract, subject, verdict, evidence };
    let signed = match Signed::sign(&shared.keypair, body, Validity::starting(now_ms(), MAX_LIFETIME_MS)) {
        Ok(signed) => signed,
        Err(e) => {
            tracing::error!("cannot sign an attestation: {e}");
            return;
        }
    };
    let attestation = Attestation {
        attester: shared.keypair.public(),
        subject,
        verdict: market_verdict(verdict),
        at_ms: now_ms(),
    };
    if let Ok(mut book) = shared.reputation.lock() {
        book.record(attestation, now_ms());
    }
    let event = ProtocolEvent::of(&signed, Some(job), vec![(contract, "contract")]);
    provide::store_all(shared, vec![event], rows).await;
    if let Err(e) = shared.client.publish(REPUTATION_TOPIC, signed.bytes().to_vec()).await {
        tracing::debug!("attestation gossip not sent: {e}");
    }
}

/// A gossiped attestation: check the signature, then let the book weigh it.
pub(super) async fn on_gossip(shared: &Shared, from: PeerId, bytes: Vec<u8>) {
    let signed = match Signed::<OutcomeAttestation>::decode(&bytes)
        .and_then(|s| s.verify_live(now_ms()).map(|()| s))
    {
        Ok(signed) if signed.verify_signature().is_ok() => signed,
        Ok(_) | Err(_) => {
            shared.refusals.count(Refusal::Record);
            tracing::info!(%from, "refused a gossiped attestation");
            return;
        }
    };
    let body = signed.body();
    let attestation = Attestation {
        attester: signed.header().signer,
        subject: body.subject,
        verdict: market_verdict(body.verdict),
        at_ms: signed.header().timestamp_ms,
    };
    let recorded = shared.reputation.lock().map(|mut book| book.record(attestation, now_ms())).ok();
    if recorded == Some(Recorded::New) {
        provide::keep(shared, ProtocolEvent::of(&signed, None, vec![(body.contract, "contract")])).await;
    }
}
