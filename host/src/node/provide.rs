//! The provider's side of a contract: evaluate a `COMPUTE_REQUEST` against the policy, sign
//! the contract or a typed reject, run the job when its consumer starts the job stream,
//! deliver the outcome with a signed receipt, and watch for the payment.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc, watch};

use super::jobstream::{self, Frame, JOB_PROTOCOL, MAX_START_FRAME_BYTES, START_DEADLINE};
use super::{NodeError, Shared, components, ledger, now_ms};
use crate::contract::{self, ProviderView};
use crate::crypto::{Digest, PeerId};
use crate::net::{RefusalReason, RpcResponse, Stream};
use crate::protocol::{
    ComputeAccept, ComputeReject, ComputeRequest, DEFAULT_NONCE_CAPACITY, EventBody, JobInput,
    MAX_LIFETIME_MS, Receipt, RejectReason, RunOutcome, SeenNonces, Signed, Validity, Verdict,
};
use crate::sandbox::{Call, Invocation, JobEvent, Limits, LoadedComponent};
use crate::store::{ContractRow, ContractState, ProtocolEvent, Records, Role};

/// The default time after a job's limit in which its consumer must pay.
pub const DEFAULT_PAY_GRACE: Duration = Duration::from_secs(60);
/// How often delivered contracts are checked for their payment.
const PAYMENT_CHECK_EVERY: Duration = Duration::from_millis(250);
/// How long a job stream stays open after its outcome for the consumer's payment.
const PAY_ON_STREAM_WAIT: Duration = Duration::from_secs(15);
/// Job streams open at once.
const MAX_JOB_STREAMS: usize = 256;
/// How long a job stream stays open after a job paid on it, for the consumer's next job.
pub const IDLE_STREAM_WAIT: Duration = Duration::from_secs(10);
/// Payments settled at once off their answer's path; more wait for the watcher's sweep.
const MAX_SETTLING: usize = 256;
/// Job events buffered between the sandbox and the stream; progress beyond is skipped.
const EVENT_BUFFER: usize = 256;
/// A job negotiated on its stream that ends within this time has its contract stored with its
/// receipt (one commit) and told with its outcome; one still running by then has its contract
/// stored and told at that moment, so a provider that stops later reports it unfinished.
pub const QUICK_JOB: Duration = Duration::from_millis(50);

/// A deliberate misbehaviour, for testing that consumers catch it. Off unless asked for by
/// name (`cue node --provide --fault-injection overstate-fuel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FaultInjection {
    /// Sign receipts that claim 1000 fuel more than the run used (an overcharging provider).
    OverstateFuel,
}

/// An accepted job waiting for its consumer to start it.
struct PreparedJob {
    request: Signed<ComputeRequest>,
    accept: Signed<ComputeAccept>,
    component: Arc<LoadedComponent>,
    /// The type-checked call; `None` until a streamed input arrives with the start frame.
    call: Option<Call>,
    row: ContractRow,
    /// When it was accepted: an unstarted job expires [`START_DEADLINE`] × 2 later.
    accepted_at: Instant,
    /// Resolves once the contract is stored: the job does not run before. `None`: a job
    /// negotiated on its stream, whose contract is neither stored nor told yet (it is stored
    /// with the receipt when the job is quick, see [`QUICK_JOB`]).
    stored: Option<tokio::sync::oneshot::Receiver<()>>,
}

/// What a providing node keeps about its jobs.
pub(super) struct ProviderJobs {
    prepared: Mutex<HashMap<Digest, PreparedJob>>,
    in_flight: AtomicUsize,
    nonces: Mutex<SeenNonces>,
    pub(super) fault: Option<FaultInjection>,
    pub(super) min_reputation: f64,
    pay_grace_ms: u64,
    allowed_publishers: Vec<PeerId>,
    /// Contracts whose end (paid, defaulted) a task is storing now, so it is stored and
    /// attested once (at most the delivered contracts, each for one commit).
    concluding: Mutex<std::collections::HashSet<Digest>>,
    /// Places for payments being settled off their answer's path.
    settling: Arc<Semaphore>,
}

impl ProviderJobs {
    /// Claims a contract for concluding; `false` when another task holds it.
    fn claim(&self, contract: Digest) -> bool {
        self.concluding.lock().expect("concluding lock").insert(contract)
    }

    /// Gives a claimed contract back.
    fn release(&self, contract: &Digest) {
        self.concluding.lock().expect("concluding lock").remove(contract);
    }

    pub(super) fn new(settings: &super::ProviderSettings) -> ProviderJobs {
        ProviderJobs {
            prepared: Mutex::new(HashMap::new()),
            in_flight: AtomicUsize::new(0),
            nonces: Mutex::new(SeenNonces::new(DEFAULT_NONCE_CAPACITY)),
            fault: settings.fault,
            min_reputation: settings.min_reputation,
            pay_grace_ms: u64::try_from(settings.pay_grace.as_millis()).unwrap_or(u64::MAX),
            allowed_publishers: settings.allowed_publishers.clone(),
            concluding: Mutex::default(),
            settling: Arc::new(Semaphore::new(MAX_SETTLING)),
        }
    }
}

fn sign<T: EventBody>(shared: &Shared, body: T) -> Result<Signed<T>, NodeError> {
    Signed::sign(&shared.keypair, body, Validity::starting(now_ms(), MAX_LIFETIME_MS))
        .map_err(|e| NodeError::Store(format!("cannot sign: {e}")))
}

pub(super) async fn keep(shared: &Shared, event: ProtocolEvent) {
    let _ = store_all(shared, vec![event], Vec::new()).await;
}

pub(super) async fn save(shared: &Shared, row: ContractRow) {
    let _ = store_all(shared, Vec::new(), vec![row]).await;
}

/// Queues every event and row before waiting, so the writer commits them in one transaction
/// (one disk sync), and waits until they are durable; answers whether they are (a failure is
/// logged).
pub(super) async fn store_all(shared: &Shared, events: Vec<ProtocolEvent>, rows: Vec<ContractRow>) -> bool {
    store_records(shared, Records { events, rows, ..Records::default() }).await
}

/// Stores `records` in one transaction and waits until they are durable; answers whether they
/// are (a failure is logged).
pub(super) async fn store_records(shared: &Shared, records: Records) -> bool {
    let Some(store) = shared.ledger.clone() else { return false };
    let queued = super::ledger::queue(&store, move |store| store.store(records)).await;
    let stored = match queued {
        Ok(pending) => pending.done().await.is_ok(),
        Err(_) => false,
    };
    if !stored {
        tracing::error!("a contract event or row could not be stored");
    }
    stored
}

/// Why a request gets no contract.
enum NoContract {
    /// Not a readable, fresh request of the peer that sent it (or this node is no provider):
    /// an unsigned refusal.
    Refused(RefusalReason, String),
    /// A request this provider will not take, with its signed reason (stored).
    Rejected(Box<Signed<ComputeReject>>),
}

/// Answers a `Compute` request: the signed contract (stored while the answer travels; the job
/// waits for its start frame), or a signed reject.
pub(super) async fn on_request(shared: Arc<Shared>, peer: PeerId, bytes: Vec<u8>) -> RpcResponse {
    match negotiate(&shared, peer, &bytes).await {
        Ok(mut job) => {
            job.stored = Some(store_contract(&shared, &job));
            let accept = job.accept.bytes().to_vec();
            if let Some(jobs) = shared.provider_jobs.as_ref() {
                jobs.prepared.lock().expect("jobs lock").insert(job.accept.hash(), job);
            }
            RpcResponse::Accepted(accept)
        }
        Err(NoContract::Refused(reason, message)) => RpcResponse::refused(reason, message),
        Err(NoContract::Rejected(reject)) => RpcResponse::Rejected(reject.bytes().to_vec()),
    }
}

/// Checks a request (signed by the peer that sent it, fresh: a replay is rejected) and
/// evaluates it; the contract it answers is signed and not yet stored.
async fn negotiate(shared: &Arc<Shared>, peer: PeerId, bytes: &[u8]) -> Result<PreparedJob, NoContract> {
    let Some(jobs) = shared.provider_jobs.as_ref() else {
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
        let mut nonces = jobs.nonces.lock().expect("nonce lock");
        let checked = request.verify_fresh(now_ms(), &mut nonces);
        if checked.is_ok() {
            nonces.record(request.header());
        }
        checked
    };
    if let Err(e) = fresh {
        return Err(reject(shared, &request, RejectReason::Invalid, e.to_string()).await);
    }
    match prepare(shared, jobs, &request).await {
        Ok(job) => Ok(job),
        Err((reason, message)) => Err(reject(shared, &request, reason, message).await),
    }
}

/// Signs and stores a reject.
async fn reject(
    shared: &Shared,
    request: &Signed<ComputeRequest>,
    reason: RejectReason,
    message: String,
) -> NoContract {
    tracing::info!(job = %request.body().job_id, ?reason, "rejected a job: {message}");
    let body = ComputeReject { request: request.hash(), job_id: request.body().job_id, reason, message };
    match sign(shared, body) {
        Ok(reject) => {
            let job = Some(request.body().job_id);
            keep(shared, ProtocolEvent::of(&reject, job, vec![(request.hash(), "request")])).await;
            NoContract::Rejected(Box::new(reject))
        }
        Err(e) => NoContract::Refused(RefusalReason::Busy, e.to_string()),
    }
}

/// Evaluates, loads and type-checks; on success signs the contract (not yet stored) and takes
/// a place for the job.
async fn prepare(
    shared: &Arc<Shared>,
    jobs: &ProviderJobs,
    request: &Signed<ComputeRequest>,
) -> Result<PreparedJob, contract::Refusal> {
    let body = request.body();
    let (Some(store), Some(manifest)) =
        (shared.ledger.as_ref(), shared.manifest.read().ok().and_then(|m| m.clone()))
    else {
        return Err((RejectReason::Invalid, "this provider keeps no ledger, so it cannot be paid".into()));
    };
    let policy = manifest.body().policy;
    let capacity = policy.max_concurrent_jobs as usize * 2;
    let view = ProviderView {
        me: &shared.keypair.public(),
        genesis: &store.genesis().id(),
        policy: &policy,
        in_flight: jobs.in_flight.load(Ordering::SeqCst),
        capacity,
        consumer_reputation: shared.reputation_of(&request.header().signer),
        min_reputation: jobs.min_reputation,
    };
    contract::evaluate(body, &view)?;
    check_publisher(shared, jobs, body)?;
    let (component, call) = load(shared, body).await?;
    let accept = ComputeAccept {
        request: request.hash(),
        job_id: body.job_id,
        consumer: request.header().signer,
        price_per_mfuel: policy.price_per_mfuel,
        base_fee: policy.base_fee,
        engine: shared.sandbox.fingerprint().id.clone(),
        pay_by_ms: now_ms().saturating_add(body.max_execution_ms).saturating_add(jobs.pay_grace_ms),
    };
    let accept = sign(shared, accept).map_err(|e| (RejectReason::Busy, e.to_string()))?;
    let row = ContractRow {
        contract: accept.hash(),
        job: body.job_id,
        role: Role::Provider,
        peer: request.header().signer,
        state: ContractState::Accepted,
        request: request.hash(),
        receipt: None,
        payment: None,
        offer: body.offer,
        price: None,
        pay_by_ms: accept.body().pay_by_ms,
        created_ms: now_ms(),
        updated_ms: now_ms(),
        detail: None,
    };
    jobs.in_flight.fetch_add(1, Ordering::SeqCst);
    Ok(PreparedJob {
        request: request.clone(),
        accept,
        component,
        call,
        row,
        accepted_at: Instant::now(),
        stored: None,
    })
}

/// The log entries of a job's contract: its request and accept.
fn contract_events(job: &PreparedJob) -> Vec<ProtocolEvent> {
    let job_id = Some(job.request.body().job_id);
    vec![
        ProtocolEvent::of(&job.request, job_id, vec![]),
        ProtocolEvent::of(&job.accept, job_id, vec![(job.request.hash(), "request")]),
    ]
}

/// Stores a job's contract off the caller's path; the answer resolves once it is stored. The
/// accept may be told meanwhile: the job runs only once it is stored (see [`execute`]), so a
/// provider that stops in between never ran the job, owes nothing and is owed nothing.
fn store_contract(shared: &Arc<Shared>, job: &PreparedJob) -> tokio::sync::oneshot::Receiver<()> {
    let (stored_tx, stored) = tokio::sync::oneshot::channel();
    let (events, row, shared) = (contract_events(job), job.row.clone(), shared.clone());
    tokio::spawn(async move {
        store_all(&shared, events, vec![row]).await;
        let _ = stored_tx.send(());
    });
    stored
}

/// With an allow-list, the component must be one an allowed publisher signed a manifest for
/// (the registry holds only manifests whose signatures checked).
fn check_publisher(
    shared: &Shared,
    jobs: &ProviderJobs,
    request: &ComputeRequest,
) -> Result<(), contract::Refusal> {
    if jobs.allowed_publishers.is_empty() {
        return Ok(());
    }
    let manifests = shared.registry.by_sha256(&request.component).unwrap_or_default();
    let allowed = manifests.iter().any(|m| jobs.allowed_publishers.contains(&m.body().publisher.peer_id()));
    if allowed {
        Ok(())
    } else {
        Err((
            RejectReason::Component,
            "this provider runs only components of the publishers it allows".into(),
        ))
    }
}

/// Fetches the component if needed, loads it in the sandbox and type-checks the call (a
/// streamed call: checks that its function exists; the arguments are checked when they come).
async fn load(
    shared: &Shared,
    request: &ComputeRequest,
) -> Result<(Arc<LoadedComponent>, Option<Call>), contract::Refusal> {
    let component_error = |e: &dyn std::fmt::Display| (RejectReason::Component, e.to_string());
    // A component loaded now was verified and is here: neither is checked again.
    let loaded = match shared.loaded_now(&request.component) {
        Some(loaded) => loaded,
        None => {
            components::ensure_blob(shared, request.component, &mut |_, _| {})
                .await
                .map_err(|e| component_error(&e))?;
            shared.load(request.component).await.map_err(|e| component_error(&e))?
        }
    };
    let bad_call = |e: crate::sandbox::JobError| (RejectReason::BadCall, e.to_string());
    let call = match &request.input {
        JobInput::Inline(call) => Some(loaded.parse_call(call).map_err(bad_call)?),
        JobInput::Streamed { function, .. } => {
            loaded.export(function).map_err(bad_call)?;
            None
        }
    };
    Ok((loaded, call))
}

/// Contracts whose consumer never started the job free their slots and are recorded as failed.
async fn expire_unstarted(shared: &Shared) {
    let Some(jobs) = shared.provider_jobs.as_ref() else { return };
    let expired: Vec<PreparedJob> = {
        let mut prepared = jobs.prepared.lock().expect("jobs lock");
        let late: Vec<Digest> = prepared
            .iter()
            .filter(|(_, job)| job.accepted_at.elapsed() > START_DEADLINE * 2)
            .map(|(contract, _)| *contract)
            .collect();
        late.iter().filter_map(|contract| prepared.remove(contract)).collect()
    };
    for job in expired {
        jobs.in_flight.fetch_sub(1, Ordering::SeqCst);
        save(shared, failed(&job.row, "the consumer never started the job")).await;
    }
}

/// Serves `/cue-job/1.0.0` until shutdown.
pub(super) fn serve_jobs(
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) -> Result<impl Future<Output = ()>, NodeError> {
    let mut incoming = shared.client.accept(JOB_PROTOCOL)?;
    let streams = Arc::new(Semaphore::new(MAX_JOB_STREAMS));
    Ok(async move {
        loop {
            let Some((peer, stream)) = super::serve::next_stream(&mut incoming, &shutdown).await else {
                return;
            };
            let Ok(permit) = streams.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "too many job streams: one closed");
                continue;
            };
            let (shared, streams) = (shared.clone(), streams.clone());
            tokio::spawn(async move {
                if let Err(e) = run_stream(&shared, peer, stream, &streams).await {
                    tracing::info!(%peer, "job stream ended early: {e}");
                }
                drop(permit);
            });
        }
    })
}

/// Runs the jobs of one stream: the first, and after each job paid on it the next its consumer
/// sends, while at least half of the [`MAX_JOB_STREAMS`] places are free (idle streams never
/// crowd out new ones).
async fn run_stream(
    shared: &Arc<Shared>,
    peer: PeerId,
    mut stream: Stream,
    places: &Semaphore,
) -> Result<(), NodeError> {
    let broken = |e: jobstream::FrameError| NodeError::Invalid(e.to_string());
    let mut reused = false;
    loop {
        let wait = if reused { IDLE_STREAM_WAIT } else { START_DEADLINE };
        let first =
            match tokio::time::timeout(wait, jobstream::read_limited(&mut stream, MAX_START_FRAME_BYTES))
                .await
            {
                Ok(Ok(first)) => first,
                // A stream kept for another job that does not come, or that its consumer dropped.
                Err(_) | Ok(Err(jobstream::FrameError::Io(_))) if reused => break,
                Err(_) => return Err(NodeError::Invalid("no start frame in time".into())),
                Ok(Err(e)) => return Err(broken(e)),
            };
        if !run_job(shared, peer, &mut stream, first).await?
            || places.available_permits() < MAX_JOB_STREAMS / 2
        {
            break;
        }
        reused = true;
    }
    let _ = futures::AsyncWriteExt::close(&mut stream).await;
    Ok(())
}

/// Runs the job a stream's first frame (or the first after a paid job) asks for; answers
/// whether it was paid on the stream, which then stays open for the consumer's next job.
async fn run_job(
    shared: &Arc<Shared>,
    peer: PeerId,
    stream: &mut Stream,
    first: Frame,
) -> Result<bool, NodeError> {
    let jobs = shared.provider_jobs.as_ref().ok_or_else(|| NodeError::Invalid("not a provider".into()))?;
    let (mut job, input) = match first {
        Frame::Start { contract, input } => (contracted_job(jobs, peer, &contract)?, input),
        Frame::Request { request, input } => match requested_job(shared, peer, &request).await {
            Ok(job) => (job, input),
            Err(answer) => {
                let _ = jobstream::write(stream, &answer).await;
                let _ = futures::AsyncWriteExt::close(stream).await;
                return Err(NodeError::Invalid("no contract for the requested job".into()));
            }
        },
        _ => return Err(NodeError::Invalid("the first frame must be `request` or `start`".into())),
    };
    let result = match streamed_call(&job, input) {
        Ok(call) => {
            job.call = job.call.take().or(call);
            execute(shared, job, stream).await
        }
        Err(message) => Err(refuse_start(shared, job, stream, message).await),
    };
    jobs.in_flight.fetch_sub(1, Ordering::SeqCst);
    let delivered = result?;
    Ok(receive_payment(shared, stream, &delivered).await)
}

/// The job a `start` frame names, taken off the waiting list (only its consumer may start it).
fn contracted_job(jobs: &ProviderJobs, peer: PeerId, contract: &str) -> Result<PreparedJob, NodeError> {
    let contract = Digest::from_hex(contract).ok_or_else(|| NodeError::Invalid("bad contract id".into()))?;
    let mut prepared = jobs.prepared.lock().expect("jobs lock");
    match prepared.get(&contract) {
        Some(job) if job.request.header().signer.peer_id() == peer => {
            prepared.remove(&contract).ok_or_else(|| NodeError::NotFound("no such contract".into()))
        }
        Some(_) => Err(NodeError::Invalid("only the contract's consumer may start it".into())),
        None => Err(NodeError::NotFound("no such contract waiting to start".into())),
    }
}

/// The job a `request` frame asks for, with a contract signed and not yet stored; or the frame
/// that answers it when there is none (a signed reject, or a refusal).
async fn requested_job(shared: &Arc<Shared>, peer: PeerId, request: &str) -> Result<PreparedJob, Frame> {
    let bytes = hex::decode(request)
        .map_err(|e| Frame::Refused { message: format!("not a signed compute request: {e}") })?;
    negotiate(shared, peer, &bytes).await.map_err(|no| match no {
        NoContract::Refused(_, message) => Frame::Refused { message },
        NoContract::Rejected(reject) => Frame::Rejected { reject: hex::encode(reject.bytes()) },
    })
}

/// The call a streamed input carries, checked against what the request announced; `None` when
/// the call came inline (and `input` must then be absent).
fn streamed_call(job: &PreparedJob, input: Option<String>) -> Result<Option<Call>, String> {
    let announced = &job.request.body().input;
    match (announced, input) {
        (JobInput::Inline(_), None) => Ok(None),
        (JobInput::Inline(_), Some(_)) => {
            Err("the call came inline; the start frame must not carry one".into())
        }
        (JobInput::Streamed { .. }, None) => Err("the request announced a streamed call; none came".into()),
        (JobInput::Streamed { function, sha256, bytes }, Some(text)) => {
            if text.len() as u64 != *bytes || Digest::of(text.as_bytes()) != *sha256 {
                return Err(format!(
                    "the call sent ({} bytes) is not the one announced ({bytes} bytes, sha256 {sha256})",
                    text.len()
                ));
            }
            let call = job.component.parse_call(&text).map_err(|e| e.to_string())?;
            let expected = job.component.export(function).map_err(|e| e.to_string())?;
            if call.export_name() != expected.name {
                return Err(format!(
                    "the call is of `{}`, the request announced `{function}`",
                    call.export_name()
                ));
            }
            Ok(Some(call))
        }
    }
}

/// Tells the consumer the job will not run: a contract already told is recorded as failed;
/// one negotiated on this stream is rejected instead (nothing of it was stored or told).
/// Answers the error that ends the stream.
async fn refuse_start(
    shared: &Shared,
    mut job: PreparedJob,
    stream: &mut Stream,
    message: String,
) -> NodeError {
    tracing::info!(job = %job.request.body().job_id, "refused to start a job: {message}");
    let Some(stored) = job.stored.take() else {
        if let NoContract::Rejected(reject) =
            reject(shared, &job.request, RejectReason::BadCall, message.clone()).await
        {
            let _ = jobstream::write(stream, &Frame::Rejected { reject: hex::encode(reject.bytes()) }).await;
        }
        let _ = futures::AsyncWriteExt::close(stream).await;
        return NodeError::Invalid(message);
    };
    // After the contract itself is stored, so the failure is its last word.
    let _ = stored.await;
    save(shared, failed(&job.row, &message)).await;
    let _ = jobstream::write(stream, &Frame::Refused { message: message.clone() }).await;
    let _ = futures::AsyncWriteExt::close(stream).await;
    NodeError::Invalid(message)
}

/// Runs the job, streaming its events, then signs, stores and sends the receipt. A contract not
/// yet stored (negotiated on this stream) is stored with the receipt and told with the outcome
/// when the job ends within [`QUICK_JOB`]; otherwise it is stored and told at that moment.
/// Answers the contract's row as stored, delivered.
async fn execute(
    shared: &Arc<Shared>,
    mut job: PreparedJob,
    stream: &mut Stream,
) -> Result<ContractRow, NodeError> {
    let broken = |e: jobstream::FrameError| NodeError::Invalid(e.to_string());
    let body = job.request.body();
    let limits = Limits {
        fuel: body.max_fuel,
        timeout: Duration::from_millis(body.max_execution_ms),
        memory_bytes: body.max_memory_bytes,
        ..Limits::default()
    };
    let (events, mut received) = mpsc::channel::<JobEvent>(EVENT_BUFFER);
    let sink: crate::sandbox::EventSink = Arc::new(move |event| {
        let _ = events.try_send(event);
    });
    let call = job.call.clone().ok_or_else(|| NodeError::Invalid("the job has no call".into()))?;
    let component = job.component.clone();
    let told = match job.stored.take() {
        Some(stored) => {
            let _ = stored.await;
            true
        }
        None => false,
    };
    let started = Instant::now();
    let run = tokio::task::spawn_blocking(move || {
        component.invoke(&call, &limits, &Invocation { seed: None, events: Some(sink) })
    });
    let mut quick_until = (!told).then(|| tokio::time::Instant::now() + QUICK_JOB);
    loop {
        let event = match quick_until {
            Some(until) => tokio::select! {
                event = received.recv() => event,
                () = tokio::time::sleep_until(until) => {
                    // Not a quick job: its contract is stored and told now, as a negotiated one.
                    quick_until = None;
                    if !store_all(shared, contract_events(&job), vec![job.row.clone()]).await {
                        return Err(NodeError::Store("the contract could not be stored".into()));
                    }
                    let contract = Frame::Contract { accept: hex::encode(job.accept.bytes()) };
                    jobstream::write(stream, &contract).await.map_err(broken)?;
                    continue;
                }
            },
            None => received.recv().await,
        };
        let Some(event) = event else { break };
        if let Err(e) = jobstream::write(stream, &Frame::Event(event)).await {
            // The consumer is gone mid-run: a contract already told ends failed (nothing is
            // owed); one not told yet was never made.
            if quick_until.is_none() {
                save(shared, failed(&job.row, "the consumer's job stream broke during the run")).await;
            }
            return Err(broken(e));
        }
    }
    let outcome = run.await.map_err(|e| NodeError::Store(format!("job task: {e}")))?;
    let wall_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let mut fuel_used = outcome.fuel_used;
    if shared.provider_jobs.as_ref().and_then(|j| j.fault) == Some(FaultInjection::OverstateFuel) {
        fuel_used += 1_000;
    }
    let (run_outcome, output) = match &outcome.result {
        Ok(output) => (RunOutcome::Output(Digest::of(output.wave.as_bytes())), Some(output.wave.clone())),
        Err(e) => (RunOutcome::Failed { kind: e.kind.to_string(), message: e.message.clone() }, None),
    };
    let receipt = Receipt {
        contract: job.accept.hash(),
        job_id: body.job_id,
        component: body.component,
        input: body.input_hash(),
        outcome: run_outcome,
        fuel_used,
        wall_us,
        engine: shared.sandbox.fingerprint().id.clone(),
    };
    let receipt = sign(shared, receipt)?;
    let price = job.accept.body().price(fuel_used, body.offer);
    // A contract still untold is stored with its receipt, in one commit.
    let told = quick_until.is_none();
    let mut events = if told { Vec::new() } else { contract_events(&job) };
    events.push(ProtocolEvent::of(&receipt, Some(body.job_id), vec![(job.accept.hash(), "contract")]));
    let delivered = ContractRow {
        state: ContractState::Delivered,
        receipt: Some(receipt.hash()),
        price: Some(price),
        updated_ms: now_ms(),
        detail: outcome.result.as_ref().err().map(|e| e.to_string()),
        ..job.row.clone()
    };
    if !store_all(shared, events, vec![delivered.clone()]).await {
        return Err(NodeError::Store("the receipt could not be stored".into()));
    }
    let receipt = hex::encode(receipt.bytes());
    let frame = if told {
        Frame::Outcome { receipt, output }
    } else {
        Frame::Delivered { accept: hex::encode(job.accept.bytes()), receipt, output }
    };
    if let Err(e) = jobstream::write(stream, &frame).await {
        // A contract that could not be told at all binds nobody: its consumer never saw it,
        // so it is not left to default.
        if !told {
            save(shared, failed(&job.row, "the consumer was gone before the contract reached it")).await;
        }
        return Err(broken(e));
    }
    Ok(delivered)
}

/// A contract's row, ended as failed (nothing is owed either way).
fn failed(row: &ContractRow, why: &str) -> ContractRow {
    ContractRow {
        state: ContractState::Failed,
        updated_ms: now_ms(),
        detail: Some(why.into()),
        ..row.clone()
    }
}

/// After the outcome: the consumer may pay on the same stream (saving a request), within
/// [`PAY_ON_STREAM_WAIT`]; a payment that does not come here comes by `Pay` or by gossip.
/// Answers whether it was paid here. `delivered` is the contract the stream just delivered.
async fn receive_payment(shared: &Arc<Shared>, stream: &mut Stream, delivered: &ContractRow) -> bool {
    let Ok(Ok(Frame::Pay { transfer })) =
        tokio::time::timeout(PAY_ON_STREAM_WAIT, jobstream::read(stream)).await
    else {
        return false;
    };
    let answer = match hex::decode(&transfer) {
        Ok(bytes) => match take_payment(shared.clone(), bytes, Some(delivered)).await {
            Ok(()) => Frame::Paid,
            Err(message) => Frame::Refused { message },
        },
        Err(e) => Frame::Refused { message: format!("the transfer is not hex: {e}") },
    };
    let paid = answer == Frame::Paid;
    jobstream::write(stream, &answer).await.is_ok() && paid
}

/// Answers a `Pay` request (see [`take_payment`]).
pub(super) async fn on_payment(shared: Arc<Shared>, bytes: Vec<u8>) -> RpcResponse {
    match take_payment(shared, bytes, None).await {
        Ok(()) => RpcResponse::Paid,
        Err(message) => RpcResponse::refused(RefusalReason::BadRequest, message),
    }
}

/// A payment told directly (by `Pay` or on the job stream): the transfer is verified and
/// stored (ledger rules applied) before the answer. When it settles a delivered contract of
/// this node, the paid contract and this node's `completed` attestation are stored in the same
/// commit; otherwise (a payment for something else, a contract another task is concluding)
/// the contract is settled off the answer's path. The payer gossips the entry itself.
/// `delivered`: the contract the payment is expected for (its row need not be looked up).
async fn take_payment(
    shared: Arc<Shared>,
    bytes: Vec<u8>,
    delivered: Option<&ContractRow>,
) -> Result<(), String> {
    let settling = Settling::claim(&shared, &bytes, delivered);
    let then = settling.as_ref().map(Settling::records).unwrap_or_default();
    let imported = ledger::import_with(&shared, bytes.clone(), false, then).await;
    let settled = matches!(imported, Ok(ledger::Imported::New(_))) && settling.is_some();
    if let Some(settling) = settling {
        if let Some(jobs) = shared.provider_jobs.as_ref() {
            jobs.release(&settling.row.contract);
        }
        if settled {
            tracing::info!(contract = %settling.row.contract, state = "paid", "contract settled");
            super::reputation::owed_stored(&shared, &settling.verdict);
        }
    }
    if let Err(e) = imported {
        return Err(format!("payment refused: {e}"));
    }
    if settled {
        return Ok(());
    }
    // Bounded: without a free place the watcher's next sweep settles it (within 250 ms).
    let place = shared.provider_jobs.as_ref().and_then(|jobs| jobs.settling.clone().try_acquire_owned().ok());
    if let Some(place) = place {
        tokio::spawn(async move {
            if let Ok(crate::protocol::Event::Transfer(transfer)) = crate::protocol::Event::decode(&bytes) {
                settle_payment(&shared, &transfer).await;
            }
            drop(place);
        });
    }
    Ok(())
}

/// A delivered contract a payment settles, claimed (in [`ProviderJobs::concluding`]) so no
/// other task concludes it meanwhile, with its paid row and this node's verdict (owed: signed
/// later in a set).
struct Settling {
    row: ContractRow,
    verdict: crate::protocol::OutcomeAttestation,
}

impl Settling {
    /// The contract `bytes` (a transfer, not yet verified: what is claimed is only stored if
    /// the transfer is accepted) pays for, if it is this provider's, still delivered, and
    /// covered, and no other task is concluding it. `delivered`, when it is the contract the
    /// transfer names, saves looking it up by its receipt.
    fn claim(shared: &Shared, bytes: &[u8], delivered: Option<&ContractRow>) -> Option<Settling> {
        let (jobs, store) = (shared.provider_jobs.as_ref()?, shared.ledger.as_ref()?);
        let crate::protocol::Event::Transfer(transfer) = crate::protocol::Event::decode(bytes).ok()? else {
            return None;
        };
        let crate::protocol::PaymentReference::Receipt(receipt) = transfer.body().reference? else {
            return None;
        };
        let reader = store.reader().ok()?;
        let row = match delivered.filter(|row| row.receipt == Some(receipt)) {
            Some(row) => row.clone(),
            None => reader.contract_with_receipt(Role::Provider, &receipt).ok()??,
        };
        if !covers(shared, &transfer, &row) || !jobs.claim(row.contract) {
            return None;
        }
        // Read again once claimed: a task that concluded it just before is seen here.
        let delivered = reader
            .contract(&row.contract)
            .ok()
            .flatten()
            .is_some_and(|c| c.state == ContractState::Delivered);
        if !delivered {
            jobs.release(&row.contract);
            return None;
        }
        let verdict = super::reputation::owe(row.contract, row.peer, Verdict::Completed, Vec::new());
        let row = ContractRow {
            state: ContractState::Paid,
            payment: Some(transfer.hash()),
            updated_ms: now_ms(),
            ..row
        };
        Some(Settling { row, verdict })
    }

    /// What is stored with the transfer.
    fn records(&self) -> Records {
        Records {
            rows: vec![self.row.clone()],
            owe: vec![self.verdict.to_body_bytes()],
            ..Records::default()
        }
    }
}

/// Whether a transfer pays a contract: from its consumer, to this node, at least its price.
fn covers(shared: &Shared, transfer: &Signed<crate::protocol::Transfer>, row: &ContractRow) -> bool {
    transfer.header().signer == row.peer
        && transfer.body().to == shared.keypair.public()
        && transfer.body().amount >= row.price.unwrap_or(0)
}

/// Marks the contract a stored transfer pays for as paid, if the transfer is from its consumer,
/// to this node, and covers the price.
async fn settle_payment(shared: &Shared, transfer: &Signed<crate::protocol::Transfer>) {
    let Some(store) = shared.ledger.as_ref() else { return };
    let Some(crate::protocol::PaymentReference::Receipt(receipt)) = transfer.body().reference else { return };
    let row = store.reader().and_then(|r| r.contract_with_receipt(Role::Provider, &receipt));
    let Ok(Some(row)) = row else { return };
    if covers(shared, transfer, &row) {
        let paid = ContractRow {
            state: ContractState::Paid,
            payment: Some(transfer.hash()),
            updated_ms: now_ms(),
            ..row
        };
        conclude(shared, paid).await;
    }
}

/// Stores a delivered contract's end (paid or defaulted) and attests it — once: a contract
/// another task is concluding, or that is no longer delivered, is left alone.
async fn conclude(shared: &Shared, row: ContractRow) {
    let Some(jobs) = shared.provider_jobs.as_ref() else { return };
    let Some(store) = shared.ledger.as_ref() else { return };
    let id = row.contract;
    if !jobs.claim(id) {
        return;
    }
    let current = store.reader().and_then(|r| r.contract(&row.contract)).ok().flatten();
    if current.is_some_and(|c| c.state == ContractState::Delivered) {
        tracing::info!(contract = %row.contract, state = row.state.name(), "contract settled");
        let (contract, consumer, state) = (row.contract, row.peer, row.state);
        let verdict = if state == ContractState::Paid { Verdict::Completed } else { Verdict::Default };
        let with = Records::rows(vec![row]);
        super::reputation::attest(shared, contract, consumer, verdict, Vec::new(), with).await;
    }
    jobs.release(&id);
}

/// Marks delivered contracts paid when a transfer from the consumer referencing the receipt
/// covers the price (a payment that came by gossip), or defaulted when the deadline passed.
pub(super) async fn settle(shared: &Shared) {
    let Some(store) = shared.ledger.clone() else { return };
    let me = shared.keypair.public();
    let now = now_ms();
    let updates = tokio::task::spawn_blocking(move || -> Result<Vec<ContractRow>, crate::store::StoreError> {
        let reader = store.reader()?;
        let mut updates = Vec::new();
        for row in reader.contracts_in(Role::Provider, ContractState::Delivered, 1024)? {
            let Some(receipt) = row.receipt else { continue };
            let paid = reader.events_linking_to(&receipt)?.into_iter().find(|hash| {
                let Ok(Some(bytes)) = reader.event_bytes(hash) else { return false };
                matches!(crate::protocol::Event::decode(&bytes), Ok(crate::protocol::Event::Transfer(t))
                    if t.header().signer == row.peer && t.body().to == me && t.body().amount >= row.price.unwrap_or(0))
            });
            match paid {
                Some(payment) => updates.push(ContractRow {
                    state: ContractState::Paid,
                    payment: Some(payment),
                    updated_ms: now,
                    ..row
                }),
                None if now > row.pay_by_ms => updates.push(ContractRow {
                    state: ContractState::Defaulted,
                    updated_ms: now,
                    detail: Some("the consumer did not pay by the deadline".into()),
                    ..row
                }),
                None => {}
            }
        }
        Ok(updates)
    })
    .await;
    for row in updates.ok().and_then(Result::ok).unwrap_or_default() {
        conclude(shared, row).await;
    }
}

/// Until shutdown: checks delivered contracts for payment (by gossip) and deadlines, and
/// expires contracts whose job was never started.
pub(super) async fn watch_payments(shared: Arc<Shared>, shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = super::wait_for(shutdown.clone()) => return,
            () = tokio::time::sleep(PAYMENT_CHECK_EVERY) => {
                expire_unstarted(&shared).await;
                settle(&shared).await;
            }
        }
    }
}

/// At start: contracts this provider accepted but never finished (it stopped mid-job) are
/// recorded as failed; answers how many.
pub(super) async fn fail_unfinished(shared: &Shared) -> usize {
    let Some(store) = shared.ledger.clone() else { return 0 };
    let rows = tokio::task::spawn_blocking(move || {
        store.reader()?.contracts_in(Role::Provider, ContractState::Accepted, 10_000)
    })
    .await
    .ok()
    .and_then(Result::ok)
    .unwrap_or_default();
    let count = rows.len();
    for row in rows {
        tracing::warn!(contract = %row.contract, "this provider stopped before finishing the job: recorded as failed");
        save(shared, failed(&row, "the provider restarted before the job finished")).await;
    }
    count
}
