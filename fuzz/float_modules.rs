//! Float-heavy core modules from arbitrary bytes, with `wasm-smith`: shared by the `floats`
//! fuzz target and the corpus test (`tests/all/floats.rs`, which includes this file), so both
//! generate the same kind of module.

use arbitrary::Unstructured;

/// A valid module made from `data` (wasm-smith reads it as its choices), or `None` when the
/// bytes run out before it is made.
pub fn float_module(data: &[u8]) -> Option<Vec<u8>> {
    let config = wasm_smith::Config {
        max_imports: 4,
        min_funcs: 1,
        max_funcs: 8,
        max_instructions: 200,
        export_everything: true,
        canonicalize_nans: false,
        allow_start_export: true,
        max_memories: 1,
        max_memory32_bytes: 1 << 20,
        memory64_enabled: false,
        simd_enabled: true,
        relaxed_simd_enabled: true,
        multi_value_enabled: true,
        // externref needs wasmtime's GC, which the host does not build (nor does it run such jobs).
        reference_types_enabled: false,
        bulk_memory_enabled: true,
        saturating_float_to_int_enabled: true,
        sign_extension_ops_enabled: true,
        tail_call_enabled: true,
        extended_const_enabled: true,
        threads_enabled: false,
        shared_everything_threads_enabled: false,
        gc_enabled: false,
        exceptions_enabled: false,
        custom_page_sizes_enabled: false,
        custom_descriptors_enabled: false,
        wide_arithmetic_enabled: false,
        ..wasm_smith::Config::default()
    };
    let module = wasm_smith::Module::new(config, &mut Unstructured::new(data)).ok()?;
    Some(module.to_bytes())
}

/// What the names of wasmparser's float arithmetic operators contain.
const ARITHMETIC: [&str; 14] = [
    "Add", "Sub", "Mul", "Div", "Sqrt", "Min", "Max", "Ceil", "Floor", "Trunc", "Nearest", "Promote",
    "Demote", "Madd",
];

/// How many float arithmetic operators (scalar and vector) a module's code holds.
pub fn float_arithmetic(module: &[u8]) -> usize {
    let mut count = 0;
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        let Ok(wasmparser::Payload::CodeSectionEntry(body)) = payload else { continue };
        let Ok(mut reader) = body.get_operators_reader() else { continue };
        while let Ok(op) = reader.read() {
            let name = format!("{op:?}");
            let float = name.starts_with("F32") || name.starts_with("F64");
            let arithmetic = ARITHMETIC.iter().any(|a| name.contains(a));
            count += usize::from(float && arithmetic);
        }
    }
    count
}
