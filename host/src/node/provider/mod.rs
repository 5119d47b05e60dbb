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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};

pub(super) use negotiate::on_request;
pub(super) use payment::on_payment;
pub(super) use run::serve_jobs;

use super::quota::{Place, Places};
use super::{FaultInjection, ProviderSettings, Shared, lock, wait_for};
use crate::clock::now_ms;
use crate::crypto::{Digest, PeerId};
use crate::protocol::{DEFAULT_NONCE_CAPACITY, DEFAULT_SIGNER_NONCES, EventKind, JobId, SeenNonces};
use crate::store::{ContractState, Role};
use negotiate::PreparedJob;

/// How often delivered contracts are checked for their payment.
const PAYMENT_CHECK_EVERY: Duration = Duration::from_millis(250);
/// Payments settled at once off their answer's path; more wait for the watcher's sweep.
const MAX_SETTLING: usize = 256;
/// How long an accepted job waits for its consumer's start frame before its place is given
/// back and its contract recorded failed (a job negotiated on its stream starts at once).
const UNSTARTED_DEADLINE: Duration = Duration::from_secs(5);

/// What a providing node keeps about its jobs.
pub(super) struct Provider {
    /// Accepted jobs waiting for their consumer's start frame, by contract (each holds one of
    /// [`Provider::jobs`]' places, so they are bounded by it).
    prepared: Mutex<HashMap<Digest, PreparedJob>>,
    /// Places for jobs accepted and not finished (running or waiting to start): twice the
    /// policy's concurrent jobs, one consumer holding at most its share (`quota::share_of`).
    jobs: Arc<Places>,
    /// Runs at once: the policy's concurrent jobs, at most the sandbox's pool. An accepted job
    /// waits here for a run permit once started.
    runs: Arc<Semaphore>,
    /// Request nonces seen while fresh: a replayed request is rejected. Each consumer key holds
    /// at most a quarter of the window (a flood from one key refuses only that key), and the
    /// window is restored from the log at start (see [`restore_request_window`]).
    nonces: Mutex<SeenNonces>,
    fault: Option<FaultInjection>,
    /// The lowest consumer reputation served, as `f64` bits (the Provide view changes it while
    /// the node runs).
    min_reputation: AtomicU64,
    pay_grace_ms: u64,
    /// When this node started providing: a contract delivered before it may never have been
    /// told (see `payment::claim_or_default`).
    started_ms: u64,
    allowed_publishers: Vec<PeerId>,
    /// Contracts whose end (paid, defaulted) a task is storing now, so it is stored and
    /// attested once (at most the delivered contracts, each for one commit).
    concluding: Mutex<HashSet<Digest>>,
    /// Places for payments being settled off their answer's path.
    settling: Arc<Semaphore>,
    /// Jobs whose lock funds a contract being negotiated or run now: one lock funds one
    /// contract (a stored contract is found in the log; see `negotiate::fund`).
    funded: Arc<Mutex<HashSet<JobId>>>,
}

/// A job's hold on the lock that funds it, while its contract is negotiated and run; given
/// back when dropped (the contract is stored by then, or never made).
pub(super) struct Funded {
    jobs: Arc<Mutex<HashSet<JobId>>>,
    job: JobId,
}

impl Drop for Funded {
    fn drop(&mut self) {
        lock(&self.jobs).remove(&self.job);
    }
}

impl Provider {
    /// Holds `job`'s funding for one contract; `None` when another contract holds it now.
    pub(super) fn hold_funding(&self, job: JobId) -> Option<Funded> {
        lock(&self.funded).insert(job).then(|| Funded { jobs: self.funded.clone(), job })
    }

    /// The provider's side for `settings`, running at most `pool` jobs at once (the sandbox's
    /// instance pool).
    pub(super) fn new(settings: &ProviderSettings, pool: usize) -> Provider {
        let concurrent = (settings.policy.max_concurrent_jobs as usize).clamp(1, pool.max(1));
        Provider {
            prepared: Mutex::default(),
            funded: Arc::default(),
            jobs: Places::shared(settings.policy.max_concurrent_jobs as usize * 2),
            runs: Arc::new(Semaphore::new(concurrent)),
            nonces: Mutex::new(SeenNonces::fair(DEFAULT_NONCE_CAPACITY, DEFAULT_SIGNER_NONCES)),
            fault: settings.fault,
            min_reputation: AtomicU64::new(settings.min_reputation.to_bits()),
            pay_grace_ms: u64::try_from(settings.pay_grace.as_millis()).unwrap_or(u64::MAX),
            started_ms: now_ms(),
            allowed_publishers: settings.allowed_publishers.clone(),
            concluding: Mutex::default(),
            settling: Arc::new(Semaphore::new(MAX_SETTLING)),
        }
    }

    /// The lowest consumer reputation served.
    fn min_reputation(&self) -> f64 {
        f64::from_bits(self.min_reputation.load(Ordering::Relaxed))
    }

    /// Serves consumers of at least `reputation` from now on.
    pub(super) fn set_min_reputation(&self, reputation: f64) {
        self.min_reputation.store(reputation.to_bits(), Ordering::Relaxed);
    }

    /// A job place for `consumer` (given back when the job, which holds it, is dropped).
    fn job_place(&self, consumer: PeerId) -> Result<Place, super::quota::Full> {
        self.jobs.take(consumer)
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

/// At start: the nonces of the requests in the log that are still live, so a request replayed
/// to a restarted provider is refused as a replay instead of running again; answers how many.
pub(super) async fn restore_request_window(shared: &Shared) -> usize {
    let Some(provider) = shared.provider.get() else { return 0 };
    let tag = EventKind::ComputeRequest.tag();
    let limit = u32::try_from(DEFAULT_NONCE_CAPACITY).unwrap_or(u32::MAX);
    let live =
        shared.journal.read(move |reader| reader.live_nonces(tag, now_ms(), limit)).await.unwrap_or_default();
    let mut nonces = lock(&provider.nonces);
    for (signer, nonce, expires_ms) in &live {
        nonces.record_nonce(*signer, *nonce, *expires_ms);
    }
    live.len()
}
