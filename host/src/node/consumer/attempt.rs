//! One replica's attempts: providers tried in turn until one delivers a checked receipt. An
//! attempt signs the request, opens the job stream (or reuses an idle one) and reads it: a
//! reject, or the contract — with the outcome of a quick job, or before the events of a longer
//! one, whose contract is then stored while it runs — then progress, then the receipt, checked
//! against the contract and the delivered output. A contract that never delivers ends failed,
//! with a `timeout` verdict on its provider.

use std::time::Duration;

use super::super::discovery::ProviderView;
use super::super::jobstream::{self, Frame};
use super::{Attempt, AttemptOutcome, Job, Progress};
use crate::clock::now_ms;
use crate::contract::{self, Breach};
use crate::crypto::{Digest, PeerId};
use crate::net::Stream;
use crate::protocol::{
    ComputeAccept, ComputeReject, ComputeRequest, JobInput, Receipt, Signed, Validity, Verdict,
};
use crate::sandbox::{JobEvent, Limits, LogLine};
use crate::store::{ContractRow, ContractState, ProtocolEvent, Records, Role};

/// Time allowed beyond the contract's execution limit for connection, transfer and signing.
const DELIVERY_MARGIN: Duration = Duration::from_secs(15);
/// Times a job stream is opened for one contract before the attempt fails.
const START_ATTEMPTS: u32 = 3;
/// How long a request may stay acceptable to the provider.
const REQUEST_LIFETIME_MS: u64 = 60_000;

/// A delivered, checked run.
pub(super) struct Delivery {
    pub(super) provider: PeerId,
    pub(super) accept: Signed<ComputeAccept>,
    pub(super) receipt: Signed<Receipt>,
    /// The result in WAVE, as delivered (checked against the receipt's hash).
    pub(super) output: Option<String>,
    pub(super) row: ContractRow,
    pub(super) offer: u64,
    /// The contract's fuel budget.
    pub(super) max_fuel: u64,
    /// The job stream, kept open to pay on (dropped unused when not paid).
    pub(super) stream: Option<Stream>,
    /// The contract's log entries when they are not stored yet (it came with its outcome):
    /// stored with whatever this node records next on it.
    pub(super) unstored: Vec<ProtocolEvent>,
    /// From the request sent to the receipt checked, as this node timed it.
    pub(super) elapsed: Duration,
    /// The lock funding the contract: its payment releases it.
    pub(super) lock: Digest,
    /// The guest's log, as the provider streamed it.
    pub(super) log: Vec<LogLine>,
}

/// Why an attempt ended without a delivery.
struct Failure {
    outcome: AttemptOutcome,
    detail: String,
}

impl Failure {
    fn failed(detail: impl Into<String>) -> Failure {
        Failure { outcome: AttemptOutcome::Failed, detail: detail.into() }
    }

    fn unfunded(detail: impl Into<String>) -> Failure {
        Failure { outcome: AttemptOutcome::Unfunded, detail: detail.into() }
    }

    fn breach(detail: impl Into<String>) -> Failure {
        Failure { outcome: AttemptOutcome::Breach, detail: detail.into() }
    }
}

/// What a provider has told of the contract so far on a job stream.
#[derive(Default)]
struct Negotiated {
    /// The checked contract.
    accept: Option<Signed<ComputeAccept>>,
    /// Storing it, when it was told before the outcome (answers whether it is stored).
    storing: Option<tokio::task::JoinHandle<bool>>,
    /// The guest's log lines streamed so far.
    log: StreamedLog,
}

/// The guest's log lines a provider streams, kept up to the sandbox's own bound on a job's log
/// (`Limits::log_bytes`, 1 MiB): a provider cannot make the consumer hold more; later lines are
/// dropped.
#[derive(Default)]
struct StreamedLog {
    lines: Vec<LogLine>,
    bytes: usize,
}

impl StreamedLog {
    fn push(&mut self, line: LogLine) {
        let bytes = line.text.len() + 1;
        if self.bytes + bytes <= Limits::default().log_bytes {
            self.bytes += bytes;
            self.lines.push(line);
        }
    }
}

/// What the stream delivered: the checked receipt, the output, and the stream (to pay on).
type Delivered = (Signed<Receipt>, Option<String>, Stream);

/// The log entries of a contract: its request and accept.
fn contract_events(request: &Signed<ComputeRequest>, accept: &Signed<ComputeAccept>) -> Vec<ProtocolEvent> {
    let job = Some(request.body().job_id);
    vec![
        ProtocolEvent::of(request, job, vec![]),
        ProtocolEvent::of(accept, job, vec![(request.hash(), "request")]),
    ]
}

/// A contract told in hex, checked against the request.
fn checked_accept(request: &Signed<ComputeRequest>, accept: &str) -> Result<Signed<ComputeAccept>, Failure> {
    let bytes = hex::decode(accept).map_err(|e| Failure::breach(format!("an unreadable contract: {e}")))?;
    let accept = Signed::<ComputeAccept>::decode(&bytes)
        .and_then(|a| a.verify_signature().map(|()| a))
        .map_err(|e| Failure::breach(format!("an unreadable contract: {e}")))?;
    contract::check_accept(request, &accept).map_err(|b| Failure::breach(b.to_string()))?;
    Ok(accept)
}

/// A receipt told in hex, checked against the contract and the delivered output.
fn checked_receipt(
    request: &Signed<ComputeRequest>,
    accept: &Signed<ComputeAccept>,
    receipt: &str,
    output: Option<&str>,
) -> Result<Signed<Receipt>, Failure> {
    let bytes = hex::decode(receipt).map_err(|e| Failure::failed(format!("receipt: {e}")))?;
    let receipt = Signed::<Receipt>::decode(&bytes)
        .and_then(|r| r.verify_signature().map(|()| r))
        .map_err(|e| Failure::failed(format!("an unreadable receipt: {e}")))?;
    contract::check_receipt(request.body(), accept, &receipt, output)
        .map_err(|b: Breach| Failure::failed(format!("the receipt breaks the contract: {b}")))?;
    Ok(receipt)
}

impl Job {
    /// Tries the group's providers in order until one delivers a checked receipt.
    pub(super) async fn run_replica(
        &self,
        group: Vec<ProviderView>,
        progress: Progress,
    ) -> (Option<Delivery>, Vec<Attempt>) {
        let mut attempts = Vec::new();
        for view in group.into_iter().take(self.options.max_attempts.max(1)) {
            let provider = view.signed.body().peer_id();
            let (outcome, detail, contract, delivery) = match self.attempt(&view, &progress).await {
                Ok(delivery) => {
                    (AttemptOutcome::Completed, String::new(), Some(delivery.accept.hash()), Some(delivery))
                }
                Err((failure, contract)) => {
                    tracing::info!(%provider, outcome = ?failure.outcome, "attempt failed: {}", failure.detail);
                    (failure.outcome, failure.detail, contract, None)
                }
            };
            let contract = contract.map(|c| c.to_string());
            attempts.push(Attempt { provider: provider.to_string(), outcome, detail, contract, paid: 0 });
            if delivery.is_some() {
                return (delivery, attempts);
            }
        }
        (None, attempts)
    }

    /// One provider: the request signed, the stream followed within the deadline; a contract
    /// that did not deliver is recorded failed with a `timeout` verdict (and its id answered).
    async fn attempt(
        &self,
        view: &ProviderView,
        progress: &Progress,
    ) -> Result<Delivery, (Failure, Option<Digest>)> {
        let manifest = view.signed.body();
        let provider = manifest.peer_id();
        let max_fuel = super::choose::budget(&self.options, &manifest.policy);
        let offer = self.options.offer.unwrap_or_else(|| contract::minimum_offer(&manifest.policy, max_fuel));
        let request = self.request(manifest.provider, offer, max_fuel).map_err(|failure| (failure, None))?;
        let (lock, lock_bytes) =
            self.lock_offer(manifest.provider, offer).await.map_err(|e| (Failure::unfunded(e), None))?;
        let deadline = self.options.timeout + DELIVERY_MARGIN;
        let mut negotiated = Negotiated::default();
        let started = std::time::Instant::now();
        let follow = self.follow(provider, &request, &lock_bytes, &mut negotiated, progress);
        let delivered = tokio::time::timeout(deadline, follow).await;
        let delivered = delivered
            .unwrap_or_else(|_| Err(Failure::failed(format!("nothing delivered within {deadline:?}"))));
        let Some(accept) = negotiated.accept else {
            self.refund(lock, Records::default()).await;
            return Err((delivered.err().unwrap_or_else(|| Failure::failed("no contract")), None));
        };
        // A contract told before its outcome is being stored: nothing is paid or recorded on it
        // before that is done. One told with its outcome is stored with the payment.
        let unstored = match negotiated.storing.take() {
            Some(storing) => {
                let _ = storing.await;
                Vec::new()
            }
            None => contract_events(&request, &accept),
        };
        let contract = accept.hash();
        let row = ContractRow::accepted(Role::Consumer, &request, &accept);
        match delivered {
            Ok((receipt, output, stream)) => {
                let elapsed = started.elapsed();
                let log = std::mem::take(&mut negotiated.log.lines);
                Ok(Delivery {
                    provider,
                    accept,
                    receipt,
                    output,
                    row,
                    offer,
                    max_fuel,
                    stream: Some(stream),
                    unstored,
                    elapsed,
                    lock,
                    log,
                })
            }

            Err(failure) => {
                let failed = row.ended(ContractState::Failed, failure.detail.clone());
                let with = Records { events: unstored, rows: vec![failed], ..Records::default() };
                self.shared
                    .reputation
                    .attest(contract, manifest.provider, Verdict::Timeout, Vec::new(), with)
                    .await;
                self.refund(lock, Records::default()).await;
                Err((Failure::failed(failure.detail), Some(contract)))
            }
        }
    }

    /// This job's request to `provider`, signed now.
    fn request(
        &self,
        provider: crate::crypto::PublicKey,
        offer: u64,
        max_fuel: u64,
    ) -> Result<Signed<ComputeRequest>, Failure> {
        let body = ComputeRequest {
            job_id: self.id,
            provider,
            genesis: self.genesis,
            component: self.component,
            reference: self.reference.clone(),
            input: JobInput::for_call(&self.call_text, &self.function),
            offer,
            max_fuel,
            max_memory_bytes: self.options.max_memory_bytes,
            max_execution_ms: u64::try_from(self.options.timeout.as_millis()).unwrap_or(u64::MAX),
        };
        Signed::sign(&self.shared.keypair, body, Validity::starting(now_ms(), REQUEST_LIFETIME_MS))
            .map_err(|e| Failure::failed(e.to_string()))
    }

    /// Opens the job stream with the request and reads it until the checked receipt; the
    /// contract, once told and checked, is in `negotiated`.
    async fn follow(
        &self,
        provider: PeerId,
        request: &Signed<ComputeRequest>,
        lock: &[u8],
        negotiated: &mut Negotiated,
        progress: &Progress,
    ) -> Result<Delivered, Failure> {
        let (mut stream, first) = self.start(provider, request, lock).await.map_err(Failure::failed)?;
        let mut next = Some(first);
        loop {
            let frame = match next.take() {
                Some(frame) => frame,
                None => jobstream::read(&mut stream).await.map_err(|e| Failure::failed(e.to_string()))?,
            };
            if let Some((receipt, output)) = self.on_frame(frame, request, negotiated, progress).await? {
                return Ok((receipt, output, stream));
            }
        }
    }

    /// One frame from the provider: progress and logs are passed on, the contract checked and
    /// stored, the outcome checked; answers the receipt and output once they come.
    async fn on_frame(
        &self,
        frame: Frame,
        request: &Signed<ComputeRequest>,
        negotiated: &mut Negotiated,
        progress: &Progress,
    ) -> Result<Option<(Signed<Receipt>, Option<String>)>, Failure> {
        let untold = negotiated.accept.is_none();
        match frame {
            Frame::Event(JobEvent::Progress { done, total }) => progress(done, total),
            Frame::Event(JobEvent::Log(line)) => negotiated.log.push(line),
            Frame::Rejected { reject } if untold => {
                self.shared.journal.log(ProtocolEvent::of(request, Some(self.id), vec![])).await;
                let reject = hex::decode(&reject).unwrap_or_default();
                return Err(Failure {
                    outcome: AttemptOutcome::Rejected,
                    detail: rejection(&reject, request),
                });
            }
            Frame::Refused { message } => {
                return Err(Failure::failed(format!("the provider refused the job: {message}")));
            }
            Frame::Contract { accept } if untold => {
                let accept = checked_accept(request, &accept)?;
                let records = Records {
                    events: contract_events(request, &accept),
                    rows: vec![ContractRow::accepted(Role::Consumer, request, &accept)],
                    ..Records::default()
                };
                let shared = self.shared.clone();
                negotiated.storing =
                    Some(tokio::spawn(async move { shared.journal.commit(records).await.is_ok() }));
                negotiated.accept = Some(accept);
            }
            Frame::Delivered { accept, receipt, output } if untold => {
                let accept = negotiated.accept.insert(checked_accept(request, &accept)?);
                let receipt = checked_receipt(request, accept, &receipt, output.as_deref())?;
                return Ok(Some((receipt, output)));
            }
            Frame::Outcome { receipt, output } => {
                let Some(accept) = negotiated.accept.as_ref() else {
                    return Err(Failure::failed("an outcome before its contract"));
                };
                let receipt = checked_receipt(request, accept, &receipt, output.as_deref())?;
                return Ok(Some((receipt, output)));
            }
            _ => return Err(Failure::failed("the provider sent a frame that is not its to send")),
        }
        Ok(None)
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
        lock: &[u8],
    ) -> Result<(Stream, Frame), String> {
        let input = match request.body().input {
            JobInput::Inline(_) => None,
            JobInput::Streamed { .. } => Some(self.call_text.clone()),
        };
        let start =
            Frame::Request { request: hex::encode(request.bytes()), input, lock: Some(hex::encode(lock)) };
        // A stream kept from a paid job first; one that has gone stale fails before the
        // provider reads anything, and a fresh one is opened.
        while let Some(mut stream) = self.shared.consumer.idle.take(provider) {
            if let Ok(frame) = first_answer(&mut stream, &start).await {
                return Ok((stream, frame));
            }
        }
        let mut failure = String::new();
        for attempt in 0..START_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(5 << attempt)).await;
            }
            let mut stream = match self.shared.client.open_stream(provider, jobstream::JOB_PROTOCOL).await {
                Ok(stream) => stream,
                Err(e) => {
                    failure = e.to_string();
                    continue;
                }
            };
            match first_answer(&mut stream, &start).await {
                Ok(frame) => return Ok((stream, frame)),
                Err(e) => failure = e.to_string(),
            }
        }
        Err(failure)
    }
}

/// Sends the first frame and reads the provider's first answer.
async fn first_answer(stream: &mut Stream, start: &Frame) -> Result<Frame, jobstream::FrameError> {
    jobstream::write(stream, start).await?;
    jobstream::read(stream).await
}

/// A provider's reject in words, checked: signed by the provider asked, for this request.
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
