//! Providing started and stopped while the node runs (the dashboard's Provide view, `POST
//! /v1/provide` and `/v1/provide/stop`), without a restart.
//!
//! Starting measures this machine (progress after each run), signs and installs a manifest
//! with the policy given, and announces it; the first start also builds the provider's side
//! (`provider::Provider`) and spawns its job server and payment watcher, which then run until
//! the node stops (they serve the contracts already made even while providing is stopped).
//! Stopping withdraws the manifest and ends its re-signing: new requests are refused as from a
//! node that does not provide (`not-a-provider`), jobs accepted before finish and are paid.
//!
//! What a start cannot change: the job places, sized by the first start's policy (a later
//! policy with more concurrent jobs is advertised, and bounded by those places).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use super::advert::{self, MeasureProgress};
use super::{NodeError, ProviderSettings, Shared, lock, provider};
use crate::benchmark::Plan;
use crate::market::{ProviderPolicy, ResourceManifest};
use crate::protocol::Signed;

/// What the Provide view asks for.
#[derive(Clone, Copy, Debug)]
pub struct ProvideOptions {
    /// Prices and per-job bounds to advertise.
    pub policy: ProviderPolicy,
    /// The lowest consumer reputation served, in `[0, 1]`.
    pub min_reputation: f64,
}

/// The providing state that changes while the node runs.
#[derive(Default)]
pub(super) struct Providing {
    /// The settings of the last start (those of `cue node --provide` at first): a later start
    /// keeps them but for the policy and minimum reputation.
    last: Mutex<Option<ProviderSettings>>,
    /// The task re-signing the manifest, while providing.
    refresher: Mutex<Option<JoinHandle<()>>>,
    /// The provider's tasks spawned by a start while running; the node's shutdown waits for them.
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// One start or stop at a time.
    changing: tokio::sync::Mutex<()>,
}

impl Providing {
    /// The state of a node that started with `settings` (`cue node --provide`) or without.
    pub(super) fn new(settings: Option<ProviderSettings>) -> Providing {
        Providing { last: Mutex::new(settings), ..Providing::default() }
    }

    /// Keeps the refresher a node started with.
    pub(super) fn started_with(&self, refresher: JoinHandle<()>) {
        *lock(&self.refresher) = Some(refresher);
    }

    /// The tasks to wait for at shutdown (taken).
    pub(super) fn take_tasks(&self) -> Vec<JoinHandle<()>> {
        let mut tasks = std::mem::take(&mut *lock(&self.tasks));
        tasks.extend(lock(&self.refresher).take());
        tasks
    }
}

/// The settings a start uses when the node was never a provider: a default measurement, a
/// manifest believed for an hour, the default grace for payments, any verified component.
fn default_settings(options: &ProvideOptions) -> ProviderSettings {
    ProviderSettings {
        policy: options.policy,
        plan: Plan::default(),
        manifest_lifetime: Duration::from_secs(3600),
        min_reputation: options.min_reputation,
        fault: None,
        pay_grace: super::DEFAULT_PAY_GRACE,
        allowed_publishers: Vec::new(),
    }
}

/// Starts providing (or restarts it with a new policy): measures, signs, installs and announces
/// a manifest; answers it.
pub(super) async fn start(
    shared: &Arc<Shared>,
    options: ProvideOptions,
    progress: MeasureProgress,
) -> Result<Signed<ResourceManifest>, NodeError> {
    if !(0.0..=1.0).contains(&options.min_reputation) {
        return Err(NodeError::Invalid(format!(
            "minimum reputation {} is not between 0 and 1",
            options.min_reputation
        )));
    }
    if shared.journal.genesis_id().is_none() {
        return Err(NodeError::NoLedger);
    }
    let providing = &shared.providing;
    let _changing = providing.changing.lock().await;
    let settings = {
        let mut settings = lock(&providing.last).clone().unwrap_or_else(|| default_settings(&options));
        settings.policy = options.policy;
        settings.min_reputation = options.min_reputation;
        settings
    };
    // The running refresher stops first, so it cannot install a manifest of the old policy
    // over the new one; if the measurement fails, the old manifest (if any) goes on as it was.
    let previous = lock(&providing.refresher).take();
    if let Some(refresher) = &previous {
        refresher.abort();
    }
    match advert::start_measured(shared, settings.clone(), progress, shared.stopping.clone()).await {
        Ok(refresher) => *lock(&providing.refresher) = Some(refresher),
        Err(e) => {
            let last = lock(&providing.last).clone();
            if let (Some(_), Some(last), Some(_)) = (previous, last, shared.advert.current()) {
                *lock(&providing.refresher) = Some(advert::keep_fresh(shared, last, shared.stopping.clone()));
            }
            return Err(e);
        }
    }
    *lock(&providing.last) = Some(settings.clone());
    let first = shared.provider.get().is_none();
    let provider = shared.provider.get_or_init(|| {
        provider::Provider::new(&settings, shared.components.sandbox().config().max_concurrent_jobs as usize)
    });
    provider.set_min_reputation(options.min_reputation);
    if first {
        provider::fail_unfinished(shared).await;
        provider::restore_request_window(shared).await;
        let jobs = provider::serve_jobs(shared.clone(), shared.stopping.clone())?;
        let mut tasks = lock(&providing.tasks);
        tasks.push(tokio::spawn(jobs));
        tasks.push(tokio::spawn(provider::watch_payments(shared.clone(), shared.stopping.clone())));
    }
    advert::announce(shared).await;
    let manifest =
        shared.advert.current().ok_or_else(|| NodeError::Invalid("providing was stopped".into()))?;
    tracing::info!(fuel_per_second = manifest.body().fuel_per_second, "providing started");
    Ok(manifest)
}

/// Stops providing: the manifest is withdrawn and no longer re-signed. Answers whether it was
/// providing.
pub(super) async fn stop(shared: &Shared) -> bool {
    let providing = &shared.providing;
    let _changing = providing.changing.lock().await;
    if let Some(refresher) = lock(&providing.refresher).take() {
        refresher.abort();
    }
    let was = shared.advert.current().is_some();
    advert::withdraw(shared);
    if was {
        tracing::info!("providing stopped: new requests are refused, contracts made are served");
    }
    was
}
