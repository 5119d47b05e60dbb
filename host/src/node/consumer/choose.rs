//! Choosing providers for a job: found on the DHT (or the one named, asked directly), not this
//! node, within their policies and (when the offer is fixed) cheap enough; then split into
//! replica groups of one engine.

use std::collections::BTreeMap;

use super::super::discovery::{self, ProviderView};
use super::super::{NodeError, Shared};
use super::SubmitOptions;
use crate::contract;

/// Providers that may take the job, best first: not this node, within their policies, and
/// (when the offer is fixed) cheap enough.
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
    let fits = |view: &ProviderView| {
        let policy = view.signed.body().policy;
        let timeout_ms = u64::try_from(options.timeout.as_millis()).unwrap_or(u64::MAX);
        options.max_memory_bytes <= policy.max_memory_bytes
            && timeout_ms <= policy.max_execution_ms
            && options.offer.is_none_or(|offer| contract::minimum_offer(&policy, options.max_fuel) <= offer)
    };
    let chosen: Vec<ProviderView> = all
        .into_iter()
        .filter(|view| view.signed.body().peer_id() != me)
        .filter(|view| options.provider.is_none_or(|p| p == view.signed.body().peer_id()))
        .filter(fits)
        .collect();
    if chosen.is_empty() {
        return Err(NodeError::NotFound(match options.provider {
            Some(p) => {
                format!("provider {p} is not available for this job (unknown, or its policy does not fit)")
            }
            None => "no provider available for this job (none found, or none whose policy fits)".into(),
        }));
    }
    Ok(chosen)
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
