//! Outcome attestations: after each contract this node stores its verdict on the other side
//! (owed, in the contract's commit) and counts it in its book; the attester signs the verdicts
//! owed in sets (`cue/outcome-attestations`, one signature for up to
//! [`MAX_ATTESTATIONS_PER_SET`]), stores each set, and gossips it on [`REPUTATION_TOPIC`].
//! Attestations from others — sets, or single `cue/outcome-attestation`s — are checked and fed
//! to the reputation book (`market::reputation`), which weighs them by this node's trust in
//! their authors.

use std::sync::Arc;

use tokio::sync::watch;

use super::{Shared, now_ms, provide};
use crate::crypto::{Digest, PeerId, PublicKey};
use crate::market::{Attestation, Recorded};
use crate::net::Refusal;
use crate::protocol::{
    MAX_ATTESTATIONS_PER_SET, MAX_EVENT_BYTES, MAX_LIFETIME_MS, OutcomeAttestation, OutcomeAttestations,
    Signed, Validity, Verdict,
};
use crate::store::{ProtocolEvent, Records};

/// Gossip topic of signed outcome attestations.
pub const REPUTATION_TOPIC: &str = "cue/reputation/1";
/// This node's verdicts wait this long for others before they are signed together in a set.
pub(super) const ATTEST_WAIT: std::time::Duration = std::time::Duration::from_millis(50);
/// Bytes of attestation bodies in one set at most: with its header and signature the set
/// stays within [`MAX_EVENT_BYTES`].
const MAX_SET_BYTES: usize = MAX_EVENT_BYTES - 1024;
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

/// Stores this node's verdict on `subject` for a contract with `with` (one commit), counts it
/// in the book, and leaves it to the attester ([`run_attester`]) to sign and gossip with the
/// others that come within [`ATTEST_WAIT`].
pub(super) async fn attest(
    shared: &Shared,
    contract: Digest,
    subject: PublicKey,
    verdict: Verdict,
    evidence: Vec<Vec<u8>>,
    mut with: Records,
) {
    let owed = owe(contract, subject, verdict, evidence);
    with.owe.push(owed.to_body_bytes());
    if provide::store_records(shared, with).await {
        owed_stored(shared, &owed);
    }
}

/// This node's verdict on `subject` for a contract, to be stored in [`Records::owe`] (as its
/// body bytes) with the contract's end; once stored, tell [`owed_stored`].
pub(super) fn owe(
    contract: Digest,
    subject: PublicKey,
    verdict: Verdict,
    evidence: Vec<Vec<u8>>,
) -> OutcomeAttestation {
    OutcomeAttestation { contract, subject, verdict, evidence }
}

/// Once an owed verdict is stored: counts it in the book (it is this node's own experience)
/// and wakes the attester.
pub(super) fn owed_stored(shared: &Shared, owed: &OutcomeAttestation) {
    let attestation = Attestation {
        attester: shared.keypair.public(),
        subject: owed.subject,
        verdict: market_verdict(owed.verdict),
        at_ms: now_ms(),
    };
    if let Ok(mut book) = shared.reputation.lock() {
        book.record(attestation, now_ms());
    }
    shared.attesting.notify_one();
}

/// Signs this node's owed verdicts in sets: woken by [`owed_stored`], it waits
/// [`ATTEST_WAIT`] for more, then signs, stores and gossips sets until none is owed. At start
/// it signs what a previous run left owed; at shutdown, what is owed by then.
pub(super) async fn run_attester(shared: Arc<Shared>, shutdown: watch::Receiver<bool>) {
    let shared = &shared;
    super::drain_in_batches(shutdown, &shared.attesting, ATTEST_WAIT, || attest_owed(shared)).await
}

/// Signs one set of the oldest owed verdicts, stores it (deleting them, in one commit) and
/// gossips it; answers whether more may be owed.
async fn attest_owed(shared: &Shared) -> bool {
    let Some(store) = shared.ledger.clone() else { return false };
    let limit = MAX_ATTESTATIONS_PER_SET as u32;
    let owed = tokio::task::spawn_blocking(move || store.reader()?.owed_attestations(limit)).await;
    let owed = match owed {
        Ok(Ok(owed)) => owed,
        Ok(Err(e)) => {
            tracing::error!("cannot read the owed attestations: {e}");
            return false;
        }
        Err(_) => return false,
    };
    let full = owed.len() == MAX_ATTESTATIONS_PER_SET;
    let (mut ids, mut attestations, mut size) = (Vec::new(), Vec::new(), 0);
    for (id, body) in owed {
        if size + body.len() > MAX_SET_BYTES && !attestations.is_empty() {
            break;
        }
        match OutcomeAttestation::from_body_bytes(&body) {
            Ok(attestation) => {
                size += body.len();
                attestations.push(attestation);
            }
            // Written by this node, so never expected; dropped rather than blocking the rest.
            Err(e) => tracing::error!("an owed attestation does not decode, dropped: {e}"),
        }
        ids.push(id);
    }
    if ids.is_empty() {
        return false;
    }
    let more = full || attestations.len() < ids.len();
    let mut records = Records { attested: ids, ..Records::default() };
    let mut signed = None;
    if !attestations.is_empty() {
        let links = attestations.iter().map(|a| (a.contract, "contract")).collect();
        let validity = Validity::starting(now_ms(), MAX_LIFETIME_MS);
        match Signed::sign(&shared.keypair, OutcomeAttestations { attestations }, validity) {
            Ok(set) => {
                records.events.push(ProtocolEvent::of(&set, None, links));
                signed = Some(set);
            }
            Err(e) => {
                tracing::error!("cannot sign attestations: {e}");
                return false;
            }
        }
    }
    if !provide::store_records(shared, records).await {
        return false;
    }
    if let Some(signed) = signed
        && let Err(e) = shared.client.publish(REPUTATION_TOPIC, signed.bytes().to_vec()).await
    {
        tracing::debug!("attestation gossip not sent: {e}");
    }
    more
}

/// A gossiped attestation or set of them: check the signature (once for a set), then let the
/// book weigh each; a set that tells the book anything new is logged.
pub(super) async fn on_gossip(shared: &Shared, from: PeerId, bytes: Vec<u8>) {
    let refuse = || {
        shared.refusals.count(Refusal::Record);
        tracing::info!(%from, "refused a gossiped attestation");
    };
    let (attester, at_ms, attestations, event) = match Signed::<OutcomeAttestations>::decode(&bytes) {
        Ok(set) => {
            if set.verify_live(now_ms()).is_err() || set.verify_signature().is_err() {
                return refuse();
            }
            let links = set.body().attestations.iter().map(|a| (a.contract, "contract")).collect();
            let event = ProtocolEvent::of(&set, None, links);
            (set.header().signer, set.header().timestamp_ms, set.body().attestations.clone(), event)
        }
        Err(_) => match Signed::<OutcomeAttestation>::decode(&bytes) {
            Ok(one) if one.verify_live(now_ms()).is_ok() && one.verify_signature().is_ok() => {
                let event = ProtocolEvent::of(&one, None, vec![(one.body().contract, "contract")]);
                (one.header().signer, one.header().timestamp_ms, vec![one.body().clone()], event)
            }
            Ok(_) | Err(_) => return refuse(),
        },
    };
    let new = shared
        .reputation
        .lock()
        .map(|mut book| {
            let mut new = false;
            for body in attestations {
                let attestation = Attestation {
                    attester,
                    subject: body.subject,
                    verdict: market_verdict(body.verdict),
                    at_ms,
                };
                new |= book.record(attestation, now_ms()) == Recorded::New;
            }
            new
        })
        .unwrap_or(false);
    if new {
        log_gossiped(shared, event).await;
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
