//! Pre-initialisation (Wizer's approach, with `wasmtime-wizer`): run a component's
//! initialisation export once, in this sandbox, and write a new component whose memories and
//! globals start where that run left them. A job on the result skips what the export did.
//!
//! The JavaScript runtime uses it to put its engine's start-up in the snapshot: the start-up
//! is most of what a small JavaScript job costs. The run happens under the default limits with
//! the same closed, virtual capabilities as any job, seeded from the component's hash, so the
//! output is the same bytes on every host of the same engine fingerprint.

use std::sync::{Arc, Mutex};

use wasmtime::Store;
use wasmtime::component::{Instance, Lift, WasmList};
use wasmtime_wizer::{ComponentInstanceState, Wizer};

use super::caps::{JobLog, JobState};
use super::engine::Sandbox;
use super::error::{FailureKind, JobError};
use super::limits::{JobLimiter, Limits};
use super::verify;

impl Sandbox {
    /// Verifies `bytes`, calls its export `init` (a function without parameters or results)
    /// once and returns the pre-initialised component. The export stays: calling it again on
    /// the result must be harmless, which is the component's promise to keep. Meant for
    /// components the host ships itself (the JavaScript runtime): the bytes are verified and
    /// the run is bounded like a job's, but what the snapshot captures is the component's say.
    ///
    /// With a code cache, the result is kept there (authenticated like compiled code) and
    /// reused: the run and its two compilations happen once per host and runtime version.
    pub fn preinitialize(&self, bytes: &[u8], init: &str) -> Result<Vec<u8>, JobError> {
        let verified = verify::verify(bytes)?;
        let id = format!("{}-{init}", verified.sha256);
        if let Some(bytes) = self.code_cache().and_then(|cache| cache.load_derived(&id)) {
            return Ok(bytes);
        }
        let snapshot = self.snapshot(bytes, &verified.sha256, init)?;
        if let Some(cache) = self.code_cache() {
            cache.store_derived(&id, &snapshot);
        }
        Ok(snapshot)
    }

    fn snapshot(&self, bytes: &[u8], sha256: &str, init: &str) -> Result<Vec<u8>, JobError> {
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            JobError::new(
                FailureKind::InvalidComponent,
                format!("cannot pre-initialise the component: {what}: {e}"),
            )
        };
        let mut wizer = Wizer::new();
        wizer.init_func(init).keep_init_func(true);
        let (context, instrumented) =
            wizer.instrument_component(bytes).map_err(|e| failed("instrument", &e))?;
        let component = self.compile_uncached(&instrumented).map_err(|e| failed("compile", &e))?;
        let pre = self.linker().instantiate_pre(&component).map_err(|e| failed("link", &e))?;
        let limits = Limits::default();
        let seed = preinit_seed(sha256);
        let log = Arc::new(Mutex::new(JobLog::new(limits.log_bytes)));
        let state = JobState::new(seed, JobLimiter::new(&limits), log, None, limits.timeout);
        let mut store = Store::new(self.engine(), state);
        store.limiter(|state| &mut state.limiter);
        store.set_fuel(limits.fuel).map_err(|e| failed("fuel", &e))?;
        // Our own run, bounded by fuel: no wall-clock deadline to arm.
        store.set_epoch_deadline(u64::MAX / 2);
        let instance = pre.instantiate(&mut store).map_err(|e| failed("instantiate", &e))?;
        let function = instance.get_typed_func::<(), ()>(&mut store, init).map_err(|e| failed(init, &e))?;
        function.call(&mut store, ()).map_err(|e| failed(init, &e))?;
        let mut reader = StateReader { store: &mut store, instance, error: None };
        let snapshot = futures::executor::block_on(wizer.snapshot_component(&context, &mut reader));
        if let Some(error) = reader.error {
            return Err(failed("snapshot", &error));
        }
        snapshot.map_err(|e| failed("snapshot", &e))
    }
}

/// The seed of the pre-initialising run's randomness: from the component's own hash.
fn preinit_seed(sha256_hex: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(format!("cue-preinit\n{sha256_hex}")).into()
}

/// What Wizer reads the initialised instance's state through: the accessor functions its
/// instrumentation exported. A failure is kept (Wizer's interface has no error) and reported
/// after the snapshot.
struct StateReader<'a> {
    store: &'a mut Store<JobState>,
    instance: Instance,
    error: Option<String>,
}

impl StateReader<'_> {
    fn call<R: Lift + 'static>(&mut self, instance: &str, func: &str) -> Option<R> {
        let result = (|| {
            let (_, exported) = self.instance.get_export(&mut *self.store, None, instance)?;
            let (_, index) = self.instance.get_export(&mut *self.store, Some(&exported), func)?;
            let func = self.instance.get_typed_func::<(), (R,)>(&mut *self.store, index).ok()?;
            func.call(&mut *self.store, ()).ok().map(|(value,)| value)
        })();
        if result.is_none() && self.error.is_none() {
            self.error = Some(format!("cannot read {instance}#{func}"));
        }
        result
    }
}

impl ComponentInstanceState for StateReader<'_> {
    fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) -> impl Future<Output = ()> + Send {
        match self.call::<WasmList<u8>>(instance, func) {
            Some(list) => contents(list.as_le_slice(&*self.store)),
            None => contents(&[]),
        }
        std::future::ready(())
    }

    fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> impl Future<Output = i32> + Send {
        std::future::ready(self.call(instance, func).unwrap_or_default())
    }

    fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> impl Future<Output = i64> + Send {
        std::future::ready(self.call(instance, func).unwrap_or_default())
    }

    fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> impl Future<Output = u32> + Send {
        std::future::ready(self.call::<f32>(instance, func).unwrap_or_default().to_bits())
    }

    fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> impl Future<Output = u64> + Send {
        std::future::ready(self.call::<f64>(instance, func).unwrap_or_default().to_bits())
    }
}
