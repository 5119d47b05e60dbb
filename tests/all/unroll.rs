//! Loop unrolling (issue 22, metering): every example guest, and a corpus of generated modules,
//! must observe exactly the same with their small loops unrolled as written — results, logs,
//! fuel, and for core modules every byte of memory.

use cue_host::fuzzing::{FloatsVerdict, unrolling};
use cue_host::sandbox::differential::count_operators;
use cue_host::sandbox::unroll::unroll_component;
use cue_host::sandbox::{Sandbox, SandboxConfig};

use crate::float_modules::float_module;
use crate::floats::{corpus_bytes, every_guest_call_agrees};
use crate::support::guest_bytes;

#[test]
fn every_example_guest_gives_the_same_result_log_and_fuel_with_its_loops_unrolled() {
    let unrolled = Sandbox::new(SandboxConfig::default()).expect("sandbox");
    let written =
        Sandbox::new(SandboxConfig { unroll_loops: false, ..SandboxConfig::default() }).expect("sandbox");
    every_guest_call_agrees(&unrolled, &written);
}

/// The matrix multiply's inner loop (a vector multiply and add, built with SIMD) is one of
/// the loops unrolled: the component holds several copies of it afterwards.
#[test]
fn the_matrix_multiply_inner_loop_is_unrolled() {
    use wasmparser::Operator as O;
    let bytes = guest_bytes("numeric-simd");
    let is_mul = |op: &O<'_>| matches!(op, O::F64x2Mul);
    let unrolled = unroll_component(&bytes).expect("unrolls");
    let (before, after) = (count_operators(&bytes, is_mul), count_operators(&unrolled, is_mul));
    assert!(
        after >= before + cue_host::sandbox::unroll::MAX_COPIES - 1,
        "f64x2.mul: {before} as written, {after} unrolled"
    );
}

/// Choices for the generator, from a seeded splitmix64 stream.
struct Choices(u64);

impl Choices {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }

    fn one<'a>(&mut self, of: &[&'a str]) -> &'a str {
        of[self.below(of.len() as u64) as usize]
    }
}

/// One statement of a loop body: arithmetic, stores, exits to either block outside the loop
/// (`br_if`, `br` inside `if`/`else`, `br_table`), a nested block's own branch, an early
/// `continue`, a 64-bit step.
fn statement(c: &mut Choices) -> String {
    let k = c.below(7) + 1;
    let compare = c.one(&["i32.eq", "i32.lt_s", "i32.gt_u", "i32.ge_s"]);
    let out = c.one(&["$b1", "$b2"]);
    match c.below(9) {
        0 => format!("(local.set $s (i32.add (local.get $s) (i32.mul (local.get $i) (i32.const {k}))))"),
        1 => "(i32.store (i32.and (i32.shl (local.get $i) (i32.const 2)) (i32.const 1020)) (local.get $s))".into(),
        2 => format!("(br_if {out} ({compare} (local.get $i) (local.get $k)))"),
        3 => format!(
            "(if ({compare} (local.get $i) (local.get $k)) (then (local.set $s (i32.xor (local.get $s) (i32.const {k})))) (else (br_if {out} (i32.eq (local.get $i) (i32.const {k})))))"
        ),
        4 => format!(
            "(block $in (br_if $in (i32.and (local.get $i) (i32.const {k}))) (local.set $s (i32.sub (local.get $s) (i32.const 1))))"
        ),
        5 => format!(
            "(block $in (br_table $in {out} $in (select (i32.const 1) (i32.const 2) (i32.eq (local.get $i) (local.get $k)))))"
        ),
        6 => format!(
            "(local.set $t (i64.add (local.get $t) (i64.mul (i64.extend_i32_s (local.get $i)) (i64.const {k}))))"
        ),
        7 => "(i64.store offset=2048 (i32.and (i32.shl (local.get $i) (i32.const 3)) (i32.const 1016)) (local.get $t))".into(),
        // A `continue` after the step: the next iteration starts early.
        _ => format!(
            "(local.set $i (i32.add (local.get $i) (i32.const 1))) (br_if $top (i32.eq (i32.and (local.get $i) (i32.const {k})) (i32.const 1)))"
        ),
    }
}

/// A module of four exported functions, each one loop of a shape the unrolling handles (or
/// nearly: some end in a condition that is not a comparison, some sit in an outer loop), with
/// trip counts and early exits around the number of copies.
fn loop_module(seed: u64) -> Vec<u8> {
    let mut c = Choices(seed);
    let mut funcs = String::new();
    for f in 0..4 {
        let (n, k) = (c.below(30), c.below(34) as i64 - 2);
        let body: Vec<String> = (0..c.below(5) + 1).map(|_| statement(&mut c)).collect();
        let step = "(local.set $i (i32.add (local.get $i) (i32.const 1)))";
        let compare = c.one(&["i32.lt_s", "i32.ne", "i32.lt_u", "i32.le_s", "i64.lt_s", "i64.ne", "eqz"]);
        let condition = match compare {
            "eqz" => "(i32.eqz (i32.ge_s (local.get $i) (local.get $n)))".to_string(),
            c if c.starts_with("i64") => {
                format!("({c} (i64.extend_i32_s (local.get $i)) (i64.extend_i32_s (local.get $n)))")
            }
            c => format!("({c} (local.get $i) (local.get $n))"),
        };
        let body = body.join(" ");
        let looped = match c.below(5) {
            0 => format!(
                "(loop $top (br_if $b1 (i32.ge_s (local.get $i) (local.get $n))) {body} {step} (br $top))"
            ),
            1 => format!("(loop $top {body} {step} (br_if $top {condition}) (br $b2))"),
            2 => format!("(loop $top {body} {step} (br_if $top {condition}))"),
            3 => format!("(loop $top {body} {step} (br_if $top (i32.and (i32.const 1) {condition})))"),
            _ => format!(
                "(loop $outer (loop $top {body} {step} (br_if $top {condition})) (local.set $n (i32.add (local.get $n) (i32.const 3))) (br_if $outer (i32.lt_s (local.get $n) (i32.const 40))))"
            ),
        };
        funcs += &format!(
            "(func (export \"f{f}\") (result i32) (local $n i32) (local $k i32) (local $i i32) (local $s i32) (local $t i64)
               (local.set $n (i32.const {n})) (local.set $k (i32.const {k}))
               (block $b2 (block $b1 {looped}) (local.set $s (i32.add (local.get $s) (i32.const 1000))))
               (i32.add (local.get $s) (i32.wrap_i64 (local.get $t))))"
        );
    }
    let text = format!("(module (memory (export \"memory\") 1) {funcs})");
    wat::parse_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// How many generated loop modules the corpus compares.
const LOOP_MODULES: usize = 400;

#[test]
fn generated_loops_observe_the_same_unrolled() {
    let (mut compared, mut unrolled, mut out_of_fuel) = (0, 0, 0);
    for seed in 0..LOOP_MODULES as u64 {
        let module = loop_module(seed);
        let rewritten = cue_host::sandbox::unroll::unroll_module(&module).expect("unrolls");
        match unrolling(&module) {
            FloatsVerdict::Same { .. } => {
                compared += 1;
                unrolled += usize::from(rewritten.len() > module.len() + 64);
            }
            // A loop that skips past its `i != n` runs until the fuel is gone, both ways.
            FloatsVerdict::Inconclusive(why) if why.contains("fuel") => out_of_fuel += 1,
            FloatsVerdict::Inconclusive(why) => panic!("seed {seed}: {why}"),
        }
    }
    eprintln!(
        "{compared} loop modules compared ({unrolled} with loops unrolled), {out_of_fuel} out of fuel both ways"
    );
    assert!(unrolled >= LOOP_MODULES * 3 / 4, "only {unrolled} of {LOOP_MODULES} modules had loops unrolled");
}

/// The `wasm-smith` modules of the float corpus, as written and unrolled (few of its loops
/// have a shape the unrolling takes; those that do are compared like the rest).
const CORPUS_MODULES: usize = 150;

#[test]
fn generated_float_heavy_modules_observe_the_same_with_their_loops_unrolled() {
    let mut compared = 0;
    let mut seed = 1_000_000;
    while compared < CORPUS_MODULES {
        seed += 1;
        assert!(seed < 1_000_000 + 50 * CORPUS_MODULES as u64, "too few comparable modules");
        let Some(module) = float_module(&corpus_bytes(seed, 8192)) else { continue };
        if let FloatsVerdict::Same { .. } = unrolling(&module) {
            compared += 1;
        }
    }
}
