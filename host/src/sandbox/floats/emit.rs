//! Writing a rewritten function body: the guest's own operators copied byte for byte, the
//! canonicalisation sequences the analysis asks for, and the fuel filler that keeps the
//! guest's fuel exactly what it was (see [`super::operator_cost`]).

use wasm_encoder::{Encode, Ieee32, Ieee64, InstructionSink, ValType};
use wasmparser::Operator;

/// The canonical NaNs: positive, quiet, payload zero (what the engine-wide setting writes).
pub(super) const CANONICAL_F32: u32 = 0x7fc0_0000;
pub(super) const CANONICAL_F64: u64 = 0x7ff8_0000_0000_0000;

/// How to canonicalise the value on top of the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Canon {
    F32,
    F64,
    /// Each of four f32 lanes of a v128.
    F32x4,
    /// Each of two f64 lanes of a v128.
    F64x2,
}

/// Whether the pass's sequences use this operator kind: such operators cost no fuel on the
/// sandbox's engine, and each one the guest wrote is followed by a 1-fuel filler.
pub(super) fn is_pass_operator(op: &Operator<'_>) -> bool {
    use Operator as O;
    matches!(
        op,
        O::LocalGet { .. }
            | O::LocalTee { .. }
            | O::F32Const { .. }
            | O::F64Const { .. }
            | O::V128Const { .. }
            | O::F32Ge
            | O::F64Ge
            | O::F32x4Eq
            | O::F64x2Eq
            | O::TypedSelect { .. }
            | O::V128Bitselect
    )
}

/// Builds one function body.
pub(super) struct Emitter {
    body: Vec<u8>,
    /// The scratch locals the sequences use, appended after the function's own locals.
    scratch_f32: Option<u32>,
    scratch_f64: Option<u32>,
    scratch_v128: Option<u32>,
}

impl Emitter {
    /// An emitter for a function with `locals` locals (parameters included) that will emit
    /// the canonicalisations in `canon`.
    pub(super) fn new(locals: u32, canon: &[Option<Canon>]) -> Self {
        let uses = |wanted: &[Canon]| canon.iter().flatten().any(|c| wanted.contains(c));
        let mut next = locals;
        let mut take = |needed: bool| {
            needed.then(|| {
                next += 1;
                next - 1
            })
        };
        let scratch_f32 = take(uses(&[Canon::F32]));
        let scratch_f64 = take(uses(&[Canon::F64]));
        let scratch_v128 = take(uses(&[Canon::F32x4, Canon::F64x2]));
        Emitter { body: Vec::new(), scratch_f32, scratch_f64, scratch_v128 }
    }

    /// Writes the local declarations: the function's `groups` groups (their raw bytes), then
    /// one group per scratch local.
    pub(super) fn locals(&mut self, groups: u32, raw_groups: &[u8]) {
        let scratch = [
            (self.scratch_f32, ValType::F32),
            (self.scratch_f64, ValType::F64),
            (self.scratch_v128, ValType::V128),
        ];
        let extra: Vec<ValType> = scratch.iter().filter(|(i, _)| i.is_some()).map(|(_, t)| *t).collect();
        (groups + extra.len() as u32).encode(&mut self.body);
        self.body.extend_from_slice(raw_groups);
        for ty in extra {
            1u32.encode(&mut self.body);
            ty.encode(&mut self.body);
        }
    }

    /// Copies one of the guest's operators, with the fuel filler if the pass uses its kind.
    pub(super) fn guest_op(&mut self, op: &Operator<'_>, raw: &[u8]) {
        self.body.extend_from_slice(raw);
        if is_pass_operator(op) {
            InstructionSink::new(&mut self.body).i32_const(0).drop();
        }
    }

    /// Replaces the value on top of the stack by the canonical NaN if it is a NaN (each lane,
    /// for vectors). Scalars: `x >= -inf ? x : NaN` (true for every number, false for NaN
    /// only: one flag on x86, where `x == x` needs two and compiled to two taken branches);
    /// vectors: `x == x ? x : NaN`, lane by lane.
    pub(super) fn canonicalise(&mut self, canon: Canon) {
        let scratch = match canon {
            Canon::F32 => self.scratch_f32,
            Canon::F64 => self.scratch_f64,
            Canon::F32x4 | Canon::F64x2 => self.scratch_v128,
        }
        .expect("a scratch local is allocated for every kind of canonicalisation emitted");
        let mut sink = InstructionSink::new(&mut self.body);
        sink.local_tee(scratch);
        match canon {
            Canon::F32 => sink
                .f32_const(Ieee32::new(CANONICAL_F32))
                .local_get(scratch)
                .f32_const(Ieee32::new(f32::NEG_INFINITY.to_bits()))
                .f32_ge()
                .typed_select(ValType::F32),
            Canon::F64 => sink
                .f64_const(Ieee64::new(CANONICAL_F64))
                .local_get(scratch)
                .f64_const(Ieee64::new(f64::NEG_INFINITY.to_bits()))
                .f64_ge()
                .typed_select(ValType::F64),
            Canon::F32x4 => sink
                .v128_const(i128::from_le_bytes(splat(&CANONICAL_F32.to_le_bytes())))
                .local_get(scratch)
                .local_get(scratch)
                .f32x4_eq()
                .v128_bitselect(),
            Canon::F64x2 => sink
                .v128_const(i128::from_le_bytes(splat(&CANONICAL_F64.to_le_bytes())))
                .local_get(scratch)
                .local_get(scratch)
                .f64x2_eq()
                .v128_bitselect(),
        };
    }

    /// The body's encoding, ready for [`wasm_encoder::CodeSection::raw`].
    pub(super) fn finish(self) -> Vec<u8> {
        self.body
    }
}

/// 16 bytes of `lane` repeated.
fn splat(lane: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = lane[i % lane.len()];
    }
    out
}
