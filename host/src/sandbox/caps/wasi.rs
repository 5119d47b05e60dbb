//! The WASI 0.2 world a job sees: every capability closed or virtualised, deterministically.
//!
//! - no preopened directories, no environment variables, no arguments, empty stdin;
//! - sockets and name lookup denied;
//! - stdout and stderr captured into the bounded job log, always writable;
//! - `wasi:random` (secure and insecure) seeded from the job;
//! - clocks and polling are virtual, linked over wasmtime-wasi's by [`super::time`]; the
//!   context's own clocks are fixed at the job's start, so nothing here reads the host's time.
//!
//! Re-running the same job therefore reproduces the same reads, byte for byte.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use sha2::{Digest, Sha256};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder};

use super::EventSink;
use super::log::{JobEvent, JobLog, LogSource};
use super::time::{CLOCK_READ_STEP_NS, JOB_EPOCH_UNIX_SECS};
use crate::sandbox::error::Stop;

/// Seeds for everything random a job can read, derived from one 32-byte job seed.
pub(crate) struct JobSeeds {
    pub(crate) host: [u8; 32],
    secure: [u8; 32],
    insecure: [u8; 32],
    insecure_seed: u128,
}

impl JobSeeds {
    pub(crate) fn derive(job_seed: &[u8; 32]) -> Self {
        let sub = |label: &[u8]| -> [u8; 32] {
            Sha256::new()
                .chain_update(b"cue-job-seed/")
                .chain_update(label)
                .chain_update(job_seed)
                .finalize()
                .into()
        };
        let seed = sub(b"insecure-seed");
        JobSeeds {
            host: sub(b"host"),
            secure: sub(b"secure"),
            insecure: sub(b"insecure"),
            insecure_seed: u128::from_le_bytes(seed[..16].try_into().expect("16 bytes")),
        }
    }
}

/// Builds the WASI context of one job.
pub(crate) fn build_wasi(seeds: &JobSeeds, log: &Arc<Mutex<JobLog>>, events: &Option<EventSink>) -> WasiCtx {
    let stream = |source| LogStream { source, log: log.clone(), events: events.clone() };
    WasiCtxBuilder::new()
        .stdout(stream(LogSource::Stdout))
        .stderr(stream(LogSource::Stderr))
        .wall_clock(JobStartClock)
        .monotonic_clock(JobStartClock)
        .secure_random(StdRng::from_seed(seeds.secure))
        .insecure_random(StdRng::from_seed(seeds.insecure))
        .insecure_random_seed(seeds.insecure_seed)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }))
        .build()
}

/// The WASI context's own clocks, which no job reaches (every clock function is linked to the
/// job's virtual clock by `time.rs`): fixed at the job's start, so that even a path that
/// read them could not see the host's time.
struct JobStartClock;

impl HostWallClock for JobStartClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(CLOCK_READ_STEP_NS)
    }

    fn now(&self) -> Duration {
        Duration::from_secs(JOB_EPOCH_UNIX_SECS)
    }
}

impl HostMonotonicClock for JobStartClock {
    fn resolution(&self) -> u64 {
        CLOCK_READ_STEP_NS
    }

    fn now(&self) -> u64 {
        0
    }
}

/// Stdout or stderr of a job, written into its bounded log.
#[derive(Clone)]
struct LogStream {
    source: LogSource,
    log: Arc<Mutex<JobLog>>,
    events: Option<EventSink>,
}

impl LogStream {
    fn append(&self, bytes: &[u8]) -> Result<(), Stop> {
        let lines = self.log.lock().expect("job log lock").push_stream(self.source, bytes).map_err(Stop)?;
        if let Some(events) = &self.events {
            lines.into_iter().for_each(|line| events(JobEvent::Log(line)));
        }
        Ok(())
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

/// The most a guest may write in one `write` call, as WASI's `check-write` reports.
const WRITE_BUDGET: usize = 64 << 10;

impl OutputStream for LogStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes).map_err(|stop| StreamError::Trap(wasmtime::Error::new(stop)))
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_BUDGET)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogStream {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for LogStream {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Poll::Ready(self.append(buf).map(|()| buf.len()).map_err(std::io::Error::other))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
