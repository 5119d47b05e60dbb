//! The registry: the component manifests this node accepted, the owner pinned for each name
//! (trust on first use), and the providers it has seen — in its own SQLite file, which unlike
//! the ledger's needs no genesis.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, OptionalExtension as _, Transaction, TransactionBehavior, params};
use semver::{Version, VersionReq};

use super::{StoreError, digest_from_blob, key_from_blob, schema};
use crate::clock::now_ms;
use crate::crypto::{Digest, PeerId, PublicKey};
use crate::protocol::{
    ComponentError, ComponentManifest, MAX_EVENT_BYTES, Signed, verify_component_manifest,
};

/// Most versions kept per name; more are refused ([`RegistryError::TooManyVersions`]). Bounds
/// what one resolution reads.
pub const MAX_VERSIONS_PER_NAME: usize = 1000;
/// Most peers remembered; remembering a new one beyond this forgets the one seen longest ago.
pub const MAX_PEERS: usize = 10_000;
/// Most addresses kept per peer; later ones are dropped.
pub const MAX_PEER_ADDRESSES: usize = 16;
/// Longest address kept, in bytes; longer ones are dropped.
pub const MAX_ADDRESS_LEN: usize = 512;

/// What [`Registry::add`] did with a manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Added {
    /// Stored: this version was new here.
    New,
    /// Already known: this name and version with the same component (perhaps signed again).
    Known,
}

/// A name and the key that owns it here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinnedName {
    /// The component name.
    pub name: String,
    /// The publisher of the first manifest this node accepted for it.
    pub owner: PublicKey,
    /// When that was, ms since the epoch (this node's clock).
    pub first_seen_ms: u64,
}

/// A provider this node has seen, as remembered for redialling after a restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownPeer {
    /// The peer's key.
    pub key: PublicKey,
    /// Its latest signed resource manifest, unverified here: open it before trusting it.
    pub manifest: Option<Vec<u8>>,
    /// Its multiaddresses, as text.
    pub addresses: Vec<String>,
    /// When it was last seen, ms since the epoch.
    pub last_seen_ms: u64,
}

/// Why the registry refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The database failed, or holds data that does not check.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The manifest does not verify (signature, publisher, fields).
    #[error(transparent)]
    Invalid(#[from] ComponentError),
    /// The name is pinned to another publisher.
    #[error("the name {name:?} belongs to {owner}")]
    NameTaken {
        /// The name.
        name: String,
        /// Its owner here.
        owner: PeerId,
    },
    /// This name and version are already another component (the refused manifest's `sha256`
    /// differs from `existing`).
    #[error("{name}@{version} is already the component {existing}; publish a new version instead")]
    VersionConflict {
        /// The name.
        name: String,
        /// The version.
        version: Version,
        /// SHA-256 of the component already known.
        existing: Digest,
    },
    /// The name already has [`MAX_VERSIONS_PER_NAME`] versions.
    #[error("{name} already has {limit} versions, the most this registry keeps")]
    TooManyVersions {
        /// The name.
        name: String,
        /// The limit.
        limit: usize,
    },
    /// A resource manifest bigger than any event can be.
    #[error("a resource manifest of {size} bytes exceeds the event limit of {limit}")]
    ManifestTooLarge {
        /// Bytes given.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

impl From<rusqlite::Error> for RegistryError {
    fn from(error: rusqlite::Error) -> RegistryError {
        RegistryError::Store(StoreError::Database(error))
    }
}

/// Component manifests, name owners and known peers, in one SQLite file.
///
/// Names are trust on first use: the first valid manifest this node accepts for a name pins the
/// name to its publisher, and from then on only that key can add versions of it. Nothing
/// network-wide decides ownership; two nodes that first heard of a name from different
/// publishers disagree, and each keeps its own pin.
///
/// `Send + Sync`: one connection behind a mutex (writes are rare and small).
pub struct Registry {
    conn: Mutex<Connection>,
    /// The peer table's bound ([`MAX_PEERS`] outside tests).
    max_peers: usize,
}

impl Registry {
    /// Opens (creating if needed) the registry at `path`.
    pub fn open(path: &Path) -> Result<Registry, RegistryError> {
        Registry::open_with(path, MAX_PEERS)
    }

    fn open_with(path: &Path, max_peers: usize) -> Result<Registry, RegistryError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
                what: format!("cannot create {}", parent.display()),
                source,
            })?;
        }
        let mut conn = Connection::open(path)?;
        schema::configure(&conn)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        schema::migrate(&mut conn, schema::REGISTRY)?;
        Ok(Registry { conn: Mutex::new(conn), max_peers })
    }

    /// The connection. A panic while it was held rolled its transaction back, so the data is
    /// consistent and the poison is ignored.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Verifies and stores a component manifest (see [`open_component_manifest`] for reading
    /// one from bytes), pinning its name to its publisher if the name is new here.
    ///
    /// Refused: a manifest that does not verify, a name owned by another key
    /// ([`RegistryError::NameTaken`]), a known version with another hash
    /// ([`RegistryError::VersionConflict`]), a name with too many versions.
    ///
    /// [`open_component_manifest`]: crate::protocol::open_component_manifest
    pub fn add(&self, manifest: &Signed<ComponentManifest>) -> Result<Added, RegistryError> {
        verify_component_manifest(manifest)?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let added = insert(&tx, manifest, now_ms())?;
        tx.commit()?;
        Ok(added)
    }

    /// The owner pinned for `name`, if any.
    pub fn owner(&self, name: &str) -> Result<Option<PublicKey>, RegistryError> {
        owner_of(&self.conn(), name)
    }

    /// The highest version of `name` that `req` accepts, by semver precedence. As in Cargo, a
    /// pre-release matches only a requirement that names a pre-release of the same
    /// `major.minor.patch` (so a bare name never resolves to one).
    pub fn resolve(
        &self,
        name: &str,
        req: &VersionReq,
    ) -> Result<Option<Signed<ComponentManifest>>, RegistryError> {
        let conn = self.conn();
        let mut best: Option<(Version, Vec<u8>)> = None;
        let mut stmt = conn.prepare_cached("SELECT version, hash FROM components WHERE name = ?1")?;
        for row in stmt.query_map([name], |row| Ok((row.get::<_, String>(0)?, row.get(1)?)))? {
            let (version, hash) = row?;
            let version = Version::parse(&version)
                .map_err(|e| StoreError::Corrupt(format!("stored version {version:?}: {e}")))?;
            if req.matches(&version) && best.as_ref().is_none_or(|(high, _)| version > *high) {
                best = Some((version, hash));
            }
        }
        let Some((_, hash)) = best else { return Ok(None) };
        let bytes: Vec<u8> = conn
            .prepare_cached("SELECT bytes FROM components WHERE hash = ?1")?
            .query_row([hash], |row| row.get(0))?;
        decode(&bytes).map(Some)
    }

    /// Every known version of `name`, lowest first.
    pub fn versions(&self, name: &str) -> Result<Vec<Signed<ComponentManifest>>, RegistryError> {
        self.manifests("SELECT bytes FROM components WHERE name = ?1", &[&name])
    }

    /// Every manifest naming the component with this SHA-256 (one blob may be published under
    /// several names or versions), by name and version.
    pub fn by_sha256(&self, sha256: &Digest) -> Result<Vec<Signed<ComponentManifest>>, RegistryError> {
        self.manifests("SELECT bytes FROM components WHERE sha256 = ?1", &[&sha256.0])
    }

    /// Every manifest signed by `publisher`, by name and version: what a node re-announces
    /// after a restart.
    pub fn published_by(
        &self,
        publisher: &PublicKey,
    ) -> Result<Vec<Signed<ComponentManifest>>, RegistryError> {
        self.manifests("SELECT bytes FROM components WHERE publisher = ?1", &[publisher.as_bytes()])
    }

    fn manifests(
        &self,
        sql: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<Signed<ComponentManifest>>, RegistryError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(sql)?;
        let mut found = Vec::new();
        for bytes in stmt.query_map(params, |row| row.get::<_, Vec<u8>>(0))? {
            found.push(decode(&bytes?)?);
        }
        found.sort_by(|a, b| (&a.body().name, &a.body().version).cmp(&(&b.body().name, &b.body().version)));
        Ok(found)
    }

    /// Every pinned name, alphabetically.
    pub fn names(&self) -> Result<Vec<PinnedName>, RegistryError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT name, owner, first_seen_ms FROM names ORDER BY name")?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get::<_, i64>(2)?)))?;
        rows.map(|row| {
            let (name, owner, first_seen_ms) = row?;
            Ok(PinnedName { name, owner: key_from_blob(owner)?, first_seen_ms: first_seen_ms as u64 })
        })
        .collect()
    }

    /// Of several claims to a name this node has not pinned yet (as a lookup may return from
    /// different publishers at once), the owner to pin: the publisher of the earliest claim by
    /// its timestamp, ties broken by the lowest key. `None` if no claim is for `name`. The
    /// claims should have been opened ([`open_component_manifest`]).
    ///
    /// This is trust on first use, not consensus: timestamps are asserted by their signers, so
    /// a squatter can backdate a claim. It only makes a node's choice deterministic when it
    /// first meets a contested name; add the chosen owner's claims first, then the rest are
    /// refused as [`RegistryError::NameTaken`].
    ///
    /// [`open_component_manifest`]: crate::protocol::open_component_manifest
    pub fn choose_owner(name: &str, claims: &[Signed<ComponentManifest>]) -> Option<PublicKey> {
        claims
            .iter()
            .filter(|claim| claim.body().name == name)
            .min_by_key(|claim| (claim.header().timestamp_ms, claim.body().publisher))
            .map(|claim| claim.body().publisher)
    }

    /// Records that `key` was seen at `now_ms` with these addresses and, if given, this
    /// resource manifest (store only one that [`open_manifest`] accepted). An absent manifest
    /// or an empty address list keeps what was stored before. At most [`MAX_PEER_ADDRESSES`]
    /// addresses of at most [`MAX_ADDRESS_LEN`] bytes are kept; a new peer beyond
    /// [`MAX_PEERS`] makes the registry forget the peer seen longest ago.
    ///
    /// [`open_manifest`]: crate::market::open_manifest
    pub fn remember_peer(
        &self,
        key: &PublicKey,
        manifest: Option<&[u8]>,
        addresses: &[String],
        now_ms: u64,
    ) -> Result<(), RegistryError> {
        if let Some(manifest) = manifest
            && manifest.len() > MAX_EVENT_BYTES
        {
            return Err(RegistryError::ManifestTooLarge { size: manifest.len(), limit: MAX_EVENT_BYTES });
        }
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let known = tx
            .query_row("SELECT 1 FROM peers WHERE key = ?1", [key.as_bytes()], |_| Ok(()))
            .optional()?
            .is_some();
        tx.execute(
            "INSERT INTO peers (key, manifest, addresses, last_seen_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (key) DO UPDATE SET
                 manifest = COALESCE(excluded.manifest, manifest),
                 addresses = CASE excluded.addresses WHEN '[]' THEN addresses ELSE excluded.addresses END,
                 last_seen_ms = MAX(last_seen_ms, excluded.last_seen_ms)",
            params![key.as_bytes(), manifest, addresses_json(addresses), now_ms as i64],
        )?;
        if !known {
            tx.execute(
                "DELETE FROM peers WHERE key IN
                     (SELECT key FROM peers ORDER BY last_seen_ms DESC LIMIT -1 OFFSET ?1)",
                [self.max_peers as i64],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Every remembered peer, most recently seen first.
    pub fn known_peers(&self) -> Result<Vec<KnownPeer>, RegistryError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT key, manifest, addresses, last_seen_ms FROM peers ORDER BY last_seen_ms DESC",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get::<_, String>(2)?, row.get::<_, i64>(3)?))
        })?;
        rows.map(|row| {
            let (key, manifest, addresses, last_seen_ms) = row?;
            let addresses = serde_json::from_str(&addresses)
                .map_err(|e| StoreError::Corrupt(format!("peer addresses: {e}")))?;
            Ok(KnownPeer { key: key_from_blob(key)?, manifest, addresses, last_seen_ms: last_seen_ms as u64 })
        })
        .collect()
    }
}

/// Stores a verified manifest in `tx`, applying the ownership, conflict and size rules.
fn insert(
    tx: &Transaction<'_>,
    signed: &Signed<ComponentManifest>,
    now_ms: u64,
) -> Result<Added, RegistryError> {
    let manifest = signed.body();
    pin_owner(tx, &manifest.name, manifest.publisher, now_ms)?;
    let version = manifest.version.to_string();
    let existing: Option<Vec<u8>> = tx
        .query_row(
            "SELECT sha256 FROM components WHERE name = ?1 AND version = ?2",
            params![manifest.name, version],
            |row| row.get(0),
        )
        .optional()?;
    if let Some(existing) = existing {
        let existing = digest_from_blob(existing)?;
        if existing == manifest.sha256 {
            return Ok(Added::Known);
        }
        return Err(RegistryError::VersionConflict {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            existing,
        });
    }
    let count: i64 =
        tx.query_row("SELECT COUNT(*) FROM components WHERE name = ?1", [&manifest.name], |row| row.get(0))?;
    if count as usize >= MAX_VERSIONS_PER_NAME {
        return Err(RegistryError::TooManyVersions {
            name: manifest.name.clone(),
            limit: MAX_VERSIONS_PER_NAME,
        });
    }
    tx.execute(
        "INSERT INTO components (hash, name, version, sha256, size, publisher, bytes, received_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            signed.hash().0,
            manifest.name,
            version,
            manifest.sha256.0,
            i64::try_from(manifest.size).unwrap_or(i64::MAX),
            manifest.publisher.as_bytes(),
            signed.bytes(),
            now_ms as i64,
        ],
    )?;
    Ok(Added::New)
}

/// Pins `name` to `publisher` if it is new here; refuses another publisher's claim to it.
fn pin_owner(
    tx: &Transaction<'_>,
    name: &str,
    publisher: PublicKey,
    now_ms: u64,
) -> Result<(), RegistryError> {
    match owner_of(tx, name)? {
        Some(owner) if owner != publisher => {
            Err(RegistryError::NameTaken { name: name.to_owned(), owner: owner.peer_id() })
        }
        Some(_) => Ok(()),
        None => {
            tx.execute(
                "INSERT INTO names (name, owner, first_seen_ms) VALUES (?1, ?2, ?3)",
                params![name, publisher.as_bytes(), now_ms as i64],
            )?;
            Ok(())
        }
    }
}

fn owner_of(conn: &Connection, name: &str) -> Result<Option<PublicKey>, RegistryError> {
    let owner: Option<Vec<u8>> =
        conn.query_row("SELECT owner FROM names WHERE name = ?1", [name], |row| row.get(0)).optional()?;
    Ok(owner.map(key_from_blob).transpose()?)
}

/// Decodes a manifest read back from the database (verified when it was added).
fn decode(bytes: &[u8]) -> Result<Signed<ComponentManifest>, RegistryError> {
    Signed::decode(bytes)
        .map_err(|e| RegistryError::Store(StoreError::Corrupt(format!("stored component manifest: {e}"))))
}

/// The addresses worth keeping, as a JSON array.
fn addresses_json(addresses: &[String]) -> String {
    let kept: Vec<String> =
        addresses.iter().filter(|a| a.len() <= MAX_ADDRESS_LEN).take(MAX_PEER_ADDRESSES).cloned().collect();
    serde_json::Value::from(kept).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keypair;
    use crate::protocol::{EventError, MAX_LIFETIME_MS, Validity};

    const NOW: u64 = 1_800_000_000_000;

    fn registry() -> (tempfile::TempDir, Registry) {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(&dir.path().join("registry.sqlite")).unwrap();
        (dir, registry)
    }

    fn claim(key: &Keypair, name: &str, version: &str, content: &[u8]) -> Signed<ComponentManifest> {
        claim_at(key, name, version, content, NOW)
    }

    fn claim_at(
        key: &Keypair,
        name: &str,
        version: &str,
        content: &[u8],
        at: u64,
    ) -> Signed<ComponentManifest> {
        let manifest = ComponentManifest {
            name: name.into(),
            version: version.parse().unwrap(),
            sha256: Digest::of(content),
            size: content.len() as u64,
            world: "world root { export run: func(); }".into(),
            publisher: key.public(),
        };
        manifest.sign(key, at).unwrap()
    }

    fn versions_of(found: &[Signed<ComponentManifest>]) -> Vec<String> {
        found.iter().map(|m| format!("{}@{}", m.body().name, m.body().version)).collect()
    }

    #[test]
    fn the_registry_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Registry>();
    }

    #[test]
    fn the_first_publisher_owns_the_name() {
        let (_dir, registry) = registry();
        let (alice, mallory) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
        assert_eq!(registry.add(&claim(&alice, "fib", "1.0.0", b"v1")).unwrap(), Added::New);
        assert_eq!(registry.owner("fib").unwrap(), Some(alice.public()));
        let refused = registry.add(&claim(&mallory, "fib", "2.0.0", b"evil")).unwrap_err();
        assert!(
            matches!(&refused, RegistryError::NameTaken { name, owner } if name == "fib" && *owner == alice.peer_id()),
            "{refused:?}"
        );
        assert_eq!(registry.add(&claim(&alice, "fib", "2.0.0", b"v2")).unwrap(), Added::New);
        assert_eq!(registry.add(&claim(&mallory, "fob", "1.0.0", b"fob")).unwrap(), Added::New);
        let names: Vec<_> = registry.names().unwrap().into_iter().map(|p| (p.name, p.owner)).collect();
        assert_eq!(names, [("fib".into(), alice.public()), ("fob".into(), mallory.public())]);
    }

    #[test]
    fn a_version_is_one_component_and_re_adding_it_is_harmless() {
        let (_dir, registry) = registry();
        let alice = Keypair::from_seed([1; 32]);
        let first = claim(&alice, "fib", "1.0.0", b"v1");
        registry.add(&first).unwrap();
        assert_eq!(registry.add(&first).unwrap(), Added::Known);
        assert_eq!(
            registry.add(&claim(&alice, "fib", "1.0.0", b"v1")).unwrap(),
            Added::Known,
            "signed again"
        );
        let refused = registry.add(&claim(&alice, "fib", "1.0.0", b"other")).unwrap_err();
        assert!(
            matches!(refused, RegistryError::VersionConflict { existing, .. } if existing == Digest::of(b"v1")),
            "{refused:?}"
        );
        assert_eq!(registry.versions("fib").unwrap(), [first]);
    }

    #[test]
    fn a_manifest_that_does_not_verify_is_not_stored() {
        let (_dir, registry) = registry();
        let (alice, mallory) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
        let body = claim(&alice, "fib", "1.0.0", b"v1").body().clone();
        let forged = Signed::sign(&mallory, body, Validity::starting(NOW, MAX_LIFETIME_MS)).unwrap();
        assert!(matches!(
            registry.add(&forged),
            Err(RegistryError::Invalid(ComponentError::NotThePublisher { .. }))
        ));
        let mut bytes = claim(&alice, "fib", "1.0.0", b"v1").bytes().to_vec();
        *bytes.last_mut().unwrap() ^= 1;
        let altered = Signed::<ComponentManifest>::decode(&bytes).unwrap();
        assert!(matches!(
            registry.add(&altered),
            Err(RegistryError::Invalid(ComponentError::Event(EventError::BadSignature)))
        ));
        assert_eq!(registry.owner("fib").unwrap(), None, "a refused claim pins nothing");
    }

    #[test]
    fn resolution_follows_semver() {
        let (_dir, registry) = registry();
        let alice = Keypair::from_seed([1; 32]);
        for version in ["1.0.0", "1.2.0", "1.10.1", "2.0.0-rc.1", "2.0.0-rc.2", "0.9.0"] {
            registry.add(&claim(&alice, "fib", version, version.as_bytes())).unwrap();
        }
        let resolve = |req: &str| {
            let found = registry.resolve("fib", &VersionReq::parse(req).unwrap()).unwrap();
            found.map(|m| m.body().version.to_string())
        };
        assert_eq!(resolve("*").as_deref(), Some("1.10.1"), "numeric, not text, order; no pre-release");
        assert_eq!(resolve("^1.2").as_deref(), Some("1.10.1"));
        assert_eq!(resolve("~1.2").as_deref(), Some("1.2.0"));
        assert_eq!(resolve("=1.0.0").as_deref(), Some("1.0.0"));
        assert_eq!(resolve("^0.9").as_deref(), Some("0.9.0"));
        assert_eq!(resolve(">=2.0.0-rc.1").as_deref(), Some("2.0.0-rc.2"), "a pre-release when asked for");
        assert_eq!(resolve("^3"), None);
        assert_eq!(registry.resolve("fob", &VersionReq::STAR).unwrap(), None);
        let listed = versions_of(&registry.versions("fib").unwrap());
        assert_eq!(
            listed,
            ["fib@0.9.0", "fib@1.0.0", "fib@1.2.0", "fib@1.10.1", "fib@2.0.0-rc.1", "fib@2.0.0-rc.2"]
        );
    }

    #[test]
    fn manifests_are_found_by_hash_and_by_publisher_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.sqlite");
        let (alice, bob) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
        {
            let registry = Registry::open(&path).unwrap();
            registry.add(&claim(&alice, "fib", "1.0.0", b"shared")).unwrap();
            registry.add(&claim(&alice, "fib", "1.1.0", b"v1.1")).unwrap();
            registry.add(&claim(&bob, "fast-fib", "1.0.0", b"shared")).unwrap();
        }
        let registry = Registry::open(&path).unwrap();
        let shared = versions_of(&registry.by_sha256(&Digest::of(b"shared")).unwrap());
        assert_eq!(shared, ["fast-fib@1.0.0", "fib@1.0.0"]);
        assert_eq!(versions_of(&registry.published_by(&alice.public()).unwrap()), ["fib@1.0.0", "fib@1.1.0"]);
        assert!(registry.by_sha256(&Digest::of(b"unknown")).unwrap().is_empty());
    }

    #[test]
    fn the_earliest_claim_chooses_the_owner() {
        let (alice, bob, carol) =
            (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]), Keypair::from_seed([3; 32]));
        let claims = [
            claim_at(&alice, "fib", "1.0.0", b"a", NOW + 10),
            claim_at(&bob, "fib", "1.0.0", b"b", NOW),
            claim_at(&carol, "fib", "1.0.0", b"c", NOW),
            claim_at(&alice, "other", "1.0.0", b"a", NOW - 10),
        ];
        let tied = if bob.public() < carol.public() { bob.public() } else { carol.public() };
        assert_eq!(Registry::choose_owner("fib", &claims), Some(tied));
        assert_eq!(Registry::choose_owner("other", &claims), Some(alice.public()));
        assert_eq!(Registry::choose_owner("none", &claims), None);
    }

    #[test]
    fn a_name_has_a_bounded_number_of_versions() {
        let (_dir, registry) = registry();
        let alice = Keypair::from_seed([1; 32]);
        {
            let mut conn = registry.conn();
            let tx = conn.transaction().unwrap();
            for patch in 0..MAX_VERSIONS_PER_NAME {
                let version = format!("1.0.{patch}");
                insert(&tx, &claim(&alice, "fib", &version, version.as_bytes()), NOW).unwrap();
            }
            tx.commit().unwrap();
        }
        assert!(matches!(
            registry.add(&claim(&alice, "fib", "2.0.0", b"one too many")),
            Err(RegistryError::TooManyVersions { limit: MAX_VERSIONS_PER_NAME, .. })
        ));
    }

    #[test]
    fn peers_are_remembered_updated_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open_with(&dir.path().join("registry.sqlite"), 2).unwrap();
        let keys: Vec<_> = (1..=3).map(|i| Keypair::from_seed([i; 32]).public()).collect();
        let addr = |port: u16| format!("/ip4/10.0.0.1/udp/{port}/quic-v1");
        registry.remember_peer(&keys[0], Some(b"manifest-0"), &[addr(1)], NOW).unwrap();
        registry.remember_peer(&keys[1], None, &[addr(2)], NOW + 1).unwrap();
        registry.remember_peer(&keys[0], None, &[], NOW + 2).unwrap();
        let peers = registry.known_peers().unwrap();
        assert_eq!(peers[0].key, keys[0], "most recently seen first");
        assert_eq!(peers[0].manifest.as_deref(), Some(&b"manifest-0"[..]), "kept when none is given");
        assert_eq!(peers[0].addresses, [addr(1)], "kept when none are given");
        assert_eq!(peers[0].last_seen_ms, NOW + 2);

        registry.remember_peer(&keys[2], None, &[addr(3)], NOW + 3).unwrap();
        let kept: Vec<_> = registry.known_peers().unwrap().into_iter().map(|p| p.key).collect();
        assert_eq!(kept, [keys[2], keys[0]], "the peer seen longest ago is forgotten");
    }

    #[test]
    fn peer_records_are_bounded() {
        let (_dir, registry) = registry();
        let key = Keypair::from_seed([1; 32]).public();
        let huge = vec![0; MAX_EVENT_BYTES + 1];
        assert!(matches!(
            registry.remember_peer(&key, Some(&huge), &[], NOW),
            Err(RegistryError::ManifestTooLarge { .. })
        ));
        let mut addresses = vec!["x".repeat(MAX_ADDRESS_LEN + 1)];
        addresses.extend((0..2 * MAX_PEER_ADDRESSES).map(|i| format!("/ip4/10.0.0.{i}/tcp/1")));
        registry.remember_peer(&key, None, &addresses, NOW).unwrap();
        let stored = &registry.known_peers().unwrap()[0].addresses;
        assert_eq!(stored[..], addresses[1..=MAX_PEER_ADDRESSES]);
    }
}
