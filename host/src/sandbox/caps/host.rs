//! `cue:job/host@0.1.0`: logging, progress and deterministic randomness for jobs.
//!
//! Every call is charged fuel ([`HOST_CALL_FUEL`] plus one unit per byte passed), so a job
//! that spins on host calls runs out of fuel like any other busy loop.

use rand::Rng as _;
use wasmtime::StoreContextMut;
use wasmtime::component::{ComponentType, Lift, Linker, Lower};

use super::log::{JobEvent, LogLevel};
use super::{JobState, charge};
use crate::sandbox::error::Stop;

/// The import name guests use; the linker also accepts any semver-compatible `0.1.x`.
pub(crate) const HOST_INTERFACE: &str = "cue:job/host@0.1.0";

/// Fuel charged for every host call, on top of one unit per byte of its arguments.
pub const HOST_CALL_FUEL: u64 = 1_000;

/// The WIT `level` enum.
#[derive(ComponentType, Lift, Lower, Clone, Copy, Debug)]
#[component(enum)]
#[allow(dead_code, reason = "values are made by lifting them from the guest, never in Rust")]
#[repr(u8)]
enum Level {
    #[component(name = "trace")]
    Trace,
    #[component(name = "debug")]
    Debug,
    #[component(name = "info")]
    Info,
    #[component(name = "warn")]
    Warn,
    #[component(name = "error")]
    Error,
}

impl From<Level> for LogLevel {
    fn from(level: Level) -> Self {
        match level {
            Level::Trace => LogLevel::Trace,
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        }
    }
}

/// Links `cue:job/host` into `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<JobState>) -> wasmtime::Result<()> {
    let mut host = linker.instance(HOST_INTERFACE)?;
    host.func_wrap("log", |mut store: StoreContextMut<'_, JobState>, (level, message): (Level, String)| {
        charge(&mut store, HOST_CALL_FUEL + message.len() as u64)?;
        let state = store.data_mut();
        let line = state
            .log
            .lock()
            .expect("job log lock")
            .push_host(level.into(), message)
            .map_err(|err| wasmtime::Error::new(Stop(err)))?;
        if let Some(events) = &state.events {
            events(JobEvent::Log(line));
        }
        Ok(())
    })?;
    host.func_wrap("progress", |mut store: StoreContextMut<'_, JobState>, (done, total): (u64, u64)| {
        charge(&mut store, HOST_CALL_FUEL)?;
        if let Some(events) = &store.data().events {
            events(JobEvent::Progress { done, total });
        }
        Ok(())
    })?;
    host.func_wrap("random-u64", |mut store: StoreContextMut<'_, JobState>, (): ()| {
        charge(&mut store, HOST_CALL_FUEL)?;
        Ok((store.data_mut().rng().next_u64(),))
    })?;
    Ok(())
}
