//! What a running job can reach, one file per capability. Everything starts closed: a job
//! gets exactly the `cue:job/host` interface and a WASI 0.2 world in which every capability
//! is closed (no files, no environment, no sockets, empty stdin) or virtualised (stdout and
//! stderr go to the bounded job log; randomness is seeded per job; time is virtual and never
//! waits, see [`time`]).

mod host;
mod log;
mod time;
mod wasi;

pub(crate) use log::JobLog;
pub use log::{JobEvent, LogLevel, LogLine, LogSource};

pub use host::HOST_CALL_FUEL;
pub(crate) use host::add_to_linker as add_host_to_linker;
use time::JobClock;
pub(crate) use time::add_to_linker as add_time_to_linker;
pub use time::{CLOCK_READ_STEP_NS, JOB_EPOCH_UNIX_SECS, POLL_FUEL, READINESS_CHECK_STEP_NS};
use wasi::{JobSeeds, build_wasi};

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::SeedableRng as _;
use rand::rngs::StdRng;
use wasmtime::component::ResourceTable;
use wasmtime::{StoreContextMut, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limits::JobLimiter;

/// The most WASI resources (streams, pollables, errors) a job may hold at once. Creating one
/// more fails the host call, which traps: a job cannot make the host hold an unbounded table
/// (a clock pollable takes two entries).
pub const MAX_WASI_RESOURCES: usize = 10_000;

/// Receives a job's live events (log lines, progress) while it runs.
pub type EventSink = Arc<dyn Fn(JobEvent) + Send + Sync>;

/// The data of one job's wasmtime `Store`: created fresh for every call, dropped after it,
/// so nothing leaks from one call to the next. The WASI context and the random generator
/// are built on first use: a job that never calls WASI does not pay for setting it up.
pub(crate) struct JobState {
    /// The closed/virtualised WASI context, once the job first calls WASI.
    wasi: Option<WasiCtx>,
    /// WASI's resource table (streams, pollables), at most [`MAX_WASI_RESOURCES`] entries.
    table: ResourceTable,
    /// The job's virtual time: what its clocks read and its pollables wait on.
    clock: JobClock,
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
    /// The state of a job whose virtual clock may run up to `time_limit`.
    pub(crate) fn new(
        seed: [u8; 32],
        limiter: JobLimiter,
        log: Arc<Mutex<JobLog>>,
        events: Option<EventSink>,
        time_limit: Duration,
    ) -> Self {
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_WASI_RESOURCES);
        JobState {
            wasi: None,
            table,
            clock: JobClock::new(time_limit),
            limiter,
            log,
            seed,
            rng: None,
            events,
        }
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

/// Takes `fuel` from the running job, or stops it out of fuel.
fn charge(store: &mut StoreContextMut<'_, JobState>, fuel: u64) -> wasmtime::Result<()> {
    let left = store.get_fuel()?;
    if left < fuel {
        store.set_fuel(0)?;
        return Err(Trap::OutOfFuel.into());
    }
    store.set_fuel(left - fuel)
}
