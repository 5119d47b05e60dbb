//! What a running job can reach, one file per capability. Everything starts closed: a job
//! gets exactly the `cue:job/host` interface and a WASI 0.2 world in which every capability
//! is closed (no files, no environment, no sockets, empty stdin) or virtualised (stdout and
//! stderr go to the bounded job log; clocks and randomness are deterministic per job).

mod host;
mod log;
mod wasi;

pub(crate) use log::JobLog;
pub use log::{JobEvent, LogLevel, LogLine, LogSource};

pub use host::HOST_CALL_FUEL;
pub(crate) use host::add_to_linker as add_host_to_linker;
use wasi::{JobSeeds, build_wasi};

use std::sync::{Arc, Mutex};

use rand::SeedableRng as _;
use rand::rngs::StdRng;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limits::JobLimiter;

/// Receives a job's live events (log lines, progress) while it runs.
pub type EventSink = Arc<dyn Fn(JobEvent) + Send + Sync>;

/// The data of one job's wasmtime `Store`: created fresh for every call, dropped after it,
/// so nothing leaks from one call to the next. The WASI context and the random generator
/// are built on first use: a job that never calls WASI does not pay for setting it up.
pub(crate) struct JobState {
    /// The closed/virtualised WASI context, once the job first calls WASI.
    wasi: Option<WasiCtx>,
    /// WASI's resource table (streams, pollables).
    table: ResourceTable,
    /// Enforces memory/table/instance limits and records peak memory.
    pub(crate) limiter: JobLimiter,
    /// The bounded log shared with the stdout/stderr streams.
    pub(crate) log: Arc<Mutex<JobLog>>,
    /// Everything random in the job derives from this seed.
    seed: [u8; 32],
    /// Source of `cue:job/host.random-u64`, once the job first asks.
    rng: Option<StdRng>,
    /// Where live events go, if anyone listens.
    pub(crate) events: Option<EventSink>,
}

impl JobState {
    pub(crate) fn new(
        seed: [u8; 32],
        limiter: JobLimiter,
        log: Arc<Mutex<JobLog>>,
        events: Option<EventSink>,
    ) -> Self {
        JobState { wasi: None, table: ResourceTable::new(), limiter, log, seed, rng: None, events }
    }

    /// The generator behind `cue:job/host.random-u64`.
    pub(crate) fn rng(&mut self) -> &mut StdRng {
        let seed = &self.seed;
        self.rng.get_or_insert_with(|| StdRng::from_seed(JobSeeds::derive(seed).host))
    }
}

impl WasiView for JobState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        if self.wasi.is_none() {
            self.wasi = Some(build_wasi(&JobSeeds::derive(&self.seed), &self.log, &self.events));
        }
        let ctx = self.wasi.as_mut().expect("built above");
        WasiCtxView { ctx, table: &mut self.table }
    }
}
