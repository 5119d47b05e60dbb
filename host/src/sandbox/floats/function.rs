//! One function body through the pass: find every place where the bits of an arithmetic NaN
//! could be observed, and canonicalise the value there (docs/sandbox.md, "Determinism").
//!
//! Each value on the operand stack has a class. `Arith` values come from float arithmetic
//! (or from a local that only ever holds such values): they equal what the engine-wide
//! canonicalisation would have computed, except that where that is the canonical NaN, they
//! may be any NaN. `Exact` values carry the same bits as under the engine-wide setting
//! (loads, parameters, call results, reinterpretations, canonicalised values). `Free` values
//! are non-NaN constants, which fit either class. An `Arith` value consumed by anything that
//! could see its bits (a sink: every operator but arithmetic, comparisons, float-to-int
//! truncations, `drop`, `select` and `local.set`/`tee` into an `Arith` local) is
//! canonicalised right after the operator that produced it. Vector float arithmetic is
//! canonicalised after every operation, as the engine-wide setting does.

use wasmparser::{FuncValidator, FunctionBody, Operator, ValType, ValidatorResources};

use super::FloatPassError;
use super::emit::{Canon, Emitter};

/// The class of a value on the operand stack (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Exact,
    Arith,
    Free,
}

/// A value on the shadow operand stack: its class and the operator that pushed it.
#[derive(Clone, Copy, Debug)]
struct Slot {
    class: Class,
    producer: Option<usize>,
}

const EXACT: Slot = Slot { class: Class::Exact, producer: None };

/// One operator of the body with what the validator knew around it.
struct Step<'a> {
    op: Operator<'a>,
    /// Its bytes in the module: `module[start..end]`.
    start: usize,
    end: usize,
    /// Values it pops and pushes (wasmparser's arity); `None` if unknown.
    arity: Option<(u32, u32)>,
    /// The operand stack's height after it, and the type on top (if it pushed one).
    height_after: u32,
    top_after: Option<ValType>,
}

/// What an operator does with floats, for the analysis.
enum Kind {
    /// Scalar float arithmetic: inputs may be `Arith`, the result is `Arith`.
    Arith,
    /// Vector float arithmetic: canonicalised after every operation, in this lane shape.
    VectorArith(Canon),
    /// Reads floats without seeing a NaN's bits (comparisons, truncations, `drop`).
    Blind,
    /// Produces a float that is never NaN (integer-to-float conversions).
    NeverNan,
    Const {
        nan: bool,
    },
    LocalGet(u32),
    LocalSet(u32),
    LocalTee(u32),
    Select,
    /// Anything else: its float inputs are observed, its results are exact.
    Sink,
}

/// Rewrites one function body; returns its new encoding (locals and code).
pub(super) fn rewrite(
    module: &[u8],
    validator: &mut FuncValidator<ValidatorResources>,
    body: &FunctionBody<'_>,
) -> Result<Vec<u8>, FloatPassError> {
    let mut locals = body.get_locals_reader()?;
    let groups = locals.get_count();
    let groups_start = locals.original_position();
    let mut declared = 0u32;
    for _ in 0..groups {
        let offset = locals.original_position();
        let (count, ty) = locals.read()?;
        validator.define_locals(offset, count, ty)?;
        declared += count;
    }
    let groups_end = locals.original_position();
    let total = validator.len_locals();
    let params = total - declared;
    let local_types: Vec<Option<ValType>> = (0..total).map(|i| validator.get_local_type(i)).collect();

    let steps = read_steps(validator, body)?;
    let canon = analyse(&steps, &local_types, params);

    let mut emitter = Emitter::new(total, &canon);
    emitter.locals(groups, &module[groups_start..groups_end]);
    for (step, canon) in steps.iter().zip(&canon) {
        emitter.guest_op(&step.op, &module[step.start..step.end]);
        if let Some(canon) = canon {
            emitter.canonicalise(*canon);
        }
    }
    Ok(emitter.finish())
}

/// Validates the body operator by operator, recording each with its arity and stack effect.
fn read_steps<'a>(
    validator: &mut FuncValidator<ValidatorResources>,
    body: &FunctionBody<'a>,
) -> Result<Vec<Step<'a>>, FloatPassError> {
    let mut reader = body.get_operators_reader()?;
    let mut steps: Vec<Step<'a>> = Vec::new();
    while !reader.eof() {
        let (op, start) = reader.read_with_offset()?;
        if let Some(last) = steps.last_mut() {
            last.end = start;
        }
        let arity = op.operator_arity(&*validator);
        validator.op(start, &op)?;
        let height_after = validator.operand_stack_height();
        let top_after = match arity {
            Some((_, pushes)) if pushes > 0 => validator.get_operand_type(0).flatten(),
            _ => None,
        };
        steps.push(Step { op, start, end: start, arity, height_after, top_after });
    }
    let end = reader.original_position();
    reader.finish()?;
    if let Some(last) = steps.last_mut() {
        last.end = end;
    }
    Ok(steps)
}

/// Decides, per operator, whether its result is canonicalised right after it. Locals start
/// `Arith`-only (except parameters, which hold what callers pass: exact bits); a local that
/// is ever written an exact value becomes exact, and the walk repeats until nothing changes
/// (at most once per local). In the last walk, every `Arith` value reaching a sink marks its
/// producer.
fn analyse(steps: &[Step<'_>], local_types: &[Option<ValType>], params: u32) -> Vec<Option<Canon>> {
    let mut exact: Vec<bool> = local_types
        .iter()
        .enumerate()
        .map(|(i, ty)| (i as u32) < params || !matches!(ty, Some(ValType::F32 | ValType::F64)))
        .collect();
    loop {
        let (marks, changed) = walk(steps, &mut exact);
        if !changed {
            return steps
                .iter()
                .zip(marks)
                .map(|(step, marked)| match kind(&step.op) {
                    Kind::VectorArith(canon) => Some(canon),
                    _ if marked => scalar_canon(step.top_after),
                    _ => None,
                })
                .collect();
        }
    }
}

fn scalar_canon(ty: Option<ValType>) -> Option<Canon> {
    match ty {
        Some(ValType::F32) => Some(Canon::F32),
        Some(ValType::F64) => Some(Canon::F64),
        _ => None,
    }
}

/// One walk over the body with the current local classes.
fn walk(steps: &[Step<'_>], exact: &mut [bool]) -> (Vec<bool>, bool) {
    let mut marks = vec![false; steps.len()];
    let mut changed = false;
    let mut stack: Vec<Slot> = Vec::new();
    let sink = |slot: Slot, marks: &mut Vec<bool>| {
        if let (Class::Arith, Some(producer)) = (slot.class, slot.producer) {
            marks[producer] = true;
        }
    };
    for (i, step) in steps.iter().enumerate() {
        let float_top = scalar_canon(step.top_after).is_some();
        let produced =
            |class| Slot { class: if float_top { class } else { Class::Exact }, producer: Some(i) };
        match (kind(&step.op), step.arity) {
            (Kind::Arith, Some((pops, _))) => {
                pop_n(&mut stack, pops);
                stack.push(produced(Class::Arith));
            }
            (Kind::Blind, Some((pops, pushes))) => {
                pop_n(&mut stack, pops);
                stack.extend((0..pushes).map(|_| EXACT));
            }
            (Kind::NeverNan, _) => {
                stack.pop();
                stack.push(produced(Class::Free));
            }
            (Kind::Const { nan }, _) => stack.push(produced(if nan { Class::Exact } else { Class::Free })),
            (Kind::LocalGet(l), _) => {
                let class = if exact[l as usize] { Class::Exact } else { Class::Arith };
                stack.push(produced(class));
            }
            (Kind::LocalSet(l) | Kind::LocalTee(l), _) => {
                let value = stack.pop().unwrap_or(EXACT);
                let l = l as usize;
                let stored = if exact[l] {
                    sink(value, &mut marks);
                    if value.class == Class::Arith { Class::Exact } else { value.class }
                } else if value.class == Class::Exact {
                    exact[l] = true;
                    changed = true;
                    Class::Exact
                } else {
                    value.class
                };
                if matches!(step.op, Operator::LocalTee { .. }) {
                    stack.push(produced(stored));
                }
            }
            (Kind::Select, _) => {
                stack.pop();
                let b = stack.pop().unwrap_or(EXACT);
                let a = stack.pop().unwrap_or(EXACT);
                let class = match (a.class, b.class) {
                    (Class::Exact, Class::Arith) => {
                        sink(b, &mut marks);
                        Class::Exact
                    }
                    (Class::Arith, Class::Exact) => {
                        sink(a, &mut marks);
                        Class::Exact
                    }
                    (Class::Exact, _) | (_, Class::Exact) => Class::Exact,
                    (Class::Arith, _) | (_, Class::Arith) => Class::Arith,
                    (Class::Free, Class::Free) => Class::Free,
                };
                stack.push(produced(class));
            }
            (_, Some((pops, pushes))) => {
                for _ in 0..pops {
                    sink(stack.pop().unwrap_or(EXACT), &mut marks);
                }
                stack.extend((0..pushes).map(|_| EXACT));
            }
            (_, None) => {
                // Unknown stack effect: canonicalise every value below, as if all were read.
                for slot in stack.drain(..) {
                    sink(slot, &mut marks);
                }
            }
        }
        stack.resize(step.height_after as usize, EXACT);
    }
    (marks, changed)
}

fn pop_n(stack: &mut Vec<Slot>, n: u32) {
    let keep = stack.len().saturating_sub(n as usize);
    stack.truncate(keep);
}

fn kind(op: &Operator<'_>) -> Kind {
    use Operator as O;
    match op {
        O::F32Add
        | O::F32Sub
        | O::F32Mul
        | O::F32Div
        | O::F32Min
        | O::F32Max
        | O::F32Sqrt
        | O::F32Ceil
        | O::F32Floor
        | O::F32Trunc
        | O::F32Nearest
        | O::F32DemoteF64 => Kind::Arith,
        O::F64Add
        | O::F64Sub
        | O::F64Mul
        | O::F64Div
        | O::F64Min
        | O::F64Max
        | O::F64Sqrt
        | O::F64Ceil
        | O::F64Floor
        | O::F64Trunc
        | O::F64Nearest
        | O::F64PromoteF32 => Kind::Arith,
        O::F32x4Add
        | O::F32x4Sub
        | O::F32x4Mul
        | O::F32x4Div
        | O::F32x4Min
        | O::F32x4Max
        | O::F32x4Sqrt
        | O::F32x4Ceil
        | O::F32x4Floor
        | O::F32x4Trunc
        | O::F32x4Nearest
        | O::F32x4DemoteF64x2Zero
        | O::F32x4RelaxedMadd
        | O::F32x4RelaxedNmadd
        | O::F32x4RelaxedMin
        | O::F32x4RelaxedMax => Kind::VectorArith(Canon::F32x4),
        O::F64x2Add
        | O::F64x2Sub
        | O::F64x2Mul
        | O::F64x2Div
        | O::F64x2Min
        | O::F64x2Max
        | O::F64x2Sqrt
        | O::F64x2Ceil
        | O::F64x2Floor
        | O::F64x2Trunc
        | O::F64x2Nearest
        | O::F64x2PromoteLowF32x4
        | O::F64x2RelaxedMadd
        | O::F64x2RelaxedNmadd
        | O::F64x2RelaxedMin
        | O::F64x2RelaxedMax => Kind::VectorArith(Canon::F64x2),
        O::F32Eq
        | O::F32Ne
        | O::F32Lt
        | O::F32Gt
        | O::F32Le
        | O::F32Ge
        | O::F64Eq
        | O::F64Ne
        | O::F64Lt
        | O::F64Gt
        | O::F64Le
        | O::F64Ge
        | O::I32TruncF32S
        | O::I32TruncF32U
        | O::I32TruncF64S
        | O::I32TruncF64U
        | O::I64TruncF32S
        | O::I64TruncF32U
        | O::I64TruncF64S
        | O::I64TruncF64U
        | O::I32TruncSatF32S
        | O::I32TruncSatF32U
        | O::I32TruncSatF64S
        | O::I32TruncSatF64U
        | O::I64TruncSatF32S
        | O::I64TruncSatF32U
        | O::I64TruncSatF64S
        | O::I64TruncSatF64U
        | O::Drop => Kind::Blind,
        O::F32ConvertI32S
        | O::F32ConvertI32U
        | O::F32ConvertI64S
        | O::F32ConvertI64U
        | O::F64ConvertI32S
        | O::F64ConvertI32U
        | O::F64ConvertI64S
        | O::F64ConvertI64U => Kind::NeverNan,
        O::F32Const { value } => Kind::Const { nan: f32::from_bits(value.bits()).is_nan() },
        O::F64Const { value } => Kind::Const { nan: f64::from_bits(value.bits()).is_nan() },
        O::LocalGet { local_index } => Kind::LocalGet(*local_index),
        O::LocalSet { local_index } => Kind::LocalSet(*local_index),
        O::LocalTee { local_index } => Kind::LocalTee(*local_index),
        O::Select | O::TypedSelect { .. } => Kind::Select,
        _ => Kind::Sink,
    }
}
