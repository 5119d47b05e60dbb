//! The passes that rewrite guest code checked against the code as written: run one core module
//! two ways and compare everything a job or its host could observe — each export's result
//! bits (or its trap), every argument the module passes to an import, every byte of every
//! exported memory, every exported global's bits at the end, and the fuel used.
//!
//! [`compare`] checks the float pass against the engine-wide canonicalisation (both on the
//! module as the sandbox compiles it, its loops unrolled); [`compare_unrolled`] checks the
//! loop unrolling against the module as written. Used by the unit tests (hand-written modules),
//! by the `wasm-smith` corpus test and by the `floats` fuzz target
//! (`cue_host::fuzzing::floats`).

use std::sync::OnceLock;

use wasmtime::{
    Config, Engine, Extern, Instance, Linker, Module, OptLevel, Store, StoreLimits, StoreLimitsBuilder, Trap,
    Val, ValType,
};

use super::floats::{NanCanonicalization, configure, rewrite_module};
use super::unroll::unroll_module;

/// The fuel each run starts with: enough for small generated programs, small enough that a
/// generated infinite loop ends quickly.
pub const FUEL: u64 = 2_000_000;

/// The most linear memory a run may have.
const MEMORY_BYTES: usize = 16 << 20;

/// Everything one run of a module made observable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// Each export's outcome, in export order: its results' bits, or its trap.
    pub calls: Vec<String>,
    /// Each import call's arguments' bits, in call order.
    pub import_calls: Vec<String>,
    /// Every exported memory's bytes at the end.
    pub memories: Vec<Vec<u8>>,
    /// Every exported global's bits at the end.
    pub globals: Vec<String>,
    /// Fuel used by the whole run (instantiation and every call).
    pub fuel: u64,
}

/// What comparing the two runs of one module found.
#[derive(Debug, PartialEq, Eq)]
pub enum Comparison {
    /// Both runs observed exactly the same.
    Same(Observation),
    /// The runs cannot be compared: the module does not compile on either engine, imports
    /// something without a default (a tag), or overflowed a stack (the depth at which a stack
    /// overflows depends on frame sizes, which the pass changes).
    Inconclusive(String),
}

/// A pass changed something observable: the two runs (its message names what differs, and
/// for a memory the first byte that does, not every byte).
#[derive(Debug, thiserror::Error)]
#[error("{pass} changed what a module observes:\n{}", differences(before, after))]
pub struct Difference {
    /// Which pass: "the float pass" or "the loop unrolling".
    pub pass: &'static str,
    /// The run of the module without the pass (for the float pass: with the engine-wide
    /// canonicalisation instead).
    pub before: Box<Observation>,
    /// The run of the module through the pass.
    pub after: Box<Observation>,
}

/// What differs between two observations, one line each.
fn differences(before: &Observation, after: &Observation) -> String {
    let mut lines = Vec::new();
    let mut field = |name: &str, a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug, same: bool| {
        if !same {
            lines.push(format!("{name}: before {a:?}, after {b:?}"));
        }
    };
    field("calls", &before.calls, &after.calls, before.calls == after.calls);
    field(
        "import calls",
        &before.import_calls,
        &after.import_calls,
        before.import_calls == after.import_calls,
    );
    field("globals", &before.globals, &after.globals, before.globals == after.globals);
    field("fuel", &before.fuel, &after.fuel, before.fuel == after.fuel);
    if before.memories.len() != after.memories.len() {
        lines.push(format!("memories: {} before, {} after", before.memories.len(), after.memories.len()));
    }
    for (n, (a, b)) in before.memories.iter().zip(&after.memories).enumerate() {
        if let Some(at) =
            a.iter().zip(b).position(|(x, y)| x != y).or((a.len() != b.len()).then_some(a.len().min(b.len())))
        {
            let window = |m: &[u8]| m[at.saturating_sub(8)..(at + 8).min(m.len())].to_vec();
            lines.push(format!(
                "memory {n} ({} and {} bytes): first difference at byte {at}: before {:?}, after {:?} (from byte {})",
                a.len(),
                b.len(),
                window(a),
                window(b),
                at.saturating_sub(8)
            ));
        }
    }
    lines.join("\n")
}

/// Runs `module` with its loops unrolled (as the sandbox compiles every module) under
/// [`NanCanonicalization::EveryOperation`], and also rewritten by the float pass under
/// [`NanCanonicalization::AtObservation`], and compares the two.
pub fn compare(module: &[u8]) -> Result<Comparison, Difference> {
    let unrolled = match unroll_module(module) {
        Ok(unrolled) => unrolled,
        Err(e) if Module::validate(engine(NanCanonicalization::EveryOperation, false), module).is_ok() => {
            panic!("the engine accepts the module but the unrolling refuses it: {e}")
        }
        Err(e) => return Ok(Comparison::Inconclusive(format!("does not validate: {e}"))),
    };
    let every = match observe(engine(NanCanonicalization::EveryOperation, true), &unrolled) {
        Ok(observation) => observation,
        Err(why) => return Ok(Comparison::Inconclusive(why)),
    };
    let rewritten = match rewrite_module(&unrolled) {
        Ok(rewritten) => rewritten,
        Err(e) => panic!("the engine accepts the module but the pass refuses it: {e}"),
    };
    let pass = match observe(engine(NanCanonicalization::AtObservation, true), &rewritten) {
        Ok(observation) => observation,
        Err(why) if why.contains("stack overflow") => return Ok(Comparison::Inconclusive(why)),
        Err(why) => panic!("the module runs as it is but not rewritten: {why}"),
    };
    if every.calls.iter().chain(&pass.calls).any(|c| c.contains("stack overflow")) {
        return Ok(Comparison::Inconclusive("a call overflowed its stack".into()));
    }
    if every == pass {
        Ok(Comparison::Same(pass))
    } else {
        Err(Difference { pass: "the float pass", before: Box::new(every), after: Box::new(pass) })
    }
}

/// Runs `module` as written and with its loops unrolled (both under
/// [`NanCanonicalization::EveryOperation`]) and compares the two. A run that runs out of fuel
/// is stopped at the first check after the limit, and unrolling moves the checks
/// (docs/sandbox.md, "Metering"): when the module as written runs out, the comparison is
/// inconclusive but for what must still hold — unrolled, it used all of its fuel too.
pub fn compare_unrolled(module: &[u8]) -> Result<Comparison, Difference> {
    let written = match observe(engine(NanCanonicalization::EveryOperation, false), module) {
        Ok(observation) => observation,
        Err(why) => return Ok(Comparison::Inconclusive(why)),
    };
    let unrolled = match unroll_module(module) {
        Ok(unrolled) => unrolled,
        Err(e) => panic!("the engine accepts the module but the unrolling refuses it: {e}"),
    };
    let after = match observe(engine(NanCanonicalization::EveryOperation, true), &unrolled) {
        Ok(observation) => observation,
        Err(why) if why.contains("stack overflow") => return Ok(Comparison::Inconclusive(why)),
        Err(why) => panic!("the module runs as written but not unrolled: {why}"),
    };
    let differ = |written: Observation, after: Observation| Difference {
        pass: "the loop unrolling",
        before: Box::new(written),
        after: Box::new(after),
    };
    if written.calls.iter().chain(&after.calls).any(|c| c.contains("stack overflow")) {
        return Ok(Comparison::Inconclusive("a call overflowed its stack".into()));
    }
    if written.fuel == FUEL {
        return match after.fuel {
            FUEL => Ok(Comparison::Inconclusive("ran out of fuel".into())),
            _ => Err(differ(written, after)),
        };
    }
    if written == after { Ok(Comparison::Same(after)) } else { Err(differ(written, after)) }
}

/// The engine for code rewritten as `mode` and `unrolled` say, configured as the sandbox's
/// (fuel and its table, deterministic relaxed SIMD, no threads, no memory64), built once.
pub fn engine(mode: NanCanonicalization, unrolled: bool) -> &'static Engine {
    static ENGINES: [OnceLock<Engine>; 4] = [const { OnceLock::new() }; 4];
    let cell = &ENGINES[usize::from(mode == NanCanonicalization::AtObservation) * 2 + usize::from(unrolled)];
    cell.get_or_init(|| {
        let mut config = Config::new();
        config
            .consume_fuel(true)
            .relaxed_simd_deterministic(true)
            .shared_memory(false)
            .wasm_memory64(false)
            .max_wasm_stack(1 << 20)
            .cranelift_opt_level(OptLevel::Speed);
        configure(&mut config, mode, unrolled);
        Engine::new(&config).expect("the differential engine's configuration is valid")
    })
}

struct RunState {
    limits: StoreLimits,
    import_calls: Vec<String>,
}

/// One run: instantiate (with imports that record their arguments and return zeros), call
/// every exported function with zero arguments, read the exports. `Err` says why the module
/// cannot be run at all.
pub fn observe(engine: &Engine, module: &[u8]) -> Result<Observation, String> {
    let module = Module::new(engine, module).map_err(|e| format!("does not compile: {e:#}"))?;
    let limits = StoreLimitsBuilder::new().memory_size(MEMORY_BYTES).table_elements(10_000).build();
    let mut store = Store::new(engine, RunState { limits, import_calls: Vec::new() });
    store.limiter(|state| &mut state.limits);
    store.set_fuel(FUEL).map_err(|e| e.to_string())?;
    let linker = recording_linker(&mut store, &module)?;
    let instance = linker.instantiate(&mut store, &module);
    let mut calls = Vec::new();
    let instance = match instance {
        Ok(instance) => Some(instance),
        Err(e) => {
            calls.push(format!("instantiation: {}", trap_text(&e)));
            None
        }
    };
    if let Some(instance) = instance {
        call_exports(&mut store, &module, instance, &mut calls);
    }
    let (memories, globals) = match instance {
        Some(instance) => read_exports(&mut store, &module, instance),
        None => (Vec::new(), Vec::new()),
    };
    let fuel = FUEL - store.get_fuel().map_err(|e| e.to_string())?;
    let import_calls = std::mem::take(&mut store.data_mut().import_calls);
    Ok(Observation { calls, import_calls, memories, globals, fuel })
}

/// Imported functions record their arguments and return zeros; other imports are their type's
/// default (a zero global, an empty memory or table of the minimum size).
fn recording_linker(store: &mut Store<RunState>, module: &Module) -> Result<Linker<RunState>, String> {
    let mut linker: Linker<RunState> = Linker::new(store.engine());
    for import in module.imports() {
        let Some(ty) = import.ty().func().cloned() else {
            let value = import.ty().default_value(&mut *store).map_err(|e| e.to_string())?;
            linker.define(&*store, import.module(), import.name(), value).map_err(|e| e.to_string())?;
            continue;
        };
        let name = format!("{}::{}", import.module(), import.name());
        let results: Vec<ValType> = ty.results().collect();
        linker
            .func_new(import.module(), import.name(), ty, move |mut caller, args, out| {
                let bits: Vec<String> = args.iter().map(bits).collect();
                caller.data_mut().import_calls.push(format!("{name}({})", bits.join(", ")));
                for (slot, ty) in out.iter_mut().zip(&results) {
                    *slot = Val::default_for_ty(ty).unwrap_or(Val::I32(0));
                }
                Ok(())
            })
            .map_err(|e| e.to_string())?;
    }
    Ok(linker)
}

fn call_exports(store: &mut Store<RunState>, module: &Module, instance: Instance, calls: &mut Vec<String>) {
    for export in module.exports() {
        let Some(Extern::Func(func)) = instance.get_export(&mut *store, export.name()) else {
            continue;
        };
        let ty = func.ty(&*store);
        let args: Option<Vec<Val>> = ty.params().map(|t| Val::default_for_ty(&t)).collect();
        let Some(args) = args else {
            calls.push(format!("{}: not callable with zeros", export.name()));
            continue;
        };
        let mut results = vec![Val::I32(0); ty.results().len()];
        let outcome = match func.call(&mut *store, &args, &mut results) {
            Ok(()) => results.iter().map(bits).collect::<Vec<_>>().join(", "),
            Err(e) => trap_text(&e),
        };
        calls.push(format!("{}: {outcome}", export.name()));
    }
}

fn read_exports(
    store: &mut Store<RunState>,
    module: &Module,
    instance: Instance,
) -> (Vec<Vec<u8>>, Vec<String>) {
    let mut memories = Vec::new();
    let mut globals = Vec::new();
    for export in module.exports() {
        match instance.get_export(&mut *store, export.name()) {
            Some(Extern::Memory(memory)) => memories.push(memory.data(&*store).to_vec()),
            Some(Extern::Global(global)) => globals.push(bits(&global.get(&mut *store))),
            _ => {}
        }
    }
    (memories, globals)
}

/// A value's exact bits (floats as their bit patterns, not their numeric value).
fn bits(value: &Val) -> String {
    match value {
        Val::I32(v) => format!("i32:{v:#x}"),
        Val::I64(v) => format!("i64:{v:#x}"),
        Val::F32(v) => format!("f32:{v:#010x}"),
        Val::F64(v) => format!("f64:{v:#018x}"),
        Val::V128(v) => format!("v128:{:#034x}", v.as_u128()),
        _ => "a reference".to_string(),
    }
}

fn trap_text(error: &wasmtime::Error) -> String {
    match error.downcast_ref::<Trap>() {
        Some(Trap::StackOverflow) => "trap: stack overflow".to_string(),
        Some(trap) => format!("trap: {trap}"),
        None => format!("error: {error}"),
    }
}

/// How many operators `wanted` picks in the code of a core module or of every core module of
/// a component (e.g. how many canonicalisations the pass left: its scalar f64 sequence has
/// one `f64.ge`, its f32x4 one `f32x4.eq`).
pub fn count_operators(binary: &[u8], wanted: fn(&wasmparser::Operator<'_>) -> bool) -> usize {
    let mut count = 0;
    for payload in wasmparser::Parser::new(0).parse_all(binary) {
        if let Ok(wasmparser::Payload::CodeSectionEntry(body)) = payload
            && let Ok(mut reader) = body.get_operators_reader()
        {
            while !reader.eof() {
                count += usize::from(reader.read().is_ok_and(|op| wanted(&op)));
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::{Difference, Observation};

    #[test]
    fn a_difference_names_what_differs_and_the_first_differing_byte_not_every_byte() {
        let before = Observation {
            calls: vec!["f: i32:0x1".into()],
            import_calls: vec![],
            memories: vec![vec![0; 65536]],
            globals: vec![],
            fuel: 10,
        };
        let mut after = before.clone();
        after.memories[0][40_000] = 7;
        after.fuel = 11;
        let text =
            Difference { pass: "the loop unrolling", before: Box::new(before), after: Box::new(after) }
                .to_string();
        assert!(text.starts_with("the loop unrolling changed"), "{text}");
        assert!(text.contains("fuel: before 10, after 11"), "{text}");
        assert!(text.contains("first difference at byte 40000"), "{text}");
        assert!(!text.contains("calls"), "calls are the same: {text}");
        assert!(text.len() < 400, "{} characters", text.len());
    }
}
