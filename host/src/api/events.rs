//! `GET /v1/events`: the dashboard's live feed as Server-Sent Events, and `GET /v1/activity`:
//! its charts' last hour.
//!
//! The feed sends, in this order: the log lines kept (`event: log`), the node's state
//! (`event: state`: peers, balance, locked, providing, latest contract, refusals), then live log
//! lines as they come and the state again whenever it changes. The state is read every
//! [`STATE_EVERY`], and [`STATE_SOON`] after a log line (something happened); it is sent only
//! when it differs from the last sent. A quiet feed sends a comment every [`KEEP_ALIVE`] so a
//! vanished page is noticed. A feed ends when its page goes away (the stream is dropped: no task
//! of its own); at most [`MAX_EVENT_STREAMS`] are open at once, beyond that `503 busy`.
//! `EventSource` cannot send a bearer header, so the page reads the stream with `fetch`; the
//! guard (Host, Origin, token) checks it like every route.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};
use tokio::time::Instant;

use crate::clock::now_ms;
use crate::logfeed::{self, LogLine};
use crate::node::NodeHandle;

/// Feeds open at once (one per open dashboard tab); one more is answered `503 busy`.
pub const MAX_EVENT_STREAMS: usize = 16;
/// How often a feed reads the node's state when nothing is logged.
pub const STATE_EVERY: Duration = Duration::from_secs(2);
/// How soon after a log line a feed reads the state again.
pub const STATE_SOON: Duration = Duration::from_millis(250);
/// The longest a feed stays silent: then it sends a comment line.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Peer-count samples kept for the Overview's chart: one a minute, an hour of them.
pub const ACTIVITY_SAMPLES: usize = 60;
/// The most contracts read to count jobs per minute over the last hour.
const ACTIVITY_CONTRACTS: u32 = 5_000;

/// The places for open feeds.
#[derive(Clone)]
pub(super) struct EventStreams {
    places: Arc<Semaphore>,
}

impl Default for EventStreams {
    fn default() -> EventStreams {
        EventStreams { places: Arc::new(Semaphore::new(MAX_EVENT_STREAMS)) }
    }
}

/// Answers a feed for `node`; `None` when [`MAX_EVENT_STREAMS`] are open (answered `503
/// busy`).
pub(super) fn open(node: NodeHandle, streams: &EventStreams) -> Option<Response> {
    let place = streams.places.clone().try_acquire_owned().ok()?;
    // Subscribed before the kept lines are read: a line logged in between is not lost (it may
    // come twice).
    let log = logfeed::feed().subscribe();
    let backlog = logfeed::feed().recent().iter().map(|line| event("log", line)).collect();
    let now = Instant::now();
    let feed =
        Feed { node, log, backlog, last_state: None, read_state_at: now, last_sent: now, _place: place };
    let stream = futures::stream::unfold(feed, |mut feed| async move {
        let chunk = feed.next().await;
        Some((Ok::<_, std::convert::Infallible>(chunk), feed))
    });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Some(response)
}

/// One open feed.
struct Feed {
    node: NodeHandle,
    /// Live log lines.
    log: broadcast::Receiver<LogLine>,
    /// Events to send before anything else (the kept log lines).
    backlog: VecDeque<Bytes>,
    /// The state last sent.
    last_state: Option<Value>,
    /// When to read the state next.
    read_state_at: Instant,
    /// When something was last sent (for [`KEEP_ALIVE`]).
    last_sent: Instant,
    /// Its place among [`MAX_EVENT_STREAMS`], given back when the page goes away.
    _place: OwnedSemaphorePermit,
}

impl Feed {
    /// The next chunk to send; waits until there is one.
    async fn next(&mut self) -> Bytes {
        let chunk = self.wait().await;
        self.last_sent = Instant::now();
        chunk
    }

    async fn wait(&mut self) -> Bytes {
        if let Some(chunk) = self.backlog.pop_front() {
            return chunk;
        }
        loop {
            tokio::select! {
                line = self.log.recv() => match line {
                    Ok(line) => {
                        self.read_state_at = self.read_state_at.min(Instant::now() + STATE_SOON);
                        return event("log", &line);
                    }
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        return event("log-gap", &json!({"skipped": skipped}));
                    }
                    // The feed is a static: it never closes. Should it, the state still flows.
                    Err(broadcast::error::RecvError::Closed) => self.log = logfeed::feed().subscribe(),
                },
                () = tokio::time::sleep_until(self.read_state_at) => {
                    self.read_state_at = Instant::now() + STATE_EVERY;
                    let state = node_state(&self.node).await;
                    if self.last_state.as_ref() != Some(&state) {
                        let chunk = event("state", &state);
                        self.last_state = Some(state);
                        return chunk;
                    }
                }
                () = tokio::time::sleep_until(self.last_sent + KEEP_ALIVE) => {
                    return Bytes::from_static(b": keep-alive\n\n");
                }
            }
        }
    }
}

/// An SSE event `name` carrying `data` as JSON on one line.
fn event(name: &str, data: &impl Serialize) -> Bytes {
    let data = serde_json::to_string(data).unwrap_or_else(|_| "null".into());
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// What the page shows everywhere and redraws when it changes.
async fn node_state(node: &NodeHandle) -> Value {
    let me = node.peer_id();
    let peers = node.connected_peers().await.map_or(0, |peers| peers.len());
    let balance = node.balance(me).await.ok().map(|(balance, _)| balance);
    let locked = node.locked(me).await.ok();
    let latest = node.jobs(1).await.ok().and_then(|jobs| jobs.into_iter().next());
    json!({
        "peers": peers,
        "balance": balance,
        "locked": locked,
        "providing": node.manifest().map(|m| m.hash().to_string()),
        "latest_contract": latest.map(|c| json!({"contract": c["contract"], "state": c["state"], "updated_ms": c["updated_ms"]})),
        "refused": node.refusals().values().sum::<u64>(),
    })
}

/// Connected-peer counts, one a minute, the latest [`ACTIVITY_SAMPLES`].
#[derive(Clone, Default)]
pub(super) struct PeerSamples {
    samples: Arc<Mutex<VecDeque<(u64, usize)>>>,
}

impl PeerSamples {
    /// Until aborted (the server's stop does): samples `node`'s peers now and every minute.
    pub(super) async fn run(self, node: NodeHandle) {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            let peers = node.connected_peers().await.map_or(0, |peers| peers.len());
            let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
            if samples.len() == ACTIVITY_SAMPLES {
                samples.pop_front();
            }
            samples.push_back((now_ms(), peers));
        }
    }

    fn snapshot(&self) -> Vec<(u64, usize)> {
        self.samples.lock().unwrap_or_else(PoisonError::into_inner).iter().copied().collect()
    }
}

/// `GET /v1/activity`: `{"peers": [[ms, count]…], "jobs_per_minute": [count×60]}`, the last
/// hour, oldest first (`jobs_per_minute[59]` is the current minute; contracts by their start).
pub(super) async fn activity(node: &NodeHandle, peers: &PeerSamples) -> Value {
    let now = now_ms();
    let mut per_minute = vec![0u64; 60];
    for contract in node.jobs(ACTIVITY_CONTRACTS).await.unwrap_or_default() {
        let age_minutes = now.saturating_sub(contract["created_ms"].as_u64().unwrap_or(0)) / 60_000;
        if let Some(slot) = 59usize.checked_sub(usize::try_from(age_minutes).unwrap_or(usize::MAX)) {
            per_minute[slot] += 1;
        }
    }
    json!({"peers": peers.snapshot(), "jobs_per_minute": per_minute})
}
