//! Choosing providers for a job: found on the DHT (or the one named, asked directly), not this
//! node, within their policies and (when the offer is fixed) cheap enough; then split into
//! replica groups of one engine.

use std::collections::BTreeMap;

use super::super::discovery::{self, ProviderView};
use super::super::error::UnfitProvider;
use super::super::{NodeError, Shared};
use super::SubmitOptions;
use crate::contract;

/// Providers that may take the job, best first: not this node, within their policies, and
/// (when the offer is fixed) cheap enough; without any, each found provider and why it does
/// not fit (`contract::fits`).
pub(super) async fn candidates(
    shared: &Shared,
    options: &SubmitOptions,
) -> Result<Vec<ProviderView>, NodeError> {
    let me = shared.keypair.peer_id();
    // A named provider is asked directly (its checked manifest reused while it lives): no
    // sweep of the DHT.
    let all = match options.provider {
        Some(provider) => discovery::checked(shared, provider).await.into_iter().collect(),
        None => discovery::providers(shared).await?,
    };
    let timeout_ms = u64::try_from(options.timeout.as_millis()).unwrap_or(u64::MAX);
    let (mut chosen, mut unfit, mut found) = (Vec::new(), Vec::new(), 0);
    for view in all {
        let provider = view.signed.body().peer_id();
        if provider == me || options.provider.is_some_and(|p| p != provider) {
            continue;
        }
        found += 1;
        let policy = view.signed.body().policy;
        match contract::fits(&policy, options.max_memory_bytes, timeout_ms, options.max_fuel, options.offer) {
            Ok(()) => chosen.push(view),
            Err(why) => unfit.push(UnfitProvider { provider: provider.to_string(), reason: why.to_string() }),
        }
    }
    if chosen.is_empty() {
        return Err(NodeError::NoProvider { found, unfit });
    }
    Ok(chosen)
}

/// The job's options with one fuel budget for all its replicas when it has several and
/// gave an offer but no budget: the least the offer buys from any provider of theirs (replicas
/// must agree on the outcome and the fuel, so they must run with the same budget).
pub(super) fn one_budget_for_replicas(
    mut options: SubmitOptions,
    groups: &[Vec<ProviderView>],
) -> SubmitOptions {
    if let (None, Some(offer), true) = (options.max_fuel, options.offer, groups.len() > 1) {
        options.max_fuel = groups
            .iter()
            .flatten()
            .map(|view| contract::fuel_bought(&view.signed.body().policy, offer))
            .min();
    }
    options
}

/// The fuel budget of a job's request to a provider of `policy`: the job's own, or what the
/// offer buys there, or the default.
pub(super) fn budget(options: &SubmitOptions, policy: &crate::market::ProviderPolicy) -> u64 {
    match (options.max_fuel, options.offer) {
        (Some(max_fuel), _) => max_fuel,
        (None, Some(offer)) => contract::fuel_bought(policy, offer),
        (None, None) => super::DEFAULT_MAX_FUEL,
    }
}

/// Splits candidates into `replicas` disjoint groups of the same engine (results and fuel are
/// only comparable on one engine): each group is one replica's list of providers to try.
pub(super) fn replica_groups(candidates: Vec<ProviderView>, replicas: usize) -> Vec<Vec<ProviderView>> {
    let mut by_engine: BTreeMap<String, Vec<ProviderView>> = BTreeMap::new();
    for view in candidates {
        by_engine.entry(view.signed.body().engine.clone()).or_default().push(view);
    }
    let engine =
        by_engine.iter().max_by_key(|(_, views)| views.len()).map(|(e, _)| e.clone()).unwrap_or_default();
    let views = by_engine.remove(&engine).unwrap_or_default();
    let mut groups = vec![Vec::new(); replicas.min(views.len()).max(1)];
    let count = groups.len();
    for (i, view) in views.into_iter().enumerate() {
        groups[i % count].push(view);
    }
    groups
}
