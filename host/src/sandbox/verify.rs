//! Verification before anything runs: the bytes are a component, we know their sha256, and
//! every import passes the policy. This reads the binary without compiling it, so a refused
//! component costs no compile time.

use sha2::{Digest, Sha256};
use wasmparser::{ComponentTypeRef, Encoding, Parser, Payload, TypeBounds};

use super::policy::ImportKind;

use super::error::{FailureKind, JobError};
use super::policy::{ImportVerdict, judge_import};

/// A component that passed verification.
#[derive(Clone, Debug)]
pub struct VerifiedComponent {
    /// Lowercase hex sha256 of the component's bytes: its identity everywhere in Cue.
    pub sha256: String,
    /// Size in bytes.
    pub size: usize,
    /// The policy's verdict on each top-level import (all granted, or it would not verify).
    pub imports: Vec<ImportVerdict>,
}

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Reads the top-level imports of a component: name and what kind of item each is.
pub fn component_imports(bytes: &[u8]) -> Result<Vec<(String, ImportKind)>, JobError> {
    let invalid = |message: String| JobError::new(FailureKind::InvalidComponent, message);
    if !bytes.starts_with(b"\0asm") {
        return Err(invalid("not a WebAssembly binary (no `\\0asm` header)".into()));
    }
    let mut imports = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| invalid(format!("malformed component: {e}")))?;
        match payload {
            Payload::Version { encoding: Encoding::Module, .. } if depth == 0 => {
                return Err(invalid(
                    "this is a core WebAssembly module, not a component; build for \
                     wasm32-wasip2 or wrap it with `wasm-tools component new`"
                        .into(),
                ));
            }
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(|e| invalid(format!("malformed import: {e}")))?;
                    let kind = match import.ty {
                        ComponentTypeRef::Type(TypeBounds::Eq(_)) => ImportKind::TypeDefinition,
                        ComponentTypeRef::Instance(_) => ImportKind::Interface,
                        _ => ImportKind::Other,
                    };
                    imports.push((import.name.name.to_string(), kind));
                }
            }
            _ => {}
        }
    }
    Ok(imports)
}

/// Verifies `bytes`; a refused import fails with `forbidden-import`, naming every one.
pub fn verify(bytes: &[u8]) -> Result<VerifiedComponent, JobError> {
    let imports: Vec<ImportVerdict> =
        component_imports(bytes)?.iter().map(|(name, kind)| judge_import(name, *kind)).collect();
    let refused: Vec<String> = imports
        .iter()
        .filter(|verdict| !verdict.granted)
        .map(|verdict| format!("`{}` ({})", verdict.name, verdict.detail))
        .collect();
    if !refused.is_empty() {
        return Err(JobError::new(
            FailureKind::ForbiddenImport,
            format!("the component imports what this host does not grant: {}", refused.join(", ")),
        ));
    }
    Ok(VerifiedComponent { sha256: sha256_hex(bytes), size: bytes.len(), imports })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_core_modules_are_invalid_components() {
        assert_eq!(verify(b"hello").unwrap_err().kind, FailureKind::InvalidComponent);
        let core = wat::parse_str("(module)").unwrap();
        let err = verify(&core).unwrap_err();
        assert_eq!(err.kind, FailureKind::InvalidComponent);
        assert!(err.message.contains("core WebAssembly module"), "{}", err.message);
        let mut truncated = wat::parse_str("(component (core module))").unwrap();
        truncated.truncate(truncated.len() - 3);
        assert_eq!(verify(&truncated).unwrap_err().kind, FailureKind::InvalidComponent);
    }

    #[test]
    fn a_forbidden_import_is_named() {
        let bytes = wat::parse_str(
            r#"(component (import "evil:net/exfil@1.0.0" (instance)) (import "wasi:cli/stdout@0.2.0" (instance)))"#,
        )
        .unwrap();
        let err = verify(&bytes).unwrap_err();
        assert_eq!(err.kind, FailureKind::ForbiddenImport);
        assert!(err.message.contains("evil:net/exfil@1.0.0"), "{}", err.message);
        assert!(!err.message.contains("wasi:cli/stdout"), "{}", err.message);
    }
}
