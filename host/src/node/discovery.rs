//! Finding providers: sweep every service shard of the DHT, ask each provider for its signed
//! manifest, check it, measure the round trip, and rank them.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Instant;

use futures::StreamExt as _;
use serde::Serialize;

use super::{NodeError, Shared, advert, lock};
use crate::clock::now_ms;
use crate::crypto::{PeerId, PublicKey};
use crate::market::{Observed, ResourceManifest, open_manifest, score_observed};
use crate::net::{DhtKey, Refusal, RpcRequest, RpcResponse};
use crate::protocol::Signed;

/// Manifests asked for at once during a sweep.
const CONCURRENT_CHECKS: usize = 32;

/// Providers' checked manifests, for jobs sent to a named provider (at most
/// [`RECENT_MANIFESTS`], each reused for [`RECHECK`]), and what this node has seen each
/// deliver as a consumer (at most [`OBSERVED_PROVIDERS`]; in memory, learnt again after a
/// restart).
#[derive(Default)]
pub(super) struct Discovery {
    recent: Mutex<HashMap<PeerId, (Instant, ProviderView)>>,
    observed: Mutex<HashMap<PublicKey, Observed>>,
}

/// Providers whose delivered fuel and time are remembered; beyond, the memory starts again.
const OBSERVED_PROVIDERS: usize = 4_096;

impl Discovery {
    /// Notes that `provider` delivered `fuel` (a receipt the consumer accepted) in `micros` as
    /// this node timed it, request to checked receipt.
    pub(super) fn observe(&self, provider: PublicKey, fuel: u64, micros: u64) {
        let mut observed = lock(&self.observed);
        if observed.len() >= OBSERVED_PROVIDERS && !observed.contains_key(&provider) {
            observed.clear();
        }
        observed.entry(provider).or_default().add(fuel, micros);
    }

    /// The fuel per second this node has seen `provider` deliver, once it has seen enough.
    fn observed(&self, provider: &PublicKey) -> Option<u64> {
        lock(&self.observed).get(provider).and_then(Observed::fuel_per_second)
    }
}

/// A provider as `cue providers` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct ProviderView {
    /// The provider's peer id.
    pub peer_id: String,
    /// Its checked manifest: measured capacity, policy, engine, expiry.
    pub manifest: serde_json::Value,
    /// Round-trip time: ping's last measurement, else the manifest request's.
    pub latency_ms: f64,
    /// Reputation in `[0, 1]`; neutral (0.5) until contracts give this node experience.
    pub reputation: f64,
    /// The fuel per second this node has seen the provider deliver, as a consumer (`None`
    /// until it has seen enough: `market::MIN_OBSERVED_FUEL`); beside the manifest's claim.
    pub observed_fuel_per_second: Option<u64>,
    /// The ranking score (see `market::score`), with the observed rate once there is one.
    pub score: f64,
    /// The checked manifest itself (what contracts are negotiated from).
    #[serde(skip)]
    pub(super) signed: Signed<ResourceManifest>,
}

/// Every provider the DHT knows, best first. Providers whose manifest is missing, forged,
/// expired or someone else's are left out (and logged).
pub(super) async fn providers(shared: &Shared) -> Result<Vec<ProviderView>, NodeError> {
    let client = &shared.client;
    let sweeps = DhtKey::all_service_shards().map(|key| client.find_providers(key));
    let mut found: HashSet<PeerId> = HashSet::new();
    let mut failures = Vec::new();
    for result in futures::future::join_all(sweeps).await {
        match result {
            Ok(peers) => found.extend(peers),
            Err(e) => failures.push(e),
        }
    }
    if found.is_empty()
        && let Some(e) = failures.pop()
    {
        tracing::debug!("provider sweep found nothing: {e}");
    }
    let mut views: Vec<ProviderView> = futures::stream::iter(found)
        .map(|peer| check(shared, peer))
        .buffer_unordered(CONCURRENT_CHECKS)
        .filter_map(|view| async move { view })
        .collect()
        .await;
    views.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.peer_id.cmp(&b.peer_id)));
    Ok(views)
}

/// One provider's view, from the recent-manifest cache when its manifest was checked less
/// than [`RECHECK`] ago and is still live, else asked for afresh.
pub(super) async fn checked(shared: &Shared, peer: PeerId) -> Option<ProviderView> {
    let cached = lock(&shared.discovery.recent)
        .get(&peer)
        .filter(|(at, view)| at.elapsed() < RECHECK && view.signed.header().expires_ms > now_ms())
        .map(|(_, view)| view.clone());
    if cached.is_some() {
        return cached;
    }
    let view = check(shared, peer).await?;
    let mut recent = lock(&shared.discovery.recent);
    if recent.len() >= RECENT_MANIFESTS {
        recent.clear();
    }
    recent.insert(peer, (Instant::now(), view.clone()));
    Some(view)
}

/// How long a checked manifest is reused for a named provider.
const RECHECK: std::time::Duration = std::time::Duration::from_secs(30);
/// Providers whose checked manifest is kept.
const RECENT_MANIFESTS: usize = 1024;

/// Asks one provider for its manifest and checks it; `None` when it is unreachable or lies.
pub(super) async fn check(shared: &Shared, peer: PeerId) -> Option<ProviderView> {
    if peer == shared.keypair.peer_id() {
        let manifest = shared.advert.current()?;
        return Some(view(shared, &manifest, 0.0));
    }
    let started = Instant::now();
    let response = shared.client.request(peer, RpcRequest::GetManifest).await;
    let round_trip = started.elapsed();
    let bytes = match response {
        Ok(RpcResponse::Manifest(bytes)) => bytes,
        Ok(other) => {
            tracing::info!(%peer, "announced compute but answered {other:?}");
            return None;
        }
        Err(e) => {
            tracing::info!(%peer, "provider unreachable: {e}");
            return None;
        }
    };
    let manifest = match open_manifest(&bytes, now_ms()) {
        Ok(manifest) if manifest.body().genesis != advert::network_genesis(shared) => {
            shared.refusals.count(Refusal::OtherNetwork);
            tracing::info!(%peer, "refused a manifest of another network");
            return None;
        }
        Ok(manifest) if manifest.body().peer_id() == peer => manifest,
        Ok(manifest) => {
            shared.refusals.count(Refusal::Manifest);
            tracing::warn!(%peer, other = %manifest.body().peer_id(), "refused a manifest for another provider");
            return None;
        }
        Err(e) => {
            shared.refusals.count(Refusal::Manifest);
            tracing::warn!(%peer, "refused a manifest: {e}");
            return None;
        }
    };
    let addresses: Vec<String> = Vec::new();
    if let Err(e) = shared.components.registry().remember_peer(
        &manifest.body().provider,
        Some(&bytes),
        &addresses,
        now_ms(),
    ) {
        tracing::debug!("cannot remember {peer}: {e}");
    }
    let latency = shared.client.rtt(peer).await.ok().flatten().unwrap_or(round_trip);
    Some(view(shared, &manifest, latency.as_secs_f64() * 1000.0))
}

fn view(shared: &Shared, manifest: &Signed<ResourceManifest>, latency_ms: f64) -> ProviderView {
    let body = manifest.body();
    let reputation = shared.reputation.of(&body.provider);
    let observed = shared.discovery.observed(&body.provider);
    let mut json = serde_json::to_value(body).unwrap_or_default();
    if let Some(object) = json.as_object_mut() {
        object.insert("expires_ms".into(), manifest.header().expires_ms.into());
        object.insert("hash".into(), manifest.hash().to_string().into());
    }
    ProviderView {
        peer_id: body.peer_id().to_string(),
        manifest: json,
        latency_ms,
        reputation,
        observed_fuel_per_second: observed,
        score: score_observed(body, latency_ms, reputation, observed),
        signed: manifest.clone(),
    }
}
