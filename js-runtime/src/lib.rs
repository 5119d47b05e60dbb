//! The JavaScript runtime of Cue: a component of the `cue:js/runtime` world (`wit/js.wit`)
//! that runs a function written as JavaScript text on JSON arguments, inside the sandbox like
//! any other job.
//!
//! `run(code, args)` evaluates `code` as an expression (wrapped in parentheses, so
//! `function (a) { … }` is an expression too), checks that its value is a function, calls it
//! with the elements of the JSON array `args`, awaits a returned promise by draining the job
//! queue, and writes the value as JSON with the engine's own `JSON.stringify`, captured before
//! the job's code runs (so a job that replaces `JSON.stringify` changes nothing here).
//!
//! The engine is Boa (`boa_engine`, pure Rust). What makes it deterministic and closed:
//! - `Math.random` is replaced by a generator seeded from the host's `random-u64`, which the
//!   sandbox seeds from the job: the same call sees the same numbers on every replica.
//! - `Date` reads the WASI wall clock, which the sandbox virtualises (2025-01-01T00:00:00Z
//!   plus 1 µs per read); the local time zone is UTC.
//! - The only globals beyond ECMAScript are `console` (to the job's log); there is no
//!   `fetch`, no timers, no modules, no file system.

mod console;
mod encode;
mod random;

use std::cell::RefCell;

use boa_engine::object::builtins::JsArray;
use boa_engine::{Context, JsObject, JsResult, JsString, JsValue, Source, context::HostHooks, js_string};

wit_bindgen::generate!({
    world: "cue:js/runtime",
    path: ["../wit", "wit"],
    generate_all,
});

/// The deepest chain of JavaScript calls a job may make; deeper ends as `engine-limit`.
/// Node allows about 10,000 frames of a small function; Boa's frames live in its own VM
/// stack, so this bound is about JavaScript depth, not the wasm stack.
const RECURSION_LIMIT: usize = 10_000;

/// The most values Boa's VM stack may hold (locals and temporaries of every live frame).
const VM_STACK_LIMIT: usize = 1 << 20;

struct Runtime;

thread_local! {
    /// A fresh engine waiting for this instance's first job: made by `init`, which `cue`
    /// runs once when it pre-initialises the component, so the engine's start-up is in the
    /// snapshot instead of in every job. `run` takes it (or makes one), so no job ever sees
    /// an engine another job used.
    static FRESH: RefCell<Option<Engine>> = const { RefCell::new(None) };
}

/// A context with the runtime's globals, and the built-ins the runtime uses itself.
struct Engine {
    context: Context,
    builtins: Builtins,
}

impl Engine {
    fn new() -> Result<Engine, JsError> {
        let mut context =
            new_context().map_err(|e| JsError::EngineLimit(format!("the engine failed to start: {e}")))?;
        let builtins = Builtins::capture(&mut context)?;
        Ok(Engine { context, builtins })
    }
}

impl Guest for Runtime {
    fn init() {
        if FRESH.with_borrow(Option::is_some) {
            return;
        }
        // A job on a throwaway engine first: it fills the engine's process-wide tables that
        // are built on first use (the parser's, the interner's), so that they are in the
        // snapshot too; then a collection, so the first job does not start with one.
        if let Ok(mut warm_up) = Engine::new() {
            let _ = run_job("(a, b) => JSON.stringify([a * b, `${a}`])", "[5, 10]", &mut warm_up);
        }
        boa_gc::force_collect();
        FRESH.set(Engine::new().ok());
    }

    fn run(code: String, args: String) -> Result<String, JsError> {
        let mut engine = match FRESH.take() {
            Some(engine) => engine,
            None => Engine::new()?,
        };
        run_job(&code, &args, &mut engine)
    }
}

export!(Runtime);

fn run_job(code: &str, args: &str, engine: &mut Engine) -> Result<String, JsError> {
    let Engine { context, builtins } = engine;
    let function = evaluate(code, context)?;
    let args = parse_args(args, builtins, context)?;
    let returned = function.call(&JsValue::undefined(), &args, context);
    let value = encode::settle(returned, context)?;
    encode::to_json(&value, builtins, context)
}

/// Host hooks that make the local time zone UTC on every host.
struct UtcHooks;

impl HostHooks for UtcHooks {
    fn local_timezone_offset_seconds(&self, _unix_time_seconds: i64) -> i32 {
        0
    }
}

fn new_context() -> JsResult<Context> {
    let mut context = Context::builder().host_hooks(std::rc::Rc::new(UtcHooks)).build()?;
    context.runtime_limits_mut().set_recursion_limit(RECURSION_LIMIT);
    context.runtime_limits_mut().set_stack_size_limit(VM_STACK_LIMIT);
    console::install(&mut context)?;
    random::install(&mut context)?;
    Ok(context)
}

/// The built-ins the runtime itself uses, taken before any job code runs.
pub(crate) struct Builtins {
    /// `JSON.parse`: reads the arguments.
    json_parse: JsObject,
    /// `JSON.stringify`: writes the result.
    json_stringify: JsObject,
}

impl Builtins {
    fn capture(context: &mut Context) -> Result<Builtins, JsError> {
        let mut take = |name: JsString| -> JsResult<JsObject> {
            let json = context.global_object().get(js_string!("JSON"), context)?;
            let json = json.as_object().expect("JSON is an object before any job code runs");
            let function = json.get(name, context)?;
            Ok(function.as_callable().expect("JSON's functions are callable before any job code runs"))
        };
        let fail = |e: boa_engine::JsError| JsError::EngineLimit(format!("the engine failed to start: {e}"));
        Ok(Builtins {
            json_parse: take(js_string!("parse")).map_err(fail)?,
            json_stringify: take(js_string!("stringify")).map_err(fail)?,
        })
    }
}

/// Evaluates the job's code as an expression and returns the function it denotes.
fn evaluate(code: &str, context: &mut Context) -> Result<JsObject, JsError> {
    // The newline keeps a trailing `// comment` from swallowing the closing parenthesis.
    let wrapped = format!("({code}\n)");
    let value = match context.eval(Source::from_bytes(wrapped.as_bytes())) {
        Ok(value) => value,
        Err(error) => return Err(within_code(encode::evaluation_error(error, context), code)),
    };
    match value.as_callable() {
        Some(function) => Ok(function),
        None => Err(JsError::NotAFunction(format!(
            "the code must evaluate to a function, e.g. `(a, b) => a * b`; it evaluated to {}",
            describe(&value)
        ))),
    }
}

/// Parses `args` with the engine's own `JSON.parse` (so numbers and strings mean what they
/// mean in JavaScript) and spreads the array into argument values.
fn parse_args(args: &str, builtins: &Builtins, context: &mut Context) -> Result<Vec<JsValue>, JsError> {
    let text = JsValue::from(JsString::from(args));
    let parsed = builtins.json_parse.call(&JsValue::undefined(), &[text], context).map_err(|e| {
        JsError::BadArguments(format!("the arguments are not JSON: {}", encode::message_of(e, context)))
    })?;
    let array = parsed.as_object().and_then(|object| JsArray::from_object(object).ok()).ok_or_else(|| {
        JsError::BadArguments(format!(
            "the arguments must be a JSON array, e.g. [5, 10]; got {}",
            describe(&parsed)
        ))
    })?;
    let length = array.length(context).map_err(|e| JsError::BadArguments(encode::message_of(e, context)))?;
    (0..length)
        .map(|index| {
            array.get(index, context).map_err(|e| JsError::BadArguments(encode::message_of(e, context)))
        })
        .collect()
}

/// A short description of a value for an error message: its type, and the value if it is
/// a primitive.
pub(crate) fn describe(value: &JsValue) -> String {
    match value.type_of() {
        "object" | "function" if !value.is_null() => value.type_of().to_string(),
        kind => format!("{kind} {}", value.display()),
    }
}

/// A parser error found at the closing parenthesis `run` adds (code that ends too early, such
/// as `(a, b) => a *`) is reported at the end of the job's own code instead.
fn within_code(error: JsError, code: &str) -> JsError {
    let JsError::Syntax(Exception { message, position: Some(position) }) = error else {
        return error;
    };
    let lines = code.split('\n').count() as u32;
    let position = if position.line > lines {
        let last = code.rsplit('\n').next().unwrap_or_default();
        Position { line: lines, column: last.chars().count() as u32 + 1 }
    } else {
        position
    };
    JsError::Syntax(Exception { message, position: Some(position) })
}
