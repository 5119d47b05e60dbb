//! The providers a node has seen, kept in the registry's file (table `peers`) so that a
//! restarted node can dial them again: each with its latest resource manifest and addresses,
//! at most [`MAX_PEERS`] of them (a new one beyond forgets the one seen longest ago).

use rusqlite::{OptionalExtension as _, TransactionBehavior, params};

use super::registry::Registry;
use super::registry_error::RegistryError;
use super::{StoreError, key_from_blob};
use crate::crypto::PublicKey;
use crate::protocol::MAX_EVENT_BYTES;

/// Most peers remembered; remembering a new one beyond this forgets the one seen longest ago.
pub const MAX_PEERS: usize = 10_000;
/// Most addresses kept per peer; later ones are dropped.
pub const MAX_PEER_ADDRESSES: usize = 16;
/// Longest address kept, in bytes; longer ones are dropped.
pub const MAX_ADDRESS_LEN: usize = 512;

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

impl Registry {
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
                [self.limits().peers as i64],
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
    use crate::store::registry_cap::Limits;

    const NOW: u64 = 1_800_000_000_000;

    fn registry() -> (tempfile::TempDir, Registry) {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(&dir.path().join("registry.sqlite")).unwrap();
        (dir, registry)
    }

    #[test]
    fn peers_are_remembered_updated_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open_with(
            &dir.path().join("registry.sqlite"),
            Limits { peers: 2, ..Limits::default() },
        )
        .unwrap();
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
