//! JavaScript conformance: a corpus of functions run on Cue's runtime and on Node, whose
//! answers must agree — the JSON text of the value, or the kind of failure and the error's
//! name (and its message when the job wrote it).
//!
//! Node runs the same semantics through a small wrapper (`NODE_WRAPPER`): evaluate
//! `(` + code + `\n)`, call it with the parsed arguments, await, `JSON.stringify`, with
//! `TZ=UTC`. Without `node` on the PATH the comparison is skipped with a loud message (CI
//! has it); the runtime's own expectations in `tests/all/js.rs` still run.

use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::support::run_js;

/// `(code, args)`: what Node and the runtime must agree on.
const CORPUS: &[(&str, &str)] = &[
    // Arithmetic and floats: formatting, -0, NaN and the infinities (null in JSON).
    ("(a, b) => a * b", "[5, 10]"),
    ("() => 0.1 + 0.2", "[]"),
    ("() => [-0, 0 / 0, 1 / 0, -1 / 0, 2 ** 53 + 1, 1e21, 1e-7, 123.456e5, 5e-324, -1e-7]", "[]"),
    (
        "(x) => [Math.round(x), Math.round(-2.5), Math.floor(-x), x.toFixed(2), (x * 100).toPrecision(5), 7 % -3, -7 % 3, 2 ** -1022]",
        "[2.675]",
    ),
    (
        "() => [parseInt('0x1f'), parseFloat('3.14abc'), Number(''), +'12e3', (255).toString(16), (0.000001234).toString(), (1e21).toString(), (123.456).toString(36)]",
        "[]",
    ),
    (
        "() => [Math.sqrt(2), Math.exp(1), Math.log(10), Math.hypot(3, 4), Math.cbrt(27), Math.pow(2, 0.5), Math.sin(0.5), Math.atan2(1, 2)]",
        "[]",
    ),
    (
        "() => [1 / 3, 2 / 3, 100 / 7, 0.1 * 3, 9007199254740993, 1.7976931348623157e308 * 10, Number.EPSILON, Number.MIN_VALUE]",
        "[]",
    ),
    ("() => [5 & 3, 5 | 3, 5 ^ 3, ~5, -16 >> 2, -16 >>> 28, 1 << 31, 2 ** 32 | 0]", "[]"),
    ("() => String(2n ** 64n + 1n)", "[]"),
    // Strings and Unicode.
    (
        "(s) => [s.length, [...s].length, s.toUpperCase(), s.codePointAt(6), s.at(-1), s.normalize('NFD').length, s.slice(1, 3)]",
        r#"["héllo 😀"]"#,
    ),
    ("(s) => s.split('').reverse().join('')", r#"["a😀b"]"#),
    (
        "() => ['ß'.toUpperCase(), 'abc'.at(-1), 'a-b-c'.replaceAll('-', '+'), ' x '.trim(), 'x'.padStart(4, 'ab'), 'ab'.repeat(3), `t${1 + 1}t`]",
        "[]",
    ),
    (
        "() => ['日本語 🎉', '\\u0007\\u2028\"\\\\', '\\ud800', 'é'.length, String.fromCodePoint(128512), 'abc' < 'abd']",
        "[]",
    ),
    ("(s) => s.replace(/(\\w+)@(\\w+)\\.com/g, '$2 at $1')", r#"["ann@example.com, bob@test.com"]"#),
    // Arrays and their methods.
    (
        "(xs) => [xs.map(x => x * 2), xs.filter(x => x % 2), xs.reduce((a, b) => a + b), xs.slice().sort(), xs.slice().sort((a, b) => a - b), xs.indexOf(3), xs.includes(10), xs.flatMap(x => [x, x]).length, Array.from({length: 3}, (_, i) => i * i), [1, [2, [3, [4]]]].flat(Infinity), xs.toSorted((a, b) => b - a), xs.findLast(x => x > 2)]",
        "[[3, 1, 10, 2]]",
    ),
    ("() => [[, 1], new Array(3), [undefined, () => 1, Symbol('x')], Array.of(7).fill(0, 1)]", "[]"),
    (
        "() => [{k: 1, v: 'a'}, {k: 0, v: 'b'}, {k: 1, v: 'c'}, {k: 0, v: 'd'}].sort((x, y) => x.k - y.k).map(x => x.v).join('')",
        "[]",
    ),
    (
        "() => { const a = [5, 1, 4]; a.length = 5; a[7] = 9; return [a, a.length, Object.keys(a), a.join('-')] }",
        "[]",
    ),
    // Objects and key order.
    (
        "() => ({b: 1, a: 2, 10: 'x', 2: 'y', '-1': 'z', [Symbol('s')]: 1, f() {}, u: undefined, n: null})",
        "[]",
    ),
    ("(o) => Object.entries(o).map(([k, v]) => k + '=' + v).join('&')", r#"[{"z": 1, "a": 2, "é": 3}]"#),
    (
        "() => { const o = { get x() { return 42 }, y: 1 }; return {...o, z: Object.keys(o), frozen: Object.isFrozen(Object.freeze({}))} }",
        "[]",
    ),
    (
        "() => ({ d: { toJSON() { return 'custom' } }, e: new Date(0), n: new Number(3), s: new String('s') })",
        "[]",
    ),
    ("(o) => { delete o.a; o.a = 1; return o }", r#"[{"a": 0, "b": 0}]"#),
    // Classes.
    (
        "() => { class A { #p = 1; static s = 'S'; constructor(x) { this.x = x } get double() { return this.x * 2 } m() { return this.#p } } class B extends A { m() { return super.m() + 10 } } const b = new B(4); return [b.double, b.m(), B.s, b instanceof A, Object.getPrototypeOf(B) === A, b.constructor.name, b] }",
        "[]",
    ),
    // Closures.
    (
        "() => { const counter = () => { let n = 0; return () => ++n }; const c = counter(); c(); c(); return [c(), counter()()] }",
        "[]",
    ),
    (
        "() => { const fs = []; for (let i = 0; i < 3; i++) fs.push(() => i); var gs = []; for (var j = 0; j < 3; j++) gs.push(() => j); return [fs.map(f => f()), gs.map(g => g())] }",
        "[]",
    ),
    // Destructuring, spread, defaults.
    (
        "({a, b: {c = 5} = {}}, [x, , y = 9, ...zs]) => ({a, c, x, y, zs})",
        r#"[{"a": 1, "b": {}}, [1, 2, null, 3, 4]]"#,
    ),
    ("({a, ...rest}) => rest", r#"[{"a": 1, "d": 4, "e": 5}]"#),
    ("(...xs) => [xs.length, Math.max(...xs), (({p = 1} = {}) => p)()]", "[3, 1, 4, 1, 5]"),
    // Generators and iterators.
    (
        "() => { function* fib() { let [a, b] = [0, 1]; for (;;) { yield a; [a, b] = [b, a + b] } } const out = []; for (const f of fib()) { if (out.length === 10) break; out.push(f) } return out }",
        "[]",
    ),
    (
        "() => { const it = { from: 1, to: 4, [Symbol.iterator]() { let v = this.from, to = this.to; return { next: () => v <= to ? { value: v++, done: false } : { value: undefined, done: true } } } }; return [...it] }",
        "[]",
    ),
    // async/await and the job queue.
    (
        "async (x) => { const wait = v => new Promise(r => r(v)); const a = await wait(x); const [b, c] = await Promise.all([wait(2), Promise.resolve(3)]); return a + b + c }",
        "[1]",
    ),
    (
        "async () => { const log = []; Promise.resolve().then(() => log.push('then')); log.push('sync'); await null; log.push('after'); return log }",
        "[]",
    ),
    ("async () => (await Promise.allSettled([Promise.reject(new Error('no')), 1])).map(r => r.status)", "[]"),
    ("() => Promise.any([Promise.reject(1), Promise.resolve(2)])", "[]"),
    (
        "async () => { async function* gen() { yield 1; yield 2 } const out = []; for await (const v of gen()) out.push(v); return out }",
        "[]",
    ),
    ("() => ({ then(resolve) { resolve('thenable') } })", "[]"),
    // JSON.
    ("(s) => JSON.parse(s)", r#"["{\"a\": [1, 2, {\"b\": null}], \"c\": \"\\u00e9\", \"__proto__\": 1}"]"#),
    ("() => JSON.stringify({a: [1, {b: 2}], c: 'x'}, null, 2)", "[]"),
    ("() => JSON.stringify({a: 1, b: [1, 2]}, (k, v) => typeof v === 'number' ? v * 10 : v)", "[]"),
    (
        "() => [JSON.stringify('\\u2028\\ud800'), JSON.stringify({}), JSON.stringify([undefined]), JSON.stringify(undefined)]",
        "[]",
    ),
    // Map and Set.
    (
        "() => { const m = new Map([[1, 'a'], ['1', 'b']]); m.set(NaN, 'n'); const s = new Set([3, 1, 3, 2]); return [m.size, m.get(NaN), [...m.keys()], [...s], s.has(2), Object.fromEntries(m), JSON.stringify(m)] }",
        "[]",
    ),
    (
        "() => { const m = new Map(); m.set('b', 1).set('a', 2).delete('b'); m.set('b', 3); return [...m] }",
        "[]",
    ),
    // Regular expressions.
    (
        "(s) => [...s.matchAll(/(?<word>[a-z]+)(\\d+)/g)].map(m => [m.index, m.groups.word, m[2]])",
        r#"["ab12 cd3 x"]"#,
    ),
    (
        "() => [/^\\p{L}+$/u.test('héllo'), 'a1b2c3'.replace(/\\d/g, d => d * 2), /(a)|(b)/.exec('b'), 'x'.match(/y/), /a.c/s.test('a\\nc'), 'aBcDe'.split(/(?=[A-Z])/), '$10 $20'.match(/(?<=\\$)\\d+/g)]",
        "[]",
    ),
    (
        "() => { const r = /o/g; r.test('foo'); return [r.lastIndex, 'Hello'.search(/l+/), /x/y.sticky, 'a,b;c'.split(/[,;]/)] }",
        "[]",
    ),
    // Date with a fixed time (the local time zone is UTC on both sides).
    (
        "() => { const d = new Date(Date.UTC(2024, 1, 29, 12, 30, 15, 250)); return [d.toISOString(), d.getTime(), d.getUTCDay(), d.getDay(), d.getHours(), JSON.stringify(d), new Date('2024-03-01T00:00:00Z').valueOf(), new Date(0).toISOString(), Date.parse('2000-01-01'), d.toUTCString()] }",
        "[]",
    ),
    (
        "(iso) => { const d = new Date(iso); d.setUTCMonth(d.getUTCMonth() + 1); return [d.toISOString(), new Date(2020, 0, 1).getTime(), new Date(NaN).getTime()] }",
        r#"["2024-01-31T00:00:00.000Z"]"#,
    ),
    // Odds and ends of the language.
    (
        "() => { const o = {a: {b: null}}; return [o?.a?.b?.c, o.x ?? 'dflt', o.a.b || 'or', typeof null, typeof undefined, typeof (() => 1), void 0] }",
        "[]",
    ),
    ("() => { const tag = (s, ...v) => s.raw.join('|') + v.join(','); return tag`a${1}b\\n${2}` }", "[]"),
    (
        "() => { const p = new Proxy({}, { get: (t, k) => String(k).toUpperCase() }); return [p.abc, Reflect.ownKeys({a: 1, [Symbol.iterator]: 1}).length, Object.getOwnPropertyNames(class { static m() {} }).sort()] }",
        "[]",
    ),
    (
        "() => { outer: for (let i = 0; i < 3; i++) { for (let j = 0; j < 3; j++) { if (j === 1) continue outer; if (i === 2) break outer } } switch (3) { case 1: return 'one'; default: return 'other' } }",
        "[]",
    ),
    ("function (n) { return n <= 1 ? n : arguments.callee(n - 1) + arguments.callee(n - 2) }", "[15]"),
    (
        "() => { const s = Symbol.for('k'); const o = { [s]: 1, toString() { return 'O' } }; return [`${o}`, o + '', Symbol.keyFor(s), Object.getOwnPropertySymbols(o).length] }",
        "[]",
    ),
    (
        "() => { const ws = new WeakMap(); const k = {}; ws.set(k, 1); return [ws.get(k), ws.has({}), new Int32Array([1, -2, 3]).map(x => x * 2), Array.from(new Uint8Array(new Float64Array([1.5]).buffer))] }",
        "[]",
    ),
    // Thrown errors: the kind, the name, and the message when the job wrote it.
    ("() => { throw new Error('boom') }", "[]"),
    ("() => { throw 'a string' }", "[]"),
    (
        "() => { class MyError extends Error { constructor(m) { super(m); this.name = 'MyError' } } throw new MyError('custom') }",
        "[]",
    ),
    ("async () => { await null; throw new RangeError('bad one') }", "[]"),
    ("() => Promise.reject(new TypeError('rejected'))", "[]"),
    ("(x) => x.y.z", "[{}]"),
    ("() => undefinedVariable + 1", "[]"),
    ("() => { try { null.f() } catch (e) { return [e instanceof TypeError, e.name] } }", "[]"),
    (
        "() => { const e = new Error('outer', { cause: 'inner' }); return [e.message, e.cause, String(e), Object.keys(e)] }",
        "[]",
    ),
    ("() => { try { JSON.parse('{bad') } catch (e) { return e.name } }", "[]"),
    // Syntax errors, non-functions, values JSON cannot carry.
    ("(a, b) => a +* b", "[]"),
    ("42", "[]"),
    ("() => 10n", "[]"),
    ("() => { const a = []; a.push(a); return a }", "[]"),
    ("() => () => 1", "[]"),
    ("() => Symbol('s')", "[]"),
    ("() => ({ big: 1n })", "[]"),
    ("() => undefined", "[]"),
];

/// Where Boa 0.22 answers differently from Node: `(code, args, Boa's answer, Node's answer)`.
/// Listed in docs/jobs.md; the test below fails when an engine upgrade changes one, so the
/// list (and the docs) stay true.
const KNOWN_DIFFERENCES: &[(&str, &str, &str, &str)] = &[
    // A subnormal result of the `**` operator is 0 in Boa (`Math.pow` is right).
    ("() => [2 ** -1074, Math.pow(2, -1074)]", "[]", "[0,5e-324]", "[5e-324,5e-324]"),
    // An object rest after a property destructured with a nested pattern keeps that property.
    ("({b: {c} = {}, ...rest}) => rest", r#"[{"b": {}, "d": 4}]"#, r#"{"b":{},"d":4}"#, r#"{"d":4}"#),
];

/// Node's side: the same evaluation, call, await and encoding as `js-runtime/src/lib.rs`.
const NODE_WRAPPER: &str = r#"
const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const describe = (e) => (e instanceof Error || typeof e !== 'object' || e === null) ? String(e) : JSON.stringify(e);
async function run(code, args) {
  let fn;
  try { fn = (0, eval)('(' + code + '\n)'); }
  catch (e) { return { err: e instanceof SyntaxError ? 'syntax' : 'thrown', message: describe(e) }; }
  if (typeof fn !== 'function') return { err: 'not-a-function', message: typeof fn };
  let value;
  try { value = await fn(...JSON.parse(args)); } catch (e) { return { err: 'thrown', message: describe(e) }; }
  if (value === undefined) return { ok: 'null' };
  if (['function', 'symbol', 'bigint'].includes(typeof value)) return { err: 'unserializable', message: typeof value };
  try { const text = JSON.stringify(value); return { ok: text === undefined ? 'null' : text }; }
  catch (e) { return { err: 'unserializable', message: String(e) }; }
}
(async () => {
  const out = [];
  for (const [code, args] of cases) out.push(await run(code, args));
  process.stdout.write(JSON.stringify(out));
})();
"#;

/// What one side answered: the JSON text, or the failure's kind and message.
#[derive(Debug)]
enum Answer {
    Value(String),
    Failure { kind: String, message: String },
}

/// Runs the whole corpus on Node in one process; `None` if `node` is not installed.
fn node_answers() -> Option<Vec<Answer>> {
    let mut child = match Command::new("node")
        .args(["-e", NODE_WRAPPER])
        .env("TZ", "UTC")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("cannot start node: {e}"),
    };
    let cases = serde_json::to_vec(CORPUS).expect("corpus as JSON");
    child.stdin.take().expect("stdin").write_all(&cases).expect("write the corpus to node");
    let output = child.wait_with_output().expect("node runs");
    assert!(output.status.success(), "node failed: {}", String::from_utf8_lossy(&output.stdout));
    let answers: Vec<serde_json::Value> =
        serde_json::from_slice(&output.stdout).expect("node's answers as JSON");
    Some(
        answers
            .into_iter()
            .map(|answer| match answer.get("ok") {
                Some(text) => Answer::Value(text.as_str().expect("a JSON text").to_string()),
                None => Answer::Failure {
                    kind: answer["err"].as_str().expect("a kind").to_string(),
                    message: answer["message"].as_str().unwrap_or_default().to_string(),
                },
            })
            .collect(),
    )
}

fn cue_answer(code: &str, args: &str) -> Answer {
    let report = run_js(code, args);
    match (report.text, report.error) {
        (Some(text), None) => Answer::Value(text),
        (_, Some(error)) => Answer::Failure { kind: error.kind, message: error.message },
        (None, None) => panic!("{code}: neither a value nor an error"),
    }
}

/// Whether two failures agree: the same kind; for a thrown error the same name (`TypeError`),
/// and the same message when the job's code wrote it (engines word their own messages
/// differently).
fn same_failure(code: &str, (kind, message): (&str, &str), (node_kind, node_message): (&str, &str)) -> bool {
    if kind != node_kind {
        return false;
    }
    if kind != "thrown" {
        return true;
    }
    let name = |m: &str| m.split(':').next().unwrap_or_default().trim().to_string();
    let text = node_message.split_once(": ").map_or(node_message, |(_, text)| text);
    let written_by_the_job = code.contains(text);
    name(message) == name(node_message) && (!written_by_the_job || message == node_message)
}

#[test]
fn every_corpus_function_gives_what_node_gives() {
    let Some(node) = node_answers() else {
        eprintln!(
            "\n!!!!! SKIPPED: `node` is not installed, so the JavaScript corpus was not compared with Node !!!!!\n"
        );
        return;
    };
    assert_eq!(node.len(), CORPUS.len());
    let mut disagreements = Vec::new();
    for ((code, args), node) in CORPUS.iter().zip(node) {
        let cue = cue_answer(code, args);
        let agree = match (&cue, &node) {
            (Answer::Value(ours), Answer::Value(theirs)) => ours == theirs,
            (
                Answer::Failure { kind, message },
                Answer::Failure { kind: node_kind, message: node_message },
            ) => same_failure(code, (kind, message), (node_kind, node_message)),
            _ => false,
        };
        if !agree {
            disagreements.push(format!("{code}  with {args}\n    cue:  {cue:?}\n    node: {node:?}"));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} corpus functions disagree with Node:\n{}",
        disagreements.len(),
        CORPUS.len(),
        disagreements.join("\n")
    );
}

#[test]
fn the_known_differences_from_node_are_still_as_documented() {
    for (code, args, boa, _node) in KNOWN_DIFFERENCES {
        match cue_answer(code, args) {
            Answer::Value(text) => {
                assert_eq!(&text, boa, "{code}: Boa's answer changed; update docs/jobs.md")
            }
            failure => panic!("{code}: {failure:?}"),
        }
    }
}
