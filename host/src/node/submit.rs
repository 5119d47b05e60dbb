//! The consumer's side of a contract: resolve the component, choose providers, negotiate,
//! stream the job, check the receipt, pay what it makes due, and attest — with bounded
//! retries on other providers, and replication with a majority vote.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::discovery::ProviderView;
use super::jobstream::{self, Frame, JOB_PROTOCOL};
use super::provide::{keep, store_all, store_records};
use super::{NodeError, Shared, components, discovery, ledger, now_ms, reputation};
use crate::contract::{self, Breach};
use crate::crypto::{Digest, PeerId};
use crate::net::{RpcRequest, RpcResponse};
use crate::protocol::{
    ComputeAccept, ComputeReject, ComputeRequest, JobId, JobInput, PaymentReference, Receipt, RunOutcome,
    Signed, Validity, Verdict,
};
use crate::sandbox::{Call, JobEvent, LoadedComponent};
use crate::store::{ContractRow, ContractState, ProtocolEvent, Records, Role};

/// Time allowed beyond the contract's execution limit for connection, transfer and signing.
const DELIVERY_MARGIN: Duration = Duration::from_secs(15);
/// How long a payment on the job stream may wait for its confirmation (then `Pay` is tried).
const PAID_WAIT: Duration = Duration::from_secs(10);
/// Times a job stream is opened for one contract before the attempt fails.
const START_ATTEMPTS: u32 = 3;
/// How long a request may stay acceptable to the provider.
const REQUEST_LIFETIME_MS: u64 = 60_000;

/// What `cue submit` asks for.
#[derive(Clone, Debug)]
pub struct SubmitOptions {
    /// The component: `name@req`, `sha256:<hex>` or a file.
    pub reference: String,
    /// The call, in WAVE.
    pub call: String,
    /// The most to pay per provider; `None`: each provider's price for the fuel budget.
    pub offer: Option<u64>,
    /// Fuel budget.
    pub max_fuel: u64,
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
}

/// One provider tried.
#[derive(Clone, Debug, Serialize)]
pub struct Attempt {
    /// The provider.
    pub provider: String,
    /// `completed`, `rejected`, `failed`, `breach` or `invalid-result`.
    pub outcome: String,
    /// Why, in words.
    pub detail: String,
    /// The contract id, when one was made.
    pub contract: Option<String>,
    /// What was paid (0 when nothing).
    pub paid: u64,
}

/// What `cue submit` reports: the same `result`/`wave`/`error` as `cue run --json`, plus the
/// contract's facts.
#[derive(Clone, Debug, Serialize)]
pub struct SubmitReport {
    /// The job id.
    pub job: String,
    /// The result as JSON (`null` on failure).
    pub result: serde_json::Value,
    /// The result in WAVE (`null` on failure).
    pub wave: Option<String>,
    /// `{"kind", "message"}` when the job failed (out of fuel, trap, ...), else `null`.
    pub error: Option<serde_json::Value>,
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
}

/// A delivered, checked run.
struct Delivery {
    provider: PeerId,
    accept: Signed<ComputeAccept>,
    receipt: Signed<Receipt>,
    /// The result in WAVE, as delivered (checked against the receipt's hash).
    output: Option<String>,
    row: ContractRow,
    offer: u64,
    /// The job stream, kept open to pay on (dropped unused when not paid).
    stream: Option<crate::net::Stream>,
    /// The contract's log entries when they are not stored yet (it came with its outcome):
    /// stored with whatever this node records next on it.
    unstored: Vec<ProtocolEvent>,
}

/// What a provider has told of the contract so far on a job stream.
struct Negotiated {
    /// The checked contract.
    accept: Option<Signed<ComputeAccept>>,
    /// Storing it, when it was told before the outcome (answers whether it is stored).
    storing: Option<tokio::task::JoinHandle<bool>>,
}

/// The log entries of a contract: its request and accept.
fn contract_events(
    request: &Signed<ComputeRequest>,
    accept: &Signed<ComputeAccept>,
    job: JobId,
) -> Vec<ProtocolEvent> {
    vec![
        ProtocolEvent::of(request, Some(job), vec![]),
        ProtocolEvent::of(accept, Some(job), vec![(request.hash(), "request")]),
    ]
}

/// A contract told in hex, checked against the request.
fn checked_accept(
    request: &Signed<ComputeRequest>,
    accept: &str,
) -> Result<Signed<ComputeAccept>, (&'static str, String)> {
    let breach = |e: String| ("breach", e);
    let bytes = hex::decode(accept).map_err(|e| breach(format!("an unreadable contract: {e}")))?;
    let accept = Signed::<ComputeAccept>::decode(&bytes)
        .and_then(|a| a.verify_signature().map(|()| a))
        .map_err(|e| breach(format!("an unreadable contract: {e}")))?;
    contract::check_accept(request, &accept).map_err(|b| breach(b.to_string()))?;
    Ok(accept)
}

/// A receipt told in hex, checked against the contract and the delivered output.
fn checked_receipt(
    request: &Signed<ComputeRequest>,
    accept: &Signed<ComputeAccept>,
    receipt: &str,
    output: Option<&str>,
) -> Result<Signed<Receipt>, String> {
    let bytes = hex::decode(receipt).map_err(|e| format!("receipt: {e}"))?;
    let receipt = Signed::<Receipt>::decode(&bytes)
        .and_then(|r| r.verify_signature().map(|()| r))
        .map_err(|e| format!("an unreadable receipt: {e}"))?;
    contract::check_receipt(request.body(), accept, &receipt, output)
        .map_err(|b: Breach| format!("the receipt breaks the contract: {b}"))?;
    Ok(receipt)
}

/// Runs a job on the network; `progress(done, total)` reports the guest's progress.
pub(super) async fn submit(
    shared: &Arc<Shared>,
    options: SubmitOptions,
    progress: Arc<dyn Fn(u64, u64) + Send + Sync>,
) -> Result<SubmitReport, NodeError> {
    let genesis = ledger::store(shared)?.genesis().id();
    let fetched = components::fetch(shared, &options.reference, |_, _| {}).await?;
    let component = Digest::from_hex(&fetched.sha256).ok_or_else(|| NodeError::Store("bad sha256".into()))?;
    let reference = fetched.name.as_ref().zip(fetched.version.as_ref()).map(|(n, v)| format!("{n}@{v}"));
    let (loaded, call) = load_locally(shared, component, &options.call).await?;
    let job = JobId::new(now_ms()).map_err(|e| NodeError::Store(e.to_string()))?;
    let candidates = candidates(shared, &options).await?;
    let groups = replica_groups(candidates, options.replicas.max(1));
    let plan = Plan {
        shared: shared.clone(),
        job,
        genesis,
        component,
        reference,
        call_text: call.wave().to_owned(),
        function: call.export_name().to_owned(),
        options,
    };
    let mut attempts = Vec::new();
    let mut deliveries = Vec::new();
    let runs = groups.into_iter().map(|group| {
        let plan = &plan;
        let progress = progress.clone();
        async move { plan.run_one(group, progress).await }
    });
    for (delivery, mut tries) in futures::future::join_all(runs).await {
        attempts.append(&mut tries);
        deliveries.extend(delivery);
    }
    plan.settle(deliveries, &loaded, &call, attempts).await
}

async fn load_locally(
    shared: &Shared,
    component: Digest,
    call: &str,
) -> Result<(Arc<LoadedComponent>, Call), NodeError> {
    let loaded = shared
        .load(component)
        .await
        .map_err(|e| NodeError::Invalid(format!("the component was refused: {e}")))?;
    let call = loaded.parse_call(call).map_err(|e| NodeError::Invalid(e.to_string()))?;
    Ok((loaded, call))
}

/// Providers that may take the job, best first: not this node, within their policies, and
/// (when the offer is fixed) cheap enough.
async fn candidates(shared: &Shared, options: &SubmitOptions) -> Result<Vec<ProviderView>, NodeError> {
    let me = shared.keypair.peer_id();
    // A named provider is asked directly (its checked manifest reused while it lives): no
    // sweep of the DHT.
    let all = match options.provider {
        Some(provider) => discovery::checked(shared, provider).await.into_iter().collect(),
        None => discovery::providers(shared).await?,
    };
    let fits = |view: &ProviderView| {
        let policy = view.signed.body().policy;
        let timeout_ms = u64::try_from(options.timeout.as_millis()).unwrap_or(u64::MAX);
        options.max_memory_bytes <= policy.max_memory_bytes
            && timeout_ms <= policy.max_execution_ms
            && options.offer.is_none_or(|offer| contract::minimum_offer(&policy, options.max_fuel) <= offer)
    };
    let chosen: Vec<ProviderView> = all
        .into_iter()
        .filter(|view| view.signed.body().peer_id() != me)
        .filter(|view| options.provider.is_none_or(|p| p == view.signed.body().peer_id()))
        .filter(fits)
        .collect();
    if chosen.is_empty() {
        return Err(NodeError::NotFound(match options.provider {
            Some(p) => {
                format!("provider {p} is not available for this job (unknown, or its policy does not fit)")
            }
            None => "no provider available for this job (none found, or none whose policy fits)".into(),
        }));
    }
    Ok(chosen)
}

/// Splits candidates into `replicas` disjoint groups of the same engine (results and fuel are
/// only comparable on one engine): each group is one replica's list of providers to try.
fn replica_groups(candidates: Vec<ProviderView>, replicas: usize) -> Vec<Vec<ProviderView>> {
    let mut by_engine: std::collections::BTreeMap<String, Vec<ProviderView>> = Default::default();
    for view in candidates {
        by_engine.entry(view.signed.body().engine.clone()).or_default().push(view);
    }
    let engine =
        by_engine.iter().max_by_key(|(_, views)| views.len()).map(|(e, _)| e.clone()).unwrap_or_default();
    let views = by_engine.remove(&engine).unwrap_or_default();
    let mut groups = vec![Vec::new(); replicas.min(views.len()).max(1)];
    let count = groups.len();
    for (i, view) in views.into_iter().enumerate() {
        groups[i % count].push(view);
    }
    groups
}

/// The job's fixed facts, shared by its replicas.
struct Plan {
    shared: Arc<Shared>,
    job: JobId,
    genesis: Digest,
    component: Digest,
    reference: Option<String>,
    call_text: String,
    /// The export the call runs (named in a request whose call is streamed).
    function: String,
    options: SubmitOptions,
}

impl Plan {
    /// Tries the group's providers in order until one delivers a checked receipt.
    async fn run_one(
        &self,
        group: Vec<ProviderView>,
        progress: Arc<dyn Fn(u64, u64) + Send + Sync>,
    ) -> (Option<Delivery>, Vec<Attempt>) {
        let mut attempts = Vec::new();
        for view in group.into_iter().take(self.options.max_attempts.max(1)) {
            let provider = view.signed.body().peer_id();
            match self.attempt(&view, &progress).await {
                Ok(delivery) => {
                    attempts.push(Attempt {
                        provider: provider.to_string(),
                        outcome: "completed".into(),
                        detail: String::new(),
                        contract: Some(delivery.accept.hash().to_string()),
                        paid: 0,
                    });
                    return (Some(delivery), attempts);
                }
                Err((outcome, detail, contract)) => {
                    tracing::info!(%provider, outcome, "attempt failed: {detail}");
                    attempts.push(Attempt {
                        provider: provider.to_string(),
                        outcome: outcome.into(),
                        detail,
                        contract: contract.map(|c| c.to_string()),
                        paid: 0,
                    });
                }
            }
        }
        (None, attempts)
    }

    async fn attempt(
        &self,
        view: &ProviderView,
        progress: &Arc<dyn Fn(u64, u64) + Send + Sync>,
    ) -> Result<Delivery, (&'static str, String, Option<Digest>)> {
        let shared = &self.shared;
        let manifest = view.signed.body();
        let provider = manifest.peer_id();
        let offer = self
            .options
            .offer
            .unwrap_or_else(|| contract::minimum_offer(&manifest.policy, self.options.max_fuel));
        let body = ComputeRequest {
            job_id: self.job,
            provider: manifest.provider,
            genesis: self.genesis,
            component: self.component,
            reference: self.reference.clone(),
            input: JobInput::for_call(&self.call_text, &self.function),
            offer,
            max_fuel: self.options.max_fuel,
            max_memory_bytes: self.options.max_memory_bytes,
            max_execution_ms: u64::try_from(self.options.timeout.as_millis()).unwrap_or(u64::MAX),
        };
        let request = Signed::sign(&shared.keypair, body, Validity::starting(now_ms(), REQUEST_LIFETIME_MS))
            .map_err(|e| ("failed", e.to_string(), None))?;
        let deadline = self.options.timeout + DELIVERY_MARGIN;
        let mut negotiated = Negotiated { accept: None, storing: None };
        let delivered =
            tokio::time::timeout(deadline, self.stream(provider, &request, offer, &mut negotiated, progress))
                .await;
        let failure = match delivered {
            Ok(Ok(delivered)) => Ok(delivered),
            Ok(Err(failure)) => Err(failure),
            Err(_) => Err(("failed", format!("nothing delivered within {deadline:?}"))),
        };
        let Some(accept) = negotiated.accept else {
            return Err(failure.err().map_or(("failed", "no contract".into(), None), |(o, d)| (o, d, None)));
        };
        // A contract told before its outcome is being stored: nothing is paid or recorded on it
        // before that is done. One told with its outcome is stored with the payment.
        let unstored = match negotiated.storing.take() {
            Some(storing) => {
                let _ = storing.await;
                Vec::new()
            }
            None => contract_events(&request, &accept, self.job),
        };
        let contract = accept.hash();
        let row = self.row(&request, &accept, offer);
        match failure {
            Ok((receipt, output, stream)) => {
                Ok(Delivery { provider, accept, receipt, output, row, offer, stream: Some(stream), unstored })
            }
            Err((_, detail)) => {
                let failed = ContractRow {
                    state: ContractState::Failed,
                    updated_ms: now_ms(),
                    detail: Some(detail.clone()),
                    ..row
                };
                let with = Records { events: unstored, rows: vec![failed], ..Records::default() };
                let provider = manifest.provider;
                reputation::attest(shared, contract, provider, Verdict::Timeout, Vec::new(), with).await;
                Err(("failed", detail, Some(contract)))
            }
        }
    }

    /// This node's row for a contract, as accepted.
    fn row(
        &self,
        request: &Signed<ComputeRequest>,
        accept: &Signed<ComputeAccept>,
        offer: u64,
    ) -> ContractRow {
        ContractRow {
            contract: accept.hash(),
            job: self.job,
            role: Role::Consumer,
            peer: request.body().provider,
            state: ContractState::Accepted,
            request: request.hash(),
            receipt: None,
            payment: None,
            offer,
            price: None,
            pay_by_ms: accept.body().pay_by_ms,
            created_ms: now_ms(),
            updated_ms: now_ms(),
            detail: None,
        }
    }

    /// Opens the job stream with the request, follows the provider's answer — a reject, or the
    /// contract (with the outcome of a quick job, or before the events of a longer one, whose
    /// contract is then stored while it runs) — forwards progress, and returns the checked
    /// receipt with the output (type-checked later against the component). The contract, once
    /// told and checked, is in `negotiated`.
    async fn stream(
        &self,
        provider: PeerId,
        request: &Signed<ComputeRequest>,
        offer: u64,
        negotiated: &mut Negotiated,
        progress: &Arc<dyn Fn(u64, u64) + Send + Sync>,
    ) -> Result<(Signed<Receipt>, Option<String>, crate::net::Stream), (&'static str, String)> {
        let failed = |e: String| ("failed", e);
        let (mut stream, first) = self.start(provider, request).await.map_err(failed)?;
        let mut next = Some(first);
        loop {
            let frame = match next.take() {
                Some(frame) => frame,
                None => jobstream::read(&mut stream).await.map_err(|e| failed(e.to_string()))?,
            };
            match frame {
                Frame::Event(JobEvent::Progress { done, total }) => progress(done, total),
                Frame::Event(JobEvent::Log(line)) => tracing::debug!(%provider, "job log: {}", line.text),
                Frame::Rejected { reject } if negotiated.accept.is_none() => {
                    keep(&self.shared, ProtocolEvent::of(request, Some(self.job), vec![])).await;
                    let reject = hex::decode(&reject).unwrap_or_default();
                    return Err(("rejected", rejection(&reject, request)));
                }
                Frame::Refused { message } => {
                    return Err(failed(format!("the provider refused the job: {message}")));
                }
                Frame::Contract { accept } if negotiated.accept.is_none() => {
                    let accept = checked_accept(request, &accept)?;
                    let (shared, events) = (self.shared.clone(), contract_events(request, &accept, self.job));
                    let row = self.row(request, &accept, offer);
                    negotiated.storing =
                        Some(tokio::spawn(async move { store_all(&shared, events, vec![row]).await }));
                    negotiated.accept = Some(accept);
                }
                Frame::Delivered { accept, receipt, output } if negotiated.accept.is_none() => {
                    let accept = negotiated.accept.insert(checked_accept(request, &accept)?);
                    let receipt =
                        checked_receipt(request, accept, &receipt, output.as_deref()).map_err(failed)?;
                    return Ok((receipt, output, stream));
                }
                Frame::Outcome { receipt, output } => {
                    let Some(accept) = negotiated.accept.as_ref() else {
                        return Err(failed("an outcome before its contract".into()));
                    };
                    let receipt =
                        checked_receipt(request, accept, &receipt, output.as_deref()).map_err(failed)?;
                    return Ok((receipt, output, stream));
                }
                _ => return Err(failed("the provider sent a frame that is not its to send".into())),
            }
        }
    }

    /// Opens the job stream and sends the request (with the call, when it is streamed);
    /// answers the stream and the provider's first frame. A stream that breaks before that
    /// frame is opened again (at most [`START_ATTEMPTS`] times): a provider that is busy
    /// accepting streams may drop one that arrives at the wrong moment, and one that read the
    /// request before the break rejects it again as a replay, so it is never taken twice.
    async fn start(
        &self,
        provider: PeerId,
        request: &Signed<ComputeRequest>,
    ) -> Result<(crate::net::Stream, Frame), String> {
        let input = match request.body().input {
            JobInput::Inline(_) => None,
            JobInput::Streamed { .. } => Some(self.call_text.clone()),
        };
        let start = Frame::Request { request: hex::encode(request.bytes()), input };
        // A stream kept from a paid job first; one that has gone stale fails before the
        // provider reads anything, and a fresh one is opened.
        while let Some(mut stream) = self.shared.idle_job_streams.take(provider) {
            let first = async {
                jobstream::write(&mut stream, &start).await?;
                jobstream::read(&mut stream).await
            };
            if let Ok(frame) = first.await {
                return Ok((stream, frame));
            }
        }
        let mut failure = String::new();
        for attempt in 0..START_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(5 << attempt)).await;
            }
            let mut stream = match self.shared.client.open_stream(provider, JOB_PROTOCOL).await {
                Ok(stream) => stream,
                Err(e) => {
                    failure = e.to_string();
                    continue;
                }
            };
            let first = async {
                jobstream::write(&mut stream, &start).await?;
                jobstream::read(&mut stream).await
            };
            match first.await {
                Ok(frame) => return Ok((stream, frame)),
                Err(e) => failure = e.to_string(),
            }
        }
        Err(failure)
    }

    /// Votes (when replicated), pays the agreeing deliveries, attests, and builds the report.
    async fn settle(
        &self,
        mut deliveries: Vec<Delivery>,
        loaded: &LoadedComponent,
        call: &Call,
        mut attempts: Vec<Attempt>,
    ) -> Result<SubmitReport, NodeError> {
        let shared = &self.shared;
        if deliveries.is_empty() {
            let tried: Vec<String> =
                attempts.iter().map(|a| format!("{} {}: {}", a.provider, a.outcome, a.detail)).collect();
            return Err(NodeError::NotFound(format!("no provider delivered the job ({})", tried.join("; "))));
        }
        let receipts: Vec<&Receipt> = deliveries.iter().map(|d| d.receipt.body()).collect();
        let winners = contract::majority(&receipts).ok_or_else(|| {
            NodeError::NotFound(format!(
                "the {} replicas disagree and no majority exists; nobody was paid",
                receipts.len()
            ))
        })?;
        let majority_receipt = deliveries[winners[0]].receipt.bytes().to_vec();
        let mut cost = 0;
        for (i, delivery) in deliveries.iter_mut().enumerate() {
            if winners.contains(&i) {
                let paid = self.pay(delivery).await?;
                cost += paid;
                record_paid(&mut attempts, delivery, paid);
            } else {
                let detail = "its receipt disagrees with the majority".to_owned();
                let invalid = ContractRow {
                    state: ContractState::Invalid,
                    receipt: Some(delivery.receipt.hash()),
                    updated_ms: now_ms(),
                    detail: Some(detail.clone()),
                    ..delivery.row.clone()
                };
                let evidence = vec![delivery.receipt.bytes().to_vec(), majority_receipt.clone()];
                let mut events = std::mem::take(&mut delivery.unstored);
                events.push(receipt_event(delivery, self.job));
                let with = Records { events, rows: vec![invalid], ..Records::default() };
                reputation::attest(
                    shared,
                    delivery.accept.hash(),
                    delivery.row.peer,
                    Verdict::InvalidResult,
                    evidence,
                    with,
                )
                .await;
                if let Some(attempt) = attempts
                    .iter_mut()
                    .rev()
                    .find(|a| a.contract.as_deref() == Some(&delivery.accept.hash().to_string()))
                {
                    attempt.outcome = "invalid-result".into();
                    attempt.detail = detail;
                }
            }
        }
        let reference = &deliveries[winners[0]];
        let receipt = reference.receipt.body();
        let (result, wave, error) = match (&receipt.outcome, &reference.output) {
            (RunOutcome::Output(_), Some(wave)) => {
                let output = loaded
                    .output_from_wave(call, wave)
                    .map_err(|e| NodeError::Invalid(format!("the result does not type-check: {e}")))?;
                (output.json, Some(output.wave), None)
            }
            (RunOutcome::Failed { kind, message }, _) => {
                (serde_json::Value::Null, None, Some(serde_json::json!({"kind": kind, "message": message})))
            }
            (RunOutcome::Output(_), None) => {
                return Err(NodeError::Invalid("a result without its output".into()));
            }
        };
        Ok(SubmitReport {
            job: self.job.to_string(),
            result,
            wave,
            error,
            provider: Some(reference.provider.to_string()),
            fuel: receipt.fuel_used,
            cost,
            receipt: Some(reference.receipt.hash().to_string()),
            component: self.component.to_string(),
            attempts,
        })
    }

    /// Pays what the receipt makes due (never above the offer): the transfer, the receipt, the
    /// paid contract (with its request and accept when they came with the outcome) and this
    /// node's `completed` verdict are stored in one commit; then the provider is told directly,
    /// and the verdict and the payment are gossiped.
    async fn pay(&self, delivery: &mut Delivery) -> Result<u64, NodeError> {
        let shared = &self.shared;
        let price = delivery.accept.body().price(delivery.receipt.body().fuel_used, delivery.offer);
        let mut events = std::mem::take(&mut delivery.unstored);
        events.push(receipt_event(delivery, self.job));
        let row = ContractRow {
            state: ContractState::Paid,
            receipt: Some(delivery.receipt.hash()),
            price: Some(price),
            updated_ms: now_ms(),
            ..delivery.row.clone()
        };
        let (contract, peer) = (delivery.accept.hash(), delivery.row.peer);
        let verdict = reputation::owe(contract, peer, Verdict::Completed, Vec::new());
        let owe = vec![verdict.to_body_bytes()];
        if price == 0 {
            if store_records(shared, Records { events, rows: vec![row], owe, ..Records::default() }).await {
                reputation::owed_stored(shared, &verdict);
            }
            return Ok(price);
        }
        let reference = PaymentReference::Receipt(delivery.receipt.hash());
        let draft = ledger::transfer_draft(delivery.provider, price, Some(reference));
        let entry = ledger::author_with(shared, draft, move |transfer| Records {
            events,
            rows: vec![ContractRow { payment: Some(transfer.hash()), ..row }],
            owe,
            ..Records::default()
        })
        .await?;
        reputation::owed_stored(shared, &verdict);
        let bytes = entry.event.bytes().to_vec();
        let provider = delivery.provider;
        let paid_on_stream = match delivery.stream.take() {
            Some(stream) => pay_on_stream(stream, &bytes).await,
            None => None,
        };
        let told = if let Some(stream) = paid_on_stream {
            shared.idle_job_streams.put(provider, stream);
            Ok(RpcResponse::Paid)
        } else {
            shared.client.request(provider, RpcRequest::Pay(bytes.clone())).await
        };
        if !matches!(told, Ok(RpcResponse::Paid)) {
            tracing::info!(%provider, "payment not confirmed directly ({told:?}); it travels by gossip");
        }
        ledger::gossip(shared, bytes).await;
        Ok(price)
    }
}

/// Pays on the job stream; answers the stream when the provider confirmed it stored the
/// payment (it then stays open for the next job), and closes it otherwise.
async fn pay_on_stream(mut stream: crate::net::Stream, transfer: &[u8]) -> Option<crate::net::Stream> {
    let pay = Frame::Pay { transfer: hex::encode(transfer) };
    let confirmed = async {
        jobstream::write(&mut stream, &pay).await?;
        jobstream::read(&mut stream).await
    };
    if matches!(tokio::time::timeout(PAID_WAIT, confirmed).await, Ok(Ok(Frame::Paid))) {
        return Some(stream);
    }
    let _ = futures::AsyncWriteExt::close(&mut stream).await;
    None
}

/// Job streams kept open after a job paid on them, to carry the next job to the same provider
/// without opening a stream (at most [`IDLE_PER_PROVIDER`] per provider and [`MAX_IDLE`] in
/// all, each for [`IDLE_REUSE`]: the provider keeps one open 10 s).
#[derive(Default)]
pub(super) struct IdleStreams(std::sync::Mutex<IdleMap>);

type IdleMap = std::collections::HashMap<PeerId, Vec<(std::time::Instant, crate::net::Stream)>>;

/// Idle job streams kept per provider.
const IDLE_PER_PROVIDER: usize = 32;
/// Idle job streams kept in all.
const MAX_IDLE: usize = 256;
/// How long an idle job stream is reused: well within the provider's 10 s.
const IDLE_REUSE: Duration = Duration::from_secs(5);

impl IdleStreams {
    /// The most recently used live stream to `provider`, if any (stale ones are dropped).
    fn take(&self, provider: PeerId) -> Option<crate::net::Stream> {
        let mut idle = self.0.lock().ok()?;
        let streams = idle.get_mut(&provider)?;
        let found = loop {
            match streams.pop() {
                Some((since, stream)) if since.elapsed() < IDLE_REUSE => break Some(stream),
                Some(_) => continue,
                None => break None,
            }
        };
        if streams.is_empty() {
            idle.remove(&provider);
        }
        found
    }

    /// Keeps a stream for the next job to `provider`; beyond the bounds it is dropped.
    fn put(&self, provider: PeerId, stream: crate::net::Stream) {
        let Ok(mut idle) = self.0.lock() else { return };
        idle.retain(|_, streams| {
            streams.retain(|(since, _)| since.elapsed() < IDLE_REUSE);
            !streams.is_empty()
        });
        let total: usize = idle.values().map(Vec::len).sum();
        let streams = idle.entry(provider).or_default();
        if total < MAX_IDLE && streams.len() < IDLE_PER_PROVIDER {
            streams.push((std::time::Instant::now(), stream));
        }
    }
}

/// The log entry of a delivery's receipt, linked to its contract.
fn receipt_event(delivery: &Delivery, job: JobId) -> ProtocolEvent {
    ProtocolEvent::of(&delivery.receipt, Some(job), vec![(delivery.accept.hash(), "contract")])
}

fn record_paid(attempts: &mut [Attempt], delivery: &Delivery, paid: u64) {
    let contract = delivery.accept.hash().to_string();
    if let Some(attempt) = attempts.iter_mut().find(|a| a.contract.as_deref() == Some(&contract)) {
        attempt.paid = paid;
    }
}

fn rejection(bytes: &[u8], request: &Signed<ComputeRequest>) -> String {
    match Signed::<ComputeReject>::decode(bytes).and_then(|r| r.verify_signature().map(|()| r)) {
        Ok(reject)
            if reject.header().signer == request.body().provider
                && reject.body().request == request.hash() =>
        {
            let reason =
                serde_json::to_value(reject.body().reason).ok().and_then(|v| v.as_str().map(str::to_owned));
            format!("{}: {}", reason.unwrap_or_default(), reject.body().message)
        }
        Ok(_) => "a reject that is not for this request".into(),
        Err(e) => format!("an unreadable reject: {e}"),
    }
}
