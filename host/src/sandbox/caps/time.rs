//! Time for jobs: `wasi:clocks` and `wasi:io/poll` on a virtual clock that never waits.
//!
//! wasmtime-wasi's own implementations wait in real time (`subscribe-duration` is a tokio
//! timer, `poll` and `block` await it) and read the host's clock, so a job could hold the
//! host's thread, its pool instance and its job slot for as long as it liked, and `ready()`
//! would leak the real clock into its result. This file links its own `wasi:clocks/
//! monotonic-clock`, `wasi:clocks/wall-clock` and `wasi:io/poll` over theirs (the linker's
//! shadowing), for every job:
//!
//! - **One virtual clock per job.** It starts at 0 (the wall clock at 2025-01-01T00:00:00Z,
//!   [`JOB_EPOCH_UNIX_SECS`]) and moves only by what the job does: each read of either clock
//!   returns it and then advances it [`CLOCK_READ_STEP_NS`] (1 µs); each readiness check
//!   (`ready`, `block`, `poll`) advances it [`READINESS_CHECK_STEP_NS`] (100 µs) and then
//!   looks.
//! - **A clock pollable is ready when the virtual clock has reached its deadline.** Streams
//!   (stdin, which is closed, and stdout/stderr, which always accept a write) are always ready.
//! - **A wait takes no real time.** `block`, or a `poll` in which nothing is ready, moves the
//!   virtual clock straight to the earliest deadline among the clock pollables it waits on:
//!   `std::thread::sleep(d)` returns at once, `d` later in the job's time.
//! - **The virtual clock may not pass the job's time limit** ([`Limits::timeout`], 1 ns of
//!   virtual time per ns of limit): the read, check or wait that would take it past ends the
//!   job with `timeout` at once. So does a wait on nothing that can ever be ready. A busy loop
//!   on `ready()` or `poll` therefore ends after at most `limit / 100 µs` checks, a clock read
//!   loop after `limit / 1 µs` reads — the same number on every host.
//! - **Polling costs fuel**: [`POLL_FUEL`] per `ready`, per `block`, per pollable in a `poll`
//!   list and per `subscribe-*`.
//!
//! Everything a job observes of time is thus a function of what it did, never of the host:
//! the same call on the same engine reads the same times, wakes at the same points and uses
//! the same fuel, on every replica. Real time still bounds plain computation: the epoch
//! deadline interrupts wasm code past the wall-clock limit (see `invoke.rs`).
//!
//! [`Limits::timeout`]: crate::sandbox::Limits::timeout

use std::collections::BTreeMap;
use std::time::Duration;

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource, ResourceTable, ResourceType};
use wasmtime_wasi::p2::bindings::clocks::wall_clock::Datetime;
use wasmtime_wasi::p2::bindings::io::poll::HostPollable;
use wasmtime_wasi::p2::{DynPollable, Pollable};
use wasmtime_wasi::runtime::{poll_noop, with_ambient_tokio_runtime};

use super::{HOST_CALL_FUEL, JobState, charge};
use crate::sandbox::error::{FailureKind, JobError, Stop};

/// The WASI 0.2 release wasmtime-wasi links its interfaces under (the package version of its
/// WIT). Ours must be defined under the same names to replace theirs; a job importing any
/// 0.2.x reaches them by semver. The sandbox tests fail (a sleeping job hangs) if this drifts.
const WASI_VERSION: &str = "0.2.12";

/// The wall-clock time every job starts at: 2025-01-01T00:00:00Z.
pub const JOB_EPOCH_UNIX_SECS: u64 = 1_735_689_600;

/// Virtual nanoseconds a read of either clock takes (and the clocks' reported resolution).
pub const CLOCK_READ_STEP_NS: u64 = 1_000;

/// Virtual nanoseconds a readiness check (`ready`, `block`, `poll`) takes. Far more than a
/// check costs in real time on any host, so a loop of checks reaches the job's time limit in
/// virtual time — deterministically — well before the wall-clock deadline would stop it.
pub const READINESS_CHECK_STEP_NS: u64 = 100_000;

/// Fuel charged per `ready`, per `block`, per pollable listed in a `poll`, per `subscribe-*`.
pub const POLL_FUEL: u64 = HOST_CALL_FUEL;

/// The virtual clock of one job, and the deadlines of its clock pollables.
pub(crate) struct JobClock {
    /// Virtual time since the job started, in nanoseconds.
    now_ns: u64,
    /// The job's time limit in virtual nanoseconds: the clock may not pass it.
    limit_ns: u64,
    /// The deadline of every live clock pollable, by the pollable's handle in the job's
    /// resource table (removed when the job drops the pollable).
    deadlines: BTreeMap<u32, u64>,
}

impl JobClock {
    /// A clock at 0 that may run up to `limit`.
    pub(crate) fn new(limit: Duration) -> Self {
        let limit_ns = u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX);
        JobClock { now_ns: 0, limit_ns, deadlines: BTreeMap::new() }
    }

    /// A read of the clock: the current virtual time, after which the clock moves one step.
    fn read(&mut self) -> Result<u64, Stop> {
        let now = self.now_ns;
        self.pass(CLOCK_READ_STEP_NS)?;
        Ok(now)
    }

    /// Moves the clock `ns` on, unless that passes the limit.
    fn pass(&mut self, ns: u64) -> Result<(), Stop> {
        let next = self.now_ns.saturating_add(ns);
        if next > self.limit_ns {
            return Err(timeout(format!(
                "the job's virtual clock reached its time limit of {:?} (a clock read takes {:?} of \
                 its time, a readiness check {:?})",
                Duration::from_nanos(self.limit_ns),
                Duration::from_nanos(CLOCK_READ_STEP_NS),
                Duration::from_nanos(READINESS_CHECK_STEP_NS)
            )));
        }
        self.now_ns = next;
        Ok(())
    }

    /// A wait: the clock moves to `deadline` (`None`: nothing waited on can ever be ready).
    fn wait_until(&mut self, deadline: Option<u64>) -> Result<(), Stop> {
        let limit = Duration::from_nanos(self.limit_ns);
        let until = match deadline {
            Some(at) if at <= self.limit_ns => {
                self.now_ns = self.now_ns.max(at);
                return Ok(());
            }
            Some(u64::MAX) => "forever (a deadline of u64::MAX ns)".to_string(),
            Some(at) => format!("until {:?} of its virtual time", Duration::from_nanos(at)),
            None => "on something that can never be ready".to_string(),
        };
        Err(timeout(format!(
            "the job waited {until}, past its time limit of {limit:?}; waiting takes no real time \
             here, so a wait past the limit ends the job at once"
        )))
    }

    /// Whether the pollable with handle `rep` is a clock's, and if so whether it is due.
    fn clock_ready(&self, rep: u32) -> Option<bool> {
        self.deadlines.get(&rep).map(|&at| self.now_ns >= at)
    }
}

/// What ends a job whose virtual clock would pass its limit.
fn timeout(message: String) -> Stop {
    Stop(JobError::new(FailureKind::Timeout, message))
}

/// Links the virtual-time `wasi:io/poll`, `wasi:clocks/monotonic-clock` and
/// `wasi:clocks/wall-clock` over wasmtime-wasi's (which must be linked first).
pub(crate) fn add_to_linker(linker: &mut Linker<JobState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let linked = link_poll(linker).and_then(|()| link_clocks(linker));
    linker.allow_shadowing(false);
    linked
}

fn link_poll(linker: &mut Linker<JobState>) -> wasmtime::Result<()> {
    let mut poll = linker.instance(&format!("wasi:io/poll@{WASI_VERSION}"))?;
    // The same resource type as wasmtime-wasi's, so their streams' `subscribe` still fits;
    // only the destructor is ours, to forget a dropped clock pollable's deadline.
    poll.resource("pollable", ResourceType::host::<DynPollable>(), |mut store, rep| {
        let state = store.data_mut();
        state.clock.deadlines.remove(&rep);
        HostPollable::drop(&mut state.table, Resource::new_own(rep))
    })?;
    poll.func_wrap(
        "[method]pollable.ready",
        |mut store: StoreContextMut<'_, JobState>, (pollable,): (Resource<DynPollable>,)| {
            charge(&mut store, POLL_FUEL)?;
            let state = store.data_mut();
            state.clock.pass(READINESS_CHECK_STEP_NS).map_err(wasmtime::Error::new)?;
            Ok((is_ready(state, pollable.rep())?,))
        },
    )?;
    poll.func_wrap(
        "[method]pollable.block",
        |mut store: StoreContextMut<'_, JobState>, (pollable,): (Resource<DynPollable>,)| {
            charge(&mut store, POLL_FUEL)?;
            wait(store.data_mut(), &[pollable.rep()]).map(|_| ())
        },
    )?;
    poll.func_wrap(
        "poll",
        |mut store: StoreContextMut<'_, JobState>, (pollables,): (Vec<Resource<DynPollable>>,)| {
            charge(&mut store, POLL_FUEL.saturating_mul(pollables.len().max(1) as u64))?;
            let reps: Vec<u32> = pollables.iter().map(Resource::rep).collect();
            Ok((wait(store.data_mut(), &reps)?,))
        },
    )?;
    Ok(())
}

fn link_clocks(linker: &mut Linker<JobState>) -> wasmtime::Result<()> {
    let mut monotonic = linker.instance(&format!("wasi:clocks/monotonic-clock@{WASI_VERSION}"))?;
    monotonic.func_wrap("now", |mut store: StoreContextMut<'_, JobState>, (): ()| {
        Ok((store.data_mut().clock.read().map_err(wasmtime::Error::new)?,))
    })?;
    monotonic
        .func_wrap("resolution", |_: StoreContextMut<'_, JobState>, (): ()| Ok((CLOCK_READ_STEP_NS,)))?;
    monotonic.func_wrap("subscribe-instant", |mut store: StoreContextMut<'_, JobState>, (at,): (u64,)| {
        Ok((subscribe(&mut store, at)?,))
    })?;
    monotonic.func_wrap(
        "subscribe-duration",
        |mut store: StoreContextMut<'_, JobState>, (duration,): (u64,)| {
            let at = store.data().clock.now_ns.saturating_add(duration);
            Ok((subscribe(&mut store, at)?,))
        },
    )?;
    let mut wall = linker.instance(&format!("wasi:clocks/wall-clock@{WASI_VERSION}"))?;
    wall.func_wrap("now", |mut store: StoreContextMut<'_, JobState>, (): ()| {
        let now = store.data_mut().clock.read().map_err(wasmtime::Error::new)?;
        Ok((datetime(now),))
    })?;
    wall.func_wrap("resolution", |_: StoreContextMut<'_, JobState>, (): ()| {
        Ok((Datetime { seconds: 0, nanoseconds: CLOCK_READ_STEP_NS as u32 },))
    })?;
    Ok(())
}

/// The wall-clock reading of virtual time `now_ns`.
fn datetime(now_ns: u64) -> Datetime {
    Datetime {
        seconds: JOB_EPOCH_UNIX_SECS + now_ns / 1_000_000_000,
        nanoseconds: (now_ns % 1_000_000_000) as u32,
    }
}

/// A clock pollable due at virtual time `at`.
fn subscribe(store: &mut StoreContextMut<'_, JobState>, at: u64) -> wasmtime::Result<Resource<DynPollable>> {
    charge(store, POLL_FUEL)?;
    let state = store.data_mut();
    let deadline = state.table.push(ClockDeadline)?;
    let pollable = wasmtime_wasi::p2::subscribe(&mut state.table, deadline)?;
    state.clock.deadlines.insert(pollable.rep(), at);
    Ok(pollable)
}

/// One readiness check of `pollables` (handles); when none is ready, a wait: the clock moves
/// to the earliest deadline among them and they are looked at again. Returns the indices of
/// the ready ones, never an empty list.
fn wait(state: &mut JobState, pollables: &[u32]) -> wasmtime::Result<Vec<u32>> {
    if pollables.is_empty() {
        wasmtime::bail!("empty poll list");
    }
    state.clock.pass(READINESS_CHECK_STEP_NS).map_err(wasmtime::Error::new)?;
    let ready = ready_indices(state, pollables)?;
    if !ready.is_empty() {
        return Ok(ready);
    }
    let earliest = pollables.iter().filter_map(|rep| state.clock.deadlines.get(rep)).min().copied();
    state.clock.wait_until(earliest).map_err(wasmtime::Error::new)?;
    ready_indices(state, pollables)
}

fn ready_indices(state: &mut JobState, pollables: &[u32]) -> wasmtime::Result<Vec<u32>> {
    let mut ready = Vec::new();
    for (index, &rep) in (0u32..).zip(pollables) {
        if is_ready(state, rep)? {
            ready.push(index);
        }
    }
    Ok(ready)
}

/// Whether the pollable with handle `rep` is ready now, in the job's time.
fn is_ready(state: &mut JobState, rep: u32) -> wasmtime::Result<bool> {
    match state.clock.clock_ready(rep) {
        Some(due) => Ok(due),
        None => stream_ready(&mut state.table, rep),
    }
}

/// Whether a pollable that is not a clock's is ready: its readiness future, polled once and
/// never awaited, so it cannot make the host wait whatever it is. In this sandbox such a
/// pollable belongs to stdin (closed) or stdout/stderr (always writable): always ready.
fn stream_ready(table: &mut ResourceTable, rep: u32) -> wasmtime::Result<bool> {
    let check = HostPollable::ready(table, Resource::new_borrow(rep));
    let mut check = std::pin::pin!(check);
    with_ambient_tokio_runtime(|| poll_noop(check.as_mut())).unwrap_or(Ok(false))
}

/// The table entry behind a clock pollable. Its readiness is the [`JobClock`]'s to decide,
/// from the pollable's handle; this future is never the judge, and never resolves, so no
/// code path can wait on it in real time.
struct ClockDeadline;

#[wasmtime_wasi::async_trait]
impl Pollable for ClockDeadline {
    async fn ready(&mut self) {
        std::future::pending::<()>().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_step_the_clock_and_waits_jump_to_the_deadline() {
        let mut clock = JobClock::new(Duration::from_secs(1));
        assert_eq!(clock.read().unwrap(), 0);
        assert_eq!(clock.read().unwrap(), CLOCK_READ_STEP_NS);
        clock.wait_until(Some(500_000_000)).unwrap();
        assert_eq!(clock.read().unwrap(), 500_000_000);
        clock.wait_until(Some(1)).unwrap();
        assert_eq!(clock.read().unwrap(), 500_000_000 + CLOCK_READ_STEP_NS, "time never goes back");
        let wall = datetime(1_500_000_000);
        assert_eq!((wall.seconds, wall.nanoseconds), (JOB_EPOCH_UNIX_SECS + 1, 500_000_000));
    }

    #[test]
    fn the_clock_never_passes_the_time_limit() {
        let timeout = |stop: Stop| stop.0.kind;
        let mut clock = JobClock::new(Duration::from_millis(1));
        assert_eq!(clock.wait_until(Some(u64::MAX)).map_err(timeout), Err(FailureKind::Timeout));
        assert_eq!(clock.wait_until(None).map_err(timeout), Err(FailureKind::Timeout));
        clock.wait_until(Some(1_000_000)).unwrap();
        assert_eq!(clock.read().map_err(timeout), Err(FailureKind::Timeout));
        let mut checks = 0;
        let mut clock = JobClock::new(Duration::from_millis(1));
        while clock.pass(READINESS_CHECK_STEP_NS).is_ok() {
            checks += 1;
        }
        assert_eq!(checks, 1_000_000 / READINESS_CHECK_STEP_NS);
        assert_eq!(JobClock::new(Duration::MAX).limit_ns, u64::MAX);
    }
}
