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
use crate::net::{RefusalReason, RpcResponse, Stream};
use crate::protocol::{Event, OutcomeAttestation, PaymentReference, Signed, Transfer, Verdict};
use crate::store::{ContractRow, ContractState, Records, Role};

/// How long a job stream stays open after its outcome for the consumer's payment.
const PAY_ON_STREAM_WAIT: Duration = Duration::from_secs(15);
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
        if let Some(provider) = shared.provider.as_ref() {
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
    let Some(place) = shared.provider.as_ref().and_then(|p| p.settling.clone().try_acquire_owned().ok())
    else {
        return;
    };
    tokio::spawn(async move {
        if let Ok(Event::Transfer(transfer)) = Event::decode(&bytes) {
            settle_transfer(&shared, &transfer).await;
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
        let provider = shared.provider.as_ref()?;
        let Event::Transfer(transfer) = Event::decode(bytes).ok()? else { return None };
        let PaymentReference::Receipt(receipt) = transfer.body().reference? else { return None };
        let reader = shared.journal.reader().ok()?;
        let row = match delivered.filter(|row| row.receipt == Some(receipt)) {
            Some(row) => row.clone(),
            None => reader.contract_with_receipt(Role::Provider, &receipt).ok()??,
        };
        if !covers(shared, &transfer, &row) || !provider.claim(row.contract) {
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
        Some(Settling { row: row.paid(transfer.hash()), verdict })
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
fn covers(shared: &Shared, transfer: &Signed<Transfer>, row: &ContractRow) -> bool {
    transfer.header().signer == row.peer
        && transfer.body().to == shared.keypair.public()
        && transfer.body().amount >= row.price.unwrap_or(0)
}

/// Marks the contract a stored transfer pays for as paid, if the transfer is from its consumer,
/// to this node, and covers the price.
async fn settle_transfer(shared: &Shared, transfer: &Signed<Transfer>) {
    let Some(PaymentReference::Receipt(receipt)) = transfer.body().reference else { return };
    let row = shared.journal.reader().and_then(|r| Ok(r.contract_with_receipt(Role::Provider, &receipt)?));
    let Ok(Some(row)) = row else { return };
    if covers(shared, transfer, &row) {
        conclude(shared, row.paid(transfer.hash())).await;
    }
}

/// Stores a delivered contract's end (paid or defaulted) and attests it — once: a contract
/// another task is concluding, or that has ended already, is left alone; except that a
/// defaulted contract whose payment comes late ends paid (and this node's `completed` verdict
/// joins its `default` one).
async fn conclude(shared: &Shared, row: ContractRow) {
    let Some(provider) = shared.provider.as_ref() else { return };
    let id = row.contract;
    if !provider.claim(id) {
        return;
    }
    let current = shared.journal.reader().and_then(|r| Ok(r.contract(&row.contract)?)).ok().flatten();
    let open = |state| {
        state == ContractState::Delivered
            || (state == ContractState::Defaulted && row.state == ContractState::Paid)
    };
    if current.is_some_and(|c| open(c.state)) {
        tracing::info!(contract = %row.contract, state = row.state.name(), "contract settled");
        let (contract, consumer) = (row.contract, row.peer);
        let verdict = if row.state == ContractState::Paid { Verdict::Completed } else { Verdict::Default };
        shared.reputation.attest(contract, consumer, verdict, Vec::new(), Records::rows(vec![row])).await;
    }
    provider.release(&id);
}

/// Marks delivered contracts paid when a transfer from the consumer referencing the receipt
/// covers the price (a payment that came by gossip), or defaulted when the deadline passed. (A
/// defaulted contract's late payment is taken when it is told directly, see [`take`].)
pub(super) async fn sweep(shared: &Shared) {
    let me = shared.keypair.public();
    let now = now_ms();
    let updates = shared
        .journal
        .read(move |reader| {
            let mut updates = Vec::new();
            for row in reader.contracts_in(Role::Provider, ContractState::Delivered, SWEEP_LIMIT)? {
                let Some(receipt) = row.receipt else { continue };
                let paid = reader.events_linking_to(&receipt)?.into_iter().find(|hash| {
                    let Ok(Some(bytes)) = reader.event_bytes(hash) else { return false };
                    matches!(Event::decode(&bytes), Ok(Event::Transfer(t))
                        if t.header().signer == row.peer && t.body().to == me && t.body().amount >= row.price.unwrap_or(0))
                });
                match paid {
                    Some(payment) => updates.push(row.paid(payment)),
                    None if now > row.pay_by_ms => {
                        updates.push(row.ended(ContractState::Defaulted, "the consumer did not pay by the deadline"))
                    }
                    None => {}
                }
            }
            Ok(updates)
        })
        .await;
    for row in updates.unwrap_or_default() {
        conclude(shared, row).await;
    }
}
