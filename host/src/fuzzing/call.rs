//! Fuzz target `call`: calls as text — WAVE as a provider type-checks a peer's call, WAVE or
//! JSON as `cue run` reads one — and results as text, as a consumer type-checks a provider's,
//! against real components.

use super::Verdict;
use crate::local::parse_call;
use crate::sandbox::{Call, JobError, LoadedComponent, Sandbox, SandboxConfig, SandboxError};

/// A component to check calls against, and calls of it whose result types reported outputs
/// are checked against.
pub struct CallSample<'a> {
    /// The component's name, for errors.
    pub name: &'a str,
    /// Its bytes.
    pub bytes: &'a [u8],
    /// Valid calls of it, in WAVE.
    pub calls: &'a [&'a str],
}

/// The example components (`cargo xtask guests` builds them into `target/guests/`) the `call`
/// target checks against, by file stem, with valid calls of each: between them they take and
/// return every kind of WIT type (`roundtrip` alone nearly all).
pub const SAMPLE_CALLS: [(&str, &[&str]); 4] = [
    ("fib", &["fib(30)"]),
    ("wordcount", &[r#"count-words("a b a")"#]),
    (
        "roundtrip",
        &[EVERYTHING, "echo-shape(empty)", r#"parse("1 2")"#, r#"swap(("a", 1))"#, "echo-option(none)"],
    ),
    ("wit-first", &["summarize([1.0, 2.5])"]),
];

/// A call of `roundtrip`'s `echo-everything`: every kind of WIT type in one record.
pub(super) const EVERYTHING: &str = r#"echo-everything({flag: true, color: blue, shape: square({x: -1, y: 2}), tags: ["a", "\u{1f600}"], nested: some([(7, none), (8, some({x: 0, y: 0}))]), outcome: err("no")})"#;

/// Why the components could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallsError {
    /// The sandbox could not be set up.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// A component did not load, or a sample call did not type-check.
    #[error("{name}: {error}")]
    Component {
        /// The component.
        name: String,
        /// Why.
        error: JobError,
    },
}

/// Components loaded once, to check any number of inputs against.
pub struct Calls {
    components: Vec<(LoadedComponent, Vec<Call>)>,
    /// Kept alive for the components it loaded (its epoch ticker).
    _sandbox: Sandbox,
}

impl Calls {
    /// Loads each sample's component (no disk cache) and type-checks its calls.
    pub fn load(samples: &[CallSample<'_>]) -> Result<Calls, CallsError> {
        let config = SandboxConfig { cache_dir: None, max_concurrent_jobs: 1, ..SandboxConfig::default() };
        let sandbox = Sandbox::new(config)?;
        let mut components = Vec::new();
        for sample in samples {
            let failed = |error| CallsError::Component { name: sample.name.to_owned(), error };
            let loaded = sandbox.load(sample.bytes).map_err(failed)?;
            let calls = sample.calls.iter().map(|call| loaded.parse_call(call)).collect::<Result<_, _>>();
            components.push((loaded, calls.map_err(failed)?));
        }
        Ok(Calls { components, _sandbox: sandbox })
    }

    /// Reads `data` (when it is UTF-8, as every text in a frame or an event is) as a call of
    /// each component — `wave-call` (a provider's `parse_call`) and `call` (`cue run`'s WAVE or
    /// JSON) — and as the reported result of each sample call (`wave-output`). Properties:
    /// never panics; an accepted call or result prints a canonical WAVE text that reads back
    /// to itself.
    pub fn check(&self, data: &[u8]) -> Verdict {
        let mut verdict = Verdict::default();
        let Ok(text) = std::str::from_utf8(data) else { return verdict };
        for (loaded, samples) in &self.components {
            let wave = loaded.parse_call(text);
            verdict.note("wave-call", &wave);
            if let Ok(call) = &wave {
                assert_canonical(loaded, call);
            }
            if text.trim_start().starts_with('{') {
                let json = parse_call(loaded, text);
                verdict.note("json-call", &json);
                if let Ok(call) = &json {
                    assert_canonical(loaded, call);
                }
            }
            for sample in samples {
                let output = loaded.output_from_wave(sample, text);
                verdict.note("wave-output", &output);
                if let Ok(output) = output {
                    let again = loaded.output_from_wave(sample, &output.wave);
                    assert_eq!(again.as_ref().map(|o| &o.wave), Ok(&output.wave), "a result reads back");
                }
            }
        }
        verdict
    }
}

/// A call's canonical WAVE reads back to the same call.
fn assert_canonical(loaded: &LoadedComponent, call: &Call) {
    let again = loaded.parse_call(call.wave());
    assert_eq!(again.as_ref().map(Call::wave).ok(), Some(call.wave()), "a call's canonical text reads back");
    assert_eq!(again.map(|c| c.input_hash()).ok(), Some(call.input_hash()));
}
