//! One function body through the pass: find every place where the bits of an arithmetic NaN
//! could be observed, and canonicalise the value there (docs/sandbox.md, "Determinism").
//!
//! Each value on the operand stack has a class. `Arith(shape)` values come from float
//! arithmetic of that shape (f32, f64, or the lanes of an f32x4 or f64x2 vector), or from a
//! local that only ever holds such values: each of their lanes equals what the engine-wide
//! canonicalisation would have computed, except that where that is the canonical NaN, it may
//! be any NaN. `Exact` values carry the same bits as under the engine-wide setting (loads,
//! parameters, call results, reinterpretations, canonicalised values). `Free` values hold no
//! NaN in any lane shape (non-NaN constants, a local's initial zero) and fit either class; a
//! vector built from f64 numbers is not free (the low half of an f64 can be an f32 NaN).
//!
//! An `Arith` value consumed by anything that could see its bits (a sink: every operator but
//! arithmetic, comparisons and float-to-int truncations of the same shape, lane extraction,
//! splats, lane replacement, `drop`, `select`, and `local.set`/`tee` into a local of the same
//! class) is canonicalised, in its own shape, right after the operator that produced it. A
//! vector read in another lane shape than the one it was computed in is a sink: a
//! non-canonical NaN lane of one shape is a different number, not a NaN, in the other.

use wasmparser::{FuncValidator, FunctionBody, Operator, ValType, ValidatorResources};

use super::FloatPassError;
use super::emit::{Canon, Emitter};
use super::webs::{self, Webs};

/// The class of a value on the operand stack (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Exact,
    Arith(Canon),
    Free,
}

/// What a local holds, over the whole body: it only grows, `Free` → `Arith` → `Exact`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Held {
    /// Only values with no NaN (its initial zero, `Free` values).
    Free,
    /// Arithmetic values of one shape (and `Free` ones).
    Arith(Canon),
    /// Anything: values written to it must be exact.
    Exact,
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
    /// The operand stack's height after it, and the type on top (if it pushed one whose type
    /// the validator knows: not in unreachable code).
    height_after: u32,
    top_after: Option<ValType>,
}

/// What an operator does with floats, for the analysis.
enum Kind {
    /// Float arithmetic: its inputs may be `Arith` of shape `input`, its result is `Arith` of
    /// shape `output` (the same, but for promotions and demotions).
    Arith {
        input: Canon,
        output: Canon,
    },
    /// Reads floats of this shape without seeing a NaN's bits (comparisons, truncations);
    /// its results are exact.
    Blind(Canon),
    /// Reads anything without seeing it (`drop`).
    Drop,
    /// Produces a float that is never NaN (integer-to-float conversions).
    NeverNan,
    /// A constant: `Free` unless some lane is a NaN.
    Const {
        nan: bool,
    },
    /// One lane of a vector of shape `vector`, as a scalar of shape `scalar`.
    ExtractLane {
        vector: Canon,
        scalar: Canon,
    },
    /// A scalar into every lane of a vector of this shape.
    Splat(Canon),
    /// A scalar into one lane of a vector of this shape.
    ReplaceLane(Canon),
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

/// Decides, per operator, whether its result is canonicalised right after it, and in which
/// shape. Each local is split into [webs] (the writes that can reach a common read); a web
/// of a float local starts holding its shape's arithmetic values, of a vector local nothing
/// but its zero, of a parameter what callers pass (exact bits). What a web holds only grows,
/// and the walk repeats until nothing changes (at most twice per web). In the last walk,
/// every `Arith` value reaching a sink marks its producer.
fn analyse(steps: &[Step<'_>], local_types: &[Option<ValType>], params: u32) -> Vec<Option<Canon>> {
    let ops: Vec<&Operator<'_>> = steps.iter().map(|step| &step.op).collect();
    let webs = webs::webs(&ops, local_types);
    let mut held: Vec<Held> = webs
        .locals()
        .iter()
        .map(|local| match local_types[*local as usize] {
            Some(ValType::F32) => Held::Arith(Canon::F32),
            Some(ValType::F64) => Held::Arith(Canon::F64),
            Some(ValType::V128) => Held::Free,
            _ => Held::Exact,
        })
        .collect();
    for (web, local) in webs.entries() {
        if local < params {
            held[web] = Held::Exact;
        }
    }
    loop {
        let (marks, changed) = walk(steps, &webs, &mut held);
        if !changed {
            return marks
                .into_iter()
                .zip(steps)
                .map(|(mark, step)| mark.filter(|shape| fits(step.top_after, *shape)))
                .collect();
        }
    }
}

/// Whether a value of type `ty` can be canonicalised in `shape`.
fn fits(ty: Option<ValType>, shape: Canon) -> bool {
    matches!(
        (ty, shape),
        (Some(ValType::F32), Canon::F32)
            | (Some(ValType::F64), Canon::F64)
            | (Some(ValType::V128), Canon::F32x4 | Canon::F64x2)
    )
}

/// Marks `slot`'s producer to be canonicalised if `slot` is arithmetic.
fn sink(slot: Slot, marks: &mut [Option<Canon>]) {
    if let (Class::Arith(shape), Some(producer)) = (slot.class, slot.producer) {
        marks[producer] = Some(shape);
    }
}

/// `slot` read as `shape`: an arithmetic value of another shape is observed.
fn read_as(slot: Slot, shape: Canon, marks: &mut [Option<Canon>]) {
    if matches!(slot.class, Class::Arith(s) if s != shape) {
        sink(slot, marks);
    }
}

/// The class of a value that is either `a` or `b` (a `select`, a lane replaced): exact bits
/// cannot be mixed with arithmetic ones, which are canonicalised instead.
fn join(a: Slot, b: Slot, marks: &mut [Option<Canon>]) -> Class {
    match (a.class, b.class) {
        (Class::Exact, _) | (_, Class::Exact) => {
            sink(a, marks);
            sink(b, marks);
            Class::Exact
        }
        (Class::Arith(s), Class::Arith(t)) if s != t => {
            sink(a, marks);
            sink(b, marks);
            Class::Exact
        }
        (Class::Arith(s), _) | (_, Class::Arith(s)) => Class::Arith(s),
        (Class::Free, Class::Free) => Class::Free,
    }
}

/// One walk over the body with what the locals hold so far.
fn walk(steps: &[Step<'_>], webs: &Webs, held: &mut [Held]) -> (Vec<Option<Canon>>, bool) {
    let mut marks: Vec<Option<Canon>> = vec![None; steps.len()];
    let mut changed = false;
    let mut stack: Vec<Slot> = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let produced = |class| Slot { class, producer: Some(i) };
        let pop = |stack: &mut Vec<Slot>| stack.pop().unwrap_or(EXACT);
        match (kind(&step.op), step.arity) {
            (Kind::Arith { input, output }, Some((pops, _))) => {
                for _ in 0..pops {
                    read_as(pop(&mut stack), input, &mut marks);
                }
                stack.push(produced(Class::Arith(output)));
            }
            (Kind::Blind(shape), Some((pops, pushes))) => {
                for _ in 0..pops {
                    read_as(pop(&mut stack), shape, &mut marks);
                }
                stack.extend((0..pushes).map(|_| EXACT));
            }
            (Kind::Drop, _) => {
                pop(&mut stack);
            }
            (Kind::NeverNan, _) => {
                pop(&mut stack);
                stack.push(produced(Class::Free));
            }
            (Kind::Const { nan }, _) => stack.push(produced(if nan { Class::Exact } else { Class::Free })),
            (Kind::ExtractLane { vector, scalar }, _) => {
                let value = pop(&mut stack);
                read_as(value, vector, &mut marks);
                let class = match value.class {
                    Class::Arith(s) if s == vector => Class::Arith(scalar),
                    Class::Free => Class::Free,
                    _ => Class::Exact,
                };
                stack.push(produced(class));
            }
            (Kind::Splat(shape), _) => {
                let class = match pop(&mut stack).class {
                    Class::Arith(_) => Class::Arith(shape),
                    // A number's f64 bits can hold an f32 NaN in their low half.
                    Class::Free if shape == Canon::F64x2 => Class::Exact,
                    other => other,
                };
                stack.push(produced(class));
            }
            (Kind::ReplaceLane(shape), _) => {
                let lane = pop(&mut stack);
                let vector = pop(&mut stack);
                read_as(vector, shape, &mut marks);
                let vector_class = match vector.class {
                    Class::Arith(s) if s != shape => Class::Exact,
                    class => class,
                };
                // Exact lanes cannot be mixed with arithmetic ones: canonicalise the latter.
                let class = match (vector_class, lane.class) {
                    (Class::Exact, _) => {
                        sink(lane, &mut marks);
                        Class::Exact
                    }
                    (Class::Arith(_), Class::Exact) => {
                        sink(vector, &mut marks);
                        Class::Exact
                    }
                    (Class::Free, Class::Exact) => Class::Exact,
                    (Class::Arith(s), _) => Class::Arith(s),
                    (Class::Free, Class::Arith(_)) => Class::Arith(shape),
                    // As for a splat: a new f64 lane can hold an f32 NaN.
                    (Class::Free, Class::Free) if shape == Canon::F64x2 => Class::Exact,
                    (Class::Free, Class::Free) => Class::Free,
                };
                stack.push(produced(class));
            }
            (Kind::LocalGet(l), _) => {
                let class = match held[webs.of(i, l)] {
                    Held::Free => Class::Free,
                    Held::Arith(shape) => Class::Arith(shape),
                    Held::Exact => Class::Exact,
                };
                stack.push(produced(class));
            }
            (Kind::LocalSet(l) | Kind::LocalTee(l), _) => {
                let value = pop(&mut stack);
                let l = webs.of(i, l);
                let grown = match (held[l], value.class) {
                    (Held::Exact, _) | (_, Class::Free) => held[l],
                    (_, Class::Exact) => Held::Exact,
                    (Held::Free, Class::Arith(shape)) => Held::Arith(shape),
                    (Held::Arith(s), Class::Arith(t)) if s == t => held[l],
                    (Held::Arith(_), Class::Arith(_)) => Held::Exact,
                };
                if grown != held[l] {
                    held[l] = grown;
                    changed = true;
                }
                let stored = if held[l] == Held::Exact && matches!(value.class, Class::Arith(_)) {
                    sink(value, &mut marks);
                    Class::Exact
                } else {
                    value.class
                };
                if matches!(step.op, Operator::LocalTee { .. }) {
                    stack.push(produced(stored));
                }
            }
            (Kind::Select, _) => {
                pop(&mut stack);
                let b = pop(&mut stack);
                let a = pop(&mut stack);
                let class = join(a, b, &mut marks);
                stack.push(produced(class));
            }
            (_, Some((pops, pushes))) => {
                for _ in 0..pops {
                    sink(pop(&mut stack), &mut marks);
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
        // In unreachable code the validator knows no type for a value popped from the
        // polymorphic stack: such a value is never computed, so it needs no canonicalisation.
        let pushed = step.arity.is_some_and(|(_, pushes)| pushes > 0);
        if let Some(slot) = stack.last_mut().filter(|_| pushed)
            && matches!(slot.class, Class::Arith(shape) if !fits(step.top_after, shape))
        {
            slot.class = Class::Exact;
        }
    }
    (marks, changed)
}

fn kind(op: &Operator<'_>) -> Kind {
    use Canon::{F32, F32x4, F64, F64x2};
    use Operator as O;
    let same = |shape| Kind::Arith { input: shape, output: shape };
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
        | O::F32Nearest => same(F32),
        O::F32DemoteF64 => Kind::Arith { input: F64, output: F32 },
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
        | O::F64Nearest => same(F64),
        O::F64PromoteF32 => Kind::Arith { input: F32, output: F64 },
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
        | O::F32x4RelaxedMadd
        | O::F32x4RelaxedNmadd
        | O::F32x4RelaxedMin
        | O::F32x4RelaxedMax => same(F32x4),
        O::F32x4DemoteF64x2Zero => Kind::Arith { input: F64x2, output: F32x4 },
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
        | O::F64x2RelaxedMadd
        | O::F64x2RelaxedNmadd
        | O::F64x2RelaxedMin
        | O::F64x2RelaxedMax => same(F64x2),
        O::F64x2PromoteLowF32x4 => Kind::Arith { input: F32x4, output: F64x2 },
        O::F32Eq
        | O::F32Ne
        | O::F32Lt
        | O::F32Gt
        | O::F32Le
        | O::F32Ge
        | O::I32TruncF32S
        | O::I32TruncF32U
        | O::I64TruncF32S
        | O::I64TruncF32U
        | O::I32TruncSatF32S
        | O::I32TruncSatF32U
        | O::I64TruncSatF32S
        | O::I64TruncSatF32U => Kind::Blind(F32),
        O::F64Eq
        | O::F64Ne
        | O::F64Lt
        | O::F64Gt
        | O::F64Le
        | O::F64Ge
        | O::I32TruncF64S
        | O::I32TruncF64U
        | O::I64TruncF64S
        | O::I64TruncF64U
        | O::I32TruncSatF64S
        | O::I32TruncSatF64U
        | O::I64TruncSatF64S
        | O::I64TruncSatF64U => Kind::Blind(F64),
        O::F32x4Eq
        | O::F32x4Ne
        | O::F32x4Lt
        | O::F32x4Gt
        | O::F32x4Le
        | O::F32x4Ge
        | O::I32x4TruncSatF32x4S
        | O::I32x4TruncSatF32x4U
        | O::I32x4RelaxedTruncF32x4S
        | O::I32x4RelaxedTruncF32x4U => Kind::Blind(F32x4),
        O::F64x2Eq
        | O::F64x2Ne
        | O::F64x2Lt
        | O::F64x2Gt
        | O::F64x2Le
        | O::F64x2Ge
        | O::I32x4TruncSatF64x2SZero
        | O::I32x4TruncSatF64x2UZero
        | O::I32x4RelaxedTruncF64x2SZero
        | O::I32x4RelaxedTruncF64x2UZero => Kind::Blind(F64x2),
        O::Drop => Kind::Drop,
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
        O::V128Const { value } => Kind::Const { nan: has_nan_lane(value.i128()) },
        O::F32x4ExtractLane { .. } => Kind::ExtractLane { vector: F32x4, scalar: F32 },
        O::F64x2ExtractLane { .. } => Kind::ExtractLane { vector: F64x2, scalar: F64 },
        O::F32x4Splat => Kind::Splat(F32x4),
        O::F64x2Splat => Kind::Splat(F64x2),
        O::F32x4ReplaceLane { .. } => Kind::ReplaceLane(F32x4),
        O::F64x2ReplaceLane { .. } => Kind::ReplaceLane(F64x2),
        O::LocalGet { local_index } => Kind::LocalGet(*local_index),
        O::LocalSet { local_index } => Kind::LocalSet(*local_index),
        O::LocalTee { local_index } => Kind::LocalTee(*local_index),
        O::Select | O::TypedSelect { .. } => Kind::Select,
        _ => Kind::Sink,
    }
}

/// Whether a vector constant holds a NaN in some lane, read as f32x4 or as f64x2.
fn has_nan_lane(value: i128) -> bool {
    let bits = value as u128;
    let f32_nan = (0..4).any(|lane| f32::from_bits((bits >> (32 * lane)) as u32).is_nan());
    let f64_nan = (0..2).any(|lane| f64::from_bits((bits >> (64 * lane)) as u64).is_nan());
    f32_nan || f64_nan
}
