//! JavaScript jobs: the runtime component embedded in `cue` (`js-runtime/`, built by
//! `build.rs`), its call, and the report of `cue run --js`.
//!
//! A JavaScript job is an ordinary call of the runtime's one export,
//! `run: func(code: string, args: string) -> result<string, js-error>` (`js-runtime/wit/js.wit`):
//! the sandbox verifies, meters and bounds it like any other job. This module only builds the
//! call and reads the runtime's `result` back into a JSON value or a typed [`JsFailure`].
//!
//! ```no_run
//! use cue_host::local::js::{JsRun, run_js};
//! use cue_host::sandbox::{Limits, Sandbox, SandboxConfig};
//!
//! let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
//! let run = JsRun { code: "(a, b) => a * b".into(), args: "[5, 10]".into(), limits: Limits::default(), repeat: 1 };
//! let report = run_js(&sandbox, &run);
//! assert_eq!(report.text.as_deref(), Some("50"));
//! ```

use std::time::Duration;

use serde::Serialize;

use super::{LocalRun, RunReport, run_component, run_loaded};
use crate::sandbox::{CodeSource, JobError, Limits, LoadedComponent, LogLine, Sandbox};

/// The runtime component, as `cargo xtask guests` also writes it to `target/guests/js.wasm`.
pub const RUNTIME: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/js.wasm"));

/// The name the runtime is published under on the network (`js@<RUNTIME_VERSION>`).
pub const RUNTIME_NAME: &str = "js";

/// The runtime's version (`js-runtime/Cargo.toml`'s): the version it is published under.
pub const RUNTIME_VERSION: &str = env!("CUE_JS_RUNTIME_VERSION");

/// A JavaScript job to run locally.
#[derive(Clone, Debug)]
pub struct JsRun {
    /// A JavaScript expression whose value is a function: `(a, b) => a * b`.
    pub code: String,
    /// The arguments, a JSON array: `[5, 10]`.
    pub args: String,
    /// Bounds of each call.
    pub limits: Limits,
    /// How many times to call, each on a fresh instance (at least 1).
    pub repeat: u32,
}

/// The report of `cue run --js`; its JSON form has the fields of any `cue run --json`.
#[derive(Clone, Debug, Serialize)]
pub struct JsReport {
    /// The function's value as JSON, or `null` on failure.
    pub result: serde_json::Value,
    /// The runtime's result in WAVE (`ok("50")`, `err(thrown(…))`), or `null` when the job
    /// itself failed (out of fuel, …).
    pub wave: Option<String>,
    /// `null`, or why there is no value.
    pub error: Option<JsFailure>,
    /// Fuel used by the (last) call.
    pub fuel: u64,
    /// Wall time of the (last) call in microseconds.
    pub wall_us: u64,
    /// Peak linear memory of the (last) call.
    pub peak_memory_bytes: u64,
    /// Median call time over `--repeat` calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_us: Option<u64>,
    /// 99th-percentile call time over `--repeat` calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_us: Option<u64>,
    /// The job's log: `console.log` and friends.
    pub log: Vec<LogLine>,
    /// The value's JSON text exactly as the runtime wrote it (`JSON.stringify`'s spelling of
    /// numbers, which a round trip through `result` could change: `1e+21`).
    #[serde(skip)]
    pub text: Option<String>,
    /// How the runtime's code was obtained and how long loading took.
    #[serde(skip)]
    pub load: Option<(CodeSource, Duration)>,
}

/// Why a JavaScript job has no value. `kind` is a sandbox outcome (`out-of-fuel`,
/// `memory-limit`, `too-large`, …) or one of the runtime's: `syntax`, `thrown`,
/// `not-a-function`, `bad-arguments`, `engine-limit`, `unserializable`, `unsettled`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JsFailure {
    /// The class of failure, kebab-case.
    pub kind: String,
    /// What happened; for `syntax` and `thrown`, the JavaScript message (`Error: boom`).
    pub message: String,
    /// 1-based line in the job's code, when the engine knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// 1-based column in the job's code, when the engine knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
}

impl JsReport {
    /// Whether the function produced a value.
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }
}

/// The call of the runtime for `code` and `args` in WAVE: `run("(a, b) => a * b", "[5, 10]")`,
/// as a consumer would submit it to a published runtime.
pub fn wave_call(code: &str, args: &str) -> String {
    format!("run({}, {})", wave_string(code), wave_string(args))
}

/// `text` as a WAVE string literal.
fn wave_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The embedded runtime, pre-initialised (its engine started in the snapshot: see
/// [`preinitialized`]), loaded once and called any number of times, each call on a fresh
/// instance.
pub struct JsRuntime {
    loaded: LoadedComponent,
}

impl JsRuntime {
    /// Pre-initialises [`RUNTIME`] (or takes it from the code cache) and loads it in `sandbox`.
    pub fn load(sandbox: &Sandbox) -> Result<JsRuntime, JobError> {
        Ok(JsRuntime { loaded: sandbox.load(&preinitialized(sandbox)?)? })
    }

    /// Runs one JavaScript job.
    pub fn run(&self, run: &JsRun) -> JsReport {
        report(run_loaded(&self.loaded, &local_run(run)))
    }
}

/// [`RUNTIME`] with its `init` export run and snapshotted: every job starts from an engine
/// that is already up. The bytes are the same on every host of the same engine fingerprint.
/// The first call on a host takes seconds (two compilations); with a code cache, later ones
/// read the result back.
pub fn preinitialized(sandbox: &Sandbox) -> Result<Vec<u8>, JobError> {
    sandbox.preinitialize(RUNTIME, "init")
}

/// Runs `run` on the embedded runtime in `sandbox`, loading it first.
pub fn run_js(sandbox: &Sandbox, run: &JsRun) -> JsReport {
    match preinitialized(sandbox) {
        Ok(bytes) => report(run_component(sandbox, &bytes, &local_run(run))),
        Err(error) => report(RunReport::failed(error)),
    }
}

fn local_run(run: &JsRun) -> LocalRun {
    let call = serde_json::json!({ "function": "run", "args": [run.code, run.args] }).to_string();
    LocalRun { call, limits: run.limits.clone(), repeat: run.repeat }
}

/// Reads the runtime's `result<string, js-error>` out of a run's report.
fn report(run: RunReport) -> JsReport {
    let read = match &run.error {
        Some(error) => Err(sandbox_failure(error)),
        None => read_result(&run.result),
    };
    let (result, text, error) = match read {
        Ok((value, text)) => (value, Some(text), None),
        Err(failure) => (serde_json::Value::Null, None, Some(failure)),
    };
    JsReport {
        result,
        wave: run.wave,
        error,
        fuel: run.fuel,
        wall_us: run.wall_us,
        peak_memory_bytes: run.peak_memory_bytes,
        p50_us: run.p50_us,
        p99_us: run.p99_us,
        log: run.log,
        text,
        load: run.load,
    }
}

/// The function's value, read from the runtime's `result<string, js-error>` as JSON
/// (`{"ok": "50"}`, `{"err": {"thrown": …}}`): the value and its exact JSON text, or why there
/// is none. What a consumer reads from a JavaScript job's result on the network too.
pub fn read_result(result: &serde_json::Value) -> Result<(serde_json::Value, String), JsFailure> {
    match (result.get("ok"), result.get("err")) {
        (Some(serde_json::Value::String(text)), _) => parse_value(text)
            .map(|value| (value, text.clone()))
            .map_err(|e| runtime_bug(format!("its result is not JSON: {e}"))),
        (_, Some(err)) => Err(js_failure(err)),
        _ => Err(runtime_bug(format!("unexpected result {result}"))),
    }
}

/// Parses the runtime's JSON text. A JavaScript string may hold a lone surrogate, which
/// `JSON.stringify` writes as an escape (`"\ud800"`) and a Rust string cannot hold: in the
/// parsed value (not in the exact text) each becomes U+FFFD.
fn parse_value(text: &str) -> serde_json::Result<serde_json::Value> {
    serde_json::from_str(text).or_else(|_| serde_json::from_str(&replace_lone_surrogates(text)))
}

/// `text` with every `\uXXXX` escape of a surrogate that is not half of a pair replaced by
/// `\ufffd`.
fn replace_lone_surrogates(text: &str) -> String {
    let unit = |s: &str| {
        s.strip_prefix("\\u").and_then(|h| h.get(..4)).and_then(|h| u16::from_str_radix(h, 16).ok())
    };
    let (high, low) = (0xD800..0xDC00, 0xDC00..0xE000);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let taken = match (c, unit(rest)) {
            (_, Some(u)) if high.contains(&u) && unit(&rest[6..]).is_some_and(|l| low.contains(&l)) => 12,
            (_, Some(u)) if high.contains(&u) || low.contains(&u) => {
                out.push_str("\\ufffd");
                rest = &rest[6..];
                continue;
            }
            (_, Some(_)) => 6,
            ('\\', None) => 1 + rest[1..].chars().next().map_or(0, char::len_utf8),
            (c, None) => c.len_utf8(),
        };
        out.push_str(&rest[..taken]);
        rest = &rest[taken..];
    }
    out
}

fn sandbox_failure(error: &JobError) -> JsFailure {
    JsFailure {
        kind: error.kind.as_str().to_string(),
        message: error.message.clone(),
        line: None,
        column: None,
    }
}

/// A runtime that answers outside its WIT contract; cannot happen with the embedded one.
fn runtime_bug(message: String) -> JsFailure {
    JsFailure {
        kind: "trap".into(),
        message: format!("the JavaScript runtime misbehaved: {message}"),
        line: None,
        column: None,
    }
}

/// `{"thrown": {"message": …, "position": {"line": 1, "column": 15}}}`, `{"unsettled": null}`,
/// `{"not-a-function": "…"}`: the JSON of a `js-error` by its WIT type.
fn js_failure(err: &serde_json::Value) -> JsFailure {
    let Some((kind, payload)) = err.as_object().and_then(|case| case.iter().next()) else {
        return runtime_bug(format!("unexpected error {err}"));
    };
    let position = payload.get("position");
    let at = |field: &str| position.and_then(|p| p.get(field)).and_then(|v| v.as_u64()).map(|v| v as u32);
    let message = match payload {
        serde_json::Value::String(message) => message.clone(),
        serde_json::Value::Null if kind == "unsettled" => {
            "the function's promise never settled (there are no timers or I/O to settle it later)".into()
        }
        other => other.get("message").and_then(|m| m.as_str()).unwrap_or_default().to_string(),
    };
    JsFailure { kind: kind.clone(), message, line: at("line"), column: at("column") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wave_call_escapes_quotes_backslashes_and_control_characters() {
        assert_eq!(
            wave_call("(s) => s + \"\\n\"", "[\"a\tb\"]"),
            r#"run("(s) => s + \"\\n\"", "[\"a\tb\"]")"#
        );
        assert_eq!(wave_string("a\nb\u{1}é"), "\"a\\nb\\u{1}é\"");
    }

    #[test]
    fn a_lone_surrogate_becomes_a_replacement_character_in_the_parsed_value_only() {
        let text = r#"["\ud800","\ud83d\ude00","\\ud800","\udc00x"]"#;
        assert_eq!(parse_value(text).unwrap(), serde_json::json!(["\u{fffd}", "😀", "\\ud800", "\u{fffd}x"]));
    }

    #[test]
    fn a_thrown_error_keeps_its_message_and_position() {
        let err =
            serde_json::json!({"thrown": {"message": "Error: boom", "position": {"line": 2, "column": 7}}});
        let failure = js_failure(&err);
        assert_eq!((failure.kind.as_str(), failure.message.as_str()), ("thrown", "Error: boom"));
        assert_eq!((failure.line, failure.column), (Some(2), Some(7)));
    }
}
