//! Where a provider decides: a `COMPUTE_REQUEST` (by `Compute` on `/cue-rpc`, or in a job
//! stream's `request` frame) is checked — signed by the peer that sent it, fresh — then
//! evaluated against the policy (`contract::evaluate`), the publisher allow-list, the
//! component (fetched and loaded) and the call (type-checked). The answer is a signed
//! `COMPUTE_ACCEPT` that takes a place for the job, or a signed, stored `COMPUTE_REJECT`.

use std::sync::Arc;
use std::time::Instant;

use super::super::gossip;
use super::super::journal::Imported;
use super::super::quota::Place;
use super::super::{NodeError, Shared, components, lock};
use super::Provider;
use crate::clock::now_ms;
use crate::contract::{self, Decline, Evaluation};
use crate::crypto::PeerId;
use crate::ledger::LedgerError;
use crate::net::{Refusal, RefusalReason, RpcResponse};
use crate::protocol::{
    ComputeAccept, ComputeReject, ComputeRequest, EventBody, JobInput, Lock, MAX_LIFETIME_MS, RejectReason,
    Signed, Validity,
};
use crate::sandbox::{Call, LoadedComponent};
use crate::store::{BlobError, ContractRow, ProtocolEvent, Records, Role, SubmitError};

/// An accepted job waiting for its consumer to start it.
pub(super) struct PreparedJob {
    pub(super) request: Signed<ComputeRequest>,
    pub(super) accept: Signed<ComputeAccept>,
    pub(super) component: Arc<LoadedComponent>,
    /// The type-checked call; `None` until a streamed input arrives with the start frame.
    pub(super) call: Option<Call>,
    pub(super) row: ContractRow,
    /// When it was accepted: an unstarted job expires (see `run::expire_unstarted`).
    pub(super) accepted_at: Instant,
    /// The job's place among the provider's jobs, held for as long as the job lives and given
    /// back when it is dropped (it ran, it was refused, or its consumer never started it).
    pub(super) _place: Place,
    /// Resolves once the contract is stored: the job does not run before. `None`: a job
    /// negotiated on its stream, whose contract is neither stored nor told yet (it is stored
    /// with the receipt when the job is quick, see `run::QUICK_JOB`).
    pub(super) stored: Option<tokio::sync::oneshot::Receiver<()>>,
    /// The job's hold on its lock while the contract lives (one lock funds one contract).
    pub(super) _funded: super::Funded,
}

impl PreparedJob {
    /// The log entries of the job's contract: its request and accept.
    pub(super) fn contract_events(&self) -> Vec<ProtocolEvent> {
        let job_id = Some(self.request.body().job_id);
        vec![
            ProtocolEvent::of(&self.request, job_id, vec![]),
            ProtocolEvent::of(&self.accept, job_id, vec![(self.request.hash(), "request")]),
        ]
    }
}

/// Why a request gets no contract.
pub(super) enum NoContract {
    /// Not a readable, fresh request of the peer that sent it (or this node is no provider):
    /// an unsigned refusal.
    Refused(RefusalReason, String),
    /// A request this provider will not take, with its signed reason (stored).
    Rejected(Box<Signed<ComputeReject>>),
}

/// Answers a `Compute` request: the signed contract (stored while the answer travels; the job
/// waits for its start frame), or a signed reject. `Compute` carries no lock: the request is
/// funded by one that reached this node before it (by `Pay`, or gossip).
pub(in crate::node) async fn on_request(shared: Arc<Shared>, peer: PeerId, bytes: Vec<u8>) -> RpcResponse {
    match negotiate(&shared, peer, &bytes, None).await {
        Ok(mut job) => {
            job.stored = Some(store_contract(&shared, &job));
            let accept = job.accept.bytes().to_vec();
            if let Some(provider) = shared.provider.get() {
                provider.wait_for_start(job);
            }
            RpcResponse::Accepted(accept)
        }
        Err(NoContract::Refused(reason, message)) => RpcResponse::refused(reason, message),
        Err(NoContract::Rejected(reject)) => RpcResponse::Rejected(reject.bytes().to_vec()),
    }
}

/// Checks a request (signed by the peer that sent it, fresh: a replay is rejected) and
/// evaluates it, then applies its `funding` (the consumer's `TOKEN_LOCK` of the offer); the
/// contract it answers is signed and not yet stored.
pub(super) async fn negotiate(
    shared: &Arc<Shared>,
    peer: PeerId,
    bytes: &[u8],
    funding: Option<&[u8]>,
) -> Result<PreparedJob, NoContract> {
    // Providing stopped (the manifest withdrawn) refuses new requests like never providing.
    let Some(provider) = shared.provider.get().filter(|_| shared.advert.current().is_some()) else {
        return Err(NoContract::Refused(
            RefusalReason::NotAProvider,
            "this node does not provide compute".into(),
        ));
    };
    let request = match Signed::<ComputeRequest>::decode(bytes).and_then(|r| r.verify_signature().map(|()| r))
    {
        Ok(request) if request.header().signer.peer_id() == peer => request,
        Ok(_) => {
            return Err(NoContract::Refused(
                RefusalReason::BadRequest,
                "a request must come from its signer".into(),
            ));
        }
        Err(e) => {
            return Err(NoContract::Refused(
                RefusalReason::BadRequest,
                format!("not a signed compute request: {e}"),
            ));
        }
    };
    let fresh = {
        let mut nonces = lock(&provider.nonces);
        let checked = request.verify_fresh(now_ms(), &mut nonces);
        if checked.is_ok() {
            nonces.record(request.header());
        }
        checked
    };
    if let Err(e) = fresh {
        return Err(reject(shared, &request, Decline::new(RejectReason::Invalid, e.to_string())).await);
    }
    match prepare(shared, provider, &request, funding).await {
        Ok(job) => Ok(job),
        Err(decline) => Err(reject(shared, &request, decline).await),
    }
}

/// Signs this node's `body` with a validity starting now.
pub(super) fn sign<T: EventBody>(shared: &Shared, body: T) -> Result<Signed<T>, NodeError> {
    Signed::sign(&shared.keypair, body, Validity::starting(now_ms(), MAX_LIFETIME_MS))
        .map_err(NodeError::Signing)
}

/// Signs and stores a reject.
pub(super) async fn reject(
    shared: &Shared,
    request: &Signed<ComputeRequest>,
    decline: Decline,
) -> NoContract {
    let Decline { reason, message } = decline;
    tracing::info!(job = %request.body().job_id, ?reason, "rejected a job: {message}");
    let body = ComputeReject { request: request.hash(), job_id: request.body().job_id, reason, message };
    match sign(shared, body) {
        Ok(reject) => {
            let job = Some(request.body().job_id);
            shared.journal.log(ProtocolEvent::of(&reject, job, vec![(request.hash(), "request")])).await;
            NoContract::Rejected(Box::new(reject))
        }
        Err(e) => NoContract::Refused(RefusalReason::Busy, e.to_string()),
    }
}

/// Evaluates, loads and type-checks; on success signs the contract (not yet stored) and takes
/// a place for the job.
async fn prepare(
    shared: &Arc<Shared>,
    provider: &Provider,
    request: &Signed<ComputeRequest>,
    funding: Option<&[u8]>,
) -> Result<PreparedJob, Decline> {
    let body = request.body();
    let (Some(genesis), Some(manifest)) = (shared.journal.genesis_id(), shared.advert.current()) else {
        return Err(Decline::new(
            RejectReason::Invalid,
            "this provider keeps no ledger, so it cannot be paid",
        ));
    };
    if body.genesis != genesis {
        shared.refusals.count(Refusal::OtherNetwork);
    }
    let policy = manifest.body().policy;
    let consumer = request.header().signer.peer_id();
    let evaluation = Evaluation {
        me: &shared.keypair.public(),
        genesis: &genesis,
        policy: &policy,
        in_flight: provider.jobs.held(),
        capacity: provider.jobs.total(),
        consumer_in_flight: provider.jobs.held_by(&consumer),
        per_consumer: provider.jobs.per_peer(),
        consumer_reputation: shared.reputation.of(&request.header().signer),
        min_reputation: provider.min_reputation(),
    };
    contract::evaluate(body, &evaluation)?;
    // Taken before the component is fetched or compiled, so a flood of requests holds no more
    // of that work than its places allow.
    let place = provider
        .job_place(consumer)
        .map_err(|full| Decline::new(RejectReason::Busy, format!("no job slot: {full}; try again later")))?;
    check_publisher(shared, provider, body)?;
    let funded = hold_funding(shared, provider, request)?;
    fund(shared, request, funding).await?;
    let (component, call) = load(shared, body).await?;
    let accept = ComputeAccept {
        request: request.hash(),
        job_id: body.job_id,
        consumer: request.header().signer,
        price_per_mfuel: policy.price_per_mfuel,
        base_fee: policy.base_fee,
        engine: shared.components.sandbox().fingerprint().id.clone(),
        pay_by_ms: now_ms().saturating_add(body.max_execution_ms).saturating_add(provider.pay_grace_ms),
    };
    let accept = sign(shared, accept).map_err(|e| Decline::new(RejectReason::Busy, e.to_string()))?;
    let row = ContractRow::accepted(Role::Provider, request, &accept);
    Ok(PreparedJob {
        request: request.clone(),
        accept,
        component,
        call,
        row,
        accepted_at: Instant::now(),
        _place: place,
        stored: None,
        _funded: funded,
    })
}

/// Stores a job's contract off the caller's path; the answer resolves once it is stored. The
/// accept may be told meanwhile: the job runs only once it is stored (see `run::execute`), so
/// a provider that stops in between never ran the job, owes nothing and is owed nothing.
fn store_contract(shared: &Arc<Shared>, job: &PreparedJob) -> tokio::sync::oneshot::Receiver<()> {
    let (stored_tx, stored) = tokio::sync::oneshot::channel();
    let records = crate::store::Records {
        events: job.contract_events(),
        rows: vec![job.row.clone()],
        ..Default::default()
    };
    let shared = shared.clone();
    tokio::spawn(async move {
        let _ = shared.journal.commit(records).await;
        let _ = stored_tx.send(());
    });
    stored
}

/// Applies the lock that funds `request` to this node's ledger (stored before anything runs):
/// the consumer's `TOKEN_LOCK` of at least the offer, for this job, to this provider. The
/// ledger refuses it when the consumer's balance as this node sees it — after the locks it
/// already holds open, for this provider or any other whose locks reached it — cannot cover it.
async fn fund(
    shared: &Shared,
    request: &Signed<ComputeRequest>,
    funding: Option<&[u8]>,
) -> Result<(), Decline> {
    let unfunded = |message: String| Decline::new(RejectReason::Unfunded, message);
    let Some(bytes) = funding else {
        return funded_before(shared, request).map_err(unfunded);
    };
    let signed = Signed::<Lock>::decode(bytes).map_err(|e| unfunded(format!("not a lock: {e}")))?;
    let (offer, body) = (request.body().offer, signed.body());
    if signed.header().signer != request.header().signer
        || body.to != shared.keypair.public()
        || body.job != request.body().job_id
        || body.amount < offer
    {
        return Err(unfunded(format!(
            "the lock does not fund this request: it must be the consumer's, for this provider and              job, of at least the offer {offer} (it locks {} for job {})",
            body.amount, body.job
        )));
    }
    let mut imported = shared.journal.import(bytes, false, Records::default()).await;
    // Entries of the consumer's chain this node has not seen (locks for other providers, say)
    // are asked of the consumer itself, once.
    if let Err(NodeError::Refused(SubmitError::Ledger(LedgerError::OutOfOrder { expected, .. }))) = imported {
        let consumer = signed.header().signer;
        if gossip::ledger::catch_up(shared, consumer.peer_id(), consumer, expected).await {
            imported = shared.journal.import(bytes, false, Records::default()).await;
        }
    }
    match imported {
        Ok(Imported::New(_)) => Ok(()),
        // Applied before (the same lock sent again): it funds the job only while still open.
        Ok(Imported::Known(_)) => {
            match shared.journal.reader().and_then(|r| Ok(r.open_lock(&signed.hash())?)) {
                Ok(Some(_)) => Ok(()),
                _ => Err(unfunded("the lock was released already".into())),
            }
        }
        Err(NodeError::Refused(SubmitError::Ledger(LedgerError::InsufficientBalance {
            balance,
            amount,
        }))) => Err(unfunded(format!(
            "the consumer cannot fund the offer: its balance here is {balance} (after its open \
                 locks), below the {amount} it locks; it must receive tokens first"
        ))),
        Err(NodeError::Refused(SubmitError::Ledger(LedgerError::OutOfOrder { expected, found }))) => {
            Err(unfunded(format!(
                "the lock is entry {found} of the consumer's chain, and this provider has its \
                 entries only up to {expected}: the ones between have not reached it yet; retry"
            )))
        }
        Err(e) => Err(unfunded(format!("the lock is refused: {e}"))),
    }
}

/// One lock funds one contract: a job with a contract of this consumer here already, or
/// another being negotiated or run now, is refused.
fn hold_funding(
    shared: &Shared,
    provider: &Provider,
    request: &Signed<ComputeRequest>,
) -> Result<super::Funded, Decline> {
    let taken =
        || Decline::new(RejectReason::Unfunded, "this job's lock funds another contract here already");
    let job = request.body().job_id;
    let funded = provider.hold_funding(job).ok_or_else(taken)?;
    let consumer = request.header().signer;
    let contracted = shared
        .journal
        .reader()
        .ok()
        .and_then(|r| r.contracts_of_job(&job).ok())
        .is_some_and(|rows| rows.iter().any(|row| row.role == Role::Provider && row.peer == consumer));
    if contracted { Err(taken()) } else { Ok(funded) }
}

/// A request that came without its lock (by `Compute`, say) is funded by a lock that reached
/// this node before it (sent by `Pay`, or gossiped): open, the consumer's, for this job and
/// this provider, of at least the offer.
fn funded_before(shared: &Shared, request: &Signed<ComputeRequest>) -> Result<(), String> {
    let me = shared.keypair.public();
    let found =
        shared.journal.reader().ok().and_then(|r| r.open_lock_for(&request.body().job_id, &me).ok()?);
    match found {
        Some((_, lock)) if lock.payer == request.header().signer && lock.amount >= request.body().offer => {
            Ok(())
        }
        Some((_, lock)) => Err(format!(
            "the open lock for this job does not fund this request (it is not the consumer's, or \
             locks {} below the offer {})",
            lock.amount,
            request.body().offer
        )),
        None => Err("no lock funds this request: this provider runs only offers funded by a \
                     TOKEN_LOCK (sent with the request, or before it)"
            .into()),
    }
}

/// With an allow-list, the component must be one an allowed publisher signed a manifest for
/// (the registry holds only manifests whose signatures checked).
fn check_publisher(shared: &Shared, provider: &Provider, request: &ComputeRequest) -> Result<(), Decline> {
    if provider.allowed_publishers.is_empty() {
        return Ok(());
    }
    let manifests = shared.components.registry().by_sha256(&request.component).unwrap_or_default();
    if manifests.iter().any(|m| provider.allowed_publishers.contains(&m.body().publisher.peer_id())) {
        Ok(())
    } else {
        Err(Decline::new(
            RejectReason::Component,
            "this provider runs only components of the publishers it allows",
        ))
    }
}

/// Fetches the component if needed, loads it in the sandbox and type-checks the call (a
/// streamed call: checks that its function exists; the arguments are checked when they come).
async fn load(
    shared: &Shared,
    request: &ComputeRequest,
) -> Result<(Arc<LoadedComponent>, Option<Call>), Decline> {
    let component_error = |e: &dyn std::fmt::Display| Decline::new(RejectReason::Component, e.to_string());
    // A component loaded now was verified and is here: neither is checked again.
    let loaded = match shared.components.loaded_now(&request.component) {
        Some(loaded) => loaded,
        None => {
            components::ensure_blob(shared, request.component, &mut |_, _| {}).await.map_err(
                |e| match e {
                    NodeError::Blob(full @ BlobError::StoreFull { .. }) => Decline::new(
                        RejectReason::Busy,
                        format!(
                            "this provider cannot take a new component now ({full}); try another provider"
                        ),
                    ),
                    e => component_error(&e),
                },
            )?;
            shared.components.load(request.component).await.map_err(|e| component_error(&e))?
        }
    };
    let bad_call = |e: crate::sandbox::JobError| Decline::new(RejectReason::BadCall, e.to_string());
    let call = match &request.input {
        JobInput::Inline(call) => Some(loaded.parse_call(call).map_err(bad_call)?),
        JobInput::Streamed { function, .. } => {
            loaded.export(function).map_err(bad_call)?;
            None
        }
    };
    Ok((loaded, call))
}
