//! Fuzz target `gossip`: every kind of gossip message (and the DHT's manifest records) as the
//! node reads it — every decoder runs on every input, so a message of one kind mutated into
//! another is read as that other kind too.

use super::{NOW_MS, Verdict, fuzz_key, ledger_entry, signed_event};
use crate::market::{ResourceManifest, open_manifest};
use crate::protocol::{
    ComponentManifest, MAX_ATTESTATIONS_PER_SET, MAX_ENTRIES_PER_BATCH, MAX_EVENT_BYTES, MAX_EVIDENCE,
    MAX_LIFETIME_MS, OutcomeAttestation, OutcomeAttestations, Signed, Validity, decode_entry_batch,
    encode_entry_batch, open_component_manifest,
};

/// Reads `data` as each message kind: a ledger batch (`cue/ledger/2`) and every entry in it, a
/// single ledger entry (`cue/ledger/1`), an attestation set or else a single attestation
/// (`cue/reputation/1`), a component manifest (`cue/components/1`) and a resource manifest
/// (DHT records and `GetManifest` answers). Properties: never panics; only canonical
/// encodings decode; the bounds on batches, sets and evidence hold; a decoded manifest body,
/// honestly signed, opens exactly when its fields are valid, unchanged.
pub fn gossip(data: &[u8]) -> Verdict {
    let mut verdict = Verdict::default();
    ledger_batch(&mut verdict, data);
    ledger_entry(&mut verdict, data);
    attestations(&mut verdict, data);
    component_manifest(&mut verdict, data);
    resource_manifest(&mut verdict, data);
    verdict
}

/// `node/gossip/ledger.rs`: `decode_entry_batch`, then each entry as a ledger entry.
fn ledger_batch(verdict: &mut Verdict, data: &[u8]) {
    let batch = decode_entry_batch(data);
    verdict.note("ledger-batch", &batch);
    let Ok(entries) = batch else { return };
    assert!((1..=MAX_ENTRIES_PER_BATCH).contains(&entries.len()), "a batch of {} entries", entries.len());
    assert!(entries.iter().all(|e| e.len() <= MAX_EVENT_BYTES), "an entry beyond the size limit");
    assert_eq!(encode_entry_batch(entries.iter().copied()), data, "only the canonical batch decodes");
    for entry in entries {
        ledger_entry(verdict, entry);
    }
}

/// `node/gossip/attestations.rs`: a set, or, when the bytes are no set, one attestation; then
/// its signature and its times (noted as `…-live`).
fn attestations(verdict: &mut Verdict, data: &[u8]) {
    let not_a_set = Signed::<OutcomeAttestations>::decode(data).err();
    if let Some(why) = not_a_set {
        verdict.note("attestations", &Err::<(), _>(why));
        if let Some(one) = signed_event::<OutcomeAttestation>(verdict, "attestation", data) {
            attestation_body(one.body());
            verdict.note("attestation-live", &one.verify_live(NOW_MS));
        }
    } else if let Some(set) = signed_event::<OutcomeAttestations>(verdict, "attestations", data) {
        let attestations = &set.body().attestations;
        assert!(
            (1..=MAX_ATTESTATIONS_PER_SET).contains(&attestations.len()),
            "a set of {}",
            attestations.len()
        );
        attestations.iter().for_each(attestation_body);
        verdict.note("attestations-live", &set.verify_live(NOW_MS));
    }
}

/// An attestation's bounds, and its body bytes (how owed verdicts are kept) round-tripping.
fn attestation_body(attestation: &OutcomeAttestation) {
    assert!(attestation.evidence.len() <= MAX_EVIDENCE, "{} pieces of evidence", attestation.evidence.len());
    let body = attestation.to_body_bytes();
    assert_eq!(OutcomeAttestation::from_body_bytes(&body).as_ref(), Ok(attestation), "a body round-trips");
}

/// `node/gossip/components.rs`: `open_component_manifest`; then the decoded body, signed by
/// its publisher, must open exactly when it is valid.
fn component_manifest(verdict: &mut Verdict, data: &[u8]) {
    verdict.note("component-manifest", &open_component_manifest(data, NOW_MS));
    let Ok(decoded) = Signed::<ComponentManifest>::decode(data) else { return };
    assert_eq!(decoded.bytes(), data, "only the canonical encoding decodes");
    let key = fuzz_key();
    let body = ComponentManifest { publisher: key.public(), ..decoded.body().clone() };
    let valid = body.validate();
    let signed =
        Signed::sign_with_nonce(&key, body.clone(), Validity::starting(NOW_MS, MAX_LIFETIME_MS), [1; 16]);
    if signed.bytes().len() <= MAX_EVENT_BYTES {
        let opened = open_component_manifest(signed.bytes(), NOW_MS);
        assert_eq!(opened.is_ok(), valid.is_ok(), "signed by its publisher: {opened:?}, valid: {valid:?}");
        if let Ok(opened) = opened {
            assert_eq!(opened.body(), &body, "a manifest round-trips");
        }
    }
}

/// `market::open_manifest` (DHT records, `GetManifest` answers); then the decoded body, signed
/// by its provider, must open unchanged.
fn resource_manifest(verdict: &mut Verdict, data: &[u8]) {
    verdict.note("resource-manifest", &open_manifest(data, NOW_MS));
    let Ok(decoded) = Signed::<ResourceManifest>::decode(data) else { return };
    assert_eq!(decoded.bytes(), data, "only the canonical encoding decodes");
    let key = fuzz_key();
    let body = ResourceManifest { provider: key.public(), ..decoded.body().clone() };
    let signed = Signed::sign_with_nonce(&key, body.clone(), Validity::starting(NOW_MS, 3_600_000), [1; 16]);
    if signed.bytes().len() <= MAX_EVENT_BYTES {
        let opened = open_manifest(signed.bytes(), NOW_MS + 1);
        assert_eq!(opened.map(|m| m.body().clone()), Ok(body), "a manifest signed by its provider opens");
    }
}
