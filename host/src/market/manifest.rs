//! `RESOURCE_MANIFEST`: a provider's measured capacity and its policy, signed with its key.
//!
//! Body (canonical CBOR, see `docs/market.md`):
//!
//! ```text
//! manifest = [provider: bstr .size 32, cores: uint, memory_bytes: uint,
//!             fuel_per_second: uint, engine: tstr, wasmtime: tstr, policy, measured_ms: uint]
//! policy   = [price_per_mfuel: uint, base_fee: uint, max_concurrent_jobs: uint,
//!             max_memory_bytes: uint, max_execution_ms: uint]
//! ```
//!
//! The manifest's expiry is the envelope's [`Validity`](crate::protocol::Validity): a manifest
//! says what was true when it was measured, and peers stop believing it when it expires.

use crate::crypto::{Digest, PeerId, PublicKey};
use crate::protocol::codec::{Reader, Writer};
use crate::protocol::{EventBody, EventError, EventKind, Signed};

/// What a provider sells and at what price: its own choice, not measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ProviderPolicy {
    /// Price of one million fuel, in the smallest unit of CUE.
    pub price_per_mfuel: u64,
    /// Fixed price of any job, in the smallest unit of CUE, on top of the fuel.
    pub base_fee: u64,
    /// Jobs run at once; more are refused, not queued without bound. At least 1.
    pub max_concurrent_jobs: u32,
    /// Largest linear memory one job may have, in bytes.
    pub max_memory_bytes: u64,
    /// Longest wall-clock time one job may run, in milliseconds.
    pub max_execution_ms: u64,
}

/// `RESOURCE_MANIFEST`: a provider's capacity, as measured on its machine, and its policy.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ResourceManifest {
    /// The provider; must be the event's signer (see [`open_manifest`]).
    #[serde(serialize_with = "as_hex")]
    pub provider: PublicKey,
    /// The id of the genesis of the network the provider sells in: a consumer of another
    /// network refuses the manifest. All zeros ([`NO_NETWORK`]) for a measurement made outside
    /// any network (`cue benchmark` without `--genesis`).
    #[serde(serialize_with = "digest_as_hex")]
    pub genesis: Digest,
    /// Logical cores available to this process. At least 1.
    pub cores: u32,
    /// Memory the operating system reported available when measured, in bytes.
    pub memory_bytes: u64,
    /// Fuel one job executes per second of wall time on this machine (median of the
    /// reference workload runs): lets a consumer turn a fuel budget into a time estimate.
    pub fuel_per_second: u64,
    /// The sandbox's engine fingerprint id: same id, same results and fuel.
    pub engine: String,
    /// The wasmtime version the engine is built on (also inside the fingerprint).
    pub wasmtime: String,
    /// Prices and per-job bounds.
    pub policy: ProviderPolicy,
    /// When the measurement was made, ms since the Unix epoch.
    pub measured_ms: u64,
}

fn as_hex<S: serde::Serializer>(key: &PublicKey, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&key.to_hex())
}

fn digest_as_hex<S: serde::Serializer>(digest: &Digest, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&digest.to_string())
}

/// The genesis a manifest names when it was measured outside any network.
pub const NO_NETWORK: Digest = Digest([0; 32]);

impl ResourceManifest {
    /// The provider's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.provider.peer_id()
    }
}

impl ProviderPolicy {
    fn write(&self, w: &mut Writer) {
        w.array(5)
            .uint(self.price_per_mfuel)
            .uint(self.base_fee)
            .uint(self.max_concurrent_jobs.into())
            .uint(self.max_memory_bytes)
            .uint(self.max_execution_ms);
    }

    fn read(r: &mut Reader<'_>) -> Result<ProviderPolicy, EventError> {
        r.array(5)?;
        Ok(ProviderPolicy {
            price_per_mfuel: r.uint()?,
            base_fee: r.uint()?,
            max_concurrent_jobs: positive_u32(r, "max concurrent jobs")?,
            max_memory_bytes: r.uint()?,
            max_execution_ms: r.uint()?,
        })
    }
}

impl EventBody for ResourceManifest {
    const KIND: EventKind = EventKind::ResourceManifest;

    fn write(&self, w: &mut Writer) {
        w.array(9)
            .bytes(self.provider.as_bytes())
            .bytes(&self.genesis.0)
            .uint(self.cores.into())
            .uint(self.memory_bytes)
            .uint(self.fuel_per_second)
            .text(&self.engine)
            .text(&self.wasmtime);
        self.policy.write(w);
        w.uint(self.measured_ms);
    }

    fn read(r: &mut Reader<'_>) -> Result<ResourceManifest, EventError> {
        r.array(9)?;
        Ok(ResourceManifest {
            provider: PublicKey::from_bytes(r.byte_array()?)
                .map_err(|_| EventError::Malformed("invalid provider key".into()))?,
            genesis: Digest(r.byte_array()?),
            cores: positive_u32(r, "cores")?,
            memory_bytes: r.uint()?,
            fuel_per_second: r.uint()?,
            engine: r.text()?.to_owned(),
            wasmtime: r.text()?.to_owned(),
            policy: ProviderPolicy::read(r)?,
            measured_ms: r.uint()?,
        })
    }
}

fn positive_u32(r: &mut Reader<'_>, what: &str) -> Result<u32, EventError> {
    match u32::try_from(r.uint()?) {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(EventError::Malformed(format!("{what} must be between 1 and {}", u32::MAX))),
    }
}

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The envelope was refused: malformed, another kind, forged, expired.
    #[error(transparent)]
    Event(#[from] EventError),
    /// Signed by one key on behalf of another provider.
    #[error("the manifest names provider {provider} but was signed by {signer}")]
    NotTheProvider {
        /// The provider in the body.
        provider: PeerId,
        /// The signer in the header.
        signer: PeerId,
    },
}

/// Decodes and checks a manifest at `now_ms`: canonical, of this kind, signature good,
/// signed by the provider it names, and live (not expired, not from the future).
///
/// A manifest may be served and read many times while it lives, so no nonce is recorded.
///
/// ```
/// use cue_host::crypto::Keypair;
/// use cue_host::market::{ProviderPolicy, ResourceManifest, open_manifest};
/// use cue_host::protocol::{Signed, Validity};
///
/// let key = Keypair::from_seed([1; 32]);
/// let manifest = ResourceManifest {
///     provider: key.public(),
///     genesis: cue_host::market::NO_NETWORK,
///     cores: 8,
///     memory_bytes: 16 << 30,
///     fuel_per_second: 1_500_000_000,
///     engine: "0123456789abcdef".into(),
///     wasmtime: "48.0.8".into(),
///     policy: ProviderPolicy {
///         price_per_mfuel: 10,
///         base_fee: 100,
///         max_concurrent_jobs: 4,
///         max_memory_bytes: 512 << 20,
///         max_execution_ms: 30_000,
///     },
///     measured_ms: 1_800_000_000_000,
/// };
/// let now = 1_800_000_000_000;
/// let signed = Signed::sign(&key, manifest.clone(), Validity::starting(now, 3_600_000)).unwrap();
/// let opened = open_manifest(signed.bytes(), now + 1_000).unwrap();
/// assert_eq!(opened.body(), &manifest);
/// assert!(open_manifest(signed.bytes(), now + 3_600_000).is_err(), "expired");
/// ```
pub fn open_manifest(bytes: &[u8], now_ms: u64) -> Result<Signed<ResourceManifest>, ManifestError> {
    let signed = Signed::<ResourceManifest>::decode(bytes)?;
    signed.verify_signature()?;
    let signer = signed.header().signer;
    if signed.body().provider != signer {
        return Err(ManifestError::NotTheProvider {
            provider: signed.body().provider.peer_id(),
            signer: signer.peer_id(),
        });
    }
    signed.verify_live(now_ms)?;
    Ok(signed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keypair;
    use crate::protocol::{ChainLink, Transfer, Validity};

    const NOW: u64 = 1_800_000_000_000;

    fn manifest(provider: PublicKey) -> ResourceManifest {
        ResourceManifest {
            provider,
            genesis: NO_NETWORK,
            cores: 8,
            memory_bytes: 16 << 30,
            fuel_per_second: 1_234_567_890,
            engine: "0123456789abcdef".into(),
            wasmtime: "48.0.8".into(),
            policy: ProviderPolicy {
                price_per_mfuel: 10,
                base_fee: 100,
                max_concurrent_jobs: 4,
                max_memory_bytes: 512 << 20,
                max_execution_ms: 30_000,
            },
            measured_ms: NOW,
        }
    }

    fn signed(key: &Keypair) -> Signed<ResourceManifest> {
        Signed::sign(key, manifest(key.public()), Validity::starting(NOW, 3_600_000)).unwrap()
    }

    #[test]
    fn round_trips_canonically() {
        let key = Keypair::from_seed([3; 32]);
        let event = signed(&key);
        let decoded = Signed::<ResourceManifest>::decode(event.bytes()).unwrap();
        assert_eq!(decoded, event);
        assert_eq!(open_manifest(event.bytes(), NOW).unwrap().body(), &manifest(key.public()));
        assert_eq!(event.header().kind.tag(), "cue/resource-manifest");
    }

    #[test]
    fn a_forged_signature_is_refused() {
        let key = Keypair::from_seed([3; 32]);
        let mut bytes = signed(&key).bytes().to_vec();
        *bytes.last_mut().unwrap() ^= 1;
        assert_eq!(open_manifest(&bytes, NOW), Err(ManifestError::Event(EventError::BadSignature)));
    }

    #[test]
    fn an_altered_body_is_refused() {
        let key = Keypair::from_seed([3; 32]);
        let event = signed(&key);
        let honest = manifest(key.public());
        let mut boasting = honest.clone();
        boasting.fuel_per_second += 1_000_000_000;
        let mut honest_bytes = Writer::default();
        honest.write(&mut honest_bytes);
        let mut boasting_bytes = Writer::default();
        boasting.write(&mut boasting_bytes);
        let (honest_bytes, boasting_bytes) = (honest_bytes.into_bytes(), boasting_bytes.into_bytes());
        assert_eq!(honest_bytes.len(), boasting_bytes.len(), "same length, so only the value differs");
        let at = event.bytes().windows(honest_bytes.len()).position(|w| w == honest_bytes).unwrap();
        let mut tampered = event.bytes().to_vec();
        tampered[at..at + boasting_bytes.len()].copy_from_slice(&boasting_bytes);
        assert_eq!(open_manifest(&tampered, NOW), Err(ManifestError::Event(EventError::BadSignature)));
    }

    #[test]
    fn an_expired_manifest_is_refused() {
        let key = Keypair::from_seed([3; 32]);
        let event = signed(&key);
        assert!(matches!(
            open_manifest(event.bytes(), NOW + 3_600_000),
            Err(ManifestError::Event(EventError::Expired { .. }))
        ));
    }

    #[test]
    fn another_domain_is_refused_both_ways() {
        let key = Keypair::from_seed([3; 32]);
        let transfer = Transfer {
            genesis: crate::crypto::Digest([1; 32]),
            link: ChainLink::FIRST,
            to: key.public(),
            amount: 5,
            reference: None,
        };
        let transfer = Signed::sign(&key, transfer, Validity::starting(NOW, 60_000)).unwrap();
        assert!(matches!(
            open_manifest(transfer.bytes(), NOW),
            Err(ManifestError::Event(EventError::WrongDomain {
                expected: EventKind::ResourceManifest,
                found: EventKind::TokenTransfer
            }))
        ));
        assert!(matches!(
            Signed::<Transfer>::decode(signed(&key).bytes()),
            Err(EventError::WrongDomain {
                expected: EventKind::TokenTransfer,
                found: EventKind::ResourceManifest
            })
        ));
    }

    #[test]
    fn a_manifest_signed_for_another_provider_is_refused() {
        let key = Keypair::from_seed([3; 32]);
        let other = Keypair::from_seed([4; 32]).public();
        let event = Signed::sign(&key, manifest(other), Validity::starting(NOW, 60_000)).unwrap();
        assert!(matches!(open_manifest(event.bytes(), NOW), Err(ManifestError::NotTheProvider { .. })));
    }
}
