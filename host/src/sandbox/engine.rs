//! The sandbox engine: wasmtime configured for deterministic, metered, bounded execution,
//! the linker with the job capabilities, the epoch ticker and the compiled-code cache.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use super::cache::{CodeCache, CodeSource};
use super::caps::{self, JobState};
use super::error::{FailureKind, JobError, SandboxError};
use super::floats::{self, NanCanonicalization};
use super::invoke::{InstanceSettings, LoadedComponent};
use super::unroll;
use super::verify::{self, VerifiedComponent};

/// The wasmtime release this host embeds (checked against Cargo.lock by a test).
pub const WASMTIME_VERSION: &str = "48.0.8";

/// Host-wide settings of the sandbox (per-call bounds are [`super::Limits`]).
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Where compiled components are cached; `None` disables the disk cache.
    pub cache_dir: Option<PathBuf>,
    /// The most the compiled-code cache may hold on disk; least recently used entries go first.
    pub cache_max_bytes: u64,
    /// The largest component this host accepts; bigger ones are refused (`too-large`) before
    /// anything is parsed or compiled.
    pub max_component_bytes: usize,
    /// How many jobs may run at once: sizes the pooling allocator.
    pub max_concurrent_jobs: u32,
    /// The largest linear memory any job may have; per-call limits are clamped to it.
    pub max_memory_bytes: u64,
    /// The wasm stack size. It decides where deep recursion overflows, so it is part of
    /// the engine fingerprint.
    pub max_wasm_stack: usize,
    /// Granularity of wall-clock deadlines.
    pub epoch_tick: Duration,
    /// How NaN bits are made the same on every machine: the pass (default) or the engine-wide
    /// setting it is checked against. Part of the engine fingerprint.
    pub nan_canonicalization: NanCanonicalization,
    /// Whether small innermost loops are unrolled before compiling, so the metering checks run
    /// once per few iterations (default; [`super::unroll`]). Off is the reference it is checked
    /// against. Part of the engine fingerprint: it moves where a job out of fuel is stopped.
    pub unroll_loops: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            cache_dir: None,
            cache_max_bytes: 1 << 30,
            max_component_bytes: 64 << 20,
            max_concurrent_jobs: 32,
            max_memory_bytes: 4 << 30,
            max_wasm_stack: 1 << 20,
            epoch_tick: Duration::from_millis(2),
            nan_canonicalization: NanCanonicalization::default(),
            unroll_loops: true,
        }
    }
}

/// Identifies everything that decides a job's result and fuel: the wasmtime version and
/// every engine setting that changes semantics or metering. Two hosts with the same
/// fingerprint must produce the same output and the same fuel for the same job.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct EngineFingerprint {
    /// Short hex digest of `settings`, for display and comparison.
    pub id: String,
    /// The settings, by name.
    pub settings: BTreeMap<String, String>,
}

impl EngineFingerprint {
    fn new(config: &SandboxConfig) -> Self {
        let settings: BTreeMap<String, String> = [
            ("wasmtime", WASMTIME_VERSION.to_string()),
            ("cue-job-wit", "0.1".to_string()),
            ("consume-fuel", "true".to_string()),
            ("host-call-fuel", caps::HOST_CALL_FUEL.to_string()),
            ("nan-canonicalization", config.nan_canonicalization.name()),
            ("operator-cost", operator_cost_name(config.nan_canonicalization, config.unroll_loops)),
            ("loop-unrolling", if config.unroll_loops { unroll::name() } else { "off".to_string() }),
            ("relaxed-simd-deterministic", "true".to_string()),
            ("threads", "false".to_string()),
            ("memory64", "false".to_string()),
            ("max-wasm-stack", config.max_wasm_stack.to_string()),
            (
                "clocks",
                format!(
                    "virtual: read {} ns, check {} ns, waits jump, bounded by the time limit",
                    caps::CLOCK_READ_STEP_NS,
                    caps::READINESS_CHECK_STEP_NS
                ),
            ),
            ("poll-fuel", caps::POLL_FUEL.to_string()),
            ("lift-bytes-per-limit-byte", super::limits::LIFT_BYTES_PER_LIMIT_BYTE.to_string()),
            ("max-wasi-resources", caps::MAX_WASI_RESOURCES.to_string()),
            ("random", "chacha12-seeded-from-job".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut hasher = Sha256::new();
        for (k, v) in &settings {
            hasher.update(format!("{k}={v}\n"));
        }
        let id = hex::encode(&hasher.finalize()[..8]);
        EngineFingerprint { id, settings }
    }
}

/// A wasmtime engine ready to run untrusted components. Cheap to share behind an `Arc`;
/// loading and invoking take `&self` and run concurrently.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<JobState>,
    cache: Option<CodeCache>,
    fingerprint: EngineFingerprint,
    config: SandboxConfig,
    /// Advances the engine's epoch; stopped and joined when the sandbox is dropped.
    _ticker: EpochTicker,
}

impl Sandbox {
    /// Configures the engine, the linker and the cache.
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        let engine = Engine::new(&engine_config(&config)).map_err(|e| SandboxError::Engine(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| SandboxError::Engine(e.to_string()))?;
        caps::add_time_to_linker(&mut linker).map_err(|e| SandboxError::Engine(e.to_string()))?;
        caps::add_host_to_linker(&mut linker).map_err(|e| SandboxError::Engine(e.to_string()))?;
        let cache = config
            .cache_dir
            .as_deref()
            .map(|dir| CodeCache::open(dir, config.cache_max_bytes, &engine))
            .transpose()?;
        let ticker = EpochTicker::start(engine.clone(), config.epoch_tick);
        Ok(Sandbox {
            fingerprint: EngineFingerprint::new(&config),
            engine,
            linker,
            cache,
            config,
            _ticker: ticker,
        })
    }

    /// What decides results and fuel on this host.
    pub fn fingerprint(&self) -> &EngineFingerprint {
        &self.fingerprint
    }

    /// The wasmtime engine, for the sandbox's own modules.
    pub(super) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The linker with every capability, for the sandbox's own modules.
    pub(super) fn linker(&self) -> &Linker<JobState> {
        &self.linker
    }

    /// The compiled-code cache, if this sandbox has one.
    pub(super) fn code_cache(&self) -> Option<&CodeCache> {
        self.cache.as_ref()
    }

    /// The host-wide settings.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// Verifies `bytes` (a valid component whose every import the policy grants), compiles
    /// it or loads it from the cache, and pre-links it: the result can be invoked many times.
    pub fn load(&self, bytes: &[u8]) -> Result<LoadedComponent, JobError> {
        let started = Instant::now();
        if bytes.len() > self.config.max_component_bytes {
            return Err(JobError::new(
                FailureKind::TooLarge,
                format!(
                    "the component is {} bytes; this host accepts at most {}",
                    bytes.len(),
                    self.config.max_component_bytes
                ),
            ));
        }
        let verified = verify::verify(bytes)?;
        let (component, source) = self.compile(bytes, &verified)?;
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            JobError::new(FailureKind::InvalidComponent, format!("cannot link the component: {e:#}"))
        })?;
        let settings = InstanceSettings {
            engine: self.engine.clone(),
            epoch_tick: self.config.epoch_tick,
            max_memory_bytes: self.config.max_memory_bytes,
        };
        Ok(LoadedComponent::new(settings, verified, component, pre, source, started.elapsed()))
    }

    fn compile(
        &self,
        bytes: &[u8],
        verified: &VerifiedComponent,
    ) -> Result<(Component, CodeSource), JobError> {
        let key = self.cache_key(&verified.sha256);
        if let Some(component) = self.cache.as_ref().and_then(|c| c.load(&self.engine, &key)) {
            return Ok((component, CodeSource::Cache));
        }
        let component = self.compile_uncached(bytes)?;
        if let Some(cache) = &self.cache {
            cache.store(&key, &component);
        }
        Ok((component, CodeSource::Compiled))
    }

    /// The compiled-code cache's name for a component: its sha256, and the versions of the
    /// passes that rewrite it (the engine's compatibility hash, also in the name, covers the
    /// engine settings but not what the passes did before compiling).
    fn cache_key(&self, sha256: &str) -> String {
        let mut key = sha256.to_string();
        if self.config.unroll_loops {
            key += &format!("-unroll{}", unroll::UNROLL_VERSION);
        }
        if self.config.nan_canonicalization == NanCanonicalization::AtObservation {
            key += &format!("-floats{}", floats::PASS_VERSION);
        }
        key
    }

    /// Compiles `bytes` (a component): its small loops unrolled and through the float pass,
    /// as the engine's settings say.
    pub(super) fn compile_uncached(&self, bytes: &[u8]) -> Result<Component, JobError> {
        let invalid =
            |e: &dyn std::fmt::Display| JobError::new(FailureKind::InvalidComponent, format!("{e:#}"));
        let unrolled;
        let mut code = bytes;
        if self.config.unroll_loops {
            unrolled = unroll::unroll_component(code).map_err(|e| invalid(&e))?;
            code = &unrolled;
        }
        let rewritten;
        if self.config.nan_canonicalization == NanCanonicalization::AtObservation {
            rewritten = floats::rewrite_component(code).map_err(|e| invalid(&e))?;
            code = &rewritten;
        }
        Component::new(&self.engine, code).map_err(|e| invalid(&e))
    }
}

/// The fuel table's entry in the fingerprint.
fn operator_cost_name(mode: NanCanonicalization, unrolled: bool) -> String {
    let mut free: Vec<&str> = Vec::new();
    if mode == NanCanonicalization::AtObservation {
        free.push(floats::PASS_OPERATORS);
    }
    if unrolled {
        free.push(unroll::UNROLL_OPERATORS);
    }
    match free.is_empty() {
        true => "wasmtime default".to_string(),
        false => format!(
            "1 per operator but nop, drop, block, loop, else, end, return, unreachable; 0 for {} (1 by filler in guest code)",
            free.join(" ")
        ),
    }
}

fn engine_config(config: &SandboxConfig) -> Config {
    let mut pool = PoolingAllocationConfig::new();
    let jobs = config.max_concurrent_jobs.max(1);
    let limits = super::Limits::default();
    pool.total_component_instances(jobs)
        .total_core_instances(jobs * limits.instances as u32)
        .total_memories(jobs * limits.memories as u32)
        .total_tables(jobs * limits.tables as u32)
        .max_core_instances_per_component(limits.instances as u32)
        .max_memories_per_component(limits.memories as u32)
        .max_tables_per_component(limits.tables as u32)
        .max_memory_size(config.max_memory_bytes as usize)
        .table_elements(limits.table_elements as usize + 1)
        // Jobs run synchronously, so fiber stacks are never used; wasmtime's default pool of
        // 1,000 costs ~2,000 memory mappings per engine (a guard page each), which caps a
        // process at ~30 sandboxes under Linux's default `vm.max_map_count` (65,530).
        .total_stacks(jobs);
    let mut wasm = Config::new();
    wasm.consume_fuel(true)
        .epoch_interruption(true)
        .relaxed_simd_deterministic(true)
        .shared_memory(false)
        .wasm_memory64(false)
        .wasm_component_model(true)
        .max_wasm_stack(config.max_wasm_stack)
        .cranelift_opt_level(OptLevel::Speed)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    floats::configure(&mut wasm, config.nan_canonicalization, config.unroll_loops);
    wasm
}

/// A thread that advances the engine's epoch once per elapsed tick, so deadlines are checked
/// without a timer per job. Dropping it stops and joins the thread.
struct EpochTicker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine, tick: Duration) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name("cue-epoch".into())
            .spawn(move || {
                // Catch up on ticks this thread overslept (a loaded machine), so deadlines
                // follow the wall clock rather than the number of wake-ups.
                let start = Instant::now();
                let mut ticks: u128 = 0;
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                    let due = start.elapsed().as_nanos() / tick.as_nanos().max(1);
                    while ticks < due {
                        engine.increment_epoch();
                        ticks += 1;
                    }
                }
            })
            .expect("spawn the epoch thread");
        EpochTicker { stop: Some(stop), thread: Some(thread) }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_wasmtime_version_matches_the_lockfile() {
        let lock = include_str!("../../../Cargo.lock");
        let entry = format!("name = \"wasmtime\"\nversion = \"{WASMTIME_VERSION}\"");
        assert!(lock.contains(&entry), "update WASMTIME_VERSION to the version in Cargo.lock");
    }

    #[test]
    fn the_fingerprint_depends_on_the_stack_size() {
        let a = EngineFingerprint::new(&SandboxConfig::default());
        let b =
            EngineFingerprint::new(&SandboxConfig { max_wasm_stack: 2 << 20, ..SandboxConfig::default() });
        assert_ne!(a.id, b.id);
        assert_eq!(a, EngineFingerprint::new(&SandboxConfig::default()));
    }

    #[test]
    fn the_fingerprint_names_the_float_pass_and_its_version() {
        let pass = EngineFingerprint::new(&SandboxConfig::default());
        let every = EngineFingerprint::new(&SandboxConfig {
            nan_canonicalization: NanCanonicalization::EveryOperation,
            ..SandboxConfig::default()
        });
        assert_ne!(pass.id, every.id);
        let named = &pass.settings["nan-canonicalization"];
        assert!(named.contains(&format!("pass v{}", floats::PASS_VERSION)), "{named}");
        assert!(pass.settings["operator-cost"].contains("f64.ge"));
    }
}
