//! The provider's side of a contract, in the order a contract lives it:
//! - [`negotiate`]: a `COMPUTE_REQUEST` is checked and evaluated against the policy — this is
//!   where a provider decides to accept (sign a `COMPUTE_ACCEPT`) or reject (sign a typed
//!   `COMPUTE_REJECT`);
//! - [`run`]: the job stream — the consumer's first frame read, the job run in the sandbox, its
//!   events streamed, the receipt signed, stored and delivered;
//! - [`payment`]: the payment taken (on the stream, by `Pay`, or by gossip), the contract
//!   concluded paid or defaulted and this node's verdict owed.
//!
//! [`Provider`] owns the state: jobs accepted and waiting to start, places in use, the nonces
//! seen, the contracts being concluded.

mod negotiate;
mod payment;
mod run;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};

pub(super) use negotiate::on_request;
pub(super) use payment::on_payment;
pub(super) use run::serve_jobs;

use super::{FaultInjection, ProviderSettings, Shared, lock, wait_for};
use crate::crypto::{Digest, PeerId};
use crate::protocol::{DEFAULT_NONCE_CAPACITY, SeenNonces};
use crate::store::{ContractState, Role};
use negotiate::PreparedJob;

/// How often delivered contracts are checked for their payment.
const PAYMENT_CHECK_EVERY: Duration = Duration::from_millis(250);
/// Payments settled at once off their answer's path; more wait for the watcher's sweep.
const MAX_SETTLING: usize = 256;

/// What a providing node keeps about its jobs.
pub(super) struct Provider {
    /// Accepted jobs waiting for their consumer's start frame, by contract.
    prepared: Mutex<HashMap<Digest, PreparedJob>>,
    /// Jobs accepted and not finished (running or waiting to start): what the policy's
    /// capacity counts.
    in_flight: AtomicUsize,
    /// Request nonces seen while fresh: a replayed request is rejected.
    nonces: Mutex<SeenNonces>,
    fault: Option<FaultInjection>,
    min_reputation: f64,
    pay_grace_ms: u64,
    allowed_publishers: Vec<PeerId>,
    /// Contracts whose end (paid, defaulted) a task is storing now, so it is stored and
    /// attested once (at most the delivered contracts, each for one commit).
    concluding: Mutex<HashSet<Digest>>,
    /// Places for payments being settled off their answer's path.
    settling: Arc<Semaphore>,
}

impl Provider {
    pub(super) fn new(settings: &ProviderSettings) -> Provider {
        Provider {
            prepared: Mutex::default(),
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

    /// Takes a place for an accepted job (given back by [`Provider::finished`]).
    fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
    }

    /// Gives an accepted job's place back: it ran, or it will never run.
    fn finished(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// Jobs accepted and not finished.
    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Keeps an accepted job until its consumer starts it.
    fn wait_for_start(&self, job: PreparedJob) {
        lock(&self.prepared).insert(job.accept.hash(), job);
    }

    /// Claims a contract for concluding; `false` when another task holds it.
    fn claim(&self, contract: Digest) -> bool {
        lock(&self.concluding).insert(contract)
    }

    /// Gives a claimed contract back.
    fn release(&self, contract: &Digest) {
        lock(&self.concluding).remove(contract);
    }

    /// Takes the accepted jobs whose consumer never started them within `deadline`.
    fn take_unstarted(&self, deadline: Duration) -> Vec<PreparedJob> {
        let mut prepared = lock(&self.prepared);
        let late: Vec<Digest> = prepared
            .iter()
            .filter(|(_, job)| job.accepted_at.elapsed() > deadline)
            .map(|(contract, _)| *contract)
            .collect();
        late.iter().filter_map(|contract| prepared.remove(contract)).collect()
    }
}

/// Until shutdown: checks delivered contracts for payment (by gossip) and deadlines, and
/// expires contracts whose job was never started.
pub(super) async fn watch_payments(shared: Arc<Shared>, shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = wait_for(shutdown.clone()) => return,
            () = tokio::time::sleep(PAYMENT_CHECK_EVERY) => {
                run::expire_unstarted(&shared).await;
                payment::sweep(&shared).await;
            }
        }
    }
}

/// At start: contracts this provider accepted but never finished (it stopped mid-job) are
/// recorded as failed; answers how many.
pub(super) async fn fail_unfinished(shared: &Shared) -> usize {
    let rows = shared
        .journal
        .read(|reader| reader.contracts_in(Role::Provider, ContractState::Accepted, 10_000))
        .await
        .unwrap_or_default();
    let count = rows.len();
    for row in rows {
        tracing::warn!(contract = %row.contract, "this provider stopped before finishing the job: recorded as failed");
        let failed = row.ended(ContractState::Failed, "the provider restarted before the job finished");
        shared.journal.update(failed).await;
    }
    count
}
