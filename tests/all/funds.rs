//! Funding the hand-made requests of the in-process tests: each key's locks at its next chain
//! position, sent with a request on its job stream (`ask_on_stream`) or before a `Compute`
//! (`compute`). A key that signs a request is remembered here, so a test need not pass it.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use cue_host::crypto::{Digest, Keypair, PeerId, PublicKey};
use cue_host::net::{self, RpcRequest, RpcResponse};
use cue_host::protocol::{
    ChainLink, ComputeRequest, Lock, PaymentReference, Release, Signed, Transfer, Validity,
};

/// A remembered key and its next chain position, by its public key.
type Keys = HashMap<[u8; 32], (Keypair, ChainLink)>;

/// The keys that signed requests, and each one's next chain position.
static KEYS: LazyLock<Mutex<Keys>> = LazyLock::new(Mutex::default);
/// The locks signed for requests, by the request's hash.
static LOCKS: LazyLock<Mutex<HashMap<Digest, Digest>>> = LazyLock::new(Mutex::default);

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Remembers `key` as a signer of requests (its chain starts empty).
pub(crate) fn remember(key: &Keypair) {
    let mut keys = KEYS.lock().unwrap();
    // The key file's encoding: a 4-byte protobuf prefix, the 32-byte seed, the public key.
    let seed: [u8; 32] = key.to_protobuf_encoding()[4..36].try_into().unwrap();
    keys.entry(*key.public().as_bytes()).or_insert_with(|| (Keypair::from_seed(seed), ChainLink::FIRST));
}

/// A lock of `request`'s offer, for its job and provider, signed by its signer at its next
/// chain position (which it takes; see [`give_back`]).
pub(crate) fn lock_for(request: &Signed<ComputeRequest>) -> Signed<Lock> {
    let mut keys = KEYS.lock().unwrap();
    let (key, next) = keys.get_mut(request.header().signer.as_bytes()).expect("a remembered signer");
    let body = Lock {
        genesis: request.body().genesis,
        link: *next,
        to: request.body().provider,
        amount: request.body().offer,
        job: request.body().job_id,
    };
    let lock = Signed::sign(key, body, Validity::starting(now_ms(), 600_000)).unwrap();
    *next = ChainLink { seq: next.seq + 1, prev: Some(lock.hash()) };
    LOCKS.lock().unwrap().insert(request.hash(), lock.hash());
    lock
}

/// The consumer's release of the lock signed for `request`, paying `paid` for `receipt`: how
/// Cue's consumer pays.
pub(crate) fn release_for(request: &Signed<ComputeRequest>, paid: u64, receipt: Digest) -> Signed<Release> {
    let lock = *LOCKS.lock().unwrap().get(&request.hash()).expect("a lock was signed for the request");
    let keys = KEYS.lock().unwrap();
    let (key, _) = keys.get(request.header().signer.as_bytes()).expect("a remembered signer");
    let body =
        Release { genesis: request.body().genesis, lock, paid, receipt: Some(receipt), evidence: None };
    Signed::sign(key, body, Validity::starting(now_ms(), 600_000)).unwrap()
}

/// A transfer signed by `key` at its next chain position (which it takes).
pub(crate) fn transfer(
    key: &Keypair,
    genesis: Digest,
    to: PublicKey,
    amount: u64,
    reference: Option<PaymentReference>,
) -> Signed<Transfer> {
    remember(key);
    let mut keys = KEYS.lock().unwrap();
    let (key, next) = keys.get_mut(key.public().as_bytes()).expect("remembered");
    let body = Transfer { genesis, link: *next, to, amount, reference };
    let transfer = Signed::sign(key, body, Validity::starting(now_ms(), 600_000)).unwrap();
    *next = ChainLink { seq: next.seq + 1, prev: Some(transfer.hash()) };
    transfer
}

/// Gives `to` `amount` of `from`'s tokens in `node`'s ledger.
pub(crate) async fn give(
    node: &cue_host::node::Node,
    from: &Keypair,
    genesis: Digest,
    to: &Keypair,
    amount: u64,
) {
    let transfer = transfer(from, genesis, to.public(), amount, None);
    node.handle().import(transfer.bytes().to_vec(), false).await.expect("the transfer applies");
}

/// The provider did not apply `lock`: its position is free again.
pub(crate) fn give_back(lock: &Signed<Lock>) {
    let mut keys = KEYS.lock().unwrap();
    if let Some((_, next)) = keys.get_mut(lock.header().signer.as_bytes()) {
        *next = lock.body().link;
    }
}

/// `Compute` on `/cue-rpc`, funded: the lock goes first by `Pay` (any ledger entry may), then
/// the request.
pub(crate) async fn compute(
    client: &net::Client,
    provider: PeerId,
    request: &Signed<ComputeRequest>,
) -> RpcResponse {
    let lock = lock_for(request);
    let paid = client.request(provider, RpcRequest::Pay(lock.bytes().to_vec())).await.unwrap();
    if paid != RpcResponse::Paid {
        give_back(&lock);
    }
    client.request(provider, RpcRequest::Compute(request.bytes().to_vec())).await.unwrap()
}
