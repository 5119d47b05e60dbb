//! The API client the `cue` commands use (blocking, ureq): finds the node through the data
//! dir, authenticates with its token, maps errors.

use std::io::BufRead as _;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::Endpoint;
use crate::datadir::DataDir;
use crate::node::{BalanceView, EntryView};

/// Why a command could not talk to its node, or what the node refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No node runs for this data dir.
    #[error("no node is running for data dir {data_dir} (start one with `cue node`)")]
    NoNode {
        /// The data dir.
        data_dir: String,
    },
    /// The node did not answer.
    #[error("the node at {addr} does not answer ({reason}); is `cue node` still running?")]
    Unreachable {
        /// Where it should be.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The node refused the request.
    #[error("{message}")]
    Refused {
        /// The error kind: the guard's (`misdirected`, `cross-origin`, `unauthorized`) or the
        /// node's (`invalid`, `not-found`, `disagreement`, `network`, `internal`).
        kind: String,
        /// What the node said.
        message: String,
    },
    /// The answer was not what the API promises.
    #[error("unexpected answer from the node: {0}")]
    Protocol(String),
}

/// A connection to the node of a data dir.
pub struct ApiClient {
    /// Where the node's API listens.
    addr: std::net::SocketAddr,
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl ApiClient {
    /// Finds the running node of `data_dir` (its `api.json` and `api.token`). Requests may
    /// take up to `timeout` (discovery and transfers take a while).
    pub fn discover(data_dir: &DataDir, timeout: Duration) -> Result<ApiClient, ApiError> {
        let no_node = || ApiError::NoNode { data_dir: data_dir.root().display().to_string() };
        let endpoint = std::fs::read(data_dir.api_endpoint()).map_err(|_| no_node())?;
        let endpoint: Endpoint = serde_json::from_slice(&endpoint).map_err(|_| no_node())?;
        let token = std::fs::read_to_string(data_dir.api_token_path()).map_err(|_| no_node())?;
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(ApiClient {
            addr: endpoint.addr,
            base: format!("http://{}", endpoint.addr),
            token: token.trim().to_owned(),
            agent,
        })
    }

    /// The node's dashboard, its token in the fragment (see [`super::dashboard_url`]).
    pub fn dashboard_url(&self) -> String {
        super::dashboard_url(self.addr, &self.token)
    }

    /// `GET path`, answering the JSON body.
    pub fn get(&self, path: &str) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.base);
        let response = self.agent.get(&url).header("Authorization", &self.bearer()).call();
        self.json(&url, response)
    }

    /// `POST path` with raw bytes, answering the JSON body.
    pub fn post_bytes(&self, path: &str, bytes: &[u8]) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.base);
        let response = self
            .agent
            .post(&url)
            .header("Authorization", &self.bearer())
            .header("Content-Type", "application/octet-stream")
            .send(bytes);
        self.json(&url, response)
    }

    /// `POST path` with a JSON body, answering the JSON body.
    pub fn post_json(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.base);
        let response = self.agent.post(&url).header("Authorization", &self.bearer()).send_json(body);
        self.json(&url, response)
    }

    /// Whether the node answers at all (a stale `api.json` after a crash does not).
    pub fn is_alive(&self) -> bool {
        !matches!(self.get("/v1/status"), Err(ApiError::Unreachable { .. }))
    }

    /// `POST path` with a JSON body and an NDJSON answer: calls `on_line` for every line but
    /// the last, and answers the last (`{"done": ..}`), or the error it carries.
    pub fn post_stream(
        &self,
        path: &str,
        body: &Value,
        mut on_line: impl FnMut(&Value),
    ) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.base);
        let response = self.agent.post(&url).header("Authorization", &self.bearer()).send_json(body);
        let mut response = response.map_err(|e| self.unreachable(e))?;
        if !response.status().is_success() {
            let value: Value =
                response.body_mut().read_json().map_err(|e| ApiError::Protocol(e.to_string()))?;
            return Err(refusal(&value));
        }
        let reader = std::io::BufReader::new(response.body_mut().as_reader());
        for line in reader.lines() {
            // The answer broke off: the node stopped (or crashed) while working on it.
            let line = line.map_err(|e| ApiError::Unreachable {
                addr: self.base.clone(),
                reason: format!("its answer broke off: {e}"),
            })?;
            let value: Value = serde_json::from_str(&line).map_err(|e| ApiError::Protocol(e.to_string()))?;
            if let Some(done) = value.get("done") {
                return Ok(done.clone());
            }
            if value.get("error").is_some() {
                return Err(refusal(&value));
            }
            on_line(&value);
        }
        Err(ApiError::Protocol("the answer ended without a result".into()))
    }

    /// An account's balance (`None`: the node's own).
    pub fn balance(&self, peer: Option<&str>) -> Result<BalanceView, ApiError> {
        typed(self.get(&format!("/v1/wallet/balance?{}", peer_query(peer)))?)
    }

    /// An account's latest `limit` ledger entries, newest first (`None`: the node's own), from
    /// before log position `before` (`None`: from the latest).
    pub fn history(
        &self,
        peer: Option<&str>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<EntryView>, ApiError> {
        let before = before.map(|b| format!("&before={b}")).unwrap_or_default();
        typed(self.get(&format!("/v1/wallet/history?{}limit={limit}{before}", peer_query(peer)))?)
    }

    /// Pays `amount` to `to` from the node's account (`reference`: `contract:<hash>` or
    /// `receipt:<hash>`).
    pub fn transfer(&self, to: &str, amount: u64, reference: Option<&str>) -> Result<EntryView, ApiError> {
        typed(
            self.post_json(
                "/v1/wallet/transfer",
                &json!({"to": to, "amount": amount, "reference": reference}),
            )?,
        )
    }

    /// Mints `amount` to `to` (the node must be the mint authority).
    pub fn mint(&self, to: &str, amount: u64) -> Result<EntryView, ApiError> {
        typed(self.post_json("/v1/wallet/mint", &json!({"to": to, "amount": amount}))?)
    }

    /// Verifies and applies a signed ledger entry on the node, which gossips it.
    pub fn import(&self, bytes: &[u8], historical: bool) -> Result<EntryView, ApiError> {
        typed(self.post_bytes(&format!("/v1/wallet/import?historical={historical}"), bytes)?)
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    fn unreachable(&self, e: ureq::Error) -> ApiError {
        ApiError::Unreachable { addr: self.base.clone(), reason: e.to_string() }
    }

    fn json(
        &self,
        _url: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, ApiError> {
        let mut response = response.map_err(|e| self.unreachable(e))?;
        let ok = response.status().is_success();
        let value: Value = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_json()
            .map_err(|e| ApiError::Protocol(e.to_string()))?;
        if ok { Ok(value) } else { Err(refusal(&value)) }
    }
}

/// An answer read as the view the API promises.
fn typed<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|e| ApiError::Protocol(e.to_string()))
}

/// `peer=<id>&`, or nothing for the node's own account.
fn peer_query(peer: Option<&str>) -> String {
    peer.map(|p| format!("peer={}&", encode_query(p))).unwrap_or_default()
}

fn refusal(value: &Value) -> ApiError {
    let error = &value["error"];
    ApiError::Refused {
        kind: error["kind"].as_str().unwrap_or("unknown").to_owned(),
        message: error["message"].as_str().unwrap_or("the node refused the request").to_owned(),
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
pub fn encode_query(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
