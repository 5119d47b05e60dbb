//! Amortising the metering checks: each innermost loop of a few operators is unrolled into
//! as many copies of its body as it takes to hold [`TARGET_OPERATORS`] (at most
//! [`MAX_COPIES`]), so that the fuel and epoch checks wasmtime places at every
//! loop header run once per so many iterations instead of once per iteration. On a loop of
//! five instructions those checks (and the registers they hold) cost as much as the loop
//! itself (docs/PERFORMANCE.md, "CPU-bound guests"; the argument is in docs/sandbox.md,
//! "Metering").
//!
//! Every iteration executes the same operators as before, and pays the same fuel: the copies
//! are joined by `block` and `end` (no fuel), by the comparison the guest wrote turned into its
//! complement (1 fuel, as before), by `i32.eqz` (which the sandbox's engine charges nothing,
//! [`UNROLL_OPERATORS`]: each one the guest wrote is followed by the 1-fuel filler) or by the
//! filler `i32.const 0; drop` (1 fuel, for the `br 0` it replaces). What moves is only where a job that runs out of fuel is stopped: the check that
//! notices comes up to that many iterations later, as it always comes some operators after
//! the limit is crossed.
//!
//! Three shapes of loop are unrolled (`B` is the loop's body before its last branch):
//! - `loop B br 0 end` (the exits are inside `B`): `loop B filler B filler … B br 0 end`.
//! - `loop B br_if 0 T end`, `T` ending in an unconditional branch: each copy but the last is
//!   `block B br_if 0 T end` (a taken `br_if` goes on to the next copy, a failing one runs `T`).
//! - `loop B br_if 0 end`: the loop goes inside a `block`, and each copy but the last ends
//!   `not(c) br_if 1` (leave the loop), where the condition `c` is negated by turning the
//!   integer comparison that computed it into its complement, or by an `i32.eqz`.
//!
//! Anything else (loops with parameters or results, nested loops, loops that call, exception
//! handling and other branches this module does not renumber) is copied as it is. A loop that
//! calls pays for the call more than for the checks (the callee checks fuel and epochs on
//! entry too), so its copies would cost compile time for little: measured, leaving such loops
//! alone halves the code the unrolling adds to the JavaScript runtime and moves no kernel
//! (docs/PERFORMANCE.md).

use std::cell::Cell;
use std::ops::Range;

use wasm_encoder::{BlockType, InstructionSink};
use wasmparser::{BinaryReader, FuncValidator, FunctionBody, Operator, ValidatorResources, WasmFeatures};
use wasmtime::OperatorCost;

use super::rewrite::{self, RewriteError};

/// The pass's version: part of the engine fingerprint and of the compiled-code cache key.
/// Bump it with any change to its output.
pub const UNROLL_VERSION: u32 = 2;

/// The operator kinds the copies are joined with that the sandbox's engine charges nothing
/// ([`free_operators`]); each one the guest wrote is followed by a 1-fuel filler.
pub const UNROLL_OPERATORS: &str = "i32.eqz";

/// Makes [`UNROLL_OPERATORS`] free in `cost`.
pub(crate) fn free_operators(cost: &mut OperatorCost) {
    cost.I32Eqz = 0;
}

/// The most copies of a loop's body an unrolled loop holds.
pub const MAX_COPIES: usize = 4;

/// How many operators an unrolled loop's copies aim to hold together: a loop gets as many
/// copies as it takes to reach this (at most [`MAX_COPIES`]), so that the checks are a small
/// part of what runs between two of them; a loop of this many operators or more is left as
/// it is.
pub const TARGET_OPERATORS: usize = 160;

/// The most the code may grow, as a share of the component's (or module's) size: loops are
/// unrolled, in order, only while the copies added so far fit (so a hostile module of nothing
/// but tiny loops grows at most twofold, not eightfold), and no body grows past the largest
/// WebAssembly validators take.
pub const MAX_GROWTH_PERCENT: usize = 100;

/// The largest function body wasmparser (and so wasmtime) accepts, in bytes.
const MAX_BODY_BYTES: usize = 7_654_321;

/// Its description in the engine fingerprint.
pub fn name() -> String {
    format!(
        "v{UNROLL_VERSION}: innermost loops without calls of fewer than {TARGET_OPERATORS} operators, copies to reach {TARGET_OPERATORS} (at most {MAX_COPIES}), the code grows at most {MAX_GROWTH_PERCENT} %"
    )
}

/// How many copies a loop whose body holds `operators` operators gets (below 2: none).
pub fn copies(operators: usize) -> usize {
    TARGET_OPERATORS.div_ceil(operators.max(1)).min(MAX_COPIES)
}

/// Unrolls the small innermost loops of every core module of a component.
pub fn unroll_component(component: &[u8]) -> Result<Vec<u8>, RewriteError> {
    let budget = growth_budget(component);
    rewrite::rewrite_component(component, &|module, validator, body| {
        rewrite_body(module, validator, body, &budget)
    })
}

/// Unrolls the small innermost loops of one core module.
pub fn unroll_module(module: &[u8]) -> Result<Vec<u8>, RewriteError> {
    let budget = growth_budget(module);
    rewrite::rewrite_module(module, &|module, validator, body| rewrite_body(module, validator, body, &budget))
}

/// How many bytes the copies may add to `binary`'s code, altogether.
fn growth_budget(binary: &[u8]) -> Cell<usize> {
    Cell::new(binary.len() * MAX_GROWTH_PERCENT / 100)
}

/// One operator of the body and its bytes in the module.
struct Op<'a> {
    op: Operator<'a>,
    bytes: Range<usize>,
}

/// How a loop is unrolled (see the module docs).
enum Shape {
    /// `loop B br 0 end`.
    Back,
    /// `loop B br_if 0 T end`, `T` ending in an unconditional branch; the `br_if` is at this index.
    Tail { br_if: usize },
    /// `loop B br_if 0 end`; the operator that computed the condition is at this index.
    Negate { compare: usize },
}

/// Unrolls the loops of one body while `budget` (bytes that may be added) lasts, then
/// validates the result (which also validates the guest's code: the pass keeps valid code
/// valid).
fn rewrite_body(
    module: &[u8],
    validator: &mut FuncValidator<ValidatorResources>,
    body: &FunctionBody<'_>,
    budget: &Cell<usize>,
) -> Result<Vec<u8>, RewriteError> {
    let mut reader = body.get_operators_reader()?;
    let code_start = reader.original_position();
    let mut ops: Vec<Op<'_>> = Vec::new();
    while !reader.eof() {
        let (op, start) = reader.read_with_offset()?;
        if let Some(last) = ops.last_mut() {
            last.bytes.end = start;
        }
        ops.push(Op { op, bytes: start..start });
    }
    let code_end = reader.original_position();
    if let Some(last) = ops.last_mut() {
        last.bytes.end = code_end;
    }

    let mut out = module[body.range().start..code_start].to_vec();
    let mut body_budget = MAX_BODY_BYTES.saturating_sub(body.range().len());
    let ends = matching_ends(&ops);
    let mut i = 0;
    while i < ops.len() {
        match ends[i].and_then(|end| shape(&ops, i, end).map(|shape| (end, shape))) {
            Some((end, shape)) => {
                let (before, written) = (out.len(), ops[i].bytes.start..ops[end].bytes.end);
                emit_unrolled(&mut out, module, &ops, i, end, shape);
                let added = (out.len() - before).saturating_sub(written.len());
                if added <= budget.get().min(body_budget) {
                    budget.set(budget.get() - added);
                    body_budget -= added;
                } else {
                    out.truncate(before);
                    ops[i..=end].iter().for_each(|op| guest_op(&mut out, module, op));
                }
                i = end + 1;
            }
            None => {
                guest_op(&mut out, module, &ops[i]);
                i += 1;
            }
        }
    }

    let reader = BinaryReader::new_features(&out, 0, WasmFeatures::all());
    validator.validate(&FunctionBody::new(reader))?;
    Ok(out)
}

/// For each `block`, `loop`, `if` and `try`, the index of its `end` (`None` for other
/// operators, and in a body whose ends do not balance, which validation then refuses).
fn matching_ends(ops: &[Op<'_>]) -> Vec<Option<usize>> {
    let mut ends = vec![None; ops.len()];
    let mut open = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        match op.op {
            Operator::Block { .. }
            | Operator::Loop { .. }
            | Operator::If { .. }
            | Operator::Try { .. }
            | Operator::TryTable { .. } => open.push(i),
            Operator::End | Operator::Delegate { .. } => {
                if let Some(start) = open.pop() {
                    ends[start] = Some(i);
                }
            }
            _ => {}
        }
    }
    ends
}

/// How the loop at `start` (its `end` at `end`) is unrolled, if it is.
fn shape(ops: &[Op<'_>], start: usize, end: usize) -> Option<Shape> {
    let Operator::Loop { blockty: wasmparser::BlockType::Empty } = ops[start].op else {
        return None;
    };
    let body = &ops[start + 1..end];
    if body.is_empty()
        || copies(body.len()) < 2
        || !body.iter().all(|op| renumberable(&op.op) && !calls(&op.op))
    {
        return None;
    }
    let levels = levels(body)?;
    let at_loop_level = |i: usize| levels[i - start - 1] == 0;
    let last = end - 1;
    if matches!(ops[last].op, Operator::Br { relative_depth: 0 }) && at_loop_level(last) {
        return Some(Shape::Back);
    }
    let br_if = (start + 1..end)
        .rev()
        .find(|&i| matches!(ops[i].op, Operator::BrIf { relative_depth: 0 }) && at_loop_level(i))?;
    if br_if == last {
        let compare = br_if - 1;
        return (compare > start && at_loop_level(compare)).then_some(Shape::Negate { compare });
    }
    (at_loop_level(last) && unconditional(&ops[last].op)).then_some(Shape::Tail { br_if })
}

/// Whether this module knows every label `op` refers to (`loop` is refused: only innermost
/// loops are unrolled).
fn renumberable(op: &Operator<'_>) -> bool {
    use Operator as O;
    !matches!(
        op,
        O::Loop { .. }
            | O::Try { .. }
            | O::TryTable { .. }
            | O::Catch { .. }
            | O::CatchAll
            | O::Delegate { .. }
            | O::Rethrow { .. }
            | O::BrOnNull { .. }
            | O::BrOnNonNull { .. }
            | O::BrOnCast { .. }
            | O::BrOnCastFail { .. }
            | O::BrOnCastDescEq { .. }
            | O::BrOnCastDescEqFail { .. }
            | O::Resume { .. }
            | O::ResumeThrow { .. }
            | O::ResumeThrowRef { .. }
    )
}

/// Whether `op` calls a function (a loop that does is left as it is: see the module docs).
fn calls(op: &Operator<'_>) -> bool {
    use Operator as O;
    matches!(
        op,
        O::Call { .. }
            | O::CallIndirect { .. }
            | O::CallRef { .. }
            | O::ReturnCall { .. }
            | O::ReturnCallIndirect { .. }
            | O::ReturnCallRef { .. }
    )
}

/// How many blocks and ifs of the loop's body are open at each of its operators (an `end` or
/// `else` counts as inside what it closes); `None` if they do not balance.
fn levels(body: &[Op<'_>]) -> Option<Vec<u32>> {
    let mut level = 0u32;
    let mut levels = Vec::with_capacity(body.len());
    for op in body {
        match op.op {
            Operator::Block { .. } | Operator::If { .. } => {
                levels.push(level);
                level += 1;
            }
            Operator::End => {
                level = level.checked_sub(1)?;
                levels.push(level + 1);
            }
            _ => levels.push(level),
        }
    }
    (level == 0).then_some(levels)
}

/// Whether control never falls through `op`.
fn unconditional(op: &Operator<'_>) -> bool {
    use Operator as O;
    matches!(
        op,
        O::Br { .. }
            | O::BrTable { .. }
            | O::Return
            | O::Unreachable
            | O::ReturnCall { .. }
            | O::ReturnCallIndirect { .. }
            | O::ReturnCallRef { .. }
            | O::Throw { .. }
            | O::ThrowRef
    )
}

/// How a copy computes the opposite of a loop's condition for the same fuel, given the
/// operator that computed the condition.
enum Negation {
    /// Write the complementary comparison instead (1 fuel, as the guest's).
    Compare(Complement),
    /// The guest's `i32.eqz` is left out: the value under it is the opposite (the filler that
    /// follows each guest `i32.eqz` stays, for its fuel).
    DropEqz,
    /// Keep the guest's operator and add an `i32.eqz` (no fuel).
    AddEqz,
}

fn negation(op: &Operator<'_>) -> Negation {
    use Complement as C;
    use Operator as O;
    Negation::Compare(match op {
        O::I32Eq => C::I32Ne,
        O::I32Ne => C::I32Eq,
        O::I32LtS => C::I32GeS,
        O::I32GeS => C::I32LtS,
        O::I32LtU => C::I32GeU,
        O::I32GeU => C::I32LtU,
        O::I32GtS => C::I32LeS,
        O::I32LeS => C::I32GtS,
        O::I32GtU => C::I32LeU,
        O::I32LeU => C::I32GtU,
        O::I64Eq => C::I64Ne,
        O::I64Ne => C::I64Eq,
        O::I64LtS => C::I64GeS,
        O::I64GeS => C::I64LtS,
        O::I64LtU => C::I64GeU,
        O::I64GeU => C::I64LtU,
        O::I64GtS => C::I64LeS,
        O::I64LeS => C::I64GtS,
        O::I64GtU => C::I64LeU,
        O::I64LeU => C::I64GtU,
        O::I32Eqz => return Negation::DropEqz,
        _ => return Negation::AddEqz,
    })
}

/// The comparisons [`negation`] writes.
#[derive(Clone, Copy)]
enum Complement {
    I32Eq,
    I32Ne,
    I32LtS,
    I32GeS,
    I32LtU,
    I32GeU,
    I32GtS,
    I32LeS,
    I32GtU,
    I32LeU,
    I64Eq,
    I64Ne,
    I64LtS,
    I64GeS,
    I64LtU,
    I64GeU,
    I64GtS,
    I64LeS,
    I64GtU,
    I64LeU,
}

impl Complement {
    fn emit(self, sink: &mut InstructionSink<'_>) {
        use Complement as C;
        match self {
            C::I32Eq => sink.i32_eq(),
            C::I32Ne => sink.i32_ne(),
            C::I32LtS => sink.i32_lt_s(),
            C::I32GeS => sink.i32_ge_s(),
            C::I32LtU => sink.i32_lt_u(),
            C::I32GeU => sink.i32_ge_u(),
            C::I32GtS => sink.i32_gt_s(),
            C::I32LeS => sink.i32_le_s(),
            C::I32GtU => sink.i32_gt_u(),
            C::I32LeU => sink.i32_le_u(),
            C::I64Eq => sink.i64_eq(),
            C::I64Ne => sink.i64_ne(),
            C::I64LtS => sink.i64_lt_s(),
            C::I64GeS => sink.i64_ge_s(),
            C::I64LtU => sink.i64_lt_u(),
            C::I64GeU => sink.i64_ge_u(),
            C::I64GtS => sink.i64_gt_s(),
            C::I64LeS => sink.i64_le_s(),
            C::I64GtU => sink.i64_gt_u(),
            C::I64LeU => sink.i64_le_u(),
        };
    }
}

/// Which labels a copy renumbers, and by how much (one block added around it or the loop).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Renumber {
    /// No block added.
    None,
    /// A block between the copy and the loop: the loop and every label outside it move.
    LoopAndOutside,
    /// A block around the loop: only the labels outside the loop move.
    Outside,
}

/// Writes the loop `ops[start..=end]` unrolled as `shape` says.
fn emit_unrolled(out: &mut Vec<u8>, module: &[u8], ops: &[Op<'_>], start: usize, end: usize, shape: Shape) {
    let raw = |out: &mut Vec<u8>, i: usize| out.extend_from_slice(&module[ops[i].bytes.clone()]);
    let whole_body = start + 1..end;
    let copies = copies(whole_body.len());
    match shape {
        Shape::Back => {
            raw(out, start);
            for _ in 1..copies {
                copy(out, module, ops, start + 1..end - 1, Renumber::None);
                InstructionSink::new(out).i32_const(0).drop();
            }
            copy(out, module, ops, whole_body, Renumber::None);
            raw(out, end);
        }
        Shape::Tail { br_if } => {
            raw(out, start);
            for _ in 1..copies {
                InstructionSink::new(out).block(BlockType::Empty);
                copy(out, module, ops, start + 1..br_if, Renumber::LoopAndOutside);
                InstructionSink::new(out).br_if(0);
                copy(out, module, ops, br_if + 1..end, Renumber::LoopAndOutside);
                InstructionSink::new(out).end();
            }
            copy(out, module, ops, whole_body, Renumber::None);
            raw(out, end);
        }
        Shape::Negate { compare } => {
            let negation = negation(&ops[compare].op);
            InstructionSink::new(out).block(BlockType::Empty);
            raw(out, start);
            for _ in 1..copies {
                copy(out, module, ops, start + 1..compare, Renumber::Outside);
                let mut sink = InstructionSink::new(out);
                match negation {
                    Negation::Compare(complement) => complement.emit(&mut sink),
                    Negation::DropEqz => {
                        sink.i32_const(0).drop();
                    }
                    Negation::AddEqz => {
                        guest_op(out, module, &ops[compare]);
                        InstructionSink::new(out).i32_eqz();
                    }
                }
                InstructionSink::new(out).br_if(1);
            }
            copy(out, module, ops, whole_body, Renumber::Outside);
            raw(out, end);
            InstructionSink::new(out).end();
        }
    }
}

/// Copies `ops[range]` (part of a loop's body, starting at its level), renumbering the
/// branches to the labels `renumber` moves.
fn copy(out: &mut Vec<u8>, module: &[u8], ops: &[Op<'_>], range: Range<usize>, renumber: Renumber) {
    let mut level = 0u32;
    for op in &ops[range] {
        // A branch at `level` with depth `d` targets a block inside the copy if d < level, the
        // loop if d == level, and a label outside the loop if d > level.
        let moved = |depth: u32| match renumber {
            Renumber::LoopAndOutside if depth >= level => depth + 1,
            Renumber::Outside if depth > level => depth + 1,
            _ => depth,
        };
        let mut sink = InstructionSink::new(out);
        match &op.op {
            Operator::Br { relative_depth } => {
                sink.br(moved(*relative_depth));
            }
            Operator::BrIf { relative_depth } => {
                sink.br_if(moved(*relative_depth));
            }
            Operator::BrTable { targets } => match targets.targets().collect::<Result<Vec<u32>, _>>() {
                Ok(labels) => {
                    sink.br_table(labels.into_iter().map(moved), moved(targets.default()));
                }
                // Unreadable: copied as it is, for validation to refuse.
                Err(_) => out.extend_from_slice(&module[op.bytes.clone()]),
            },
            _ => guest_op(out, module, op),
        }
        match &op.op {
            Operator::Block { .. } | Operator::If { .. } => level += 1,
            Operator::End => level = level.saturating_sub(1),
            _ => {}
        }
    }
}

/// Copies one of the guest's operators, with the fuel filler if it is one of
/// [`UNROLL_OPERATORS`].
fn guest_op(out: &mut Vec<u8>, module: &[u8], op: &Op<'_>) {
    out.extend_from_slice(&module[op.bytes.clone()]);
    if matches!(op.op, Operator::I32Eqz) {
        InstructionSink::new(out).i32_const(0).drop();
    }
}

#[cfg(test)]
mod tests;
