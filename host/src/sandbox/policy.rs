//! The import policy: which imports a component may have, decided before anything runs.
//!
//! Granted: `cue:job/host@0.1.x` and the WASI 0.2.x interfaces (linked closed or
//! virtualised, see `caps/`). Everything else is refused, naming the import.

use serde::Serialize;

/// What the policy says about one import.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImportVerdict {
    /// The import's full name, e.g. `wasi:cli/stdout@0.2.6`.
    pub name: String,
    /// Whether the host grants it.
    pub granted: bool,
    /// How it is granted (what the job actually gets), or why it is refused.
    pub detail: String,
}

/// WASI 0.2 interfaces the host links, and what a job gets from each.
const WASI_GRANTS: &[(&str, &str)] = &[
    ("wasi:cli/environment", "closed: no variables, no arguments"),
    ("wasi:cli/exit", "exit ends the job"),
    ("wasi:cli/stdin", "closed: empty"),
    ("wasi:cli/stdout", "virtualised: into the bounded job log"),
    ("wasi:cli/stderr", "virtualised: into the bounded job log"),
    ("wasi:cli/terminal-input", "closed: not a terminal"),
    ("wasi:cli/terminal-output", "closed: not a terminal"),
    ("wasi:cli/terminal-stdin", "closed: not a terminal"),
    ("wasi:cli/terminal-stdout", "closed: not a terminal"),
    ("wasi:cli/terminal-stderr", "closed: not a terminal"),
    ("wasi:clocks/monotonic-clock", "virtualised: the job's own time; waits take no real time"),
    ("wasi:clocks/wall-clock", "virtualised: the job's own time, from 2025-01-01"),
    ("wasi:filesystem/types", "closed: no directories"),
    ("wasi:filesystem/preopens", "closed: no directories"),
    ("wasi:io/error", "granted"),
    ("wasi:io/poll", "virtualised: never waits in real time"),
    ("wasi:io/streams", "granted"),
    ("wasi:random/random", "virtualised: seeded from the job"),
    ("wasi:random/insecure", "virtualised: seeded from the job"),
    ("wasi:random/insecure-seed", "virtualised: seeded from the job"),
    ("wasi:sockets/network", "closed: every address denied"),
    ("wasi:sockets/instance-network", "closed: every address denied"),
    ("wasi:sockets/tcp", "closed: every address denied"),
    ("wasi:sockets/tcp-create-socket", "closed: every address denied"),
    ("wasi:sockets/udp", "closed: every address denied"),
    ("wasi:sockets/udp-create-socket", "closed: every address denied"),
    ("wasi:sockets/ip-name-lookup", "closed: lookups denied"),
];

/// What kind of item an import is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportKind {
    /// An instance: an interface such as `wasi:cli/stdout@0.2.6`.
    Interface,
    /// A type defined as equal to a concrete type (e.g. a record a world declares): data,
    /// not a capability.
    TypeDefinition,
    /// Anything else (a bare function, a resource, a module, a component).
    Other,
}

/// Judges one import by its name and kind.
pub fn judge_import(name: &str, kind: ImportKind) -> ImportVerdict {
    let (interface, version) = match name.split_once('@') {
        Some((interface, version)) => (interface, Some(version)),
        None => (name, None),
    };
    let verdict = |granted: bool, detail: &str| ImportVerdict {
        name: name.to_string(),
        granted,
        detail: detail.to_string(),
    };
    match kind {
        ImportKind::TypeDefinition => return verdict(true, "granted: a type definition, not a capability"),
        ImportKind::Other => {
            return verdict(false, "refused: only interfaces and type definitions may be imported");
        }
        ImportKind::Interface => {}
    }
    let minor_is =
        |prefix: &str| version.is_some_and(|v| v == prefix || v.starts_with(&format!("{prefix}.")));
    if interface == "cue:job/host" {
        return if minor_is("0.1") {
            verdict(true, "granted: log, progress, deterministic random")
        } else {
            verdict(false, "refused: this host implements cue:job/host@0.1.x")
        };
    }
    if let Some((_, detail)) = WASI_GRANTS.iter().find(|(known, _)| *known == interface) {
        return if minor_is("0.2") {
            verdict(true, detail)
        } else {
            verdict(false, "refused: this host implements WASI 0.2.x")
        };
    }
    verdict(false, "refused: not a capability this host grants")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_cue_job_and_wasi_02_and_refuses_the_rest() {
        let interface = |name| judge_import(name, ImportKind::Interface).granted;
        assert!(interface("cue:job/host@0.1.0"));
        assert!(interface("cue:job/host@0.1.7"));
        assert!(!interface("cue:job/host@0.2.0"));
        assert!(interface("wasi:cli/stdout@0.2.6"));
        assert!(!interface("wasi:cli/stdout@0.3.0"));
        assert!(!interface("wasi:http/outgoing-handler@0.2.0"));
        assert!(!interface("cue:examples/exfiltrate@0.1.0"));
        assert!(judge_import("word-count", ImportKind::TypeDefinition).granted);
        assert!(!judge_import("send", ImportKind::Other).granted);
    }
}
