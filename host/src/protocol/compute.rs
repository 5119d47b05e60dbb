//! The compute contract's event bodies: `COMPUTE_REQUEST`, `COMPUTE_ACCEPT`, `COMPUTE_REJECT`,
//! `RECEIPT` and `OUTCOME_ATTESTATION`.
//!
//! Bodies (canonical CBOR, see `docs/protocol.md`):
//!
//! ```text
//! request     = [job_id: bstr .size 16, provider: bstr .size 32, genesis: bstr .size 32,
//!                component: bstr .size 32, reference: tstr / null, input, offer: uint,
//!                max_fuel: uint, max_memory_bytes: uint, max_execution_ms: uint]
//! input       = call: tstr                                  ; inline, at most 32 KiB
//!             / [function: tstr, sha256: bstr .size 32, bytes: uint]  ; sent on the job stream
//! accept      = [request: bstr .size 32, job_id: bstr .size 16, consumer: bstr .size 32,
//!                price_per_mfuel: uint, base_fee: uint, engine: tstr, pay_by_ms: uint]
//! reject      = [request: bstr .size 32, job_id: bstr .size 16, reason: uint, message: tstr]
//! receipt     = [contract: bstr .size 32, job_id: bstr .size 16, component: bstr .size 32,
//!                input: bstr .size 32, outcome, fuel_used: uint, wall_us: uint, engine: tstr]
//! outcome     = [0, output: bstr .size 32, "", ""] / [1, null, kind: tstr, message: tstr]
//! attestation = [contract: bstr .size 32, subject: bstr .size 32, verdict: uint,
//!                evidence: [* bstr]]
//! ```
//!
//! The consumer signs the request, the provider the accept (which is the contract: its hash is
//! the contract id), the reject and the receipt; both sides sign attestations.

use super::codec::{Reader, Writer};
use super::envelope::EventBody;
use super::{EventError, EventKind};
use crate::crypto::{Digest, PublicKey};

/// Longest call text (WAVE) a request may carry inline; a longer one is sent on the job stream.
pub const MAX_CALL_BYTES: usize = 32 * 1024;
/// Longest call text (WAVE) sent on the job stream.
pub const MAX_STREAMED_CALL_BYTES: u64 = 8 * 1024 * 1024;
/// Longest function name a streamed input names.
const MAX_FUNCTION_NAME_BYTES: usize = 256;
/// Most receipts an attestation may carry as evidence.
pub const MAX_EVIDENCE: usize = 8;
/// Longest failure or rejection message.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024;

/// A job's id: chosen by the consumer, the same across retries and replicas. Opaque to the
/// protocol; Cue makes it with [`JobId::new`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub [u8; 16]);

impl JobId {
    /// A fresh id: the time `now_ms` (8 bytes, big-endian) then 8 random bytes — unique, and in
    /// creation order, so the indexes by job on both sides grow at their end instead of
    /// touching a random page per insert. (The time is in the request's signed header anyway.)
    pub fn new(now_ms: u64) -> Result<JobId, crate::crypto::CryptoError> {
        let mut id = [0; 16];
        id[..8].copy_from_slice(&now_ms.to_be_bytes());
        id[8..].copy_from_slice(&crate::crypto::unique_bytes::<8>()?);
        Ok(JobId(id))
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::str::FromStr for JobId {
    type Err = String;

    fn from_str(text: &str) -> Result<JobId, String> {
        let bytes = hex::decode(text).map_err(|e| format!("job id {text:?}: {e}"))?;
        bytes.try_into().map(JobId).map_err(|_| format!("job id {text:?}: expected 32 hex characters"))
    }
}

fn key(r: &mut Reader<'_>, what: &str) -> Result<PublicKey, EventError> {
    PublicKey::from_bytes(r.byte_array()?).map_err(|_| EventError::Malformed(format!("invalid {what} key")))
}

fn bounded_text(r: &mut Reader<'_>, what: &str, limit: usize) -> Result<String, EventError> {
    let text = r.text()?;
    if text.len() > limit {
        return Err(EventError::Malformed(format!("{what} is {} bytes; the limit is {limit}", text.len())));
    }
    Ok(text.to_owned())
}

/// `COMPUTE_REQUEST`: a consumer asks one provider to run one call, and says what it will pay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComputeRequest {
    /// The job (kept across retries and replicas).
    pub job_id: JobId,
    /// The provider asked; a request is for exactly one provider.
    pub provider: PublicKey,
    /// The network (genesis id) whose tokens pay.
    pub genesis: Digest,
    /// SHA-256 of the component to run.
    pub component: Digest,
    /// `name@version` when the component was resolved from a name (the provider may check the
    /// publisher); `None` for a hash or a file.
    pub reference: Option<String>,
    /// The call: inline, or announced here and sent on the job stream.
    pub input: JobInput,
    /// The most the consumer pays, in the smallest unit of CUE.
    pub offer: u64,
    /// Fuel budget of the run.
    pub max_fuel: u64,
    /// Largest linear memory of the run, in bytes.
    pub max_memory_bytes: u64,
    /// Wall-clock limit of the run, in milliseconds (the origin's `maxExecutionTime`).
    pub max_execution_ms: u64,
}

impl ComputeRequest {
    /// The input hash: SHA-256 of the call text (the receipt's `input`).
    pub fn input_hash(&self) -> Digest {
        match &self.input {
            JobInput::Inline(call) => Digest::of(call.as_bytes()),
            JobInput::Streamed { sha256, .. } => *sha256,
        }
    }
}

/// A request's call (WAVE text, such as `fib(30)`), whose SHA-256 is the input hash either way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobInput {
    /// In the request itself (at most [`MAX_CALL_BYTES`]): the provider type-checks it before
    /// accepting.
    Inline(String),
    /// Too long for the request: sent as the job stream's first frame. The provider checks
    /// before accepting that the function exists and the size is within its limit, and when the
    /// text arrives that it hashes to `sha256`, has `bytes` bytes and type-checks.
    Streamed {
        /// The function called.
        function: String,
        /// SHA-256 of the call text.
        sha256: Digest,
        /// Length of the call text, at most [`MAX_STREAMED_CALL_BYTES`].
        bytes: u64,
    },
}

impl JobInput {
    /// The input for `call`: inline when it fits in a request, else streamed.
    pub fn for_call(call: &str, function: &str) -> JobInput {
        if call.len() <= MAX_CALL_BYTES {
            JobInput::Inline(call.to_owned())
        } else {
            JobInput::Streamed {
                function: function.to_owned(),
                sha256: Digest::of(call.as_bytes()),
                bytes: call.len() as u64,
            }
        }
    }

    fn write(&self, w: &mut Writer) {
        match self {
            JobInput::Inline(call) => w.text(call),
            JobInput::Streamed { function, sha256, bytes } => {
                w.array(3).text(function).bytes(&sha256.0).uint(*bytes)
            }
        };
    }

    fn read(r: &mut Reader<'_>) -> Result<JobInput, EventError> {
        if r.next_is_text()? {
            return Ok(JobInput::Inline(bounded_text(r, "call", MAX_CALL_BYTES)?));
        }
        r.array(3)?;
        let function = bounded_text(r, "function", MAX_FUNCTION_NAME_BYTES)?;
        let sha256 = Digest(r.byte_array()?);
        let bytes = r.uint()?;
        if bytes > MAX_STREAMED_CALL_BYTES {
            return Err(EventError::Malformed(format!(
                "a streamed call of {bytes} bytes; the limit is {MAX_STREAMED_CALL_BYTES}"
            )));
        }
        Ok(JobInput::Streamed { function, sha256, bytes })
    }
}

impl EventBody for ComputeRequest {
    const KIND: EventKind = EventKind::ComputeRequest;

    fn write(&self, w: &mut Writer) {
        w.array(10)
            .bytes(&self.job_id.0)
            .bytes(self.provider.as_bytes())
            .bytes(&self.genesis.0)
            .bytes(&self.component.0);
        match &self.reference {
            Some(reference) => w.text(reference),
            None => w.null(),
        };
        self.input.write(w);
        w.uint(self.offer).uint(self.max_fuel).uint(self.max_memory_bytes).uint(self.max_execution_ms);
    }

    fn read(r: &mut Reader<'_>) -> Result<ComputeRequest, EventError> {
        r.array(10)?;
        Ok(ComputeRequest {
            job_id: JobId(r.byte_array()?),
            provider: key(r, "provider")?,
            genesis: Digest(r.byte_array()?),
            component: Digest(r.byte_array()?),
            reference: r.optional(|r| bounded_text(r, "reference", 128))?,
            input: JobInput::read(r)?,
            offer: r.uint()?,
            max_fuel: r.uint()?,
            max_memory_bytes: r.uint()?,
            max_execution_ms: r.uint()?,
        })
    }
}

/// `COMPUTE_ACCEPT`: the provider binds itself to run the request at its prices. This event
/// is the contract; its hash is the contract id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComputeAccept {
    /// Hash of the signed request accepted.
    pub request: Digest,
    /// The job.
    pub job_id: JobId,
    /// The consumer (the request's signer), who pays.
    pub consumer: PublicKey,
    /// Price of one million fuel.
    pub price_per_mfuel: u64,
    /// Fixed price of the job.
    pub base_fee: u64,
    /// The provider's engine fingerprint id: results and fuel are comparable across providers
    /// with the same one.
    pub engine: String,
    /// The consumer must pay by this instant (ms since the epoch) or be recorded as a default.
    pub pay_by_ms: u64,
}

impl ComputeAccept {
    /// What the consumer owes for `fuel_used`: base fee plus the fuel at the contract's price
    /// (rounded up to whole units), never more than `offer`.
    pub fn price(&self, fuel_used: u64, offer: u64) -> u64 {
        let fuel_cost = (u128::from(fuel_used) * u128::from(self.price_per_mfuel)).div_ceil(1_000_000);
        let total = u128::from(self.base_fee) + fuel_cost;
        u64::try_from(total).unwrap_or(u64::MAX).min(offer)
    }
}

impl EventBody for ComputeAccept {
    const KIND: EventKind = EventKind::ComputeAccept;

    fn write(&self, w: &mut Writer) {
        w.array(7)
            .bytes(&self.request.0)
            .bytes(&self.job_id.0)
            .bytes(self.consumer.as_bytes())
            .uint(self.price_per_mfuel)
            .uint(self.base_fee)
            .text(&self.engine)
            .uint(self.pay_by_ms);
    }

    fn read(r: &mut Reader<'_>) -> Result<ComputeAccept, EventError> {
        r.array(7)?;
        Ok(ComputeAccept {
            request: Digest(r.byte_array()?),
            job_id: JobId(r.byte_array()?),
            consumer: key(r, "consumer")?,
            price_per_mfuel: r.uint()?,
            base_fee: r.uint()?,
            engine: bounded_text(r, "engine", 64)?,
            pay_by_ms: r.uint()?,
        })
    }
}

/// Why a provider declined a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RejectReason {
    /// Every job slot and queue place is taken; try later or elsewhere.
    Busy,
    /// Fuel, memory or time beyond the provider's policy.
    OverLimits,
    /// The offer is below base fee + price × max fuel.
    OfferTooLow,
    /// The component could not be found, verified, or is not from an allowed publisher.
    Component,
    /// The call does not type-check against the component's exports.
    BadCall,
    /// The consumer's reputation is below the provider's threshold.
    Reputation,
    /// The request is malformed, expired, for another provider or another network.
    Invalid,
    /// The offer is not funded: no lock came with the request, or the consumer's balance as
    /// this provider sees it (after its other open locks) cannot cover it.
    Unfunded,
}

impl RejectReason {
    const ALL: [RejectReason; 8] = [
        RejectReason::Busy,
        RejectReason::OverLimits,
        RejectReason::OfferTooLow,
        RejectReason::Component,
        RejectReason::BadCall,
        RejectReason::Reputation,
        RejectReason::Invalid,
        RejectReason::Unfunded,
    ];

    fn code(self) -> u64 {
        RejectReason::ALL.iter().position(|r| *r == self).unwrap_or(0) as u64
    }
}

/// `COMPUTE_REJECT`: the provider declines, with a typed reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComputeReject {
    /// Hash of the signed request declined.
    pub request: Digest,
    /// The job.
    pub job_id: JobId,
    /// Why, for programs.
    pub reason: RejectReason,
    /// Why, for people.
    pub message: String,
}

impl EventBody for ComputeReject {
    const KIND: EventKind = EventKind::ComputeReject;

    fn write(&self, w: &mut Writer) {
        w.array(4).bytes(&self.request.0).bytes(&self.job_id.0).uint(self.reason.code()).text(&self.message);
    }

    fn read(r: &mut Reader<'_>) -> Result<ComputeReject, EventError> {
        r.array(4)?;
        let request = Digest(r.byte_array()?);
        let job_id = JobId(r.byte_array()?);
        let code = r.uint()?;
        let reason = usize::try_from(code)
            .ok()
            .and_then(|i| RejectReason::ALL.get(i).copied())
            .ok_or_else(|| EventError::Malformed(format!("unknown reject reason {code}")))?;
        Ok(ComputeReject { request, job_id, reason, message: bounded_text(r, "message", MAX_MESSAGE_BYTES)? })
    }
}

/// How a run ended, as a receipt states it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// A result: SHA-256 of its WAVE text.
    Output(Digest),
    /// A typed failure (`cue run`'s kinds: `out-of-fuel`, `timeout`, `trap`, ...).
    Failed {
        /// The failure kind (kebab-case).
        kind: String,
        /// What happened.
        message: String,
    },
}

/// `RECEIPT`: the provider's signed account of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The contract (hash of the `COMPUTE_ACCEPT`).
    pub contract: Digest,
    /// The job.
    pub job_id: JobId,
    /// SHA-256 of the component run.
    pub component: Digest,
    /// SHA-256 of the call text.
    pub input: Digest,
    /// The output's hash or the failure.
    pub outcome: RunOutcome,
    /// Fuel the run used.
    pub fuel_used: u64,
    /// Wall time of the run, in microseconds.
    pub wall_us: u64,
    /// The engine fingerprint id the run used.
    pub engine: String,
}

impl EventBody for Receipt {
    const KIND: EventKind = EventKind::Receipt;

    fn write(&self, w: &mut Writer) {
        w.array(8)
            .bytes(&self.contract.0)
            .bytes(&self.job_id.0)
            .bytes(&self.component.0)
            .bytes(&self.input.0);
        match &self.outcome {
            RunOutcome::Output(hash) => w.array(4).uint(0).bytes(&hash.0).text("").text(""),
            RunOutcome::Failed { kind, message } => w.array(4).uint(1).null().text(kind).text(message),
        };
        w.uint(self.fuel_used).uint(self.wall_us).text(&self.engine);
    }

    fn read(r: &mut Reader<'_>) -> Result<Receipt, EventError> {
        r.array(8)?;
        let contract = Digest(r.byte_array()?);
        let job_id = JobId(r.byte_array()?);
        let component = Digest(r.byte_array()?);
        let input = Digest(r.byte_array()?);
        let outcome = read_outcome(r)?;
        Ok(Receipt {
            contract,
            job_id,
            component,
            input,
            outcome,
            fuel_used: r.uint()?,
            wall_us: r.uint()?,
            engine: bounded_text(r, "engine", 64)?,
        })
    }
}

fn read_outcome(r: &mut Reader<'_>) -> Result<RunOutcome, EventError> {
    r.array(4)?;
    let tag = r.uint()?;
    let output = r.optional(|r| r.byte_array().map(Digest))?;
    let kind = bounded_text(r, "failure kind", 64)?;
    let message = bounded_text(r, "failure message", MAX_MESSAGE_BYTES)?;
    match (tag, output) {
        (0, Some(output)) if kind.is_empty() && message.is_empty() => Ok(RunOutcome::Output(output)),
        (1, None) if !kind.is_empty() => Ok(RunOutcome::Failed { kind, message }),
        _ => Err(EventError::Malformed(format!("outcome with tag {tag} is not well formed"))),
    }
}

/// What a party says about the other side of a contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The contract was fulfilled (result delivered and checked / payment received).
    Completed,
    /// The consumer did not pay by the contract's deadline.
    Default,
    /// The provider's receipt disagreed with the majority of replicas.
    InvalidResult,
    /// The provider delivered nothing by the deadline.
    Timeout,
}

impl Verdict {
    const ALL: [Verdict; 4] =
        [Verdict::Completed, Verdict::Default, Verdict::InvalidResult, Verdict::Timeout];
}

/// `OUTCOME_ATTESTATION`: a party's signed verdict on a contract, with evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutcomeAttestation {
    /// The contract (hash of the `COMPUTE_ACCEPT`).
    pub contract: Digest,
    /// Whom the verdict is about.
    pub subject: PublicKey,
    /// The verdict.
    pub verdict: Verdict,
    /// Signed events backing it (for `invalid-result`: the subject's receipt and a majority
    /// receipt), canonical bytes each; at most [`MAX_EVIDENCE`].
    pub evidence: Vec<Vec<u8>>,
}

impl EventBody for OutcomeAttestation {
    const KIND: EventKind = EventKind::OutcomeAttestation;

    fn write(&self, w: &mut Writer) {
        let code = Verdict::ALL.iter().position(|v| *v == self.verdict).unwrap_or(0) as u64;
        w.array(4).bytes(&self.contract.0).bytes(self.subject.as_bytes()).uint(code);
        w.array(self.evidence.len() as u64);
        for item in &self.evidence {
            w.bytes(item);
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<OutcomeAttestation, EventError> {
        r.array(4)?;
        let contract = Digest(r.byte_array()?);
        let subject = key(r, "subject")?;
        let code = r.uint()?;
        let verdict = usize::try_from(code)
            .ok()
            .and_then(|i| Verdict::ALL.get(i).copied())
            .ok_or_else(|| EventError::Malformed(format!("unknown verdict {code}")))?;
        let count = r.array_len()?;
        if count > MAX_EVIDENCE as u64 {
            return Err(EventError::Malformed(format!(
                "{count} pieces of evidence; the limit is {MAX_EVIDENCE}"
            )));
        }
        let evidence = (0..count).map(|_| r.bytes().map(<[u8]>::to_vec)).collect::<Result<_, _>>()?;
        Ok(OutcomeAttestation { contract, subject, verdict, evidence })
    }
}

impl OutcomeAttestation {
    /// The body alone, canonically encoded (as inside an event): how a node keeps a verdict it
    /// has yet to sign in an [`OutcomeAttestations`] set.
    pub fn to_body_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.write(&mut w);
        w.into_bytes()
    }

    /// Reads what [`to_body_bytes`](Self::to_body_bytes) wrote.
    pub fn from_body_bytes(bytes: &[u8]) -> Result<OutcomeAttestation, EventError> {
        let mut r = Reader::new(bytes);
        let body = OutcomeAttestation::read(&mut r)?;
        r.finish()?;
        Ok(body)
    }
}

/// Most attestations in one [`OutcomeAttestations`] set (the set must also fit
/// [`MAX_EVENT_BYTES`](super::MAX_EVENT_BYTES)).
pub const MAX_ATTESTATIONS_PER_SET: usize = 256;

/// `OUTCOME_ATTESTATIONS`: one party's verdicts on several contracts under one signature —
/// each exactly an [`OutcomeAttestation`] body. A node signs its verdicts in sets (see
/// docs/protocol.md, "Reputation"): one signature and one gossip message for many contracts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutcomeAttestations {
    /// The verdicts, 1 to [`MAX_ATTESTATIONS_PER_SET`].
    pub attestations: Vec<OutcomeAttestation>,
}

impl EventBody for OutcomeAttestations {
    const KIND: EventKind = EventKind::OutcomeAttestations;

    fn write(&self, w: &mut Writer) {
        w.array(self.attestations.len() as u64);
        for attestation in &self.attestations {
            attestation.write(w);
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<OutcomeAttestations, EventError> {
        let count = r.array_len()?;
        if count == 0 || count > MAX_ATTESTATIONS_PER_SET as u64 {
            return Err(EventError::Malformed(format!(
                "{count} attestations in a set; 1 to {MAX_ATTESTATIONS_PER_SET} are allowed"
            )));
        }
        let attestations = (0..count).map(|_| OutcomeAttestation::read(r)).collect::<Result<_, _>>()?;
        Ok(OutcomeAttestations { attestations })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keypair;
    use crate::protocol::{Signed, Validity};

    #[test]
    fn job_ids_are_unique_and_sort_by_creation_time() {
        let ids: Vec<JobId> = (0..100).map(|i| JobId::new(1_700_000_000_000 + i / 10).unwrap()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len(), "ids made in the same millisecond still differ");
        for pair in ids.windows(2).filter(|p| p[0].0[..8] != p[1].0[..8]) {
            assert!(pair[0] < pair[1], "a later id sorts after an earlier one");
        }
        assert_eq!(ids[0].to_string().parse::<JobId>().unwrap(), ids[0]);
    }

    const NOW: u64 = 1_800_000_000_000;

    fn round_trip<T: EventBody + Clone + PartialEq + std::fmt::Debug>(key: &Keypair, body: T) {
        let signed = Signed::sign(key, body.clone(), Validity::starting(NOW, 60_000)).unwrap();
        let decoded = Signed::<T>::decode(signed.bytes()).unwrap();
        decoded.verify_signature().unwrap();
        assert_eq!(decoded.body(), &body);
        assert_eq!(decoded.header().kind, T::KIND);
    }

    fn request(provider: PublicKey) -> ComputeRequest {
        ComputeRequest {
            job_id: JobId([7; 16]),
            provider,
            genesis: Digest([1; 32]),
            component: Digest([2; 32]),
            reference: Some("fib@1.2.0".into()),
            input: JobInput::Inline("fib(30)".into()),
            offer: 1_000,
            max_fuel: 1_000_000_000,
            max_memory_bytes: 64 << 20,
            max_execution_ms: 5_000,
        }
    }

    #[test]
    fn every_body_round_trips_canonically() {
        let (consumer, provider) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
        round_trip(&consumer, request(provider.public()));
        round_trip(&consumer, ComputeRequest { reference: None, ..request(provider.public()) });
        let long = format!("count-words(\"{}\")", "a ".repeat(MAX_CALL_BYTES));
        let streamed = JobInput::for_call(&long, "count-words");
        assert!(matches!(&streamed, JobInput::Streamed { bytes, .. } if *bytes == long.len() as u64));
        let request = ComputeRequest { input: streamed, ..request(provider.public()) };
        assert_eq!(request.input_hash(), Digest::of(long.as_bytes()), "the same input hash either way");
        round_trip(&consumer, request);
        let accept = ComputeAccept {
            request: Digest([3; 32]),
            job_id: JobId([7; 16]),
            consumer: consumer.public(),
            price_per_mfuel: 2,
            base_fee: 10,
            engine: "0123456789abcdef".into(),
            pay_by_ms: NOW + 60_000,
        };
        round_trip(&provider, accept);
        for reason in RejectReason::ALL {
            let reject = ComputeReject {
                request: Digest([3; 32]),
                job_id: JobId([7; 16]),
                reason,
                message: "no".into(),
            };
            round_trip(&provider, reject);
        }
        let receipt = |outcome| Receipt {
            contract: Digest([4; 32]),
            job_id: JobId([7; 16]),
            component: Digest([2; 32]),
            input: Digest::of(b"fib(30)"),
            outcome,
            fuel_used: 12_345,
            wall_us: 678,
            engine: "0123456789abcdef".into(),
        };
        round_trip(&provider, receipt(RunOutcome::Output(Digest::of(b"832040"))));
        round_trip(
            &provider,
            receipt(RunOutcome::Failed { kind: "out-of-fuel".into(), message: "all used".into() }),
        );
        for verdict in Verdict::ALL {
            let attestation = OutcomeAttestation {
                contract: Digest([4; 32]),
                subject: provider.public(),
                verdict,
                evidence: vec![vec![1, 2, 3], vec![4]],
            };
            round_trip(&consumer, attestation.clone());
            let kept = OutcomeAttestation::from_body_bytes(&attestation.to_body_bytes()).unwrap();
            assert_eq!(kept, attestation);
        }
        let one = |verdict| OutcomeAttestation {
            contract: Digest([5; 32]),
            subject: provider.public(),
            verdict,
            evidence: Vec::new(),
        };
        round_trip(&consumer, OutcomeAttestations { attestations: Verdict::ALL.map(one).to_vec() });
    }

    #[test]
    fn an_attestation_set_is_refused_empty_or_beyond_its_limit() {
        let consumer = Keypair::from_seed([1; 32]);
        let one = OutcomeAttestation {
            contract: Digest([5; 32]),
            subject: Keypair::from_seed([2; 32]).public(),
            verdict: Verdict::Completed,
            evidence: Vec::new(),
        };
        for count in [0, MAX_ATTESTATIONS_PER_SET + 1] {
            let set = OutcomeAttestations { attestations: vec![one.clone(); count] };
            let signed = Signed::sign(&consumer, set, Validity::starting(NOW, 60_000)).unwrap();
            assert!(
                matches!(
                    Signed::<OutcomeAttestations>::decode(signed.bytes()),
                    Err(EventError::Malformed(_))
                ),
                "{count}"
            );
        }
        let full = OutcomeAttestations { attestations: vec![one; MAX_ATTESTATIONS_PER_SET] };
        round_trip(&consumer, full);
    }

    #[test]
    fn a_tampered_request_does_not_verify() {
        let (consumer, provider) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
        let signed =
            Signed::sign(&consumer, request(provider.public()), Validity::starting(NOW, 60_000)).unwrap();
        let mut bytes = signed.bytes().to_vec();
        let at = bytes.windows(7).position(|w| w == b"fib(30)").unwrap();
        bytes[at + 4] = b'9';
        let tampered = Signed::<ComputeRequest>::decode(&bytes).unwrap();
        assert_eq!(tampered.body().input, JobInput::Inline("fib(90)".into()));
        assert!(tampered.verify_signature().is_err(), "the signature covers the call");
    }

    #[test]
    fn the_price_is_base_fee_plus_fuel_never_above_the_offer() {
        let accept = ComputeAccept {
            request: Digest([3; 32]),
            job_id: JobId([7; 16]),
            consumer: Keypair::from_seed([1; 32]).public(),
            price_per_mfuel: 3,
            base_fee: 10,
            engine: "e".into(),
            pay_by_ms: 0,
        };
        assert_eq!(accept.price(0, 1_000), 10);
        assert_eq!(accept.price(1_000_000, 1_000), 13);
        assert_eq!(accept.price(1, 1_000), 11, "a started million is paid");
        assert_eq!(accept.price(10_000_000_000, 1_000), 1_000, "capped at the offer");
        let huge = (u128::from(u64::MAX) * 3).div_ceil(1_000_000) as u64 + 10;
        assert_eq!(accept.price(u64::MAX, u64::MAX), huge, "no overflow");
    }

    #[test]
    fn job_ids_print_and_parse_as_hex() {
        let id = JobId([0xab; 16]);
        assert_eq!(id.to_string().parse::<JobId>().unwrap(), id);
        assert!("abc".parse::<JobId>().is_err());
    }
}
