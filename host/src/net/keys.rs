//! The DHT keys Cue uses, their text form and their bytes on the DHT, the network each belongs
//! to, and the sharding of the compute service.
//!
//! A provider-record key (services, blobs, names) goes on the DHT as a CID's multihash: the
//! sha2-256 multihash of the key's text (`0x12 0x20` then 32 bytes), as js-libp2p and go-libp2p
//! look providers up. A value record's key (a provider's manifest) stays its text, so whoever
//! stores it can check the value against the key.
//!
//! Keys of the compute market (service shards, manifests) are scoped to a network: the
//! [`NetworkTag`] of its genesis, so two networks on the same machines never see each other's
//! providers. Blobs and names are not: a component is the same bytes in every network.
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
/// The multihash prefix of a sha2-256 digest: code 0x12, length 32.
const SHA2_256_MULTIHASH: [u8; 2] = [0x12, 0x20];

/// The network a node belongs to, as its keys and gossip topics name it: the first 8 bytes of
/// its genesis id in hex, or `open` for a node without a genesis (publishing and fetching only).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NetworkTag(String);

impl NetworkTag {
    /// The tag of the network of `genesis` (its id), or the open one without a genesis.
    pub fn of(genesis: Option<&Digest>) -> NetworkTag {
        match genesis {
            Some(id) => NetworkTag(hex::encode(&id.0[..8])),
            None => NetworkTag::open(),
        }
    }

    /// The network of nodes without a genesis.
    pub fn open() -> NetworkTag {
        NetworkTag("open".into())
    }

    /// The tag's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn parse(text: &str) -> Option<NetworkTag> {
        let hex = text.len() == 16 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        (hex || text == "open").then(|| NetworkTag(text.to_owned()))
    }
}

impl fmt::Display for NetworkTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key in Cue's DHT (its network, where it has one, is the node's: see [`DhtKey::text`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DhtKey {
    /// `/cue/<network>/service/compute/<shard>`: providers of compute (provider records).
    Service {
        /// `0..SERVICE_SHARDS`.
        shard: u8,
    },
    /// `/cue/blob/<sha256 hex>`: peers holding a blob (provider records).
    Blob(Digest),
    /// `/cue/name/<name>`: peers holding component manifests for a name (provider records).
    Name(String),
    /// `/cue/<network>/manifest/<peer id>`: a provider's signed resource manifest (a record).
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

    /// The key's text in `network`.
    pub fn text(&self, network: &NetworkTag) -> String {
        match self {
            DhtKey::Service { shard } => format!("/cue/{network}/service/compute/{shard}"),
            DhtKey::Blob(digest) => format!("/cue/blob/{digest}"),
            DhtKey::Name(name) => format!("/cue/name/{name}"),
            DhtKey::Manifest(peer) => format!("/cue/{network}/manifest/{peer}"),
        }
    }

    /// The key's bytes on the DHT in `network`: a provider-record key's CID multihash, a
    /// record key's text.
    pub fn to_bytes(&self, network: &NetworkTag) -> Vec<u8> {
        let text = self.text(network);
        match self {
            DhtKey::Manifest(_) => text.into_bytes(),
            _ => [&SHA2_256_MULTIHASH[..], &Digest::of(text.as_bytes()).0].concat(),
        }
    }

    /// Whether `bytes` can be a provider-record key of Cue's (a sha2-256 multihash: what it
    /// hashes cannot be told, so every such key is taken; the store's bounds hold).
    pub fn is_provider_key(bytes: &[u8]) -> bool {
        bytes.len() == 34 && bytes[..2] == SHA2_256_MULTIHASH
    }

    /// Parses a value record's key: `Some((network, key))` for a manifest key of any network;
    /// `None` for anything outside Cue's namespaces.
    pub fn parse_record(bytes: &[u8]) -> Option<(NetworkTag, DhtKey)> {
        let text = std::str::from_utf8(bytes).ok()?;
        let rest = text.strip_prefix("/cue/")?;
        let (network, rest) = rest.split_once('/')?;
        let network = NetworkTag::parse(network)?;
        let peer = rest.strip_prefix("manifest/")?.parse().ok()?;
        Some((network, DhtKey::Manifest(peer)))
    }
}

impl fmt::Display for DhtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text(&NetworkTag::open()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keypair;

    #[test]
    fn provider_keys_are_cid_multihashes_of_their_text_and_manifest_keys_round_trip() {
        let network = NetworkTag::of(Some(&Digest::of(b"genesis")));
        for key in
            [DhtKey::Service { shard: 3 }, DhtKey::Blob(Digest::of(b"blob")), DhtKey::Name("fib".into())]
        {
            let bytes = key.to_bytes(&network);
            assert!(DhtKey::is_provider_key(&bytes), "{key}");
            assert_eq!(bytes[2..], Digest::of(key.text(&network).as_bytes()).0, "{key}");
        }
        let peer = Keypair::from_seed([7; 32]).peer_id();
        let manifest = DhtKey::Manifest(peer);
        assert_eq!(
            DhtKey::parse_record(&manifest.to_bytes(&network)),
            Some((network.clone(), manifest.clone()))
        );
        assert_eq!(
            DhtKey::parse_record(&manifest.to_bytes(&NetworkTag::open())).map(|k| k.0),
            Some(NetworkTag::open())
        );
    }

    #[test]
    fn the_market_keys_of_two_networks_differ_and_component_keys_do_not() {
        let (a, b) = (NetworkTag::of(Some(&Digest::of(b"a"))), NetworkTag::of(Some(&Digest::of(b"b"))));
        let peer = Keypair::from_seed([7; 32]).peer_id();
        for key in [DhtKey::Service { shard: 0 }, DhtKey::Manifest(peer)] {
            assert_ne!(key.to_bytes(&a), key.to_bytes(&b), "{key}");
        }
        for key in [DhtKey::Blob(Digest::of(b"x")), DhtKey::Name("fib".into())] {
            assert_eq!(key.to_bytes(&a), key.to_bytes(&b), "{key}");
        }
    }

    #[test]
    fn foreign_and_malformed_keys_are_not_ours() {
        for key in [
            "/ipfs/kad",
            "/cue/manifest/12D3KooW",
            "/cue/open/manifest/not-a-peer",
            "/cue/OPEN/manifest/x",
            "/cue/0123456789abcdeg/manifest/x",
            "/cue/open/service/compute/1",
        ] {
            assert_eq!(DhtKey::parse_record(key.as_bytes()), None, "{key}");
        }
        assert!(!DhtKey::is_provider_key(b"/cue/blob/abc"));
        assert!(!DhtKey::is_provider_key(&[0x12, 0x20, 1, 2]));
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
