//! What a node is asked to be: [`NodeConfig`], and with `--provide` the [`ProviderSettings`].

use std::time::Duration;

use crate::benchmark::Plan;
use crate::crypto::PeerId;
use crate::datadir::DataDir;
use crate::ledger::Genesis;
use crate::market::ProviderPolicy;
use crate::net::Multiaddr;
use crate::sandbox::SandboxConfig;
use crate::store::DEFAULT_MAX_BLOB_STORE_BYTES;

/// The default time after a job's limit in which its consumer must pay.
pub const DEFAULT_PAY_GRACE: Duration = Duration::from_secs(60);

/// What a node is asked to be.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Keys, stores and caches.
    pub data_dir: DataDir,
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Peers to join through.
    pub bootstrap: Vec<Multiaddr>,
    /// Sell compute: measure, sign and announce a manifest.
    pub provide: Option<ProviderSettings>,
    /// The sandbox's settings; its code cache defaults to the data dir's.
    pub sandbox: SandboxConfig,
    /// The network's genesis: needed the first time the data dir's ledger is opened. Without
    /// one and without a ledger in the data dir, the node runs without a ledger.
    pub genesis: Option<Genesis>,
    /// The cap on the blob store's bytes (default [`DEFAULT_MAX_BLOB_STORE_BYTES`]): beyond,
    /// the least recently used components not pinned go (see `store::BlobStore`).
    pub max_blob_store_bytes: u64,
    /// A testing aid: stop the process dead at this point of a contract (see [`CrashPoint`]);
    /// `None` in production.
    pub crash_at: Option<CrashPoint>,
}

impl NodeConfig {
    /// A node on `data_dir` listening on an ephemeral loopback TCP port, joining through
    /// `bootstrap`, not providing, with the default sandbox.
    pub fn loopback(data_dir: DataDir, bootstrap: Vec<Multiaddr>) -> NodeConfig {
        let listen = "/ip4/127.0.0.1/tcp/0".parse().expect("a valid multiaddr");
        NodeConfig {
            data_dir,
            listen: vec![listen],
            bootstrap,
            provide: None,
            sandbox: SandboxConfig::default(),
            genesis: None,
            max_blob_store_bytes: DEFAULT_MAX_BLOB_STORE_BYTES,
            crash_at: None,
        }
    }
}

/// What a provider sells and how it measures itself.
#[derive(Clone, Debug)]
pub struct ProviderSettings {
    /// Prices and per-job bounds.
    pub policy: ProviderPolicy,
    /// How much of the reference workload to run when measuring.
    pub plan: Plan,
    /// How long peers may believe a manifest; it is re-signed at half of this.
    pub manifest_lifetime: Duration,
    /// The lowest consumer reputation served, in `[0, 1]`.
    pub min_reputation: f64,
    /// A deliberate misbehaviour for tests; `None` in production.
    pub fault: Option<FaultInjection>,
    /// How long after a job's time limit the consumer may pay before it is recorded as a
    /// default.
    pub pay_grace: Duration,
    /// Run only components published (signed) by one of these keys; empty: any verified
    /// component.
    pub allowed_publishers: Vec<PeerId>,
}

/// A deliberate misbehaviour, for testing that consumers catch it. Off unless asked for by
/// name (`cue node --provide --fault-injection overstate-fuel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FaultInjection {
    /// Sign receipts that claim 1000 fuel more than the run used (an overcharging provider).
    OverstateFuel,
    /// Sign a manifest claiming 1000 times the measured speed (a provider lying to rank first).
    OverclaimSpeed,
    /// Report every run as a trap that used the whole fuel budget (a provider paid for
    /// failures it makes up).
    FailAtMaxFuel,
}

/// A point in a contract where a node stops dead — `std::process::abort()`, no destructor, no
/// flush, as a power cut or a SIGKILL would — so that tests can show what survives a crash
/// there. A testing aid, off unless asked for by name (`cue node --crash-at consumer-paid`,
/// hidden from `--help`; docs/architecture.md, "Crash points").
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CrashPoint {
    /// A consumer, right after the commit that stores its payment (the transfer, the receipt
    /// and the paid contract: `node/consumer/settle.rs`), before it tells the provider or
    /// gossips the transfer.
    ConsumerPaid,
    /// A provider, right after the commit that stores a delivered result (the receipt and the
    /// delivered contract: `node/provider/run.rs`, `deliver`), before it tells the consumer.
    ProviderStored,
    /// A provider, after it stored a delivered result (the receipt and the delivered contract:
    /// `node/provider/run.rs`) and sent it, when the consumer's payment arrives on the job
    /// stream and before it is read into the ledger.
    ProviderDelivered,
}
