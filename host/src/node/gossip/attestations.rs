//! Outcome attestations on [`REPUTATION_TOPIC`]. The attester signs this node's owed verdicts
//! in sets (`cue/outcome-attestations`, one signature for up to [`MAX_ATTESTATIONS_PER_SET`]),
//! stores each set and gossips it. Attestations from others — sets, or single
//! `cue/outcome-attestation`s — are checked and fed to the reputation book, which weighs them
//! by this node's trust in their authors; those that tell it something new are logged in
//! batches. An attestation counts only with its evidence: the contract it names, signed by
//! both parties, one of them its attester (`contract::evidence`); the attester puts it in.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::super::topics::REPUTATION_TOPIC;
use super::super::{Shared, drain_in_batches, lock};
use crate::clock::now_ms;
use crate::contract::evidence;
use crate::crypto::{PeerId, PublicKey};
use crate::net::{GossipVerdict, Refusal};
use crate::protocol::{
    ComputeAccept, MAX_ATTESTATIONS_PER_SET, MAX_EVENT_BYTES, MAX_EVIDENCE, MAX_LIFETIME_MS,
    OutcomeAttestation, OutcomeAttestations, Signed, Validity,
};
use crate::store::{PooledReader, ProtocolEvent, Records, StoreError};

/// This node's verdicts wait this long for others before they are signed together in a set.
const ATTEST_WAIT: std::time::Duration = std::time::Duration::from_millis(50);
/// Bytes of attestation bodies in one set at most: with its header and signature the set
/// stays within [`MAX_EVENT_BYTES`].
const MAX_SET_BYTES: usize = MAX_EVENT_BYTES - 1024;
/// Gossiped attestations are logged together: the first of a batch waits this long for more.
const LOG_BATCH_WAIT: std::time::Duration = std::time::Duration::from_millis(50);
/// Most gossiped attestations waiting to be logged; one beyond is logged on its own.
const MAX_UNLOGGED: usize = 1024;

/// Gossiped attestations counted in the book and waiting to be logged together (at most
/// [`MAX_UNLOGGED`]).
#[derive(Default)]
pub(in crate::node) struct UnloggedAttestations {
    batch: Mutex<Vec<ProtocolEvent>>,
}

/// Signs this node's owed verdicts in sets: woken when one is counted, it waits
/// [`ATTEST_WAIT`] for more, then signs, stores and gossips sets until none is owed. At start
/// it signs what a previous run left owed; at shutdown, what is owed by then.
pub(in crate::node) async fn run_attester(shared: Arc<Shared>, shutdown: watch::Receiver<bool>) {
    let shared = &shared;
    drain_in_batches(shutdown, shared.reputation.owed_signal(), ATTEST_WAIT, || attest_owed(shared)).await
}

/// Signs one set of the oldest owed verdicts, stores it (deleting them, in one commit) and
/// gossips it; answers whether more may be owed.
async fn attest_owed(shared: &Shared) -> bool {
    if !shared.journal.is_kept() {
        return false;
    }
    let limit = MAX_ATTESTATIONS_PER_SET as u32;
    let read = move |reader: &PooledReader<'_>| -> Result<Vec<Owed>, StoreError> {
        let owed = reader.owed_attestations(limit)?;
        Ok(owed.into_iter().map(|(id, body)| (id, contract_of(reader, &body), body)).collect())
    };
    let owed = match shared.journal.read(read).await {
        Ok(owed) => owed,
        Err(e) => {
            tracing::error!("cannot read the owed attestations: {e}");
            return false;
        }
    };
    let full = owed.len() == MAX_ATTESTATIONS_PER_SET;
    let (ids, attestations) = one_set(owed);
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
    if shared.journal.commit(records).await.is_err() {
        return false;
    }
    if let Some(signed) = signed
        && let Err(e) = shared.client.publish(REPUTATION_TOPIC, signed.bytes().to_vec()).await
    {
        tracing::debug!("attestation gossip not sent: {e}");
    }
    more
}

/// An owed verdict: its id, its contract's evidence (when the log still has it) and its body.
type Owed = (i64, Option<Vec<Vec<u8>>>, Vec<u8>);

/// The contract an owed verdict names, as the evidence that makes it count elsewhere: its
/// request and accept from this node's log (`None` when either is gone: the verdict is then
/// signed without it, and counts only here).
fn contract_of(reader: &PooledReader<'_>, body: &[u8]) -> Option<Vec<Vec<u8>>> {
    let contract = OutcomeAttestation::from_body_bytes(body).ok()?.contract;
    let accept = reader.event_bytes(&contract).ok()??;
    let request = Signed::<ComputeAccept>::decode(&accept).ok()?.body().request;
    let request = reader.event_bytes(&request).ok()??;
    Some(evidence::contract_evidence(request, accept))
}

/// The owed verdicts that fit one set (within [`MAX_SET_BYTES`]), each with its contract
/// put before its own evidence: the ids it settles and the attestations it signs. One that
/// does not decode (written by this node, so never expected) is settled unsigned rather than
/// blocking the rest.
fn one_set(owed: Vec<Owed>) -> (Vec<i64>, Vec<OutcomeAttestation>) {
    let (mut ids, mut attestations, mut size) = (Vec::new(), Vec::new(), 0);
    for (id, contract, body) in owed {
        let contract = contract.unwrap_or_default();
        let len = body.len() + contract.iter().map(|e| e.len() + 4).sum::<usize>();
        if size + len > MAX_SET_BYTES && !attestations.is_empty() {
            break;
        }
        match OutcomeAttestation::from_body_bytes(&body) {
            Ok(mut attestation) if attestation.evidence.len() + contract.len() <= MAX_EVIDENCE => {
                size += len;
                attestation.evidence.splice(0..0, contract);
                attestations.push(attestation);
            }
            Ok(attestation) => {
                size += body.len();
                attestations.push(attestation);
            }
            Err(e) => tracing::error!("an owed attestation does not decode, dropped: {e}"),
        }
        ids.push(id);
    }
    (ids, attestations)
}

/// A gossiped attestation or set of them: check the signature (once for a set), then let the
/// book weigh each; one that tells the book anything new is logged. Rejected when malformed,
/// forged or expired; accepted otherwise.
pub(in crate::node) async fn on_gossip(shared: &Shared, from: PeerId, bytes: Vec<u8>) -> GossipVerdict {
    let refuse = || {
        shared.refusals.count(Refusal::Attestation);
        tracing::info!(%from, "refused a gossiped attestation");
        GossipVerdict::Reject
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
    let proven = proven(shared, attester, attestations).await;
    if shared.reputation.hear(attester, at_ms, &proven) {
        log_gossiped(shared, event).await;
    }
    GossipVerdict::Accept
}

/// The attestations of `attester` that name a contract both parties signed, with `attester` a
/// party (`contract::evidence`); the others weigh nothing and are counted refused. Contracts
/// this node holds in its log, or proved before, are not checked again; the signature checks
/// run off the runtime's threads.
async fn proven(
    shared: &Shared,
    attester: PublicKey,
    said: Vec<OutcomeAttestation>,
) -> Vec<OutcomeAttestation> {
    let known: Vec<bool> = said
        .iter()
        .map(|a| {
            shared.reputation.is_proven(&a.contract)
                || shared.journal.reader().is_ok_and(|r| r.has_event(&a.contract).unwrap_or(false))
        })
        .collect();
    let checked = tokio::task::spawn_blocking(move || {
        said.into_iter()
            .zip(known)
            .map(|(a, known)| {
                let proof = evidence::check(&a, &attester, |_| known);
                (a, proof)
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    let mut proven = Vec::with_capacity(checked.len());
    for (attestation, proof) in checked {
        match proof {
            Ok(contract) => {
                shared.reputation.proved(contract);
                proven.push(attestation);
            }
            Err(why) => {
                shared.refusals.count(Refusal::Attestation);
                tracing::debug!(attester = %attester.peer_id(), "an attestation weighs nothing: {why}");
            }
        }
    }
    proven
}

/// Logs a gossiped attestation with the others that come within [`LOG_BATCH_WAIT`] (one
/// commit for many: under load a node receives one per contract of its peers). The first of a
/// batch stores it; until then the batch is only in memory — an attestation lost to a crash
/// in between is someone else's claim, counted again when it is gossiped again.
async fn log_gossiped(shared: &Shared, event: ProtocolEvent) {
    // `Err`: no room, the event is given back to be logged on its own.
    let first = {
        let mut batch = lock(&shared.unlogged.batch);
        if batch.len() < MAX_UNLOGGED {
            batch.push(event);
            Ok(batch.len() == 1)
        } else {
            Err(event)
        }
    };
    match first {
        Err(event) => {
            shared.journal.log(event).await;
        }
        Ok(true) => {
            tokio::time::sleep(LOG_BATCH_WAIT).await;
            let batch = std::mem::take(&mut *lock(&shared.unlogged.batch));
            let _ = shared.journal.commit(Records { events: batch, ..Records::default() }).await;
        }
        Ok(false) => {}
    }
}
