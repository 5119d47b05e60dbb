//! What a node does for others: answers `/cue-rpc` requests, checks gossip, serves blobs,
//! checks the DHT records peers ask it to store, and keeps its own announcements alive.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc, watch};

use super::{
    BLOB_PROTOCOL, COMPONENTS_TOPIC, LEDGER_TOPIC, MAX_UPLOADS, NodeError, REPUTATION_TOPIC, Shared, blobs,
    ledger, now_ms, provide, provider, reputation,
};
use crate::crypto::PeerId;
use crate::market::open_manifest;
use crate::net::rpc::MAX_COMPONENT_VERSIONS;
use crate::net::{DhtKey, NetEvent, RecordValidator, Refusal, RefusalReason, RpcRequest, RpcResponse};
use crate::protocol::{check_name, open_component_manifest};
use crate::store::Added;

/// Gossiped ledger entries being checked and applied at once; more are dropped (and logged):
/// their senders' chains are caught up on with the next entry that arrives.
const MAX_LEDGER_GOSSIP_IN_FLIGHT: usize = 64;
/// Gossiped attestations being checked and stored at once; more are dropped (and counted).
const MAX_ATTESTATION_GOSSIP_IN_FLIGHT: usize = 64;
/// Compute and payment requests being handled at once; more are answered `Busy`.
const MAX_CONTRACT_REQUESTS_IN_FLIGHT: usize = 128;
/// How often announcements are renewed besides the DHT's own republishing.
const REANNOUNCE_EVERY: Duration = Duration::from_secs(300);
/// Announcements triggered by new connections, at most this many (then only the timer).
const EAGER_ANNOUNCEMENTS: u32 = 8;
/// Connected peers (Kademlia's k) beyond which new connections trigger no announcement.
const WELL_CONNECTED: usize = 20;

/// The DHT records this node stores for others: only live manifests signed by the provider
/// the key names. Everything else is refused (and logged by the network layer).
pub(super) struct Validator;

impl RecordValidator for Validator {
    fn accept_record(&self, key: &DhtKey, value: &[u8], _publisher: Option<&PeerId>) -> bool {
        match key {
            DhtKey::Manifest(peer) => match open_manifest(value, now_ms()) {
                Ok(manifest) => manifest.body().peer_id() == *peer,
                Err(e) => {
                    tracing::info!(%peer, "refused a manifest record: {e}");
                    false
                }
            },
            _ => false,
        }
    }
}

/// Handles network events until the network stops.
pub(super) async fn dispatch(shared: Arc<Shared>, mut events: mpsc::Receiver<NetEvent>, kicks: Arc<Notify>) {
    let ledger_work = Arc::new(Semaphore::new(MAX_LEDGER_GOSSIP_IN_FLIGHT));
    let contract_work = Arc::new(Semaphore::new(MAX_CONTRACT_REQUESTS_IN_FLIGHT));
    let attestation_work = Arc::new(Semaphore::new(MAX_ATTESTATION_GOSSIP_IN_FLIGHT));
    while let Some(event) = events.recv().await {
        match event {
            NetEvent::Request { peer, request: RpcRequest::Compute(bytes), reply } => {
                spawn_answer(&shared, &contract_work, reply, provide::on_request(shared.clone(), peer, bytes))
            }
            NetEvent::Request { request: RpcRequest::Pay(bytes), reply, .. } => {
                spawn_answer(&shared, &contract_work, reply, provide::on_payment(shared.clone(), bytes))
            }
            NetEvent::Request { peer, request, reply } => {
                let _ = reply.send(answer(&shared, &peer, request));
            }
            NetEvent::Gossip { topic, from, data } if topic == COMPONENTS_TOPIC => {
                on_component_gossip(&shared, &from, &data)
            }
            NetEvent::Gossip { topic, from, data } if topic == LEDGER_TOPIC => {
                let work = ledger::on_gossip_batch(shared.clone(), from, data);
                spawn_gossip(&shared, &ledger_work, from, "ledger entries", work)
            }
            NetEvent::Gossip { topic, from, data } if topic == ledger::LEDGER_TOPIC_V1 => {
                let work = ledger::on_gossip(shared.clone(), from, data);
                spawn_gossip(&shared, &ledger_work, from, "ledger entries", work)
            }
            NetEvent::Gossip { topic, from, data } if topic == REPUTATION_TOPIC => {
                let shared2 = shared.clone();
                let work = async move { reputation::on_gossip(&shared2, from, data).await };
                spawn_gossip(&shared, &attestation_work, from, "attestations", work)
            }
            NetEvent::Gossip { topic, from, .. } => {
                tracing::debug!(%from, topic, "gossip on an unknown topic ignored")
            }
            NetEvent::Connected { .. } => kicks.notify_one(),
        }
    }
}

/// A place for one more task of a kind bounded by `work`; without one, counts an overload.
fn place(shared: &Shared, work: &Arc<Semaphore>) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let place = work.clone().try_acquire_owned().ok();
    if place.is_none() {
        shared.refusals.count(Refusal::Overload);
    }
    place
}

/// Handles a gossip message in a task of its own (bounded by `work`: the dispatcher never
/// waits for a disk commit), or drops it (counted) when too many are in progress.
fn spawn_gossip(
    shared: &Shared,
    work: &Arc<Semaphore>,
    from: PeerId,
    what: &'static str,
    handle: impl Future<Output = ()> + Send + 'static,
) {
    let Some(place) = place(shared, work) else {
        tracing::warn!(%from, "too many {what} being handled: one dropped");
        return;
    };
    tokio::spawn(async move {
        handle.await;
        drop(place);
    });
}

/// Answers a request from a task of its own (bounded by `work`), or `Busy` at once.
fn spawn_answer(
    shared: &Shared,
    work: &Arc<Semaphore>,
    reply: tokio::sync::oneshot::Sender<RpcResponse>,
    answer: impl Future<Output = RpcResponse> + Send + 'static,
) {
    let Some(place) = place(shared, work) else {
        let _ = reply.send(RpcResponse::refused(RefusalReason::Busy, "too many requests in progress"));
        return;
    };
    tokio::spawn(async move {
        let _ = reply.send(answer.await);
        drop(place);
    });
}

fn answer(shared: &Shared, peer: &PeerId, request: RpcRequest) -> RpcResponse {
    match request {
        RpcRequest::GetManifest => match shared.manifest.read().ok().and_then(|m| m.clone()) {
            Some(manifest) => RpcResponse::Manifest(manifest.bytes().to_vec()),
            None => RpcResponse::refused(RefusalReason::NotAProvider, "this node does not provide compute"),
        },
        RpcRequest::GetChain { account, from_seq } => ledger::chain(shared, &account, from_seq),
        RpcRequest::Compute(_) | RpcRequest::Pay(_) => {
            RpcResponse::refused(RefusalReason::BadRequest, "handled by the contract tasks")
        }
        RpcRequest::GetComponents { name } => {
            if let Err(e) = check_name(&name) {
                shared.refusals.count(Refusal::Request);
                tracing::info!(%peer, "refused a malformed component request: {e}");
                return RpcResponse::refused(RefusalReason::BadRequest, e.to_string());
            }
            match shared.registry.versions(&name) {
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

/// A component manifest arrived by gossip: verify it and learn it (pinning a new name to its
/// publisher); refuse it if the name belongs to someone else here.
fn on_component_gossip(shared: &Shared, from: &PeerId, data: &[u8]) {
    let manifest = match open_component_manifest(data, now_ms()) {
        Ok(manifest) => manifest,
        Err(e) => {
            shared.refusals.count(Refusal::ComponentManifest);
            tracing::info!(%from, "refused a gossiped component manifest: {e}");
            return;
        }
    };
    let body = manifest.body();
    match shared.registry.add(&manifest) {
        Ok(Added::New) => tracing::info!(name = %body.name, version = %body.version, "learnt a component"),
        Ok(_) => {}
        Err(e) => {
            shared.refusals.count(Refusal::ComponentManifest);
            tracing::info!(%from, name = %body.name, "refused a gossiped component manifest: {e}")
        }
    }
}

/// Serves `/cue-blob/1.0.0` until shutdown, at most [`MAX_UPLOADS`] transfers at once.
pub(super) fn serve_blobs(
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) -> Result<impl Future<Output = ()>, NodeError> {
    let mut incoming = shared.client.accept(BLOB_PROTOCOL)?;
    let uploads = Arc::new(Semaphore::new(MAX_UPLOADS));
    Ok(async move {
        loop {
            let Some((peer, stream)) = next_stream(&mut incoming, &shutdown).await else { return };
            let permit = uploads.clone().try_acquire_owned().ok();
            let shared = shared.clone();
            tokio::spawn(async move {
                let busy = permit.is_none();
                if busy {
                    shared.refusals.count(Refusal::Overload);
                }
                if let Err(e) = blobs::serve(stream, &shared.blobs, busy).await {
                    tracing::info!(%peer, "blob transfer failed: {e}");
                }
                drop(permit);
            });
        }
    })
}

/// The next inbound stream, or `None` at shutdown or when the network has stopped.
pub(super) async fn next_stream(
    incoming: &mut crate::net::Incoming,
    shutdown: &watch::Receiver<bool>,
) -> Option<(PeerId, crate::net::Stream)> {
    tokio::select! {
        () = super::wait_for(shutdown.clone()) => None,
        next = incoming.next() => next,
    }
}

/// Keeps this node's announcements alive: at start, when new peers connect (the first few
/// times), and every [`REANNOUNCE_EVERY`].
pub(super) async fn announcer(shared: Arc<Shared>, kicks: Arc<Notify>, shutdown: watch::Receiver<bool>) {
    let mut eager = 0;
    loop {
        announce_all(&shared).await;
        let timer = tokio::time::sleep(REANNOUNCE_EVERY);
        tokio::select! {
            () = super::wait_for(shutdown.clone()) => return,
            () = timer => {}
            () = kicks.notified(), if eager < EAGER_ANNOUNCEMENTS => {
                eager += 1;
                // Let the routing table fill before announcing again.
                tokio::time::sleep(Duration::from_millis(300)).await;
                // Well connected: announcements reach the closest peers now; a consumer's
                // sweep connecting to every provider must not set off a storm of them.
                if shared.client.connected_peers().await.map_or(0, |p| p.len()) >= WELL_CONNECTED {
                    eager = EAGER_ANNOUNCEMENTS;
                }
            }
        }
    }
}

/// Announces the manifest (if providing), every held blob and every held name.
async fn announce_all(shared: &Shared) {
    provider::announce(shared).await;
    let blobs = shared.blobs.list().unwrap_or_default();
    for (digest, _) in blobs {
        if let Err(e) = shared.client.provide(DhtKey::Blob(digest)).await {
            tracing::debug!(%digest, "blob announcement incomplete: {e}");
        }
    }
    for pinned in shared.registry.names().unwrap_or_default() {
        if let Err(e) = shared.client.provide(DhtKey::Name(pinned.name.clone())).await {
            tracing::debug!(name = %pinned.name, "name announcement incomplete: {e}");
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
        let body = ResourceManifest {
            provider: key.public(),
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
        assert!(Validator.accept_record(&key, &manifest(&honest, now), None));
        assert!(!Validator.accept_record(&key, &manifest(&other, now), None), "someone else's manifest");
        assert!(!Validator.accept_record(&key, &manifest(&honest, now - 7_200_000), None), "expired");
        let mut forged = manifest(&honest, now);
        *forged.last_mut().unwrap() ^= 1;
        assert!(!Validator.accept_record(&key, &forged, None), "bad signature");
        assert!(!Validator.accept_record(&key, b"garbage", None));
        let elsewhere = DhtKey::Blob(Digest::of(b"x"));
        assert!(
            !Validator.accept_record(&elsewhere, &manifest(&honest, now), None),
            "records only for manifests"
        );
    }
}
