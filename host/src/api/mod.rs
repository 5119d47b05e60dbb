//! The local control API: HTTP + JSON on loopback, through which the other `cue` commands talk
//! to a running node. The only importer of axum (server) and ureq (client).
//!
//! # Security
//!
//! The server binds loopback addresses only, and a guard (`guard`) stands in front of every
//! route, unknown paths included. It checks each request in this order and answers the first
//! failure with `{"error": {"kind", "message"}}`, the message naming what was wrong:
//!
//! | # | check | refused with |
//! |---|---|---|
//! | 1 | exactly one `Host` header (and the request target's authority, if it has one) naming this API: `localhost`, `127.0.0.1`, `[::1]` or a name given with `cue node --api-host NAME`, with the API's port or none (names compare case-insensitively, IP addresses in canonical form) | 421 `misdirected` |
//! | 2 | no `Origin` header, or this API's own origin: `http://` + one of those names + `:PORT` | 403 `cross-origin` |
//! | 3 | `Authorization: Bearer <token>`, the token of `<data-dir>/api.token`, compared in constant time | 401 `unauthorized` (500 `internal` if the node somehow has no usable token: nothing is let in) |
//!
//! Check 1 closes DNS rebinding (a web page whose name is made to resolve to 127.0.0.1 still
//! sends its own name as `Host`); check 2 closes cross-site requests from a browser, on every
//! method (no route needs to be called from another origin), so a dashboard served from this
//! API may call it and nothing else may; check 3 means whoever can read the data dir can drive
//! the node, and nobody else can. The `cue` commands send no `Origin`, and `Host` as the
//! address in `api.json`.
//!
//! The token: the node reads `api.token` at start and uses it only if it holds 32 to 128 hex
//! digits (128 to 512 bits; whitespace around them is ignored) and, on Unix, only its owner may
//! read or write it. Otherwise (no file, empty, short, long, not hex, readable by others) the
//! node writes a fresh token (32 random bytes, 64 hex digits) atomically in its place — a
//! temporary file created 0600, synced, renamed over `api.token` — and logs a warning naming
//! the reason; the `cue` commands read the new token from the file. If it cannot (the file or
//! the data dir cannot be read or written) the node refuses to start. Where the server listens
//! is written to `<data-dir>/api.json` while it runs.
//!
//! # Routes
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | GET | `/v1/status` | | peer id, addresses, connected peers, manifest |
//! | GET | `/v1/providers` | | `[ProviderView]`, best first |
//! | POST | `/v1/publish?name=N&version=V` (or `?js=true`, no body: the built-in JavaScript runtime) | the component's bytes | `PublishReport` |
//! | POST | `/v1/fetch` | `{"reference": "fib@^1"}` | NDJSON: `{"progress": ..}` lines, then `{"done": FetchReport}` or `{"error": ..}` |
//! | POST | `/v1/submit` | `{"reference", "call"` — or `"js", "args"?` (a JavaScript job: code and a JSON array, as text or JSON) — `, "max_memory_bytes", "timeout_ms", "offer"?, "max_fuel"?, "replicas"?, "provider"?, "max_attempts"?, "audit_fuel"?}` (no `max_fuel`: what the offer buys from each provider) | NDJSON: `{"progress": ..}` lines, then `{"done": SubmitReport}` or `{"error": ..}` |
//! | GET | `/v1/jobs?limit=N&offset=K` | | contracts, most recently changed first (at most 10,000; `offset`: the next page) |
//! | GET | `/v1/jobs/{job}` | | a job's contracts and events |
//! | GET | `/v1/wallet/balance?peer=P` | | `{"peer_id", "balance", "flagged"}` |
//! | GET | `/v1/wallet/history?peer=P&limit=N&before=POS` | | `[EntryView]`, newest first (at most 10,000; `before`: the next page, before the last entry's `log_position`) |
//! | POST | `/v1/wallet/transfer` | `{"to", "amount", "reference"?}` | `EntryView` |
//! | POST | `/v1/wallet/mint` | `{"to", "amount"}` | `EntryView` |
//! | POST | `/v1/wallet/import?historical=B` | a signed event's bytes | `EntryView` |
//! | GET | `/v1/events` | | Server-Sent Events: `log`, `log-gap`, `state` (see `events`) |
//! | GET | `/v1/activity` | | `{"peers": [[ms, n]…], "jobs_per_minute": [n×60]}`, the last hour |
//! | GET | `/v1/network` | | `NetworkView`: genesis id, mint authority, whether this node is it |
//! | GET | `/v1/components` | | `[ComponentView]`: the components known by name, with their WIT worlds |
//! | POST | `/v1/provide` | `{"price_per_mfuel"?, "base_fee"?, "max_concurrent_jobs"?, "max_memory_bytes"?, "max_execution_ms"?, "min_reputation"?}` | NDJSON: `{"progress": {"done", "total"}}` (benchmark runs), then `{"done": {"hash", "expires_ms", "manifest"}}` or `{"error": ..}` |
//! | POST | `/v1/provide/stop` | | `{"was_providing": B}` |
//!
//! # The dashboard
//!
//! `GET /` and `/ui/*` serve the dashboard's files (embedded; `dashboard`), with a strict
//! [`CONTENT_SECURITY_POLICY`]. They pass checks 1 and 2 but not 3: a browser's navigation
//! cannot carry a bearer token, and the files hold no secret. The page takes the token from its
//! URL's fragment (`http://127.0.0.1:PORT/#token=…`, printed by `cue node` and `cue ui`; a
//! fragment is never sent to a server), keeps it in the tab's session storage, removes it from
//! the address bar, and sends it as the bearer header on every call; never in a query string or
//! a cookie.
//!
//! Errors are `{"error": {"kind": K, "message": M}}` with a matching status code: the guard's
//! (above), `not-found` (404) for a path that is no route, and the node's (`server::error_kind`,
//! docs/architecture.md "Local API").

mod client;
mod dashboard;
mod events;
mod guard;
mod server;
#[cfg(test)]
mod tests;

pub use client::{ApiClient, ApiError, encode_query};
pub use dashboard::CONTENT_SECURITY_POLICY;
pub use events::{KEEP_ALIVE, MAX_EVENT_STREAMS, STATE_EVERY};
pub use guard::{HostName, HostNameError, LOOPBACK_HOSTS};
pub use server::{ApiServer, serve};

use serde::{Deserialize, Serialize};

/// Largest request body: a component of the sandbox's largest size, plus room.
pub const MAX_BODY_BYTES: usize = 65 * 1024 * 1024;

/// Where the API listens and which names it answers to (`cue node --api`, `--api-host`).
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// A loopback address; port 0 picks a free port.
    pub listen: std::net::SocketAddr,
    /// Names a request may give as its `Host` and in its `Origin`, besides
    /// [`LOOPBACK_HOSTS`].
    pub hosts: Vec<HostName>,
}

/// The dashboard of the API at `addr`, its `token` in the fragment: the page keeps it and sends
/// it as the bearer header; a browser never sends a fragment to any server.
pub fn dashboard_url(addr: std::net::SocketAddr, token: &str) -> String {
    format!("http://{addr}/#token={token}")
}

/// Where a running node's API is, as written to `<data-dir>/api.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Endpoint {
    /// `127.0.0.1:PORT`.
    pub addr: std::net::SocketAddr,
    /// The node's peer id.
    pub peer_id: String,
    /// The node's process id.
    pub pid: u32,
}
