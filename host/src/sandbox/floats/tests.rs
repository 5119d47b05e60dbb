//! Hand-written modules, one per place a NaN's bits can be observed: each is run with the
//! engine-wide canonicalisation and through the pass ([`compare`]) and must observe the same;
//! each also shows that without the pass the place does observe a non-canonical NaN.

use super::NanCanonicalization;
use crate::sandbox::differential::{Comparison, compare, count_operators as count_ops, engine, observe};

/// An arithmetic NaN whose bits the hardware leaves non-canonical: a negative NaN with a
/// payload, plus one. x86 and Arm both propagate the (quietened) payload and the sign.
const ARITH_NAN_F64: &str = "(f64.add (f64.const -nan:0x4000000000001) (f64.const 1))";
const ARITH_NAN_F32: &str = "(f32.add (f32.const -nan:0x200001) (f32.const 1))";

fn module(body: &str) -> Vec<u8> {
    let text = format!(
        "(module
           (import \"host\" \"observe\" (func $observe (param f64 f32)))
           (memory (export \"memory\") 1)
           (global $g (export \"g\") (mut f64) (f64.const 0))
           {body})"
    )
    .replace("ARITH64", ARITH_NAN_F64)
    .replace("ARITH32", ARITH_NAN_F32);
    wat::parse_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Runs the module both ways, asserts they agree, and returns what they observed; also
/// returns what the un-rewritten module observes on the pass's engine (no canonicalisation
/// at all), so a test can show the place matters.
fn agree(
    body: &str,
) -> (crate::sandbox::differential::Observation, crate::sandbox::differential::Observation) {
    let bytes = module(body);
    let same = match compare(&bytes) {
        Ok(Comparison::Same(observation)) => observation,
        Ok(Comparison::Inconclusive(why)) => panic!("inconclusive: {why}"),
        Err(difference) => panic!("{difference}"),
    };
    let raw = observe(engine(NanCanonicalization::AtObservation, true), &bytes).expect("runs");
    (same, raw)
}

#[test]
fn a_reinterpreted_arithmetic_nan_is_canonical() {
    let (same, raw) = agree("(func (export \"f\") (result i64) ARITH64 i64.reinterpret_f64)");
    assert_eq!(same.calls, ["f: i64:0x7ff8000000000000"]);
    assert_ne!(raw.calls, same.calls, "without the pass the payload shows");
}

#[test]
fn a_stored_arithmetic_nan_is_canonical_and_a_loaded_one_is_copied_exactly() {
    let (same, raw) = agree(
        "(func (export \"f\")
           (f64.store (i32.const 0) ARITH64)
           (f32.store (i32.const 8) ARITH32)
           (f64.store (i32.const 16) (f64.const -nan:0x4000000000001))
           (f64.store (i32.const 24) (f64.load (i32.const 16))))",
    );
    let memory = &same.memories[0];
    assert_eq!(memory[0..8], 0x7ff8_0000_0000_0000u64.to_le_bytes());
    assert_eq!(memory[8..12], 0x7fc0_0000u32.to_le_bytes());
    assert_eq!(memory[16..24], 0xfff4_0000_0000_0001u64.to_le_bytes());
    assert_eq!(memory[24..32], memory[16..24], "a loaded NaN is moved bit for bit");
    assert_ne!(raw.memories, same.memories);
}

#[test]
fn copysign_takes_the_sign_of_the_canonical_nan() {
    let (same, raw) = agree("(func (export \"f\") (result f64) (f64.copysign (f64.const 1) ARITH64))");
    assert_eq!(same.calls, ["f: f64:0x3ff0000000000000"]);
    assert_ne!(raw.calls, same.calls);
}

#[test]
fn negating_an_arithmetic_nan_negates_the_canonical_nan() {
    let (same, raw) = agree(
        "(func (export \"f\") (result i64 i64)
           (i64.reinterpret_f64 (f64.neg ARITH64))
           (i64.reinterpret_f64 (f64.abs ARITH64)))",
    );
    assert_eq!(same.calls, ["f: i64:0xfff8000000000000, i64:0x7ff8000000000000"]);
    assert_ne!(raw.calls, same.calls);
}

#[test]
fn an_exported_result_is_canonical() {
    let (same, raw) = agree("(func (export \"f\") (result f64 f32) ARITH64 ARITH32)");
    assert_eq!(same.calls, ["f: f64:0x7ff8000000000000, f32:0x7fc00000"]);
    assert_ne!(raw.calls, same.calls);
}

#[test]
fn an_import_argument_is_canonical() {
    let (same, raw) = agree("(func (export \"f\") (call $observe ARITH64 ARITH32))");
    assert_eq!(same.import_calls, ["host::observe(f64:0x7ff8000000000000, f32:0x7fc00000)"]);
    assert_ne!(raw.import_calls, same.import_calls);
}

#[test]
fn a_global_set_is_canonical() {
    let (same, raw) = agree("(func (export \"f\") (global.set $g ARITH64))");
    assert_eq!(same.globals, ["f64:0x7ff8000000000000"]);
    assert_ne!(raw.globals, same.globals);
}

#[test]
fn vector_lanes_are_canonical_whether_computed_as_vectors_or_splatted() {
    let (same, raw) = agree(
        "(func (export \"f\") (result v128 v128 v128)
           (f64x2.add (f64x2.splat (f64.const -nan:0x4000000000001)) (f64x2.splat (f64.const 1)))
           (f32x4.mul (f32x4.splat (f32.const -nan:0x200001)) (f32x4.splat (f32.const 2)))
           (f64x2.splat ARITH64))",
    );
    let canonical_f64x2 = "0x7ff80000000000007ff8000000000000";
    let canonical_f32x4 = "0x7fc000007fc000007fc000007fc00000";
    assert_eq!(
        same.calls,
        [format!("f: v128:{canonical_f64x2}, v128:{canonical_f32x4}, v128:{canonical_f64x2}")]
    );
    assert_ne!(raw.calls, same.calls);
}

#[test]
fn a_local_holding_loaded_and_computed_values_keeps_each_exact() {
    // $x holds a loaded NaN (exact bits) and a computed one: the computed one is canonicalised
    // as it is written, the loaded one kept.
    let (same, _) = agree(
        "(func (export \"f\") (local $x f64) (local $i i32)
           (f64.store (i32.const 0) (f64.const nan:0x1234))
           (loop $l
             (local.set $x (f64.load (i32.const 0)))
             (f64.store (i32.add (i32.const 8) (i32.shl (local.get $i) (i32.const 4))) (local.get $x))
             (local.set $x ARITH64)
             (f64.store (i32.add (i32.const 16) (i32.shl (local.get $i) (i32.const 4))) (local.get $x))
             (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 2)))))",
    );
    let memory = &same.memories[0];
    assert_eq!(memory[8..16], 0x7ff0_0000_0000_1234u64.to_le_bytes());
    assert_eq!(memory[16..24], 0x7ff8_0000_0000_0000u64.to_le_bytes());
    assert_eq!(memory[24..32], 0x7ff0_0000_0000_1234u64.to_le_bytes());
}

#[test]
fn arithmetic_between_locals_is_not_canonicalised_until_observed() {
    let bytes = module(
        "(func (export \"f\") (param $n i32) (result f64) (local $a f64) (local $b f64)
           (local.set $a (f64.const 1))
           (loop $l
             (local.set $b (f64.add (local.get $a) (f64.mul (local.get $a) (f64.const 0.5))))
             (local.set $a (f64.sqrt (local.get $b)))
             (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
           (local.get $a))",
    );
    let rewritten = super::rewrite_module(&bytes).expect("rewrites");
    assert_eq!(count_f64_ge(&rewritten), 1, "one canonicalisation, at the result");
    assert!(matches!(compare(&bytes), Ok(Comparison::Same(_))));
}

/// How many `f64.ge` a module's code holds (the pass's scalar f64 sequence has one).
fn count_f64_ge(module: &[u8]) -> usize {
    count_ops(module, |op| matches!(op, wasmparser::Operator::F64Ge))
}

#[test]
fn the_fuel_is_the_same_with_and_without_the_pass() {
    let body = "(func (export \"f\") (result f64) (local $a f64) (local $i i32)
                  (loop $l
                    (local.set $a (f64.add (local.get $a) (f64.const 0.25)))
                    (f64.store (i32.const 0) (local.get $a))
                    (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 100))))
                  (select (local.get $a) (f64.const 2) (i32.const 1)))";
    let (same, raw) = agree(body);
    assert!(same.fuel > 700, "fuel {}", same.fuel);
    assert!(raw.fuel < same.fuel, "the pass's operators are free: unfilled guest code pays less");
}

#[test]
fn vector_arithmetic_between_locals_is_canonicalised_once_where_stored() {
    // A dot-product-like loop: the accumulator stays a vector of arithmetic values in a
    // local; only the store at the end sees its bits.
    let body = "(func (export \"f\") (local $n i32) (local $acc v128) (local $x v128)
           (local.set $n (i32.const 3))
           (v128.store (i32.const 64) (v128.const f32x4 -nan:0x200001 1 2 nan:0x11))
           (loop $l
             (local.set $x (f32x4.mul (v128.load (i32.const 64)) (f32x4.splat (f32.const 1.5))))
             (local.set $acc (f32x4.add (local.get $acc) (local.get $x)))
             (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
           (v128.store (i32.const 0) (local.get $acc)))";
    let bytes = module(body);
    let rewritten = super::rewrite_module(&bytes).expect("rewrites");
    assert_eq!(
        count_ops(&rewritten, |o| matches!(o, wasmparser::Operator::F32x4Eq)),
        1,
        "one canonicalisation, at the store"
    );
    let (same, raw) = agree(body);
    assert_eq!(same.memories[0][0..4], 0x7fc0_0000u32.to_le_bytes());
    assert_eq!(same.memories[0][12..16], 0x7fc0_0000u32.to_le_bytes());
    assert_ne!(raw.memories, same.memories, "without the pass the payloads show");
}

#[test]
fn a_vector_read_in_another_lane_shape_is_canonicalised_in_its_own_first() {
    // Read as f64x2, a non-canonical f32 NaN lane is part of a different number: the f32x4
    // result must be canonicalised as f32x4 before the f64x2 addition sees it.
    let (same, raw) = agree(
        "(func (export \"f\") (result v128 f64)
           (f64x2.add (f32x4.add (f32x4.splat (f32.const -nan:0x200001)) (f32x4.splat (f32.const 1)))
                      (f64x2.splat (f64.const 0)))
           (f64x2.extract_lane 1 (f32x4.mul (v128.const f32x4 1 2 3 -nan:0x200001) (f32x4.splat (f32.const 2)))))",
    );
    assert_ne!(raw.calls, same.calls, "without the pass the f32 payloads change the f64 numbers");
}

#[test]
fn lanes_taken_out_of_and_put_into_vectors_stay_arithmetic_until_observed() {
    let body = "(func (export \"f\") (result f32 v128) (local $v v128)
           (local.set $v (f32x4.sqrt (v128.const f32x4 -1 4 9 16)))
           (f32.add (f32x4.extract_lane 0 (local.get $v)) (f32.const 1))
           (f32x4.replace_lane 1 (local.get $v) (f32.sub (f32.const inf) (f32.const inf))))";
    let bytes = module(body);
    let rewritten = super::rewrite_module(&bytes).expect("rewrites");
    let eq = |o: &wasmparser::Operator<'_>| {
        matches!(o, wasmparser::Operator::F32Ge | wasmparser::Operator::F32x4Eq)
    };
    assert_eq!(count_ops(&rewritten, eq), 2, "canonicalised at the two results only");
    let (same, _) = agree(body);
    assert_eq!(same.calls, ["f: f32:0x7fc00000, v128:0x40800000404000007fc000007fc00000"]);
}

#[test]
fn a_vector_local_holding_two_lane_shapes_keeps_each_exact() {
    let (same, raw) = agree(
        "(func (export \"f\") (result v128 v128) (local $v v128) (local $w v128)
           (local.set $v (f32x4.add (v128.const f32x4 -nan:0x200001 0 0 0) (v128.const f32x4 0 0 0 0)))
           (local.set $w (local.get $v))
           (local.set $v (f64x2.add (v128.const f64x2 -nan:0x4000000000001 0) (v128.const f64x2 0 0)))
           (local.get $w)
           (local.get $v))",
    );
    assert_eq!(
        same.calls,
        ["f: v128:0x0000000000000000000000007fc00000, v128:0x00000000000000007ff8000000000000"]
    );
    assert_ne!(raw.calls, same.calls);
}

#[test]
fn a_local_reused_for_loaded_and_computed_values_keeps_the_computed_ones_arithmetic() {
    // Compilers reuse locals: $x holds a loaded value, then a computation. Split into webs,
    // the computation is canonicalised once, at the result, not at each write.
    let body = "(func (export \"f\") (result f64) (local $x f64) (local $i i32)
           (f64.store (i32.const 0) (f64.const nan:0x1234))
           (local.set $x (f64.load (i32.const 0)))
           (f64.store (i32.const 8) (local.get $x))
           (local.set $x (f64.const 1))
           (loop $l
             (local.set $x (f64.mul (local.get $x) (f64.const 1.5)))
             (local.set $x (f64.add (local.get $x) (f64.const 0.25)))
             (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 10))))
           (local.get $x))";
    let rewritten = super::rewrite_module(&module(body)).expect("rewrites");
    assert_eq!(count_f64_ge(&rewritten), 1, "one canonicalisation, at the result");
    let (same, _) = agree(body);
    assert_eq!(same.memories[0][8..16], 0x7ff0_0000_0000_1234u64.to_le_bytes(), "the loaded NaN kept");
}

#[test]
fn writes_that_meet_at_a_read_after_an_if_or_around_a_loop_share_a_class() {
    // Both arms of the `if` reach the read: the loaded (exact) and the computed value share
    // one web, so the computed one is canonicalised as it is written. The same through a
    // loop's back edge: the write at the end of an iteration reaches the store at the start
    // of the next.
    let (same, raw) = agree(
        "(func $pick (param $c i32) (result i64) (local $x f64)
           (if (local.get $c)
             (then (local.set $x (f64.load (i32.const 0))))
             (else (local.set $x ARITH64)))
           (i64.reinterpret_f64 (local.get $x)))
         (func (export \"then\") (result i64) (call $pick (i32.const 1)))
         (func (export \"else\") (result i64) (call $pick (i32.const 0)))
         (func (export \"loop\") (local $y f64) (local $i i32)
           (local.set $y (f64.load (i32.const 0)))
           (loop $l
             (f64.store (i32.add (i32.const 16) (i32.shl (local.get $i) (i32.const 3))) (local.get $y))
             (local.set $y ARITH64)
             (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 3)))))
         (start $init)
         (func $init (f64.store (i32.const 0) (f64.const -nan:0x1234)))",
    );
    assert_eq!(same.calls, ["then: i64:0xfff0000000001234", "else: i64:0x7ff8000000000000", "loop: "]);
    let memory = &same.memories[0];
    assert_eq!(memory[16..24], 0xfff0_0000_0000_1234u64.to_le_bytes(), "the loaded NaN, exact");
    assert_eq!(memory[24..32], 0x7ff8_0000_0000_0000u64.to_le_bytes(), "the computed one, canonical");
    assert_eq!(memory[32..40], memory[24..32]);
    assert_ne!((&raw.calls, &raw.memories), (&same.calls, &same.memories));
}

#[test]
fn an_f64_splat_holding_an_f32_nan_pattern_is_not_mixed_into_f32_arithmetic() {
    // 0x3ff000007fc00001 is the f64 1.0000001192092896: no NaN as f64x2, but its low half is
    // an f32 NaN with a payload. Joined with f32x4 arithmetic in one local, it must keep its
    // bits (the engine-wide setting never touches them).
    let (same, _) = agree(
        "(func (export \"f\") (local $v v128)
           (local.set $v (f64x2.splat (f64.const 0x1.000007fc00001p+0)))
           (if (i32.load (i32.const 100))
             (then (local.set $v (f32x4.add (local.get $v) (local.get $v)))))
           (v128.store (i32.const 0) (local.get $v)))",
    );
    assert_eq!(same.memories[0][0..8], 0x3ff0_0000_7fc0_0001u64.to_le_bytes());
}
