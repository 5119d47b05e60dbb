//! The payment for a delivered contract, however it comes: on the job stream after the outcome,
//! by `Pay` on `/cue-rpc`, or by ledger gossip (found by the watcher's [`sweep`]). A transfer
//! from the contract's consumer, to this node, covering the price, ends the contract paid, with
//! this node's `completed` verdict owed; a deadline passed without one ends it defaulted.
//! Each contract is concluded once (claimed in [`Provider::claim`](super::Provider)).

use std::sync::Arc;
use std::time::Duration;

use super::super::jobstream::{self, Frame};
use super::super::journal::Imported;
use super::super::{CrashPoint, Shared, reputation};
use crate::clock::now_ms;
use crate::crypto::{Digest, PublicKey};
use crate::ledger::claim_amount;
use crate::net::{RefusalReason, RpcResponse, Stream};
use crate::protocol::{
    ClaimEvidence, ComputeAccept, Event, OutcomeAttestation, PaymentReference, Receipt, Signed, Verdict,
};
use crate::store::{ContractRow, ContractState, Draft, Records, Role};

/// How long a job stream stays open after its outcome for the consumer's payment.
const PAY_ON_STREAM_WAIT: Duration = Duration::from_secs(15);
/// How long after its start a provider waits before it ends a contract delivered before the
/// start (the consumer's payment or refund may be on its way by re-gossip).
const AFTER_RESTART_MS: u64 = 10_000;
/// Delivered contracts looked at per sweep.
const SWEEP_LIMIT: u32 = 1024;

/// After the outcome: the consumer may pay on the same stream (saving a request), within
/// [`PAY_ON_STREAM_WAIT`]; a payment that does not come here comes by `Pay` or by gossip.
/// Answers whether it was paid here. `delivered` is the contract the stream just delivered.
pub(super) async fn receive_on_stream(
    shared: &Arc<Shared>,
    stream: &mut Stream,
    delivered: &ContractRow,
) -> bool {
    let Ok(Ok(Frame::Pay { transfer })) =
        tokio::time::timeout(PAY_ON_STREAM_WAIT, jobstream::read(stream)).await
    else {
        return false;
    };
    shared.crash_point(CrashPoint::ProviderDelivered);
    let answer = match hex::decode(&transfer) {
        Ok(bytes) => match take(shared.clone(), bytes, Some(delivered)).await {
            Ok(()) => Frame::Paid,
            Err(message) => Frame::Refused { message },
        },
        Err(e) => Frame::Refused { message: format!("the transfer is not hex: {e}") },
    };
    let paid = answer == Frame::Paid;
    jobstream::write(stream, &answer).await.is_ok() && paid
}

/// Answers a `Pay` request (see [`take`]).
pub(in crate::node) async fn on_payment(shared: Arc<Shared>, bytes: Vec<u8>) -> RpcResponse {
    match take(shared, bytes, None).await {
        Ok(()) => RpcResponse::Paid,
        Err(message) => RpcResponse::refused(RefusalReason::BadRequest, message),
    }
}

/// A payment told directly (by `Pay` or on the job stream): the transfer is verified and
/// stored (ledger rules applied) before the answer. When it settles a delivered contract of
/// this node, the paid contract and this node's `completed` verdict are stored in the same
/// commit; otherwise (a payment for something else, a contract another task is concluding)
/// the contract is settled off the answer's path. The payer gossips the entry itself.
/// `delivered`: the contract the payment is expected for (its row need not be looked up).
async fn take(shared: Arc<Shared>, bytes: Vec<u8>, delivered: Option<&ContractRow>) -> Result<(), String> {
    let settling = Settling::claim(&shared, &bytes, delivered);
    let then = settling.as_ref().map(Settling::records).unwrap_or_default();
    let imported = shared.journal.import(&bytes, false, then).await;
    let settled = matches!(imported, Ok(Imported::New(_))) && settling.is_some();
    if let Some(settling) = settling {
        if let Some(provider) = shared.provider.get() {
            provider.release(&settling.row.contract);
        }
        if settled {
            tracing::info!(contract = %settling.row.contract, state = "paid", "contract settled");
            shared.reputation.counted(&settling.verdict);
        }
    }
    if let Err(e) = imported {
        return Err(format!("payment refused: {e}"));
    }
    if !settled {
        settle_later(shared, bytes);
    }
    Ok(())
}

/// Settles what a stored transfer pays for off the answer's path. Bounded: without a free
/// place the watcher's next sweep settles it (within 250 ms).
fn settle_later(shared: Arc<Shared>, bytes: Vec<u8>) {
    let Some(place) = shared.provider.get().and_then(|p| p.settling.clone().try_acquire_owned().ok()) else {
        return;
    };
    tokio::spawn(async move {
        if let Ok(event) = Event::decode(&bytes) {
            settle_payment(&shared, &event).await;
        }
        drop(place);
    });
}

/// A delivered contract a payment settles, claimed (see [`Provider::claim`](super::Provider))
/// so no other task concludes it meanwhile, with its paid row and this node's verdict (owed:
/// signed later in a set).
struct Settling {
    row: ContractRow,
    verdict: OutcomeAttestation,
}

impl Settling {
    /// The contract `bytes` (a transfer, not yet verified: what is claimed is only stored if
    /// the transfer is accepted) pays for, if it is this provider's, still delivered, and
    /// covered, and no other task is concluding it. `delivered`, when it is the contract the
    /// transfer names, saves looking it up by its receipt.
    fn claim(shared: &Shared, bytes: &[u8], delivered: Option<&ContractRow>) -> Option<Settling> {
        let provider = shared.provider.get()?;
        let payment = Payment::of(&Event::decode(bytes).ok()?)?;
        let reader = shared.journal.reader().ok()?;
        let row = match delivered.filter(|row| row.receipt == Some(payment.receipt)) {
            Some(row) => row.clone(),
            None => reader.contract_with_receipt(Role::Provider, &payment.receipt).ok()??,
        };
        // Not yet applied: a release's provider is its lock's, which is still open.
        let payee = match payment.lock {
            Some(lock) => reader.open_lock(&lock).ok()??.payee,
            None => payment.to?,
        };
        if !payment.covers(shared, payee, &row) || !provider.claim(row.contract) {
            return None;
        }
        // Read again once claimed: a task that concluded it just before is seen here.
        let still_delivered = reader
            .contract(&row.contract)
            .ok()
            .flatten()
            .is_some_and(|c| c.state == ContractState::Delivered);
        if !still_delivered {
            provider.release(&row.contract);
            return None;
        }
        let verdict = reputation::owed(row.contract, row.peer, Verdict::Completed, Vec::new());
        Some(Settling { row: row.paid(payment.hash), verdict })
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

/// A payment for a receipt, whatever carries it: a consumer's `TOKEN_RELEASE` of the
/// contract's lock (what Cue's consumer sends), or a `TOKEN_TRANSFER` referencing the receipt
/// (a payment made by hand, e.g. `cue wallet transfer --reference receipt:..`).
struct Payment {
    hash: Digest,
    payer: PublicKey,
    /// A transfer's payee (a release's is its lock's).
    to: Option<PublicKey>,
    /// The lock a release ends.
    lock: Option<Digest>,
    amount: u64,
    receipt: Digest,
}

impl Payment {
    fn of(event: &Event) -> Option<Payment> {
        let (to, lock, amount, receipt) = match event {
            Event::Transfer(t) => match t.body().reference? {
                PaymentReference::Receipt(receipt) => (Some(t.body().to), None, t.body().amount, receipt),
                _ => return None,
            },
            // A consumer's release; a claim is this node's own, and settles nothing here.
            Event::Release(r) if r.body().evidence.is_none() => {
                (None, Some(r.body().lock), r.body().paid, r.body().receipt?)
            }
            _ => return None,
        };
        Some(Payment { hash: event.hash(), payer: event.signer(), to, lock, amount, receipt })
    }

    /// Whether it pays a contract: from its consumer, to this node (`payee`), at least its price.
    fn covers(&self, shared: &Shared, payee: PublicKey, row: &ContractRow) -> bool {
        self.payer == row.peer && payee == shared.keypair.public() && self.amount >= row.price.unwrap_or(0)
    }
}

/// Marks the contract a stored payment pays for as paid, if it is from its consumer, to this
/// node, and covers the price.
async fn settle_payment(shared: &Shared, event: &Event) {
    let Some(payment) = Payment::of(event) else { return };
    let Ok(reader) = shared.journal.reader() else { return };
    let Ok(Some(row)) = reader.contract_with_receipt(Role::Provider, &payment.receipt) else { return };
    let Ok(Some((payee, _))) = reader.credited(&payment.hash) else { return };
    drop(reader);
    if payment.covers(shared, payee, &row) {
        conclude(shared, row.paid(payment.hash), Vec::new()).await;
    }
}

/// Stores a delivered contract's end (paid or defaulted) and attests it — once: a contract
/// another task is concluding, or that has ended already, is left alone; except that a
/// defaulted contract whose payment comes late ends paid (and this node's `completed` verdict
/// joins its `default` one). `evidence` goes with a `default` verdict.
async fn conclude(shared: &Shared, row: ContractRow, evidence: Vec<Vec<u8>>) {
    let Some(provider) = shared.provider.get() else { return };
    let id = row.contract;
    if !provider.claim(id) {
        return;
    }
    let current = shared.journal.reader().and_then(|r| Ok(r.contract(&row.contract)?)).ok().flatten();
    let open = |state| {
        state == ContractState::Delivered
            || (matches!(state, ContractState::Defaulted | ContractState::Failed)
                && row.state == ContractState::Paid)
    };
    if current.is_some_and(|c| open(c.state)) {
        tracing::info!(contract = %row.contract, state = row.state.name(), "contract settled");
        let (contract, consumer) = (row.contract, row.peer);
        let verdict = if row.state == ContractState::Paid { Verdict::Completed } else { Verdict::Default };
        shared.reputation.attest(contract, consumer, verdict, evidence, Records::rows(vec![row])).await;
    }
    provider.release(&id);
}

/// A delivered contract's deadline passed unpaid: its provider claims from the consumer's
/// lock what the contract and receipt make due (the claim stored with the contract paid and a
/// `default` verdict on the consumer, who did not pay itself; then gossiped). Without an open
/// lock to claim from — the consumer released it paying less, or it never reached this node —
/// the contract ends defaulted, with the consumer's own release, if any, as the evidence.
async fn claim_or_default(shared: &Shared, row: ContractRow) {
    let Some(provider) = shared.provider.get() else { return };
    let claimable = shared.journal.reader().ok().and_then(|reader| claim_draft(&reader, shared, &row));
    let Some(draft) = claimable else {
        let evidence: Vec<Vec<u8>> = consumer_release(shared, &row).into_iter().collect();
        // Delivered before this node last started, and the lock given back without naming the
        // receipt: the node may have stopped before telling the result, so the consumer never
        // had it. Nobody owes anything; no verdict.
        if evidence.is_empty() && row.updated_ms < provider.started_ms {
            let failed = row.ended(
                ContractState::Failed,
                "delivered before a restart and given back unpaid: the consumer may never have had it",
            );
            if provider.claim(row.contract) {
                shared.journal.update(failed).await;
                provider.release(&row.contract);
            }
            return;
        }
        let defaulted = row.ended(ContractState::Defaulted, "the consumer did not pay by the deadline");
        conclude(shared, defaulted, evidence).await;
        return;
    };
    if !provider.claim(row.contract) {
        return;
    }
    let (contract, consumer) = (row.contract, row.peer);
    let owed = reputation::owed(contract, consumer, Verdict::Default, Vec::new());
    let owe = vec![owed.to_body_bytes()];
    let claimed = shared
        .journal
        .author(shared.keypair.clone(), draft, move |claim| Records {
            rows: vec![
                row.paid(claim.hash())
                    .with_detail("claimed from the consumer's lock: it did not pay by the deadline"),
            ],
            owe,
            ..Records::default()
        })
        .await;
    provider.release(&contract);
    match claimed {
        Ok(claim) => {
            tracing::info!(%contract, state = "paid", "claimed from the consumer's lock");
            shared.reputation.counted(&owed);
            shared.outbox.gossip(claim.event.bytes().to_vec()).await;
        }
        Err(e) => tracing::warn!(%contract, "the claim was refused: {e}"),
    }
}

/// The claim of a delivered contract's lock, if one is open here: its evidence (the contract
/// and receipt, this node's own) read from the log.
fn claim_draft(reader: &crate::store::PooledReader<'_>, shared: &Shared, row: &ContractRow) -> Option<Draft> {
    let (lock, open) = reader.open_lock_for(&row.job, &shared.keypair.public()).ok()??;
    let accept = Signed::<ComputeAccept>::decode(&reader.event_bytes(&row.contract).ok()??).ok()?;
    let receipt = Signed::<Receipt>::decode(&reader.event_bytes(&row.receipt?).ok()??).ok()?;
    if open.payer != row.peer {
        return None;
    }
    let evidence = ClaimEvidence { accept, receipt };
    let paid = claim_amount(&evidence, open.amount);
    Some(Draft::Release { lock, paid, receipt: row.receipt, evidence: Some(Box::new(evidence)) })
}

/// The consumer's own release naming this contract's receipt, if it made one (paying less than
/// the price: the evidence of its default).
fn consumer_release(shared: &Shared, row: &ContractRow) -> Option<Vec<u8>> {
    let reader = shared.journal.reader().ok()?;
    reader.events_linking_to(&row.receipt?).ok()?.into_iter().find_map(|hash| {
        let bytes = reader.event_bytes(&hash).ok()??;
        let payer = matches!(Event::decode(&bytes), Ok(Event::Release(r)) if r.header().signer == row.peer);
        payer.then_some(bytes)
    })
}

/// When an unpaid delivered contract ends: at its payment deadline; for one delivered before
/// this node last `started`, not before [`AFTER_RESTART_MS`] after the start either.
fn deadline(row: &ContractRow, started: u64) -> u64 {
    if row.updated_ms < started { row.pay_by_ms.max(started + AFTER_RESTART_MS) } else { row.pay_by_ms }
}

/// Marks delivered contracts paid when a payment from the consumer naming the receipt covers
/// the price (one that came by gossip), or — once the deadline passed — claims from the
/// consumer's lock, or records a default ([`claim_or_default`]). (A defaulted contract's late
/// payment is taken when it is told directly, see [`take`].)
pub(super) async fn sweep(shared: &Shared) {
    let now = now_ms();
    let me = shared.keypair.public();
    let started = shared.provider.get().map_or(0, |p| p.started_ms);
    let updates = shared
        .journal
        .read(move |reader| {
            let mut updates = Vec::new();
            for row in reader.contracts_in(Role::Provider, ContractState::Delivered, SWEEP_LIMIT)? {
                let Some(receipt) = row.receipt else { continue };
                let paid = reader.events_linking_to(&receipt)?.into_iter().find(|hash| {
                    let Ok(Some(bytes)) = reader.event_bytes(hash) else { return false };
                    let Some(payment) = Event::decode(&bytes).ok().as_ref().and_then(Payment::of) else {
                        return false;
                    };
                    let credited = reader.credited(hash).ok().flatten();
                    credited.is_some_and(|(payee, _)| payee == me)
                        && payment.payer == row.peer
                        && payment.amount >= row.price.unwrap_or(0)
                });
                match paid {
                    Some(payment) => updates.push((row.paid(payment), false)),
                    None if now > deadline(&row, started) => updates.push((row, true)),
                    None => {}
                }
            }
            Ok(updates)
        })
        .await;
    for (row, overdue) in updates.unwrap_or_default() {
        if overdue {
            claim_or_default(shared, row).await;
        } else {
            conclude(shared, row, Vec::new()).await;
        }
    }
}
