//! Each shape of loop, run as written and unrolled for every trip count around the number of
//! copies: the same result, the same memory, the same fuel; branches out of a copy reach the
//! labels they reached; loops the pass cannot renumber, and loops that call, are left as
//! written.

use wasmtime::{Instance, Module, Store};

use super::{MAX_COPIES, copies, unroll_module};
use crate::sandbox::NanCanonicalization;
use crate::sandbox::differential::{count_operators, engine};

const FUEL: u64 = 10_000_000;

/// A module of `funcs` and a memory, with 16 KiB of data beyond the first 1 KiB (what the
/// tests compare): real modules are mostly not loops, and the unrolling may add as many bytes
/// as a module has ([`super::MAX_GROWTH_PERCENT`]).
fn module(funcs: &str) -> Vec<u8> {
    let padding = "x".repeat(16 << 10);
    let text =
        format!("(module (memory (export \"memory\") 1) (data (i32.const 32768) \"{padding}\") {funcs})");
    wat::parse_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// What one call observes: its result or trap, the fuel it used, the memory after it.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    result: Result<i32, String>,
    fuel: u64,
    memory: Vec<u8>,
}

/// Runs `export` of `bytes` on the engine for code as written or unrolled (which charges
/// `i32.eqz` nothing: the unrolled code pays each of the guest's with a filler).
fn run(bytes: &[u8], unrolled: bool, export: &str, args: (i32, i32)) -> Run {
    let engine = engine(NanCanonicalization::EveryOperation, unrolled);
    let module = Module::new(engine, bytes).expect("compiles");
    let mut store = Store::new(engine, ());
    store.set_fuel(FUEL).expect("fuel");
    let instance = Instance::new(&mut store, &module, &[]).expect("instantiates");
    let func = instance.get_typed_func::<(i32, i32), i32>(&mut store, export).expect("export");
    let result = func.call(&mut store, args).map_err(|e| format!("{e:#}"));
    let fuel = FUEL - store.get_fuel().expect("fuel");
    let memory = instance.get_memory(&mut store, "memory").expect("memory").data(&store)[..1024].to_vec();
    Run { result, fuel, memory }
}

/// Asserts that every export behaves the same unrolled for `n` from 0 to 6 times the most copies, with the
/// second argument from `second`; returns the unrolled module.
fn same_for_every_trip_count(bytes: &[u8], exports: &[&str], second: &[i32]) -> Vec<u8> {
    let unrolled = unroll_module(bytes).expect("unrolls");
    for export in exports {
        for n in 0..=(6 * MAX_COPIES as i32) {
            for &k in second {
                let (written, after) =
                    (run(bytes, false, export, (n, k)), run(&unrolled, true, export, (n, k)));
                assert!(written.result.is_ok(), "{export}({n}, {k}): {:?}", written.result);
                assert_eq!(written, after, "{export}({n}, {k})");
            }
        }
    }
    unrolled
}

fn count(bytes: &[u8], wanted: fn(&wasmparser::Operator<'_>) -> bool) -> usize {
    count_operators(bytes, wanted)
}

fn is_mul(op: &wasmparser::Operator<'_>) -> bool {
    matches!(op, wasmparser::Operator::I32Mul)
}

/// A loop body: `$s += i * 3`, `memory[4 i] = s`, `i += 1` (15 operators, one `i32.mul`).
const STEP: &str = "(local.set $s (i32.add (local.get $s) (i32.mul (local.get $i) (i32.const 3))))
                    (i32.store (i32.shl (local.get $i) (i32.const 2)) (local.get $s))
                    (local.set $i (i32.add (local.get $i) (i32.const 1)))";

#[test]
fn each_shape_of_loop_runs_every_iteration_as_written_and_pays_the_same_fuel() {
    let funcs = [
        // `loop B br 0 end`: the exit is inside B.
        "(func (export \"back\") (param $n i32) (param i32) (result i32) (local $i i32) (local $s i32)
           (block $done (loop $top
             (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
             STEP
             (br $top)))
           (local.get $s))",
        // `loop B br_if 0 T end`, T an unconditional branch.
        "(func (export \"tail\") (param $n i32) (param i32) (result i32) (local $i i32) (local $s i32)
           (block $done (loop $top
             STEP
             (br_if $top (i32.lt_u (local.get $i) (local.get $n)))
             (br $done)))
           (local.get $s))",
        // `loop B c br_if 0 end`, c a comparison.
        "(func (export \"compare\") (param $n i32) (param i32) (result i32) (local $i i32) (local $s i32)
           (loop $top
             STEP
             (br_if $top (i32.lt_s (local.get $i) (local.get $n))))
           (local.get $s))",
        // The same with `i32.eqz` and a 64-bit comparison.
        "(func (export \"eqz\") (param $n i32) (param i32) (result i32) (local $i i32) (local $s i32)
           (loop $top
             STEP
             (br_if $top (i32.eqz (i32.ge_u (local.get $i) (local.get $n)))))
           (local.get $s))",
        "(func (export \"wide\") (param $n i32) (param i32) (result i32) (local $i i32) (local $s i32)
           (loop $top
             STEP
             (br_if $top (i64.gt_s (i64.extend_i32_s (local.get $n)) (i64.extend_i32_s (local.get $i)))))
           (local.get $s))",
        // A condition that is no comparison (a counter): the copies add an `i32.eqz`.
        "(func (export \"counted\") (param $n i32) (param i32) (result i32) (local $i i32) (local $s i32)
           (loop $top
             STEP
             (br_if $top (local.tee $n (i32.and (i32.sub (local.get $n) (i32.const 1)) (i32.const 31)))))
           (local.get $s))",
        // An `i32.eqz` outside any loop: paid by its filler as inside one.
        "(func (export \"plain\") (param $n i32) (param i32) (result i32)
           (i32.add (i32.eqz (local.get $n)) (i32.eqz (i32.eqz (local.get $n)))))",
    ];
    let bytes = module(&funcs.join("\n").replace("STEP", STEP));
    let unrolled = same_for_every_trip_count(
        &bytes,
        &["back", "tail", "compare", "eqz", "wide", "counted", "plain"],
        &[0],
    );
    assert_eq!(count(&bytes, is_mul), 6);
    assert_eq!(copies(24), MAX_COPIES, "loops of up to 24 operators get every copy");
    assert_eq!(count(&unrolled, is_mul), 6 * MAX_COPIES, "every loop unrolled");
}

#[test]
fn branches_out_of_a_copy_reach_the_labels_they_reached() {
    // The loops leave early when i reaches k: through a `br_table` whose targets are a block
    // inside the copy, the block outside the loop and the loop itself, through a `br` from
    // inside an `if`, through a `br_if` carrying a value; a nested block's own branch stays
    // inside the copy.
    let funcs = [
        "(func (export \"back\") (param $n i32) (param $k i32) (result i32) (local $i i32) (local $s i32)
           (block $done (loop $top
             (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
             (block $inner
               (br_table $inner $done $top
                 (select (i32.const 1) (i32.const 0) (i32.eq (local.get $i) (local.get $k)))))
             (if (i32.eq (local.get $i) (i32.add (local.get $k) (i32.const 2)))
               (then (br $done)))
             STEP
             (br $top)))
           (local.get $s))",
        "(func (export \"tail\") (param $n i32) (param $k i32) (result i32) (local $i i32) (local $s i32)
           (block $done (result i32) (loop $top
             (block $inner
               (br_if $inner (i32.and (local.get $i) (i32.const 1)))
               (local.set $s (i32.sub (local.get $s) (i32.const 1))))
             (if (i32.eq (local.get $i) (local.get $k))
               (then (br $done (i32.const -1))))
             STEP
             (br_if $top (i32.lt_u (local.get $i) (local.get $n)))
             (br $done (local.get $s)))
           (unreachable)))",
        "(func (export \"compare\") (param $n i32) (param $k i32) (result i32) (local $i i32) (local $s i32)
           (block $done (result i32)
             (loop $top
               (drop (br_if $done (i32.const 7) (i32.eq (local.get $i) (local.get $k))))
               (block $inner
                 (br_if $inner (i32.and (local.get $i) (i32.const 1)))
                 (local.set $s (i32.sub (local.get $s) (i32.const 1))))
               STEP
               (br_if $top (i32.lt_u (local.get $i) (local.get $n))))
             (local.get $s)))",
    ];
    let bytes = module(&funcs.join("\n").replace("STEP", STEP));
    let unrolled = same_for_every_trip_count(&bytes, &["back", "tail", "compare"], &[-1, 0, 3, 5, 9]);
    assert!(count(&unrolled, is_mul) >= 3 * 2, "every loop unrolled");
}

#[test]
fn loops_it_cannot_renumber_that_call_or_that_are_too_long_are_left_as_written() {
    let long_step = STEP.repeat(super::TARGET_OPERATORS / 15 + 1);
    let funcs = [
        // A loop with a result.
        "(func (export \"result\") (param $n i32) (param i32) (result i32) (local $i i32) (local $s i32)
           (loop $top (result i32)
             STEP
             (br_if $top (i32.lt_u (local.get $i) (local.get $n)))
             (local.get $s)))",
        // More than half of the operators an unrolled loop may hold.
        "(func (export \"long\") (param $n i32) (param i32) (result i32) (local $i i32) (local $s i32)
           (loop $top
             LONG
             (br_if $top (i32.lt_u (local.get $i) (local.get $n))))
           (local.get $s))",
        // A loop that calls: directly, and through a table.
        "(func $step (param $i i32) (result i32) (i32.mul (local.get $i) (i32.const 3)))
         (table funcref (elem $step))
         (func (export \"calls\") (param $n i32) (param i32) (result i32) (local $i i32) (local $s i32)
           (loop $top
             (local.set $s (i32.add (local.get $s) (call $step (local.get $i))))
             (local.set $i (i32.add (local.get $i) (i32.const 1)))
             (br_if $top (i32.lt_u (local.get $i) (local.get $n))))
           (loop $again
             (local.set $s (i32.add (local.get $s) (call_indirect (param i32) (result i32) (local.get $i) (i32.const 0))))
             (local.set $i (i32.sub (local.get $i) (i32.const 1)))
             (br_if $again (i32.gt_s (local.get $i) (i32.const 0))))
           (local.get $s))",
    ];
    let bytes = module(&funcs.join("\n").replace("LONG", &long_step).replace("STEP", STEP));
    let unrolled = same_for_every_trip_count(&bytes, &["result", "long", "calls"], &[0]);
    assert_eq!(unrolled, bytes, "nothing rewritten");

    // Nested loops: only the innermost is unrolled.
    let nested = module(&format!(
        "(func (export \"nested\") (param $n i32) (param i32) (result i32) (local $i i32) (local $s i32) (local $j i32)
           (loop $outer
             (local.set $j (i32.mul (local.get $j) (i32.const 1)))
             (loop $top
               {STEP}
               (br_if $top (i32.lt_u (local.get $i) (local.get $n))))
             (local.set $j (i32.add (local.get $j) (i32.const 1)))
             (br_if $outer (i32.lt_u (local.get $j) (i32.const 3))))
           (local.get $s))"
    ));
    let unrolled = same_for_every_trip_count(&nested, &["nested"], &[0]);
    assert_eq!(count(&unrolled, is_mul), 1 + MAX_COPIES);
}

#[test]
fn an_unrolled_loop_that_never_ends_still_runs_out_of_fuel() {
    let bytes = module(
        "(func (export \"spin\") (param i32) (param i32) (result i32) (loop $l (br $l)) (i32.const 0))
         (func (export \"spin_if\") (param i32) (param i32) (result i32)
           (loop $l (br_if $l (i32.eqz (i32.const 0)))) (i32.const 0))",
    );
    let unrolled = unroll_module(&bytes).expect("unrolls");
    assert_ne!(unrolled, bytes, "both loops are unrolled");
    for export in ["spin", "spin_if"] {
        let after = run(&unrolled, true, export, (0, 0));
        let message = after.result.expect_err("a loop without end cannot finish");
        assert!(message.contains("fuel"), "{message}");
        assert_eq!(after.fuel, FUEL, "{export}: every unit of fuel was paid for");
    }
}

#[test]
fn invalid_code_is_refused_with_a_typed_error_not_rewritten() {
    // `br_if 0` in an empty-typed loop with an i64 on the stack: invalid; the unrolled copy
    // would be too, and the pass says so instead of passing it on.
    let text = "(module (func (loop (br_if 0 (i64.const 1)))))";
    let bytes = wat::parse_str(text).expect("parses as text");
    let error = unroll_module(&bytes).expect_err("invalid");
    assert!(matches!(error, super::RewriteError::Invalid(_)), "{error}");
}

#[test]
fn a_module_of_nothing_but_tiny_loops_grows_at_most_by_its_own_size() {
    // 2,000 loops of one operator each: unrolled without a bound, the body would grow eightfold.
    let loops = "(loop $l (br_if $l (i32.eqz (local.get $n))))".repeat(2_000);
    let bytes = module(&format!(
        "(func (export \"f\") (param $n i32) (param i32) (result i32) {loops} (i32.const 7))"
    ));
    let unrolled = unroll_module(&bytes).expect("unrolls");
    let (before, after) = (bytes.len(), unrolled.len());
    assert!(after > before * 3 / 2, "loops are unrolled while the budget lasts: {before} → {after}");
    // Plus the filler (3 bytes) after each of the guest's 2,000 `i32.eqz`, which keeps its fuel.
    assert!(after <= before * (100 + super::MAX_GROWTH_PERCENT) / 100 + 3 * 2_000, "{before} → {after}");
    assert_eq!(run(&bytes, false, "f", (1, 0)), run(&unrolled, true, "f", (1, 0)));
}
