//! Components: the sandbox, the registry of names and the blob store, with the components
//! loaded warm; publishing (sign a component manifest, keep the blob, announce both) and
//! fetching (resolve a reference — name and semver requirement, hash, or file — and fetch the
//! blob by hash from a peer that has it).

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use semver::Version;
use serde::Serialize;

use super::blobs::{self, BLOB_PROTOCOL, TransferError};
use super::topics::COMPONENTS_TOPIC;
use super::{NodeError, Shared, lock};
use crate::clock::now_ms;
use crate::crypto::{Digest, PeerId, PublicKey};
use crate::datadir::DataDir;
use crate::net::{DhtKey, Refusal, RpcRequest, RpcResponse};
use crate::protocol::{ComponentManifest, ComponentRef, Signed, check_name, open_component_manifest};
use crate::sandbox::{FailureKind, JobError, LoadedComponent, Sandbox};
use crate::store::{Added, BlobError, BlobStore, Keep, LedgerStore, Registry, RegistryError, StoreError};

/// Peers asked for a name's manifests, or for a blob, before giving up.
const MAX_SOURCES: usize = 8;
/// Loaded components kept warm per node.
const LOADED_CACHE: usize = 32;
/// Components compiled at once (each takes a core); more wait for a place.
pub(super) const MAX_COMPILES: usize = 2;
/// How long loading a component may take, waiting for a compile place included.
pub(super) const COMPILE_DEADLINE: Duration = Duration::from_secs(30);
/// Names whose last network lookup time is remembered; beyond, the memory is cleared.
const NAMES_CHECKED: usize = 1024;
/// A name looked up this recently is resolved from the registry alone.
const NAME_RECHECK: Duration = Duration::from_secs(30);

/// Opens the registry and the blob store of `data_dir` (blobs of at most `caps.0` bytes, at
/// most `caps.1` in all), each keeping at its caps what this node still needs: what `me`
/// published, and the components of `ledger`'s live contracts.
pub(super) fn open_stores(
    data_dir: &DataDir,
    me: PublicKey,
    ledger: Option<&Arc<LedgerStore>>,
    caps: (u64, u64),
) -> Result<(Arc<Registry>, BlobStore), NodeError> {
    let setup = |what: &str, e: &dyn std::fmt::Display| NodeError::Setup(format!("{what}: {e}"));
    let live = ledger.map(|ledger| ledger.clone() as Arc<dyn Keep>);
    let registry = Registry::open(&data_dir.registry()).map_err(|e| setup("registry", &e))?;
    let registry = Arc::new(registry.keeping(me, live.clone()));
    let pinned = Pinned { registry: registry.clone(), me, live };
    let blobs = BlobStore::open(&data_dir.blobs(), caps.0, caps.1).map_err(|e| setup("blob store", &e))?;
    Ok((registry, blobs.keeping(Arc::new(pinned))))
}

/// The blobs the blob store keeps at its cap: the components this node published (signed its
/// manifest) and those its live contracts need.
struct Pinned {
    registry: Arc<Registry>,
    me: PublicKey,
    live: Option<Arc<dyn Keep>>,
}

impl Keep for Pinned {
    fn components(&self) -> Result<HashSet<Digest>, StoreError> {
        let mut kept = self.registry.components_published_by(&self.me).map_err(|e| match e {
            RegistryError::Store(e) => e,
            other => StoreError::Corrupt(other.to_string()),
        })?;
        if let Some(live) = &self.live {
            kept.extend(live.components()?);
        }
        Ok(kept)
    }
}

/// The sandbox, the registry and the blob store, with what the node keeps warm of them.
pub(super) struct Components {
    sandbox: Arc<Sandbox>,
    registry: Arc<Registry>,
    blobs: BlobStore,
    /// Components loaded in the sandbox, newest last (at most [`LOADED_CACHE`]).
    loaded: Mutex<VecDeque<(Digest, Arc<LoadedComponent>)>>,
    /// When each name was last looked up on the network (at most [`NAMES_CHECKED`] names).
    names_checked: Mutex<HashMap<String, Instant>>,
    /// Places for compiles ([`MAX_COMPILES`]).
    compiles: Arc<tokio::sync::Semaphore>,
    /// The JavaScript runtime's hash once it is ready here (see `node::js`).
    js_runtime: tokio::sync::OnceCell<Digest>,
}

impl Components {
    pub(super) fn new(sandbox: Arc<Sandbox>, registry: Arc<Registry>, blobs: BlobStore) -> Components {
        Components {
            sandbox,
            registry,
            blobs,
            loaded: Mutex::default(),
            names_checked: Mutex::default(),
            compiles: Arc::new(tokio::sync::Semaphore::new(MAX_COMPILES)),
            js_runtime: tokio::sync::OnceCell::new(),
        }
    }

    /// The JavaScript runtime's hash, set once it is ready here (see `node::js`).
    pub(super) fn js_runtime(&self) -> &tokio::sync::OnceCell<Digest> {
        &self.js_runtime
    }

    /// The sandbox every job runs in.
    pub(super) fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// The signed component manifests this node knows, by name.
    pub(super) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The component bytes this node holds, by hash.
    pub(super) fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// The component, if it is loaded in the sandbox now (see [`Components::load`]).
    pub(super) fn loaded_now(&self, sha256: &Digest) -> Option<Arc<LoadedComponent>> {
        lock(&self.loaded).iter().find(|(d, _)| d == sha256).map(|(_, loaded)| loaded.clone())
    }

    /// The component with this hash, loaded (verified, compiled or from the code cache) — from
    /// the warm cache when it was loaded recently. Its bytes must be here.
    pub(super) async fn load(&self, sha256: Digest) -> Result<Arc<LoadedComponent>, JobError> {
        if let Some(loaded) = self.loaded_now(&sha256) {
            return Ok(loaded);
        }
        let bytes = self
            .blobs
            .get(&sha256)
            .map_err(|e| JobError::new(FailureKind::InvalidComponent, e.to_string()))?;
        let bytes =
            bytes.ok_or_else(|| JobError::new(FailureKind::InvalidComponent, "the component is not here"))?;
        let loaded = self.compile(bytes).await?;
        let loaded = Arc::new(loaded);
        let mut cache = lock(&self.loaded);
        cache.push_back((sha256, loaded.clone()));
        while cache.len() > LOADED_CACHE {
            cache.pop_front();
        }
        Ok(loaded)
    }

    /// Verifies and compiles `bytes` (or loads their code from the cache) on a blocking thread:
    /// at most [`MAX_COMPILES`] at once, each waited for at most [`COMPILE_DEADLINE`] (queueing
    /// included). A compile past its deadline still finishes in the background, holding its
    /// place, so no more than [`MAX_COMPILES`] ever run; its caller is answered at once.
    async fn compile(&self, bytes: Vec<u8>) -> Result<LoadedComponent, JobError> {
        let too_slow = || {
            JobError::new(
                FailureKind::Timeout,
                format!("the component was not compiled within {COMPILE_DEADLINE:?}"),
            )
        };
        let compiling = async {
            let permit = self.compiles.clone().acquire_owned().await.map_err(|_| too_slow())?;
            let sandbox = self.sandbox.clone();
            let compiled = tokio::task::spawn_blocking(move || {
                let loaded = sandbox.load(&bytes);
                drop(permit);
                loaded
            });
            compiled
                .await
                .map_err(|e| JobError::new(FailureKind::InvalidComponent, format!("loading task: {e}")))?
        };
        tokio::time::timeout(COMPILE_DEADLINE, compiling).await.map_err(|_| too_slow())?
    }

    /// Whether `name` should be looked up on the network now (and notes that it is).
    fn name_needs_lookup(&self, name: &str) -> bool {
        let mut checked = lock(&self.names_checked);
        if checked.get(name).is_some_and(|at| at.elapsed() < NAME_RECHECK) {
            return false;
        }
        if checked.len() >= NAMES_CHECKED {
            checked.clear();
        }
        checked.insert(name.to_owned(), Instant::now());
        true
    }
}

/// What `cue publish` reports.
#[derive(Clone, Debug, Serialize)]
pub struct PublishReport {
    /// The component name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// SHA-256 of the component.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// The publisher (this node).
    pub publisher: String,
    /// Whether this exact version was already published (re-publishing is idempotent).
    pub already_published: bool,
    /// Where the blob is kept.
    pub path: PathBuf,
}

/// What `cue fetch` reports.
#[derive(Clone, Debug, Serialize)]
pub struct FetchReport {
    /// The reference as given.
    pub reference: String,
    /// SHA-256 of the component.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Where the blob is kept (content-addressed store).
    pub path: PathBuf,
    /// Name, version and publisher when the reference resolved through a signed manifest.
    pub name: Option<String>,
    /// See `name`.
    pub version: Option<String>,
    /// See `name`.
    pub publisher: Option<String>,
    /// `local` when the blob was already here, `file` for a file, else the peer it came from.
    pub source: String,
}

/// Verifies `bytes` with the sandbox, signs the manifest, stores the blob and announces both.
pub(super) async fn publish(
    shared: &Shared,
    bytes: Vec<u8>,
    name: &str,
    version: &str,
) -> Result<PublishReport, NodeError> {
    check_name(name).map_err(|e| NodeError::Invalid(e.to_string()))?;
    let version =
        Version::parse(version).map_err(|e| NodeError::Invalid(format!("version {version:?}: {e}")))?;
    let sandbox = shared.components.sandbox().clone();
    let (bytes, world) = tokio::task::spawn_blocking(move || {
        sandbox.load(&bytes)?;
        let report = crate::sandbox::inspect(&bytes)?;
        Ok::<_, crate::sandbox::JobError>((bytes, report.wit))
    })
    .await
    .map_err(|e| NodeError::task("verification", e))?
    .map_err(|e| NodeError::Invalid(format!("the component was refused: {e}")))?;
    let sha256 = Digest::of(&bytes);
    let manifest = ComponentManifest {
        name: name.to_owned(),
        version,
        sha256,
        size: bytes.len() as u64,
        world,
        publisher: shared.keypair.public(),
    }
    .sign(&shared.keypair, now_ms())
    .map_err(|e| NodeError::Invalid(e.to_string()))?;
    // The blob first: a manifest kept without its blob would announce what this node lacks.
    shared.components.blobs().put_expected(&bytes, &sha256)?;
    let added = shared.components.registry().add(&manifest).map_err(|e| NodeError::Invalid(e.to_string()))?;
    announce(shared, &manifest).await;
    let body = manifest.body();
    Ok(PublishReport {
        name: body.name.clone(),
        version: body.version.to_string(),
        sha256: sha256.to_string(),
        size: body.size,
        publisher: body.publisher.peer_id().to_string(),
        already_published: added == Added::Known,
        path: shared.components.blobs().path(&sha256),
    })
}

/// Announces a component this node holds: the blob and the name on the DHT, the manifest by
/// gossip. Alone on the network these fail quietly; the announcer repeats them.
async fn announce(shared: &Shared, manifest: &Signed<ComponentManifest>) {
    let body = manifest.body();
    for key in [DhtKey::Blob(body.sha256), DhtKey::Name(body.name.clone())] {
        if let Err(e) = shared.client.provide(key.clone()).await {
            tracing::debug!(%key, "announcement incomplete: {e}");
        }
    }
    if let Err(e) = shared.client.publish(COMPONENTS_TOPIC, manifest.bytes().to_vec()).await {
        tracing::debug!("component gossip not sent: {e}");
    }
}

/// Resolves `reference` and makes sure the component's bytes are in the blob store.
pub(super) async fn fetch(
    shared: &Shared,
    reference: &str,
    mut progress: impl FnMut(u64, u64) + Send,
) -> Result<FetchReport, NodeError> {
    let parsed: ComponentRef =
        reference.parse().map_err(|e: crate::protocol::RefError| NodeError::Invalid(e.to_string()))?;
    let report = |sha256: Digest, size: u64, manifest: Option<&Signed<ComponentManifest>>, source: String| {
        FetchReport {
            reference: reference.to_owned(),
            sha256: sha256.to_string(),
            size,
            path: shared.components.blobs().path(&sha256),
            name: manifest.map(|m| m.body().name.clone()),
            version: manifest.map(|m| m.body().version.to_string()),
            publisher: manifest.map(|m| m.body().publisher.peer_id().to_string()),
            source,
        }
    };
    match parsed {
        ComponentRef::File(path) => {
            let bytes = std::fs::read(&path)
                .map_err(|e| NodeError::Invalid(format!("cannot read {}: {e}", path.display())))?;
            let sha256 = shared.components.blobs().put(&bytes)?;
            Ok(report(sha256, bytes.len() as u64, None, "file".into()))
        }
        ComponentRef::Hash(sha256) => {
            let (size, source) = ensure_blob(shared, sha256, &mut progress).await?;
            // A name this node knows for the hash, its owner's first.
            let registry = shared.components.registry();
            let mut named = registry.by_sha256(&sha256).unwrap_or_default();
            named.sort_by_key(|m| registry.owner(&m.body().name).ok().flatten() != Some(m.body().publisher));
            Ok(report(sha256, size, named.first(), source))
        }
        ComponentRef::Named { name, req } => {
            // A version known here and looked up recently is used as is; otherwise ask the network.
            let resolve = || shared.components.registry().resolve(&name, &req).map_err(NodeError::from);
            let mut manifest = resolve()?;
            if shared.components.name_needs_lookup(&name) || manifest.is_none() {
                learn_name(shared, &name).await;
                manifest = resolve()?;
            }
            let manifest = manifest.ok_or_else(|| {
                NodeError::NotFound(format!("no published version of {name} matches {req}"))
            })?;
            let (size, source) = ensure_blob(shared, manifest.body().sha256, &mut progress).await?;
            Ok(report(manifest.body().sha256, size, Some(&manifest), source))
        }
    }
}

/// Asks peers that hold manifests for `name` for them, verifies each, and adds them to the
/// registry. A name nobody here owns yet goes to the earliest claim (trust on first use).
async fn learn_name(shared: &Shared, name: &str) {
    let holders = shared.client.find_providers(DhtKey::Name(name.to_owned())).await.unwrap_or_default();
    let me = shared.keypair.peer_id();
    let mut claims = Vec::new();
    for peer in holders.into_iter().filter(|peer| *peer != me).take(MAX_SOURCES) {
        match shared.client.request(peer, RpcRequest::GetComponents { name: name.to_owned() }).await {
            Ok(RpcResponse::Components(list)) => {
                for bytes in list {
                    match open_component_manifest(&bytes, now_ms()) {
                        Ok(manifest) if manifest.body().name == name => claims.push(manifest),
                        Ok(_) => {
                            shared.refusals.count(Refusal::ComponentManifest);
                            tracing::warn!(%peer, "answered manifests for another name")
                        }
                        Err(e) => {
                            shared.refusals.count(Refusal::ComponentManifest);
                            tracing::warn!(%peer, "refused a component manifest: {e}")
                        }
                    }
                }
            }
            Ok(other) => tracing::debug!(%peer, "no manifests for {name}: {other:?}"),
            Err(e) => tracing::debug!(%peer, "cannot ask for {name}: {e}"),
        }
    }
    if shared.components.registry().owner(name).ok().flatten().is_none()
        && let Some(owner) = Registry::choose_owner(name, &claims)
    {
        claims.sort_by_key(|claim| claim.body().publisher != owner);
    }
    for claim in claims {
        if let Err(e) = shared.components.registry().add(&claim) {
            tracing::info!(name, "refused a claim: {e}");
        }
    }
}

/// The blob's size and where it came from, fetching it from a peer if it is not here.
pub(super) async fn ensure_blob(
    shared: &Shared,
    sha256: Digest,
    progress: &mut (impl FnMut(u64, u64) + Send),
) -> Result<(u64, String), NodeError> {
    if let Some(size) = shared.components.blobs().touch(&sha256) {
        return Ok((size, "local".into()));
    }
    let me = shared.keypair.peer_id();
    let holders: HashSet<PeerId> =
        shared.client.find_providers(DhtKey::Blob(sha256)).await.unwrap_or_default();
    let mut last_error = None;
    for peer in holders.into_iter().filter(|peer| *peer != me).take(MAX_SOURCES) {
        let stream = match shared.client.open_stream(peer, BLOB_PROTOCOL).await {
            Ok(stream) => stream,
            Err(e) => {
                last_error = Some(e.to_string());
                continue;
            }
        };
        match blobs::fetch(stream, sha256, shared.components.blobs(), &mut *progress).await {
            Ok(size) => {
                if let Err(e) = shared.client.provide(DhtKey::Blob(sha256)).await {
                    tracing::debug!(%sha256, "blob announcement incomplete: {e}");
                }
                return Ok((size, peer.to_string()));
            }
            Err(TransferError::Blob(full @ BlobError::StoreFull { .. })) => {
                // This node's own limit, not the peer's fault: no other peer would do better.
                return Err(NodeError::Blob(full));
            }
            Err(e) => {
                if matches!(e, TransferError::Blob(_) | TransferError::Protocol(_)) {
                    shared.refusals.count(Refusal::Blob);
                }
                tracing::warn!(%peer, %sha256, "blob transfer refused: {e}");
                last_error = Some(format!("{peer}: {e}"));
            }
        }
    }
    Err(NodeError::NotFound(match last_error {
        Some(e) => format!("no peer delivered blob {sha256} (last error: {e})"),
        None => format!("no peer announces blob {sha256}"),
    }))
}
