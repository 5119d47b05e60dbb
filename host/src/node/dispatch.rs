//! The dispatcher: every network event goes to the room that handles it — `/cue-rpc` requests
//! (contracts to the provider, chains to `gossip::ledger`, manifests and component lists
//! answered here), gossip to `gossip/`, new connections to the announcer — and the DHT records
//! peers ask this node to store are checked here.

use std::sync::Arc;

use tokio::sync::{Notify, mpsc};

use super::quota::{Place, Places};
use super::topics::{COMPONENTS_TOPIC, EQUIVOCATIONS_TOPIC, LEDGER_TOPIC, REPUTATION_TOPIC};
use super::{Shared, gossip, provider};
use crate::clock::now_ms;
use crate::crypto::PeerId;
use crate::market::open_manifest;
use crate::net::rpc::MAX_COMPONENT_VERSIONS;
use crate::net::{
    DhtKey, GossipId, GossipVerdict, NetEvent, RecordValidator, Refusal, RefusalReason, RpcRequest,
    RpcResponse,
};
use crate::protocol::check_name;

/// Gossiped ledger entries being checked and applied at once; more are dropped (and logged):
/// their senders' chains are caught up on with the next entry that arrives.
const MAX_LEDGER_GOSSIP_IN_FLIGHT: usize = 64;
/// Gossiped attestations being checked and stored at once; more are dropped (and counted).
const MAX_ATTESTATION_GOSSIP_IN_FLIGHT: usize = 64;
/// Compute and payment requests being handled at once; more are answered `Busy`.
const MAX_CONTRACT_REQUESTS_IN_FLIGHT: usize = 128;
/// Component and chain requests being answered at once; more are answered `Busy`.
const MAX_READS_IN_FLIGHT: usize = 32;
/// Gossiped component manifests being checked at once; more are dropped (and counted).
const MAX_COMPONENT_GOSSIP_IN_FLIGHT: usize = 16;

/// The DHT records this node stores for others: only live manifests of its network (`genesis`)
/// signed by the provider the key names. Everything else is refused (and logged by the
/// network layer).
pub(super) struct Validator {
    /// The genesis id of this node's network (`NO_NETWORK` without one).
    pub(super) genesis: crate::crypto::Digest,
}

impl RecordValidator for Validator {
    fn accept_record(&self, key: &DhtKey, value: &[u8], _publisher: Option<&PeerId>) -> bool {
        match key {
            DhtKey::Manifest(peer) => match open_manifest(value, now_ms()) {
                Ok(manifest) => manifest.body().peer_id() == *peer && manifest.body().genesis == self.genesis,
                Err(e) => {
                    tracing::info!(%peer, "refused a manifest record: {e}");
                    false
                }
            },
            _ => false,
        }
    }
}

/// The places of the dispatcher's kinds of work: each bounded in all and per peer (see
/// `quota`), so a flood from one peer leaves room for the others.
struct Work {
    /// Compute and payment requests being answered.
    contracts: Arc<Places>,
    /// Component and chain requests being answered (they read the stores).
    reads: Arc<Places>,
    /// Gossiped ledger messages being checked and applied.
    ledger: Arc<Places>,
    /// Gossiped attestations being checked and stored.
    attestations: Arc<Places>,
    /// Gossiped component manifests being checked and learnt.
    components: Arc<Places>,
}

impl Work {
    fn new() -> Work {
        Work {
            contracts: Places::shared(MAX_CONTRACT_REQUESTS_IN_FLIGHT),
            reads: Places::shared(MAX_READS_IN_FLIGHT),
            ledger: Places::shared(MAX_LEDGER_GOSSIP_IN_FLIGHT),
            attestations: Places::shared(MAX_ATTESTATION_GOSSIP_IN_FLIGHT),
            components: Places::shared(MAX_COMPONENT_GOSSIP_IN_FLIGHT),
        }
    }
}

/// Handles network events until the network stops; `connected` is told of each new
/// connection (the announcer's cue). Nothing here waits on the disk or decodes a large
/// message: every request and gossip message but `GetManifest` (answered from memory) is
/// handled in a task of its own.
pub(super) async fn run(shared: Arc<Shared>, mut events: mpsc::Receiver<NetEvent>, connected: Arc<Notify>) {
    let work = Work::new();
    while let Some(event) = events.recv().await {
        match event {
            NetEvent::Request { peer, request: RpcRequest::Compute(bytes), reply } => {
                let answer = provider::on_request(shared.clone(), peer, bytes);
                spawn_answer(&shared, &work.contracts, peer, reply, answer)
            }
            NetEvent::Request { peer, request: RpcRequest::Pay(bytes), reply } => spawn_answer(
                &shared,
                &work.contracts,
                peer,
                reply,
                provider::on_payment(shared.clone(), bytes),
            ),
            NetEvent::Request { request: RpcRequest::GetManifest, reply, .. } => {
                let _ = reply.send(manifest(&shared));
            }
            NetEvent::Request { peer, request, reply } => {
                let handler = shared.clone();
                let read = async move {
                    tokio::task::spawn_blocking(move || answer(&handler, &peer, request))
                        .await
                        .unwrap_or_else(|_| RpcResponse::refused(RefusalReason::Busy, "the request failed"))
                };
                spawn_answer(&shared, &work.reads, peer, reply, read)
            }
            NetEvent::Gossip { topic, from, data, id } if topic == COMPONENTS_TOPIC => {
                let handler = shared.clone();
                let learn = async move {
                    tokio::task::spawn_blocking(move || gossip::components::on_gossip(&handler, &from, &data))
                        .await
                        .unwrap_or(GossipVerdict::Ignore)
                };
                spawn_gossip(&shared, &work.components, (from, id), "component manifests", learn)
            }
            NetEvent::Gossip { topic, from, data, id } if topic == LEDGER_TOPIC => {
                let handle = gossip::ledger::on_gossip_batch(shared.clone(), from, data);
                spawn_gossip(&shared, &work.ledger, (from, id), "ledger entries", handle)
            }
            NetEvent::Gossip { topic, from, data, id } if topic == REPUTATION_TOPIC => {
                let handler = shared.clone();
                let handle = async move { gossip::attestations::on_gossip(&handler, from, data).await };
                spawn_gossip(&shared, &work.attestations, (from, id), "attestations", handle)
            }
            NetEvent::Gossip { topic, from, data, id } if topic == EQUIVOCATIONS_TOPIC => {
                let handler = shared.clone();
                let handle = async move { gossip::equivocations::on_gossip(&handler, from, data).await };
                spawn_gossip(&shared, &work.attestations, (from, id), "equivocation proofs", handle)
            }
            NetEvent::Gossip { topic, from, id, .. } => {
                tracing::debug!(%from, topic, "gossip on an unknown topic ignored");
                let client = shared.client.clone();
                tokio::spawn(async move { client.validated(id, from, GossipVerdict::Ignore).await });
            }
            NetEvent::Connected { .. } => connected.notify_one(),
        }
    }
}

/// A place for one more task of a kind bounded by `work`, for `peer`; without one, counts an
/// overload.
fn place_or_overload(shared: &Shared, work: &Arc<Places>, peer: PeerId) -> Option<Place> {
    let place = work.take(peer);
    if let Err(full) = &place {
        shared.refusals.count(Refusal::Overload);
        tracing::debug!(%peer, "no place: {full}");
    }
    place.ok()
}

/// Handles a gossip message in a task of its own (bounded by `work`, in all and per sender:
/// the dispatcher never waits for a disk commit) and reports its verdict, so gossipsub forwards
/// it only when accepted; or ignores it (not forwarded, counted) when too many are in progress.
fn spawn_gossip(
    shared: &Shared,
    work: &Arc<Places>,
    (from, id): (PeerId, GossipId),
    what: &'static str,
    handle: impl Future<Output = GossipVerdict> + Send + 'static,
) {
    let client = shared.client.clone();
    let Some(place) = place_or_overload(shared, work, from) else {
        tracing::warn!(%from, "too many {what} being handled: one dropped");
        tokio::spawn(async move { client.validated(id, from, GossipVerdict::Ignore).await });
        return;
    };
    tokio::spawn(async move {
        let verdict = handle.await;
        drop(place);
        client.validated(id, from, verdict).await;
    });
}

/// Answers a request from a task of its own (bounded by `work`, in all and per peer), or
/// `Busy` at once.
fn spawn_answer(
    shared: &Shared,
    work: &Arc<Places>,
    peer: PeerId,
    reply: tokio::sync::oneshot::Sender<RpcResponse>,
    answer: impl Future<Output = RpcResponse> + Send + 'static,
) {
    let Some(place) = place_or_overload(shared, work, peer) else {
        let _ = reply.send(RpcResponse::refused(RefusalReason::Busy, "too many requests in progress"));
        return;
    };
    tokio::spawn(async move {
        let _ = reply.send(answer.await);
        drop(place);
    });
}

/// This node's manifest, from memory.
fn manifest(shared: &Shared) -> RpcResponse {
    match shared.advert.current() {
        Some(manifest) => RpcResponse::Manifest(manifest.bytes().to_vec()),
        None => RpcResponse::refused(RefusalReason::NotAProvider, "this node does not provide compute"),
    }
}

/// Answers a request that reads the stores (on a blocking thread).
fn answer(shared: &Shared, peer: &PeerId, request: RpcRequest) -> RpcResponse {
    match request {
        RpcRequest::GetManifest => manifest(shared),
        RpcRequest::GetChain { account, from_seq } => gossip::ledger::chain(shared, &account, from_seq),
        RpcRequest::Compute(_) | RpcRequest::Pay(_) => {
            RpcResponse::refused(RefusalReason::BadRequest, "handled by the contract tasks")
        }
        RpcRequest::GetComponents { name } => {
            if let Err(e) = check_name(&name) {
                shared.refusals.count(Refusal::Request);
                tracing::info!(%peer, "refused a malformed component request: {e}");
                return RpcResponse::refused(RefusalReason::BadRequest, e.to_string());
            }
            match shared.components.registry().versions(&name) {
                Ok(versions) if versions.is_empty() => {
                    RpcResponse::refused(RefusalReason::NotFound, format!("no component named {name}"))
                }
                Ok(versions) => RpcResponse::Components(
                    versions
                        .iter()
                        .rev()
                        .take(MAX_COMPONENT_VERSIONS)
                        .map(|m| serde_bytes::ByteBuf::from(m.bytes().to_vec()))
                        .collect(),
                ),
                Err(e) => {
                    tracing::error!("registry: {e}");
                    RpcResponse::refused(RefusalReason::Busy, "the registry failed; try again later")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Digest, Keypair};
    use crate::market::{ProviderPolicy, ResourceManifest};
    use crate::protocol::{Signed, Validity};

    fn manifest(key: &Keypair, signed_at: u64) -> Vec<u8> {
        manifest_in(key, signed_at, crate::market::NO_NETWORK)
    }

    fn manifest_in(key: &Keypair, signed_at: u64, genesis: Digest) -> Vec<u8> {
        let body = ResourceManifest {
            provider: key.public(),
            genesis,
            cores: 2,
            memory_bytes: 1 << 30,
            fuel_per_second: 1_000_000_000,
            engine: "0123456789abcdef".into(),
            wasmtime: "48.0.8".into(),
            policy: ProviderPolicy {
                price_per_mfuel: 1,
                base_fee: 0,
                max_concurrent_jobs: 1,
                max_memory_bytes: 1 << 26,
                max_execution_ms: 1_000,
            },
            measured_ms: signed_at,
        };
        Signed::sign(key, body, Validity::starting(signed_at, 3_600_000)).unwrap().bytes().to_vec()
    }

    #[test]
    fn only_live_manifests_under_their_own_provider_key_are_stored() {
        let (honest, other) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
        let now = now_ms();
        let key = DhtKey::Manifest(honest.peer_id());
        let validator = Validator { genesis: crate::market::NO_NETWORK };
        assert!(validator.accept_record(&key, &manifest(&honest, now), None));
        let elsewhere = manifest_in(&honest, now, Digest::of(b"another genesis"));
        assert!(!validator.accept_record(&key, &elsewhere, None), "another network's manifest");
        assert!(!validator.accept_record(&key, &manifest(&other, now), None), "someone else's manifest");
        assert!(!validator.accept_record(&key, &manifest(&honest, now - 7_200_000), None), "expired");
        let mut forged = manifest(&honest, now);
        *forged.last_mut().unwrap() ^= 1;
        assert!(!validator.accept_record(&key, &forged, None), "bad signature");
        assert!(!validator.accept_record(&key, b"garbage", None));
        let elsewhere = DhtKey::Blob(Digest::of(b"x"));
        assert!(
            !validator.accept_record(&elsewhere, &manifest(&honest, now), None),
            "records only for manifests"
        );
    }
}
