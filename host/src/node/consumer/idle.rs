//! Job streams kept open after a paid job, to carry the next job to the same provider without
//! opening a stream (the provider keeps its side open `IDLE_STREAM_WAIT`, 10 s).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::super::lock;
use crate::crypto::PeerId;
use crate::net::Stream;

/// Job streams kept open after a job paid on them, to carry the next job to the same provider
/// without opening a stream (at most [`IDLE_PER_PROVIDER`] per provider and [`MAX_IDLE`] in
/// all, each for [`IDLE_REUSE`]: the provider keeps one open 10 s).
#[derive(Default)]
pub(super) struct IdleStreams(Mutex<IdleMap>);

type IdleMap = HashMap<PeerId, Vec<(Instant, Stream)>>;

/// Idle job streams kept per provider.
const IDLE_PER_PROVIDER: usize = 32;
/// Idle job streams kept in all.
const MAX_IDLE: usize = 256;
/// How long an idle job stream is reused: well within the provider's 10 s.
const IDLE_REUSE: Duration = Duration::from_secs(5);

impl IdleStreams {
    /// The most recently used live stream to `provider`, if any (stale ones are dropped).
    pub(super) fn take(&self, provider: PeerId) -> Option<Stream> {
        let mut idle = lock(&self.0);
        let streams = idle.get_mut(&provider)?;
        let found = loop {
            match streams.pop() {
                Some((since, stream)) if since.elapsed() < IDLE_REUSE => break Some(stream),
                Some(_) => continue,
                None => break None,
            }
        };
        if streams.is_empty() {
            idle.remove(&provider);
        }
        found
    }

    /// Keeps a stream for the next job to `provider`; beyond the bounds it is dropped.
    pub(super) fn put(&self, provider: PeerId, stream: Stream) {
        let mut idle = lock(&self.0);
        idle.retain(|_, streams| {
            streams.retain(|(since, _)| since.elapsed() < IDLE_REUSE);
            !streams.is_empty()
        });
        let total: usize = idle.values().map(Vec::len).sum();
        let streams = idle.entry(provider).or_default();
        if total < MAX_IDLE && streams.len() < IDLE_PER_PROVIDER {
            streams.push((Instant::now(), stream));
        }
    }
}
