//! The routes the dashboard adds to the API: its live feed and charts, the components known by
//! name, the network, and providing started and stopped while the node runs.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{AppState, ndjson_operation, reply};
use crate::api::events;

pub(super) async fn live_events(State(state): State<AppState>) -> Response {
    events::open(state.node, &state.streams).unwrap_or_else(|| {
        super::error(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!("{} live feeds are open already; close a dashboard tab", events::MAX_EVENT_STREAMS),
        )
    })
}

pub(super) async fn activity(State(state): State<AppState>) -> Response {
    axum::Json(events::activity(&state.node, &state.peer_samples).await).into_response()
}

pub(super) async fn network(State(state): State<AppState>) -> Response {
    axum::Json(state.node.network()).into_response()
}

pub(super) async fn components(State(state): State<AppState>) -> Response {
    reply(state.node.components().await)
}

/// `POST /v1/provide`: the policy of the Provide view (`cue benchmark`'s options and their
/// defaults).
#[derive(Deserialize)]
pub(super) struct ProvideBody {
    #[serde(default = "one_u64")]
    price_per_mfuel: u64,
    #[serde(default)]
    base_fee: u64,
    /// Jobs at once; the number of cores when absent.
    max_concurrent_jobs: Option<u32>,
    #[serde(default = "max_memory")]
    max_memory_bytes: u64,
    #[serde(default = "max_time")]
    max_execution_ms: u64,
    #[serde(default)]
    min_reputation: f64,
}

fn one_u64() -> u64 {
    1
}

fn max_memory() -> u64 {
    512 << 20
}

fn max_time() -> u64 {
    30_000
}

pub(super) async fn provide(
    State(state): State<AppState>,
    axum::Json(body): axum::Json<ProvideBody>,
) -> Response {
    let cores =
        std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX));
    let options = crate::node::ProvideOptions {
        policy: crate::market::ProviderPolicy {
            price_per_mfuel: body.price_per_mfuel,
            base_fee: body.base_fee,
            max_concurrent_jobs: body.max_concurrent_jobs.unwrap_or(cores).max(1),
            max_memory_bytes: body.max_memory_bytes,
            max_execution_ms: body.max_execution_ms,
        },
        min_reputation: body.min_reputation,
    };
    let node = state.node.clone();
    ndjson_operation(["done", "total"], move |progress| async move {
        let manifest = node.provide(options, progress).await?;
        Ok(
            json!({"hash": manifest.hash().to_string(), "expires_ms": manifest.header().expires_ms, "manifest": manifest.body()}),
        )
    })
}

pub(super) async fn stop_providing(State(state): State<AppState>) -> Response {
    axum::Json(json!({"was_providing": state.node.stop_providing().await})).into_response()
}
