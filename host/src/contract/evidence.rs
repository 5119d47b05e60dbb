//! What makes an outcome attestation count: it names a contract both parties signed, and its
//! attester was one of them. The evidence is the contract itself — the consumer's signed
//! `COMPUTE_REQUEST` and the provider's signed `COMPUTE_ACCEPT` of it — carried as the first
//! two pieces of the attestation's evidence (see docs/market.md, "Reputation"). A verdict
//! about a stranger, or about a contract that does not exist, carries no such pair and
//! weighs nothing.

use crate::crypto::{Digest, PublicKey};
use crate::protocol::{ComputeAccept, ComputeRequest, OutcomeAttestation, Signed};

/// Pieces of evidence the contract takes at the front of an attestation's evidence.
pub const CONTRACT_EVIDENCE: usize = 2;

/// Why an attestation does not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unproven {
    /// No request and accept at the front of the evidence.
    #[error("the attestation carries no contract")]
    NoContract,
    /// The request or accept does not decode.
    #[error("the contract does not decode: {0}")]
    Unreadable(String),
    /// The accept is not the contract named, or not of the request given.
    #[error("the evidence is not the contract the attestation names")]
    OtherContract,
    /// The attester and the subject are not the contract's two parties.
    #[error("the attester and subject are not the contract's consumer and provider")]
    NotParties,
    /// A signature does not verify.
    #[error("the contract's signatures do not verify")]
    Forged,
}

/// The contract evidence an attestation on `contract` carries: its request and accept.
pub fn contract_evidence(request: Vec<u8>, accept: Vec<u8>) -> Vec<Vec<u8>> {
    vec![request, accept]
}

/// Checks that `attestation`, said by `attester`, names a contract both parties signed and that
/// `attester` and its subject are those parties. `known(contract)`: the contract is one this
/// node verified before (it is in its log, or an earlier attestation proved it), so its
/// signatures need no second check. Answers the contract's hash once proven.
pub fn check(
    attestation: &OutcomeAttestation,
    attester: &PublicKey,
    known: impl Fn(&Digest) -> bool,
) -> Result<Digest, Unproven> {
    let [request, accept, ..] = attestation.evidence.as_slice() else { return Err(Unproven::NoContract) };
    let unreadable = |e: crate::protocol::EventError| Unproven::Unreadable(e.to_string());
    let request = Signed::<ComputeRequest>::decode(request).map_err(unreadable)?;
    let accept = Signed::<ComputeAccept>::decode(accept).map_err(unreadable)?;
    if accept.hash() != attestation.contract || accept.body().request != request.hash() {
        return Err(Unproven::OtherContract);
    }
    let (consumer, provider) = (request.header().signer, accept.header().signer);
    if accept.body().consumer != consumer || request.body().provider != provider {
        return Err(Unproven::OtherContract);
    }
    let parties = (*attester == consumer && attestation.subject == provider)
        || (*attester == provider && attestation.subject == consumer);
    if !parties {
        return Err(Unproven::NotParties);
    }
    if !known(&attestation.contract) {
        request.verify_signature().map_err(|_| Unproven::Forged)?;
        accept.verify_signature().map_err(|_| Unproven::Forged)?;
    }
    Ok(attestation.contract)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keypair;
    use crate::protocol::{JobId, JobInput, Validity, Verdict};

    const NOW: u64 = 1_800_000_000_000;

    fn contract(consumer: &Keypair, provider: &Keypair) -> (Signed<ComputeRequest>, Signed<ComputeAccept>) {
        let request = ComputeRequest {
            job_id: JobId([1; 16]),
            provider: provider.public(),
            genesis: Digest([2; 32]),
            component: Digest([3; 32]),
            reference: None,
            input: JobInput::Inline("f()".into()),
            offer: 10,
            max_fuel: 1,
            max_memory_bytes: 1,
            max_execution_ms: 1,
        };
        let request = Signed::sign(consumer, request, Validity::starting(NOW, 60_000)).unwrap();
        let accept = ComputeAccept {
            request: request.hash(),
            job_id: JobId([1; 16]),
            consumer: consumer.public(),
            price_per_mfuel: 1,
            base_fee: 1,
            engine: "e".into(),
            pay_by_ms: NOW,
        };
        let accept = Signed::sign(provider, accept, Validity::starting(NOW, 60_000)).unwrap();
        (request, accept)
    }

    fn about(subject: &Keypair, contract: Digest, evidence: Vec<Vec<u8>>) -> OutcomeAttestation {
        OutcomeAttestation { contract, subject: subject.public(), verdict: Verdict::Completed, evidence }
    }

    #[test]
    fn only_a_party_to_a_contract_both_signed_is_heard() {
        let (consumer, provider, stranger) =
            (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]), Keypair::from_seed([3; 32]));
        let (request, accept) = contract(&consumer, &provider);
        let evidence = contract_evidence(request.bytes().to_vec(), accept.bytes().to_vec());
        let by_consumer = about(&provider, accept.hash(), evidence.clone());
        assert_eq!(check(&by_consumer, &consumer.public(), |_| false), Ok(accept.hash()));
        let by_provider = about(&consumer, accept.hash(), evidence.clone());
        assert_eq!(check(&by_provider, &provider.public(), |_| false), Ok(accept.hash()));

        // A stranger repeating the contract is no party; a verdict without it proves nothing.
        assert_eq!(check(&by_consumer, &stranger.public(), |_| false), Err(Unproven::NotParties));
        let bare = about(&provider, accept.hash(), Vec::new());
        assert_eq!(check(&bare, &consumer.public(), |_| false), Err(Unproven::NoContract));
        // Another contract than the one named.
        let other = about(&provider, Digest([9; 32]), evidence.clone());
        assert_eq!(check(&other, &consumer.public(), |_| false), Err(Unproven::OtherContract));
        // A contract a stranger made up with the provider's name in it, signed by itself.
        let (forged_request, _) = contract(&stranger, &provider);
        let mut made_up = accept.body().clone();
        made_up.request = forged_request.hash();
        made_up.consumer = stranger.public();
        let made_up = Signed::sign(&stranger, made_up, Validity::starting(NOW, 60_000)).unwrap();
        let forged = about(
            &provider,
            made_up.hash(),
            contract_evidence(forged_request.bytes().to_vec(), made_up.bytes().to_vec()),
        );
        assert_eq!(check(&forged, &stranger.public(), |_| false), Err(Unproven::OtherContract));
        // Altered bytes do not verify (unless the contract is known here already).
        let mut altered = accept.bytes().to_vec();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        let tampered =
            about(&provider, Digest::of(&altered), contract_evidence(request.bytes().to_vec(), altered));
        assert_eq!(check(&tampered, &consumer.public(), |_| false), Err(Unproven::Forged));
    }
}
