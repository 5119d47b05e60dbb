//! What a running job can reach, one file per capability. Everything starts closed: a job
//! gets exactly the `cue:job/host` interface and a WASI 0.2 world in which every capability
//! is closed (no files, no environment, no sockets, empty stdin) or virtualised (stdout and
//! stderr go to the bounded job log; clocks and randomness are deterministic per job).

mod host;
mod log;
mod wasi;

pub use log::{JobEvent, JobLog, LogLevel, LogLine, LogSource};

pub use host::HOST_CALL_FUEL;
pub(crate) use host::add_to_linker as add_host_to_linker;
pub(crate) use wasi::{JobSeeds, build_wasi};

use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limits::JobLimiter;

/// Receives a job's live events (log lines, progress) while it runs.
pub type EventSink = Arc<dyn Fn(JobEvent) + Send + Sync>;

/// The data of one job's wasmtime `Store`: created fresh for every call, dropped after it,
/// so nothing leaks from one call to the next.
pub(crate) struct JobState {
    /// The closed/virtualised WASI context.
    pub(crate) wasi: WasiCtx,
    /// WASI's resource table (streams, pollables).
    pub(crate) table: ResourceTable,
    /// Enforces memory/table/instance limits and records peak memory.
    pub(crate) limiter: JobLimiter,
    /// The bounded log shared with the stdout/stderr streams.
    pub(crate) log: Arc<Mutex<JobLog>>,
    /// Source of `cue:job/host.random-u64`, seeded from the job.
    pub(crate) rng: StdRng,
    /// Where live events go, if anyone listens.
    pub(crate) events: Option<EventSink>,
}

impl WasiView for JobState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}
