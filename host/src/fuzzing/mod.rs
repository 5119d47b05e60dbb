//! The checks of the fuzz targets (`fuzz/fuzz_targets/`): every decoder of peer input, run on
//! untrusted bytes exactly as a node runs it, with the properties that must hold for any input.
//!
//! One function per target — [`rpc`], [`job_frame`], [`blob_frame`], [`gossip`], [`floats`] (with
//! [`unrolling`]) and [`Calls::check`] — called both by the fuzz target and by the replay of its committed
//! regression inputs in the normal test suite (`tests/all/fuzz_corpus.rs`), so a past finding
//! is checked by exactly the code that found it. [`seeds`] writes each target's seed inputs
//! with the real encoders.
//!
//! A check never panics on a bad input (that is a refusal, recorded in its [`Verdict`]); it
//! panics only when a property is broken — a decoder that panics, a non-canonical encoding
//! accepted, a bound not held — because that panic is the finding a fuzzer reports.
//!
//! Clock: the checks read [`NOW_MS`], never the wall clock, so a verdict is the same on every
//! run; the seeds are signed at that time.

mod blob_frame;
mod call;
mod floats;
mod gossip;
mod job_frame;
mod rpc;
mod seeds;

use std::fmt::Display;

pub use blob_frame::blob_frame;
pub use call::{CallSample, Calls, CallsError, SAMPLE_CALLS};
pub use floats::{FloatsVerdict, floats, unrolling};
pub use gossip::gossip;
pub use job_frame::job_frame;
pub use rpc::rpc;
pub use seeds::{TARGETS, seeds};

use crate::crypto::Keypair;
use crate::protocol::{Event, EventBody, MAX_EVENT_BYTES, Signed};

/// The time every check reads (2027-01-15): freshness and expiry are judged at this instant.
pub const NOW_MS: u64 = 1_800_000_000_000;

/// The key the seeds are signed with, and the checks re-sign decoded bodies with to reach the
/// checks behind a signature (a fuzzer cannot forge one).
fn fuzz_key() -> Keypair {
    Keypair::from_seed([7; 32])
}

/// What the decoders of one target made of one input, in the order they ran.
#[derive(Debug, Default)]
pub struct Verdict {
    readings: Vec<Reading>,
}

/// One decoder's answer to one input (or to one item inside it).
#[derive(Debug)]
pub struct Reading {
    /// The decoder, named after what it reads: `request`, `frame`, `component-manifest`, ...
    pub decoder: &'static str,
    /// Why it refused the input; `None` when it accepted it.
    pub refusal: Option<String>,
}

impl Verdict {
    /// Records `decoder`'s answer.
    fn note<T, E: Display>(&mut self, decoder: &'static str, answer: &Result<T, E>) {
        let refusal = answer.as_ref().err().map(ToString::to_string);
        self.readings.push(Reading { decoder, refusal });
    }

    /// Every answer, in order.
    pub fn readings(&self) -> &[Reading] {
        &self.readings
    }

    /// Whether `decoder` accepted something in this input (a frame of a stream, a call of
    /// one of the components).
    pub fn accepted(&self, decoder: &str) -> bool {
        self.readings.iter().any(|r| r.decoder == decoder && r.refusal.is_none())
    }

    /// Why `decoder` refused (its first refusal), if it did.
    pub fn refusal(&self, decoder: &str) -> Option<&str> {
        self.readings.iter().filter(|r| r.decoder == decoder).find_map(|r| r.refusal.as_deref())
    }
}

/// A signed event of kind `T` as its receiver reads it — decoded, then its signature checked —
/// noted as `decoder`. Properties: only the canonical encoding decodes, within
/// [`MAX_EVENT_BYTES`]; hashing and the time checks never panic.
fn signed_event<T: EventBody>(
    verdict: &mut Verdict,
    decoder: &'static str,
    bytes: &[u8],
) -> Option<Signed<T>> {
    let decoded = Signed::<T>::decode(bytes);
    if let Ok(event) = &decoded {
        assert_eq!(event.bytes(), bytes, "{decoder}: only the canonical encoding decodes");
        assert!(bytes.len() <= MAX_EVENT_BYTES, "{decoder}: an event beyond the size limit decoded");
        let _ = event.hash();
        let _ = event.verify_live(NOW_MS);
        let _ = event.verify_issued(NOW_MS);
    }
    let verified = decoded.and_then(|event| event.verify_signature().map(|()| event));
    verdict.note(decoder, &verified);
    verified.ok()
}

/// A ledger entry (`TOKEN_MINT` or `TOKEN_TRANSFER`) as a node reads one from gossip, a chain
/// or a payment: decoded by its kind, then verified. Same properties as [`signed_event`].
fn ledger_entry(verdict: &mut Verdict, bytes: &[u8]) -> Option<Event> {
    let decoded = Event::decode(bytes);
    if let Ok(event) = &decoded {
        assert_eq!(event.bytes(), bytes, "ledger-entry: only the canonical encoding decodes");
        assert!(bytes.len() <= MAX_EVENT_BYTES, "ledger-entry: an event beyond the size limit decoded");
        let _ = (event.hash(), event.entry(), event.verify_live(NOW_MS));
    }
    let verified = decoded.and_then(|event| event.clone().verify().map(|_| event));
    verdict.note("ledger-entry", &verified);
    verified.ok()
}

/// Hex text carried in a frame, as the node decodes it before the event inside.
fn hex_field(verdict: &mut Verdict, decoder: &'static str, text: &str) -> Option<Vec<u8>> {
    let bytes = hex::decode(text);
    if bytes.is_err() {
        verdict.note(decoder, &bytes);
    }
    bytes.ok()
}
