//! The API server (axum): the routes, the guard in front of them, error mapping. The routes
//! the dashboard adds are in `ui_routes`.

mod ui_routes;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::handler::Handler;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::events::{EventStreams, PeerSamples};
use super::guard::Guard;
use super::{ApiConfig, Endpoint, MAX_BODY_BYTES, dashboard};
use crate::crypto::PeerId;
use crate::datadir::{DataDir, TokenOrigin};
use crate::node::{BalanceView, NodeError, NodeHandle};

/// Progress lines buffered per fetch; when full, progress lines are skipped (never the result).
const PROGRESS_BUFFER: usize = 64;

/// What every route's handler is given.
#[derive(Clone)]
struct AppState {
    /// The node the API drives.
    node: NodeHandle,
    /// The places for live feeds (`GET /v1/events`).
    streams: EventStreams,
    /// Peer counts over the last hour (`GET /v1/activity`).
    peer_samples: PeerSamples,
}

/// The methods the API's routes take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Method {
    /// Reads; changes nothing.
    Get,
    /// Changes the node's state or starts an operation.
    Post,
}

/// A route of the API. The router is built from [`routes`], and the guard's tests walk the
/// same list, so no route can be added without being shown to refuse strangers.
#[derive(Clone, Copy, Debug)]
pub(super) struct Route {
    /// Its method.
    pub(super) method: Method,
    /// Its path, as axum matches it (`{job}`: a path parameter).
    pub(super) path: &'static str,
}

/// Every route of the API with its handler (the table in the module docs, in its order).
fn routes() -> Vec<(Route, MethodRouter<AppState>)> {
    use Method::{Get, Post};
    vec![
        route(Get, "/v1/status", status),
        route(Get, "/v1/providers", providers),
        route(Post, "/v1/publish", publish),
        route(Post, "/v1/fetch", fetch),
        route(Post, "/v1/submit", submit),
        route(Get, "/v1/jobs", jobs),
        route(Get, "/v1/jobs/{job}", job),
        route(Get, "/v1/wallet/balance", wallet_balance),
        route(Get, "/v1/wallet/history", wallet_history),
        route(Post, "/v1/wallet/transfer", wallet_transfer),
        route(Post, "/v1/wallet/mint", wallet_mint),
        route(Post, "/v1/wallet/import", wallet_import),
        route(Get, "/v1/events", ui_routes::live_events),
        route(Get, "/v1/activity", ui_routes::activity),
        route(Get, "/v1/components", ui_routes::components),
        route(Get, "/v1/network", ui_routes::network),
        route(Post, "/v1/provide", ui_routes::provide),
        route(Post, "/v1/provide/stop", ui_routes::stop_providing),
    ]
}

/// Every route of the API, without the handlers (for the tests).
#[cfg(test)]
pub(super) fn route_list() -> Vec<Route> {
    routes().into_iter().map(|(route, _)| route).collect()
}

fn route<H, T>(method: Method, path: &'static str, handler: H) -> (Route, MethodRouter<AppState>)
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let route = Route { method, path };
    let router = match route.method {
        Method::Get => get(handler),
        Method::Post => post(handler),
    };
    (route, router)
}

/// The API: every route, the body limit, and in front of them all (unknown paths included)
/// the guard; and the dashboard's files, behind the guard's Host and Origin checks.
fn router(state: AppState, guard: Guard) -> Router {
    let guard = Arc::new(guard);
    let app =
        routes().into_iter().fold(Router::new(), |app, (route, handler)| app.route(route.path, handler));
    let api = app
        .fallback(unknown_route)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(guard.clone(), guarded));
    let pages = dashboard::router().layer(middleware::from_fn_with_state(guard, page_guarded));
    pages.merge(api).with_state(state)
}

/// The guard for the dashboard's files: Host and Origin, no token (`Guard::admit_page`).
async fn page_guarded(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    match guard.admit_page(request.uri(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            tracing::debug!(?refusal, "dashboard request refused");
            let (status, kind) = refusal.status_and_kind();
            error(status, kind, refusal)
        }
    }
}

/// The guard as middleware: a request that fails a check is answered with the refusal; the
/// others go on to their route.
async fn guarded(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    match guard.admit(request.uri(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            tracing::debug!(?refusal, "local API request refused");
            let (status, kind) = refusal.status_and_kind();
            error(status, kind, refusal)
        }
    }
}

async fn unknown_route(uri: axum::http::Uri) -> Response {
    error(StatusCode::NOT_FOUND, "not-found", format!("no route {}", uri.path()))
}

/// A running API server. [`ApiServer::stop`] stops it and removes `api.json`.
pub struct ApiServer {
    /// Where it listens (the port chosen, if 0 was asked for).
    addr: SocketAddr,
    /// `<data-dir>/api.json`, removed when the server stops.
    endpoint_file: std::path::PathBuf,
    /// Tells the server to stop taking requests; taken when sent.
    stop: Option<oneshot::Sender<()>>,
    /// The task serving requests; ends after a stop, once the requests in flight are answered.
    task: tokio::task::JoinHandle<()>,
    /// The task sampling peer counts for `/v1/activity`; aborted at the stop.
    sampler: tokio::task::JoinHandle<()>,
    /// The dashboard's address with the token in its fragment.
    dashboard: String,
}

impl ApiServer {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The dashboard's address, `http://127.0.0.1:PORT/#token=…` (see [`super::dashboard_url`]).
    pub fn dashboard_url(&self) -> &str {
        &self.dashboard
    }

    /// Stops taking requests, lets the ones in flight finish, removes `api.json`.
    pub async fn stop(mut self) {
        self.sampler.abort();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), &mut self.task).await;
        let _ = std::fs::remove_file(&self.endpoint_file);
    }
}

/// Serves the API for `node` as `config` says (loopback only; port 0 picks a free port),
/// with the data dir's token (created, or replaced when unusable: see
/// [`DataDir::api_token`]), and writes `api.json` into the data dir. An error (not loopback,
/// no token, the port taken) means no API.
pub async fn serve(node: NodeHandle, config: &ApiConfig, data_dir: &DataDir) -> anyhow::Result<ApiServer> {
    let addr = config.listen;
    anyhow::ensure!(addr.ip().is_loopback(), "the API listens on loopback addresses only, not {addr}");
    let token_path = data_dir.api_token_path();
    let token = data_dir
        .api_token()
        .with_context(|| format!("no API token: cannot read or write {}", token_path.display()))?;
    if let TokenOrigin::Replaced(why) = token.origin() {
        tracing::warn!("{} held no usable token ({why}); a fresh one replaces it", token_path.display());
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let peer_samples = PeerSamples::default();
    let state =
        AppState { node: node.clone(), streams: EventStreams::default(), peer_samples: peer_samples.clone() };
    let app = router(state, Guard::new(addr.port(), &config.hosts, token.secret()));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
            tracing::error!("API server failed: {e}");
        }
    });
    let endpoint = Endpoint { addr, peer_id: node.peer_id().to_string(), pid: std::process::id() };
    let endpoint_file = data_dir.api_endpoint();
    std::fs::write(&endpoint_file, serde_json::to_vec_pretty(&endpoint)?)?;
    tracing::info!(%addr, "local API listening");
    let dashboard = super::dashboard_url(addr, token.secret());
    let sampler = tokio::spawn(peer_samples.run(node.clone()));
    Ok(ApiServer { addr, endpoint_file, stop: Some(stop), task, sampler, dashboard })
}

/// An answer `{"error": {"kind", "message"}}` with `status`.
fn error(status: StatusCode, kind: &str, message: impl std::fmt::Display) -> Response {
    (status, axum::Json(json!({"error": {"kind": kind, "message": message.to_string()}}))).into_response()
}

fn node_error(e: NodeError) -> Response {
    let (status, kind) = error_kind(&e);
    (status, axum::Json(json!({"error": error_body(kind, &e)}))).into_response()
}

/// The error object of a node's error: kind and message, and for a job no provider fits, each
/// provider found and why (`"candidates": [{"provider", "reason"}]`).
fn error_body(kind: &str, e: &NodeError) -> serde_json::Value {
    let mut body = json!({"kind": kind, "message": e.to_string()});
    if let NodeError::NoProvider { unfit, .. } = e {
        body["candidates"] = json!(unfit);
    }
    body
}

/// The HTTP status and the stable kind of a node's error (docs/architecture.md, "Local API").
fn error_kind(e: &NodeError) -> (StatusCode, &'static str) {
    match e {
        NodeError::Invalid(_) | NodeError::Refused(_) | NodeError::NoLedger => {
            (StatusCode::BAD_REQUEST, "invalid")
        }
        NodeError::NotFound(_) | NodeError::NoProvider { .. } => (StatusCode::NOT_FOUND, "not-found"),
        NodeError::Disagreement { .. } => (StatusCode::CONFLICT, "disagreement"),
        NodeError::Blob(crate::store::BlobError::StoreFull { .. })
        | NodeError::Transfer(crate::node::TransferError::Blob(crate::store::BlobError::StoreFull {
            ..
        })) => (StatusCode::INSUFFICIENT_STORAGE, "store-full"),
        NodeError::Net(_) | NodeError::Transfer(_) | NodeError::Undelivered(_) => {
            (StatusCode::BAD_GATEWAY, "network")
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

async fn status(State(state): State<AppState>) -> Response {
    let node = &state.node;
    let connected = node.connected_peers().await.unwrap_or_default();
    let manifest = node.manifest().map(|m| serde_json::to_value(m.body()).unwrap_or_default());
    axum::Json(json!({
        "peer_id": node.peer_id().to_string(),
        "listen_addrs": node.listen_addrs().iter().map(ToString::to_string).collect::<Vec<_>>(),
        "connected_peers": connected.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "providing": manifest.is_some(),
        "manifest": manifest,
        "refused": node.refusals(),
    }))
    .into_response()
}

async fn providers(State(state): State<AppState>) -> Response {
    match state.node.providers().await {
        Ok(views) => axum::Json(views).into_response(),
        Err(e) => node_error(e),
    }
}

/// A component's name and version; or `js=true` (and no body): the built-in JavaScript
/// runtime, as `js@<its version>`.
#[derive(Deserialize)]
struct PublishQuery {
    name: Option<String>,
    version: Option<String>,
    #[serde(default)]
    js: bool,
}

async fn publish(State(state): State<AppState>, Query(query): Query<PublishQuery>, body: Bytes) -> Response {
    let published = match (query.js, query.name, query.version) {
        (true, None, None) if body.is_empty() => state.node.publish_js().await,
        (false, Some(name), Some(version)) => state.node.publish(body.to_vec(), &name, &version).await,
        _ => Err(NodeError::Invalid("give a name and a version with the component, or js=true alone".into())),
    };
    match published {
        Ok(report) => axum::Json(report).into_response(),
        Err(e) => node_error(e),
    }
}

#[derive(Deserialize)]
struct FetchBody {
    reference: String,
}

async fn fetch(State(state): State<AppState>, axum::Json(body): axum::Json<FetchBody>) -> Response {
    let node = state.node.clone();
    ndjson_operation(["received", "total"], move |progress| async move {
        node.fetch(&body.reference, progress).await
    })
}

fn ndjson(value: &serde_json::Value) -> Bytes {
    let mut line = value.to_string().into_bytes();
    line.push(b'\n');
    Bytes::from(line)
}

fn reply<T: serde::Serialize>(result: Result<T, NodeError>) -> Response {
    match result {
        Ok(value) => axum::Json(value).into_response(),
        Err(e) => node_error(e),
    }
}

fn account(node: &NodeHandle, peer: Option<&str>) -> Result<PeerId, NodeError> {
    match peer {
        Some(peer) => peer.parse().map_err(|e| NodeError::Invalid(format!("peer {peer:?}: {e}"))),
        None => Ok(node.peer_id()),
    }
}

#[derive(Deserialize)]
struct AccountQuery {
    peer: Option<String>,
    limit: Option<u32>,
    /// History: entries from before this log position (the next page).
    before: Option<i64>,
    /// Jobs: contracts after the first `offset` (the next page).
    offset: Option<u32>,
}

/// Most entries or contracts one answer holds; more are read page by page.
const PAGE_LIMIT: u32 = 10_000;

async fn wallet_balance(State(state): State<AppState>, Query(query): Query<AccountQuery>) -> Response {
    let node = &state.node;
    reply(
        async {
            let peer = account(node, query.peer.as_deref())?;
            let (balance, flagged) = node.balance(peer).await?;
            let locked = node.locked(peer).await?;
            Ok(BalanceView { peer_id: peer.to_string(), balance, flagged, locked })
        }
        .await,
    )
}

async fn wallet_history(State(state): State<AppState>, Query(query): Query<AccountQuery>) -> Response {
    let node = &state.node;
    reply(
        async {
            let peer = account(node, query.peer.as_deref())?;
            node.history_before(peer, query.before, query.limit.unwrap_or(50).min(PAGE_LIMIT)).await
        }
        .await,
    )
}

#[derive(Deserialize)]
struct PaymentBody {
    to: String,
    amount: u64,
    reference: Option<String>,
}

async fn wallet_transfer(
    State(state): State<AppState>,
    axum::Json(body): axum::Json<PaymentBody>,
) -> Response {
    let node = &state.node;
    reply(
        async {
            let to = account(node, Some(&body.to))?;
            node.transfer(to, body.amount, body.reference.as_deref()).await
        }
        .await,
    )
}

async fn wallet_mint(State(state): State<AppState>, axum::Json(body): axum::Json<PaymentBody>) -> Response {
    let node = &state.node;
    reply(
        async {
            let to = account(node, Some(&body.to))?;
            node.mint(to, body.amount).await
        }
        .await,
    )
}

#[derive(Deserialize)]
struct ImportQuery {
    #[serde(default)]
    historical: bool,
}

async fn wallet_import(
    State(state): State<AppState>,
    Query(query): Query<ImportQuery>,
    body: Bytes,
) -> Response {
    reply(state.node.import(body.to_vec(), query.historical).await)
}

/// A submission: a component's `reference` and `call`, or a JavaScript job's `js` code and
/// `args` (a JSON array, as text or as JSON).
#[derive(Deserialize)]
struct SubmitBody {
    reference: Option<String>,
    call: Option<String>,
    js: Option<String>,
    args: Option<serde_json::Value>,
    offer: Option<u64>,
    max_fuel: Option<u64>,
    max_memory_bytes: u64,
    timeout_ms: u64,
    #[serde(default = "one")]
    replicas: usize,
    provider: Option<String>,
    #[serde(default = "three")]
    max_attempts: usize,
    /// Fuel spent at most re-running a failure one provider alone reports (0: never).
    #[serde(default = "audit_fuel")]
    audit_fuel: u64,
}

fn audit_fuel() -> u64 {
    crate::node::DEFAULT_AUDIT_FUEL
}

fn one() -> usize {
    1
}

fn three() -> usize {
    3
}

/// What a submission runs: a component's call, or a JavaScript function on its arguments.
enum Submitted {
    Component,
    Js { code: String, args: String },
}

impl SubmitBody {
    /// What the body asks to run, or why it is not a submission.
    fn submitted(&mut self) -> Result<Submitted, String> {
        match (&self.reference, &self.call, self.js.take()) {
            (Some(_), Some(_), None) => Ok(Submitted::Component),
            (None, None, Some(code)) => {
                let args = match self.args.take() {
                    None => "[]".to_owned(),
                    Some(serde_json::Value::String(text)) => text,
                    Some(value @ serde_json::Value::Array(_)) => value.to_string(),
                    Some(other) => return Err(format!("args must be a JSON array, not {other}")),
                };
                Ok(Submitted::Js { code, args })
            }
            _ => Err(
                "give a component's \"reference\" and \"call\", or a JavaScript job's \"js\" (and \"args\")"
                    .into(),
            ),
        }
    }
}

async fn submit(State(state): State<AppState>, axum::Json(mut body): axum::Json<SubmitBody>) -> Response {
    let provider = match body.provider.as_deref().map(str::parse::<PeerId>).transpose() {
        Ok(provider) => provider,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid", format!("provider: {e}")),
    };
    let submitted = match body.submitted() {
        Ok(submitted) => submitted,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid", e),
    };
    let options = crate::node::SubmitOptions {
        reference: body.reference.unwrap_or_default(),
        call: body.call.unwrap_or_default(),
        offer: body.offer,
        max_fuel: body.max_fuel,
        max_memory_bytes: body.max_memory_bytes,
        timeout: std::time::Duration::from_millis(body.timeout_ms),
        replicas: body.replicas.clamp(1, 16),
        provider,
        max_attempts: body.max_attempts.clamp(1, 16),
        audit_fuel: body.audit_fuel,
    };
    let node = state.node.clone();
    ndjson_operation(["done", "total"], move |progress| async move {
        match submitted {
            Submitted::Component => node.submit(options, progress).await,
            Submitted::Js { code, args } => node.submit_js(&code, &args, options, progress).await,
        }
    })
}

/// Progress reported by a long operation: `(first, second)`, named by the operation.
type Progress = Box<dyn Fn(u64, u64) + Send + Sync>;

/// Runs a long operation in a task of its own and answers NDJSON: `{"progress": {..}}` lines
/// (skipped when the client reads slowly, see [`PROGRESS_BUFFER`]), then `{"done": ..}` or
/// `{"error": ..}`.
fn ndjson_operation<T, Fut>(names: [&'static str; 2], operation: impl FnOnce(Progress) -> Fut) -> Response
where
    T: serde::Serialize,
    Fut: Future<Output = Result<T, NodeError>> + Send + 'static,
{
    let (lines, receiver) = mpsc::channel::<Bytes>(PROGRESS_BUFFER);
    let progress_lines = lines.clone();
    let progress: Progress = Box::new(move |a, b| {
        let _ = progress_lines.try_send(ndjson(&json!({"progress": {names[0]: a, names[1]: b}})));
    });
    let running = operation(progress);
    tokio::spawn(async move {
        let last = match running.await {
            Ok(report) => json!({"done": report}),
            Err(e) => {
                let (_, kind) = error_kind(&e);
                json!({"error": error_body(kind, &e)})
            }
        };
        let _ = lines.send(ndjson(&last)).await;
    });
    ndjson_response(receiver)
}

fn ndjson_response(receiver: mpsc::Receiver<Bytes>) -> Response {
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|line| (Ok::<_, std::convert::Infallible>(line), receiver))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e))
}

async fn jobs(State(state): State<AppState>, Query(query): Query<AccountQuery>) -> Response {
    reply(state.node.jobs_from(query.offset.unwrap_or(0), query.limit.unwrap_or(50).min(PAGE_LIMIT)).await)
}

async fn job(
    State(state): State<AppState>,
    axum::extract::Path(job): axum::extract::Path<String>,
) -> Response {
    match job.parse::<crate::protocol::JobId>() {
        Ok(job) => reply(state.node.job(job).await),
        Err(e) => error(StatusCode::BAD_REQUEST, "invalid", e),
    }
}
