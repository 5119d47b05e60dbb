//! The DHT keys Cue uses, their text form, and the sharding of the compute service.
//!
//! libp2p-kad keeps at most `k` (20) providers per key on each node and returns at most that
//! many per answer, so one service key would hide most providers of a large network. Providers
//! therefore announce under one of [`SERVICE_SHARDS`] keys, chosen by their peer id, and a
//! consumer asks for all of them: the network shows up to `SERVICE_SHARDS × 20` providers per
//! sweep even from nodes that keep only the default 20 per key.

use std::fmt;

use crate::crypto::{Digest, PeerId};

/// How many keys the compute service is spread over.
pub const SERVICE_SHARDS: u8 = 16;

/// A key in Cue's DHT.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DhtKey {
    /// `/cue/service/compute/<shard>`: providers of compute (provider records).
    Service {
        /// `0..SERVICE_SHARDS`.
        shard: u8,
    },
    /// `/cue/blob/<sha256 hex>`: peers holding a blob (provider records).
    Blob(Digest),
    /// `/cue/name/<name>`: peers holding component manifests for a name (provider records).
    Name(String),
    /// `/cue/manifest/<peer id>`: a provider's signed resource manifest (a record).
    Manifest(PeerId),
}

impl DhtKey {
    /// The service shard `provider` announces under.
    pub fn service_shard_of(provider: &PeerId) -> DhtKey {
        let digest = Digest::of(&provider.to_bytes());
        DhtKey::Service { shard: digest.0[0] % SERVICE_SHARDS }
    }

    /// Every service shard, for a full sweep.
    pub fn all_service_shards() -> impl Iterator<Item = DhtKey> {
        (0..SERVICE_SHARDS).map(|shard| DhtKey::Service { shard })
    }

    /// Parses the text form; `None` for anything outside Cue's namespaces.
    pub fn parse(bytes: &[u8]) -> Option<DhtKey> {
        let text = std::str::from_utf8(bytes).ok()?;
        let rest = text.strip_prefix("/cue/")?;
        let (space, value) = rest.split_once('/')?;
        match space {
            "service" => {
                let shard = value.strip_prefix("compute/")?;
                if shard.len() > 2 || shard.starts_with('0') && shard.len() > 1 {
                    return None;
                }
                let shard: u8 = shard.parse().ok()?;
                (shard < SERVICE_SHARDS).then_some(DhtKey::Service { shard })
            }
            "blob" if value.len() == 64 => Digest::from_hex(value).map(DhtKey::Blob),
            "name" if is_name(value) => Some(DhtKey::Name(value.to_owned())),
            "manifest" => value.parse().ok().map(DhtKey::Manifest),
            _ => None,
        }
    }

    /// The key's bytes on the DHT.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

/// The shape of a component name at this layer (the registry checks the full rules).
fn is_name(value: &str) -> bool {
    (1..=64).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl fmt::Display for DhtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DhtKey::Service { shard } => write!(f, "/cue/service/compute/{shard}"),
            DhtKey::Blob(digest) => write!(f, "/cue/blob/{digest}"),
            DhtKey::Name(name) => write!(f, "/cue/name/{name}"),
            DhtKey::Manifest(peer) => write!(f, "/cue/manifest/{peer}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keypair;

    #[test]
    fn keys_round_trip_through_their_text() {
        let peer = Keypair::from_seed([7; 32]).peer_id();
        let keys = [
            DhtKey::Service { shard: 0 },
            DhtKey::Service { shard: SERVICE_SHARDS - 1 },
            DhtKey::Blob(Digest::of(b"blob")),
            DhtKey::Name("fib".into()),
            DhtKey::Manifest(peer),
        ];
        for key in keys {
            assert_eq!(DhtKey::parse(&key.to_bytes()), Some(key.clone()), "{key}");
        }
    }

    #[test]
    fn foreign_and_malformed_keys_are_not_ours() {
        for key in [
            "/ipfs/kad",
            "/cue/service/compute/16",
            "/cue/service/compute/01",
            "/cue/service/storage/1",
            "/cue/blob/abc",
            "/cue/name/Fib",
            "/cue/name/",
            "/cue/manifest/not-a-peer",
        ] {
            assert_eq!(DhtKey::parse(key.as_bytes()), None, "{key}");
        }
    }

    #[test]
    fn providers_spread_over_every_shard() {
        let mut seen = std::collections::HashSet::new();
        for seed in 0..200u8 {
            if let DhtKey::Service { shard } =
                DhtKey::service_shard_of(&Keypair::from_seed([seed; 32]).peer_id())
            {
                seen.insert(shard);
            }
        }
        assert_eq!(seen.len(), usize::from(SERVICE_SHARDS));
    }
}
