//! `inspect`: what a component is, without compiling or running it.

use serde::Serialize;

use super::error::{FailureKind, JobError};
use super::policy::{ImportVerdict, judge_import};
use super::verify::{component_imports, sha256_hex};

/// A component's identity, interface and the policy's verdict on its imports.
#[derive(Clone, Debug, Serialize)]
pub struct ComponentReport {
    /// Lowercase hex sha256 of the bytes.
    pub sha256: String,
    /// Size in bytes.
    pub size: usize,
    /// The component's world in WIT, followed by the packages it imports from, with full
    /// types and doc comments.
    pub wit: String,
    /// The policy's verdict on each top-level import.
    pub imports: Vec<ImportVerdict>,
    /// Whether every import is granted (the component would be allowed to run).
    pub runnable: bool,
}

/// Reads `bytes` into a [`ComponentReport`]. Fails only if the bytes are not a component.
pub fn inspect(bytes: &[u8]) -> Result<ComponentReport, JobError> {
    let imports: Vec<ImportVerdict> =
        component_imports(bytes)?.iter().map(|(name, kind)| judge_import(name, *kind)).collect();
    let wit = print_wit(bytes)?;
    Ok(ComponentReport {
        sha256: sha256_hex(bytes),
        size: bytes.len(),
        runnable: imports.iter().all(|v| v.granted),
        imports,
        wit,
    })
}

fn print_wit(bytes: &[u8]) -> Result<String, JobError> {
    let invalid = |e: anyhow::Error| JobError::new(FailureKind::InvalidComponent, format!("{e:#}"));
    let decoded = wit_component::decode(bytes).map_err(invalid)?;
    let resolve = decoded.resolve();
    let root = decoded.package();
    let nested: Vec<_> = resolve.packages.iter().map(|(id, _)| id).filter(|id| *id != root).collect();
    let mut printer = wit_component::WitPrinter::default();
    printer.print(resolve, root, &nested).map_err(invalid)?;
    Ok(printer.output.to_string())
}
