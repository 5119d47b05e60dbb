//! [`NodeHandle`]: the node's operations, for the local API and the tests, and the typed views
//! they answer (the API serialises them as they are; `api::client` reads them back).

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::consumer::{self, SubmitOptions, SubmitReport};
use super::discovery::{self, ProviderView};
use super::wallet::{self, EntryView};
use super::{NodeError, Shared, components, js};
use crate::crypto::PeerId;
use crate::market::ResourceManifest;
use crate::net::Multiaddr;
use crate::protocol::{JobId, PaymentReference, Signed};
use crate::store::{ContractRow, ContractState, Role};

/// The node's operations, shared with the API and tests.
#[derive(Clone)]
pub struct NodeHandle {
    pub(super) shared: Arc<Shared>,
}

/// An account's balance, as `GET /v1/wallet/balance` answers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceView {
    /// The account.
    pub peer_id: String,
    /// Its balance in this node's ledger.
    pub balance: u64,
    /// Whether the account is flagged for equivocation (its reputation is then 0).
    pub flagged: bool,
    /// What it holds in open locks (offers set aside for jobs, not in `balance`).
    #[serde(default)]
    pub locked: u64,
}

/// A contract as the API and `cue jobs --json` show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractView {
    /// The contract id: hash of the `COMPUTE_ACCEPT`.
    pub contract: String,
    /// The job.
    pub job: String,
    /// This node's side: `consumer` or `provider`.
    pub role: Role,
    /// The other party.
    pub peer: String,
    /// Where it stands: `accepted`, `delivered`, `paid`, `failed`, `defaulted`, `invalid`.
    pub state: ContractState,
    /// Hash of the request.
    pub request: String,
    /// Hash of the receipt, once delivered.
    pub receipt: Option<String>,
    /// Hash of the payment, once paid.
    pub payment: Option<String>,
    /// The consumer's offer.
    pub offer: u64,
    /// What the receipt makes due.
    pub price: Option<u64>,
    /// Payment deadline, ms since the epoch.
    pub pay_by_ms: u64,
    /// When this node recorded the contract.
    pub created_ms: u64,
    /// When its state last changed.
    pub updated_ms: u64,
    /// A note on the last change.
    pub detail: Option<String>,
}

impl From<&ContractRow> for ContractView {
    fn from(row: &ContractRow) -> ContractView {
        ContractView {
            contract: row.contract.to_string(),
            job: row.job.to_string(),
            role: row.role,
            peer: row.peer.peer_id().to_string(),
            state: row.state,
            request: row.request.to_string(),
            receipt: row.receipt.map(|d| d.to_string()),
            payment: row.payment.map(|d| d.to_string()),
            offer: row.offer,
            price: row.price,
            pay_by_ms: row.pay_by_ms,
            created_ms: row.created_ms,
            updated_ms: row.updated_ms,
            detail: row.detail.clone(),
        }
    }
}

/// One job: its contracts and every protocol event of it, in log order.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobView {
    /// The job id.
    pub job: String,
    /// Its contracts (one per provider tried that accepted).
    pub contracts: Vec<ContractView>,
    /// Its protocol events, in log order.
    pub events: Vec<JobEventView>,
}

/// One protocol event of a job.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobEventView {
    /// The event kind's tag (`cue/compute-request`, ...).
    pub kind: String,
    /// The event's hash.
    pub hash: String,
    /// Its size in bytes.
    pub bytes: usize,
}

impl NodeHandle {
    pub(super) fn new(shared: Arc<Shared>) -> NodeHandle {
        NodeHandle { shared }
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.shared.keypair.peer_id()
    }

    /// The addresses the node listens on.
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.shared.listen_addrs.clone()
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.shared.data_dir.root().to_path_buf()
    }

    /// This node's signed manifest, when it provides.
    pub fn manifest(&self) -> Option<Signed<ResourceManifest>> {
        self.shared.advert.current()
    }

    /// How much refused input of each kind this node has seen since it started.
    pub fn refusals(&self) -> std::collections::BTreeMap<&'static str, u64> {
        self.shared.refusals.snapshot()
    }

    /// This node's view of a peer's reputation, in `[0, 1]`.
    pub fn reputation(&self, peer: PeerId) -> f64 {
        self.shared.reputation.of(&peer.public_key())
    }

    /// `peer`'s gossip score here (`None` before it has one); a peer below -80 is ignored.
    pub async fn gossip_score(&self, peer: PeerId) -> Result<Option<f64>, NodeError> {
        Ok(self.shared.client.gossip_score(peer).await?)
    }

    /// Peers connected now.
    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, NodeError> {
        Ok(self.shared.client.connected_peers().await?)
    }

    /// Discovers providers, checks their manifests and ranks them (see
    /// [`market::score`](crate::market::score)).
    pub async fn providers(&self) -> Result<Vec<ProviderView>, NodeError> {
        discovery::providers(&self.shared).await
    }

    /// Verifies, signs, stores and announces a component.
    pub async fn publish(
        &self,
        bytes: Vec<u8>,
        name: &str,
        version: &str,
    ) -> Result<components::PublishReport, NodeError> {
        components::publish(&self.shared, bytes, name, version).await
    }

    /// Publishes the JavaScript runtime built into `cue`, pre-initialised, as
    /// `js@<its version>` (what `cue submit --js` does by itself on first use).
    pub async fn publish_js(&self) -> Result<components::PublishReport, NodeError> {
        js::publish(&self.shared).await
    }

    /// Resolves a reference and fetches the component's bytes from a peer that has them.
    pub async fn fetch(
        &self,
        reference: &str,
        progress: impl FnMut(u64, u64) + Send,
    ) -> Result<components::FetchReport, NodeError> {
        components::fetch(&self.shared, reference, progress).await
    }

    /// Runs a job on the network: discover, negotiate, stream, check the receipt, pay,
    /// attest; retries elsewhere and replicates as asked. `progress(done, total)` reports the
    /// guest's progress.
    pub async fn submit(
        &self,
        options: SubmitOptions,
        progress: impl Fn(u64, u64) + Send + Sync + 'static,
    ) -> Result<SubmitReport, NodeError> {
        consumer::submit(&self.shared, options, Arc::new(progress)).await
    }

    /// Runs a JavaScript job on the network: `code` (a function expression, `(a, b) => a * b`)
    /// called with `args` (a JSON array, `[5, 10]`) on the runtime built into `cue`, published
    /// here as `js@<version>` and fetched by providers like any component. `options.reference`
    /// and `options.call` are set here; the report's `result` is the function's value.
    pub async fn submit_js(
        &self,
        code: &str,
        args: &str,
        mut options: SubmitOptions,
        progress: impl Fn(u64, u64) + Send + Sync + 'static,
    ) -> Result<SubmitReport, NodeError> {
        options.call = js::call(code, args)?;
        options.reference = format!("sha256:{}", js::runtime(&self.shared).await?);
        let mut report = consumer::submit(&self.shared, options, Arc::new(progress)).await?;
        js::read_report(&mut report);
        Ok(report)
    }

    /// The latest `limit` contracts this node is a party to, most recently changed first, as
    /// JSON [`ContractView`]s (what `GET /v1/jobs` answers).
    pub async fn jobs(&self, limit: u32) -> Result<Vec<serde_json::Value>, NodeError> {
        self.jobs_from(0, limit).await
    }

    /// A page of [`jobs`](Self::jobs): at most `limit` contracts after the first `offset`.
    pub async fn jobs_from(&self, offset: u32, limit: u32) -> Result<Vec<serde_json::Value>, NodeError> {
        let rows = self.shared.journal.read(move |reader| reader.contracts_from(offset, limit)).await?;
        Ok(rows.iter().map(|row| json(&ContractView::from(row))).collect())
    }

    /// One job as a JSON [`JobView`]: its contracts and every protocol event of it, in log
    /// order (what `GET /v1/jobs/<id>` answers). A job pruned from the log (ended 30 days ago,
    /// see `store::PruneRule`) is not found.
    pub async fn job(&self, job: JobId) -> Result<serde_json::Value, NodeError> {
        let (rows, events) = self
            .shared
            .journal
            .read(move |reader| Ok((reader.contracts_of_job(&job)?, reader.job_events(&job)?)))
            .await?;
        if rows.is_empty() && events.is_empty() {
            return Err(NodeError::NotFound(format!("no job {job} here")));
        }
        Ok(json(&JobView {
            job: job.to_string(),
            contracts: rows.iter().map(ContractView::from).collect(),
            events: events
                .iter()
                .map(|(kind, hash, bytes)| JobEventView {
                    kind: kind.clone(),
                    hash: hash.to_string(),
                    bytes: bytes.len(),
                })
                .collect(),
        }))
    }
}

/// A view as JSON (views are plain data: serialising them cannot fail).
fn json(view: &impl Serialize) -> serde_json::Value {
    serde_json::to_value(view).unwrap_or_default()
}

/// The wallet: balances, history, transfers and mints on this node's ledger, gossiped to the
/// network.
impl NodeHandle {
    /// An account's balance and whether it is flagged for equivocation.
    /// What `account` holds in open locks in this node's ledger.
    pub async fn locked(&self, account: PeerId) -> Result<u64, NodeError> {
        let key = account.public_key();
        self.shared.journal.read(move |reader| reader.locked_by(&key)).await
    }

    /// An account's balance in this node's ledger, and whether it is flagged.
    pub async fn balance(&self, account: PeerId) -> Result<(u64, bool), NodeError> {
        let key = account.public_key();
        self.shared.journal.read(move |reader| Ok((reader.balance(&key)?, reader.is_flagged(&key)?))).await
    }

    /// An account's latest `limit` entries, newest first.
    pub async fn history(&self, account: PeerId, limit: u32) -> Result<Vec<EntryView>, NodeError> {
        self.history_before(account, None, limit).await
    }

    /// A page of [`history`](Self::history): at most `limit` entries from before log position
    /// `before` (the next page: before the last entry's `log_position`).
    pub async fn history_before(
        &self,
        account: PeerId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<EntryView>, NodeError> {
        let key = account.public_key();
        let entries =
            self.shared.journal.read(move |reader| reader.history_before(&key, before, limit)).await?;
        Ok(entries.iter().map(EntryView::of_history).collect())
    }

    /// Pays `amount` to `to` from this node's account (`reference`: `contract:<hash>` or
    /// `receipt:<hash>`), and gossips the entry.
    pub async fn transfer(
        &self,
        to: PeerId,
        amount: u64,
        reference: Option<&str>,
    ) -> Result<EntryView, NodeError> {
        let reference = reference
            .map(str::parse::<PaymentReference>)
            .transpose()
            .map_err(|e| NodeError::Invalid(e.to_string()))?;
        wallet::author(&self.shared, wallet::transfer(to, amount, reference)).await
    }

    /// Mints `amount` to `to` (this node must be the mint authority), and gossips the entry.
    pub async fn mint(&self, to: PeerId, amount: u64) -> Result<EntryView, NodeError> {
        wallet::author(&self.shared, wallet::mint(to, amount)).await
    }

    /// Verifies and applies a signed ledger entry, and gossips it.
    pub async fn import(&self, bytes: Vec<u8>, historical: bool) -> Result<EntryView, NodeError> {
        wallet::import(&self.shared, bytes, historical).await
    }
}
