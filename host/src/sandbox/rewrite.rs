//! Walking a component to its core modules, and a core module to its function bodies, for the
//! passes that rewrite guest code before it is compiled ([`super::unroll`], [`super::floats`]):
//! every section is copied as it is, except the code sections, whose bodies go through the
//! pass's [`BodyRewriter`].

use std::ops::Range;

use wasm_encoder::{CodeSection, ComponentSectionId, RawSection};
use wasmparser::{
    Chunk, FuncValidator, FuncValidatorAllocations, FunctionBody, Parser, Payload, ValidPayload, Validator,
    ValidatorResources, WasmFeatures,
};

/// Why a module could not go through a pass: it is not valid WebAssembly, or uses something
/// the pass does not rewrite.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RewriteError {
    /// The binary does not parse or validate.
    #[error("invalid WebAssembly: {0}")]
    Invalid(#[from] wasmparser::BinaryReaderError),
    /// The binary ends in the middle of a section or a code section.
    #[error("the binary ends early")]
    Truncated,
    /// A core module that contains a module (not valid WebAssembly).
    #[error("a core module cannot contain a module or component")]
    NestedInModule,
}

/// A pass over one function body: given the module's bytes, a validator for the function (its
/// locals not yet defined) and the body, returns the body's new encoding (locals and code).
pub(crate) type BodyRewriter<'a> = dyn Fn(&[u8], &mut FuncValidator<ValidatorResources>, &FunctionBody<'_>) -> Result<Vec<u8>, RewriteError>
    + 'a;

/// Rewrites every core module of `component`, nested components included.
pub(crate) fn rewrite_component(component: &[u8], pass: &BodyRewriter<'_>) -> Result<Vec<u8>, RewriteError> {
    let mut out = wasm_encoder::Component::new();
    let mut parser = Parser::new(0);
    let mut offset = 0;
    loop {
        let (payload, consumed) = match parser.parse(&component[offset..], true)? {
            Chunk::Parsed { payload, consumed } => (payload, consumed),
            Chunk::NeedMoreData(_) => return Err(RewriteError::Truncated),
        };
        offset += consumed;
        match payload {
            Payload::Version { .. } => {}
            Payload::ModuleSection { unchecked_range, .. } => {
                let module = rewrite_module(&component[unchecked_range.clone()], pass)?;
                out.section(&RawSection { id: ComponentSectionId::CoreModule as u8, data: &module });
                offset = unchecked_range.end;
            }
            Payload::ComponentSection { unchecked_range, .. } => {
                let nested = rewrite_component(&component[unchecked_range.clone()], pass)?;
                out.section(&RawSection { id: ComponentSectionId::Component as u8, data: &nested });
                offset = unchecked_range.end;
            }
            Payload::End(_) => return Ok(out.finish()),
            other => {
                if let Some((id, range)) = other.as_section() {
                    out.section(&RawSection { id, data: &component[range] });
                }
            }
        }
    }
}

/// Rewrites one core module: validates it (a pass may need every operator's types) and
/// rewrites each function body.
pub(crate) fn rewrite_module(module: &[u8], pass: &BodyRewriter<'_>) -> Result<Vec<u8>, RewriteError> {
    let mut validator = Validator::new_with_features(WasmFeatures::all());
    let mut out = wasm_encoder::Module::new();
    let mut code: Option<(CodeSection, u32)> = None;
    let mut allocations = FuncValidatorAllocations::default();
    for payload in Parser::new(0).parse_all(module) {
        let payload = payload?;
        match validator.payload(&payload)? {
            ValidPayload::Func(to_validate, body) => {
                let mut func = to_validate.into_validator(std::mem::take(&mut allocations));
                let rewritten = pass(module, &mut func, &body)?;
                allocations = func.into_allocations();
                let (section, remaining) = code.as_mut().ok_or(RewriteError::Truncated)?;
                section.raw(&rewritten);
                *remaining -= 1;
                if *remaining == 0 {
                    out.section(&code.take().expect("the code section is open").0);
                }
            }
            ValidPayload::Parser(_) => return Err(RewriteError::NestedInModule),
            ValidPayload::Ok | ValidPayload::End(_) => {}
        }
        match &payload {
            Payload::CodeSectionStart { count: 0, range, .. } => copy(&mut out, module, 10, range.clone()),
            Payload::CodeSectionStart { count, .. } => code = Some((CodeSection::new(), *count)),
            Payload::CodeSectionEntry(_) | Payload::End(_) | Payload::Version { .. } => {}
            other => {
                if let Some((id, range)) = other.as_section() {
                    copy(&mut out, module, id, range);
                }
            }
        }
    }
    Ok(out.finish())
}

fn copy(out: &mut wasm_encoder::Module, module: &[u8], id: u8, range: Range<usize>) {
    out.section(&RawSection { id, data: &module[range] });
}
