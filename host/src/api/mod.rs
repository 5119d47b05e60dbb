//! The local control API: HTTP + JSON on loopback, through which the other `cue` commands talk
//! to a running node. The only importer of axum (server) and ureq (client).
//!
//! Security: the server binds loopback addresses only and every request must carry
//! `Authorization: Bearer <token>`, the token being the contents of `<data-dir>/api.token`
//! (created 0600 on first use). Whoever can read the data dir can drive the node; nobody else
//! can. Where the server listens is written to `<data-dir>/api.json` while it runs.
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | GET | `/v1/status` | | peer id, addresses, connected peers, manifest |
//! | GET | `/v1/providers` | | `[ProviderView]`, best first |
//! | POST | `/v1/publish?name=N&version=V` | the component's bytes | `PublishReport` |
//! | POST | `/v1/fetch` | `{"reference": "fib@^1"}` | NDJSON: `{"progress": ..}` lines, then `{"done": FetchReport}` or `{"error": ..}` |
//! | POST | `/v1/submit` | `{"reference", "call", "max_fuel", "max_memory_bytes", "timeout_ms", "offer"?, "replicas"?, "provider"?, "max_attempts"?}` | NDJSON: `{"progress": ..}` lines, then `{"done": SubmitReport}` or `{"error": ..}` |
//! | GET | `/v1/jobs?limit=N` | | contracts, most recently changed first |
//! | GET | `/v1/jobs/{job}` | | a job's contracts and events |
//! | GET | `/v1/wallet/balance?peer=P` | | `{"peer_id", "balance", "flagged"}` |
//! | GET | `/v1/wallet/history?peer=P&limit=N` | | `[EntryView]`, newest first |
//! | POST | `/v1/wallet/transfer` | `{"to", "amount", "reference"?}` | `EntryView` |
//! | POST | `/v1/wallet/mint` | `{"to", "amount"}` | `EntryView` |
//! | POST | `/v1/wallet/import?historical=B` | a signed event's bytes | `EntryView` |
//!
//! Errors are `{"error": {"kind": K, "message": M}}` with a matching status code.

mod client;
mod server;

pub use client::{ApiClient, ApiError, encode_query};
pub use server::{ApiServer, serve};

use serde::{Deserialize, Serialize};

/// Largest request body: a component of the sandbox's largest size, plus room.
pub const MAX_BODY_BYTES: usize = 65 * 1024 * 1024;

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
