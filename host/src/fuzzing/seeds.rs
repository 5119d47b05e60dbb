//! Each target's seed inputs, written by the real encoders: valid messages of every kind, and
//! the edge cases of each decoder made from them (truncated, trailing bytes, over a limit,
//! non-canonical). Deterministic: fixed keys, nonces and times ([`NOW_MS`]).
//!
//! Names read `<accepts|refuses>.<decoder>.<what>`: the replay test checks that the named
//! decoder of the target's [`Verdict`](super::Verdict) accepts or refuses the input.

use super::call::EVERYTHING;
use super::{NOW_MS, fuzz_key};
use crate::crypto::{Digest, Keypair};
use crate::market::{ProviderPolicy, ResourceManifest};
use crate::net::{RefusalReason, RpcRequest, RpcResponse, encode_request, encode_response};
use crate::node::{Frame, encode_frame};
use crate::protocol::{
    ChainLink, ComponentManifest, ComputeAccept, ComputeReject, ComputeRequest, EventBody, JobId, JobInput,
    MAX_LIFETIME_MS, Mint, OutcomeAttestation, OutcomeAttestations, PaymentReference, Receipt, RejectReason,
    RunOutcome, Signed, Transfer, Validity, Verdict, encode_entry_batch,
};
use crate::sandbox::{JobEvent, LogLevel, LogLine, LogSource};

/// The fuzz targets, by the names of their files in `fuzz/fuzz_targets/`.
pub const TARGETS: [&str; 5] = ["rpc", "job_frame", "blob_frame", "gossip", "call"];

/// The seed inputs of `target` (one of [`TARGETS`]), by name; none for another name.
pub fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let seeds = match target {
        "rpc" => rpc(),
        "job_frame" => job_frame(),
        "blob_frame" => blob_frame(),
        "gossip" => gossip(),
        "call" => call(),
        _ => Vec::new(),
    };
    seeds.into_iter().map(|(name, bytes)| (name.to_owned(), bytes)).collect()
}

/// The consumer's key (the providers' is [`fuzz_key`]).
fn consumer() -> Keypair {
    Keypair::from_seed([8; 32])
}

fn sign<T: EventBody>(key: &Keypair, body: T, nonce: u8) -> Vec<u8> {
    Signed::sign_with_nonce(key, body, Validity::starting(NOW_MS, 3_600_000), [nonce; 16]).bytes().to_vec()
}

fn digest(what: &str) -> Digest {
    Digest::of(what.as_bytes())
}

const JOB: JobId = JobId([3; 16]);

fn request() -> Vec<u8> {
    let body = ComputeRequest {
        job_id: JOB,
        provider: fuzz_key().public(),
        genesis: digest("genesis"),
        component: digest("fib"),
        reference: Some("fib@1.0.0".into()),
        input: JobInput::Inline("fib(30)".into()),
        offer: 10_000,
        max_fuel: 1_000_000,
        max_memory_bytes: 64 << 20,
        max_execution_ms: 5_000,
    };
    sign(&consumer(), body, 1)
}

fn streamed_request() -> Vec<u8> {
    let input = JobInput::Streamed { function: "count-words".into(), sha256: digest("text"), bytes: 40_000 };
    let mut body = Signed::<ComputeRequest>::decode(&request()).expect("a seed request").body().clone();
    body.input = input;
    sign(&consumer(), body, 2)
}

fn accept() -> Vec<u8> {
    let body = ComputeAccept {
        request: Digest::of(&request()),
        job_id: JOB,
        consumer: consumer().public(),
        price_per_mfuel: 10,
        base_fee: 100,
        engine: "0123456789abcdef".into(),
        pay_by_ms: NOW_MS + 65_000,
    };
    sign(&fuzz_key(), body, 3)
}

fn reject() -> Vec<u8> {
    let body = ComputeReject {
        request: Digest::of(&request()),
        job_id: JOB,
        reason: RejectReason::OfferTooLow,
        message: "the offer is below 10100".into(),
    };
    sign(&fuzz_key(), body, 4)
}

fn receipt(outcome: RunOutcome) -> Vec<u8> {
    let body = Receipt {
        contract: Digest::of(&accept()),
        job_id: JOB,
        component: digest("fib"),
        input: digest("fib(30)"),
        outcome,
        fuel_used: 207,
        wall_us: 286,
        engine: "0123456789abcdef".into(),
    };
    sign(&fuzz_key(), body, 5)
}

fn mint() -> Vec<u8> {
    let body = Mint {
        genesis: digest("genesis"),
        link: ChainLink::FIRST,
        to: consumer().public(),
        amount: 1_000_000,
    };
    sign(&fuzz_key(), body, 6)
}

fn transfer() -> Vec<u8> {
    let body = Transfer {
        genesis: digest("genesis"),
        link: ChainLink { seq: 1, prev: Some(digest("the payer's entry 0")) },
        to: fuzz_key().public(),
        amount: 2_170,
        reference: Some(PaymentReference::Receipt(Digest::of(&receipt(RunOutcome::Output(digest(
            "832040",
        )))))),
    };
    sign(&consumer(), body, 7)
}

fn component_manifest() -> Vec<u8> {
    let body = ComponentManifest {
        name: "fib".into(),
        version: "1.2.0".parse().expect("a version"),
        sha256: digest("fib"),
        size: 48_213,
        world: "world fib { export fib: func(n: u32) -> u64; }".into(),
        publisher: fuzz_key().public(),
    };
    let signed =
        Signed::sign_with_nonce(&fuzz_key(), body, Validity::starting(NOW_MS, MAX_LIFETIME_MS), [9; 16]);
    signed.bytes().to_vec()
}

fn resource_manifest() -> Vec<u8> {
    let body = ResourceManifest {
        provider: fuzz_key().public(),
        genesis: crate::market::NO_NETWORK,
        cores: 2,
        memory_bytes: 8 << 30,
        fuel_per_second: 1_500_000_000,
        engine: "0123456789abcdef".into(),
        wasmtime: "48.0.8".into(),
        policy: ProviderPolicy {
            price_per_mfuel: 10,
            base_fee: 100,
            max_concurrent_jobs: 4,
            max_memory_bytes: 512 << 20,
            max_execution_ms: 30_000,
        },
        measured_ms: NOW_MS,
    };
    sign(&fuzz_key(), body, 10)
}

fn attestation(verdict: Verdict, evidence: Vec<Vec<u8>>) -> OutcomeAttestation {
    OutcomeAttestation { contract: Digest::of(&accept()), subject: fuzz_key().public(), verdict, evidence }
}

/// `bytes` without their last byte.
fn cut(bytes: &[u8]) -> Vec<u8> {
    bytes[..bytes.len() - 1].to_vec()
}

fn rpc() -> Vec<(&'static str, Vec<u8>)> {
    let req = |r| encode_request(r).expect("a request encodes");
    let res = |r| encode_response(r).expect("an answer encodes");
    let chain = vec![mint().into(), transfer().into()];
    let get_chain = RpcRequest::GetChain { account: consumer().public().as_bytes().to_vec(), from_seq: 1 };
    let mut trailing = req(RpcRequest::GetManifest);
    trailing.extend_from_slice(b"and then some");
    vec![
        ("accepts.request.get-manifest", req(RpcRequest::GetManifest)),
        ("accepts.request.get-components", req(RpcRequest::GetComponents { name: "fib".into() })),
        ("accepts.request.get-chain", req(get_chain)),
        ("accepts.request.compute", req(RpcRequest::Compute(request()))),
        ("accepts.request.pay", req(RpcRequest::Pay(transfer()))),
        ("accepts.request.trailing-bytes-unread", trailing),
        ("refuses.request.truncated", cut(&req(RpcRequest::Compute(request())))),
        ("refuses.request.unknown-variant", req_text("Teleport")),
        ("refuses.request.empty", Vec::new()),
        ("refuses.component-name.bad-name", req(RpcRequest::GetComponents { name: "../etc".into() })),
        ("refuses.chain-account.short", req(RpcRequest::GetChain { account: vec![1; 31], from_seq: 0 })),
        ("refuses.compute-request.forged", req(RpcRequest::Compute(forged(&request())))),
        ("accepts.response.manifest", res(RpcResponse::Manifest(resource_manifest()))),
        ("accepts.response.components", res(RpcResponse::Components(vec![component_manifest().into()]))),
        ("accepts.response.chain", res(RpcResponse::Chain(chain))),
        ("accepts.response.accepted", res(RpcResponse::Accepted(accept()))),
        ("accepts.response.rejected", res(RpcResponse::Rejected(reject()))),
        ("accepts.response.paid", res(RpcResponse::Paid)),
        ("accepts.response.refused", res(RpcResponse::refused(RefusalReason::Busy, "too many requests"))),
        ("refuses.resource-manifest.someone-elses", res(RpcResponse::Manifest(someone_elses_manifest()))),
    ]
}

/// A unit variant as the codec writes one: its name as a CBOR text string.
fn req_text(name: &str) -> Vec<u8> {
    let mut bytes = vec![0x60 | name.len() as u8];
    bytes.extend_from_slice(name.as_bytes());
    bytes
}

/// `event` with one bit of its signature flipped.
fn forged(event: &[u8]) -> Vec<u8> {
    let mut forged = event.to_vec();
    *forged.last_mut().expect("an event") ^= 1;
    forged
}

/// A resource manifest naming another provider than its signer.
fn someone_elses_manifest() -> Vec<u8> {
    let mut body = Signed::<ResourceManifest>::decode(&resource_manifest()).expect("a seed").body().clone();
    body.provider = consumer().public();
    sign(&fuzz_key(), body, 11)
}

fn job_frame() -> Vec<(&'static str, Vec<u8>)> {
    let frame = |f: Frame| encode_frame(&f).expect("a frame encodes");
    let request = frame(Frame::Request { request: hex::encode(request()), input: None, lock: None });
    let streamed = frame(Frame::Request {
        request: hex::encode(streamed_request()),
        input: Some(format!("count-words(\"{}\")", "a ".repeat(10))),
        lock: None,
    });
    let progress = frame(Frame::Event(JobEvent::Progress { done: 3, total: 10 }));
    let log = frame(Frame::Event(JobEvent::Log(LogLine {
        source: LogSource::Host(LogLevel::Info),
        text: "5 distinct words".into(),
    })));
    let output = Some("832040".to_owned());
    let delivered = frame(Frame::Delivered {
        accept: hex::encode(accept()),
        receipt: hex::encode(receipt(RunOutcome::Output(digest("832040")))),
        output: output.clone(),
    });
    let failed = RunOutcome::Failed { kind: "out-of-fuel".into(), message: "all 1000000 fuel used".into() };
    let outcome = frame(Frame::Outcome { receipt: hex::encode(receipt(failed)), output: None });
    let pay = frame(Frame::Pay { transfer: hex::encode(transfer()) });
    let provider_side =
        [frame(Frame::Contract { accept: hex::encode(accept()) }), progress.clone(), log.clone()];
    let mut over_limit = u32::MAX.to_be_bytes().to_vec();
    over_limit.extend_from_slice(b"{\"paid\":null}");
    vec![
        ("accepts.frame.request", request.clone()),
        ("accepts.frame.streamed-request", streamed),
        (
            "accepts.frame.start",
            frame(Frame::Start { contract: hex::encode(Digest::of(&accept()).0), input: None }),
        ),
        ("accepts.frame.rejected", frame(Frame::Rejected { reject: hex::encode(reject()) })),
        ("accepts.frame.provider-stream", [provider_side.concat(), delivered].concat()),
        ("accepts.frame.outcome", outcome),
        ("accepts.frame.consumer-stream", [request.clone(), pay.clone()].concat()),
        ("accepts.frame.paid", frame(Frame::Paid)),
        ("accepts.frame.refused", frame(Frame::Refused { message: "the input does not check".into() })),
        ("refuses.frame.over-the-limit", over_limit),
        ("refuses.frame.truncated", cut(&pay)),
        ("refuses.frame.not-json", [&5u32.to_be_bytes()[..], b"{paid"].concat()),
        ("refuses.frame.unknown-kind", [&10u32.to_be_bytes()[..], b"\"teleport\""].concat()),
        ("refuses.frame.length-cut", vec![0, 0, 1]),
        (
            "refuses.compute-request.not-hex",
            frame(Frame::Request { request: "zz".into(), input: None, lock: None }),
        ),
        ("refuses.contract-id.short", frame(Frame::Start { contract: "abcd".into(), input: None })),
    ]
}

fn blob_frame() -> Vec<(&'static str, Vec<u8>)> {
    let found = |size: u64| [&[0u8][..], &size.to_be_bytes()].concat();
    vec![
        ("accepts.blob-request.sha256", digest("fib").0.to_vec()),
        ("accepts.size.found", found(48_213)),
        ("accepts.size.found-at-the-limit", found(64 << 20)),
        ("refuses.size.found-over-the-limit", found((64 << 20) + 1)),
        ("refuses.size.cut", cut(&found(1))),
        ("refuses.status.not-found", vec![1]),
        ("refuses.status.busy", vec![2]),
        ("refuses.status.unknown", vec![3]),
        ("refuses.status.empty", Vec::new()),
    ]
}

fn gossip() -> Vec<(&'static str, Vec<u8>)> {
    let batch = |entries: &[Vec<u8>]| encode_entry_batch(entries.iter().map(Vec::as_slice));
    let evidence = vec![receipt(RunOutcome::Output(digest("1"))), receipt(RunOutcome::Output(digest("2")))];
    let set = OutcomeAttestations {
        attestations: vec![
            attestation(Verdict::Completed, Vec::new()),
            attestation(Verdict::InvalidResult, evidence),
        ],
    };
    let one = attestation(Verdict::Timeout, Vec::new());
    let mut non_canonical_batch = batch(&[mint()]);
    non_canonical_batch.splice(0..1, [0x98, 0x01]);
    let mut expired =
        Signed::<ResourceManifest>::decode(&resource_manifest()).expect("a seed").body().clone();
    expired.measured_ms = NOW_MS - 7_200_000;
    let expired = Signed::sign_with_nonce(
        &fuzz_key(),
        expired,
        Validity::starting(NOW_MS - 7_200_000, 3_600_000),
        [12; 16],
    );
    vec![
        ("accepts.ledger-batch.two", batch(&[mint(), transfer()])),
        ("accepts.ledger-entry.mint", mint()),
        ("accepts.ledger-entry.transfer", transfer()),
        ("accepts.attestations.set", sign(&fuzz_key(), set, 13)),
        ("accepts.attestation.single", sign(&fuzz_key(), one, 14)),
        ("accepts.component-manifest.fib", component_manifest()),
        ("accepts.resource-manifest.live", resource_manifest()),
        ("refuses.ledger-batch.empty", batch(&[])),
        ("refuses.ledger-batch.non-canonical-length", non_canonical_batch),
        ("refuses.ledger-batch.trailing-byte", [batch(&[mint()]), vec![0]].concat()),
        ("refuses.ledger-entry.forged", forged(&transfer())),
        ("refuses.component-manifest.truncated", cut(&component_manifest())),
        ("refuses.resource-manifest.expired", expired.bytes().to_vec()),
    ]
}

fn call() -> Vec<(&'static str, Vec<u8>)> {
    let deep = format!("echo-list({}{})", "[".repeat(256), "]".repeat(256));
    let texts = [
        ("accepts.wave-call.fib", "fib(30)".to_owned()),
        ("accepts.wave-call.count-words", r#"count-words("the cat and the hat")"#.to_owned()),
        ("accepts.wave-call.echo-everything", EVERYTHING.to_owned()),
        ("accepts.wave-call.summarize", "summarize([1.5, -0.0, nan, inf])".to_owned()),
        ("accepts.json-call.by-position", r#"{"function": "fib", "args": [30]}"#.to_owned()),
        ("accepts.json-call.by-name", r#"{"function": "count-words", "args": {"text": "b a b"}}"#.to_owned()),
        ("accepts.wave-output.u64", "832040".to_owned()),
        (
            "accepts.wave-output.word-counts",
            r#"[{word: "the", count: 2}, {word: "cat", count: 1}]"#.to_owned(),
        ),
        ("refuses.wave-call.wrong-type", r#"fib("thirty")"#.to_owned()),
        ("refuses.wave-call.unclosed", "fib(30".to_owned()),
        ("refuses.wave-call.no-such-function", "teleport()".to_owned()),
        ("refuses.wave-call.out-of-range", "fib(4294967296)".to_owned()),
        ("refuses.json-call.no-function", r#"{"args": [30]}"#.to_owned()),
        ("refuses.wave-call.deep-nesting", deep),
    ];
    texts.into_iter().map(|(name, text)| (name, text.into_bytes())).collect()
}
