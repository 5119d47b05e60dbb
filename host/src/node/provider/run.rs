//! The job stream on the provider's side (`/cue-job/1.0.0`, frames in `node/jobstream.rs`):
//! the consumer's first frame is read here — a `start` for a contract made by `Compute`, or a
//! `request` negotiated on the stream itself — the job runs in the sandbox with its events
//! streamed, and its receipt is signed, stored and delivered. A stream paid on stays open for
//! the same consumer's next job.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};

use super::super::jobstream::{self, Frame, FrameError, JOB_PROTOCOL, MAX_START_FRAME_BYTES, START_DEADLINE};
use super::super::quota::Places;
use super::super::{CrashPoint, FaultInjection, NodeError, Shared, lock, next_stream};
use super::negotiate::{self, NoContract, PreparedJob};
use super::{Provider, UNSTARTED_DEADLINE, payment};
use crate::contract::Decline;
use crate::crypto::{Digest, PeerId};
use crate::net::{Refusal, Stream};
use crate::protocol::{JobInput, Receipt, RejectReason, RunOutcome, Signed};
use crate::sandbox::{Call, Cancel, Invocation, JobEvent, Limits, Outcome};
use crate::store::{ContractRow, ContractState, ProtocolEvent, Records};

/// Job streams open at once; more are closed at once.
const MAX_JOB_STREAMS: usize = 256;
/// How long a job stream stays open after a job paid on it, for the consumer's next job.
pub(in crate::node) const IDLE_STREAM_WAIT: Duration = Duration::from_secs(10);
/// Job events buffered between the sandbox and the stream; progress beyond is skipped.
const EVENT_BUFFER: usize = 256;
/// A job negotiated on its stream that ends within this time has its contract stored with its
/// receipt (one commit) and told with its outcome; one still running by then has its contract
/// stored and told at that moment, so a provider that stops later reports it unfinished.
const QUICK_JOB: Duration = Duration::from_millis(50);

/// Serves `/cue-job/1.0.0` until shutdown: at most [`MAX_JOB_STREAMS`] streams at once, one
/// consumer holding at most its share (`quota::share_of`); a stream beyond is closed at once.
pub(in crate::node) fn serve_jobs(
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) -> Result<impl Future<Output = ()>, NodeError> {
    let mut incoming = shared.client.accept(JOB_PROTOCOL)?;
    let streams = Places::shared(MAX_JOB_STREAMS);
    Ok(async move {
        while let Some((peer, stream)) = next_stream(&mut incoming, &shutdown).await {
            let place = match streams.take(peer) {
                Ok(place) => place,
                Err(full) => {
                    shared.refusals.count(Refusal::Overload);
                    tracing::warn!(%peer, "job stream closed: {full}");
                    continue;
                }
            };
            let (shared, streams) = (shared.clone(), streams.clone());
            tokio::spawn(async move {
                if let Err(e) = run_stream(&shared, peer, stream, &streams).await {
                    tracing::info!(%peer, "job stream ended early: {e}");
                }
                drop(place);
            });
        }
    })
}

/// Contracts whose consumer never started the job within [`UNSTARTED_DEADLINE`] give their
/// places back (the job holds it) and are recorded as failed.
pub(super) async fn expire_unstarted(shared: &Shared) {
    let Some(provider) = shared.provider.get() else { return };
    for job in provider.take_unstarted(UNSTARTED_DEADLINE) {
        let failed = job.row.ended(ContractState::Failed, "the consumer never started the job");
        shared.journal.update(failed).await;
    }
}

/// Runs the jobs of one stream: the first, and after each job paid on it the next its consumer
/// sends, while at least half of the [`MAX_JOB_STREAMS`] places are free (idle streams never
/// crowd out new ones).
async fn run_stream(
    shared: &Arc<Shared>,
    peer: PeerId,
    mut stream: Stream,
    places: &Places,
) -> Result<(), NodeError> {
    let mut reused = false;
    loop {
        let wait = if reused { IDLE_STREAM_WAIT } else { START_DEADLINE };
        let first =
            match tokio::time::timeout(wait, jobstream::read_limited(&mut stream, MAX_START_FRAME_BYTES))
                .await
            {
                Ok(Ok(first)) => first,
                // A stream kept for another job that does not come, or that its consumer dropped.
                Err(_) | Ok(Err(FrameError::Io(_))) if reused => break,
                Err(_) => return Err(NodeError::Invalid("no start frame in time".into())),
                Ok(Err(e)) => return Err(broken(e)),
            };
        if !run_job(shared, peer, &mut stream, first).await? || places.held() > MAX_JOB_STREAMS / 2 {
            break;
        }
        reused = true;
    }
    let _ = futures::AsyncWriteExt::close(&mut stream).await;
    Ok(())
}

/// A job stream that broke or sent what this protocol does not allow.
fn broken(e: FrameError) -> NodeError {
    NodeError::Invalid(e.to_string())
}

/// Runs the job a stream's first frame (or the first after a paid job) asks for; answers
/// whether it was paid on the stream, which then stays open for the consumer's next job.
async fn run_job(
    shared: &Arc<Shared>,
    peer: PeerId,
    stream: &mut Stream,
    first: Frame,
) -> Result<bool, NodeError> {
    let provider = shared.provider.get().ok_or_else(|| NodeError::Invalid("not a provider".into()))?;
    let (mut job, input) = match first {
        Frame::Start { contract, input } => (contracted_job(provider, peer, &contract)?, input),
        Frame::Request { request, input, lock } => match requested_job(shared, peer, &request, lock).await {
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
    let delivered = result?;
    Ok(payment::receive_on_stream(shared, stream, &delivered).await)
}

/// The job a `start` frame names, taken off the waiting list (only its consumer may start it).
fn contracted_job(provider: &Provider, peer: PeerId, contract: &str) -> Result<PreparedJob, NodeError> {
    let contract = Digest::from_hex(contract).ok_or_else(|| NodeError::Invalid("bad contract id".into()))?;
    let mut prepared = lock(&provider.prepared);
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
async fn requested_job(
    shared: &Arc<Shared>,
    peer: PeerId,
    request: &str,
    lock: Option<String>,
) -> Result<PreparedJob, Frame> {
    let bytes = hex::decode(request)
        .map_err(|e| Frame::Refused { message: format!("not a signed compute request: {e}") })?;
    // A lock that is not hex is no lock: the request is rejected `unfunded`, signed.
    let lock = lock.and_then(|lock| hex::decode(lock).ok());
    negotiate::negotiate(shared, peer, &bytes, lock.as_deref()).await.map_err(|no| match no {
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
        let decline = Decline::new(RejectReason::BadCall, message.clone());
        if let NoContract::Rejected(reject) = negotiate::reject(shared, &job.request, decline).await {
            let _ = jobstream::write(stream, &Frame::Rejected { reject: hex::encode(reject.bytes()) }).await;
        }
        let _ = futures::AsyncWriteExt::close(stream).await;
        return NodeError::Invalid(message);
    };
    // After the contract itself is stored, so the failure is its last word.
    let _ = stored.await;
    shared.journal.update(job.row.ended(ContractState::Failed, &message)).await;
    let _ = jobstream::write(stream, &Frame::Refused { message: message.clone() }).await;
    let _ = futures::AsyncWriteExt::close(stream).await;
    NodeError::Invalid(message)
}

/// Runs the job, streaming its events, then signs, stores and sends the receipt. A contract not
/// yet stored (negotiated on this stream) is stored with the receipt and told with the outcome
/// when the job ends within [`QUICK_JOB`]; otherwise it is stored and told at that moment.
/// The run waits for one of the provider's run permits; a consumer gone mid-run stops it, and
/// this returns only once the run has ended, so the job's place is free only when its run is.
/// Answers the contract's row as stored, delivered.
async fn execute(
    shared: &Arc<Shared>,
    mut job: PreparedJob,
    stream: &mut Stream,
) -> Result<ContractRow, NodeError> {
    let told = match job.stored.take() {
        Some(stored) => {
            let _ = stored.await;
            true
        }
        None => false,
    };
    let provider = shared.provider.get().ok_or_else(|| NodeError::Invalid("not a provider".into()))?;
    let permit =
        provider.runs.clone().acquire_owned().await.map_err(|_| NodeError::Invalid("stopping".into()))?;
    let started = Instant::now();
    let (running, events) = Running::start(&job, permit)?;
    let told = match forward_events(shared, &job, stream, events, told).await {
        Ok(told) => told,
        Err(e) => {
            running.stop().await;
            return Err(e);
        }
    };
    let outcome = running.outcome.await.map_err(|e| NodeError::task("job", e))?;
    let wall_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    deliver(shared, &job, stream, &outcome, wall_us, told).await
}

/// A job running in the sandbox on a blocking thread.
struct Running {
    /// Its outcome, once it ends.
    outcome: tokio::task::JoinHandle<Outcome>,
    /// Stops it at the next epoch tick.
    cancel: Cancel,
}

impl Running {
    /// Starts the run, which holds `permit` until it ends; answers it and the job's events (at
    /// most [`EVENT_BUFFER`] wait; progress beyond is skipped).
    fn start(
        job: &PreparedJob,
        permit: OwnedSemaphorePermit,
    ) -> Result<(Running, mpsc::Receiver<JobEvent>), NodeError> {
        let body = job.request.body();
        let limits = Limits {
            fuel: body.max_fuel,
            timeout: Duration::from_millis(body.max_execution_ms),
            memory_bytes: body.max_memory_bytes,
            ..Limits::default()
        };
        let (events, received) = mpsc::channel::<JobEvent>(EVENT_BUFFER);
        let sink: crate::sandbox::EventSink = Arc::new(move |event| {
            let _ = events.try_send(event);
        });
        let call = job.call.clone().ok_or_else(|| NodeError::Invalid("the job has no call".into()))?;
        let component = job.component.clone();
        let cancel = Cancel::default();
        let invocation = Invocation { seed: None, events: Some(sink), cancel: Some(cancel.clone()) };
        let outcome = tokio::task::spawn_blocking(move || {
            let outcome = component.invoke(&call, &limits, &invocation);
            drop(permit);
            outcome
        });
        Ok((Running { outcome, cancel }, received))
    }

    /// Stops the run and waits until it has ended (its contract ended: nobody will read it).
    async fn stop(self) {
        self.cancel.cancel();
        let _ = self.outcome.await;
    }
}

/// Resolves when the consumer does anything on the stream during the run — sends bytes, closes
/// it, resets it — none of which an honest consumer does before the outcome.
async fn consumer_left(stream: &mut Stream) {
    let mut byte = [0u8; 1];
    let _ = futures::AsyncReadExt::read(stream, &mut byte).await;
}

/// Streams the job's events until the run ends. A contract not told yet (`told` false) is
/// stored and told once the run outlives [`QUICK_JOB`]. Answers whether the contract has been
/// told by the end. A consumer gone mid-run (its stream reset, closed, stalled or written to)
/// ends a told contract failed (nothing is owed); one not told yet was never made.
async fn forward_events(
    shared: &Shared,
    job: &PreparedJob,
    stream: &mut Stream,
    mut events: mpsc::Receiver<JobEvent>,
    mut told: bool,
) -> Result<bool, NodeError> {
    let quick_until = tokio::time::Instant::now() + QUICK_JOB;
    let gone = loop {
        let event = tokio::select! {
            event = events.recv() => event,
            () = tokio::time::sleep_until(quick_until), if !told => {
                tell_contract(shared, job, stream).await?;
                told = true;
                continue;
            }
            () = consumer_left(stream) => break "the consumer left its job stream during the run",
        };
        let Some(event) = event else { return Ok(told) };
        if jobstream::write(stream, &Frame::Event(event)).await.is_err() {
            break "the consumer's job stream broke during the run";
        }
    };
    if told {
        shared.journal.update(job.row.ended(ContractState::Failed, gone)).await;
    }
    Err(NodeError::Invalid(gone.into()))
}

/// Not a quick job: its contract is stored and told now, as a negotiated one.
async fn tell_contract(shared: &Shared, job: &PreparedJob, stream: &mut Stream) -> Result<(), NodeError> {
    let records =
        Records { events: job.contract_events(), rows: vec![job.row.clone()], ..Records::default() };
    shared.journal.commit(records).await?;
    let contract = Frame::Contract { accept: hex::encode(job.accept.bytes()) };
    jobstream::write(stream, &contract).await.map_err(broken)
}

/// The signed receipt of a run (with the fault injected, when one is asked for) and its output.
fn receipt(
    shared: &Shared,
    job: &PreparedJob,
    outcome: &Outcome,
    wall_us: u64,
) -> Result<(Signed<Receipt>, Option<String>), NodeError> {
    let body = job.request.body();
    let fault = shared.provider.get().and_then(|p| p.fault);
    let mut fuel_used = outcome.fuel_used;
    if fault == Some(FaultInjection::OverstateFuel) {
        fuel_used += 1_000;
    }
    let (mut run_outcome, mut output) = match &outcome.result {
        Ok(output) => (RunOutcome::Output(Digest::of(output.wave.as_bytes())), Some(output.wave.clone())),
        Err(e) => (RunOutcome::Failed { kind: e.kind.to_string(), message: e.message.clone() }, None),
    };
    if fault == Some(FaultInjection::FailAtMaxFuel) {
        run_outcome = RunOutcome::Failed { kind: "trap".into(), message: "a failure made up".into() };
        (output, fuel_used) = (None, body.max_fuel);
    }
    let receipt = Receipt {
        contract: job.accept.hash(),
        job_id: body.job_id,
        component: body.component,
        input: body.input_hash(),
        outcome: run_outcome,
        fuel_used,
        wall_us,
        engine: shared.components.sandbox().fingerprint().id.clone(),
    };
    Ok((negotiate::sign(shared, receipt)?, output))
}

/// Signs the receipt, stores it with the delivered contract (and the contract itself when it
/// was not told: one commit), and sends the outcome. A contract that could not be told at all
/// binds nobody: its consumer never saw it, so it is not left to default.
async fn deliver(
    shared: &Shared,
    job: &PreparedJob,
    stream: &mut Stream,
    outcome: &Outcome,
    wall_us: u64,
    told: bool,
) -> Result<ContractRow, NodeError> {
    let (receipt, output) = receipt(shared, job, outcome, wall_us)?;
    let body = job.request.body();
    let price = job.accept.body().price(receipt.body().fuel_used, body.offer);
    let mut events = if told { Vec::new() } else { job.contract_events() };
    events.push(ProtocolEvent::of(&receipt, Some(body.job_id), vec![(job.accept.hash(), "contract")]));
    let detail = outcome.result.as_ref().err().map(|e| e.to_string());
    let delivered = job.row.delivered(receipt.hash(), price, detail);
    shared.journal.commit(Records { events, rows: vec![delivered.clone()], ..Records::default() }).await?;
    shared.crash_point(CrashPoint::ProviderStored);
    let receipt = hex::encode(receipt.bytes());
    let frame = if told {
        Frame::Outcome { receipt, output }
    } else {
        Frame::Delivered { accept: hex::encode(job.accept.bytes()), receipt, output }
    };
    if let Err(e) = jobstream::write(stream, &frame).await {
        if !told {
            let failed =
                job.row.ended(ContractState::Failed, "the consumer was gone before the contract reached it");
            shared.journal.update(failed).await;
        }
        return Err(broken(e));
    }
    Ok(delivered)
}
