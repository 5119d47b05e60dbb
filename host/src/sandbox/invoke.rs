//! Typed invocation: find the export, type-check the call, run it on a fresh instance under
//! the job's limits, and turn whatever happened into an [`Outcome`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::wasm_wave::parser::ParserError;
use wasmtime::component::wasm_wave::untyped::UntypedFuncCall;
use wasmtime::component::{Component, ComponentExportIndex, InstancePre, Type, Val};
use wasmtime::{Store, Trap, UpdateDeadline};

use super::cache::CodeSource;
use super::caps::{EventSink, JobLog, JobState, LogLine};
use super::error::{FailureKind, JobError, Stop};
use super::json;
use super::limits::{JobLimiter, Limits};
use super::verify::VerifiedComponent;

/// One exported function of a component.
#[derive(Clone)]
pub struct Export {
    /// `fib`, or `interface#function` for a function inside an exported interface.
    pub name: String,
    index: ComponentExportIndex,
    ty: ComponentFunc,
}

impl Export {
    /// The signature, e.g. `fib(n: u32) -> u64`.
    pub fn signature(&self) -> String {
        signature(self)
    }

    fn param_types(&self) -> Vec<Type> {
        self.ty.params().map(|(_, ty)| ty).collect()
    }

    fn result_type(&self) -> Option<Type> {
        self.ty.results().next()
    }
}

/// A verified, compiled and pre-linked component. Every invocation gets a fresh store and
/// instance, so no state leaks from one call to the next.
pub struct LoadedComponent {
    verified: VerifiedComponent,
    pre: InstancePre<JobState>,
    exports: Vec<Export>,
    engine: wasmtime::Engine,
    epoch_tick: Duration,
    max_memory_bytes: u64,
    source: CodeSource,
    load_time: Duration,
}

/// A type-checked call of one export.
#[derive(Clone)]
pub struct Call {
    export: Export,
    args: Vec<Val>,
    /// The call in WAVE, canonical form (re-printed from the typed values).
    wave: String,
    /// The job seed used unless the invocation gives one:
    /// `sha256(component sha256 ‖ "\n" ‖ canonical call)`.
    default_seed: [u8; 32],
}

impl Call {
    /// The export being called.
    pub fn export_name(&self) -> &str {
        &self.export.name
    }

    /// The call in canonical WAVE, e.g. `fib(30)`.
    pub fn wave(&self) -> &str {
        &self.wave
    }

    /// SHA-256 of the canonical call: with the component hash, it identifies a job's input.
    pub fn input_hash(&self) -> String {
        hex::encode(Sha256::digest(self.wave.as_bytes()))
    }
}

/// Per-invocation options besides the limits.
#[derive(Clone, Default)]
pub struct Invocation {
    /// Seed for the job's clocks-independent randomness; `None` derives it from the
    /// component hash and the call, so re-running the same job reproduces it.
    pub seed: Option<[u8; 32]>,
    /// Receives log lines and progress while the job runs.
    pub events: Option<EventSink>,
    /// Stops the run early when cancelled (its contract ended): it is interrupted at the next
    /// epoch tick and ends as a `timeout`.
    pub cancel: Option<Cancel>,
}

/// Epoch ticks between two looks at a cancellable run's cancel flag (10 ms at the default
/// 2 ms tick): how long a cancelled run may go on.
const CANCEL_CHECK_TICKS: u64 = 5;

/// A handle that stops a running invocation from another thread (see [`Invocation::cancel`]).
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<std::sync::atomic::AtomicBool>);

impl Cancel {
    /// Asks the run to stop; it is interrupted within one epoch tick of wasm code.
    pub fn cancel(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A successful job's result.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct JobOutput {
    /// The result in WAVE (`()` for a function without a result).
    pub wave: String,
    /// The result as JSON, mapped by its WIT type (`null` for no result).
    pub json: serde_json::Value,
}

/// Everything about one finished invocation.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The result, or exactly one typed failure.
    pub result: Result<JobOutput, JobError>,
    /// Fuel consumed.
    pub fuel_used: u64,
    /// Wall time of instantiation and call.
    pub wall: Duration,
    /// The most linear memory the job held at once.
    pub peak_memory_bytes: u64,
    /// The job's log.
    pub log: Vec<LogLine>,
}

/// What a loaded component keeps of the sandbox that loaded it, to run its calls: given by
/// [`Sandbox::load`](super::Sandbox::load), so this module never reads the sandbox back.
pub(crate) struct InstanceSettings {
    /// The engine that compiled the component.
    pub(crate) engine: wasmtime::Engine,
    /// How often the epoch advances (the unit of a call's deadline).
    pub(crate) epoch_tick: Duration,
    /// The host-wide cap on a job's linear memory.
    pub(crate) max_memory_bytes: u64,
}

impl LoadedComponent {
    pub(crate) fn new(
        settings: InstanceSettings,
        verified: VerifiedComponent,
        component: Component,
        pre: InstancePre<JobState>,
        source: CodeSource,
        load_time: Duration,
    ) -> Self {
        let exports = list_exports(&settings.engine, &component);
        LoadedComponent {
            verified,
            pre,
            exports,
            engine: settings.engine,
            epoch_tick: settings.epoch_tick,
            max_memory_bytes: settings.max_memory_bytes,
            source,
            load_time,
        }
    }

    /// The verified component (sha256, size, import verdicts).
    pub fn verified(&self) -> &VerifiedComponent {
        &self.verified
    }

    /// The exported functions.
    pub fn exports(&self) -> &[Export] {
        &self.exports
    }

    /// Whether the code was compiled now or loaded from the cache, and how long loading took.
    pub fn load_stats(&self) -> (CodeSource, Duration) {
        (self.source, self.load_time)
    }

    /// The export a call of `name` (a full export name or a function name) would run: a
    /// [`FailureKind::BadArguments`] error naming what it exports when there is none.
    pub fn export(&self, name: &str) -> Result<&Export, JobError> {
        self.find_export(name)
    }

    fn find_export(&self, name: &str) -> Result<&Export, JobError> {
        let bad = |message: String| JobError::new(FailureKind::BadArguments, message);
        if let Some(export) = self.exports.iter().find(|e| e.name == name) {
            return Ok(export);
        }
        let by_function: Vec<&Export> =
            self.exports.iter().filter(|e| e.name.rsplit_once('#').is_some_and(|(_, f)| f == name)).collect();
        match by_function.as_slice() {
            [one] => Ok(one),
            [] => Err(bad(format!(
                "the component exports no function `{name}`; it exports: {}",
                self.export_list()
            ))),
            many => Err(bad(format!(
                "`{name}` is ambiguous; say which: {}",
                many.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    fn export_list(&self) -> String {
        let names: Vec<&str> = self.exports.iter().map(|e| e.name.as_str()).collect();
        if names.is_empty() { "nothing".into() } else { names.join(", ") }
    }

    /// Parses and type-checks a call written in WAVE, such as `fib(30)` or
    /// `count-words("a b a")`.
    pub fn parse_call(&self, wave: &str) -> Result<Call, JobError> {
        let bad = |message: String| JobError::new(FailureKind::BadArguments, message);
        let source = wave.trim();
        let call = UntypedFuncCall::parse(source).map_err(|e| {
            bad(format!("cannot parse the call `{source}`: {}", describe_wave_error(source, &e)))
        })?;
        let export = self.find_export(call.name())?;
        let types = export.param_types();
        let args = call.to_wasm_params::<Val>(types.iter()).map_err(|e| {
            bad(format!(
                "{}: {}; expected {}",
                export.name,
                describe_wave_error(source, &e),
                signature(export)
            ))
        })?;
        Ok(make_call(&self.verified.sha256, export.clone(), args))
    }

    /// Reads a result another host reported for `call` (its WAVE text): type-checks it against
    /// the export's result type and maps it to JSON, as if this host had run the call. A result
    /// that does not type-check is a `trap`-free [`FailureKind::BadArguments`] error naming why.
    pub fn output_from_wave(&self, call: &Call, wave: &str) -> Result<JobOutput, JobError> {
        let bad = |message: String| JobError::new(FailureKind::BadArguments, message);
        match call.export.result_type() {
            None if wave.trim() == "()" => Ok(JobOutput { wave: "()".into(), json: serde_json::Value::Null }),
            None => Err(bad(format!("{} has no result, but `{wave}` was reported", call.export.name))),
            Some(ty) => {
                let value: Val = wasmtime::component::wasm_wave::from_str(&ty, wave)
                    .map_err(|e| bad(format!("the reported result does not type-check: {e}")))?;
                let canonical = wasmtime::component::wasm_wave::to_string(&value)
                    .map_err(|e| bad(format!("the reported result cannot be printed: {e}")))?;
                Ok(JobOutput { wave: canonical, json: json::to_json(&ty, &value) })
            }
        }
    }

    /// Builds a call from JSON arguments: an array in parameter order, or an object by
    /// parameter name. Values map by the WIT types (see docs/sandbox.md).
    pub fn json_call(&self, function: &str, args: &serde_json::Value) -> Result<Call, JobError> {
        let export = self.find_export(function)?;
        let params: Vec<(String, Type)> = export.ty.params().map(|(n, t)| (n.to_string(), t)).collect();
        let values: Vec<&serde_json::Value> = match args {
            serde_json::Value::Array(items) if items.len() == params.len() => items.iter().collect(),
            serde_json::Value::Object(map) => {
                params.iter().map(|(name, _)| map.get(name).unwrap_or(&serde_json::Value::Null)).collect()
            }
            _ => {
                return Err(JobError::new(
                    FailureKind::BadArguments,
                    format!("{} takes {} argument(s): {}", export.name, params.len(), signature(export)),
                ));
            }
        };
        let args = params
            .iter()
            .zip(values)
            .map(|((name, ty), value)| {
                json::from_json(ty, value).map_err(|e| {
                    JobError::new(
                        FailureKind::BadArguments,
                        format!("argument `{name}` of {}: {e}", export.name),
                    )
                })
            })
            .collect::<Result<Vec<Val>, JobError>>()?;
        Ok(make_call(&self.verified.sha256, export.clone(), args))
    }

    /// Runs `call` on a fresh instance under `limits`.
    pub fn invoke(&self, call: &Call, limits: &Limits, options: &Invocation) -> Outcome {
        let started = Instant::now();
        let mut limits = limits.clone();
        limits.memory_bytes = limits.memory_bytes.min(self.max_memory_bytes);
        let log = Arc::new(Mutex::new(JobLog::new(limits.log_bytes)));
        let seed = options.seed.unwrap_or(call.default_seed);
        let limiter = JobLimiter::new(&limits);
        let state = JobState::new(seed, limiter, log.clone(), options.events.clone(), limits.timeout);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        store.set_hostcall_fuel(limits.lift_bytes());
        let run = store.set_fuel(limits.fuel).map_err(RunError::Wasm).and_then(|()| {
            // Epoch ticks only say when to look at the clock: the deadline itself is the wall
            // clock, so a burst of catch-up ticks on a loaded machine never stops a job early.
            let tick = self.epoch_tick.as_nanos().max(1);
            let ticks_for = move |left: Duration| (left.as_nanos().div_ceil(tick) as u64).max(1);
            let deadline = started.checked_add(limits.timeout);
            // A cancellable run looks at its cancel flag every few ticks, not only at its deadline.
            let cancel = options.cancel.clone();
            let check = if cancel.is_some() { CANCEL_CHECK_TICKS } else { u64::MAX };
            store.set_epoch_deadline(ticks_for(limits.timeout).min(check));
            store.epoch_deadline_callback(move |_| {
                if cancel.as_ref().is_some_and(Cancel::is_cancelled) {
                    return Ok(UpdateDeadline::Interrupt);
                }
                let now = Instant::now();
                Ok(match deadline {
                    Some(deadline) if now < deadline => {
                        UpdateDeadline::Continue(ticks_for(deadline - now).min(check))
                    }
                    Some(_) => UpdateDeadline::Interrupt,
                    None => UpdateDeadline::Continue(check.min(u64::MAX / 2)),
                })
            });
            self.run(&mut store, call, &limits)
        });
        let fuel_used = limits.fuel - store.get_fuel().unwrap_or(0);
        let peak_memory_bytes = store.data().limiter.peak_memory;
        drop(store);
        let mut log = log.lock().expect("job log lock");
        let flushed = log.finish();
        if let Some(events) = &options.events {
            flushed.into_iter().for_each(|line| events(super::caps::JobEvent::Log(line)));
        }
        let result = run.map_err(|err| classify(err, &log, &limits));
        Outcome { result, fuel_used, wall: started.elapsed(), peak_memory_bytes, log: log.take_lines() }
    }

    fn run(&self, store: &mut Store<JobState>, call: &Call, limits: &Limits) -> Result<JobOutput, RunError> {
        let instance = self.pre.instantiate(&mut *store).map_err(RunError::Wasm)?;
        let func = instance
            .get_func(&mut *store, call.export.index)
            .ok_or_else(|| RunError::Job(JobError::new(FailureKind::InvalidComponent, "export vanished")))?;
        let mut results = vec![Val::Bool(false); call.export.ty.results().len()];
        func.call(&mut *store, &call.args, &mut results).map_err(RunError::Wasm)?;
        let value = results.into_iter().next();
        if let Some(value) = &value
            && json::exceeds(value, limits.result_bytes)
        {
            return Err(RunError::Job(JobError::new(
                FailureKind::TooLarge,
                format!("the result is larger than the limit of {} bytes", limits.result_bytes),
            )));
        }
        let wave = match &value {
            Some(value) => wasmtime::component::wasm_wave::to_string(value).map_err(|e| {
                RunError::Job(JobError::new(FailureKind::Trap, format!("unprintable result: {e}")))
            })?,
            None => "()".to_string(),
        };
        if wave.len() > limits.result_bytes {
            return Err(RunError::Job(JobError::new(
                FailureKind::TooLarge,
                format!("the result is {} bytes of WAVE; the limit is {}", wave.len(), limits.result_bytes),
            )));
        }
        let json = match (&value, call.export.result_type()) {
            (Some(value), Some(ty)) => json::to_json(&ty, value),
            _ => serde_json::Value::Null,
        };
        Ok(JobOutput { wave, json })
    }
}

/// Why a run stopped before producing a value.
enum RunError {
    /// Already classified.
    Job(JobError),
    /// A wasmtime error or trap, to classify.
    Wasm(wasmtime::Error),
}

/// What wasmtime says when a transfer from the job to the host passes the store's hostcall
/// fuel ([`Limits::lift_bytes`]). Its error type is private, so it is recognised by its text;
/// the sandbox tests pin it (a huge result must end `too-large`).
const HOSTCALL_FUEL_EXHAUSTED: &str = "fuel allocated for hostcalls has been exhausted";

fn classify(err: RunError, log: &JobLog, limits: &Limits) -> JobError {
    let err = match err {
        RunError::Job(job) => return job,
        RunError::Wasm(err) => err,
    };
    if let Some(Stop(job)) = err.downcast_ref::<Stop>() {
        return job.clone();
    }
    if err.chain().any(|cause| cause.to_string().contains(HOSTCALL_FUEL_EXHAUSTED)) {
        return JobError::new(
            FailureKind::TooLarge,
            format!(
                "the job passed the host more than {} bytes at once (as a result or a host call's \
                 arguments)",
                limits.lift_bytes()
            ),
        );
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => {
            JobError::new(FailureKind::OutOfFuel, format!("the job used all of its {} fuel", limits.fuel))
        }
        Some(Trap::Interrupt) => JobError::new(
            FailureKind::Timeout,
            format!("the job ran past its deadline of {:?}", limits.timeout),
        ),
        Some(Trap::StackOverflow) => JobError::new(
            FailureKind::StackOverflow,
            "the job exhausted its wasm stack (unbounded recursion?)",
        ),
        Some(trap) => {
            let message = match log.panic_message() {
                Some(panic) => format!("the guest panicked: {panic}"),
                None => format!("the guest trapped: {trap}"),
            };
            JobError::new(FailureKind::Trap, message)
        }
        None => {
            if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
                return JobError::new(FailureKind::Trap, format!("the guest exited with status {}", exit.0));
            }
            JobError::new(FailureKind::Trap, format!("{err:#}"))
        }
    }
}

fn make_call(component_sha256: &str, export: Export, args: Vec<Val>) -> Call {
    let rendered: Vec<String> = args
        .iter()
        .map(|arg| wasmtime::component::wasm_wave::to_string(arg).unwrap_or_else(|_| "?".into()))
        .collect();
    let wave = format!("{}({})", export.name, rendered.join(", "));
    let default_seed = Sha256::new()
        .chain_update(component_sha256)
        .chain_update(b"\n")
        .chain_update(&wave)
        .finalize()
        .into();
    Call { export, args, wave, default_seed }
}

/// A WAVE error with the offending text quoted instead of a byte range.
fn describe_wave_error(source: &str, err: &ParserError) -> String {
    let what = match err.detail() {
        Some(detail) => format!("{}: {detail}", err.kind()),
        None => err.kind().to_string(),
    };
    let span = err.span();
    match source.get(span.clone()).filter(|s| !s.is_empty()) {
        Some(snippet) => format!("{what} at `{snippet}`"),
        None => format!("{what} at column {}", span.start + 1),
    }
}

fn signature(export: &Export) -> String {
    let params: Vec<String> =
        export.ty.params().map(|(name, ty)| format!("{name}: {}", json::type_name(&ty))).collect();
    let result = export.result_type().map(|ty| format!(" -> {}", json::type_name(&ty))).unwrap_or_default();
    format!("{}({}){result}", export.name, params.join(", "))
}

fn list_exports(engine: &wasmtime::Engine, component: &Component) -> Vec<Export> {
    let mut exports = Vec::new();
    for (name, item) in component.component_type().exports(engine) {
        match item.ty {
            ComponentItem::ComponentFunc(ty) => {
                if let Some((_, index)) = component.get_export(None, name) {
                    exports.push(Export { name: name.to_string(), index, ty });
                }
            }
            ComponentItem::ComponentInstance(instance) => {
                let Some((_, parent)) = component.get_export(None, name) else { continue };
                for (func_name, func_item) in instance.exports(engine) {
                    if let ComponentItem::ComponentFunc(ty) = func_item.ty
                        && let Some((_, index)) = component.get_export(Some(&parent), func_name)
                    {
                        exports.push(Export { name: format!("{name}#{func_name}"), index, ty });
                    }
                }
            }
            _ => {}
        }
    }
    exports
}
