//! The registry: the component manifests this node accepted, the owner pinned for each name
//! (trust on first use), and the providers it has seen (`peers.rs`) — in its own SQLite file,
//! which unlike the ledger's needs no genesis. Its caps, and what it forgets at them, are in
//! `registry_cap.rs`.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, OptionalExtension as _, Transaction, TransactionBehavior, params};
use semver::{Version, VersionReq};

use super::registry_cap::{Keeping, Limits, Totals, make_room, record_use};
use super::registry_error::RegistryError;
use super::{Keep, StoreError, digest_from_blob, key_from_blob, schema};
use crate::clock::now_ms;
use crate::crypto::{Digest, PublicKey};
use crate::protocol::{ComponentManifest, Signed, verify_component_manifest};

/// Most versions kept per name; more are refused ([`RegistryError::TooManyVersions`]). Bounds
/// what one resolution reads.
pub const MAX_VERSIONS_PER_NAME: usize = 1000;
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

/// Component manifests, name owners and known peers, in one SQLite file.
///
/// Names are trust on first use: the first valid manifest this node accepts for a name pins the
/// name to its publisher, and from then on only that key can add versions of it. Nothing
/// network-wide decides ownership; two nodes that first heard of a name from different
/// publishers disagree, and each keeps its own pin.
///
/// It holds at most [`MAX_NAMES`](super::MAX_NAMES) names and
/// [`MAX_MANIFESTS`](super::MAX_MANIFESTS) manifests; at a cap it forgets the least recently
/// used names, except those [`Registry::keeping`] protects (see `registry_cap`).
///
/// `Send + Sync`: one connection behind a mutex (writes are rare and small).
pub struct Registry {
    conn: Mutex<Connection>,
    /// The caps (the constants outside tests).
    limits: Limits,
    /// What it holds against the caps; changed only while `conn` is held.
    totals: Mutex<Totals>,
    /// What the caps must not forget.
    keeping: Keeping,
}

impl Registry {
    /// Opens (creating if needed) the registry at `path`.
    pub fn open(path: &Path) -> Result<Registry, RegistryError> {
        Registry::open_with(path, Limits::default())
    }

    pub(super) fn open_with(path: &Path, limits: Limits) -> Result<Registry, RegistryError> {
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
        let totals = Mutex::new(Totals::count(&conn)?);
        Ok(Registry { conn: Mutex::new(conn), limits, totals, keeping: Keeping::default() })
    }

    /// The registry, never forgetting at its caps the names `publisher` (this node) owns nor
    /// those with a version whose component `live` (what live contracts need) names.
    pub fn keeping(self, publisher: PublicKey, live: Option<Arc<dyn Keep>>) -> Registry {
        Registry { keeping: Keeping { publisher: Some(publisher), live }, ..self }
    }

    /// The connection. A panic while it was held rolled its transaction back, so the data is
    /// consistent and the poison is ignored.
    pub(super) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn limits(&self) -> &Limits {
        &self.limits
    }

    pub(super) fn totals(&self) -> MutexGuard<'_, Totals> {
        self.totals.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Verifies and stores a component manifest (see [`open_component_manifest`] for reading
    /// one from bytes), pinning its name to its publisher if the name is new here.
    ///
    /// Refused: a manifest that does not verify, a name owned by another key
    /// ([`RegistryError::NameTaken`]), a known version with another hash
    /// ([`RegistryError::VersionConflict`]), a name with too many versions, a registry at a
    /// cap that may forget nothing ([`RegistryError::Full`]).
    ///
    /// [`open_component_manifest`]: crate::protocol::open_component_manifest
    pub fn add(&self, manifest: &Signed<ComponentManifest>) -> Result<Added, RegistryError> {
        self.add_at(manifest, now_ms())
    }

    pub(super) fn add_at(
        &self,
        manifest: &Signed<ComponentManifest>,
        now_ms: u64,
    ) -> Result<Added, RegistryError> {
        verify_component_manifest(manifest)?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut totals = self.totals();
        let (added, after) = insert(&tx, manifest, now_ms, self.room(*totals))?;
        tx.commit()?;
        *totals = after;
        Ok(added)
    }

    fn room(&self, totals: Totals) -> Room<'_> {
        Room { limits: &self.limits, totals, keeping: &self.keeping }
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
        record_use(&conn, name, now_ms())?;
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

    /// The components (SHA-256) of every manifest `publisher` signed: what the blob store keeps
    /// of a node's own publications.
    pub fn components_published_by(&self, publisher: &PublicKey) -> Result<HashSet<Digest>, RegistryError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT sha256 FROM components WHERE publisher = ?1")?;
        let rows = stmt.query_map([publisher.as_bytes()], |row| row.get::<_, Vec<u8>>(0))?;
        rows.map(|row| Ok(digest_from_blob(row?)?)).collect()
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
}

/// What a manifest is added against: the caps, what is held, what must stay.
struct Room<'a> {
    limits: &'a Limits,
    totals: Totals,
    keeping: &'a Keeping,
}

/// Stores a verified manifest in `tx`, applying the ownership, conflict and size rules and
/// making room under the caps; answers what it did and the totals after it.
fn insert(
    tx: &Transaction<'_>,
    signed: &Signed<ComponentManifest>,
    now_ms: u64,
    room: Room<'_>,
) -> Result<(Added, Totals), RegistryError> {
    let manifest = signed.body();
    let owner = owner_of(tx, &manifest.name)?;
    if let Some(owner) = owner.filter(|owner| *owner != manifest.publisher) {
        return Err(RegistryError::NameTaken { name: manifest.name.clone(), owner: owner.peer_id() });
    }
    let version = manifest.version.to_string();
    if owner.is_some()
        && let Some(known) = known_version(tx, manifest, &version)?
    {
        return Ok((known, room.totals));
    }
    let added =
        Totals { names: u64::from(owner.is_none()), manifests: 1, bytes: signed.bytes().len() as u64 };
    let removed = make_room(tx, &manifest.name, added, room.totals, room.limits, room.keeping)?;
    let now = now_ms as i64;
    if owner.is_none() {
        tx.execute(
            "INSERT INTO names (name, owner, first_seen_ms, last_used_ms) VALUES (?1, ?2, ?3, ?3)",
            params![manifest.name, manifest.publisher.as_bytes(), now],
        )?;
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
            now,
        ],
    )?;
    tx.execute(
        "UPDATE names SET last_used_ms = MAX(last_used_ms, ?2) WHERE name = ?1",
        params![manifest.name, now],
    )?;
    Ok((Added::New, room.totals.after(added, removed)))
}

/// For a name already pinned to this manifest's publisher: `Known` when this version is this
/// component already; refused when it is another component, or when the name has
/// [`MAX_VERSIONS_PER_NAME`] versions; `None` when the version may be added.
fn known_version(
    tx: &Transaction<'_>,
    manifest: &ComponentManifest,
    version: &str,
) -> Result<Option<Added>, RegistryError> {
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
            return Ok(Some(Added::Known));
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
    Ok(None)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keypair;
    use crate::protocol::{ComponentError, EventError, MAX_LIFETIME_MS, Validity};

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
                let room = registry.room(Totals::default());
                insert(&tx, &claim(&alice, "fib", &version, version.as_bytes()), NOW, room).unwrap();
            }
            tx.commit().unwrap();
        }
        assert!(matches!(
            registry.add(&claim(&alice, "fib", "2.0.0", b"one too many")),
            Err(RegistryError::TooManyVersions { limit: MAX_VERSIONS_PER_NAME, .. })
        ));
    }
}
