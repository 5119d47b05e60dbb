//! The registry's caps: at most [`MAX_NAMES`] names, [`MAX_MANIFESTS`] manifests and
//! [`MAX_MANIFEST_BYTES`] of them in all (besides [`MAX_VERSIONS_PER_NAME`] per name).
//!
//! The rule at a cap: a manifest that would take the registry past one makes room by
//! forgetting whole names — the name's pin and every version of it — least recently used
//! first, never one this node published (its owner is this node's key), one whose versions
//! name a component a live contract needs ([`Keep`]), or the name being added to. When those
//! are all that is left, the manifest is refused ([`RegistryError::Full`]) and nothing is
//! forgotten. A name is used when it is learnt (a new version of it is added) or resolved
//! (recorded at most once a minute, [`USE_GRANULARITY_MS`], so resolving stays a read).
//!
//! Forgetting a name forgets its pin: the next manifest for it pins it again, as if it were
//! new (trust on first use, again). A name this node uses is refreshed by each use, so only
//! names nobody here used for longer than the flood that pushes them out can be re-pinned.
//!
//! [`MAX_VERSIONS_PER_NAME`]: super::MAX_VERSIONS_PER_NAME

use std::collections::HashSet;
use std::sync::Arc;

use rusqlite::{Connection, Transaction, params};

use super::registry_error::RegistryError;
use super::{Keep, MAX_PEERS, digest_from_blob, key_from_blob};
use crate::crypto::{Digest, PublicKey};

/// Most names the registry keeps; a new one beyond makes room (see the module docs).
pub const MAX_NAMES: usize = 10_000;
/// Most manifests (name and version) the registry keeps in all.
pub const MAX_MANIFESTS: usize = 100_000;
/// Most bytes of manifests the registry keeps in all (each is at most 64 KiB, most 1–5 KiB).
pub const MAX_MANIFEST_BYTES: u64 = 512 << 20;
/// A name's use is recorded when the last one recorded is at least this old.
pub const USE_GRANULARITY_MS: u64 = 60_000;

/// The registry's bounds (the constants outside tests).
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    pub(super) peers: usize,
    pub(super) names: u64,
    pub(super) manifests: u64,
    pub(super) manifest_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            peers: MAX_PEERS,
            names: MAX_NAMES as u64,
            manifests: MAX_MANIFESTS as u64,
            manifest_bytes: MAX_MANIFEST_BYTES,
        }
    }
}

/// Names, manifests and manifest bytes held: counted at open, then kept in step with each
/// commit (so a cap costs no count per manifest).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Totals {
    pub(super) names: u64,
    pub(super) manifests: u64,
    pub(super) bytes: u64,
}

impl Totals {
    /// What the registry at `conn` holds.
    pub(super) fn count(conn: &Connection) -> Result<Totals, RegistryError> {
        let names: i64 = conn.query_row("SELECT COUNT(*) FROM names", [], |row| row.get(0))?;
        let (manifests, bytes): (i64, i64) =
            conn.query_row("SELECT COUNT(*), COALESCE(SUM(length(bytes)), 0) FROM components", [], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?;
        Ok(Totals { names: names as u64, manifests: manifests as u64, bytes: bytes as u64 })
    }

    /// The totals after `added` and `removed`.
    pub(super) fn after(self, added: Totals, removed: Totals) -> Totals {
        Totals {
            names: (self.names + added.names).saturating_sub(removed.names),
            manifests: (self.manifests + added.manifests).saturating_sub(removed.manifests),
            bytes: (self.bytes + added.bytes).saturating_sub(removed.bytes),
        }
    }

    /// The first cap these totals exceed, with its value.
    fn over(self, limits: &Limits) -> Option<(&'static str, u64)> {
        if self.names > limits.names {
            Some(("names", limits.names))
        } else if self.manifests > limits.manifests {
            Some(("manifests", limits.manifests))
        } else if self.bytes > limits.manifest_bytes {
            Some(("bytes of manifests", limits.manifest_bytes))
        } else {
            None
        }
    }
}

/// What eviction must leave besides the name being added to.
#[derive(Clone, Default)]
pub(super) struct Keeping {
    /// This node's key: the names it owns are its own publications.
    pub(super) publisher: Option<PublicKey>,
    /// The components live contracts need.
    pub(super) live: Option<Arc<dyn Keep>>,
}

/// Makes room in `tx` for `added` (totals of one manifest, and its name if new) to the name
/// `adding`, given the registry's `totals`: forgets names by the rule in the module docs and
/// answers what they held, or refuses.
pub(super) fn make_room(
    tx: &Transaction<'_>,
    adding: &str,
    added: Totals,
    totals: Totals,
    limits: &Limits,
    keeping: &Keeping,
) -> Result<Totals, RegistryError> {
    let mut removed = Totals::default();
    let Some(mut over) = totals.after(added, removed).over(limits) else { return Ok(removed) };
    let live = match &keeping.live {
        None => HashSet::new(),
        Some(live) => live.components().map_err(|e| {
            tracing::error!("cannot tell which names to keep, so none is forgotten: {e}");
            RegistryError::Full { what: over.0, limit: over.1 }
        })?,
    };
    let mut after: (i64, String) = (i64::MIN, String::new());
    loop {
        let page = least_recently_used(tx, &after)?;
        let Some(last) = page.last() else { break };
        after = (last.1, last.0.clone());
        for (name, _, owner) in page {
            if name == adding || Some(owner) == keeping.publisher {
                continue;
            }
            let Some(freed) = forget_unless_live(tx, &name, &live)? else { continue };
            removed = removed.after(freed, Totals::default());
            tracing::info!(name, "forgot the least recently used name: the registry is full");
            match totals.after(added, removed).over(limits) {
                None => return Ok(removed),
                Some(still) => over = still,
            }
        }
    }
    Err(RegistryError::Full { what: over.0, limit: over.1 })
}

/// The next names by least recent use after `after` (use, name): (name, use, owner).
fn least_recently_used(
    tx: &Transaction<'_>,
    after: &(i64, String),
) -> Result<Vec<(String, i64, PublicKey)>, RegistryError> {
    let mut stmt = tx.prepare_cached(
        "SELECT name, last_used_ms, owner FROM names WHERE (last_used_ms, name) > (?1, ?2)
         ORDER BY last_used_ms, name LIMIT 256",
    )?;
    let rows = stmt.query_map(params![after.0, after.1], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?, row.get::<_, Vec<u8>>(2)?))
    })?;
    rows.map(|row| {
        let (name, used, owner) = row?;
        Ok((name, used, key_from_blob(owner)?))
    })
    .collect()
}

/// Forgets `name` and its versions unless one of them is a component in `live`; answers what
/// it held.
fn forget_unless_live(
    tx: &Transaction<'_>,
    name: &str,
    live: &HashSet<Digest>,
) -> Result<Option<Totals>, RegistryError> {
    let mut freed = Totals { names: 1, ..Totals::default() };
    let mut stmt = tx.prepare_cached("SELECT sha256, length(bytes) FROM components WHERE name = ?1")?;
    for row in stmt.query_map([name], |row| Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)?)))? {
        let (sha256, bytes) = row?;
        if live.contains(&digest_from_blob(sha256)?) {
            return Ok(None);
        }
        freed.manifests += 1;
        freed.bytes += bytes as u64;
    }
    tx.execute("DELETE FROM components WHERE name = ?1", [name])?;
    tx.execute("DELETE FROM names WHERE name = ?1", [name])?;
    Ok(Some(freed))
}

/// Records a use of `name` at `now_ms`, unless one was recorded within
/// [`USE_GRANULARITY_MS`] (then nothing is written).
pub(super) fn record_use(conn: &Connection, name: &str, now_ms: u64) -> Result<(), RegistryError> {
    let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
    conn.prepare_cached("UPDATE names SET last_used_ms = ?2 WHERE name = ?1 AND last_used_ms <= ?3")?
        .execute(params![name, now, now - USE_GRANULARITY_MS as i64])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use semver::VersionReq;

    use super::*;
    use crate::clock::now_ms;
    use crate::crypto::Keypair;
    use crate::protocol::{ComponentManifest, Signed};
    use crate::store::{Added, Registry, StoreError};

    fn claim(key: &Keypair, name: &str, version: &str, world_bytes: usize) -> Signed<ComponentManifest> {
        let manifest = ComponentManifest {
            name: name.into(),
            version: version.parse().unwrap(),
            sha256: Digest::of(format!("{name}@{version}").as_bytes()),
            size: 1,
            world: "w".repeat(world_bytes),
            publisher: key.public(),
        };
        manifest.sign(key, now_ms()).unwrap()
    }

    /// A registry in `dir` with these caps, owned by `me`, keeping the components in the
    /// returned set as live (the test changes it as it goes).
    fn registry(
        dir: &std::path::Path,
        limits: Limits,
        me: &Keypair,
    ) -> (Registry, Arc<Mutex<HashSet<Digest>>>) {
        let live = Arc::new(Mutex::new(HashSet::new()));
        let shared = live.clone();
        let keep = move || -> Result<HashSet<Digest>, StoreError> { Ok(shared.lock().unwrap().clone()) };
        let registry = Registry::open_with(&dir.join("registry.sqlite3"), limits).unwrap();
        (registry.keeping(me.public(), Some(Arc::new(keep))), live)
    }

    fn names(registry: &Registry) -> Vec<String> {
        registry.names().unwrap().into_iter().map(|pinned| pinned.name).collect()
    }

    #[test]
    fn at_its_name_cap_the_registry_forgets_the_least_recently_used_names_but_never_its_own_or_a_live_one() {
        let dir = tempfile::tempdir().unwrap();
        let (me, stranger, squatter) =
            (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]), Keypair::from_seed([3; 32]));
        let (registry, live) = registry(dir.path(), Limits { names: 4, ..Limits::default() }, &me);
        let hour_ago = now_ms() - 3_600_000;
        registry.add_at(&claim(&me, "mine", "1.0.0", 10), hour_ago).unwrap();
        registry.add_at(&claim(&stranger, "old-a", "1.0.0", 10), hour_ago + 1).unwrap();
        registry.add_at(&claim(&stranger, "old-b", "1.0.0", 10), hour_ago + 2).unwrap();
        let needed = claim(&stranger, "needed", "1.0.0", 10);
        registry.add_at(&needed, hour_ago + 3).unwrap();
        live.lock().unwrap().insert(needed.body().sha256);
        assert!(registry.resolve("old-a", &VersionReq::STAR).unwrap().is_some(), "old-a is used now");

        registry.add_at(&claim(&stranger, "flood-0", "1.0.0", 10), hour_ago + 100).unwrap();
        assert_eq!(names(&registry), ["flood-0", "mine", "needed", "old-a"], "old-b went first");
        assert!(registry.versions("old-b").unwrap().is_empty(), "with its versions");
        for n in 1..20 {
            registry
                .add_at(&claim(&stranger, &format!("flood-{n}"), "1.0.0", 10), hour_ago + 100 + n)
                .unwrap();
            let held = names(&registry);
            assert_eq!(held.len(), 4);
            assert!(
                ["mine", "needed", "old-a"].iter().all(|kept| held.iter().any(|h| h == kept)),
                "{held:?}"
            );
        }
        assert_eq!(names(&registry), ["flood-19", "mine", "needed", "old-a"]);

        // A forgotten name is pinned again by whoever claims it next: trust on first use, anew.
        assert_eq!(registry.add(&claim(&squatter, "old-b", "2.0.0", 10)).unwrap(), Added::New);
        assert_eq!(registry.owner("old-b").unwrap(), Some(squatter.public()));
    }

    #[test]
    fn a_registry_full_of_names_it_must_keep_refuses_new_ones_and_forgets_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (me, stranger) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
        let (registry, live) = registry(dir.path(), Limits { names: 2, ..Limits::default() }, &me);
        registry.add(&claim(&me, "mine", "1.0.0", 10)).unwrap();
        let needed = claim(&stranger, "needed", "1.0.0", 10);
        registry.add(&needed).unwrap();
        live.lock().unwrap().insert(needed.body().sha256);

        let refused = registry.add(&claim(&stranger, "new", "1.0.0", 10)).unwrap_err();
        assert!(matches!(refused, RegistryError::Full { what: "names", limit: 2 }), "{refused:?}");
        assert!(matches!(
            registry.add(&claim(&me, "mine-too", "1.0.0", 10)),
            Err(RegistryError::Full { .. })
        ));
        assert_eq!(names(&registry), ["mine", "needed"]);
        registry
            .add(&claim(&stranger, "needed", "1.1.0", 10))
            .expect("a new version of a held name is no new name");

        live.lock().unwrap().clear();
        registry
            .add(&claim(&stranger, "new", "1.0.0", 10))
            .expect("the name no contract needs any more goes");
        assert_eq!(names(&registry), ["mine", "new"]);
    }

    #[test]
    fn the_manifest_caps_count_versions_and_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (me, stranger) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
        let limits = Limits { manifests: 5, manifest_bytes: 70 << 10, ..Limits::default() };
        let (registry, _live) = registry(dir.path(), limits, &me);
        let hour_ago = now_ms() - 3_600_000;
        for (i, version) in ["1.0.0", "1.1.0", "1.2.0"].iter().enumerate() {
            registry.add_at(&claim(&stranger, "many", version, 10), hour_ago + i as u64).unwrap();
        }
        registry.add_at(&claim(&stranger, "two", "1.0.0", 10), hour_ago + 10).unwrap();
        registry.add_at(&claim(&stranger, "two", "1.1.0", 10), hour_ago + 11).unwrap();
        registry.add(&claim(&stranger, "sixth", "1.0.0", 10)).unwrap();
        assert_eq!(names(&registry), ["sixth", "two"], "the whole least recently used name went");
        assert_eq!(registry.totals().manifests, 3);

        // Two manifests of ~30 KiB fit in 70 KiB; a third makes the oldest names go.
        registry.add(&claim(&stranger, "big-a", "1.0.0", 30 << 10)).unwrap();
        registry.add(&claim(&stranger, "big-b", "1.0.0", 30 << 10)).unwrap();
        assert_eq!(names(&registry), ["big-a", "big-b", "sixth", "two"]);
        registry.add(&claim(&stranger, "big-c", "1.0.0", 30 << 10)).unwrap();
        assert!(registry.totals().bytes <= 70 << 10);
        assert!(!names(&registry).contains(&"big-a".to_owned()), "{:?}", names(&registry));
    }

    #[test]
    fn the_totals_are_counted_again_at_open_and_the_caps_hold_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let (me, stranger) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
        let limits = Limits { names: 3, ..Limits::default() };
        let totals = {
            let (registry, _) = registry(dir.path(), limits, &me);
            for name in ["a", "b", "c"] {
                registry.add(&claim(&stranger, name, "1.0.0", 10)).unwrap();
            }
            *registry.totals()
        };
        let (registry, _) = registry(dir.path(), limits, &me);
        assert_eq!(*registry.totals(), totals);
        assert_eq!(totals.names, 3);
        registry.add(&claim(&stranger, "d", "1.0.0", 10)).unwrap();
        assert_eq!(registry.names().unwrap().len(), 3);
    }

    #[test]
    fn when_the_live_components_cannot_be_read_nothing_is_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let stranger = Keypair::from_seed([2; 32]);
        let failing = || -> Result<HashSet<Digest>, StoreError> { Err(StoreError::Closed) };
        let registry =
            Registry::open_with(&dir.path().join("r.sqlite3"), Limits { names: 1, ..Limits::default() })
                .unwrap()
                .keeping(Keypair::from_seed([1; 32]).public(), Some(Arc::new(failing)));
        registry.add(&claim(&stranger, "a", "1.0.0", 10)).unwrap();
        assert!(matches!(registry.add(&claim(&stranger, "b", "1.0.0", 10)), Err(RegistryError::Full { .. })));
        assert_eq!(names(&registry), ["a"]);
    }
}
