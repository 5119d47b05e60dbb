//! Outcome attestations: after each contract this node signs its verdict on the other side,
//! keeps it, and gossips it on [`REPUTATION_TOPIC`]; attestations from others are checked and
//! fed to the reputation book (`market::reputation`), which weighs them by this node's trust
//! in their authors.

use super::{Shared, now_ms, provide};
use crate::crypto::{Digest, PeerId, PublicKey};
use crate::market::{Attestation, Recorded};
use crate::net::Refusal;
use crate::protocol::{JobId, MAX_LIFETIME_MS, OutcomeAttestation, Signed, Validity, Verdict};
use crate::store::{ProtocolEvent, Records};

/// Gossip topic of signed outcome attestations.
pub const REPUTATION_TOPIC: &str = "cue/reputation/1";
/// Gossiped attestations are logged together: the first of a batch waits this long for more.
const LOG_BATCH_WAIT: std::time::Duration = std::time::Duration::from_millis(50);
/// Most gossiped attestations waiting to be logged; one beyond is logged on its own.
const MAX_UNLOGGED: usize = 1024;

fn market_verdict(verdict: Verdict) -> crate::market::Verdict {
    match verdict {
        Verdict::Completed => crate::market::Verdict::Completed,
        Verdict::Default => crate::market::Verdict::Default,
        Verdict::InvalidResult => crate::market::Verdict::InvalidResult,
        Verdict::Timeout => crate::market::Verdict::Timeout,
    }
}

/// Signs, keeps and gossips this node's verdict on `subject` for a contract; `with` is stored
/// in the same commit as the attestation.
pub(super) async fn attest(
    shared: &Shared,
    contract: Digest,
    job: JobId,
    subject: PublicKey,
    verdict: Verdict,
    evidence: Vec<Vec<u8>>,
    with: Records,
) {
    let Some(signed) = sign(shared, contract, subject, verdict, evidence) else { return };
    let Records { mut events, rows } = with;
    events.push(event(&signed, job));
    provide::store_all(shared, events, rows).await;
    announce(shared, &signed).await;
}

/// This node's signed verdict on `subject` for a contract (`None`, logged, if it cannot sign).
pub(super) fn sign(
    shared: &Shared,
    contract: Digest,
    subject: PublicKey,
    verdict: Verdict,
    evidence: Vec<Vec<u8>>,
) -> Option<Signed<OutcomeAttestation>> {
    let body = OutcomeAttestation { contract, subject, verdict, evidence };
    Signed::sign(&shared.keypair, body, Validity::starting(now_ms(), MAX_LIFETIME_MS))
        .inspect_err(|e| tracing::error!("cannot sign an attestation: {e}"))
        .ok()
}

/// The log entry of an attestation, linked to its contract.
pub(super) fn event(signed: &Signed<OutcomeAttestation>, job: JobId) -> ProtocolEvent {
    ProtocolEvent::of(signed, Some(job), vec![(signed.body().contract, "contract")])
}

/// Once this node's attestation is stored: counts it in the book and gossips it.
pub(super) async fn announce(shared: &Shared, signed: &Signed<OutcomeAttestation>) {
    let body = signed.body();
    let attestation = Attestation {
        attester: shared.keypair.public(),
        subject: body.subject,
        verdict: market_verdict(body.verdict),
        at_ms: now_ms(),
    };
    if let Ok(mut book) = shared.reputation.lock() {
        book.record(attestation, now_ms());
    }
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
        log_gossiped(shared, ProtocolEvent::of(&signed, None, vec![(body.contract, "contract")])).await;
    }
}

/// Logs a gossiped attestation with the others that come within [`LOG_BATCH_WAIT`] (one
/// commit for many: under load a node receives one per contract of its peers). The first of a
/// batch stores it; until then the batch is only in memory — an attestation lost to a crash
/// in between is someone else's claim, counted again when it is gossiped again.
async fn log_gossiped(shared: &Shared, event: ProtocolEvent) {
    // `Err`: no room, the event is given back to be logged on its own.
    let first = match shared.unlogged.lock() {
        Ok(mut unlogged) if unlogged.len() < MAX_UNLOGGED => {
            unlogged.push(event);
            Ok(unlogged.len() == 1)
        }
        _ => Err(event),
    };
    let first = match first {
        Ok(first) => first,
        Err(event) => return provide::keep(shared, event).await,
    };
    if first {
        tokio::time::sleep(LOG_BATCH_WAIT).await;
        let batch =
            shared.unlogged.lock().map(|mut unlogged| std::mem::take(&mut *unlogged)).unwrap_or_default();
        let _ = provide::store_all(shared, batch, Vec::new()).await;
    }
}
