//! Settling a job: the deliveries are voted on (a strict majority of replicas must agree on
//! outcome and fuel), the agreeing ones are paid what their receipts make due — this is where
//! a consumer's payment is made — the others recorded invalid with an `invalid-result` verdict
//! and the evidence, and the report built from the majority's receipt.

use std::sync::Arc;
use std::time::Duration;

use super::super::jobstream::{self, Frame};
use super::super::{CrashPoint, NodeError, reputation};
use super::attempt::Delivery;
use super::audit::Audit;
use super::{Attempt, AttemptOutcome, Job, SubmitReport};
use crate::contract;
use crate::net::{RpcRequest, RpcResponse, Stream};
use crate::protocol::{Receipt, RunOutcome, Verdict};
use crate::sandbox::{Call, LoadedComponent};
use crate::store::{ContractState, ProtocolEvent, Records};

/// How long a payment on the job stream may wait for its confirmation (then `Pay` is tried).
const PAID_WAIT: Duration = Duration::from_secs(10);

impl Job {
    /// Votes (when replicated), pays the agreeing deliveries, records the others invalid, and
    /// builds the report.
    pub(super) async fn settle(
        &self,
        mut deliveries: Vec<Delivery>,
        loaded: &Arc<LoadedComponent>,
        call: &Call,
        mut attempts: Vec<Attempt>,
    ) -> Result<SubmitReport, NodeError> {
        if deliveries.is_empty() {
            let tried: Vec<String> = attempts
                .iter()
                .map(|a| format!("{} {}: {}", a.provider, outcome_name(a.outcome), a.detail))
                .collect();
            return Err(NodeError::Undelivered(tried.join("; ")));
        }
        let receipts: Vec<&Receipt> = deliveries.iter().map(|d| d.receipt.body()).collect();
        let Some(winners) = contract::majority(&receipts) else {
            let replicas = receipts.len();
            let locks: Vec<_> = deliveries.iter().map(|d| d.lock).collect();
            drop(deliveries);
            for lock in locks {
                self.refund(lock, Records::default()).await;
            }
            return Err(NodeError::Disagreement { replicas });
        };
        let audit = match deliveries.as_slice() {
            [alone] => self.audit(&alone.receipt.body().clone(), alone.max_fuel, loaded, call).await,
            _ => Audit::NotRun,
        };
        if let (Audit::Refuted(found), [alone]) = (audit, deliveries.as_mut_slice()) {
            let detail = format!("its failure was refuted by a re-run: {found}");
            let evidence = vec![alone.receipt.bytes().to_vec()];
            self.punish(alone, evidence, detail.clone()).await;
            if let Some(attempt) = attempt_of(&mut attempts, alone) {
                attempt.outcome = AttemptOutcome::InvalidResult;
                attempt.detail = detail.clone();
            }
            return Err(NodeError::Undelivered(format!("{}: {detail}", alone.provider)));
        }
        let majority_receipt = deliveries[winners[0]].receipt.bytes().to_vec();
        let mut cost = 0;
        for (i, delivery) in deliveries.iter_mut().enumerate() {
            let attempt = attempt_of(&mut attempts, delivery);
            if winners.contains(&i) {
                let micros = u64::try_from(delivery.elapsed.as_micros()).unwrap_or(u64::MAX);
                let provider = delivery.row.peer;
                self.shared.discovery.observe(provider, delivery.receipt.body().fuel_used, micros);
                let paid = self.pay(delivery).await?;
                cost += paid;
                if let Some(attempt) = attempt {
                    attempt.paid = paid;
                }
            } else {
                let detail = "its receipt disagrees with the majority".to_owned();
                let evidence = vec![delivery.receipt.bytes().to_vec(), majority_receipt.clone()];
                self.punish(delivery, evidence, detail.clone()).await;
                if let Some(attempt) = attempt {
                    attempt.outcome = AttemptOutcome::InvalidResult;
                    attempt.detail = detail;
                }
            }
        }
        self.report(&deliveries[winners[0]], loaded, call, cost, attempts)
    }

    /// A delivery whose receipt was found false (outvoted by the majority, or refuted by a
    /// re-run): its contract ends invalid (not paid, for `detail`: its lock is given back) and
    /// its provider gets an `invalid-result` verdict with the `evidence` (the receipts that
    /// show it).
    async fn punish(&self, delivery: &mut Delivery, evidence: Vec<Vec<u8>>, detail: String) {
        let mut invalid = delivery.row.ended(ContractState::Invalid, detail);
        invalid.receipt = Some(delivery.receipt.hash());
        let mut events = std::mem::take(&mut delivery.unstored);
        events.push(self.receipt_event(delivery));
        let with = Records { events, rows: vec![invalid], ..Records::default() };
        let (contract, provider) = (delivery.accept.hash(), delivery.row.peer);
        self.shared.reputation.attest(contract, provider, Verdict::InvalidResult, evidence, with).await;
        self.refund(delivery.lock, Records::default()).await;
    }

    /// The report of the majority's delivery: its result type-checked against the component.
    fn report(
        &self,
        reference: &Delivery,
        loaded: &LoadedComponent,
        call: &Call,
        cost: u64,
        attempts: Vec<Attempt>,
    ) -> Result<SubmitReport, NodeError> {
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
            job: self.id.to_string(),
            result,
            wave,
            error,
            json_text: None,
            provider: Some(reference.provider.to_string()),
            fuel: receipt.fuel_used,
            cost,
            receipt: Some(reference.receipt.hash().to_string()),
            component: self.component.to_string(),
            attempts,
            log: reference.log.clone(),
        })
    }

    /// Pays what the receipt makes due (never above the offer) out of the contract's lock, the
    /// rest coming back: the release, the receipt, the paid contract (with its request and
    /// accept when they came with the outcome) and this node's `completed` verdict are stored
    /// in one commit; then the provider is told directly (on the job stream, else by `Pay`),
    /// and the release is gossiped.
    async fn pay(&self, delivery: &mut Delivery) -> Result<u64, NodeError> {
        let shared = &self.shared;
        let price = delivery.accept.body().price(delivery.receipt.body().fuel_used, delivery.offer);
        let mut events = std::mem::take(&mut delivery.unstored);
        events.push(self.receipt_event(delivery));
        let row = delivery.row.delivered(delivery.receipt.hash(), price, None);
        let verdict =
            reputation::owed(delivery.accept.hash(), delivery.row.peer, Verdict::Completed, Vec::new());
        let owe = vec![verdict.to_body_bytes()];
        let receipt = Some(delivery.receipt.hash());
        let bytes = self
            .release(delivery.lock, price, receipt, move |release| Records {
                events,
                rows: vec![row.paid(release)],
                owe,
                ..Records::default()
            })
            .await?;
        shared.crash_point(CrashPoint::ConsumerPaid);
        shared.reputation.counted(&verdict);
        self.tell_payment(delivery, &bytes).await;
        shared.outbox.gossip(bytes).await;
        Ok(price)
    }

    /// Tells the provider of a stored payment: on the job stream (which then stays idle for the
    /// next job), else by `Pay`; one not confirmed either way reaches it by gossip.
    async fn tell_payment(&self, delivery: &mut Delivery, transfer: &[u8]) {
        let provider = delivery.provider;
        let paid_on_stream = match delivery.stream.take() {
            Some(stream) => pay_on_stream(stream, transfer).await,
            None => None,
        };
        let told = if let Some(stream) = paid_on_stream {
            self.shared.consumer.idle.put(provider, stream);
            Ok(RpcResponse::Paid)
        } else {
            self.shared.client.request(provider, RpcRequest::Pay(transfer.to_vec())).await
        };
        if !matches!(told, Ok(RpcResponse::Paid)) {
            tracing::info!(%provider, "payment not confirmed directly ({told:?}); it travels by gossip");
        }
    }

    /// The log entry of a delivery's receipt, linked to its contract.
    fn receipt_event(&self, delivery: &Delivery) -> ProtocolEvent {
        ProtocolEvent::of(&delivery.receipt, Some(self.id), vec![(delivery.accept.hash(), "contract")])
    }
}

/// Pays on the job stream; answers the stream when the provider confirmed it stored the
/// payment (it then stays open for the next job), and closes it otherwise.
async fn pay_on_stream(mut stream: Stream, transfer: &[u8]) -> Option<Stream> {
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

/// The attempt that made a delivery's contract.
fn attempt_of<'a>(attempts: &'a mut [Attempt], delivery: &Delivery) -> Option<&'a mut Attempt> {
    let contract = delivery.accept.hash().to_string();
    attempts.iter_mut().rev().find(|a| a.contract.as_deref() == Some(&contract))
}

/// An attempt's outcome as the API and the report spell it.
fn outcome_name(outcome: AttemptOutcome) -> String {
    serde_json::to_value(outcome).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}
