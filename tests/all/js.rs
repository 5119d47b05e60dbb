//! JavaScript jobs (issue 20) on the runtime embedded in `cue`: the origin's example through
//! the real binary, typed errors, hostile code, the runtime's own helpers under attack, and
//! determinism. The comparison with Node is in `js_conformance.rs`.

use std::time::Duration;

use cue_host::local::js::{JsReport, RUNTIME, wave_call};
use cue_host::sandbox::Limits;

use crate::support::{Cue, guest, run_js, run_js_with, stderr, stdout};

/// The failure's kind and message.
fn failure(report: &JsReport) -> (String, String) {
    let error = report.error.as_ref().unwrap_or_else(|| panic!("expected a failure, got {:?}", report.text));
    (error.kind.clone(), error.message.clone())
}

fn value(report: &JsReport) -> &str {
    report.text.as_deref().unwrap_or_else(|| panic!("expected a value, got {:?}", report.error))
}

#[test]
fn the_origins_example_prints_50_through_cue_run_js() {
    let cue = Cue::with_warm_js_cache();
    let output = cue.run(&["run", "--js", "(a, b) => a * b", "--args", "[5, 10]"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "50\n");
    assert!(stderr(&output).contains("fuel "), "{}", stderr(&output));
}

#[test]
fn cue_run_js_json_has_the_fields_of_any_run_and_the_value() {
    let cue = Cue::with_warm_js_cache();
    let output = cue.run(&["run", "--js", "(a, b) => ({product: a * b})", "--args", "[5, 10]", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    assert_eq!(json["result"], serde_json::json!({"product": 50}));
    assert_eq!(json["wave"], r#"ok("{\"product\":50}")"#);
    assert!(json["error"].is_null());
    assert!(json["fuel"].as_u64().unwrap() > 0 && json["wall_us"].is_u64() && json["log"].is_array());
}

#[test]
fn cue_run_js_reads_code_from_a_file_and_defaults_to_no_arguments() {
    let cue = Cue::with_warm_js_cache();
    let file = cue.data_dir.path().join("job.js");
    std::fs::write(&file, "// the answer\nasync () => {\n  console.log('thinking');\n  return 42;\n}\n")
        .unwrap();
    let output = cue.run(&["run", "--js", &format!("@{}", file.display())]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "42\n");
    assert!(
        stderr(&output).contains("[guest info] thinking"),
        "console.log goes to the job log: {}",
        stderr(&output)
    );
}

#[test]
fn a_thrown_error_exits_1_with_its_message_and_position() {
    let cue = Cue::with_warm_js_cache();
    let output = cue.run(&[
        "run",
        "--js",
        "(x) => {\n  if (x) throw new RangeError('too big: ' + x)\n}",
        "--args",
        "[7]",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).is_empty());
    assert!(
        stderr(&output).contains("error: thrown: RangeError: too big: 7 (line 2, column"),
        "{}",
        stderr(&output)
    );
    let output = cue.run(&["run", "--js", "(a, b) => a +* b", "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["error"]["kind"], "syntax");
    assert!(json["error"]["message"].as_str().unwrap().starts_with("SyntaxError: "), "{json}");
    assert_eq!(json["error"]["line"], 1);
}

#[test]
fn code_that_is_not_a_function_or_arguments_that_are_not_an_array_are_typed_errors() {
    assert_eq!(failure(&run_js("42", "[]")).0, "not-a-function");
    assert!(failure(&run_js("42", "[]")).1.contains("number 42"));
    assert_eq!(failure(&run_js("(a) => a", "{\"a\": 1}")).0, "bad-arguments");
    assert_eq!(failure(&run_js("(a) => a", "[1,")).0, "bad-arguments");
    assert_eq!(failure(&run_js("() => new Promise(() => {})", "[]")).0, "unsettled");
    let report = run_js("(a, b) => a *", "[]");
    let error = report.error.as_ref().expect("a syntax error");
    assert_eq!(
        (error.kind.as_str(), error.line, error.column),
        ("syntax", Some(1), Some(14)),
        "at the end of the code"
    );
    let (kind, message) = failure(&run_js("() => 10n", "[]"));
    assert_eq!(kind, "unserializable");
    assert!(message.contains("BigInt"), "{message}");
    let (kind, message) = failure(&run_js("() => { const a = {}; a.self = a; return a }", "[]"));
    assert_eq!(kind, "unserializable");
    assert!(message.contains("cyclic"), "{message}");
    assert!(failure(&run_js("() => () => 1", "[]")).1.contains("a function"));
}

#[test]
fn the_wave_call_a_consumer_would_submit_gives_the_same_answer() {
    let code = "(s, n) => `${s}\\n`.repeat(n) + \"é\\\\\"";
    let call = wave_call(code, "[\"a\\\"b\", 2]");
    let cue = Cue::with_warm_js_cache();
    let runtime = guest("js");
    let output = cue.run(&["run", runtime.to_str().unwrap(), &call, "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let through_wave = json["result"]["ok"].as_str().expect("ok(text)").to_string();
    assert_eq!(through_wave, value(&run_js(code, "[\"a\\\"b\", 2]")));
    assert_eq!(through_wave, r#""a\"b\na\"b\né\\""#);
}

#[test]
fn the_embedded_runtime_is_the_component_the_guest_build_makes() {
    let built = std::fs::read(guest("js")).unwrap();
    assert!(built == RUNTIME, "target/guests/js.wasm differs from the runtime embedded in cue: rebuild both");
}

#[test]
fn an_infinite_loop_ends_out_of_fuel() {
    let limits = Limits { fuel: 200_000_000, ..Limits::default() };
    let report = run_js_with("() => { for (;;) {} }", "[]", limits);
    assert_eq!(failure(&report).0, "out-of-fuel");
    assert_eq!(report.fuel, 200_000_000);
}

#[test]
fn a_memory_bomb_ends_at_the_memory_limit() {
    let limits = Limits { memory_bytes: 32 << 20, ..Limits::default() };
    let report = run_js_with(
        "() => { const keep = []; for (;;) keep.push('x'.repeat(1 << 20) + keep.length) }",
        "[]",
        limits,
    );
    assert_eq!(failure(&report).0, "memory-limit", "{:?}", report.error);
}

#[test]
fn deep_recursion_ends_as_a_typed_error() {
    let report = run_js("() => { const f = (n) => f(n + 1) + 1; return f(0) }", "[]");
    let (kind, message) = failure(&report);
    assert_eq!(kind, "engine-limit", "{message}");
    assert!(message.contains("recursive calls"), "{message}");
    // Recursion through native code (a `map` callback, a getter, `toJSON`) is bounded too.
    for code in [
        "() => { const f = () => [0].map(f); return f() }",
        "() => { const o = { get x() { return this.x } }; return o.x }",
        "() => { const o = { toJSON() { return { o: this } } }; return o }",
    ] {
        let report = run_js(code, "[]");
        let (kind, message) = failure(&report);
        assert!(["engine-limit", "stack-overflow"].contains(&kind.as_str()), "{code}: {kind}: {message}");
    }
    assert_eq!(value(&run_js("() => { const f = (n) => n && 1 + f(n - 1); return f(5000) }", "[]")), "5000");
}

#[test]
fn a_huge_result_is_too_large_and_a_log_flood_too() {
    let limits = Limits { memory_bytes: 512 << 20, ..Limits::default() };
    let report = run_js_with("() => 'x'.repeat(17 * 1024 * 1024)", "[]", limits.clone());
    assert_eq!(failure(&report).0, "too-large", "{:?}", report.error);
    let report = run_js_with("() => { for (;;) console.log('spam'.repeat(100)) }", "[]", limits);
    assert_eq!(failure(&report).0, "too-large", "{:?}", report.error);
}

#[test]
fn a_job_cannot_hijack_the_runtimes_own_json_and_promise_helpers() {
    let cases = [
        (
            "() => { JSON.stringify = () => 'pwned'; JSON.parse = () => { throw 1 }; return {a: 1} }",
            "{\"a\":1}",
        ),
        (
            "() => { Promise.prototype.then = function () { throw new Error('hijacked') }; return Promise.resolve(7) }",
            "7",
        ),
        ("async () => { Promise.prototype.then = () => {}; await null; return 5 }", "5"),
        (
            "() => { Array.prototype.join = null; String.prototype.toString = null; return ['x', 1] }",
            "[\"x\",1]",
        ),
        (
            "() => { Object.defineProperty(Object.prototype, 'ok', { get() { throw new Error('got') } }); return 1 }",
            "1",
        ),
        ("() => { globalThis.console = undefined; Object.prototype.err = 'x'; return 2 }", "2"),
        // Object.prototype.toJSON is the job's to set: it changes its own value, as in Node.
        (
            "() => { Object.prototype.toJSON = function () { return 'polluted' }; return {a: 1} }",
            "\"polluted\"",
        ),
    ];
    for (code, expected) in cases {
        assert_eq!(value(&run_js(code, "[]")), expected, "{code}");
    }
    // Nothing survives into the next job: each call is a fresh instance.
    assert_eq!(
        value(&run_js("() => [typeof Object.prototype.toJSON, JSON.stringify({b: 2})]", "[]")),
        "[\"undefined\",\"{\\\"b\\\":2}\"]"
    );
}

#[test]
fn eval_and_function_work_inside_the_sandbox_and_nothing_outside_is_reachable() {
    let report = run_js(
        "() => [eval('1 + 2'), new Function('a', 'b', 'return a * b')(6, 7), (0, eval)('typeof fetch'), typeof require, typeof process, typeof setTimeout, typeof Deno, typeof XMLHttpRequest, typeof WebAssembly, typeof import.meta]",
        "[]",
    );
    assert_eq!(failure(&report).0, "syntax", "import.meta is module-only: {:?}", report.error);
    let report = run_js(
        "() => [eval('1 + 2'), new Function('a', 'b', 'return a * b')(6, 7), (0, eval)('typeof fetch'), typeof require, typeof process, typeof setTimeout, typeof Deno, typeof WebAssembly]",
        "[]",
    );
    assert_eq!(
        value(&report),
        r#"[3,42,"undefined","undefined","undefined","undefined","undefined","undefined"]"#
    );
    let report = run_js("() => import('fs')", "[]");
    assert!(report.error.is_some(), "no modules: {:?}", report.text);
    let report = run_js("() => { for (;;) eval('for (;;) {}') }", "[]");
    assert!(report.error.is_some());
}

#[test]
fn math_random_and_date_are_the_same_on_every_run_of_the_same_job() {
    let code = "() => [Math.random(), Math.random(), Date.now(), new Date().toISOString(), new Date().getTimezoneOffset()]";
    let (first, second) = (run_js(code, "[]"), run_js(code, "[]"));
    assert_eq!(value(&first), value(&second));
    assert_eq!(first.fuel, second.fuel);
    let values: serde_json::Value = serde_json::from_str(value(&first)).unwrap();
    assert_ne!(values[0], values[1], "a sequence, not a constant");
    assert!((0.0..1.0).contains(&values[0].as_f64().unwrap()));
    assert_eq!(values[2], 1_735_689_600_000_u64, "the job's virtual clock starts at 2025-01-01T00:00:00Z");
    assert_eq!(values[3], "2025-01-01T00:00:00.000Z");
    assert_eq!(values[4], 0, "the local time zone is UTC");
    // Another call is another job: another seed.
    let other = run_js(code, "[1]");
    assert_ne!(serde_json::from_str::<serde_json::Value>(value(&other)).unwrap()[0], values[0]);
}

#[test]
fn the_same_code_and_arguments_use_the_same_fuel() {
    let code = "(n) => { const xs = Array.from({length: n}, (_, i) => (i * 7919) % n); xs.sort((a, b) => a - b); return new Map(xs.map(x => [x, String(x)])).size }";
    let runs: Vec<JsReport> = (0..3).map(|_| run_js(code, "[2000]")).collect();
    assert_eq!(value(&runs[0]), "2000");
    assert!(
        runs.iter().all(|r| r.fuel == runs[0].fuel && r.text == runs[0].text),
        "{:?}",
        runs.iter().map(|r| r.fuel).collect::<Vec<_>>()
    );
    assert!(runs[0].wall_us < Duration::from_secs(5).as_micros() as u64);
}

#[test]
fn pre_initialising_the_runtime_gives_the_same_bytes_on_every_host() {
    use sha2::Digest as _;
    let cached = cue_host::local::js::preinitialized(&crate::support::sandbox_with_warm_js_cache()).unwrap();
    let fresh = cue_host::local::js::preinitialized(&crate::support::sandbox()).unwrap();
    assert_eq!(hex::encode(sha2::Sha256::digest(&fresh)), hex::encode(sha2::Sha256::digest(&cached)));
    assert_ne!(fresh, RUNTIME, "the snapshot differs from the runtime as built");
}
