//! The consumer's side of a contract, in the order a job lives it:
//! - [`choose`]: the component resolved, providers found and filtered by their policies, split
//!   into replica groups of one engine;
//! - [`fund`]: the offer locked before a provider works on it, and the lock's end (payment
//!   or refund);
//! - [`attempt`]: per replica, providers tried in turn — the request signed, the job stream
//!   opened (an idle one reused), the contract and the receipt checked — this is where a job's
//!   stream is read on the consumer's side;
//! - [`settle`]: replicas voted on, the agreeing ones paid (this is where a payment is made),
//!   the others recorded invalid, and the report built; a failure one provider alone reports is
//!   first re-run here ([`audit`]) to confirm or refute it;
//! - [`idle`]: job streams kept open after a paid job for the next job to the same provider;
//! - [`refunds`]: locks left open by an attempt that ended without paying, given back.

mod attempt;
mod audit;
mod choose;
mod fund;
mod idle;
mod refunds;
mod settle;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use audit::DEFAULT_AUDIT_FUEL;
pub(super) use refunds::run_refunder;

use super::{NodeError, Shared, components};
use crate::clock::now_ms;
use crate::crypto::{Digest, PeerId};
use crate::protocol::JobId;
use crate::sandbox::{Call, LoadedComponent};

/// What `cue submit` asks for.
#[derive(Clone, Debug)]
pub struct SubmitOptions {
    /// The component: `name@req`, `sha256:<hex>` or a file.
    pub reference: String,
    /// The call, in WAVE.
    pub call: String,
    /// The most to pay per provider; `None`: each provider's price for the fuel budget.
    pub offer: Option<u64>,
    /// Fuel budget; `None`: with an offer, the most fuel the offer buys from each provider
    /// asked ([`contract::fuel_bought`](crate::contract::fuel_bought); with replicas, the least
    /// of that over the providers of the replicas' engine, so that they all run with one
    /// budget), else [`DEFAULT_MAX_FUEL`].
    pub max_fuel: Option<u64>,
    /// Memory limit, in bytes.
    pub max_memory_bytes: u64,
    /// Wall-clock limit.
    pub timeout: Duration,
    /// Providers that must run it and agree (1: no replication).
    pub replicas: usize,
    /// Only this provider.
    pub provider: Option<PeerId>,
    /// Most providers tried per replica.
    pub max_attempts: usize,
    /// Fuel this node spends at most re-running a failure one provider alone reports, to
    /// confirm or refute it (0: never; [`DEFAULT_AUDIT_FUEL`] by default; see `audit`).
    pub audit_fuel: u64,
}

/// The fuel budget of a job submitted with neither a fuel budget nor an offer.
pub const DEFAULT_MAX_FUEL: u64 = 10_000_000_000;

/// How one provider's attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttemptOutcome {
    /// It delivered a checked receipt (and, in the majority, was paid).
    Completed,
    /// It signed a reject: no contract.
    Rejected,
    /// No contract, or nothing delivered on one (a broken stream, a deadline passed, a
    /// refused start).
    Failed,
    /// Its contract or receipt broke the terms (wrong signer, reference, price, fuel, engine).
    Breach,
    /// Its receipt disagreed with the majority of replicas: not paid.
    InvalidResult,
    /// This node could not lock the offer (its balance, after its open locks, is below it):
    /// nothing was sent.
    Unfunded,
}

/// One provider tried.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Attempt {
    /// The provider.
    pub provider: String,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// Why, in words.
    pub detail: String,
    /// The contract id, when one was made.
    pub contract: Option<String>,
    /// What was paid (0 when nothing).
    pub paid: u64,
}

/// What `cue submit` reports: the same `result`/`wave`/`error` as `cue run --json`, plus the
/// contract's facts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SubmitReport {
    /// The job id.
    pub job: String,
    /// The result as JSON (`null` on failure).
    pub result: serde_json::Value,
    /// The result in WAVE (`null` on failure).
    pub wave: Option<String>,
    /// `{"kind", "message"}` when the job failed (out of fuel, trap, ...), else `null`.
    pub error: Option<serde_json::Value>,
    /// A JavaScript job's value exactly as the function's `JSON.stringify` wrote it (`result`
    /// is the same value parsed); absent for other jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_text: Option<String>,
    /// The provider whose receipt is reported.
    pub provider: Option<String>,
    /// Fuel the receipt states.
    pub fuel: u64,
    /// What this job cost in all (every paid contract).
    pub cost: u64,
    /// Hash of the reported receipt.
    pub receipt: Option<String>,
    /// The component's SHA-256.
    pub component: String,
    /// Every provider tried, in order.
    pub attempts: Vec<Attempt>,
    /// The guest's log (`console.log` of a JavaScript job) as the reported provider streamed
    /// it: at most 1 MiB, and not covered by the receipt (a provider could make it up).
    #[serde(default)]
    pub log: Vec<crate::sandbox::LogLine>,
}

/// What a node keeps for its consumer's side between jobs.
#[derive(Default)]
pub(super) struct Consumer {
    /// Job streams kept open after paid jobs, for the next job to the same provider.
    idle: idle::IdleStreams,
}

/// Progress of the guest, `(done, total)`.
type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// A job's fixed facts, shared by its replicas.
struct Job {
    shared: Arc<Shared>,
    id: JobId,
    genesis: Digest,
    component: Digest,
    reference: Option<String>,
    call_text: String,
    /// The export the call runs (named in a request whose call is streamed).
    function: String,
    options: SubmitOptions,
}

/// Runs a job on the network; `progress(done, total)` reports the guest's progress.
pub(super) async fn submit(
    shared: &Arc<Shared>,
    options: SubmitOptions,
    progress: Progress,
) -> Result<SubmitReport, NodeError> {
    let genesis = shared.journal.genesis_id().ok_or(NodeError::NoLedger)?;
    let fetched = components::fetch(shared, &options.reference, |_, _| {}).await?;
    let component = Digest::from_hex(&fetched.sha256)
        .ok_or_else(|| NodeError::Invalid(format!("bad sha256 {}", fetched.sha256)))?;
    let reference = fetched.name.as_ref().zip(fetched.version.as_ref()).map(|(n, v)| format!("{n}@{v}"));
    let (loaded, call) = load_locally(shared, component, &options.call).await?;
    let id = JobId::new(now_ms())?;
    let groups = choose::replica_groups(choose::candidates(shared, &options).await?, options.replicas.max(1));
    let options = choose::one_budget_for_replicas(options, &groups);
    let job = Job {
        shared: shared.clone(),
        id,
        genesis,
        component,
        reference,
        call_text: call.wave().to_owned(),
        function: call.export_name().to_owned(),
        options,
    };
    let runs = groups.into_iter().map(|group| job.run_replica(group, progress.clone()));
    let mut attempts = Vec::new();
    let mut deliveries = Vec::new();
    for (delivery, mut tries) in futures::future::join_all(runs).await {
        attempts.append(&mut tries);
        deliveries.extend(delivery);
    }
    job.settle(deliveries, &loaded, &call, attempts).await
}

/// The component, loaded here too (the result is type-checked against it), and the call
/// checked against its exports before any provider is asked.
async fn load_locally(
    shared: &Shared,
    component: Digest,
    call: &str,
) -> Result<(Arc<LoadedComponent>, Call), NodeError> {
    let loaded = shared
        .components
        .load(component)
        .await
        .map_err(|e| NodeError::Invalid(format!("the component was refused: {e}")))?;
    let call = loaded.parse_call(call).map_err(|e| NodeError::Invalid(e.to_string()))?;
    Ok((loaded, call))
}
