//! Jobs written with `#[cue_sdk::jobs]` through the real `cue` binary: every supported type
//! round-trips with WAVE and with JSON, host services work, panics reach the caller, and
//! `cue inspect` shows the inferred WIT with its doc comments.

use serde_json::{Value, json};

use crate::support::{Cue, guest, stdout};

/// Calls `roundtrip` with `wave`, then with the JSON form of the same call, and checks both
/// give `expected` (as JSON) and the same WAVE text.
fn round_trip(cue: &Cue, function: &str, wave_args: &str, json_args: Value, expected: Value) {
    let (code, by_wave) = cue.run_json("roundtrip", &format!("{function}({wave_args})"), &[]);
    assert_eq!(code, 0, "{function}({wave_args}): {by_wave}");
    assert_eq!(by_wave["result"], expected, "{function}({wave_args}) with WAVE");
    let call = json!({"function": function, "args": json_args}).to_string();
    let (code, by_json) = cue.run_json("roundtrip", &call, &[]);
    assert_eq!(code, 0, "{call}: {by_json}");
    assert_eq!(by_json["result"], expected, "{call} with JSON");
    assert_eq!(by_json["wave"], by_wave["wave"], "{call}: the same value either way");
}

/// Identity: the value comes back as it went in.
fn echo(cue: &Cue, function: &str, wave: &str, value: Value) {
    round_trip(cue, function, wave, json!([value.clone()]), value);
}

#[test]
fn every_scalar_type_round_trips() {
    let cue = Cue::new();
    echo(&cue, "echo-bool", "true", json!(true));
    echo(&cue, "echo-u8", "255", json!(255));
    echo(&cue, "echo-u16", "65535", json!(65535));
    echo(&cue, "echo-u32", "4294967295", json!(4294967295u32));
    echo(&cue, "echo-u64", "18446744073709551615", json!(u64::MAX));
    echo(&cue, "echo-s8", "-128", json!(-128));
    echo(&cue, "echo-s16", "-32768", json!(-32768));
    echo(&cue, "echo-s32", "-2147483648", json!(i32::MIN));
    echo(&cue, "echo-s64", "-9223372036854775808", json!(i64::MIN));
    echo(&cue, "echo-f32", "1.5", json!(1.5));
    echo(&cue, "echo-f64", "-0.125", json!(-0.125));
    echo(&cue, "echo-char", "'λ'", json!("λ"));
    echo(&cue, "echo-string", r#""hé \"quoted\"""#, json!("hé \"quoted\""));
}

#[test]
fn lists_options_results_and_tuples_round_trip() {
    let cue = Cue::new();
    echo(&cue, "echo-bytes", "[0, 1, 255]", json!([0, 1, 255]));
    echo(&cue, "echo-list", "[-1, 0, 9007199254740993]", json!([-1, 0, 9007199254740993i64]));
    echo(&cue, "echo-list", "[]", json!([]));
    echo(&cue, "echo-option", r#"some("x")"#, json!("x"));
    echo(&cue, "echo-option", "none", json!(null));
    echo(&cue, "echo-nested-option", "some(none)", json!({"some": null}));
    echo(&cue, "echo-nested-option", "some(some(7))", json!({"some": 7}));
    echo(&cue, "echo-result", "ok(3)", json!({"ok": 3}));
    echo(&cue, "echo-result", r#"err("bad")"#, json!({"err": "bad"}));
    echo(&cue, "echo-tuple", r#"(1, "two", 3.5)"#, json!([1, "two", 3.5]));
}

#[test]
fn records_enums_variants_and_nesting_round_trip() {
    let cue = Cue::new();
    echo(&cue, "echo-point", "{x: -1, y: 2}", json!({"x": -1, "y": 2}));
    echo(&cue, "echo-color", "green", json!("green"));
    echo(&cue, "echo-shape", "circle(2.5)", json!({"circle": 2.5}));
    echo(&cue, "echo-shape", "square({x: 3, y: 4})", json!({"square": {"x": 3, "y": 4}}));
    echo(&cue, "echo-shape", "empty", json!({"empty": null}));
    let everything = json!({
        "flag": true,
        "color": "blue",
        "shape": {"square": {"x": 1, "y": 2}},
        "tags": ["a", "b"],
        "nested": [[1, null], [2, {"x": 3, "y": 4}]],
        "outcome": {"err": "no"},
    });
    echo(
        &cue,
        "echo-everything",
        r#"{flag: true, color: blue, shape: square({x: 1, y: 2}), tags: ["a", "b"], nested: some([(1, none), (2, some({x: 3, y: 4}))]), outcome: err("no")}"#,
        everything,
    );
}

#[test]
fn transforms_follow_the_rust_semantics() {
    let cue = Cue::new();
    round_trip(&cue, "area", "square({x: 3, y: 4})", json!([{"square": {"x": 3, "y": 4}}]), json!(12.0));
    round_trip(&cue, "area", "empty", json!([{"empty": null}]), json!(0.0));
    round_trip(&cue, "next-color", "blue", json!(["blue"]), json!("red"));
    round_trip(&cue, "parse", r#""1, 2.5""#, json!(["1, 2.5"]), json!({"ok": [1.0, 2.5]}));
    round_trip(&cue, "parse", r#""1, x""#, json!(["1, x"]), json!({"err": "`x`: invalid float literal"}));
    round_trip(&cue, "checked-div", "7, 2", json!([7, 2]), json!(3));
    round_trip(&cue, "checked-div", "7, 0", json!([7, 0]), json!(null));
    round_trip(&cue, "check", "true", json!([true]), json!({"ok": null}));
    round_trip(&cue, "check", "false", json!([false]), json!({"err": "not ok"}));
    round_trip(&cue, "swap", r#"("a", 1)"#, json!([["a", 1]]), json!([1, "a"]));
    round_trip(
        &cue,
        "translate",
        "[{x: 0, y: 0}, {x: 1, y: -1}], 10, 20",
        json!({"points": [{"x": 0, "y": 0}, {"x": 1, "y": -1}], "dx": 10, "dy": 20}),
        json!([{"x": 10, "y": 20}, {"x": 11, "y": 19}]),
    );
}

#[test]
fn host_services_log_progress_and_deterministic_randomness() {
    let cue = Cue::new();
    let (code, first) = cue.run_json("roundtrip", "dice(20)", &[]);
    assert_eq!(code, 0, "{first}");
    let rolls = first["result"].as_array().unwrap();
    assert_eq!(rolls.len(), 20);
    assert!(rolls.iter().all(|r| (1..=6).contains(&r.as_u64().unwrap())), "{first}");
    let (_, second) = cue.run_json("roundtrip", "dice(20)", &[]);
    assert_eq!(first["result"], second["result"], "the same job gets the same numbers");

    let (code, work) = cue.run_json("roundtrip", "work(3)", &[]);
    assert_eq!(code, 0, "{work}");
    let log: Vec<&str> =
        work["log"].as_array().unwrap().iter().map(|l| l["text"].as_str().unwrap()).collect();
    assert_eq!(log, ["trace", "debug", "warn", "error", "worked 3 steps"], "{work}");
}

#[test]
fn a_panic_is_a_trap_carrying_its_message() {
    let cue = Cue::new();
    let (code, json) = cue.run_json("roundtrip", r#"fail("the answer is 42")"#, &[]);
    assert_ne!(code, 0);
    assert_eq!(json["error"]["kind"], "trap", "{json}");
    assert!(json["error"]["message"].as_str().unwrap().contains("the answer is 42"), "{json}");
}

#[test]
fn inspect_shows_the_inferred_wit_with_doc_comments() {
    let cue = Cue::new();
    let output = cue.run(&["inspect", guest("roundtrip").to_str().unwrap()]);
    assert!(output.status.success());
    let text = stdout(&output);
    for expected in [
        "/// Identity and transform functions over every supported type.",
        "/// A point on a grid.\n  record point {\n    /// Horizontal position.\n    x: s32,",
        "enum color {",
        "variant shape {\n    /// A circle of this radius.\n    circle(f64),",
        "nested: option<list<tuple<u8, option<point>>>>,",
        "outcome: result<u64, string>,",
        "/// The area of a shape.\n  export area: func(shape: shape) -> f64;",
        "export parse: func(input: string) -> result<list<f64>, string>;",
        "export check: func(ok: bool) -> result<_, string>;",
        "export echo-bytes: func(v: list<u8>) -> list<u8>;",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains("helper"), "a private fn is not exported:\n{text}");
}

/// The ported examples keep their exports, and `fib` stays small.
#[test]
fn ported_examples_keep_their_interface_and_size() {
    let cue = Cue::new();
    for (name, call, result) in [
        ("fib", "fib(30)", json!(832040)),
        (
            "hash",
            r#"sha256-string("abc")"#,
            json!("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ),
        (
            "wordcount",
            r#"count-words("a b a")"#,
            json!([{"word": "a", "count": 2}, {"word": "b", "count": 1}]),
        ),
        ("wit-first", "summarize([1.0, 3.0])", json!({"count": 2, "mean": 2.0, "min": 1.0, "max": 3.0})),
    ] {
        let (code, json) = cue.run_json(name, call, &[]);
        assert_eq!(code, 0, "{name}: {json}");
        assert_eq!(json["result"], result, "{name}");
    }
    let fib_size = std::fs::metadata(guest("fib")).unwrap().len();
    assert!(fib_size <= 60 * 1024, "fib is {fib_size} bytes, over the 60 KB budget");
}
