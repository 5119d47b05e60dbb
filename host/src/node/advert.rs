//! The provider's advertisement: its resource manifest, measured on this machine at start (or
//! reused while the stored one is fresh and still true), signed, announced on the DHT, and
//! re-signed before it expires. Read by the dispatcher (`GetManifest`), by the provider's
//! negotiation (its policy) and by discovery (this node's own entry).

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::{FaultInjection, NodeError, ProviderSettings, Shared, lock, wait_for};
use crate::benchmark;
use crate::clock::now_ms;
use crate::crypto::Digest;
use crate::market::{NO_NETWORK, ResourceManifest, open_manifest};
use crate::net::DhtKey;
use crate::protocol::{Signed, Validity};

/// This node's current signed manifest: none until it provides.
#[derive(Default)]
pub(super) struct Advert {
    current: Mutex<Option<Signed<ResourceManifest>>>,
}

impl Advert {
    /// The manifest peers are told now, if this node provides.
    pub(super) fn current(&self) -> Option<Signed<ResourceManifest>> {
        lock(&self.current).clone()
    }
}

/// Installs a manifest (a stored one that is still fresh and true, else a new measurement; the
/// announcer announces it) and spawns the task that re-signs it: returns that task.
pub(super) async fn start(
    shared: &Arc<Shared>,
    settings: ProviderSettings,
    shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, NodeError> {
    let manifest = match reusable(shared, &settings) {
        Some(manifest) => manifest,
        None => measure(shared, &settings, Arc::new(|_, _| {})).await?,
    };
    install(shared, manifest);
    Ok(tokio::spawn(refresh(shared.clone(), settings, shutdown)))
}

/// Measures this machine now (telling `progress(runs done, runs)`), installs the new manifest
/// and spawns the task that re-signs it: returns that task. For providing started while the
/// node runs (`providing`).
pub(super) async fn start_measured(
    shared: &Arc<Shared>,
    settings: ProviderSettings,
    progress: MeasureProgress,
    shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, NodeError> {
    let manifest = measure(shared, &settings, progress).await?;
    install(shared, manifest);
    Ok(tokio::spawn(refresh(shared.clone(), settings, shutdown)))
}

/// Spawns the task that re-signs the installed manifest with `settings` (after a failed
/// re-measurement, the previous one goes on).
pub(super) fn keep_fresh(
    shared: &Arc<Shared>,
    settings: ProviderSettings,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(refresh(shared.clone(), settings, shutdown))
}

/// Withdraws the manifest: peers asking are told this node does not provide.
pub(super) fn withdraw(shared: &Shared) {
    *lock(&shared.advert.current) = None;
}

/// What a measurement tells after each run: `(runs done, runs)`.
pub(super) type MeasureProgress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// The stored manifest, if it is ours, for this engine and policy, and lives for at least half
/// its lifetime more.
fn reusable(shared: &Shared, settings: &ProviderSettings) -> Option<Signed<ResourceManifest>> {
    let bytes = std::fs::read(shared.data_dir.manifest()).ok()?;
    let now = now_ms();
    let manifest = open_manifest(&bytes, now).ok()?;
    let body = manifest.body();
    let half_life = u64::try_from(settings.manifest_lifetime.as_millis() / 2).unwrap_or(u64::MAX);
    let fresh = manifest.header().expires_ms.saturating_sub(now) > half_life;
    let same = body.provider == shared.keypair.public()
        && body.genesis == network_genesis(shared)
        && body.engine == shared.components.sandbox().fingerprint().id
        && body.policy == settings.policy;
    (fresh && same).then_some(manifest)
}

async fn measure(
    shared: &Arc<Shared>,
    settings: &ProviderSettings,
    progress: MeasureProgress,
) -> Result<Signed<ResourceManifest>, NodeError> {
    let (sandbox, keypair) = (shared.components.sandbox().clone(), shared.keypair.clone());
    let (policy, plan, lifetime) = (settings.policy, settings.plan, settings.manifest_lifetime);
    let genesis = network_genesis(shared);
    let overclaim = settings.fault == Some(FaultInjection::OverclaimSpeed);
    tracing::info!("measuring this machine for the provider manifest");
    let signed = tokio::task::spawn_blocking(move || {
        let measurement = benchmark::measure_reporting(&sandbox, plan, &mut |done, runs| {
            progress(u64::from(done), u64::from(runs));
        })?;
        let mut body = benchmark::manifest(&measurement, &keypair, genesis, policy, now_ms());
        if overclaim {
            body.fuel_per_second = body.fuel_per_second.saturating_mul(OVERCLAIM_FACTOR);
        }
        let lifetime_ms = u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX);
        let signed = Signed::sign(&keypair, body, Validity::starting(now_ms(), lifetime_ms))?;
        Ok::<_, benchmark::BenchmarkError>((measurement, signed))
    })
    .await
    .map_err(|e| NodeError::task("benchmark", e))?
    .map_err(|e| NodeError::Setup(format!("benchmark: {e}")))?;
    let (measurement, manifest) = signed;
    tracing::info!(fuel_per_second = measurement.fuel_per_second, "manifest signed");
    Ok(manifest)
}

/// How much a provider with the `overclaim-speed` fault injected inflates its measured speed.
const OVERCLAIM_FACTOR: u64 = 1_000;

fn install(shared: &Shared, manifest: Signed<ResourceManifest>) {
    let path = shared.data_dir.manifest();
    if let Err(e) = std::fs::write(&path, manifest.bytes()) {
        tracing::warn!("cannot save the manifest to {}: {e}", path.display());
    }
    *lock(&shared.advert.current) = Some(manifest);
}

/// The genesis id of this node's network, as its manifest names it (`NO_NETWORK` without one).
pub(super) fn network_genesis(shared: &Shared) -> Digest {
    shared.journal.genesis_id().unwrap_or(NO_NETWORK)
}

/// Announces the manifest as a DHT record and this node under its service shard. Alone on
/// the network this fails quietly; the announcer repeats it when peers arrive.
pub(super) async fn announce(shared: &Shared) {
    let Some(manifest) = shared.advert.current() else { return };
    let me = shared.keypair.peer_id();
    if let Err(e) = shared.client.put_record(DhtKey::Manifest(me), manifest.bytes().to_vec()).await {
        tracing::debug!("manifest record not stored remotely: {e}");
    }
    if let Err(e) = shared.client.provide(DhtKey::service_shard_of(&me)).await {
        tracing::debug!("service announcement incomplete: {e}");
    }
}

async fn refresh(shared: Arc<Shared>, settings: ProviderSettings, shutdown: watch::Receiver<bool>) {
    loop {
        let wait = settings.manifest_lifetime / 2;
        tokio::select! {
            () = wait_for(shutdown.clone()) => return,
            () = tokio::time::sleep(wait) => {}
        }
        match measure(&shared, &settings, Arc::new(|_, _| {})).await {
            Ok(manifest) => {
                install(&shared, manifest);
                announce(&shared).await;
            }
            Err(e) => tracing::error!("cannot refresh the manifest: {e}"),
        }
    }
}
