//! Measuring this machine for its [`ResourceManifest`]: fuel per second on the real sandbox,
//! cores and available memory, then signing the manifest with the agent's key.
//!
//! The only importer of `wat`: the reference workload is checked in as text
//! (`benchmark/reference.wat`) and compiled into the binary, so `cue benchmark` works anywhere.

use std::time::Duration;

use crate::crypto::{Digest, Keypair};
use crate::market::{ProviderPolicy, ResourceManifest};
use crate::protocol::{EventError, Signed, Validity};
use crate::sandbox::{EngineFingerprint, Invocation, JobError, Limits, Sandbox, WASMTIME_VERSION};

/// The reference workload, in the component text format.
const REFERENCE_WAT: &str = include_str!("reference.wat");

/// How much to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Rounds of the reference workload per run (34 fuel each).
    pub rounds: u32,
    /// Runs, each on a fresh instance; the median is reported. At least 1.
    pub runs: u32,
}

impl Default for Plan {
    /// 680 million fuel per run (tens of milliseconds on a current core, long enough
    /// that instantiation and timer noise are small), five runs.
    fn default() -> Plan {
        Plan { rounds: 20_000_000, runs: 5 }
    }
}

/// One run of the reference workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// Fuel the run used.
    pub fuel: u64,
    /// Wall time of the call, instantiation included (as a job's would be).
    pub wall: Duration,
}

impl Run {
    /// Fuel per second of wall time.
    pub fn fuel_per_second(&self) -> u64 {
        let nanos = self.wall.as_nanos().max(1);
        u64::try_from(u128::from(self.fuel) * 1_000_000_000 / nanos).unwrap_or(u64::MAX)
    }
}

/// What was measured on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Measurement {
    /// Logical cores available to this process.
    pub cores: u32,
    /// Memory available (Linux `MemAvailable`), in bytes.
    pub memory_bytes: u64,
    /// Median fuel per second over the runs.
    pub fuel_per_second: u64,
    /// The engine the workload ran on.
    pub engine: EngineFingerprint,
    /// Every run, in order.
    pub runs: Vec<Run>,
}

/// Why the machine could not be measured or the manifest signed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchmarkError {
    /// The embedded reference workload did not assemble (a build defect).
    #[error("the reference workload does not assemble: {0}")]
    Workload(String),
    /// The reference workload failed in the sandbox.
    #[error("the reference workload failed: {0}")]
    Run(#[from] JobError),
    /// The operating system did not say how many cores or how much memory there is.
    #[error("cannot measure {what}: {why}")]
    Machine {
        /// What could not be measured.
        what: &'static str,
        /// Why.
        why: String,
    },
    /// Signing failed.
    #[error("cannot sign the manifest: {0}")]
    Signing(#[from] EventError),
}

/// Runs the reference workload `plan.runs` times on `sandbox` and reads cores and memory.
pub fn measure(sandbox: &Sandbox, plan: Plan) -> Result<Measurement, BenchmarkError> {
    measure_reporting(sandbox, plan, &mut |_, _| {})
}

/// [`measure`], telling `progress(runs done, runs)` after each run (the dashboard's progress
/// bar).
pub fn measure_reporting(
    sandbox: &Sandbox,
    plan: Plan,
    progress: &mut dyn FnMut(u32, u32),
) -> Result<Measurement, BenchmarkError> {
    let runs = fuel_runs(sandbox, plan, progress)?;
    let mut rates: Vec<u64> = runs.iter().map(Run::fuel_per_second).collect();
    rates.sort_unstable();
    let cores = std::thread::available_parallelism()
        .map_err(|e| BenchmarkError::Machine { what: "cores", why: e.to_string() })?;
    Ok(Measurement {
        cores: u32::try_from(cores.get()).unwrap_or(u32::MAX),
        memory_bytes: available_memory()?,
        fuel_per_second: rates[rates.len() / 2],
        engine: sandbox.fingerprint().clone(),
        runs,
    })
}

fn fuel_runs(
    sandbox: &Sandbox,
    plan: Plan,
    progress: &mut dyn FnMut(u32, u32),
) -> Result<Vec<Run>, BenchmarkError> {
    let bytes = wat::parse_str(REFERENCE_WAT).map_err(|e| BenchmarkError::Workload(e.to_string()))?;
    let loaded = sandbox.load(&bytes)?;
    let call = loaded.parse_call(&format!("spin({})", plan.rounds))?;
    let limits = Limits::default();
    let total = plan.runs.max(1);
    progress(0, total);
    (1..=total)
        .map(|done| {
            let outcome = loaded.invoke(&call, &limits, &Invocation::default());
            outcome.result?;
            progress(done, total);
            Ok(Run { fuel: outcome.fuel_used, wall: outcome.wall })
        })
        .collect()
}

/// Memory available to new work, from `/proc/meminfo` (`MemAvailable`).
fn available_memory() -> Result<u64, BenchmarkError> {
    let why = |why: String| BenchmarkError::Machine { what: "available memory", why };
    let text = std::fs::read_to_string("/proc/meminfo").map_err(|e| why(format!("/proc/meminfo: {e}")))?;
    mem_available(&text).ok_or_else(|| why("/proc/meminfo has no MemAvailable line".into()))
}

/// The `MemAvailable` line of a `/proc/meminfo` text, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find_map(|line| line.strip_prefix("MemAvailable:"))?;
    let kib = line.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()?;
    kib.checked_mul(1024)
}

/// The manifest of a measurement: who provides, in which network (`genesis`; `NO_NETWORK`
/// outside any), what was measured, at what price, when.
pub fn manifest(
    measurement: &Measurement,
    provider: &Keypair,
    genesis: Digest,
    policy: ProviderPolicy,
    measured_ms: u64,
) -> ResourceManifest {
    ResourceManifest {
        provider: provider.public(),
        genesis,
        cores: measurement.cores,
        memory_bytes: measurement.memory_bytes,
        fuel_per_second: measurement.fuel_per_second,
        engine: measurement.engine.id.clone(),
        wasmtime: WASMTIME_VERSION.to_string(),
        policy,
        measured_ms,
    }
}

/// Measures this machine and signs the manifest for the network of `genesis`, valid from
/// `now_ms` for `valid_for` (capped at the protocol's longest event lifetime).
pub fn measure_and_sign(
    sandbox: &Sandbox,
    plan: Plan,
    provider: &Keypair,
    genesis: Digest,
    policy: ProviderPolicy,
    now_ms: u64,
    valid_for: Duration,
) -> Result<(Measurement, Signed<ResourceManifest>), BenchmarkError> {
    let measurement = measure(sandbox, plan)?;
    let body = manifest(&measurement, provider, genesis, policy, now_ms);
    let lifetime_ms = u64::try_from(valid_for.as_millis()).unwrap_or(u64::MAX);
    let signed = Signed::sign(provider, body, Validity::starting(now_ms, lifetime_ms))?;
    Ok((measurement, signed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::SandboxConfig;

    #[test]
    fn reads_mem_available_in_bytes() {
        let meminfo = "MemTotal:       32827112 kB\nMemFree:  1000 kB\nMemAvailable:   20480 kB\n";
        assert_eq!(mem_available(meminfo), Some(20480 * 1024));
        assert_eq!(mem_available("MemTotal: 1 kB\n"), None);
        assert_eq!(mem_available("MemAvailable: lots\n"), None);
    }

    #[test]
    fn the_reference_workload_is_metered_and_deterministic() {
        let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
        let plan = Plan { rounds: 10_000, runs: 3 };
        let measurement = measure(&sandbox, plan).unwrap();
        assert_eq!(measurement.runs.len(), 3);
        let fuel = measurement.runs[0].fuel;
        assert!(fuel > u64::from(plan.rounds), "every round costs fuel: {fuel}");
        assert!(measurement.runs.iter().all(|run| run.fuel == fuel), "same work, same fuel");
        assert!(measurement.fuel_per_second > 0);
        assert!(measurement.cores >= 1 && measurement.memory_bytes > 0);
        assert_eq!(measurement.engine, *sandbox.fingerprint());
    }

    #[test]
    fn fuel_per_second_is_fuel_over_wall_time() {
        let run = |fuel, ms| Run { fuel, wall: Duration::from_millis(ms) };
        assert_eq!(run(1_000, 1).fuel_per_second(), 1_000_000);
        assert_eq!(run(5, 0).fuel_per_second(), 5_000_000_000, "a zero wall time does not divide by 0");
    }
}
